"""A schedule built for one run: the LR multiplier per optimizer step, the momentum schedule where a type
cycles it, and the transitions (end of warmup, restarts, step drops, start of cool-down) that plots mark and
the spike monitor lines loss spikes up against; and the run sizes a builder reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ftrecipes.config import schedules as S
from ftrecipes.config.timeline import Duration, resolve_duration


@dataclass(frozen=True)
class Transition:
    """A step where the schedule changes regime (``kind``: warmup_end, restart, step_drop, decay_start)."""

    step: int
    kind: str
    label: str


@dataclass
class BuiltSchedule:
    """A schedule ready to drive an optimizer: ``lr(step)`` multiplies each param group's peak LR."""

    lr: S.Schedule
    total_steps: int
    warmup_steps: int
    momentum: S.Schedule | None = None
    transitions: list[Transition] = field(default_factory=list)
    metric_driven: bool = False  # True for reduce-on-plateau: feed validation metrics to ``lr.observe``

    def trace(self, steps: int | None = None) -> list[float]:
        """Multipliers for steps ``0 .. steps-1`` (default: the whole run). Stateful schedules are
        traced as they stand now (no future metric is assumed)."""
        return [self.lr(s) for s in range(self.total_steps if steps is None else steps)]


@dataclass(frozen=True)
class Sizes:
    """What a builder needs to know about the run, besides its own keyword arguments."""

    total_steps: int
    warmup_steps: int
    steps_per_epoch: int | None
    warmup_type: str = "linear"
    warmup_start: float = 0.0
    warmup_offset: int = 1
    floor: float = 0.0
    greater_is_better: bool = True
    peak_lr: float | None = None  # the run's peak LR, to turn absolute kwargs (min_lr, lr_end, eps) into fractions

    def duration(self, value: Duration, field_name: str) -> int:
        return resolve_duration(
            value, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, field=field_name
        )
