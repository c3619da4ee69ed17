"""The main job: parse, resolve the recipe, load data and model, train with Trainer + Accelerate.

``scripts/finetune.py`` is a thin wrapper around :func:`main`, so the job runs the same under
``python``, ``accelerate launch`` and ``torchrun``, and tests smoke-run it in-process.

Flags follow Hugging Face conventions: every ``TrainingArguments`` flag, the model/data flags of
``run_glue.py`` and every :class:`~ftrecipes.recipe.Recipe` field. Precedence is
**command line > recipe file > Recipe class defaults**: a flag given on the command line always wins,
and a ``TrainingArguments`` default never silently overrides the recipe (only flags that were really
given count). Every user mistake exits with code 2 and one line; ``output_dir`` is not touched until
all inputs have been checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import USAGE_EXIT_CODE, ConfigError, did_you_mean
from .recipe import Recipe

logger = logging.getLogger("ftrecipes.finetune")


@dataclass
class ScriptArguments:
    """Model and data flags (the recipe supplies ``model_name_or_path``, ``dataset_name`` and
    ``max_seq_length`` defaults; see the recipe group below)."""

    recipe: str = field(default="cls", metadata={"help": "A shipped recipe name (see `ftrecipes list`) or a path to a recipe YAML file."})
    config_name: Optional[str] = field(default=None, metadata={"help": "Config name or path if not the same as the model."})
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Tokenizer name or path if not the same as the model."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where to store models and data sets downloaded from the Hub."})
    ignore_mismatched_sizes: bool = field(default=False, metadata={"help": "Replace a checkpoint's classification head of a different size."})
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "The configuration name of the Hub data set."})
    train_file: Optional[str] = field(default=None, metadata={"help": "Training data: csv, tsv, json, jsonl, parquet or txt."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "Validation data (else carved from train)."})
    test_file: Optional[str] = field(default=None, metadata={"help": "Test data, predicted and scored at the end when labelled."})
    text_column_name: Optional[str] = field(default=None, metadata={"help": "Text column (cls/clm) or word column (ner)."})
    text_pair_column_name: Optional[str] = field(default=None, metadata={"help": "Second text column for sentence-pair classification."})
    label_column_name: Optional[str] = field(default=None, metadata={"help": "Label column (default 'label', or 'ner_tags' for NER)."})
    validation_split_percentage: float = field(default=10.0, metadata={"help": "Percent of train held out when there is no validation split."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the training set (deterministic subsample)."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the validation and test sets."})
    split_seed: Optional[int] = field(default=None, metadata={"help": "Seed of the validation carve and the max_*_samples subsample (default: --seed); fix it to train several seeds on one split."})
    label_all_tokens: bool = field(default=False, metadata={"help": "NER: label every sub-word, not only the first."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Start fresh even if output_dir holds a checkpoint."})
    plots: bool = field(default=True, metadata={"help": "Write training_curves.png (LR, loss, grad norm, metric) at the end."})
    cpu_threads: Optional[int] = field(default=None, metadata={"help": "torch threads per process when training on CPU (default: the cores this process may use, divided among the local processes; `accelerate launch` and `torchrun` set OMP_NUM_THREADS=1, which leaves cores idle)."})
    merge_adapter: bool = field(default=False, metadata={"help": "With peft: also save the adapters merged into the base weights, in output_dir/merged."})
    on_divergence: str = field(default="stop", metadata={"help": "A non-finite or exploding loss: 'stop' (keep the last good checkpoint, exit 1) or 'skip' the batch.", "choices": ["stop", "skip"]})


# TrainingArguments' warmup flags, accepted as aliases of the recipe's `warmup` (users know them).
_WARMUP_ALIASES = ("warmup_steps", "warmup_ratio")


def build_parser():
    """The finetune argument parser: ScriptArguments + TrainingArguments + every Recipe field."""
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser((ScriptArguments, TrainingArguments), conflict_handler="resolve", allow_abbrev=False,
                              description="Fine-tune a Transformers model with an ftrecipes recipe.")
    group = parser.add_argument_group("recipe (command line > recipe file > Recipe defaults)")
    defaults = Recipe()
    for f in dataclasses.fields(Recipe):
        if f.name in ("name", "description"):
            continue
        # Typed as strings here: the Recipe coerces and validates them, naming the field on error.
        help_text = f"{f.metadata.get('help', '')} (class default: {getattr(defaults, f.name)!r})"
        group.add_argument(f"--{f.name}", type=str, default=None, help=help_text.replace("%", "%%"))
    group.add_argument("--warmup_steps", type=str, default=None, help="Alias of --warmup (steps, or a fraction < 1).")
    group.add_argument("--warmup_ratio", type=str, default=None, help="Alias of --warmup as a fraction of training.")

    def error(message: str):  # argparse's own errors: one line naming the flag, exit 2
        match = re.match(r"argument ([^:]+): (.*)", message)
        if match:
            raise ConfigError(match.group(1).split("/")[0], None, match.group(2), "see --help")
        raise ConfigError("arguments", None, message, "see --help")

    parser.error = error  # type: ignore[method-assign]
    return parser


@dataclass
class JobConfig:
    """Everything parsed from the command line, before anything is loaded."""

    script: ScriptArguments
    recipe: Recipe
    training_overrides: dict[str, Any]
    learning_rate_auto: bool = False


def parse_args(argv: Sequence[str] | None = None) -> JobConfig:
    """Parse ``argv`` with the precedence command line > recipe file > Recipe defaults."""
    from transformers import TrainingArguments

    from .registry import get_recipe

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Only flags that were really given may override the recipe: parse once with every default
    # suppressed, so the namespace holds exactly the explicit flags.
    for action in parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    explicit, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = unknown[0].split("=", 1)[0]
        options = [o for a in parser._actions for o in a.option_strings]
        raise ConfigError(flag, None, "is not a finetune.py flag", did_you_mean(flag, options) or "see --help")
    given = vars(explicit)

    script_fields = {f.name for f in dataclasses.fields(ScriptArguments)}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)} - {"name", "description"}
    training_fields = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}

    script = ScriptArguments(**{k: v for k, v in given.items() if k in script_fields})
    recipe_overrides = {k: v for k, v in given.items() if k in recipe_fields}
    for alias in _WARMUP_ALIASES:
        if alias in given:
            if "warmup" in recipe_overrides:
                raise ConfigError(f"--{alias}", given[alias], "was given together with --warmup", "give one of them")
            recipe_overrides["warmup"] = given[alias]
    learning_rate_auto = str(recipe_overrides.get("learning_rate", "")).lower() == "auto"
    if learning_rate_auto:
        del recipe_overrides["learning_rate"]

    recipe = get_recipe(script.recipe, **recipe_overrides)
    training_overrides = {
        k: v for k, v in given.items() if k in training_fields and k not in recipe_fields and k not in _WARMUP_ALIASES and k not in script_fields
    }
    return JobConfig(script=script, recipe=recipe, training_overrides=training_overrides, learning_rate_auto=learning_rate_auto)


# ------------------------------------------------------------------------------------------------
# Components


@dataclass
class TrainingComponents:
    """What a Trainer needs, built and checked, before anything is written to ``output_dir``."""

    config: JobConfig
    recipe: Recipe
    args: Any  # TrainingArguments
    tokenizer: Any
    prepared: Any  # ftrecipes.tasks.PreparedTask
    model: Any
    plan: Any  # RecipePlan
    last_checkpoint: Optional[str]
    lr_scaling: dict = field(default_factory=dict)  # before/after of the batch-size rule
    learning_rate_source: dict = field(default_factory=lambda: {"source": "recipe"})

    def train_dataloader(self):
        """A shuffled, seeded loader of the training split at the per-device batch, with the task's
        collator: what the LR range test and hand-written loops read (the Trainer builds its own)."""
        import torch
        from torch.utils.data import DataLoader

        return DataLoader(self.prepared.datasets["train"], batch_size=self.args.per_device_train_batch_size, shuffle=True,
                          collate_fn=self.prepared.data_collator, generator=torch.Generator().manual_seed(self.args.seed))


TASK_OF_RECIPE = {
    "sequence-classification": "cls",
    "token-classification": "ner",
    "causal-lm": "clm",
    "image-classification": "image",
}


def _auto_model_class(task: str):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoModelForTokenClassification

    return {"cls": AutoModelForSequenceClassification, "ner": AutoModelForTokenClassification, "clm": AutoModelForCausalLM}[task]


def _check_output_dir(output_dir: str, overwrite: bool, resume: Optional[str]) -> Optional[str]:
    """The last checkpoint to resume from (as ``run_glue.py`` detects it), or ``None``."""
    from transformers.trainer_utils import get_last_checkpoint

    if resume is not None:
        if resume not in ("True", "true", True) and not os.path.isdir(resume):
            raise ConfigError("--resume_from_checkpoint", resume, "is not a checkpoint folder", "give a checkpoint-N folder inside output_dir")
        return None
    if not os.path.isdir(output_dir) or overwrite:
        return None
    last = get_last_checkpoint(output_dir)
    if last is None and any(Path(output_dir).glob("*.safetensors")):
        raise ConfigError("--output_dir", output_dir, "already holds a trained model and no checkpoint to resume", "choose a new --output_dir or pass --overwrite_output_dir")
    return last


def build_training_components(config: JobConfig) -> TrainingComponents:
    """Load data, tokenizer, model and arguments for ``config`` and check them all (no writes)."""
    from transformers import AutoConfig, AutoTokenizer, set_seed

    from .data import load_raw_datasets, resolve_model_name_or_path
    from .scaling import recipe_lr_scaling
    from .tasks import check_label_count, prepare_task
    from .trainer import recipe_training_args, timeline_for

    recipe, script = config.recipe, config.script
    task = TASK_OF_RECIPE.get(recipe.task)
    if task is None:
        raise ConfigError("task", recipe.task, "is not a task finetune.py trains", f"use one of {sorted(TASK_OF_RECIPE)}")
    overrides = dict(config.training_overrides)
    output_dir = overrides.pop("output_dir", None) or os.path.join("runs", recipe.name)
    args = recipe_training_args(recipe, output_dir, **overrides)
    _set_cpu_threads(script.cpu_threads)
    set_seed(args.seed)
    last_checkpoint = _check_output_dir(args.output_dir, script.overwrite_output_dir, args.resume_from_checkpoint)
    load_kwargs = _peft_load_kwargs(recipe, script)  # peft / QLoRA prerequisites, before anything is loaded

    has_files = any((script.train_file, script.validation_file, script.test_file))
    raw = load_raw_datasets(
        dataset_name=None if has_files else recipe.dataset_name,
        dataset_config_name=script.dataset_config_name,
        train_file=script.train_file, validation_file=script.validation_file, test_file=script.test_file,
        validation_split_percentage=script.validation_split_percentage, seed=args.seed if script.split_seed is None else script.split_seed,
        max_train_samples=script.max_train_samples, max_eval_samples=script.max_eval_samples, cache_dir=script.cache_dir,
    )
    if task == "image":
        return _build_image_components(config, args, raw, last_checkpoint)
    model_path = resolve_model_name_or_path(recipe.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name_or_path(script.tokenizer_name or model_path), cache_dir=script.cache_dir)
    task_kwargs: dict[str, Any] = dict(text_column_name=script.text_column_name)
    if task == "cls":
        task_kwargs.update(text_pair_column_name=script.text_pair_column_name, label_column_name=script.label_column_name or "label", max_seq_length=recipe.max_seq_length)
    elif task == "ner":
        task_kwargs.update(label_column_name=script.label_column_name, max_seq_length=recipe.max_seq_length, label_all_tokens=script.label_all_tokens)
    else:
        task_kwargs.update(block_size=recipe.max_seq_length)
    with args.main_process_first(desc="dataset map pre-processing"):
        prepared = prepare_task(task, raw, tokenizer, **task_kwargs)
    if len(prepared.datasets["train"]) == 0:
        raise ConfigError("--train_file" if has_files else "--dataset_name", script.train_file or recipe.dataset_name, "has no training rows after preprocessing", "give more data or a smaller --max_seq_length for clm")

    model_config = AutoConfig.from_pretrained(resolve_model_name_or_path(script.config_name or model_path), cache_dir=script.cache_dir)
    if prepared.label_list is not None:
        if not script.ignore_mismatched_sizes:
            check_label_count(prepared.label_list, _with_head_size(model_config, len(prepared.label_list)), recipe.model_name_or_path)
        model_config.num_labels = len(prepared.label_list)
        model_config.id2label, model_config.label2id = prepared.id2label, prepared.label2id

    # The schedule is checked against the run's real sizes now (warmup longer than training, bad
    # milestones...), before output_dir exists. RecipeTrainer rebuilds it from Trainer's own count.
    timeline = timeline_for(args, len(prepared.datasets["train"]))
    plan = recipe.plan(timeline)
    scaling = recipe_lr_scaling(recipe, timeline.global_batch_size)
    logger.info("batch-size scaling: %s", scaling.message())

    model = _auto_model_class(task).from_pretrained(
        model_path, config=model_config, cache_dir=script.cache_dir, ignore_mismatched_sizes=script.ignore_mismatched_sizes, **load_kwargs,
    )
    model = _adapt_model(model, recipe)
    components = TrainingComponents(config, recipe, args, tokenizer, prepared, model, plan, last_checkpoint, scaling.to_dict())
    if config.learning_rate_auto:
        _choose_learning_rate(components)
    return components


def _choose_learning_rate(c: "TrainingComponents") -> None:
    """``--learning_rate auto``: an LR range test on the training data, bounded by the recipe's prior.

    The finder's pick is for this run's global batch, so it replaces the scaled peak as-is; its JSON
    and PNG (``lr_finder.json`` / ``lr_finder.png``) go to ``output_dir`` with the reason.
    """
    from .lr_finder import choose_learning_rate

    loader = c.train_dataloader()
    with c.args.main_process_first(desc="LR range test"):
        lr, result = choose_learning_rate(c.recipe, c.model, loader, output_dir=c.args.output_dir,
                                          num_processes=max(1, c.args.world_size),
                                          accumulation_steps=c.args.gradient_accumulation_steps)
    logger.info("--learning_rate auto: %s", result.summary())
    if result.warning:
        logger.warning("%s", result.warning)
    c.args.learning_rate = lr
    c.learning_rate_source = {"source": "lr-find", "learning_rate": lr, "suggestion": result.suggestion,
                              "rule": result.rule, "reason": result.reason, "warning": result.warning}


def _build_image_components(config: JobConfig, args, raw, last_checkpoint: Optional[str]) -> TrainingComponents:
    """The image branch: no tokenizer; ``pixel_values`` batches stacked by ``DefaultDataCollator``;
    ``model_name_or_path: small-cnn`` builds a fresh :class:`~ftrecipes.models.SmallCNNForImageClassification`,
    anything else loads with ``AutoModelForImageClassification``. Plan, scaling and ``--learning_rate
    auto`` as in the text branch."""
    from transformers import AutoConfig, AutoModelForImageClassification

    from .models import SmallCNNForImageClassification, is_small_cnn_alias, prepare_image_classification, small_cnn_config_for
    from .scaling import recipe_lr_scaling
    from .tasks import check_label_count
    from .trainer import timeline_for

    recipe, script = config.recipe, config.script
    with args.main_process_first(desc="image pre-processing"):
        prepared = prepare_image_classification(raw, image_column_name=script.text_column_name, label_column_name=script.label_column_name)
    if len(prepared.datasets["train"]) == 0:
        raise ConfigError("--dataset_name", recipe.dataset_name, "has no training rows", "give more data")
    timeline = timeline_for(args, len(prepared.datasets["train"]))
    plan = recipe.plan(timeline)
    scaling = recipe_lr_scaling(recipe, timeline.global_batch_size)
    logger.info("batch-size scaling: %s", scaling.message())
    if is_small_cnn_alias(recipe.model_name_or_path) and script.config_name is None:
        model = SmallCNNForImageClassification(small_cnn_config_for(prepared))
    else:
        model_config = AutoConfig.from_pretrained(script.config_name or recipe.model_name_or_path, cache_dir=script.cache_dir)
        if not script.ignore_mismatched_sizes:
            check_label_count(prepared.label_list, model_config, recipe.model_name_or_path)
        model_config.num_labels = len(prepared.label_list)
        model_config.id2label, model_config.label2id = prepared.id2label, prepared.label2id
        model = AutoModelForImageClassification.from_pretrained(
            recipe.model_name_or_path, config=model_config, cache_dir=script.cache_dir, ignore_mismatched_sizes=script.ignore_mismatched_sizes,
        )
    model = _adapt_model(model, recipe)
    components = TrainingComponents(config, recipe, args, None, prepared, model, plan, last_checkpoint, scaling.to_dict())
    if config.learning_rate_auto:
        _choose_learning_rate(components)
    return components


def _peft_load_kwargs(recipe: Recipe, script: ScriptArguments) -> dict:
    from .peft_lora import peft_load_kwargs

    if script.merge_adapter and recipe.peft == "none":
        raise ConfigError("--merge_adapter", True, "there is no adapter to merge (peft: none)", "drop --merge_adapter or pass --peft lora")
    return peft_load_kwargs(recipe)


def _adapt_model(model, recipe: Recipe):
    """LoRA / QLoRA adapters (ftrecipes.peft_lora), and the layer-wise LR groups checked against the
    model's modules now, so an unmappable architecture fails before output_dir is touched."""
    from .layerwise import parameter_depths, uses_layerwise
    from .peft_lora import apply_peft, trainable_parameters

    model = apply_peft(model, recipe)
    if uses_layerwise(recipe):
        parameter_depths(model, recipe)
    logger.info("trainable parameters: %d of %d", *trainable_parameters(model))
    return model


