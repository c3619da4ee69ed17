"""A recipe's schedule spelled in ``TrainingArguments``, so that a stock ``Trainer`` runs it exactly.

Many recipe schedules are a ``transformers.SchedulerType`` under another spelling: a cosine decay with
Hugging Face's warmup count (``warmup_offset: 0``) to a floor of 10% of the peak is
``cosine_with_min_lr`` with ``min_lr_rate=0.1``; a linear decay to a floor is ``polynomial`` with
``power=1`` and ``lr_end = floor x peak``; Hugging Face's own names are themselves. For those,
:func:`transformers_spelling` gives ``(lr_scheduler_type, lr_scheduler_kwargs, warmup_steps)`` and the
args carry them, so ``Trainer.create_scheduler`` (``transformers.get_scheduler``) reproduces the recipe's
LR at every optimizer step — which is *checked*, not assumed: a candidate spelling is kept only if
``get_scheduler`` gives the recipe's multiplier at every step of several run lengths (odd ones included).

The others (the recipes' default ``(t + 1) / W`` warmup, step decay, one-cycle, SGDR, WSD shapes, the
metric-driven ones) have no such spelling; their args name the schedule in a form that
``transformers.SchedulerType`` refuses with a message naming :class:`ftrecipes.RecipeTrainer`, so a
stock Trainer stops before its first step instead of training on another schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ftrecipes.config.durations import normalize_duration
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.schedule_builders import HF_TYPES
from ftrecipes.config.schedule_types import is_metric_driven
from ftrecipes.config.timeline import Timeline

# Run lengths the spelling is checked on: tiny, odd, warmup-rounding-sensitive and long.
CHECK_TOTALS = (1, 2, 7, 33, 101, 400)
NEEDS_RECIPE_TRAINER = (
    "an ftrecipes schedule: train with ftrecipes.RecipeTrainer, or class MyTrainer(RecipeTrainer, YourTrainer)"
)


@dataclass(frozen=True)
class TransformersSchedule:
    """``TrainingArguments``' schedule fields that make ``transformers.get_scheduler`` give the recipe's LR."""

    lr_scheduler_type: str
    lr_scheduler_kwargs: dict
    warmup_steps: int | float


def warmup_as_hf(value: Any) -> int | float | None:
    """A recipe warmup as ``TrainingArguments.warmup_steps`` states one (int steps or a ratio below 1);
    ``None`` for epochs, which have no such spelling."""
    value = normalize_duration(value, "warmup")
    if isinstance(value, str):
        text = value.strip()
        return float(text[:-1]) / 100.0 if text.endswith("%") else None
    return value


def _candidate(recipe, peak: float) -> TransformersSchedule | None:
    warmup = warmup_as_hf(recipe.warmup)
    if warmup is None or is_metric_driven(recipe.lr_scheduler_type):
        return None  # metric-driven schedules are fed by a callback a stock Trainer does not have
    kind, kwargs, floor = recipe.lr_scheduler_type, dict(recipe.lr_scheduler_kwargs), recipe.floor
    if kind in HF_TYPES:
        if kind in ("cosine_with_min_lr", "cosine_warmup_with_min_lr") and not {"min_lr", "min_lr_rate"} & set(kwargs):
            kwargs["min_lr_rate"] = floor  # ftrecipes fills the floor Hugging Face would demand
        return TransformersSchedule(kind, kwargs, warmup)
    hf_warmup = recipe.warmup_offset == 0 and recipe.warmup_type == "linear" and recipe.warmup_start == 0
    if not hf_warmup and warmup:
        return None
    if kind == "cosine":
        if floor == 0:
            return TransformersSchedule("cosine", kwargs, warmup)
        return TransformersSchedule("cosine_with_min_lr", {**kwargs, "min_lr_rate": floor}, warmup)
    if kind == "linear":
        if floor == 0:
            return TransformersSchedule("linear", kwargs, warmup)
        return TransformersSchedule("polynomial", {"power": 1.0, "lr_end": floor * peak}, warmup)
    if kind == "polynomial":
        return TransformersSchedule(
            "polynomial", {"power": kwargs.get("power", 1.0), "lr_end": kwargs.get("lr_end", floor * peak)}, warmup
        )
    if kind == "constant":
        return TransformersSchedule("constant_with_warmup" if warmup else "constant", {}, warmup)
    if kind == "inverse_sqrt":
        return TransformersSchedule("inverse_sqrt", kwargs, warmup)
    return None


def _recipe_multipliers(recipe, total: int) -> list[float]:
    timeline = Timeline(num_examples=total, per_device_train_batch_size=1, max_steps=total)
    return recipe.plan(timeline).schedule.trace()


def _transformers_lrs(spelling: TransformersSchedule, peak: float, total: int) -> list[float]:
    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    w = spelling.warmup_steps
    warmup = w if w >= 1 else math.ceil(total * w)  # TrainingArguments.get_warmup_steps
    scheduler = get_scheduler(
        spelling.lr_scheduler_type,
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=total,
        scheduler_specific_kwargs=dict(spelling.lr_scheduler_kwargs),
    )
    # Every schedule get_scheduler builds for these names is a LambdaLR: read its multiplier per step
    # (the LR the Trainer's step s trains at is base LR x lambda(s)) without stepping an optimizer.
    (multiplier,) = scheduler.lr_lambdas
    return [peak * multiplier(step) for step in range(total)]


def transformers_spelling(recipe, peak: float) -> TransformersSchedule | None:
    """The ``TrainingArguments`` schedule fields that reproduce ``recipe``'s LR exactly at peak ``peak``, or
    ``None`` when ``transformers.get_scheduler`` has no schedule equal to it at every step."""
    spelling = _candidate(recipe, peak)
    if spelling is None:
        return None
    key = (repr(recipe), peak)
    if key not in _CHECKED:
        _CHECKED[key] = _equal_at_every_step(recipe, spelling, peak)
    return spelling if _CHECKED[key] else None


_CHECKED: dict[tuple[str, float], bool] = {}


def _equal_at_every_step(recipe, spelling: TransformersSchedule, peak: float) -> bool:
    checked = 0
    for total in CHECK_TOTALS:
        try:
            ours = [peak * m for m in _recipe_multipliers(recipe, total)]
        except ConfigError:
            continue  # a length the recipe itself refuses (warmup longer than training) is never run
        try:
            theirs = _transformers_lrs(spelling, peak, total)
        except (TypeError, ValueError, ZeroDivisionError):
            return False  # a spelling transformers refuses for some length is no spelling
        if any(not math.isclose(a, b, rel_tol=1e-9, abs_tol=peak * 1e-12) for a, b in zip(ours, theirs)):
            return False
        checked += 1
    return checked > 0


def stock_trainer_name(schedule_type: str) -> str:
    """``lr_scheduler_type`` for a schedule with no transformers spelling: ``transformers.SchedulerType``
    refuses it, and its message then says what to use instead."""
    return f"{schedule_type} [{NEEDS_RECIPE_TRAINER}]"
