"""The main job's first phase: its command line, parsed into a :class:`JobConfig`.

Flags follow Hugging Face conventions: every ``TrainingArguments`` flag, the model/data flags of
``run_glue.py`` and every :class:`~ftrecipes.config.recipe.Recipe` field. Precedence is
**command line > recipe file > Recipe class defaults**: a flag given on the command line always wins,
and a ``TrainingArguments`` default never silently overrides the recipe (only flags that were really
given count).

Bad input is answered before heavy imports: the command line is first parsed by a parser that imports
neither torch nor transformers (:func:`build_early_parser`, TrainingArguments' options read from the
installed source by :mod:`ftrecipes.job.options`), and the recipe resolved; the real
``HfArgumentParser`` is built only for a command line that passed (see :func:`parse_args`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ftrecipes.config.durations import FRACTION, parse_duration, training_interval
from ftrecipes.config.errors import ConfigError, did_you_mean, raise_usage_errors
from ftrecipes.config.recipe import Recipe
from ftrecipes.job.options import add_dataclass_options, fields_of, training_argument_fields


@dataclass
class ScriptArguments:
    """Model and data flags (the recipe supplies ``model_name_or_path``, ``dataset_name`` and
    ``max_seq_length`` defaults; see the recipe group below)."""

    recipe: str = field(
        default="cls",
        metadata={"help": "A shipped recipe name (see `ftrecipes list`) or a path to a recipe YAML file."},
    )
    config_name: Optional[str] = field(
        default=None, metadata={"help": "Config name or path if not the same as the model."}
    )
    tokenizer_name: Optional[str] = field(
        default=None, metadata={"help": "Tokenizer name or path if not the same as the model."}
    )
    cache_dir: Optional[str] = field(
        default=None, metadata={"help": "Where to store models and data sets downloaded from the Hub."}
    )
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Replace a checkpoint's classification head of a different size."}
    )
    dataset_config_name: Optional[str] = field(
        default=None, metadata={"help": "The configuration name of the Hub data set."}
    )
    train_file: Optional[str] = field(
        default=None, metadata={"help": "Training data: csv, tsv, json, jsonl, parquet or txt."}
    )
    validation_file: Optional[str] = field(default=None, metadata={"help": "Validation data (else carved from train)."})
    test_file: Optional[str] = field(
        default=None, metadata={"help": "Test data, predicted and scored at the end when labelled."}
    )
    text_column_name: Optional[str] = field(
        default=None, metadata={"help": "Text column (cls/regression/clm) or word column (ner)."}
    )
    text_pair_column_name: Optional[str] = field(
        default=None, metadata={"help": "Second text column for sentence-pair classification."}
    )
    label_column_name: Optional[str] = field(
        default=None, metadata={"help": "Label column (default 'label', or 'ner_tags' for NER)."}
    )
    image_column_name: Optional[str] = field(
        default=None, metadata={"help": "Image column of image classification (default 'pixel_values')."}
    )
    validation_split_percentage: float = field(
        default=10.0, metadata={"help": "Percent of train held out when there is no validation split."}
    )
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Truncate the training set (deterministic subsample)."}
    )
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the validation and test sets."})
    split_seed: Optional[int] = field(
        default=None,
        metadata={
            "help": (
                "Seed of the validation carve and the max_*_samples subsample (default: --seed); fix it to train "
                "several seeds on one split."
            )
        },
    )
    label_all_tokens: bool = field(default=False, metadata={"help": "NER: label every sub-word, not only the first."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start fresh even if output_dir holds a checkpoint."}
    )
    plots: bool = field(
        default=True, metadata={"help": "Write training_curves.png (LR, loss, grad norm, metric) at the end."}
    )
    cpu_threads: Optional[int] = field(
        default=None,
        metadata={
            "help": (
                "torch threads per process when training on CPU (default: OMP_NUM_THREADS if you set it outside a "
                "launcher, else the cores this process may use divided among the local processes; `accelerate launch` "
                "and `torchrun` set OMP_NUM_THREADS=1 themselves, which would leave cores idle)."
            )
        },
    )
    merge_adapter: bool = field(
        default=False,
        metadata={"help": "With peft: also save the adapters merged into the base weights, in output_dir/merged."},
    )
    on_divergence: str = field(
        default="stop",
        metadata={
            "help": (
                "A non-finite or exploding loss: 'stop' (keep the last good checkpoint, exit 1) or 'skip' the batch."
            ),
            "choices": ["stop", "skip"],
        },
    )
    replan: bool = field(
        default=False,
        metadata={
            "help": (
                "Resume a checkpoint under this launch's plan (steps, warmup, peak) when it differs from the plan kept "
                "with the checkpoint; the step count is kept and the LR follows the new schedule from there."
            )
        },
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": (
                "Stream the training split (datasets' streaming=True) from --train_file or a Hub --dataset_name "
                "instead of loading it whole: needs --max_steps, and every duration of the recipe resolves against it "
                "(no epochs)."
            )
        },
    )
    shuffle_buffer_size: int = field(
        default=10_000,
        metadata={"help": "With --streaming: rows in the shuffle buffer of the stream (0: keep the stream's order)."},
    )
    label_list: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": (
                "The classes in id order (cls, ner), e.g. --label_list negative neutral positive; with --streaming "
                "needed when neither a ClassLabel feature nor the validation split names them."
            )
        },
    )


# TrainingArguments' warmup flags, accepted as aliases of the recipe's `warmup` (users know them).
_WARMUP_ALIASES = ("warmup_steps", "warmup_ratio")
# TrainingArguments' intervals that are not recipe fields (eval_steps is one).
_INTERVAL_FLAGS = ("save_steps", "logging_steps")


_DESCRIPTION = "Fine-tune a Transformers model with an ftrecipes recipe."


def build_parser(prog: Optional[str] = None):
    """The main job's argument parser: ScriptArguments + TrainingArguments + every Recipe field."""
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser(
        (ScriptArguments, TrainingArguments),
        conflict_handler="resolve",
        allow_abbrev=False,
        prog=prog,
        description=_DESCRIPTION,
    )
    return _add_recipe_flags(parser)


