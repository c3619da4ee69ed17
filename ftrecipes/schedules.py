"""Learning-rate schedules as pure functions of the optimizer step.

A *schedule* maps the optimizer-step count ``step = 0, 1, 2, ...`` to a **multiplier of the peak
learning rate** (``learning_rate`` in a recipe is always the peak). Step ``s`` is the ``s``-th
optimizer update — never a micro-batch, never an epoch — so the same schedule gives the same trace on
one process or many, with or without gradient accumulation.

Every primitive is a module-level function with keyword-only parameters, bound with
:func:`functools.partial`; the result is picklable, so a scheduler built from it checkpoints cleanly
(the same trick as ``transformers.optimization``). Primitives are composed with :func:`join`
(optax's ``join_schedules``) rather than through one long factory.

Conventions shared by every decay: the decay runs over ``t = 0 .. decay_steps`` measured from its own
start, equals 1 at ``t = 0``, reaches its floor at ``t = decay_steps`` and stays there afterwards.
Floors are fractions of the peak (``min_lr_rate``).

The stateful, metric-driven schedule (reduce-on-plateau with warmup) is :class:`PlateauSchedule`.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Sequence

Schedule = Callable[[int], float]
"""``step -> multiplier`` of the peak LR (or, for momentum schedules, the absolute momentum)."""


# --------------------------------------------------------------------------------------------------
# Constant


def _constant(step: int, *, value: float) -> float:
    return value


def constant(value: float = 1.0) -> Schedule:
    """``m(t) = value`` for every step."""
    return partial(_constant, value=float(value))


# --------------------------------------------------------------------------------------------------
# Warmups: rise from ``start`` (a fraction of the peak) to 1 over ``warmup_steps``.


def _linear_warmup(step: int, *, warmup_steps: int, start: float, offset: int) -> float:
    if warmup_steps <= 0:
        return 1.0
    progress = min(1.0, max(0, step + offset) / warmup_steps)
    return start + (1.0 - start) * progress


def linear_warmup(warmup_steps: int, start: float = 0.0, offset: int = 0) -> Schedule:
    """Linear warmup ``m(t) = start + (1 - start) * min(1, (t + offset) / W)``.

    ``offset=0`` is the Hugging Face convention (step 0 trains at ``start``; the peak is first used at
    step ``W``). ``offset=1`` is the convention of the reference document's examples,
    ``lr_peak * (step + 1) / W``: step 0 already trains at ``peak / W`` and step ``W - 1`` at the
    peak, so no optimizer step is spent at LR 0.
    """
    return partial(_linear_warmup, warmup_steps=int(warmup_steps), start=float(start), offset=int(offset))


def _exponential_warmup(step: int, *, warmup_steps: int, start: float, offset: int) -> float:
    if warmup_steps <= 0:
        return 1.0
    progress = min(1.0, max(0, step + offset) / warmup_steps)
    return start ** (1.0 - progress)


def exponential_warmup(warmup_steps: int, start: float = 0.01, offset: int = 0) -> Schedule:
    """Multiplicative warmup ``m(t) = start^(1 - min(1, (t + offset)/W))``.

    The LR grows by the constant factor ``start^(-1/W)`` per step, from ``start * peak`` to the peak;
    ``start`` must be in (0, 1) because a geometric ramp cannot begin at 0.
    """
    return partial(_exponential_warmup, warmup_steps=int(warmup_steps), start=float(start), offset=int(offset))


# --------------------------------------------------------------------------------------------------
# Decays: from 1 at t = 0 to ``floor`` at t = decay_steps.


def _progress(step: int, decay_steps: int) -> float:
    if decay_steps <= 0:
        return 1.0
    return min(1.0, max(0, step) / decay_steps)


def _cosine_decay(step: int, *, decay_steps: int, floor: float) -> float:
    cosine = 0.5 * (1.0 + math.cos(math.pi * _progress(step, decay_steps)))
    return floor + (1.0 - floor) * cosine


def cosine_decay(decay_steps: int, floor: float = 0.0) -> Schedule:
    """Cosine annealing ``m(t) = floor + (1 - floor) * 0.5 * (1 + cos(pi * t / T))``, ``t`` clipped to ``T``.

    With ``floor = lr_min / lr_max`` this is the reference document's
    ``lr_min + 0.5 (lr_max - lr_min)(1 + cos(pi t / T))`` divided by the peak.
    """
    return partial(_cosine_decay, decay_steps=int(decay_steps), floor=float(floor))


def _polynomial_decay(step: int, *, decay_steps: int, power: float, floor: float) -> float:
    return floor + (1.0 - floor) * (1.0 - _progress(step, decay_steps)) ** power


def polynomial_decay(decay_steps: int, power: float = 1.0, floor: float = 0.0) -> Schedule:
    """Polynomial decay ``m(t) = floor + (1 - floor) * (1 - t/T)^p`` (``p = 1`` is linear decay)."""
    return partial(_polynomial_decay, decay_steps=int(decay_steps), power=float(power), floor=float(floor))


def linear_decay(decay_steps: int, floor: float = 0.0) -> Schedule:
    """Linear decay ``m(t) = floor + (1 - floor) * (1 - t/T)``."""
    return polynomial_decay(decay_steps, power=1.0, floor=floor)


def _sqrt_decay(step: int, *, decay_steps: int, floor: float) -> float:
    return floor + (1.0 - floor) * (1.0 - math.sqrt(_progress(step, decay_steps)))


def sqrt_decay(decay_steps: int, floor: float = 0.0) -> Schedule:
    """The "1 - sqrt" cool-down often used after a stable phase: ``m(t) = floor + (1 - floor)(1 - sqrt(t/T))``."""
    return partial(_sqrt_decay, decay_steps=int(decay_steps), floor=float(floor))


def _multistep_decay(step: int, *, milestones: tuple[int, ...], gamma: float) -> float:
    return gamma ** bisect.bisect_right(milestones, step)


def multistep_decay(milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    """Step decay ``m(t) = gamma^k`` where ``k`` = number of milestones ``<= t``.

    The classic CNN baseline (reference "Strategy B") is ``gamma = 0.1`` at 30%, 60% and 90% of training.
    """
    return partial(_multistep_decay, milestones=tuple(int(m) for m in milestones), gamma=float(gamma))


def _exponential_decay(step: int, *, gamma: float, floor: float) -> float:
    return max(floor, gamma ** max(0, step))


def exponential_decay(gamma: float, floor: float = 0.0) -> Schedule:
    """Exponential decay ``m(t) = max(floor, gamma^t)``: the LR is multiplied by ``gamma`` every step."""
    return partial(_exponential_decay, gamma=float(gamma), floor=float(floor))


def _inverse_sqrt_decay(step: int, *, timescale: int) -> float:
    return math.sqrt(timescale / (timescale + max(0, step)))


def inverse_sqrt_decay(timescale: int) -> Schedule:
    """``m(t) = sqrt(tau / (tau + t))``: after a warmup of ``tau`` steps this continues the original
    Transformer schedule, whose post-warmup branch is ``(step)^-0.5`` normalised to 1 at ``step = tau``."""
    return partial(_inverse_sqrt_decay, timescale=max(1, int(timescale)))


# --------------------------------------------------------------------------------------------------
# Composition


def _join(step: int, *, schedules: tuple[Schedule, ...], boundaries: tuple[int, ...]) -> float:
    index = bisect.bisect_right(boundaries, step)
    start = boundaries[index - 1] if index > 0 else 0
    return schedules[index](step - start)


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Piecewise schedule: ``schedules[i]`` runs on ``[boundaries[i-1], boundaries[i])`` with its own
    step counter restarted at 0 (optax ``join_schedules``). ``len(boundaries) == len(schedules) - 1``."""
    schedules, boundaries = tuple(schedules), tuple(int(b) for b in boundaries)
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"join needs len(boundaries) == len(schedules) - 1, got {len(boundaries)=}, {len(schedules)=}")
    if list(boundaries) != sorted(boundaries):
        raise ValueError(f"join boundaries must be sorted, got {boundaries=}")
    return partial(_join, schedules=schedules, boundaries=boundaries)


