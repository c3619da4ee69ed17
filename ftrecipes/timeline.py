"""Training time in optimizer steps.

Every duration in a recipe — warmup, total length, milestones, restart periods — is resolved here to a
number of **optimizer steps** from the sizes of the run::

    global_batch      = per_device_batch * num_processes * gradient_accumulation_steps
    batches_per_rank  = ceil(ceil(N / per_device_batch) / num_processes)    (drop_last: floors)
    steps_per_epoch   = max(1, ceil(batches_per_rank / gradient_accumulation_steps))
    total_steps       = max_steps if max_steps > 0 else ceil(num_train_epochs * steps_per_epoch)

which is exactly what ``transformers.Trainer`` computes (``set_initial_training_values``) over a
dataloader sharded by Accelerate with ``even_batches=True`` — the tests check it against Trainer's own
count. A duration may be given as

* an ``int`` (``500``): that many optimizer steps;
* a ``float`` in ``[0, 1)`` (``0.05``) or a percent string (``"5%"``): that fraction of ``total_steps``,
  rounded up like ``TrainingArguments.get_warmup_steps``;
* an epoch string (``"2ep"``, ``"0.5ep"``): that many epochs of optimizer steps, rounded up;
* a step string (``"500"`` or ``"500steps"``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Union

from .errors import ConfigError

Duration = Union[int, float, str]

_EPOCHS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*ep(?:ochs?)?\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")
_STEPS = re.compile(r"^\s*(\d+)\s*(?:steps?)?\s*$")
_FRACTION = re.compile(r"^\s*(0?\.\d+|0)\s*$")


@dataclass(frozen=True)
class Timeline:
    """The sizes of one run and the optimizer-step counts that follow from them."""

    num_examples: int
    per_device_train_batch_size: int
    num_processes: int = 1
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 3.0
    max_steps: int = -1
    dataloader_drop_last: bool = False

    def __post_init__(self):
        for name in ("per_device_train_batch_size", "num_processes", "gradient_accumulation_steps"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(name, getattr(self, name), "must be a positive integer", f"set {name} >= 1")
        if self.num_examples < 0:
            raise ConfigError("num_examples", self.num_examples, "cannot be negative")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ConfigError("num_train_epochs", self.num_train_epochs, "no training length", "set num_train_epochs > 0 or max_steps > 0")

    @property
    def global_batch_size(self) -> int:
        """Examples consumed by one optimizer step across all processes."""
        return self.per_device_train_batch_size * self.num_processes * self.gradient_accumulation_steps

    @property
    def batches_per_process(self) -> int:
        """Micro-batches each process sees per epoch (Accelerate's ``BatchSamplerShard`` length)."""
        b, p = self.per_device_train_batch_size, self.num_processes
        if self.dataloader_drop_last:
            return (self.num_examples // b) // p
        return math.ceil(math.ceil(self.num_examples / b) / p)

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch; a partial accumulation window at the end of an epoch still steps."""
        return max(1, math.ceil(self.batches_per_process / self.gradient_accumulation_steps))

    @property
    def total_steps(self) -> int:
        if self.max_steps > 0:
            return int(self.max_steps)
        return math.ceil(self.num_train_epochs * self.steps_per_epoch)

    def resolve(self, duration: Duration, field: str = "duration") -> int:
        """``duration`` in optimizer steps (see the module docstring for the accepted forms)."""
        return resolve_duration(duration, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, field=field)


def resolve_duration(duration: Duration, *, total_steps: int, steps_per_epoch: int | None = None, field: str = "duration") -> int:
    """Turn a duration into optimizer steps given the run's ``total_steps`` (and ``steps_per_epoch``
    for epoch strings). Raises :class:`ConfigError` naming ``field`` for anything else."""
    fix = "give steps (500), a fraction of training (0.05 or '5%') or epochs ('1ep')"
    if isinstance(duration, bool):
        raise ConfigError(field, duration, "is not a duration", fix)
    if isinstance(duration, int):
        if duration < 0:
            raise ConfigError(field, duration, "cannot be negative", fix)
        return duration
    if isinstance(duration, float):
        if duration.is_integer() and duration >= 1:
            return int(duration)
        if not 0.0 <= duration < 1.0:
            raise ConfigError(field, duration, "a fractional duration must lie in [0, 1)", fix)
        return math.ceil(total_steps * duration)
    if isinstance(duration, str):
        if m := _PERCENT.match(duration):
            percent = float(m.group(1))
            if percent > 100:
                raise ConfigError(field, duration, "a percentage cannot exceed 100%", fix)
            return math.ceil(total_steps * percent / 100.0)
        if m := _EPOCHS.match(duration):
            if steps_per_epoch is None:
                raise ConfigError(field, duration, "epochs need the dataset size to resolve", "give steps or a fraction instead")
            return math.ceil(float(m.group(1)) * steps_per_epoch)
        if m := _STEPS.match(duration):
            return int(m.group(1))
        if m := _FRACTION.match(duration):
            return resolve_duration(float(m.group(1)), total_steps=total_steps, steps_per_epoch=steps_per_epoch, field=field)
    raise ConfigError(field, duration, "is not a duration", fix)


def is_duration(value: object) -> bool:
    """Whether ``value`` has the shape of a duration (used by recipe validation before sizes are known)."""
    try:
        resolve_duration(value, total_steps=100, steps_per_epoch=10)  # type: ignore[arg-type]
    except ConfigError:
        return False
    return True
