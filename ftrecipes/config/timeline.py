"""Training time in optimizer steps.

Every duration in a recipe — warmup, total length, milestones, restart periods — is resolved here to a
number of **optimizer steps** from the sizes of the run::

    global_batch      = per_device_batch * num_processes * gradient_accumulation_steps
    batches_per_rank  = ceil(ceil(N / per_device_batch) / num_processes)    (drop_last: floors)
    steps_per_epoch   = max(1, ceil(batches_per_rank / gradient_accumulation_steps))
    total_steps       = max_steps if max_steps > 0 else ceil(num_train_epochs * steps_per_epoch)

which is exactly what ``transformers.Trainer`` computes (``set_initial_training_values``) over a
dataloader sharded by Accelerate with ``even_batches=True`` — the tests check it against Trainer's own
count. Durations (``500``, ``0.05``, ``"5%"``, ``"2ep"``) are parsed by :mod:`ftrecipes.config.durations`
and resolved here against these sizes.

A run whose data set has no length (a streaming data set) has ``num_examples=None``: it needs
``max_steps > 0``, and durations in epochs cannot be resolved in it.

Like the rest of the config layer this module imports neither torch nor transformers; a run's
``TrainingArguments`` are read by attribute (:meth:`Timeline.from_training_args`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ftrecipes.config.durations import Duration, resolve_duration
from ftrecipes.config.errors import ConfigError


def global_batch_size(per_device_train_batch_size: int, num_processes: int, gradient_accumulation_steps: int) -> int:
    """Examples one optimizer step consumes across all processes: ``per_device * processes * accumulation``."""
    return int(per_device_train_batch_size) * max(1, int(num_processes)) * int(gradient_accumulation_steps)


def args_global_batch_size(args, num_processes: int | None = None) -> int:
    """:func:`global_batch_size` of a ``TrainingArguments`` (its ``world_size`` unless ``num_processes`` is given)."""
    processes = num_processes if num_processes is not None else getattr(args, "world_size", 1)
    return global_batch_size(args.per_device_train_batch_size, processes, args.gradient_accumulation_steps)


@dataclass(frozen=True)
class Timeline:
    """The sizes of one run and the optimizer-step counts that follow from them."""

    num_examples: Optional[int]
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
        if self.num_examples is not None and self.num_examples < 0:
            raise ConfigError("num_examples", self.num_examples, "cannot be negative")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ConfigError(
                "num_train_epochs",
                self.num_train_epochs,
                "no training length",
                "set num_train_epochs > 0 or max_steps > 0",
            )
        if self.max_steps <= 0 and self.num_examples is None:
            raise ConfigError(
                "max_steps", self.max_steps, "a data set without a length needs a step budget", "set max_steps > 0"
            )

    @classmethod
    def from_training_args(
        cls, args: Any, num_examples: Optional[int], num_training_steps: Optional[int] = None
    ) -> "Timeline":
        """The timeline of a Trainer run with ``args`` (a ``TrainingArguments``, read by attribute)
        over ``num_examples`` training rows (``None`` for a data set without a length).

        ``num_training_steps`` — what Trainer passes to ``create_scheduler`` — fixes the total when
        given, so a schedule built inside Trainer spans exactly the loop that steps it, while
        ``steps_per_epoch`` (for durations in epochs) still comes from the data set's size.
        """
        return cls(
            num_examples=num_examples,
            per_device_train_batch_size=args.per_device_train_batch_size,
            num_processes=max(1, args.world_size),
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            num_train_epochs=args.num_train_epochs,
            max_steps=num_training_steps if num_training_steps is not None else args.max_steps,
            dataloader_drop_last=args.dataloader_drop_last,
        )

    @property
    def global_batch_size(self) -> int:
        """Examples consumed by one optimizer step across all processes."""
        return global_batch_size(self.per_device_train_batch_size, self.num_processes, self.gradient_accumulation_steps)

    @property
    def batches_per_process(self) -> Optional[int]:
        """Micro-batches each process sees per epoch (Accelerate's ``BatchSamplerShard`` length)."""
        if self.num_examples is None:
            return None
        b, p = self.per_device_train_batch_size, self.num_processes
        if self.dataloader_drop_last:
            return (self.num_examples // b) // p
        return math.ceil(math.ceil(self.num_examples / b) / p)

    @property
    def steps_per_epoch(self) -> Optional[int]:
        """Optimizer steps per epoch; a partial accumulation window at the end of an epoch still steps."""
        if self.batches_per_process is None:
            return None
        return max(1, math.ceil(self.batches_per_process / self.gradient_accumulation_steps))

    @property
    def total_steps(self) -> int:
        if self.max_steps > 0:
            return int(self.max_steps)
        return math.ceil(self.num_train_epochs * self.steps_per_epoch)

    def resolve(self, duration: Duration, field: str = "duration") -> int:
        """``duration`` in optimizer steps (see :mod:`ftrecipes.config.durations` for the accepted forms)."""
        return resolve_duration(
            duration, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, field=field
        )