def build_early_parser(prog: Optional[str] = None) -> tuple[argparse.ArgumentParser, bool]:
    """``(parser, complete)``: the parser of :func:`build_parser` built without importing transformers
    (:mod:`ftrecipes.job.options`), and whether it holds TrainingArguments' options too (``False`` when
    the installed transformers' source could not be read; then only our own flags are in it).

    Its option names, value counts and plain types (int, float, bool) are the real parser's; values of
    a type defined in transformers (strategy enums) are left as text, checked by the real parser later.
    """
    parser = argparse.ArgumentParser(
        prog=prog, conflict_handler="resolve", allow_abbrev=False, description=_DESCRIPTION
    )
    add_dataclass_options(parser, fields_of(ScriptArguments))
    training = training_argument_fields()
    if training is not None:
        add_dataclass_options(parser, training)
    return _add_recipe_flags(parser), training is not None


def add_recipe_field_flags(group, skip: Sequence[str] = ()) -> None:
    """One ``--FIELD`` option per :class:`Recipe` field (but ``name``, ``description`` and ``skip``), typed as
    strings: the Recipe coerces and validates them, naming the field on error."""
    defaults = Recipe()
    for f in dataclasses.fields(Recipe):
        if f.name in ("name", "description", *skip):
            continue
        help_text = f"{f.metadata.get('help', '')} (class default: {getattr(defaults, f.name)!r})"
        group.add_argument(f"--{f.name}", type=str, default=None, help=help_text.replace("%", "%%"))


def _add_recipe_flags(parser):
    group = parser.add_argument_group("recipe (command line > recipe file > Recipe defaults)")
    add_recipe_field_flags(group)
    group.add_argument(
        "--warmup_steps",
        type=str,
        default=None,
        help="Alias of --warmup: an integer of steps, or a fraction < 1 (as in transformers 5).",
    )
    group.add_argument(
        "--warmup_ratio", type=str, default=None, help="Alias of --warmup as a fraction of training (0.05 or 5%%)."
    )
    # TrainingArguments' intervals read through the one duration parser (steps, fraction or '%').
    for name in _INTERVAL_FLAGS:
        group.add_argument(
            f"--{name}",
            type=str,
            default=None,
            help=f"TrainingArguments' {name}: optimizer steps (500) or a fraction of training (0.1 / 10%%).",
        )

    return raise_usage_errors(parser)  # argparse's own errors: one line naming the flag, exit 2


