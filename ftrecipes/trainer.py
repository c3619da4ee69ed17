"""Trainer integration: a recipe's optimizer and scheduler inside ``transformers.Trainer``.

Three ways in, all built on the same pieces:

* :class:`RecipeTrainer` — a ``Trainer`` that takes ``recipe=`` and creates the recipe's optimizer
  (weight-decay groups) and :class:`~ftrecipes.lr_scheduler.ScheduleLR` itself, sized with the
  ``num_training_steps`` the Trainer computes. This is what ``scripts/finetune.py`` uses.
* :func:`recipe_training_args` + :func:`recipe_optimizers` — for a user's own ``Trainer``:
  ``Trainer(args=recipe_training_args(recipe, "out"), optimizers=recipe_optimizers(recipe, model, args,
  train_dataset), ...)``.
* :func:`accelerate_scheduler` — for a custom Accelerate loop that passes the scheduler to
  ``accelerator.prepare``.

In all three the scheduler advances once per **optimizer** step: the Trainer calls
``lr_scheduler.step()`` only on gradient-synchronising steps and never wraps it with
``accelerator.prepare``; a prepared scheduler in a custom loop is stepped ``num_processes`` times per
update (unless ``split_batches``), which :func:`accelerate_scheduler` divides back out.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments

from .lr_scheduler import ScheduleLR
from .optim import create_optimizer
from .precision import training_args_precision
from .recipe import Recipe
from .schedule_types import BuiltSchedule
from .timeline import Timeline

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# TrainingArguments from a recipe


def _hf_interval(value: Any) -> Any:
    """A recipe duration as TrainingArguments takes an interval: int steps or a ratio in [0, 1)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return float(value.strip()[:-1]) / 100.0
    return value


def recipe_training_args(recipe: Recipe, output_dir: str, *, num_processes: int | None = None, **overrides) -> TrainingArguments:
    """``TrainingArguments`` carrying the recipe's optimizer hyper-parameters, clipping, duration,
    batch, precision and evaluation policy; ``overrides`` (any TrainingArguments field) win.

    ``learning_rate`` is the recipe's peak rescaled for the global batch
    (per-device batch x processes x accumulation) by the recipe's ``lr_scaling`` rule; pass
    ``learning_rate`` in ``overrides`` to use a value as-is.
    """
    values: dict[str, Any] = dict(
        output_dir=output_dir,
        weight_decay=recipe.weight_decay,
        adam_beta1=recipe.adam_beta1,
        adam_beta2=recipe.adam_beta2,
        adam_epsilon=recipe.adam_epsilon,
        max_grad_norm=recipe.max_grad_norm,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        per_device_eval_batch_size=recipe.per_device_eval_batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        **training_args_precision(recipe.precision, overrides),  # bf16 on CPU needs use_cpu=True
        eval_strategy=recipe.eval_strategy,
        save_strategy=recipe.eval_strategy if recipe.eval_strategy != "no" else "steps",
        metric_for_best_model=recipe.metric_for_best_model if recipe.eval_strategy != "no" else None,
        greater_is_better=recipe.greater_is_better,
        load_best_model_at_end=recipe.load_best_model_at_end,
        seed=recipe.seed,
        logging_steps=10,
        logging_first_step=True,
        save_total_limit=2,
        report_to="none",
    )
    if recipe.eval_strategy == "steps":
        values["eval_steps"] = values["save_steps"] = _hf_interval(recipe.eval_steps)
    values.update(overrides)
    explicit_lr = "learning_rate" in overrides
    if not explicit_lr:
        values["learning_rate"] = recipe.learning_rate
    args = TrainingArguments(**values)
    if not explicit_lr:
        processes = num_processes if num_processes is not None else max(1, args.world_size)
        global_batch = args.per_device_train_batch_size * processes * args.gradient_accumulation_steps
        args.learning_rate = recipe.scaled_learning_rate(global_batch)
    return args


def timeline_for(args: TrainingArguments, num_examples: int) -> Timeline:
    """The :class:`Timeline` of a Trainer run with ``args`` over ``num_examples`` training rows."""
    return Timeline(
        num_examples=num_examples,
        per_device_train_batch_size=args.per_device_train_batch_size,
        num_processes=max(1, args.world_size),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        dataloader_drop_last=args.dataloader_drop_last,
    )


def _recipe_for_args(recipe: Recipe, args: TrainingArguments) -> Recipe:
    """The recipe with the sizes the run really uses (the args may override the recipe's)."""
    return recipe.replace(
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        lr_scaling="none",  # args.learning_rate is already the peak for this run's global batch
        weight_decay=args.weight_decay,
        adam_beta1=args.adam_beta1,
        adam_beta2=args.adam_beta2,
        adam_epsilon=args.adam_epsilon,
        max_grad_norm=args.max_grad_norm,
    )


# ------------------------------------------------------------------------------------------------
# Optimizer and scheduler for any Trainer


def recipe_optimizers(recipe: Recipe, model: torch.nn.Module, args: TrainingArguments, train_dataset) -> tuple[torch.optim.Optimizer, ScheduleLR]:
    """``(optimizer, scheduler)`` for ``Trainer(optimizers=...)``: the recipe's optimizer at
    ``args.learning_rate`` and its schedule sized for ``train_dataset`` under ``args`` — the same
    optimizer-step count the Trainer will compute (see :mod:`ftrecipes.timeline`)."""
    recipe = _recipe_for_args(recipe, args)
    plan = recipe.plan(timeline_for(args, len(train_dataset)))
    optimizer = create_optimizer(recipe, model, learning_rate=args.learning_rate)
    return optimizer, ScheduleLR(optimizer, plan.schedule)


class RecipeTrainer(Trainer):
    """A ``Trainer`` whose optimizer and LR scheduler come from ``recipe``.

    The scheduler is created when training starts, from the ``num_training_steps`` the Trainer itself
    computed, so warmup fractions and totals always agree with the loop that steps it. Early stopping
    (``early_stopping_patience``) and metric-driven schedules (reduce-on-plateau) are wired as callbacks.
    """

    def __init__(self, *args, recipe: Recipe, **kwargs):
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks.append(PlateauMetricCallback())
        if recipe.early_stopping_patience > 0:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
        super().__init__(*args, callbacks=callbacks, **kwargs)
        self.recipe = _recipe_for_args(recipe, self.args)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = create_optimizer(self.recipe, model if model is not None else self.model, learning_rate=self.args.learning_rate)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> ScheduleLR:
        if self.lr_scheduler is None:
            timeline = timeline_for(self.args, len(self.train_dataset)) if _has_len(self.train_dataset) else None
            if timeline is not None and timeline.total_steps != num_training_steps:
                logger.warning("Trainer counts %d optimizer steps, the timeline %d; the schedule follows the Trainer.", num_training_steps, timeline.total_steps)
            steps_per_epoch = timeline.steps_per_epoch if timeline is not None else None
            schedule = self.recipe.build_schedule(num_training_steps, steps_per_epoch)
            self.lr_scheduler = ScheduleLR(optimizer if optimizer is not None else self.optimizer, schedule)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    @property
    def schedule(self) -> BuiltSchedule | None:
        return getattr(self.lr_scheduler, "built_schedule", None)


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
    "RecipeTrainer",
    "PlateauMetricCallback",
    "recipe_training_args",
    "recipe_optimizers",
    "accelerate_scheduler",
    "timeline_for",
    "log_history_lrs",
    "expected_lr",
]
