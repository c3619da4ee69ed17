"""Trainer integration: a recipe inside ``transformers.Trainer``, with every value accounted for.

Adopting a recipe in an existing Hugging Face script (``HfArgumentParser`` + ``TrainingArguments``)::

    training_args = apply_recipe(get_recipe("cls"), training_args)     # after parse_args_into_dataclasses()
    trainer = RecipeTrainer(recipe=get_recipe("cls"), model=model, args=training_args, ...)

:func:`apply_recipe` merges the recipe into the args the script parsed with the precedence of
``scripts/finetune.py``: **a value the user gave wins, then the recipe, then TrainingArguments'
defaults**. "Gave" means a flag present on the command line (found in ``argv``, see
:mod:`ftrecipes.training.flags`) or a value that differs from the TrainingArguments default (set in code or in a
JSON config). The recipe owns only what decides *how* the model is optimised (:data:`OWNED`: peak LR
scaled for the global batch, weight decay, betas, epsilon, clipping, batch, duration, precision and the
LR schedule); everything else (``do_*``, logging, saving, seed, resume, ``report_to``, ``output_dir``,
evaluation...) stays as the script set it. One line per owned value says where it came from.

:class:`RecipeTrainer` builds the recipe's optimizer (SGD momentum or AdamW with the args' betas and
no decay on biases/norms) and :class:`~ftrecipes.training.lr_scheduler.ScheduleLR` lazily, in Trainer's own
``create_optimizer`` / ``create_scheduler`` hooks: nothing needs the training set before training
starts, so eval-only and predict-only runs work. Sizes come from the ``TrainingArguments`` and the
optimizer-step count the Trainer computes; the shape (type, warmup, floor, options) from the recipe.
Once the schedule exists the args describe it (``lr_scheduler_type``, ``warmup_steps``,
``lr_scheduler_kwargs``, ``optim``), so ``training_args.bin`` and the model card state the schedule
that ran, and every saved model or checkpoint gets ``recipe.yaml`` and ``plan.json`` beside it.

In every path the scheduler advances once per **optimizer** step: the Trainer calls
``lr_scheduler.step()`` only on gradient-synchronising steps and never wraps it with
``accelerator.prepare``; a prepared scheduler in a custom loop is stepped ``num_processes`` times per
update (unless ``split_batches``), which :func:`accelerate_scheduler` divides back out.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import (
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from ftrecipes.config.durations import training_interval
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.outputs import PLAN_FILE, RECIPE_FILE
from ftrecipes.config.recipe import Recipe
from ftrecipes.config.scaling import recipe_lr_scaling
from ftrecipes.config.schedule_types import (
    SCHEDULE_TYPES,
    BuiltSchedule,
    is_metric_driven,
)
from ftrecipes.config.timeline import Timeline, args_global_batch_size
from ftrecipes.training.flags import given_training_arguments
from ftrecipes.training.hf_schedule import (
    stock_trainer_name,
    transformers_spelling,
    warmup_as_hf,
)
from ftrecipes.training.lr_scheduler import ScheduleLR
from ftrecipes.training.optim import check_every_parameter_optimised, create_optimizer
from ftrecipes.training.precision import training_args_precision

logger = logging.getLogger(__name__)

# TrainingArguments fields whose value the recipe supplies unless the user gave one.
OWNED = (
    "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
    "num_train_epochs", "max_steps", "bf16", "fp16",
)
# TrainingArguments' schedule flags: the recipe's schedule replaces Trainer's, so a flag given for one of
# these becomes the recipe override named here, or (when it cannot) one warning naming that field.
SCHEDULE_FLAGS = {"lr_scheduler_type": "lr_scheduler_type", "warmup_steps": "warmup", "warmup_ratio": "warmup", "lr_scheduler_kwargs": "lr_scheduler_kwargs"}
# Evaluation fields a metric-driven recipe (reduce-on-plateau, early stopping) cannot run without.
EVAL_OWNED = ("eval_strategy", "eval_steps", "metric_for_best_model", "greater_is_better")
_RECORD = "_ftrecipes_record"  # attribute of applied TrainingArguments: plain data, pickles anywhere


# ------------------------------------------------------------------------------------------------
# Merging a recipe into TrainingArguments


def _class_default(args: TrainingArguments, name: str) -> Any:
    """``name``'s default in the arguments class the script uses (``SFTConfig``, ``Seq2SeqTrainingArguments``,
    ``SentenceTransformerTrainingArguments``...): a subclass's own default is not a user's choice."""
    f = type(args).__dataclass_fields__.get(name)
    if f is None:
        return dataclasses.MISSING
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _user_gave(args: TrainingArguments, name: str, flags: dict) -> str | None:
    """``"flag"`` when ``--name`` is in the command line, ``"script"`` when the value differs from the
    default of ``args``' own class (set in code or a config file), else ``None`` (the recipe may fill it)."""
    if name in flags:
        return "flag"
    if not hasattr(args, name):
        return None
    value, default = getattr(args, name), _class_default(args, name)
    if default is dataclasses.MISSING or (default is None and name in ("bf16", "fp16")):
        return None  # bf16=None: the class resolves precision itself (TRL's configs), so the value is no choice
    value = getattr(value, "value", value)  # enums (lr_scheduler_type, eval_strategy) compare by value
    default = getattr(default, "value", default)
    if name == "lr_scheduler_kwargs" and not value:
        return None
    return "script" if value != default else None


def _replaced_default(args: TrainingArguments, name: str, recipe_value: Any) -> str:
    """The line's note on the default a recipe value replaces, e.g. ``replaces SFTConfig's default 2e-05``."""
    default = _class_default(args, name)
    if default is dataclasses.MISSING or default == recipe_value:
        return ""
    return f"replaces {type(args).__name__}'s default {getattr(default, 'value', default)!r}"