# --------------------------------------------------------------------------------------------------
# Cosine with warm restarts (SGDR)


def sgdr_cycle(step: int, period: int, period_mult: float) -> tuple[int, int, int]:
    """``(cycle index, step inside the cycle, cycle length)`` for SGDR with first period ``period``
    and each later period ``period_mult`` times longer (lengths rounded to whole steps)."""
    step = max(0, int(step))
    if period_mult == 1.0:
        return step // period, step % period, period
    cycle, start, length = 0, 0, period
    while step >= start + length:
        start += length
        cycle += 1
        length = max(1, round(period * period_mult**cycle))
    return cycle, step - start, length


def sgdr_restarts(period: int, period_mult: float, until: int) -> list[int]:
    """Steps ``< until`` at which SGDR restarts (the LR jumps back up)."""
    restarts, start, cycle, length = [], 0, 0, period
    while start + length < until:
        start += length
        cycle += 1
        restarts.append(start)
        length = period if period_mult == 1.0 else max(1, round(period * period_mult**cycle))
    return restarts


def _sgdr(step: int, *, period: int, period_mult: float, peak_decay: float, floor: float) -> float:
    cycle, t, length = sgdr_cycle(step, period, period_mult)
    peak = peak_decay**cycle
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * t / length))


def sgdr(period: int, period_mult: float = 1.0, peak_decay: float = 1.0, floor: float = 0.0) -> Schedule:
    """Cosine annealing with warm restarts (Loshchilov & Hutter, SGDR).

    In cycle ``i`` (length ``T_i = period * period_mult^i``, peak ``peak_decay^i``) at step ``t`` inside
    the cycle: ``m = floor + (peak_decay^i - floor) * 0.5 * (1 + cos(pi * t / T_i))``.
    """
    return partial(_sgdr, period=int(period), period_mult=float(period_mult), peak_decay=float(peak_decay), floor=float(floor))