def _set_cpu_threads(requested: Optional[int]) -> None:
    """On CPU, use the cores that are ours: launchers set OMP_NUM_THREADS=1 for every process, which
    on a single-process run leaves all cores but one idle (about 2x slower on 2 cores)."""
    import torch

    if torch.cuda.is_available():
        return
    if requested is not None:
        if requested < 1:
            raise ConfigError("--cpu_threads", requested, "must be at least 1", "omit it to use every available core")
        torch.set_num_threads(requested)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, cores // max(1, local_processes)))


def _with_head_size(config, num_labels: int):
    """A config whose head is as the checkpoint has it: a base checkpoint (no classification head)
    takes any label count, so it is checked as if it already had the right size."""
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForSequenceClassification", "ForTokenClassification")) for a in architectures):
        return config
    probe = type(config).from_dict(config.to_dict())
    probe.num_labels = num_labels
    return probe


# ------------------------------------------------------------------------------------------------
# The job


def run(config: JobConfig) -> int:
    """Train, evaluate and save; returns the process exit code."""
    from .callbacks import add_monitoring
    from .metrics import compute_metrics_for, preprocess_logits_for_metrics_for
    from .trainer import RecipeTrainer

    c = build_training_components(config)
    task = TASK_OF_RECIPE[c.recipe.task]
    eval_dataset = c.prepared.datasets.get("validation")
    args = c.args
    if eval_dataset is None and args.eval_strategy != "no":
        raise ConfigError("--validation_file", None, "evaluation needs a validation split", "pass --validation_file or --eval_strategy no")

    _log_plan(c)
    trainer = RecipeTrainer(
        model=c.model, args=args, recipe=c.recipe,
        train_dataset=c.prepared.datasets["train"], eval_dataset=eval_dataset,
        data_collator=c.prepared.data_collator, processing_class=c.tokenizer,
        # Images are scored like text classification: accuracy and macro-F1.
        compute_metrics=compute_metrics_for("cls" if task == "image" else task, c.prepared.id2label),
        preprocess_logits_for_metrics=None if task == "image" else preprocess_logits_for_metrics_for(task),
    )
    monitoring = add_monitoring(trainer, on_divergence=config.script.on_divergence)
    checkpoint = args.resume_from_checkpoint or c.last_checkpoint
    if c.last_checkpoint and not args.resume_from_checkpoint:
        logger.warning("Checkpoint detected, resuming training at %s (pass --overwrite_output_dir to start fresh).", c.last_checkpoint)
    if checkpoint in ("True", "true"):
        checkpoint = True

    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    if monitoring.exit_code:
        # Diverged: the guard printed its one line and kept the last good checkpoint; the weights in
        # memory are not worth saving. The state and curves show what happened.
        trainer.save_state()
        if config.script.plots and trainer.is_world_process_zero():
            _plot_curves(args.output_dir)
        return monitoring.exit_code
    trainer.save_model()
    if config.script.merge_adapter and trainer.is_world_process_zero():
        from .peft_lora import save_merged

        logger.info("merged weights: %s", save_merged(trainer.model, args.output_dir, c.tokenizer))
    metrics = dict(train_result.metrics)
    metrics["train_samples"] = len(c.prepared.datasets["train"])
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    if eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_dataset)
        if task == "clm" and "eval_loss" in eval_metrics:
            eval_metrics.setdefault("eval_perplexity", _safe_exp(eval_metrics["eval_loss"]))
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    test_dataset = c.prepared.datasets.get("test")
    if test_dataset is not None and "labels" in test_dataset.column_names:
        test_metrics = trainer.evaluate(test_dataset, metric_key_prefix="test")
        trainer.log_metrics("test", test_metrics)
        trainer.save_metrics("test", test_metrics)

    if trainer.is_world_process_zero():
        _write_recipe_outputs(c, trainer)
        if config.script.plots:
            _plot_curves(args.output_dir)
    return 0