def is_applied(args: TrainingArguments) -> bool:
    """Whether ``args`` came out of :func:`apply_recipe` (or :func:`recipe_training_args`)."""
    return getattr(args, _RECORD, None) is not None


def recipe_record(args: TrainingArguments) -> dict:
    """What :func:`apply_recipe` decided for ``args``: ``{"recipe", "sources", "recipe_overrides", "lr_scaling"}``
    (``sources[field] = {"value", "source", "detail"}``, source one of recipe / flag / script / scaled)."""
    record = getattr(args, _RECORD, None)
    if record is None:
        raise ValueError("these TrainingArguments did not come from apply_recipe()")
    return record


def apply_recipe(
    recipe: Recipe, args: TrainingArguments, argv: Sequence[str] | None = None, *,
    explicit: Sequence[str] | None = None, num_processes: int | None = None, log: bool = True,
) -> TrainingArguments:
    """``args`` with the recipe's values for every owned field the user did not give.

    ``argv`` is the script's command line (default ``sys.argv``; the program name and the script's own
    flags are ignored); ``explicit`` names fields to treat as given instead (what
    :func:`recipe_training_args` passes). Returns a new ``TrainingArguments`` (validated by
    TrainingArguments itself); ``args`` is not modified. Precedence per owned field: user > recipe >
    TrainingArguments default. ``learning_rate`` from the recipe is the peak rescaled for the global
    batch ``per_device_train_batch_size x processes x gradient_accumulation_steps`` by the recipe's
    ``lr_scaling`` rule; a user-given ``learning_rate`` is used as-is.
    """
    if is_applied(args):
        return args
    if explicit is None:
        flags = given_training_arguments(sys.argv if argv is None else argv, type(args))
        gave = lambda name: _user_gave(args, name, flags)  # noqa: E731
    else:
        chosen = set(explicit)
        gave = lambda name: "argument" if name in chosen else None  # noqa: E731
    sources: dict[str, dict] = {}
    changes: dict[str, Any] = {}

    def take(name: str, recipe_value: Any, detail: str = "") -> None:
        source = gave(name)
        if source:
            sources[name] = {"value": getattr(args, name), "source": source, "detail": detail}
        else:
            changes[name] = recipe_value
            note = "; ".join(part for part in (detail, _replaced_default(args, name, recipe_value)) if part)
            sources[name] = {"value": recipe_value, "source": "recipe", "detail": note}

    for name in ("weight_decay", "max_grad_norm", "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        take(name, getattr(recipe, name))
    if recipe.optimizer == "adamw":
        for name in ("adam_beta1", "adam_beta2", "adam_epsilon"):
            take(name, getattr(recipe, name))
    # Duration: the user's epochs beat the recipe's max_steps (max_steps > 0 would override them).
    epochs_given, steps_given = gave("num_train_epochs"), gave("max_steps")
    take("num_train_epochs", recipe.num_train_epochs)
    if epochs_given and not steps_given and recipe.max_steps > 0:
        changes["max_steps"] = -1
        sources["max_steps"] = {"value": -1, "source": epochs_given, "detail": f"the recipe's max_steps {recipe.max_steps} dropped for the given num_train_epochs"}
    else:
        take("max_steps", recipe.max_steps)
    if gave("bf16") or gave("fp16"):
        for name in ("bf16", "fp16"):
            sources[name] = {"value": getattr(args, name), "source": gave(name) or gave("bf16") or gave("fp16"), "detail": ""}
    else:
        # bf16/fp16 (and use_cpu for bf16 autocast on a CPU) from the recipe's policy, checked for this machine.
        wiring = training_args_precision(recipe.precision, {"use_cpu": args.use_cpu} if args.use_cpu else {})
        precision = "bf16" if wiring["bf16"] else "fp16" if wiring["fp16"] else "fp32"
        changes.update(wiring)
        for name in ("bf16", "fp16"):
            sources[name] = {"value": wiring[name], "source": "recipe", "detail": f"precision {recipe.precision!r} -> {precision}"}

    # The schedule: flags for Trainer's scheduler become overrides of the recipe's, or a warning.
    overrides: dict[str, Any] = {}
    from_flag: dict[str, str] = {}  # recipe field -> the TrainingArguments flag that set it
    ignored: list[str] = []
    for flag, field_name in SCHEDULE_FLAGS.items():
        if not hasattr(args, flag) or not gave(flag):
            continue
        value = getattr(args, flag)
        value = getattr(value, "value", value)
        if flag == "warmup_ratio" and value is None:
            value = args.warmup_steps  # a subclass keeping the transformers-4 field moved the ratio there
        if flag == "lr_scheduler_type":
            if value not in SCHEDULE_TYPES:
                ignored.append(
                    f"--{flag} {value} is not a recipe schedule type, so the recipe's {recipe.lr_scheduler_type!r} runs; "
                    f"to change it set the recipe field `lr_scheduler_type` (one of {sorted(SCHEDULE_TYPES)}), e.g. "
                    f"get_recipe({recipe.name!r}, lr_scheduler_type=...)"
                )
                continue
            if value != recipe.lr_scheduler_type:
                overrides.setdefault("lr_scheduler_kwargs", {})  # the recipe's options belong to its own type
        elif flag == "lr_scheduler_kwargs":
            value = dict(value) if isinstance(value, dict) else json.loads(value)
        else:  # warmup_steps / warmup_ratio: HF's int steps or fraction < 1 are recipe durations as they are
            value = int(value) if float(value).is_integer() and value >= 1 else float(value)
        overrides[field_name] = value
        from_flag[field_name] = flag
    if gave("optim"):
        ignored.append(f"--optim {getattr(args.optim, 'value', args.optim)} is replaced by the recipe's optimizer "
                       f"{recipe.optimizer!r}; to change it set the recipe field `optimizer`")
    effective = recipe.replace(**overrides) if overrides else recipe
    for name in ("lr_scheduler_type", "warmup", "lr_scheduler_kwargs"):
        flag = from_flag.get(name)
        sources[name] = {"value": getattr(effective, name), "source": gave(flag) if flag else "recipe", "flag": flag or name,
                         "detail": f"recipe field {name!r} set from --{flag}" if flag else ""}
    if effective.early_stopping_patience > 0 or is_metric_driven(effective.lr_scheduler_type):
        hf_values = {"eval_strategy": effective.eval_strategy, "eval_steps": training_interval(effective.eval_steps, "eval_steps") if effective.eval_steps is not None else None,
                     "metric_for_best_model": effective.metric_for_best_model, "greater_is_better": effective.greater_is_better}
        for name in EVAL_OWNED:
            if name == "eval_steps" and effective.eval_strategy != "steps":
                continue
            take(name, hf_values[name], "the recipe's schedule or early stopping reads validation metrics")

    new = dataclasses.replace(args, **changes) if changes else dataclasses.replace(args)
    processes = num_processes if num_processes is not None else max(1, new.world_size)
    global_batch = args_global_batch_size(new, processes)
    scaling = recipe_lr_scaling(effective, global_batch)
    lr_source = gave("learning_rate")
    if lr_source:
        sources["learning_rate"] = {"value": new.learning_rate, "source": lr_source, "detail": "used as given (no batch scaling)"}
    else:
        new.learning_rate = scaling.learning_rate_after
        note = "; ".join(part for part in (scaling.message(), _replaced_default(args, "learning_rate", new.learning_rate)) if part)
        sources["learning_rate"] = {"value": new.learning_rate, "source": "scaled" if scaling.learning_rate_after != scaling.learning_rate_before else "recipe", "detail": note}
        if effective.lr_rule != "none":  # the rule needs the model: RecipeTrainer and finetune.py resolve it first
            sources["learning_rate"]["detail"] += (f"; the stated peak until lr_rule {effective.lr_rule!r} sees the model "
                                                   "(RecipeTrainer and recipe_optimizers set the rule's peak then)")
    if effective.optimizer == "sgd":
        sources["momentum"] = {"value": effective.momentum, "source": "recipe", "detail": f"nesterov={effective.nesterov}"}

    record = {"recipe": effective.name, "sources": sources, "recipe_overrides": overrides, "lr_scaling": scaling.to_dict(), "ignored": ignored}
    setattr(new, _RECORD, record)
    describe_schedule(new, effective)
    if log:
        log_sources(new)
    return new


def log_sources(args: TrainingArguments) -> None:
    """One line per owned value saying where it came from (once per ``args``, on the logging process).

    ``recipe_training_args`` defers this to :class:`RecipeTrainer`, so that a job that stops on bad input
    before training prints its one error line and nothing else."""
    record = getattr(args, _RECORD, None)
    if record is None or record.get("logged"):
        return
    _follow_transformers_verbosity()
    if not logger.isEnabledFor(logging.INFO) and not record["ignored"]:
        return  # nothing would show yet: the trainer logs them when it is built, after the script set up logging
    record["logged"] = True
    if args.should_log:
        for name, entry in record["sources"].items():
            logger.info("%s", _source_line(record["recipe"], name, entry))
        for line in record["ignored"]:
            logger.warning("recipe %r: %s", record["recipe"], line)


def _follow_transformers_verbosity() -> None:
    """ftrecipes' loggers show what transformers' do (the Trainer sets that from ``args.log_level``; scripts such
    as ``run_classification.py`` set it), unless the application configured the ``ftrecipes`` logger itself."""
    package = logging.getLogger("ftrecipes")
    if package.level == logging.NOTSET:
        from transformers.utils import logging as hf_logging

        wanted = min(hf_logging.get_verbosity(), logging.getLogger().getEffectiveLevel())
        if wanted < logging.WARNING:
            package.setLevel(wanted)


def _source_line(recipe_name: str, name: str, entry: dict) -> str:
    source = entry["source"]
    label = {"flag": f"flag --{entry.get('flag', name)}", "script": "set by the script", "argument": "argument", "recipe": f"recipe {recipe_name!r}", "scaled": f"recipe {recipe_name!r}, batch-scaled"}.get(source, source)
    detail = f"; {entry['detail']}" if entry.get("detail") else ""
    return f"recipe {recipe_name!r}: {name} = {entry['value']!r} ({label}{detail})"


class ScheduleName(str):
    """``TrainingArguments.lr_scheduler_type`` for a recipe schedule: the type's name, with a one-line
    description of the schedule as its ``value``.

    The Trainer's model card writes ``args.lr_scheduler_type.value``; recipe schedules such as ``step`` or
    ``one_cycle`` are not ``transformers.SchedulerType`` members, and a recipe's ``cosine`` ends at a floor
    where Trainer's ends at 0, so the card gets the description. It pickles as the plain name
    (``training_args.bin`` loads without ftrecipes).
    """

    description: str = ""
    label: str = ""  # the recipe's type name, where the string itself is the spelling a stock Trainer refuses

    @property
    def value(self) -> str:
        label = self.label or str(self)
        return f"{label} ({self.description})" if self.description else label

    def __reduce__(self):
        return (str, (str(self),))


def describe_schedule(args: TrainingArguments, recipe: Recipe, schedule: BuiltSchedule | None = None) -> None:
    """Make ``args``' schedule fields (``lr_scheduler_type``, ``warmup_steps``, ``lr_scheduler_kwargs``) state
    the recipe's schedule: before training with the warmup as the recipe writes it, once the schedule is
    built with its resolved step counts.

    Where ``transformers.get_scheduler`` has a schedule equal to the recipe's at every step
    (:func:`ftrecipes.training.hf_schedule.transformers_spelling`), the fields are that spelling, so a stock
    ``Trainer`` given these args (or ``training_args.bin``) trains on the recipe's schedule. Otherwise the
    type is named so that ``transformers.SchedulerType`` refuses it with a message naming
    :class:`RecipeTrainer`, and the kwargs are the recipe type's own. Either way the model card reads the
    one-line description (``args.lr_scheduler_type.value``)."""
    parts = [f"ftrecipes recipe {recipe.name!r}"]
    if schedule is not None:
        warmup_text = f"{recipe.warmup_type} warmup {schedule.warmup_steps} steps" if schedule.warmup_steps else "no warmup"
        parts += [f"{schedule.total_steps} optimizer steps", warmup_text]
        parts += [t.label for t in schedule.transitions if t.kind != "warmup_end"]
        # Read off the schedule itself, so the card is right for every type (floors, step drops, ...).
        parts.append("reduced when the validation metric stalls" if schedule.metric_driven
                     else f"last step at {schedule.lr(schedule.total_steps - 1):.3g} x peak")
    else:
        parts.append(f"{recipe.warmup_type} warmup {recipe.warmup}")
    spelling = transformers_spelling(recipe, args.learning_rate)
    if spelling is not None:
        name = ScheduleName(spelling.lr_scheduler_type)
        kwargs = dict(spelling.lr_scheduler_kwargs)
        warmup = schedule.warmup_steps if schedule is not None else spelling.warmup_steps
    else:
        name = ScheduleName(stock_trainer_name(recipe.lr_scheduler_type))
        kwargs = dict(recipe.lr_scheduler_kwargs)
        warmup = schedule.warmup_steps if schedule is not None else warmup_as_hf(recipe.warmup)
    name.description = "; ".join(parts)
    name.label = recipe.lr_scheduler_type if spelling is None else str(name)
    args.lr_scheduler_type = name
    args.warmup_steps = warmup if isinstance(warmup, (int, float)) and not isinstance(warmup, bool) else 0
    args.lr_scheduler_kwargs = kwargs


def recipe_training_args(recipe: Recipe, output_dir: str, *, num_processes: int | None = None, **overrides) -> TrainingArguments:
    """``TrainingArguments`` built from a recipe alone (what ``scripts/finetune.py`` uses): the recipe's
    owned values (see :func:`apply_recipe`), its evaluation policy and the job's logging/saving
    defaults; ``overrides`` (any TrainingArguments field) win. To adopt a recipe in a script that
    already parsed its own ``TrainingArguments``, use :func:`apply_recipe` instead.
    """
    evaluation = str(overrides.get("eval_strategy", recipe.eval_strategy))
    # Checkpoints follow evaluation (load_best_model_at_end needs that) unless saving was asked for by
    # itself: --save_steps alone, or evaluation turned off, means a checkpoint every save_steps.
    saving = evaluation if evaluation != "no" and "save_steps" not in overrides else "steps"
    job: dict[str, Any] = dict(
        output_dir=output_dir,
        eval_strategy=recipe.eval_strategy,
        save_strategy=saving,
        metric_for_best_model=recipe.metric_for_best_model if evaluation != "no" else None,
        greater_is_better=recipe.greater_is_better,
        load_best_model_at_end=recipe.load_best_model_at_end,
        seed=recipe.seed,
        logging_steps=10,
        logging_first_step=True,
        save_total_limit=2,
        report_to="none",
    )
    if recipe.eval_strategy == "steps":
        job["eval_steps"] = job["save_steps"] = training_interval(recipe.eval_steps, "eval_steps")
    if saving == "steps" and evaluation == "no" and "save_steps" not in overrides:
        job.pop("save_steps", None)  # TrainingArguments' own default interval (500), not the evaluation's
    job.update(overrides)
    return apply_recipe(recipe, TrainingArguments(**job), explicit=list(overrides), num_processes=num_processes, log=False)


def adopt_rule_peak(args: TrainingArguments, recipe: Recipe) -> None:
    """Give ``args`` that went through :func:`apply_recipe` before the model was known (the usual order in
    a Hugging Face script) the peak of ``recipe``, the recipe with its peak-LR rule applied for that model
    (:func:`ftrecipes.models.width.resolve_peak_rule_for_model`), rescaled for the same global batch by the
    same batch rule. A ``learning_rate`` the user gave is left as it is; so are args not from apply_recipe."""
    if not is_applied(args):
        return
    record = recipe_record(args)
    if record["sources"].get("learning_rate", {}).get("source") not in ("recipe", "scaled"):
        return
    before = record["lr_scaling"]
    scaling = recipe_lr_scaling(recipe, before["global_batch_size"], rule=before["rule"] if before["overridden"] else None)
    if scaling.learning_rate_after == args.learning_rate:
        return
    args.learning_rate = scaling.learning_rate_after
    record["lr_scaling"] = scaling.to_dict()
    record["sources"]["learning_rate"] = {
        "value": args.learning_rate, "source": "scaled" if scaling.learning_rate_after != scaling.learning_rate_before else "recipe",
        "detail": f"{scaling.message()}; the peak-LR rule's peak for the model, set when the model was known",
    }


def _effective_recipe(recipe: Recipe, args: TrainingArguments) -> Recipe:
    """The recipe with the schedule overrides the script's flags made (``--lr_scheduler_type`` ...)."""
    overrides = recipe_record(args)["recipe_overrides"]
    return recipe.replace(**overrides) if overrides else recipe


def recipe_schedule(recipe: Recipe, args: TrainingArguments, num_training_steps: int, train_dataset=None) -> BuiltSchedule:
    """The recipe's schedule shape sized for this run: ``num_training_steps`` optimizer steps (Trainer's
    own count) and, for durations in epochs, the steps per epoch of ``train_dataset`` under ``args``."""
    # An absolute floor (min_lr) is a fraction of the peak that actually runs, not of the recipe's.
    shape = recipe if recipe.min_lr is None else recipe.replace(learning_rate=args.learning_rate)
    if train_dataset is not None and _has_len(train_dataset):
        timeline = dataclasses.replace(Timeline.from_training_args(args, len(train_dataset)), max_steps=num_training_steps)
        if args.max_steps <= 0 and Timeline.from_training_args(args, len(train_dataset)).total_steps != num_training_steps:
            logger.warning("Trainer counts %d optimizer steps, the timeline %d; the schedule follows the Trainer.",
                           num_training_steps, Timeline.from_training_args(args, len(train_dataset)).total_steps)
        return shape.plan(timeline).schedule
    # No sized training set (an IterableDataset with max_steps): there is no epoch to count in.
    for name, value in recipe.durations_in_epochs().items():
        if name != "eval_steps":
            raise ConfigError(name, value, "durations in epochs need a training set of known length", "give steps or fractions")
    timeline = Timeline(num_examples=num_training_steps * args.per_device_train_batch_size, per_device_train_batch_size=args.per_device_train_batch_size,
                        max_steps=num_training_steps)
    return shape.plan(timeline).schedule


def _optimizer_for(recipe: Recipe, model: torch.nn.Module, args: TrainingArguments, **groups) -> torch.optim.Optimizer:
    """The recipe's optimizer kind (and SGD momentum) with the numbers the args hold after apply_recipe."""
    optimizer = create_optimizer(recipe, model, learning_rate=args.learning_rate, args=args, **groups)
    # Say in the args which optimizer runs, so training_args.bin and the model card state it.
    if recipe.optimizer == "sgd":
        args.optim, args.optim_args = "sgd", f"momentum={recipe.momentum},nesterov={recipe.nesterov}"
    else:
        args.optim = "adamw_torch_fused" if optimizer.defaults.get("fused") else "adamw_torch"
    return optimizer


# ------------------------------------------------------------------------------------------------
# Optimizer and scheduler for a stock Trainer


def recipe_optimizers(recipe: Recipe, model: torch.nn.Module, args: TrainingArguments, train_dataset=None, *, argv: Sequence[str] | None = None) -> tuple[torch.optim.Optimizer, ScheduleLR]:
    """``(optimizer, scheduler)`` for ``Trainer(optimizers=...)`` when the Trainer class cannot change.

    Pass ``args`` from :func:`apply_recipe` (the Trainer itself clips and batches with them). The
    schedule is sized now from ``args.max_steps`` or ``train_dataset``; with neither (an eval-only
    run), the optimizer refuses to step with one line naming the fix, so evaluation and prediction
    work and a training step can never run on an unsized schedule. :class:`RecipeTrainer` needs
    none of this: it builds both when training starts.
    """
    from ftrecipes.training.launch import check_optimizers_path

    check_optimizers_path(args)  # FSDP / DeepSpeed: one line naming RecipeTrainer
    from ftrecipes.config.peak_rule import peak_record
    from ftrecipes.models.width import resolve_peak_rule_for_model

    recipe, peak = resolve_peak_rule_for_model(recipe, model)  # the peak-LR rule reads the model's width
    if peak is not None:
        adopt_rule_peak(args, recipe)
    if not is_applied(args):
        logger.warning("recipe_optimizers: the TrainingArguments did not go through apply_recipe(), so the Trainer "
                       "clips, batches and counts steps with the script's values; use `args = apply_recipe(recipe, args)`")
        args = apply_recipe(recipe, args, argv)
    if peak is not None and args.should_log:
        logger.info("recipe %r: %s", recipe.name, peak_record(peak, recipe_record(args), args.learning_rate)["message"])
    recipe = _effective_recipe(recipe, args)
    optimizer = _optimizer_for(recipe, model, args)
    _refuse_parameters_added_later(optimizer, model)
    if args.max_steps > 0 or (train_dataset is not None and _has_len(train_dataset)):
        total = args.max_steps if args.max_steps > 0 else Timeline.from_training_args(args, len(train_dataset)).total_steps
        schedule = recipe_schedule(recipe, args, total, train_dataset)
        describe_schedule(args, recipe, schedule)
        return optimizer, ScheduleLR(optimizer, schedule)

    def unsized(*_):
        raise ConfigError("train_dataset", None, "recipe_optimizers() got no training set, so the schedule has no length",
                          "pass train_dataset=... (or max_steps > 0), or use RecipeTrainer, which sizes it when training starts")

    optimizer.register_step_pre_hook(unsized)
    return optimizer, ScheduleLR(optimizer, lambda step: 1.0)


def _refuse_parameters_added_later(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> None:
    """Before the first step, check that ``model``'s trainable parameters are all in ``optimizer``: a trainer
    that adds adapters after the optimizer was built (TRL's ``peft_config`` injects LoRA layers into this very
    model) would otherwise train only the frozen base, leaving every adapter at its initial value."""

    checked = []

    def check(*_):
        if checked:
            return
        checked.append(True)
        check_every_parameter_optimised(
            optimizer, model.named_parameters(),
            "the trainer added them after recipe_optimizers() built the optimizer (e.g. TRL's peft_config): wrap the "
            "model with peft before calling recipe_optimizers(), or use RecipeTrainer (class MyTrainer(RecipeTrainer, SFTTrainer))")

    optimizer.register_step_pre_hook(check)


# ------------------------------------------------------------------------------------------------
# RecipeTrainer


class RecipeTrainer(Trainer):
    """A ``Trainer`` whose optimizer and LR scheduler come from ``recipe``.

    ``args`` that did not go through :func:`apply_recipe` are merged here (``argv`` as there), so
    ``RecipeTrainer(recipe=..., args=training_args)`` alone never trains with TrainingArguments'
    defaults in place of the recipe's values. The optimizer and the scheduler are created in Trainer's
    ``create_optimizer`` / ``create_scheduler`` hooks, from the ``num_training_steps`` the Trainer itself
    computed, so warmup fractions and totals always agree with the loop that steps it. Early stopping
    and metric-driven schedules (reduce-on-plateau) are wired as callbacks.

    Extra log keys (per-group LR, momentum, skipped steps) come from callbacks with a
    ``log_values() -> dict`` method (see :mod:`ftrecipes.training.callbacks`), added in :meth:`log` — the hook
    Trainer documents for this — so the logs, ``trainer_state.json`` and every reporter see them alike.
    """

    def __init__(self, model=None, args: TrainingArguments | None = None, *positional, recipe: Recipe, argv: Sequence[str] | None = None, **kwargs):
        from ftrecipes.config.peak_rule import peak_record
        from ftrecipes.models.width import resolve_peak_rule_for_model

        # The recipe's peak-LR rule reads the width of the model it is given (no-op without lr_rule).
        recipe, peak = resolve_peak_rule_for_model(recipe, model)
        if args is not None and peak is not None:
            adopt_rule_peak(args, recipe)  # args applied before the model was known
        args = apply_recipe(recipe, args if args is not None else TrainingArguments(output_dir="trainer_output"), argv)
        record = recipe_record(args)
        self.recipe = _effective_recipe(recipe, args)
        model, kwargs = self._with_recipe_adapter(model, kwargs)
        if kwargs.get("optimizer_cls_and_kwargs") is not None:
            record["ignored"].append("optimizer_cls_and_kwargs is replaced by the recipe's optimizer "
                                     f"{self.recipe.optimizer!r}; to change it set the recipe field `optimizer`")
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks.append(PlateauMetricCallback())
        if self.recipe.early_stopping_patience > 0:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=self.recipe.early_stopping_patience))
        # The base class sees a neutral schedule name: subclasses that rebuild their own arguments class from
        # these args (TRL's SFTConfig(**args.to_dict())) validate it, and this class builds the real one.
        neutral = copy.copy(args)
        neutral.lr_scheduler_type, neutral.lr_scheduler_kwargs = "constant", {}
        super().__init__(model, neutral, *positional, callbacks=callbacks, **kwargs)
        self._adopt_args(args, record)
        log_sources(self.args)
        self.run_info: dict[str, Any] = {}  # extra entries for plan.json (finetune.py adds the LR's source)
        if peak is not None:
            self.run_info["peak_rule"] = peak_record(peak, recipe_record(args), args.learning_rate)
            if args.should_log:
                logger.info("recipe %r: %s", recipe.name, self.run_info["peak_rule"]["message"])
        self._loss_kwargs_checked = False

    def _adopt_args(self, applied: TrainingArguments, record: dict) -> None:
        """Keep the recipe's record and schedule description on the args the base class ended up with,
        which a subclass may have rebuilt as its own class; an owned value it changed gets one line."""
        if self.args is not applied:
            for name in OWNED:
                if hasattr(self.args, name) and getattr(self.args, name) != getattr(applied, name):
                    record["ignored"].append(f"{type(self).__name__}'s base changed {name} from {getattr(applied, name)!r} to "
                                             f"{getattr(self.args, name)!r} after the recipe set it; it trains with the latter")
                    record["sources"][name] = {"value": getattr(self.args, name), "source": "trainer", "detail": "set by the trainer class"}
            setattr(self.args, _RECORD, record)
        describe_schedule(self.args, self.recipe)

    def _base_name(self) -> str:
        """The Trainer class this one composes with (``SFTTrainer`` in ``class X(RecipeTrainer, SFTTrainer)``)."""
        mro = type(self).__mro__
        return mro[mro.index(RecipeTrainer) + 1].__name__

    def _with_recipe_adapter(self, model, kwargs: dict) -> tuple[Any, dict]:
        """The recipe's LoRA applied once: handed to a base class that takes ``peft_config`` (TRL's trainers,
        which also load a model given by name), else wrapped here. A ``peft_config`` the caller gave, or a model
        already wrapped, wins over the recipe's adapter settings, with one line saying so."""
        if self.recipe.peft == "none":
            return model, kwargs
        from ftrecipes.models.lora import is_peft_model, lora_config, lora_summary

        takes_peft_config = "peft_config" in inspect.signature(super().__init__).parameters
        given = kwargs.get("peft_config")
        if is_peft_model(model):
            logger.warning("recipe %r: the model is already a PeftModel, so its adapter trains and the recipe's LoRA "
                           "settings (%s) are not applied; the recipe's optimizer and schedule are", self.recipe.name,
                           lora_summary(self.recipe))
        elif given is not None and takes_peft_config:
            logger.warning("recipe %r: the trainer's peft_config (r=%s, lora_alpha=%s, target_modules=%s) is the adapter; "
                           "the recipe's LoRA settings (%s) are not applied, its optimizer and schedule are", self.recipe.name,
                           getattr(given, "r", "?"), getattr(given, "lora_alpha", "?"), getattr(given, "target_modules", "?"),
                           lora_summary(self.recipe))
        elif takes_peft_config:
            kwargs = {**kwargs, "peft_config": lora_config(self.recipe, model)}
            logger.info("recipe %r: LoRA (%s) passed to %s as its peft_config", self.recipe.name, lora_summary(self.recipe),
                        self._base_name())
        elif isinstance(model, (str, os.PathLike)):
            raise ConfigError("model", str(model), "a LoRA recipe adapts a model object, and this trainer takes no peft_config",
                              "load the model first (e.g. AutoModelForSequenceClassification.from_pretrained(name))")
        elif model is not None:
            from ftrecipes.models.build import wrap_model

            model = wrap_model(model, recipe=self.recipe)  # the hook finetune.py's models go through
        return model, kwargs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Trainer's loss, after checking once (on the first batch with labels) that the model's loss
        really divides by ``num_items_in_batch`` before Trainer relies on it: a head that drops it trains
        with the per-batch mean divided by the accumulation steps, as on one process without
        accumulation (see :mod:`ftrecipes.training.loss_scaling`)."""
        if not self._loss_kwargs_checked and "labels" in inputs:
            self._loss_kwargs_checked = True
            if self.model_accepts_loss_kwargs and self.compute_loss_func is None and self.label_smoother is None:
                from ftrecipes.training.loss_scaling import loss_uses_num_items

                if not loss_uses_num_items(self.accelerator.unwrap_model(model), inputs):
                    self.model_accepts_loss_kwargs = False
                    logger.info("%s's loss ignores num_items_in_batch: scaling it per batch and accumulation step "
                                "instead (transformers#47688)", type(self.accelerator.unwrap_model(model)).__name__)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """The recipe's optimizer over everything this trainer trains: the model, plus what a subclass's
        ``get_optimizer_cls_and_kwargs`` adds (sentence-transformers: the loss modules), at the peaks that
        hook sets (its ``learning_rate_mapping``). Refuses, before the first step, to leave a trainable
        parameter out."""
        if self.optimizer is None:
            model = model if model is not None else self.model
            extra_modules, lr_overrides, declared = self._subclass_parameters(model)
            self.optimizer = _optimizer_for(self.recipe, model, self.args, extra_modules=extra_modules, lr_overrides=lr_overrides)
            named = list(model.named_parameters()) + [(f"{prefix}.{n}", p) for prefix, m in extra_modules.items() for n, p in m.named_parameters()]
            # What the subclass declared but no module attribute of the trainer holds is checked too.
            named += [(f"{type(self).__name__}.get_optimizer_cls_and_kwargs parameter {i}", p) for i, p in enumerate(declared)]
            check_every_parameter_optimised(self.optimizer, named, "report it as an ftrecipes bug with the trainer class and model")
        return self.optimizer

    def _subclass_parameters(self, model) -> tuple[dict[str, torch.nn.Module], dict[int, float], list]:
        """What a subclass's ``get_optimizer_cls_and_kwargs`` says it trains beyond ``model``: named modules
        (found among the trainer's attributes), the peaks it gives single parameters, and every parameter it
        declared (for the coverage check)."""
        hook = getattr(type(self), "get_optimizer_cls_and_kwargs")
        if hook is Trainer.get_optimizer_cls_and_kwargs:
            return {}, {}, []
        _, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        groups = next((optimizer_kwargs[k] for k in ("optimizer_dict", "params") if k in optimizer_kwargs), None)
        if not groups or not isinstance(groups, (list, tuple)) or not isinstance(groups[0], dict):
            return {}, {}, []
        params = {id(p): p for g in groups for p in g["params"]}
        lr_overrides = {id(p): float(g["lr"]) for g in groups if "lr" in g for p in g["params"]}
        in_model = {id(p) for p in model.parameters()}
        extra_ids = {i for i in params if i not in in_model}
        modules: dict[str, torch.nn.Module] = {}
        for name, value in vars(self).items():
            candidates = value.items() if isinstance(value, dict) else [("", value)]
            for key, module in candidates:
                if isinstance(module, torch.nn.Module) and module is not model and extra_ids & {id(p) for p in module.parameters()}:
                    modules[f"{name}.{key}" if key else name] = module
        if lr_overrides:
            pattern = getattr(self.args, "learning_rate_mapping", None)
            logger.info("recipe %r: %d parameters at the peaks %s sets (%s), on the recipe's schedule", self.recipe.name,
                        len(lr_overrides), self._base_name(),
                        pattern or sorted(set(lr_overrides.values())))
        return modules, lr_overrides, list(params.values())

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> ScheduleLR:
        if self.lr_scheduler is None:
            schedule = recipe_schedule(self.recipe, self.args, num_training_steps, self.train_dataset)
            self.lr_scheduler = ScheduleLR(optimizer if optimizer is not None else self.optimizer, schedule)
            self._created_lr_scheduler = True
            describe_schedule(self.args, self.recipe, schedule)
            if self.args.should_log:
                logger.info("recipe %r: %s schedule over %d optimizer steps, warmup %d, peak LR %.4g%s", self.recipe.name,
                            self.recipe.lr_scheduler_type, schedule.total_steps, schedule.warmup_steps, self.args.learning_rate,
                            "".join(f"; {t.label}" for t in schedule.transitions))
        return self.lr_scheduler

    @property
    def schedule(self) -> BuiltSchedule | None:
        return getattr(self.lr_scheduler, "built_schedule", None)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # a training log (evaluation and the end-of-training summary carry no LR)
            for callback in self.callback_handler.callbacks:
                values = getattr(callback, "log_values", None)
                if callable(values):
                    logs.update(values())
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            self.write_run_description(output_dir if output_dir is not None else self.args.output_dir)

    def write_run_description(self, output_dir: str) -> None:
        """``recipe.yaml`` (the recipe as this run trained it) and ``plan.json`` (its schedule, sizes and
        where every owned value came from) into ``output_dir``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        args, record = self.args, recipe_record(self.args)
        global_batch = args_global_batch_size(args)
        # The peak this run trained at, stated for this run's global batch: rerunning the file at the same
        # batch gives the same LR, and at another batch the recipe's rule scales from this point.
        as_trained = dict(
            learning_rate=args.learning_rate, reference_global_batch_size=global_batch, weight_decay=args.weight_decay,
            max_grad_norm=args.max_grad_norm, per_device_train_batch_size=args.per_device_train_batch_size,
            per_device_eval_batch_size=args.per_device_eval_batch_size, gradient_accumulation_steps=args.gradient_accumulation_steps,
            num_train_epochs=args.num_train_epochs, max_steps=args.max_steps, seed=args.seed,
            precision="bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        )
        if self.recipe.optimizer == "adamw":
            as_trained.update(adam_beta1=args.adam_beta1, adam_beta2=args.adam_beta2, adam_epsilon=args.adam_epsilon)
        resolved = self.recipe.replace(**as_trained)
        (out / RECIPE_FILE).write_text(
            f"# Recipe as this run trained it (recipe {record['recipe']!r} with this run's values; peak LR as trained,\n"
            f"# at this run's global batch of {global_batch}). Reproduce: accelerate launch scripts/finetune.py --recipe {out / RECIPE_FILE}\n"
            + resolved.to_yaml()
        )
        schedule = self.schedule
        plan = {
            "recipe": record["recipe"],
            "lr_scheduler_type": self.recipe.lr_scheduler_type,
            "total_steps": schedule.total_steps if schedule else None,
            "warmup_steps": schedule.warmup_steps if schedule else None,
            "global_batch_size": global_batch,
            "num_processes": max(1, args.world_size),
            "learning_rate_recipe": self.recipe.learning_rate,
            "learning_rate": args.learning_rate,
            "lr_scaling": record["lr_scaling"],
            "sources": record["sources"],
            "ignored_flags": record["ignored"],
            "transitions": [dataclasses.asdict(t) for t in (schedule.transitions if schedule else [])],
            "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            **self.run_info,
        }
        (out / PLAN_FILE).write_text(json.dumps(plan, indent=2, default=str))


def _has_len(dataset) -> bool:
    try:
        len(dataset)
    except TypeError:
        return False
    return True


class PlateauMetricCallback(TrainerCallback):
    """Feeds ``eval_<metric_for_best_model>`` to a metric-driven schedule (reduce-on-plateau).

    The Trainer steps a ``ScheduleLR`` once per optimizer step — which keeps the warmup exact — but
    only a callback sees the validation metrics, so the reduction is applied here.
    """

    def on_evaluate(self, args, state, control, metrics=None, lr_scheduler=None, **kwargs):
        if not isinstance(lr_scheduler, ScheduleLR) or not metrics or not hasattr(lr_scheduler.lr_schedule, "observe"):
            return
        name = args.metric_for_best_model or "loss"
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in metrics:
            logger.warning("reduce-on-plateau: metric %r not in the evaluation results %s", key, sorted(metrics))
            return
        if lr_scheduler.observe(metrics[key], step=state.global_step):
            logger.info("reduce-on-plateau: %s stalled at %.4f; LR now %.3g", key, metrics[key], lr_scheduler.get_last_lr()[0])


# ------------------------------------------------------------------------------------------------
# Custom Accelerate loops


def accelerate_scheduler(plan_or_schedule, optimizer: torch.optim.Optimizer, accelerator) -> ScheduleLR:
    """A scheduler for ``accelerator.prepare`` whose LR per optimizer update equals the Trainer's.

    A prepared scheduler (``AcceleratedScheduler``) is stepped only on gradient-synchronising steps
    — good, accumulation is handled — but then ``num_processes`` times per call unless
    ``split_batches`` (it assumes a per-sample schedule). This wraps the schedule so that ``n`` such
    steps count as one: ``lr(e) = schedule(e // n)``.
    """
    schedule = getattr(plan_or_schedule, "schedule", plan_or_schedule)
    split = getattr(getattr(accelerator, "dataloader_config", None), "split_batches", False)
    steps_per_update = 1 if split else max(1, accelerator.num_processes)
    return ScheduleLR(optimizer, schedule, steps_per_update=steps_per_update)


def log_history_lrs(log_history: list[dict]) -> dict[int, float]:
    """``{global_step: learning_rate}`` from ``trainer_state.json``'s ``log_history``.

    In transformers 5 the LR logged at global step ``s`` is the one optimizer step ``s`` used,
    i.e. ``peak * schedule(s - 1)``.
    """
    return {int(entry["step"]): float(entry["learning_rate"]) for entry in log_history if "learning_rate" in entry}


def expected_lr(peak: float, schedule: BuiltSchedule, global_step: int) -> float:
    """The LR the Trainer logs at ``global_step`` (see :func:`log_history_lrs`)."""
    return peak * schedule.lr(max(0, global_step - 1))


__all__ = [
    "OWNED",
    "RecipeTrainer",
    "PlateauMetricCallback",
    "apply_recipe",
    "recipe_record",
    "is_applied",
    "recipe_training_args",
    "recipe_optimizers",
    "recipe_schedule",
    "adopt_rule_peak",
    "accelerate_scheduler",
    "log_history_lrs",
    "expected_lr",
]
