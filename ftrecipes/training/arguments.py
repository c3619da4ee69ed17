"""A recipe merged into ``TrainingArguments``, with every value accounted for.

Adopting a recipe in an existing Hugging Face script (``HfArgumentParser`` + ``TrainingArguments``)::

    training_args = apply_recipe(get_recipe("cls"), training_args)     # after parse_args_into_dataclasses()

:func:`apply_recipe` merges the recipe into the args the script parsed with the precedence of the main job:
**a value the user gave wins, then the recipe, then TrainingArguments' defaults**. "Gave" means a flag
present on the command line (found in ``argv``, see :mod:`ftrecipes.training.flags`) or a value that differs
from the arguments class's default (set in code or in a JSON config). The recipe owns only what decides
*how* the model is optimised (:data:`OWNED`: peak LR scaled for the global batch, weight decay, betas,
epsilon, clipping, batch, duration, precision and the LR schedule); everything else (``do_*``, logging,
saving, seed, resume, ``report_to``, ``output_dir``, evaluation...) stays as the script set it. One line per
owned value says where it came from. The schedule the recipe plans for a run (:func:`recipe_schedule`)
and how the args describe it to a stock Trainer (:func:`describe_schedule`) live here too.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from typing import Any, Sequence

from transformers import (
    TrainingArguments,
)

from ftrecipes.config.built_schedule import BuiltSchedule
from ftrecipes.config.durations import training_interval
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.recipe import Recipe
from ftrecipes.config.scaling import recipe_lr_scaling
from ftrecipes.config.schedule_types import SCHEDULE_TYPES, is_metric_driven
from ftrecipes.config.timeline import Timeline, args_global_batch_size
from ftrecipes.training.flags import given_training_arguments
from ftrecipes.training.hf_schedule import (
    stock_trainer_name,
    transformers_spelling,
    warmup_as_hf,
)
from ftrecipes.training.precision import training_args_precision

logger = logging.getLogger(__name__)

# TrainingArguments fields whose value the recipe supplies unless the user gave one.
OWNED = (
    "learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "bf16",
    "fp16",
)
# TrainingArguments' schedule flags: the recipe's schedule replaces Trainer's, so a flag given for one of
# these becomes the recipe override named here, or (when it cannot) one warning naming that field.
SCHEDULE_FLAGS = {
    "lr_scheduler_type": "lr_scheduler_type",
    "warmup_steps": "warmup",
    "warmup_ratio": "warmup",
    "lr_scheduler_kwargs": "lr_scheduler_kwargs",
}
# Evaluation fields a metric-driven recipe (reduce-on-plateau, early stopping) cannot run without.
EVAL_OWNED = ("eval_strategy", "eval_steps", "metric_for_best_model", "greater_is_better")
RECORD_ATTRIBUTE = "_ftrecipes_record"  # attribute of applied TrainingArguments: plain data, pickles anywhere


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
    return getattr(args, RECORD_ATTRIBUTE, None) is not None


def recipe_record(args: TrainingArguments) -> dict:
    """What :func:`apply_recipe` decided for ``args``: ``{"recipe", "sources", "recipe_overrides", "lr_scaling"}``
    (``sources[field] = {"value", "source", "detail"}``, source one of recipe / flag / script / scaled)."""
    record = getattr(args, RECORD_ATTRIBUTE, None)
    if record is None:
        raise ValueError("these TrainingArguments did not come from apply_recipe()")
    return record


def apply_recipe(
    recipe: Recipe,
    args: TrainingArguments,
    argv: Sequence[str] | None = None,
    *,
    explicit: Sequence[str] | None = None,
    num_processes: int | None = None,
    log: bool = True,
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

    for name in (
        "weight_decay",
        "max_grad_norm",
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
    ):
        take(name, getattr(recipe, name))
    if recipe.optimizer == "adamw":
        for name in ("adam_beta1", "adam_beta2", "adam_epsilon"):
            take(name, getattr(recipe, name))
    # Duration: the user's epochs beat the recipe's max_steps (max_steps > 0 would override them).
    epochs_given, steps_given = gave("num_train_epochs"), gave("max_steps")
    take("num_train_epochs", recipe.num_train_epochs)
    if epochs_given and not steps_given and recipe.max_steps > 0:
        changes["max_steps"] = -1
        sources["max_steps"] = {
            "value": -1,
            "source": epochs_given,
            "detail": f"the recipe's max_steps {recipe.max_steps} dropped for the given num_train_epochs",
        }
    else:
        take("max_steps", recipe.max_steps)
    if gave("bf16") or gave("fp16"):
        for name in ("bf16", "fp16"):
            sources[name] = {
                "value": getattr(args, name),
                "source": gave(name) or gave("bf16") or gave("fp16"),
                "detail": "",
            }
    else:
        # bf16/fp16 (and use_cpu for bf16 autocast on a CPU) from the recipe's policy, checked for this machine.
        wiring = training_args_precision(recipe.precision, {"use_cpu": args.use_cpu} if args.use_cpu else {})
        precision = "bf16" if wiring["bf16"] else "fp16" if wiring["fp16"] else "fp32"
        changes.update(wiring)
        for name in ("bf16", "fp16"):
            sources[name] = {
                "value": wiring[name],
                "source": "recipe",
                "detail": f"precision {recipe.precision!r} -> {precision}",
            }

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
                    f"--{flag} {value} is not a recipe schedule type, so the recipe's {recipe.lr_scheduler_type!r} "
                    f"runs; to change it set the recipe field `lr_scheduler_type` (one of {sorted(SCHEDULE_TYPES)}), "
                    f"e.g. get_recipe({recipe.name!r}, lr_scheduler_type=...)"
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
        ignored.append(
            f"--optim {getattr(args.optim, 'value', args.optim)} is replaced by the recipe's optimizer "
            f"{recipe.optimizer!r}; to change it set the recipe field `optimizer`"
        )
    effective = recipe.replace(**overrides) if overrides else recipe
    for name in ("lr_scheduler_type", "warmup", "lr_scheduler_kwargs"):
        flag = from_flag.get(name)
        sources[name] = {
            "value": getattr(effective, name),
            "source": gave(flag) if flag else "recipe",
            "flag": flag or name,
            "detail": f"recipe field {name!r} set from --{flag}" if flag else "",
        }
    if effective.early_stopping_patience > 0 or is_metric_driven(effective.lr_scheduler_type):
        hf_values = {
            "eval_strategy": effective.eval_strategy,
            "eval_steps": training_interval(effective.eval_steps, "eval_steps")
            if effective.eval_steps is not None
            else None,
            "metric_for_best_model": effective.metric_for_best_model,
            "greater_is_better": effective.greater_is_better,
        }
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
        sources["learning_rate"] = {
            "value": new.learning_rate,
            "source": lr_source,
            "detail": "used as given (no batch scaling)",
        }
    else:
        new.learning_rate = scaling.learning_rate_after
        note = "; ".join(
            part for part in (scaling.message(), _replaced_default(args, "learning_rate", new.learning_rate)) if part
        )
        sources["learning_rate"] = {
            "value": new.learning_rate,
            "source": "scaled" if scaling.learning_rate_after != scaling.learning_rate_before else "recipe",
            "detail": note,
        }
        if effective.lr_rule != "none":  # the rule needs the model: RecipeTrainer and finetune.py resolve it first
            sources["learning_rate"]["detail"] += (
                f"; the stated peak until lr_rule {effective.lr_rule!r} sees the model "
                "(RecipeTrainer and recipe_optimizers set the rule's peak then)"
            )
    if effective.optimizer == "sgd":
        sources["momentum"] = {
            "value": effective.momentum,
            "source": "recipe",
            "detail": f"nesterov={effective.nesterov}",
        }

    record = {
        "recipe": effective.name,
        "sources": sources,
        "recipe_overrides": overrides,
        "lr_scaling": scaling.to_dict(),
        "ignored": ignored,
    }
    setattr(new, RECORD_ATTRIBUTE, record)
    describe_schedule(new, effective)
    if log:
        log_sources(new)
    return new


def log_sources(args: TrainingArguments) -> None:
    """One line per owned value saying where it came from (once per ``args``, on the logging process).

    ``recipe_training_args`` defers this to :class:`RecipeTrainer`, so that a job that stops on bad input
    before training prints its one error line and nothing else."""
    record = getattr(args, RECORD_ATTRIBUTE, None)
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
    label = {
        "flag": f"flag --{entry.get('flag', name)}",
        "script": "set by the script",
        "argument": "argument",
        "recipe": f"recipe {recipe_name!r}",
        "scaled": f"recipe {recipe_name!r}, batch-scaled",
    }.get(source, source)
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
        warmup_text = (
            f"{recipe.warmup_type} warmup {schedule.warmup_steps} steps" if schedule.warmup_steps else "no warmup"
        )
        parts += [f"{schedule.total_steps} optimizer steps", warmup_text]
        parts += [t.label for t in schedule.transitions if t.kind != "warmup_end"]
        # Read off the schedule itself, so the card is right for every type (floors, step drops, ...).
        parts.append(
            "reduced when the validation metric stalls"
            if schedule.metric_driven
            else f"last step at {schedule.lr(schedule.total_steps - 1):.3g} x peak"
        )
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


def recipe_training_args(
    recipe: Recipe, output_dir: str, *, num_processes: int | None = None, **overrides
) -> TrainingArguments:
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
    return apply_recipe(
        recipe, TrainingArguments(**job), explicit=list(overrides), num_processes=num_processes, log=False
    )


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
    scaling = recipe_lr_scaling(
        recipe, before["global_batch_size"], rule=before["rule"] if before["overridden"] else None
    )
    if scaling.learning_rate_after == args.learning_rate:
        return
    args.learning_rate = scaling.learning_rate_after
    record["lr_scaling"] = scaling.to_dict()
    record["sources"]["learning_rate"] = {
        "value": args.learning_rate,
        "source": "scaled" if scaling.learning_rate_after != scaling.learning_rate_before else "recipe",
        "detail": f"{scaling.message()}; the peak-LR rule's peak for the model, set when the model was known",
    }


def effective_recipe(recipe: Recipe, args: TrainingArguments) -> Recipe:
    """The recipe with the schedule overrides the script's flags made (``--lr_scheduler_type`` ...)."""
    overrides = recipe_record(args)["recipe_overrides"]
    return recipe.replace(**overrides) if overrides else recipe