def _plot_curves(output_dir: str) -> None:
    """training_curves.png; a missing matplotlib costs the picture, never the finished run."""
    from .curves import plot_run

    try:
        logger.info("training curves: %s", plot_run(output_dir))
    except ConfigError as err:
        logger.warning("training curves skipped: %s", err)


def _safe_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return float("inf")


def _log_plan(c: TrainingComponents) -> None:
    t = c.plan.timeline
    logger.info(
        "recipe %s: %d optimizer steps (%d/epoch), warmup %d, global batch %d = %d x %d processes x %d accumulation, peak LR %.3g (%s scaling from %.3g at batch %d)",
        c.recipe.name, c.plan.total_steps, t.steps_per_epoch, c.plan.warmup_steps, t.global_batch_size, t.per_device_train_batch_size,
        t.num_processes, t.gradient_accumulation_steps, c.args.learning_rate, c.recipe.lr_scaling, c.recipe.learning_rate, c.recipe.reference_global_batch_size,
    )


def _write_recipe_outputs(c: TrainingComponents, trainer) -> None:
    """The resolved recipe (as trained: peak after scaling) and its plan, next to the model."""
    out = Path(c.args.output_dir)
    # The peak this run trained at, stated for this run's global batch: rerunning the file at the same
    # batch gives the same LR, and at another batch the recipe's rule scales from this point.
    resolved = c.recipe.replace(learning_rate=c.args.learning_rate, reference_global_batch_size=c.plan.timeline.global_batch_size)
    (out / "recipe.yaml").write_text(
        f"# Resolved recipe of this run (recipe {c.config.script.recipe!r}; peak LR as trained, at this run's global batch).\n"
        f"# Reproduce: accelerate launch scripts/finetune.py --recipe {out / 'recipe.yaml'}\n" + resolved.to_yaml()
    )
    schedule = trainer.schedule
    plan = {
        "recipe": c.recipe.name,
        "total_steps": schedule.total_steps if schedule else c.plan.total_steps,
        "warmup_steps": schedule.warmup_steps if schedule else c.plan.warmup_steps,
        "global_batch_size": c.plan.timeline.global_batch_size,
        "num_processes": c.plan.timeline.num_processes,
        "learning_rate_recipe": c.recipe.learning_rate,
        "learning_rate": c.args.learning_rate,
        "lr_scaling": c.lr_scaling,
        "learning_rate_source": c.learning_rate_source,
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "transitions": [dataclasses.asdict(t) for t in (schedule.transitions if schedule else [])],
    }
    (out / "plan.json").write_text(json.dumps(plan, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scripts/finetune.py``: returns 0, 2 for bad input, 1 when training diverged."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = parse_args(argv)
        return run(config)
    except ConfigError as err:
        print(f"finetune.py: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE
