#!/usr/bin/env python
"""Apply a recipe to *your own* Trainer script: the lines that matter are marked (0), (1) and (2).

    python scripts/examples/trainer_integration.py                          # bundled MiniLM + BBC News, 60 steps
    python scripts/examples/trainer_integration.py --recipe one-cycle --max_steps 100 --output_dir runs/mine

Everything else is a plain Hugging Face fine-tuning script: your data, your tokenizer, your model,
your ``compute_metrics``, a stock ``transformers.Trainer`` (when you can subclass it, ``RecipeTrainer``
is shorter: see scripts/examples/hf_style_example.py). The recipe supplies the TrainingArguments values it owns
(peak LR scaled for the global batch, weight decay, betas, clipping, batch, duration, precision) and
the optimizer + scheduler pair, sized to the optimizer-step count the Trainer will compute.
"""

import sys

import numpy as np
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from ftrecipes import ConfigError, get_recipe
from ftrecipes.config.errors import ArgumentParser
from ftrecipes.data.loading import load_raw_datasets
from ftrecipes.models.lora import apply_peft, peft_load_kwargs, trainable_parameters
from ftrecipes.models.names import resolve_model_name_or_path
from ftrecipes.training.arguments import apply_recipe
from ftrecipes.training.stock import recipe_optimizers


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--recipe", default="cls")
    parser.add_argument("--model_name_or_path", default="minilm")
    parser.add_argument("--max_steps", type=int, default=60)
    parser.add_argument("--max_train_samples", type=int, default=480)
    parser.add_argument("--output_dir", default="runs/trainer-integration")
    try:
        cli = parser.parse_args(argv)
        recipe = get_recipe(cli.recipe, max_steps=cli.max_steps, max_seq_length=64)
        load_kwargs = peft_load_kwargs(recipe)  # QLoRA's 4-bit config; peft / CUDA checked before loading
    except ConfigError as err:
        print(f"trainer_integration.py: error: {err}", file=sys.stderr)
        return 2

    # Your data and model, as in any fine-tuning script.
    raw = load_raw_datasets("bbc_news", max_train_samples=cli.max_train_samples, max_eval_samples=200)
    labels = raw["train"].features["label"].names
    path = resolve_model_name_or_path(cli.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenized = raw.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=recipe.max_seq_length),
        batched=True,
        remove_columns=["text"],
    )
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels), **load_kwargs)
    # (0) LoRA / QLoRA adapters when the recipe asks for them (lora-cls); the model as-is otherwise.
    model = apply_peft(model, recipe)
    print("trainable parameters: {:,} of {:,}".format(*trainable_parameters(model)))

    def compute_metrics(eval_pred):
        logits, gold = eval_pred
        return {"accuracy": float((np.argmax(logits, axis=-1) == gold).mean())}

    # (1) Your TrainingArguments, with the recipe's values wherever you did not set one yourself
    #     (argv=[]: this script's own flags are not TrainingArguments flags; values set here in code count).
    args = apply_recipe(
        recipe,
        TrainingArguments(
            cli.output_dir,
            eval_strategy="no",
            logging_steps=10,
            logging_first_step=True,
            save_strategy="no",
            report_to="none",
        ),
        argv=[],
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        # (2) The recipe's optimizer (no decay on biases/norms) and its step-based scheduler.
        optimizers=recipe_optimizers(recipe, model, args, tokenized["train"]),
    )
    trainer.train()
    trainer.save_state()  # trainer_state.json: learning_rate, loss and grad_norm per logging step
    print(trainer.evaluate())
    return 0


if __name__ == "__main__":
    sys.exit(main())
