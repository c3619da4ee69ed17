#!/usr/bin/env python
"""A fine-tuning script in the style of transformers' ``examples/pytorch`` (``run_classification.py``,
``run_clm.py``, ``run_image_classification.py``), adopting an ftrecipes recipe in the three lines
marked ``ftrecipes (n/3)``. Without ``--recipe`` it is a plain ``Trainer`` script, which is what the
tests compare it against.

    python scripts/examples/hf_style_example.py --recipe cls --task cls --model_name_or_path minilm \\
        --dataset_name bbc_news --max_train_samples 256 --do_train --do_eval --output_dir runs/hf-style
    python scripts/examples/hf_style_example.py --recipe cnn-step --task image --model_name_or_path small-cnn \\
        --dataset_name digits --do_train --do_eval --max_steps 50 --output_dir runs/hf-style-cnn

Every flag is HF's own (``HfArgumentParser`` over ``TrainingArguments``); the recipe fills what the
command line does not give (peak LR scaled for the batch, weight decay, betas, clipping, batch,
duration, precision, schedule) and logs one line per value saying where it came from.
"""

import logging
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

import numpy as np
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from ftrecipes import RecipeTrainer, apply_recipe, get_recipe
from ftrecipes.data.loading import load_raw_datasets
from ftrecipes.data.tasks import prepare_task
from ftrecipes.data.tasks.image_classification import prepare_image_classification
from ftrecipes.models.cnn import SmallCNNForImageClassification, small_cnn_config_for
from ftrecipes.models.names import is_small_cnn_alias, resolve_model_name_or_path

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "Model folder or Hub id ('minilm', 'small-cnn' for the bundled ones)."}
    )
    task: str = field(default="cls", metadata={"help": "cls, clm or image.", "choices": ["cls", "clm", "image"]})
    recipe: Optional[str] = field(
        default=None, metadata={"help": "An ftrecipes recipe name or YAML path (none: plain Trainer)."}
    )


@dataclass
class DataTrainingArguments:
    dataset_name: Optional[str] = field(default=None, metadata={"help": "A bundled data set alias or a Hub id."})
    train_file: Optional[str] = field(default=None, metadata={"help": "Training csv/json/txt."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "Validation csv/json/txt."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the validation set."})
    max_seq_length: int = field(default=64, metadata={"help": "Tokens per example (cls) or per block (clm)."})


def accuracy(eval_pred):
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def main(argv=None) -> int:
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    recipe = get_recipe(model_args.recipe) if model_args.recipe else None  # ftrecipes (1/3)
    training_args = apply_recipe(recipe, training_args, argv) if recipe else training_args  # ftrecipes (2/3)

    # Detecting the last checkpoint, as the transformers examples do.
    last_checkpoint = None
    if os.path.isdir(training_args.output_dir) and training_args.do_train:
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
        if last_checkpoint is not None and training_args.resume_from_checkpoint is None:
            logger.info("Checkpoint detected, resuming training at %s.", last_checkpoint)
    set_seed(training_args.seed)

    has_files = data_args.train_file or data_args.validation_file
    raw = load_raw_datasets(
        dataset_name=None if has_files else data_args.dataset_name,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        seed=training_args.seed,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
    )
    tokenizer = None
    if model_args.task == "image":
        prepared = prepare_image_classification(raw)
        if is_small_cnn_alias(model_args.model_name_or_path):
            model = SmallCNNForImageClassification(small_cnn_config_for(prepared))
        else:
            raise SystemExit("this example builds only the bundled small-cnn for images")
    else:
        path = resolve_model_name_or_path(model_args.model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if model_args.task == "cls":
            prepared = prepare_task("cls", raw, tokenizer, max_seq_length=data_args.max_seq_length)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=len(prepared.label_list), id2label=prepared.id2label, label2id=prepared.label2id
            )
        else:
            prepared = prepare_task("clm", raw, tokenizer, block_size=data_args.max_seq_length)
            model = AutoModelForCausalLM.from_pretrained(path)
    train_dataset = prepared.datasets["train"] if training_args.do_train else None
    eval_dataset = prepared.datasets.get("validation") if training_args.do_eval else None

    trainer = (partial(RecipeTrainer, recipe=recipe) if recipe else Trainer)(  # ftrecipes (3/3)
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=prepared.data_collator,
        processing_class=tokenizer,
        compute_metrics=accuracy if model_args.task != "clm" else None,
    )

    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        metrics = train_result.metrics
        metrics["train_samples"] = len(train_dataset)
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(eval_dataset)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    trainer.create_model_card(model_name=os.path.basename(os.path.normpath(training_args.output_dir)))
    return 0


if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    sys.exit(main())
