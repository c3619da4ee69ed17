"""Durations: the one parser of "how long" for warmup, milestones, restart periods and intervals.

A duration is given in one of three units, each with its own spelling, and resolves to optimizer steps:

* **steps** — an integer: ``500``, ``"500"``, ``"500steps"`` -> ``500``;
* **fraction of training** — a float in ``[0, 1)`` or a percentage: ``0.05``, ``"0.05"``, ``"5%"``
  -> ``ceil(total_steps * f)``, rounded up as ``TrainingArguments.get_warmup_steps`` does;
* **epochs** — ``"2ep"``, ``"0.5ep"``, ``"1epoch"``, ``"3 epochs"`` -> ``ceil(e * steps_per_epoch)``.

The type decides the unit, as in transformers 5.x (``warmup_steps`` is an ``int`` count or a float
below 1 read as a ratio of training). A float of 1 or more — ``1.0``, ``2.5``, ``500.0`` — is refused
with one line: read as steps, ``1.0`` would be one step while ``0.99`` is 99% of training, so a float
that is not a fraction gets no meaning of its own. Write ``1`` for a step or ``"100%"`` for the whole run.

``TrainingArguments`` intervals (``eval_steps``, ``save_steps``, ``logging_steps``) take steps or a
fraction of training, which Trainer resolves itself against its own step count; an interval in
epochs is refused (:func:`training_interval`) with the fix ``--eval_strategy epoch``: Trainer has no
"every k epochs" interval, and resolving one would need the data set's size before the arguments exist.

This module imports neither torch nor transformers (the config layer stays light).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Union

from ftrecipes.config.errors import ConfigError

Duration = Union[int, float, str]

STEPS, FRACTION, EPOCHS = "steps", "fraction", "epochs"

DURATION_FIX = "give optimizer steps as an integer (500), a fraction of training (0.05 or '5%') or epochs ('1ep')"
INTERVAL_FIX = "give optimizer steps as an integer (500) or a fraction of training (0.05 or '5%')"

_EPOCHS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*ep(?:ochs?)?$", re.IGNORECASE)
_PERCENT = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*%$")
_STEPS = re.compile(r"^(\d+)\s*(?:steps?)?$", re.IGNORECASE)
_FRACTIONAL_STEPS = re.compile(r"^(\d+\.\d*|\.\d+)\s*steps?$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedDuration:
    """A duration with its unit made explicit: ``value`` steps, a ``value`` fraction or ``value`` epochs."""

    unit: str  # STEPS, FRACTION or EPOCHS
    value: float

    def steps(
        self, *, total_steps: int, steps_per_epoch: int | None = None, field: str = "duration", given: object = None
    ) -> int:
        """Optimizer steps of this duration in a run of ``total_steps`` (``steps_per_epoch`` for epochs)."""
        if self.unit == STEPS:
            return int(self.value)
        if self.unit == FRACTION:
            return math.ceil(total_steps * self.value)
        if steps_per_epoch is None:
            raise ConfigError(
                field,
                self if given is None else given,
                "epochs need the data set's size to resolve",
                "give optimizer steps or a fraction of training instead",
            )
        return math.ceil(self.value * steps_per_epoch)

    def exact_steps(
        self, *, total_steps: int, steps_per_epoch: int | None = None, field: str = "duration", given: object = None
    ) -> float:
        """As :meth:`steps`, without rounding (a restart period may be 12.5 steps)."""
        if self.unit == STEPS:
            return float(self.value)
        if self.unit == FRACTION:
            return total_steps * self.value
        if steps_per_epoch is None:
            raise ConfigError(
                field,
                self if given is None else given,
                "epochs need the number of steps per epoch",
                "give optimizer steps or a fraction of training instead",
            )
        return self.value * steps_per_epoch


def _ambiguous_float(field: str, value: object, number: float) -> ConfigError:
    steps = f"{int(number)} without the decimal point" if number.is_integer() else f"an integer (e.g. {round(number)})"
    return ConfigError(
        field,
        value,
        "a float is read as a fraction of training and must lie in [0, 1)",
        f"write {steps} for optimizer steps, or a fraction of training below 1 or as a percentage (0.05 or '5%')",
    )


def parse_duration(value: object, field: str = "duration", *, fractional_steps: bool = False) -> ParsedDuration:
    """The unit and amount of ``value``; a :class:`ConfigError` naming ``field`` for anything else.

    ``fractional_steps`` is for lengths that need not be whole steps (SGDR's restart period, which
    Hugging Face's ``num_cycles`` makes fractional): there a number of 1 or more, ``12.5`` or
    ``"12.5steps"``, is that many steps instead of an error; below 1 it is still a fraction of training.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(field, value, "is not a duration", DURATION_FIX)
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(field, value, "cannot be negative", DURATION_FIX)
        return ParsedDuration(STEPS, value)
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(field, value, "must be a finite non-negative number", DURATION_FIX)
        if value >= 1.0:
            if fractional_steps:
                return ParsedDuration(STEPS, value)
            raise _ambiguous_float(field, value, value)
        return ParsedDuration(FRACTION, value)
    text = value.strip()
    if m := _PERCENT.match(text):
        percent = float(m.group(1))
        if percent > 100:
            raise ConfigError(field, value, "a percentage cannot exceed 100%", DURATION_FIX)
        return ParsedDuration(FRACTION, percent / 100.0)
    if m := _EPOCHS.match(text):
        return ParsedDuration(EPOCHS, float(m.group(1)))
    if m := _STEPS.match(text):
        return ParsedDuration(STEPS, int(m.group(1)))
    if fractional_steps and (m := _FRACTIONAL_STEPS.match(text)):
        text = m.group(1)
    try:
        number = float(text)  # "0.05", "1e-2", "-3", "1.0"
    except ValueError:
        raise ConfigError(field, value, "is not a duration", DURATION_FIX) from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(field, value, "must be a finite non-negative number", DURATION_FIX)
    if number >= 1.0:
        if fractional_steps:
            return ParsedDuration(STEPS, number)
        raise _ambiguous_float(field, value, number)
    return ParsedDuration(FRACTION, number)


def resolve_duration(
    value: object, *, total_steps: int, steps_per_epoch: int | None = None, field: str = "duration"
) -> int:
    """``value`` in optimizer steps for a run of ``total_steps`` (and ``steps_per_epoch`` for epochs)."""
    return parse_duration(value, field).steps(
        total_steps=total_steps, steps_per_epoch=steps_per_epoch, field=field, given=value
    )


def check_duration(value: object, field: str = "duration") -> None:
    """Raise the :class:`ConfigError` of a malformed duration (checked before the run's sizes exist)."""
    parse_duration(value, field)


def normalize_duration(value: object, field: str = "duration") -> Duration:
    """The canonical value of a duration read from YAML or the command line: a number-like string
    becomes its number (``"500"`` -> ``500``, ``"0.05"`` -> ``0.05``); unit strings (``"5%"``,
    ``"2ep"``, ``"300steps"``) stay as written. Malformed values raise."""
    parsed = parse_duration(value, field)
    if isinstance(value, str):
        text = value.strip()
        try:
            float(text)
        except ValueError:
            return text
        return int(parsed.value) if parsed.unit == STEPS else parsed.value
    return value  # type: ignore[return-value]


def training_interval(value: object, field: str) -> Union[int, float]:
    """``value`` as a ``TrainingArguments`` interval (``eval_steps``, ``save_steps``, ``logging_steps``):
    an ``int`` of steps or a float ratio in ``(0, 1)`` that Trainer multiplies by its step count.

    Zero is refused (Trainer needs a positive interval), and so are epochs (see the module docstring).
    """
    parsed = parse_duration(value, field)
    if parsed.unit == EPOCHS:
        kind = field.lstrip("-").split("_")[0]  # eval_steps -> eval, --save_steps -> save
        strategy = f"--{kind}_strategy epoch" if kind in ("eval", "save", "logging") else "an epoch strategy"
        raise ConfigError(
            field,
            value,
            "a Trainer interval cannot be given in epochs",
            f"use {strategy} for once per epoch, or give optimizer steps (500) or a fraction of training ('10%')",
        )
    if parsed.value <= 0:
        raise ConfigError(field, value, "must be positive", INTERVAL_FIX)
    return int(parsed.value) if parsed.unit == STEPS else float(parsed.value)
