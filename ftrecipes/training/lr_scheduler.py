"""The adapter from a pure schedule to a checkpointable ``torch.optim.lr_scheduler.LRScheduler``.

``ScheduleLR`` sets, for every param group ``g`` at optimizer step ``t``::

    g["lr"] = g["initial_lr"] * lr(t)              # each group keeps its own peak
    g["momentum"] or g["betas"][0] = momentum(t)   # only when the schedule cycles momentum

The LR is computed in closed form from ``last_epoch`` (the number of ``step()`` calls so far, which
the Trainer makes once per optimizer step), never chained from the previous value, so restoring
``last_epoch`` from a checkpoint is enough for an exact resume at any step. Stateful schedules
(reduce-on-plateau, Hugging Face's GreedyLR) store their state in the scheduler's ``state_dict`` as well.
The object pickles because the schedules are ``functools.partial`` of module-level functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from ftrecipes.config.built_schedule import BuiltSchedule
from ftrecipes.config.schedules import Schedule


class ScheduleLR(LRScheduler):
    """Drive ``optimizer`` with ``schedule`` (a :class:`BuiltSchedule` or a bare ``step -> multiplier``)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: BuiltSchedule | Schedule,
        last_epoch: int = -1,
        steps_per_update: int = 1,
    ):
        # ``steps_per_update`` > 1 only for schedulers that are stepped several times per optimizer
        # update (``accelerator.prepare`` on N processes): the schedule then reads ``last_epoch // N``.
        self.steps_per_update = int(steps_per_update)
        built = schedule if isinstance(schedule, BuiltSchedule) else None
        self.lr_schedule: Schedule = built.lr if built else schedule
        self.momentum_schedule: Schedule | None = built.momentum if built else None
        self.built_schedule = built
        super().__init__(optimizer, last_epoch)

    @property
    def update_step(self) -> int:
        """Optimizer updates so far (``last_epoch`` counts ``step()`` calls)."""
        return self.last_epoch // self.steps_per_update

    def get_lr(self) -> list[float]:
        multiplier = self.lr_schedule(self.update_step)
        return [base_lr * multiplier for base_lr in self.base_lrs]

    def step(self, epoch: int | None = None) -> None:  # noqa: D401 - torch's signature
        super().step(epoch)
        if self.momentum_schedule is not None:
            self._apply_momentum(self.momentum_schedule(self.update_step))

    def _apply_momentum(self, momentum: float) -> None:
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (momentum, *tuple(group["betas"])[1:])
            elif "momentum" in group:
                group["momentum"] = momentum

    def current_momentum(self) -> float | None:
        """The momentum (or beta1) of the first param group, where the schedule cycles it."""
        if self.momentum_schedule is None:
            return None
        group = self.optimizer.param_groups[0]
        return float(group["betas"][0]) if "betas" in group else float(group.get("momentum", 0.0))

    def observe(self, metric: float, step: int | None = None) -> bool:
        """Feed a validation metric to a metric-driven schedule and apply its change (a reduction, or
        GreedyLR's raise) at once; returns whether the LR changed."""
        if not hasattr(self.lr_schedule, "observe"):
            return False
        reduced = self.lr_schedule.observe(metric, step=self.update_step if step is None else step)
        if reduced:
            values = self.get_lr()
            for group, lr in zip(self.optimizer.param_groups, values):
                group["lr"] = lr
            self._last_lr = values
        return reduced

    def state_dict(self) -> dict[str, Any]:
        # The schedule functions are rebuilt from the recipe; only the step count, the peaks and the
        # state of a stateful schedule are data.
        state = {
            key: value
            for key, value in self.__dict__.items()
            if key in ("last_epoch", "base_lrs", "_last_lr", "_step_count", "steps_per_update")
        }
        if hasattr(self.lr_schedule, "state_dict"):
            state["schedule_state"] = self.lr_schedule.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        schedule_state = state.pop("schedule_state", None)
        self.__dict__.update(state)
        if schedule_state is not None and hasattr(self.lr_schedule, "load_state_dict"):
            self.lr_schedule.load_state_dict(schedule_state)
        if self.momentum_schedule is not None:
            self._apply_momentum(self.momentum_schedule(self.update_step))