def recipe_schedule(
    recipe: Recipe, args: TrainingArguments, num_training_steps: int, train_dataset=None
) -> BuiltSchedule:
    """The recipe's schedule shape sized for this run: ``num_training_steps`` optimizer steps (Trainer's
    own count) and, for durations in epochs, the steps per epoch of ``train_dataset`` under ``args``."""
    # An absolute floor (min_lr) is a fraction of the peak that actually runs, not of the recipe's.
    shape = recipe if recipe.min_lr is None else recipe.replace(learning_rate=args.learning_rate)
    if train_dataset is not None and has_len(train_dataset):
        timeline = dataclasses.replace(
            Timeline.from_training_args(args, len(train_dataset)), max_steps=num_training_steps
        )
        if (
            args.max_steps <= 0
            and Timeline.from_training_args(args, len(train_dataset)).total_steps != num_training_steps
        ):
            logger.warning(
                "Trainer counts %d optimizer steps, the timeline %d; the schedule follows the Trainer.",
                num_training_steps,
                Timeline.from_training_args(args, len(train_dataset)).total_steps,
            )
        return shape.plan(timeline).schedule
    # No sized training set (an IterableDataset with max_steps): there is no epoch to count in.
    for name, value in recipe.durations_in_epochs().items():
        if name != "eval_steps":
            raise ConfigError(
                name, value, "durations in epochs need a training set of known length", "give steps or fractions"
            )
    timeline = Timeline(
        num_examples=num_training_steps * args.per_device_train_batch_size,
        per_device_train_batch_size=args.per_device_train_batch_size,
        max_steps=num_training_steps,
    )
    return shape.plan(timeline).schedule


def has_len(dataset) -> bool:
    try:
        len(dataset)
    except TypeError:
        return False
    return True


__all__ = [
    "OWNED",
    "apply_recipe",
    "recipe_record",
    "is_applied",
    "log_sources",
    "describe_schedule",
    "recipe_training_args",
    "recipe_schedule",
    "adopt_rule_peak",
    "effective_recipe",
    "has_len",
]
