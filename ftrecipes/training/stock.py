"""The recipe without subclassing: optimizer and scheduler for a stock ``Trainer``
(``optimizers=recipe_optimizers(...)``) and for a hand-written Accelerate loop.

In every path the scheduler advances once per **optimizer** step: the Trainer calls
``lr_scheduler.step()`` only on gradient-synchronising steps and never wraps it with
``accelerator.prepare``; a prepared scheduler in a custom loop is stepped ``num_processes`` times per
update (unless ``split_batches``), which :func:`accelerate_scheduler` divides back out.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch
from transformers import (
    TrainingArguments,
)

from ftrecipes.config.built_schedule import BuiltSchedule
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.recipe import Recipe
from ftrecipes.config.timeline import Timeline
from ftrecipes.training.arguments import (
    adopt_rule_peak,
    apply_recipe,
    describe_schedule,
    effective_recipe,
    has_len,
    is_applied,
    recipe_record,
    recipe_schedule,
)
from ftrecipes.training.lr_scheduler import ScheduleLR
from ftrecipes.training.optim import check_every_parameter_optimised, optimizer_for_args

logger = logging.getLogger(__name__)
# ------------------------------------------------------------------------------------------------
# Optimizer and scheduler for a stock Trainer


def recipe_optimizers(
    recipe: Recipe,
    model: torch.nn.Module,
    args: TrainingArguments,
    train_dataset=None,
    *,
    argv: Sequence[str] | None = None,
) -> tuple[torch.optim.Optimizer, ScheduleLR]:
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
        logger.warning(
            "recipe_optimizers: the TrainingArguments did not go through apply_recipe(), so the Trainer "
            "clips, batches and counts steps with the script's values; use `args = apply_recipe(recipe, args)`"
        )
        args = apply_recipe(recipe, args, argv)
    if peak is not None and args.should_log:
        logger.info("recipe %r: %s", recipe.name, peak_record(peak, recipe_record(args), args.learning_rate)["message"])
    recipe = effective_recipe(recipe, args)
    optimizer = optimizer_for_args(recipe, model, args)
    _refuse_parameters_added_later(optimizer, model)
    if args.max_steps > 0 or (train_dataset is not None and has_len(train_dataset)):
        total = (
            args.max_steps if args.max_steps > 0 else Timeline.from_training_args(args, len(train_dataset)).total_steps
        )
        schedule = recipe_schedule(recipe, args, total, train_dataset)
        describe_schedule(args, recipe, schedule)
        return optimizer, ScheduleLR(optimizer, schedule)

    def unsized(*_):
        raise ConfigError(
            "train_dataset",
            None,
            "recipe_optimizers() got no training set, so the schedule has no length",
            "pass train_dataset=... (or max_steps > 0), or use RecipeTrainer, which sizes it when training starts",
        )

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
            optimizer,
            model.named_parameters(),
            "the trainer added them after recipe_optimizers() built the optimizer (e.g. TRL's peft_config): wrap the "
            "model with peft before calling recipe_optimizers(), or use RecipeTrainer (class MyTrainer(RecipeTrainer, "
            "SFTTrainer))",
        )

    optimizer.register_step_pre_hook(check)


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


__all__ = ["recipe_optimizers", "accelerate_scheduler", "log_history_lrs", "expected_lr"]