# --------------------------------------------------------------------------------------------------
# One-cycle


def _cosine_between(start: float, end: float, progress: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _one_cycle(step: int, *, rise_steps: int, total_steps: int, low: float, high: float, final: float) -> float:
    if step < rise_steps:
        return _cosine_between(low, high, step / rise_steps)
    fall_steps = max(1, total_steps - rise_steps)
    return _cosine_between(high, final, min(1.0, (step - rise_steps) / fall_steps))


def one_cycle(total_steps: int, rise_steps: int, div_factor: float = 25.0, final_div_factor: float = 1e4) -> Schedule:
    """One-cycle policy (Smith): cosine rise from ``1/div_factor`` to 1 over ``rise_steps``, then cosine
    fall to ``1/(div_factor * final_div_factor)`` at ``total_steps`` (the shape of torch's ``OneCycleLR``)."""
    low = 1.0 / div_factor
    return partial(
        _one_cycle, rise_steps=int(rise_steps), total_steps=int(total_steps), low=low, high=1.0, final=low / final_div_factor
    )


def one_cycle_momentum(total_steps: int, rise_steps: int, base_momentum: float = 0.85, max_momentum: float = 0.95) -> Schedule:
    """The momentum (or Adam beta1) of one-cycle, cycled inversely to the LR: ``max_momentum`` at the
    start, ``base_momentum`` at the LR peak, back to ``max_momentum`` at the end. Returns absolute values."""
    return partial(
        _one_cycle, rise_steps=int(rise_steps), total_steps=int(total_steps), low=max_momentum, high=base_momentum, final=max_momentum
    )


# --------------------------------------------------------------------------------------------------
# The original Transformer schedule


def transformer_lr(step: int, *, d_model: int, warmup_steps: int, scale_factor: float = 1.0) -> float:
    """The absolute LR of "Attention is all you need": ``scale * d_model^-0.5 * min(s^-0.5, s * W^-1.5)``
    with ``s = step + 1`` (the paper counts steps from 1). Its maximum, at ``s = W``, is
    ``scale * (d_model * W)^-0.5``; :func:`transformer_peak_lr` returns it."""
    s = max(1, step + 1)
    return scale_factor * d_model**-0.5 * min(s**-0.5, s * warmup_steps**-1.5)


def transformer_peak_lr(d_model: int, warmup_steps: int, scale_factor: float = 1.0) -> float:
    """Peak of :func:`transformer_lr`: ``scale * (d_model * warmup_steps)^-0.5``."""
    return scale_factor * (d_model * warmup_steps) ** -0.5


def inverse_sqrt(warmup_steps: int) -> Schedule:
    """The Transformer schedule relative to its peak: ``min((t+1)/W, sqrt(W/(t+1)))``.

    Multiplied by :func:`transformer_peak_lr` it equals :func:`transformer_lr` at every step; multiplied
    by any other peak it is the same shape at a chosen peak LR (fairseq's ``inverse_sqrt``).
    """
    warmup_steps = max(1, int(warmup_steps))
    # Linear warmup with offset 1, then (t+1)^-0.5 normalised to 1 at t+1 = W, i.e. sqrt(W / (W + u))
    # where u = t - (W - 1) counts steps after the last warmup step.
    return join([linear_warmup(warmup_steps, offset=1), inverse_sqrt_decay(warmup_steps)], [warmup_steps - 1])


# --------------------------------------------------------------------------------------------------
# Reduce-on-plateau with warmup (stateful)


@dataclass
class PlateauSchedule:
    """Warmup, then a multiplier that drops by ``factor`` when the validation metric stops improving.

    ``m(t) = warmup(t) * scale`` where ``scale`` starts at 1 and becomes ``max(floor, scale * factor)``
    when more than ``patience`` consecutive evaluations bring no improvement larger than ``threshold``
    (relative), followed by ``cooldown`` evaluations during which no drop happens (the rules of
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``, which cannot be used directly because the Trainer
    never steps it per optimizer step, so it cannot warm up). :meth:`observe` is called with each
    validation metric; :meth:`state_dict` / :meth:`load_state_dict` make it resumable.
    """

    warmup: Schedule = field(default_factory=constant)
    mode: str = "max"
    factor: float = 0.5
    patience: int = 2
    threshold: float = 1e-4
    cooldown: int = 0
    floor: float = 0.0
    scale: float = 1.0
    best: float | None = None
    num_bad_evals: int = 0
    cooldown_left: int = 0
    drops: list = field(default_factory=list)  # (step, new scale) of every drop, for logs and plots

    def __call__(self, step: int) -> float:
        return self.warmup(step) * self.scale

    def _improved(self, metric: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "max":
            return metric > self.best * (1.0 + self.threshold) if self.best > 0 else metric > self.best * (1.0 - self.threshold)
        return metric < self.best * (1.0 - self.threshold) if self.best > 0 else metric < self.best * (1.0 + self.threshold)

    def observe(self, metric: float, step: int = 0) -> bool:
        """Record one validation metric; returns True when the LR was reduced."""
        metric = float(metric)
        if self._improved(metric):
            self.best, self.num_bad_evals = metric, 0
        else:
            self.num_bad_evals += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad_evals = 0
            return False
        if self.num_bad_evals > self.patience and self.scale > self.floor:
            self.scale = max(self.floor, self.scale * self.factor)
            self.cooldown_left, self.num_bad_evals = self.cooldown, 0
            self.drops.append((int(step), self.scale))
            return True
        return False

    _STATE = ("scale", "best", "num_bad_evals", "cooldown_left", "drops")

    def state_dict(self) -> dict:
        return {key: getattr(self, key) for key in self._STATE}

    def load_state_dict(self, state: dict) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])
        self.drops = [tuple(d) for d in self.drops]
