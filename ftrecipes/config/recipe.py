"""Recipes: named, validated bundles of worked fine-tuning defaults.

A :class:`Recipe` holds everything that decides *how* a model is trained — optimizer, peak LR,
warmup, decay and floor, weight decay, clipping, precision, batch and duration, evaluation and early
stopping — under the names Hugging Face users already know (``learning_rate``,
``per_device_train_batch_size``, ``lr_scheduler_type``, ``min_lr_rate``, ...). The class defaults are
a common setup for fine-tuning a pretrained encoder: AdamW (Loshchilov & Hutter 2019) at a peak of
3e-5 for 3 epochs (inside BERT's fine-tuning grid of 2e-5..5e-5 and 2-4 epochs, Devlin et al. 2019,
appendix A.3), 5% linear warmup, cosine decay (Loshchilov & Hutter 2017) to 10% of the peak, weight
decay 0.01, gradient clipping at 1.0.

Shipped recipes are YAML files in ``recipes/`` holding their overrides of those defaults. Overrides
are strict: an unknown key, a wrong type or an impossible value is a :class:`ConfigError` naming it.

Sizes-dependent values (warmup and total steps, the batch-scaled peak) are resolved by
:meth:`Recipe.plan` against a :class:`~ftrecipes.config.timeline.Timeline`, once per run.

This module is part of the config layer: it imports neither torch nor transformers, so that
``ftrecipes list/show/validate/plot`` start in well under a second.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from ftrecipes.config.built_schedule import BuiltSchedule, Sizes
from ftrecipes.config.durations import (
    EPOCHS,
    Duration,
    check_duration,
    normalize_duration,
    parse_duration,
    resolve_duration,
    training_interval,
)
from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.config.files import load_yaml_mapping
from ftrecipes.config.peak_rule import LR_RULES
from ftrecipes.config.scaling import SCALING_RULES, LRScaling, recipe_lr_scaling
from ftrecipes.config.schedule_builders import WARMUP_TYPES
from ftrecipes.config.schedule_types import (
    SCHEDULE_TYPES,
    build_schedule,
    check_schedule_kwargs,
    check_schedule_type,
    is_metric_driven,
)
from ftrecipes.config.task_names import TASK_NAMES
from ftrecipes.config.timeline import Timeline

TASKS = TASK_NAMES  # checked against the task registry's modules when it loads
OPTIMIZERS = ("adamw", "sgd")  # built by ftrecipes.training.optim.create_optimizer
PEFT_METHODS = ("none", "lora", "qlora")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
EVAL_STRATEGIES = ("no", "steps", "epoch")


def _help(text: str, **kwargs) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class Recipe:
    """A fine-tuning recipe. ``learning_rate`` is the **peak**; schedules return multipliers of it."""

    name: str = _help("Recipe name (the YAML file's stem for shipped recipes).", default="custom")
    description: str = _help("One line: what the recipe is for.", default="")
    task: str = _help(f"One of {TASKS}.", default="sequence-classification")

    # --- optimizer -----------------------------------------------------------------------------
    optimizer: str = _help("'adamw' (no decay on biases and norm weights) or 'sgd' (momentum).", default="adamw")
    learning_rate: float = _help("Peak LR. Fine-tuning encoders: 2e-5..5e-5 (BERT's fine-tuning grid).", default=3e-5)
    weight_decay: float = _help("Decoupled weight decay (AdamW) or L2 (SGD) on weight matrices.", default=0.01)
    adam_beta1: float = _help("AdamW beta1.", default=0.9)
    adam_beta2: float = _help("AdamW beta2.", default=0.999)
    adam_epsilon: float = _help("AdamW epsilon.", default=1e-8)
    momentum: float = _help("SGD momentum.", default=0.9)
    nesterov: bool = _help("SGD Nesterov momentum.", default=False)
    max_grad_norm: float = _help("Clip the global gradient norm to this value (0 disables).", default=1.0)
    lr_prior: list[float] = _help(
        "[low, high]: peak LRs known to work for this recipe at reference_global_batch_size; "
        "bounds `--learning_rate auto` and `ftrecipes lr-find` (default: AdamW fine-tuning, BERT's grid).",
        default_factory=lambda: [2e-5, 5e-5],
    )
    # The peak-LR rule (ftrecipes.config.peak_rule): the peak derived from the model's width before training.
    lr_rule: str = _help(
        "'width': the peak follows the model's width, peak = lr_rule_reference_peak x (lr_rule_reference_width / "
        "width) ** lr_rule_width_exponent x (lr_rule_reference_depth / depth) ** lr_rule_depth_exponent (x "
        "lr_rule_lora_multiplier x lr_rule_lora_reference_alpha / lora_alpha under LoRA), then the batch rule; "
        "learning_rate is the fallback for a model whose config names no width. 'none': learning_rate as stated. "
        "A learning_rate given on top of the recipe (flag, code) turns the rule off.",
        default="none",
    )
    lr_rule_reference_peak: float = _help(
        "Width rule: the full fine-tuning peak for a model of width lr_rule_reference_width, "
        "at reference_global_batch_size.",
        default=5e-5,
    )
    lr_rule_reference_width: int = _help(
        "Width rule: the width (hidden_size / d_model / n_embd) that lr_rule_reference_peak is for.", default=768
    )
    lr_rule_width_exponent: float = _help(
        "Width rule: the peak goes as width ** -exponent (1: Adam's LR ~ 1/width, muP; 0: no width dependence).",
        default=1.0,
    )
    lr_rule_reference_depth: int = _help(
        "Width rule: the depth (num_hidden_layers / n_layer / num_layers) that lr_rule_reference_peak is for.",
        default=12,
    )
    lr_rule_depth_exponent: float = _help(
        "Width rule: the peak goes as depth ** -exponent too (0, shipped: no depth dependence; 0.5 with width "
        "exponent 1: the peak ~ 1/sqrt(non-embedding parameters), since those grow as depth x width ** 2).",
        default=0.0,
    )
    lr_rule_lora_multiplier: float = _help(
        "Width rule: LoRA and QLoRA train at this x the full fine-tuning peak when lora_alpha is "
        "lr_rule_lora_reference_alpha.",
        default=10.0,
    )
    lr_rule_lora_reference_alpha: float = _help(
        "Width rule: the lora_alpha that lr_rule_lora_multiplier is for; the LoRA peak goes as 1 / lora_alpha (the "
        "adapter's update (alpha / r) B A grows as alpha x LR from B = 0): alpha 16 trains at twice alpha 32's peak.",
        default=32.0,
    )
    lr_rule_prior_factor: float = _help(
        "Width rule: lr_prior becomes [peak / factor, peak x factor] around the rule's peak.", default=2.5
    )

    # --- schedule --------------------------------------------------------------------------------
    lr_scheduler_type: str = _help(f"One of {sorted(SCHEDULE_TYPES)}.", default="cosine")
    warmup: Union[int, float, str] = _help(
        "Warmup length: optimizer steps as an integer (500), a fraction below 1 (0.05 / '5%') or epochs ('1ep').",
        default="5%",
    )
    warmup_type: str = _help("'linear', 'exponential', 'cosine' or '1-sqrt'.", default="linear")
    warmup_start: float = _help("LR at the start of warmup as a fraction of the peak.", default=0.0)
    warmup_offset: int = _help(
        "1: step 0 trains at peak/W (no step is wasted at LR 0); 0: at warmup_start (Hugging Face). Hugging Face's own "
        "schedule names always count as Hugging Face does.",
        default=1,
    )
    min_lr_rate: float = _help("Floor of the decay as a fraction of the peak.", default=0.1)
    min_lr: typing.Optional[float] = _help("Absolute floor; overrides min_lr_rate when set.", default=None)
    lr_scheduler_kwargs: dict = _help("Options of the schedule type (see `ftrecipes show`).", default_factory=dict)

    # --- duration and batch ----------------------------------------------------------------------
    num_train_epochs: float = _help("Epochs (ignored when max_steps > 0).", default=3.0)
    max_steps: int = _help("Total optimizer steps; overrides num_train_epochs when > 0.", default=-1)
    per_device_train_batch_size: int = _help("Micro-batch per process.", default=16)
    per_device_eval_batch_size: int = _help("Evaluation batch per process.", default=64)
    gradient_accumulation_steps: int = _help("Micro-batches per optimizer step.", default=1)
    reference_global_batch_size: int = _help("Global batch the learning_rate was tuned for.", default=16)
    lr_scaling: str = _help("How the peak follows the global batch: 'none', 'linear' (SGD) or 'sqrt'.", default="none")
    precision: str = _help(
        "'auto' (bf16 where supported, else fp16 on CUDA, else fp32), 'bf16', 'fp16' or 'fp32'.", default="auto"
    )

    # --- evaluation ------------------------------------------------------------------------------
    eval_strategy: str = _help("When to evaluate: 'no', 'steps' or 'epoch'.", default="epoch")
    eval_steps: typing.Optional[Union[int, float, str]] = _help(
        "Evaluation interval when eval_strategy='steps': optimizer "
        "steps (500) or a fraction of training (0.1 / '10%').",
        default=None,
    )
    metric_for_best_model: str = _help(
        "Validation metric that picks the best checkpoint and drives plateau/early stop.", default="accuracy"
    )
    greater_is_better: bool = _help("Whether a larger metric is better.", default=True)
    load_best_model_at_end: bool = _help("Reload the best checkpoint at the end.", default=False)
    early_stopping_patience: int = _help("Stop after this many evaluations without improvement (0: off).", default=0)

    # --- job defaults (what finetune.py uses when no flag says otherwise) ------------------------
    model_name_or_path: str = _help("Model: a Hub id, a local folder, or 'minilm' (bundled).", default="minilm")
    dataset_name: typing.Optional[str] = _help(
        "Data: a Hub id or a bundled alias (bbc_news, tweet_sentiment, wnut_ner).", default="bbc_news"
    )
    max_seq_length: int = _help("Truncate inputs to this many tokens.", default=128)
    seed: int = _help("Random seed.", default=42)

    # --- adaptation: LoRA / QLoRA (ftrecipes.models.lora) and layer-wise LRs (ftrecipes.training.layerwise) ----
    peft: str = _help(
        f"Parameter-efficient fine-tuning: one of {PEFT_METHODS} ('qlora': 4-bit NF4 base, needs CUDA).", default="none"
    )
    lora_r: int = _help("LoRA rank r of the update B @ A.", default=8)
    lora_alpha: int = _help("LoRA scaling: the update is multiplied by lora_alpha / lora_r.", default=16)
    lora_dropout: float = _help("Dropout on the LoRA branch's input.", default=0.0)
    lora_target_modules: str = _help(
        "'auto' (the attention projections of the architecture), 'all-linear', or comma-separated module names, e.g. "
        "'query,value'.",
        default="auto",
    )
    layerwise_lr_decay: float = _help(
        "LLRD factor xi in (0, 1]: layer l of L at peak * xi^(L-l), embeddings at peak * xi^(L+1); 1.0 is off.",
        default=1.0,
    )
    head_lr_multiplier: float = _help("The task head (and pooler / final norm) trains at peak * this.", default=1.0)
    embedding_lr_multiplier: float = _help("The embeddings train at their (decayed) LR * this.", default=1.0)
    loraplus_lr_ratio: typing.Optional[float] = _help(
        "LoRA+ (Hayou et al. 2024): the LoRA B matrices train at their LR x this ratio "
        "(the paper suggests ~16); unset: B trains at the LR of A.",
        default=None,
    )
    lr_groups: list[dict] = _help(
        "LR multipliers by parameter name, e.g. [{pattern: classifier, multiplier: 10}]: a trainable parameter "
        "whose name the regex pattern matches (re.search) trains at its LR x multiplier; the first matching "
        "entry counts; composes with layer-wise LRs and LoRA+.",
        default_factory=list,
    )

    def __post_init__(self):
        _coerce_fields(self)
        self.validate()

    # ------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every value that can be checked without the run's sizes."""
        _one_of("task", self.task, TASKS)
        _one_of("optimizer", self.optimizer, OPTIMIZERS)
        check_schedule_type(self.lr_scheduler_type)
        check_schedule_kwargs(self.lr_scheduler_type, self.lr_scheduler_kwargs)
        _one_of("warmup_type", self.warmup_type, tuple(WARMUP_TYPES))
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("lr_scaling", self.lr_scaling, SCALING_RULES)
        _one_of("eval_strategy", self.eval_strategy, EVAL_STRATEGIES)
        _positive("learning_rate", self.learning_rate, "e.g. 3e-5 for fine-tuning, 0.1 for SGD on a CNN")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", self.weight_decay, "cannot be negative", "use 0.0 to 0.1")
        if self.max_grad_norm < 0:
            raise ConfigError(
                "max_grad_norm", self.max_grad_norm, "cannot be negative", "use 1.0, or 0 to disable clipping"
            )
        for name in ("adam_beta1", "adam_beta2", "momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "must lie in [0, 1)", "use e.g. 0.9")
        _positive("adam_epsilon", self.adam_epsilon, "use 1e-8")
        if (
            len(self.lr_prior) != 2
            or not all(0 < v < math.inf for v in self.lr_prior)
            or self.lr_prior[0] > self.lr_prior[1]
        ):
            raise ConfigError(
                "lr_prior", self.lr_prior, "must be [low, high] with 0 < low <= high", "write e.g. [2.0e-5, 5.0e-5]"
            )
        if not 0 <= self.warmup_start < 1:
            raise ConfigError(
                "warmup_start", self.warmup_start, "must lie in [0, 1)", "use 0 (start from 0) or e.g. 0.01"
            )
        if self.warmup_offset not in (0, 1):
            raise ConfigError(
                "warmup_offset", self.warmup_offset, "must be 0 or 1", "use 1 (step 0 at peak/W) or 0 (Hugging Face)"
            )
        check_duration(self.warmup, "warmup")
        if not 0 <= self.min_lr_rate <= 1:
            raise ConfigError(
                "min_lr_rate",
                self.min_lr_rate,
                "is a fraction of the peak and must lie in [0, 1]",
                "use e.g. 0.1 (10% of peak) or 0",
            )
        if self.min_lr is not None and not 0 <= self.min_lr <= self.learning_rate:
            raise ConfigError(
                "min_lr",
                self.min_lr,
                f"the floor must lie in [0, learning_rate={self.learning_rate:g}]",
                "lower min_lr or use min_lr_rate",
            )
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ConfigError(
                "num_train_epochs",
                self.num_train_epochs,
                "the run has no length",
                "set num_train_epochs > 0 or max_steps > 0",
            )
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "reference_global_batch_size",
            "max_seq_length",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "must be a positive integer", f"set {name} >= 1")
        if self.early_stopping_patience < 0:
            raise ConfigError(
                "early_stopping_patience", self.early_stopping_patience, "cannot be negative", "use 0 (off) or e.g. 3"
            )
        if self.early_stopping_patience and self.eval_strategy == "no":
            raise ConfigError(
                "early_stopping_patience",
                self.early_stopping_patience,
                "needs evaluation",
                "set eval_strategy to 'epoch' or 'steps'",
            )
        if is_metric_driven(self.lr_scheduler_type) and self.eval_strategy == "no":
            raise ConfigError(
                "lr_scheduler_type",
                self.lr_scheduler_type,
                "a metric-driven schedule needs validation metrics",
                "set eval_strategy to 'epoch' or 'steps'",
            )
        if self.eval_strategy == "steps" and self.eval_steps is None:
            raise ConfigError(
                "eval_steps",
                self.eval_steps,
                "eval_strategy='steps' needs an interval",
                "set eval_steps, e.g. 100 or '10%'",
            )
        if self.eval_steps is not None:
            training_interval(self.eval_steps, "eval_steps")
        _check_adaptation(self)
        _check_lr_rule(self)

    # ------------------------------------------------------------------------------------------
    @property
    def floor(self) -> float:
        """The decay floor as a fraction of the peak."""
        return self.min_lr / self.learning_rate if self.min_lr is not None else self.min_lr_rate

    def durations_in_epochs(self) -> dict[str, Any]:
        """``{field: value}`` of the recipe's durations given in epochs (warmup, schedule kwargs, and
        ``eval_steps`` under ``eval_strategy: steps``): what a run without a sized training set cannot resolve."""
        durations = {
            "warmup": self.warmup,
            **{f"lr_scheduler_kwargs.{k}": v for k, v in self.lr_scheduler_kwargs.items()},
        }
        if self.eval_strategy == "steps":
            durations["eval_steps"] = self.eval_steps
        found = {}
        for name, value in durations.items():
            if not isinstance(value, str):
                continue
            try:
                if parse_duration(value, name).unit == EPOCHS:
                    found[name] = value
            except ConfigError:  # a schedule kwarg that is not a duration
                continue
        return found

    def plan(self, timeline: Timeline) -> "RecipePlan":
        """Resolve the recipe against the run's sizes: steps, warmup, the scaled peak and the schedule."""
        total = timeline.total_steps
        warmup = timeline.resolve(self.warmup, "warmup")
        if self.lr_scheduler_type == "one_cycle" and warmup == 0:
            warmup = math.ceil(0.3 * total)  # one-cycle needs a rise; 30% is the usual default
        if warmup >= total:
            raise ConfigError(
                "warmup",
                self.warmup,
                f"resolves to {warmup} optimizer steps but training has only {total}",
                _warmup_fix(self, timeline, warmup),
            )
        scaling = recipe_lr_scaling(self, timeline.global_batch_size)
        sizes = Sizes(
            total_steps=total,
            warmup_steps=warmup,
            steps_per_epoch=timeline.steps_per_epoch,
            warmup_type=self.warmup_type,
            warmup_start=self.warmup_start,
            warmup_offset=self.warmup_offset,
            floor=self.floor,
            greater_is_better=self.greater_is_better,
            peak_lr=scaling.learning_rate_after,
        )
        schedule = build_schedule(self.lr_scheduler_type, sizes, self.lr_scheduler_kwargs)
        return RecipePlan(
            recipe=self,
            timeline=timeline,
            schedule=schedule,
            learning_rate=scaling.learning_rate_after,
            scaling=scaling,
        )

    def build_schedule(self, num_training_steps: int, steps_per_epoch: int | None = None) -> BuiltSchedule:
        """The schedule for a run of ``num_training_steps`` optimizer steps (what Trainer passes to
        ``create_scheduler``); ``steps_per_epoch`` is needed only for durations given in epochs.

        Shorthand for ``plan(Timeline(...)).schedule`` with a one-process timeline that has exactly
        these counts; a run that has its ``TrainingArguments`` plans with
        :meth:`Timeline.from_training_args` instead.
        """
        timeline = Timeline(
            num_examples=None if steps_per_epoch is None else steps_per_epoch * self.per_device_train_batch_size,
            per_device_train_batch_size=self.per_device_train_batch_size,
            max_steps=num_training_steps,
        )
        return self.plan(timeline).schedule

    # ------------------------------------------------------------------------------------------
    def replace(self, **overrides) -> "Recipe":
        """A copy with ``overrides`` applied (strict: unknown keys and wrong types are errors).

        A ``learning_rate`` among the overrides turns the peak-LR rule off (``lr_rule: none``) unless
        ``lr_rule`` is among them too: a peak given on top of a recipe is used as given.
        """
        if "learning_rate" in overrides and "lr_rule" not in overrides:
            overrides = {**overrides, "lr_rule": "none"}
        return Recipe.from_dict({**self.to_dict(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> "Recipe":
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(
                    key,
                    data[key],
                    f"is not a recipe field (in {source})",
                    did_you_mean(key, known) or "see `ftrecipes show cls` for the fields",
                )
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "Recipe":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                "--recipe",
                str(path),
                "file does not exist",
                "give a recipe name (see `ftrecipes list`) or an existing YAML path",
            )
        data = load_yaml_mapping(path, "--recipe")
        data.setdefault("name", path.stem)
        return cls.from_dict(data, source=str(path))

    def __str__(self) -> str:
        lines = [f"Recipe {self.name!r}: {self.description}".rstrip(": ")]
        width = max(len(f.name) for f in dataclasses.fields(self))
        for f in dataclasses.fields(self):
            if f.name in ("name", "description"):
                continue
            lines.append(f"  {f.name:<{width}}  {getattr(self, f.name)!r}")
        return "\n".join(lines)


@dataclass
class RecipePlan:
    """A recipe resolved for one run's sizes."""

    recipe: Recipe
    timeline: Timeline
    schedule: BuiltSchedule
    learning_rate: float  # the peak after batch-size scaling
    scaling: LRScaling  # how the peak was scaled to this run's global batch (the before/after pair)

    @property
    def total_steps(self) -> int:
        return self.schedule.total_steps

    @property
    def warmup_steps(self) -> int:
        return self.schedule.warmup_steps

    def lr_at(self, step: int) -> float:
        return self.learning_rate * self.schedule.lr(step)


# ------------------------------------------------------------------------------------------------
# Strict typing of fields (YAML and the command line both deliver strings for "3e-5", "true", ...)


def _one_of(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(name, value, f"is not one of {list(choices)}", did_you_mean(str(value), choices))


def _positive(name: str, value: float, fix: str) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ConfigError(name, value, "must be a positive finite number", fix)


_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if set(non_none) == {int, float, str}:  # a duration
            return _coerce_duration(name, value)
        return _coerce(name, value, non_none[0])
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(name, value, "must be true or false", "write true or false")
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(name, value, "must be an integer", "write a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(name, value, "must be an integer", "write a whole number")
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(name, value, "must be a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(name, value, "must be a number", "write e.g. 3e-5")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(name, value, "must be a string", "quote it")
    if origin is list and args and args[0] is dict:  # lr_groups: YAML/JSON text on the command line, a list in YAML
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else []
            except yaml.YAMLError:
                raise ConfigError(
                    name, value, "is not a YAML list", "write e.g. '[{pattern: classifier, multiplier: 10}]'"
                ) from None
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                name,
                value,
                "must be a list of {pattern, multiplier} entries",
                "write e.g. '[{pattern: classifier, multiplier: 10}]'",
            )
        return [_lr_group(name, entry) for entry in value]
    if origin is list:  # a list of numbers, e.g. lr_prior: "2e-5,5e-5" on the command line, [2e-5, 5e-5] in YAML
        if isinstance(value, str):
            value = [v for v in value.strip().strip("[]").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                name,
                value,
                "must be a list of numbers",
                "write e.g. [2.0e-5, 5.0e-5] (or 2e-5,5e-5 on the command line)",
            )
        return [_coerce(name, v, args[0] if args else float) for v in value]
    if hint is dict:
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip() else {}
            except yaml.YAMLError:
                pass
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(name, value, "must be a mapping", "write e.g. '{\"gamma\": 0.1}'")
    return value


def _coerce_duration(name: str, value: Any) -> Duration:
    return normalize_duration(value, name)


def _coerce_fields(recipe: Recipe) -> None:
    hints = typing.get_type_hints(Recipe)
    for f in dataclasses.fields(recipe):
        setattr(recipe, f.name, _coerce(f.name, getattr(recipe, f.name), hints[f.name]))
    # Schedule options may come from YAML as strings too ("1e-4"); numbers stay numbers.
    recipe.lr_scheduler_kwargs = {k: _yaml_scalar(v) for k, v in recipe.lr_scheduler_kwargs.items()}


def _yaml_scalar(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def _check_adaptation(recipe: Recipe) -> None:
    """The LoRA / layer-wise LR fields (no torch or peft import: the config layer stays light)."""
    _one_of("peft", recipe.peft, PEFT_METHODS)
    if recipe.lora_r < 1:
        raise ConfigError(
            "lora_r", recipe.lora_r, "the LoRA rank must be a positive integer", "use e.g. 8 (LoRA paper) or 64 (QLoRA)"
        )
    _positive("lora_alpha", recipe.lora_alpha, "use e.g. 16")
    if not 0 <= recipe.lora_dropout < 1:
        raise ConfigError("lora_dropout", recipe.lora_dropout, "must lie in [0, 1)", "use 0.0 to 0.1")
    if not recipe.lora_target_modules.strip() or any(not m.strip() for m in recipe.lora_target_modules.split(",")):
        raise ConfigError(
            "lora_target_modules",
            recipe.lora_target_modules,
            "names no module",
            "use 'auto', 'all-linear' or e.g. 'query,value'",
        )
    if not 0 < recipe.layerwise_lr_decay <= 1:
        raise ConfigError(
            "layerwise_lr_decay",
            recipe.layerwise_lr_decay,
            "must lie in (0, 1]",
            "use e.g. 0.95 (Sun et al. 2019), or 1.0 for no decay",
        )
    _positive("head_lr_multiplier", recipe.head_lr_multiplier, "use 1.0 (the peak) or e.g. 10 for a faster head")
    _positive("embedding_lr_multiplier", recipe.embedding_lr_multiplier, "use 1.0, or e.g. 0.1 for slower embeddings")


def _lr_group(name: str, entry: Any) -> dict:
    """One ``lr_groups`` entry as ``{"pattern": str, "multiplier": float}``, checked."""
    example = "write e.g. {pattern: classifier, multiplier: 10}"
    if not isinstance(entry, dict) or set(entry) != {"pattern", "multiplier"}:
        raise ConfigError(name, entry, "each entry needs exactly the keys pattern and multiplier", example)
    pattern = entry["pattern"]
    if not isinstance(pattern, str) or not pattern.strip():
        raise ConfigError(
            name, entry, "pattern must be a non-empty string (a regex searched in parameter names)", example
        )
    try:
        re.compile(pattern)
    except re.error as err:
        raise ConfigError(
            name,
            pattern,
            f"is not a valid regular expression ({err})",
            "escape special characters, e.g. 'layer\\.0\\.'",
        ) from None
    multiplier = entry["multiplier"]
    if isinstance(multiplier, str):
        try:
            multiplier = float(multiplier)
        except ValueError:
            pass
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or not 0 < multiplier < math.inf:
        raise ConfigError(
            name,
            entry,
            f"the multiplier of pattern {pattern!r} must be a positive finite number",
            "use e.g. 10 for a faster head, 0.1 for a slower module",
        )
    return {"pattern": pattern, "multiplier": float(multiplier)}


def _check_lr_rule(recipe: Recipe) -> None:
    """The peak-LR rule's fields (ftrecipes.config.peak_rule)."""
    if recipe.lr_rule not in LR_RULES:
        raise ConfigError(
            "lr_rule",
            recipe.lr_rule,
            f"is not one of {list(LR_RULES)}",
            did_you_mean(recipe.lr_rule, LR_RULES)
            or "use 'width' (the peak follows the model's width) or 'none' (learning_rate as stated)",
        )
    _positive("lr_rule_reference_peak", recipe.lr_rule_reference_peak, "use e.g. 5e-5 (a BERT-base fine-tuning peak)")
    # The width and the depth term have the same shape: a positive reference and an exponent in [0, 3].
    for reference, unit, example, exponent, suggestion in (
        ("lr_rule_reference_width", "a hidden size", 768, "lr_rule_width_exponent", "1.0 (Adam's LR ~ 1/width)"),
        ("lr_rule_reference_depth", "a number of layers", 12, "lr_rule_depth_exponent", "0 (no depth term) or 0.5"),
    ):
        if getattr(recipe, reference) < 1:
            raise ConfigError(
                reference, getattr(recipe, reference), f"must be a positive integer ({unit})", f"use e.g. {example}"
            )
        if not 0 <= getattr(recipe, exponent) <= 3:
            raise ConfigError(exponent, getattr(recipe, exponent), "must lie in [0, 3]", f"use {suggestion}")
    _positive(
        "lr_rule_lora_multiplier",
        recipe.lr_rule_lora_multiplier,
        "use e.g. 10 (LoRA at ~10x the full fine-tuning peak)",
    )
    _positive(
        "lr_rule_lora_reference_alpha",
        recipe.lr_rule_lora_reference_alpha,
        "use e.g. 32 (the lora_alpha the multiplier was measured at)",
    )
    if not 1 <= recipe.lr_rule_prior_factor < math.inf:
        raise ConfigError(
            "lr_rule_prior_factor",
            recipe.lr_rule_prior_factor,
            "must be a finite number >= 1",
            "use e.g. 2.5 (lr_prior from peak / 2.5 to peak x 2.5)",
        )
    if recipe.lr_rule != "none" and recipe.optimizer != "adamw":
        raise ConfigError(
            "lr_rule",
            recipe.lr_rule,
            f"the width rule is for AdamW (Adam's LR ~ 1/width) but optimizer is {recipe.optimizer!r}",
            "set lr_rule none and give the peak as learning_rate (e.g. 0.1 for SGD on a CNN)",
        )
    if recipe.loraplus_lr_ratio is not None:
        _positive(
            "loraplus_lr_ratio",
            recipe.loraplus_lr_ratio,
            "use e.g. 16 (Hayou et al. 2024), or leave it unset for plain LoRA",
        )
        if recipe.peft == "none":
            raise ConfigError(
                "loraplus_lr_ratio",
                recipe.loraplus_lr_ratio,
                "scales LoRA's B matrices but peft is 'none'",
                "set peft lora, or leave loraplus_lr_ratio unset",
            )


def _warmup_fix(recipe: "Recipe", timeline: Timeline, warmup: int) -> str:
    """The fix for a warmup that does not fit: a warmup that does (checked by resolving it, so the
    suggestion is never the value already given) and the shortest training the given warmup fits in."""
    total = timeline.total_steps
    one_cycle = recipe.lr_scheduler_type == "one_cycle"  # warmup 0 there means the default 30% rise

    def fits(value: Duration, steps: int) -> bool:
        resolved = resolve_duration(value, total_steps=steps, steps_per_epoch=timeline.steps_per_epoch)
        if one_cycle and resolved == 0:
            resolved = math.ceil(0.3 * steps)
        return resolved < steps

    candidates: list[Duration] = ["5%", "10%", total - 1] + ([] if one_cycle else [0])
    shorter = next(
        (c for c in candidates if c != recipe.warmup and (not isinstance(c, int) or c >= 0) and fits(c, total)), None
    )
    # Steps, epochs: the warmup stays `warmup` steps, so warmup + 1 is the shortest run it fits; a
    # fraction grows with the run (ceil), so search upwards (bounded: 100% never fits).
    longer = (
        warmup + 1
        if fits(recipe.warmup, warmup + 1)
        else next((t for t in range(total + 1, total + 2001) if fits(recipe.warmup, t)), None)
    )
    parts = []
    if shorter is not None:
        parts.append(f"set warmup {shorter!r}" + (" (no warmup)" if shorter == 0 else f" (fits the {total}-step run)"))
    if longer is not None:
        parts.append(f"train at least {longer} optimizer steps (e.g. max_steps {longer}, or more num_train_epochs)")
    return " or ".join(parts) or "train longer (num_train_epochs / max_steps)"