@dataclass
class JobConfig:
    """Everything parsed from the command line, before anything is loaded."""

    script: ScriptArguments
    recipe: Recipe
    training_overrides: dict[str, Any]
    learning_rate_auto: bool = False
    program: str = "finetune.py"  # the command's name in its error lines


def parse_args(
    argv: Sequence[str] | None = None,
    *,
    prog: Optional[str] = None,
    early_checks: Optional[Callable[[JobConfig], None]] = None,
) -> JobConfig:
    """Parse ``argv`` with the precedence command line > recipe file > Recipe defaults.

    Twice, light first: the command line is parsed by :func:`build_early_parser` (no transformers) and
    the recipe resolved, so an unknown recipe, a bad recipe file, a mistyped flag or a value of the
    wrong type is answered before transformers is imported; then ``early_checks`` (the main job passes
    :func:`ftrecipes.job.check.check_early`) runs on that result. Only then is the real parser built, and
    the :class:`JobConfig` returned is the one it parses. ``--help`` goes straight to the real parser,
    which lists every flag. ``prog`` names the command in usage lines and errors (default: finetune.py).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    program = prog or "finetune.py"
    if not any(token in ("-h", "--help") for token in argv):
        parser, complete = build_early_parser(prog)
        training_fields = {f.name for f in training_argument_fields() or ()}
        early = _parse_with(parser, training_fields, argv, program, judge_unknown=complete)
        if early_checks is not None and complete:
            early_checks(early)
    from transformers import TrainingArguments

    training_fields = {f.name for f in dataclasses.fields(TrainingArguments) if f.init}
    return _parse_with(build_parser(prog), training_fields, argv, program, judge_unknown=True)


def _parse_with(parser, training_fields: set[str], argv: list[str], program: str, *, judge_unknown: bool) -> JobConfig:
    from ftrecipes.config.registry import get_recipe
    from ftrecipes.training.flags import given_flags

    # Only flags that were really given may override the recipe (see ftrecipes.training.flags).
    given, unknown = given_flags(parser, argv)
    if unknown and judge_unknown:
        flag = unknown[0].split("=", 1)[0]
        options = [o for a in parser._actions for o in a.option_strings]
        name = f"`{program}`" if " " in program else program
        raise ConfigError(flag, None, f"is not a {name} flag", did_you_mean(flag, options) or "see --help")
    script_fields = {f.name for f in dataclasses.fields(ScriptArguments)}
    recipe_fields = {f.name for f in dataclasses.fields(Recipe)} - {"name", "description"}
    script = ScriptArguments(**{k: v for k, v in given.items() if k in script_fields})
    recipe_overrides = {k: v for k, v in given.items() if k in recipe_fields}
    for alias in _WARMUP_ALIASES:
        if alias in given:
            if "warmup" in recipe_overrides:
                raise ConfigError(f"--{alias}", given[alias], "was given together with --warmup", "give one of them")
            if parse_duration(given[alias], f"--{alias}").unit != FRACTION and alias == "warmup_ratio":
                raise ConfigError(
                    "--warmup_ratio",
                    given[alias],
                    "is a ratio of training",
                    "give a fraction below 1 (0.05 or 5%), or --warmup for steps or epochs",
                )
            recipe_overrides["warmup"] = given[alias]
    for name in _INTERVAL_FLAGS:
        if name in given:
            given[name] = training_interval(given[name], f"--{name}")
    learning_rate_auto = str(recipe_overrides.get("learning_rate", "")).lower() == "auto"
    if learning_rate_auto:
        del recipe_overrides["learning_rate"]

    recipe = get_recipe(script.recipe, **recipe_overrides)
    training_overrides = {
        k: v
        for k, v in given.items()
        if k in training_fields and k not in recipe_fields and k not in _WARMUP_ALIASES and k not in script_fields
    }
    return JobConfig(
        script=script,
        recipe=recipe,
        training_overrides=training_overrides,
        learning_rate_auto=learning_rate_auto,
        program=program,
    )
