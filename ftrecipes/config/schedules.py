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

The stateful, metric-driven schedules (reduce-on-plateau with warmup, and Hugging Face's GreedyLR)
are :class:`PlateauSchedule` and :class:`GreedySchedule`.
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
    step ``W``). ``offset=1`` is the convention of many training scripts (and avoids gpt-neox#1373's wasted step),
    ``lr_peak * (step + 1) / W``: step 0 already trains at ``peak / W`` and step ``W - 1`` at the
    peak, so no optimizer step is spent at LR 0.
    """
    return partial(_linear_warmup, warmup_steps=int(warmup_steps), start=float(start), offset=int(offset))


WARMUP_SHAPES = ("linear", "cosine", "1-sqrt")


def _warmup_shape(progress: float, shape: str) -> float:
    if shape == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * progress))
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(1.0 - progress)
    return progress


def _shaped_warmup(step: int, *, warmup_steps: int, start: float, offset: int, shape: str) -> float:
    if warmup_steps <= 0:
        return 1.0
    progress = min(1.0, max(0, step + offset) / warmup_steps)
    return start + (1.0 - start) * _warmup_shape(progress, shape)


def shaped_warmup(warmup_steps: int, start: float = 0.0, offset: int = 0, shape: str = "cosine") -> Schedule:
    """Warmup of a given shape ``m(t) = start + (1 - start) * f(p)``, ``p = min(1, (t + offset)/W)``, with
    ``f(p) = p`` ("linear"), ``0.5 (1 - cos(pi p))`` ("cosine") or ``1 - sqrt(1 - p)`` ("1-sqrt") —
    the three warmup shapes of Hugging Face's warmup-stable-decay schedule (``get_wsd_schedule``)."""
    if shape not in WARMUP_SHAPES:
        raise ValueError(f"unknown warmup shape {shape!r}; expected one of {WARMUP_SHAPES}")
    return partial(_shaped_warmup, warmup_steps=int(warmup_steps), start=float(start), offset=int(offset), shape=shape)


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


def _cosine_decay(step: int, *, decay_steps: int, floor: float, num_cycles: float = 0.5) -> float:
    cosine = 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * _progress(step, decay_steps)))
    return max(0.0, floor + (1.0 - floor) * cosine)


def cosine_decay(decay_steps: int, floor: float = 0.0, num_cycles: float = 0.5) -> Schedule:
    """Cosine annealing ``m(t) = floor + (1 - floor) * 0.5 * (1 + cos(2 pi n * t / T))``, ``t`` clipped to ``T``.

    ``n = num_cycles = 0.5`` (the default) is one half-wave down to the floor; with
    ``floor = lr_min / lr_max`` this is SGDR's (Loshchilov & Hutter 2017)
    ``lr_min + 0.5 (lr_max - lr_min)(1 + cos(pi t / T))`` divided by the peak. Other ``n`` are the
    ``num_cycles`` of Hugging Face's ``get_cosine_schedule_with_warmup`` (e.g. ``n = 1``: down and back up).
    """
    return partial(_cosine_decay, decay_steps=int(decay_steps), floor=float(floor), num_cycles=float(num_cycles))


def _hard_restarts(step: int, *, decay_steps: int, num_cycles: float, floor: float) -> float:
    progress = max(0, step) / max(1, decay_steps)
    if progress >= 1.0:
        return floor
    # The position inside the cycle is computed as Hugging Face computes it, ``(n * p) % 1``, so the
    # restart lands on the same step even where ``D / n`` is not a whole number.
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * ((float(num_cycles) * progress) % 1.0)))


def cosine_hard_restarts(decay_steps: int, num_cycles: float = 1.0, floor: float = 0.0) -> Schedule:
    """``num_cycles`` equal cosine cycles over ``decay_steps``, each restarting at the peak (Hugging Face's
    ``cosine_with_restarts``): ``m(t) = floor + (1 - floor) * 0.5 * (1 + cos(pi * ((n t / T) mod 1)))`` for
    ``t < T``, ``floor`` from ``T`` on. Periods ``T / n`` need not be whole steps."""
    return partial(_hard_restarts, decay_steps=int(decay_steps), num_cycles=float(num_cycles), floor=float(floor))


def hard_restart_steps(decay_steps: int, num_cycles: float) -> list[int]:
    """Steps ``0 < t < decay_steps`` at which :func:`cosine_hard_restarts` jumps back to the peak."""

    def position(t: int) -> float:
        return (float(num_cycles) * (t / max(1, decay_steps))) % 1.0

    steps: list[int] = []
    for k in range(1, math.ceil(num_cycles)):
        guess = math.ceil(k * decay_steps / num_cycles)
        steps += [
            t
            for t in (guess - 1, guess, guess + 1)
            if 0 < t < decay_steps and position(t) < position(t - 1) and t not in steps
        ]
    return steps


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

    The classic CNN baseline (He et al. 2016: x0.1 at fixed epochs) is ``gamma = 0.1`` at 30%, 60% and 90% of training.
    """
    return partial(_multistep_decay, milestones=tuple(int(m) for m in milestones), gamma=float(gamma))


def _exponential_decay(step: int, *, gamma: float, floor: float) -> float:
    return max(floor, gamma ** max(0, step))


def exponential_decay(gamma: float, floor: float = 0.0) -> Schedule:
    """Exponential decay ``m(t) = max(floor, gamma^t)``: the LR is multiplied by ``gamma`` every step."""
    return partial(_exponential_decay, gamma=float(gamma), floor=float(floor))


def _inverse_sqrt_decay(step: int, *, timescale: float) -> float:
    return math.sqrt(timescale / (timescale + max(0, step)))


def inverse_sqrt_decay(timescale: float) -> Schedule:
    """``m(t) = sqrt(tau / (tau + t))``: after a warmup of ``tau`` steps this continues the original
    Transformer schedule, whose post-warmup branch is ``(step)^-0.5`` normalised to 1 at ``step = tau``
    (Hugging Face's ``get_inverse_sqrt_schedule`` with ``timescale = tau``)."""
    if not timescale > 0:
        raise ValueError(f"inverse_sqrt_decay needs timescale > 0, got {timescale=}")
    return partial(_inverse_sqrt_decay, timescale=float(timescale))


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


def _shifted(step: int, *, schedule: Schedule, by: int) -> float:
    return schedule(step + by)


def shift(schedule: Schedule, by: int) -> Schedule:
    """``m(t) = schedule(t + by)`` (e.g. a decay whose first step already counts as one step of progress)."""
    return partial(_shifted, schedule=schedule, by=int(by))


# --------------------------------------------------------------------------------------------------
# Cosine with warm restarts (SGDR)


def sgdr_cycle(step: float, period: float, period_mult: float) -> tuple[int, float, float]:
    """``(cycle index, position inside the cycle, cycle length)`` for SGDR with a first period of
    ``period`` steps and each later one ``period_mult`` times longer. Neither needs to be whole: cycle
    ``i`` spans ``[S_i, S_i + period * period_mult^i)`` with ``S_i`` the sum of the earlier lengths, so
    a fractional period restarts on the first step at or after ``S_i`` (no rounding accumulates)."""
    step = max(0.0, float(step))
    period, period_mult = float(period), float(period_mult)
    if period_mult == 1.0:
        cycle = int(step // period)
        return cycle, step - cycle * period, period
    cycle, start, length = 0, 0.0, period
    while step >= start + length:
        start += length
        cycle += 1
        length = period * period_mult**cycle
    return cycle, step - start, length


def sgdr_restarts(period: float, period_mult: float, until: int) -> list[int]:
    """Steps ``< until`` at which SGDR restarts (the LR jumps back up): the first whole step that
    :func:`sgdr_cycle` places in each new cycle."""
    restarts, step = [], 0
    while True:
        cycle, position, length = sgdr_cycle(step, period, period_mult)
        # One step before the next cycle's nominal start, then forward: float round-off at the boundary
        # cannot make this disagree with sgdr_cycle.
        step = max(step + 1, math.ceil(step - position + length) - 1)
        while step < until and sgdr_cycle(step, period, period_mult)[0] == cycle:
            step += 1
        if step >= until:
            return restarts
        restarts.append(step)


def _sgdr(step: int, *, period: float, period_mult: float, peak_decay: float, floor: float) -> float:
    cycle, t, length = sgdr_cycle(step, period, period_mult)
    peak = peak_decay**cycle
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * t / length))


def sgdr(period: float, period_mult: float = 1.0, peak_decay: float = 1.0, floor: float = 0.0) -> Schedule:
    """Cosine annealing with warm restarts (Loshchilov & Hutter, SGDR).

    In cycle ``i`` (length ``T_i = period * period_mult^i``, peak ``peak_decay^i``) at position ``t``
    inside the cycle: ``m = floor + (peak_decay^i - floor) * 0.5 * (1 + cos(pi * t / T_i))``. With a whole
    ``period`` and integer ``period_mult`` this is torch's ``CosineAnnealingWarmRestarts(T_0=period,
    T_mult=period_mult, eta_min=floor * peak)`` stepped once per optimizer step; fractional periods and
    multipliers (which torch refuses) follow the same formula.
    """
    if not period > 0:
        raise ValueError(f"sgdr needs period > 0, got {period=}")
    return partial(
        _sgdr, period=float(period), period_mult=float(period_mult), peak_decay=float(peak_decay), floor=float(floor)
    )


# --------------------------------------------------------------------------------------------------
# One-cycle


def _anneal(start: float, end: float, pct: float, strategy: str) -> float:
    if strategy == "linear":
        return (end - start) * pct + start
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)


def _phases(step: int, *, phases: tuple[tuple[float, float, float], ...], strategy: str) -> float:
    start_step = 0.0
    for index, (end_step, start_value, end_value) in enumerate(phases):
        if step <= end_step or index == len(phases) - 1:
            span = end_step - start_step
            # An empty phase (a peak at step 0) has already ended; past the last phase the end value holds.
            pct = 1.0 if span <= 0 else min(1.0, max(0.0, (step - start_step) / span))
            return _anneal(start_value, end_value, pct, strategy)
        start_step = end_step
    raise AssertionError("unreachable: the last phase always answers")


def _one_cycle_phases(
    total_steps: int, peak_step: float, values: tuple[float, float, float], three_phase: bool
) -> tuple:
    low, high, final = values
    last = float(total_steps - 1)  # the last trained step reaches the final value (torch's OneCycleLR)
    if three_phase:
        return ((peak_step, low, high), (2.0 * peak_step, high, low), (last, low, final))
    return ((peak_step, low, high), (last, high, final))


def one_cycle(
    total_steps: int,
    peak_step: float,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    """One-cycle policy (Smith, "Super-convergence"), torch's ``OneCycleLR`` relative to ``max_lr``.

    Two phases: anneal from ``1/div_factor`` up to 1 at step ``peak_step``, then down to
    ``1/(div_factor * final_div_factor)`` at step ``total_steps - 1`` — the last trained step. With
    ``three_phase`` the second phase returns to ``1/div_factor`` at step ``2 * peak_step`` and the third
    falls to the final value. Inside a phase from ``a`` to ``b`` at fraction ``p``: ``b + (a - b)(1 +
    cos(pi p))/2`` ("cos") or ``a + (b - a) p`` ("linear"). torch's ``pct_start`` is
    ``peak_step = pct_start * total_steps - 1`` (a float, as torch keeps it).
    """
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    low = 1.0 / div_factor
    phases = _one_cycle_phases(
        int(total_steps), float(peak_step), (low, 1.0, low / final_div_factor), bool(three_phase)
    )
    return partial(_phases, phases=phases, strategy=anneal_strategy)


def one_cycle_momentum(
    total_steps: int,
    peak_step: float,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    anneal_strategy: str = "cos",
    three_phase: bool = False,
) -> Schedule:
    """The momentum (or Adam beta1) of one-cycle, cycled inversely to the LR: ``max_momentum`` at the
    start, ``base_momentum`` at the LR peak, back to ``max_momentum`` (and held there in the third phase
    of ``three_phase``), as torch's ``OneCycleLR`` does. Returns absolute values."""
    phases = _one_cycle_phases(
        int(total_steps), float(peak_step), (max_momentum, base_momentum, max_momentum), bool(three_phase)
    )
    if three_phase:  # torch holds the momentum at its maximum through the final annealing phase
        phases = (phases[0], phases[1], (phases[2][0], max_momentum, max_momentum))
    return partial(_phases, phases=phases, strategy=anneal_strategy)


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


def _is_better(
    metric: float, best: float | None, *, mode: str, threshold: float, threshold_mode: str, sign_aware: bool
) -> bool:
    """Whether ``metric`` improves on ``best`` (``None``: nothing seen yet; a NaN never improves).

    ``abs``: by more than ``threshold`` (``metric > best + threshold`` in max mode). ``rel`` with
    ``sign_aware=False`` is torch's rule, ``metric > best * (1 + threshold)`` (max) or
    ``metric < best * (1 - threshold)`` (min), which for a *negative* ``best`` moves the bar the wrong
    way: in min mode with ``best = -10`` and ``threshold = 0.1`` any value below ``-9`` — including the
    worse ``-9.5`` — counts as an improvement. ``sign_aware=True`` scales by ``|best|`` instead
    (``metric > best + threshold * |best|``), the same bar for either sign.
    """
    if math.isnan(metric):
        return False
    if best is None:
        return True
    if threshold_mode == "abs":
        margin = threshold
    elif sign_aware:
        margin = threshold * abs(best)
    else:
        return metric > best * (1.0 + threshold) if mode == "max" else metric < best * (1.0 - threshold)
    return metric > best + margin if mode == "max" else metric < best - margin


@dataclass
class PlateauSchedule:
    """Warmup, then a multiplier that drops by ``factor`` when the validation metric stops improving.

    ``m(t) = warmup(t) * scale`` where ``scale`` starts at 1. Each evaluation that does not improve on the
    best value (see :func:`_is_better`; ``threshold_mode`` "rel" or "abs") counts as bad; when more than
    ``patience`` consecutive evaluations are bad, ``scale`` becomes ``max(floor, scale * factor)`` (kept
    only if it falls by more than ``eps``), the count restarts and ``cooldown`` evaluations follow during
    which bad ones are not counted. These are the rules of ``torch.optim.lr_scheduler.ReduceLROnPlateau``
    (with ``sign_aware=False`` exactly), which cannot be used directly because the Trainer never steps
    it per optimizer step, so it cannot warm up. ``floor`` and ``eps`` are fractions of the peak.
    :meth:`observe` is called with each validation metric; :meth:`state_dict` / :meth:`load_state_dict`
    make it resumable.
    """

    warmup: Schedule = field(default_factory=constant)
    mode: str = "max"
    factor: float = 0.5
    patience: int = 2
    threshold: float = 1e-4
    cooldown: int = 0
    floor: float = 0.0
    threshold_mode: str = "rel"
    sign_aware: bool = True
    eps: float = 0.0
    scale: float = 1.0
    best: float | None = None
    num_bad_evals: int = 0
    cooldown_left: int = 0
    drops: list = field(default_factory=list)  # (step, new scale) of every drop, for logs and plots

    def __call__(self, step: int) -> float:
        return self.warmup(step) * self.scale

    def _improved(self, metric: float) -> bool:
        return _is_better(
            metric,
            self.best,
            mode=self.mode,
            threshold=self.threshold,
            threshold_mode=self.threshold_mode,
            sign_aware=self.sign_aware,
        )

    def observe(self, metric: float, step: int = 0) -> bool:
        """Record one validation metric; returns True when the LR was reduced."""
        metric = float(metric)
        if self._improved(metric):
            self.best, self.num_bad_evals = metric, 0
        else:
            self.num_bad_evals += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad_evals = 0  # bad evaluations during the cooldown do not count
        if self.num_bad_evals <= self.patience:
            return False
        new_scale = max(self.floor, self.scale * self.factor)
        reduced = self.scale - new_scale > self.eps
        if reduced:
            self.scale = new_scale
            self.drops.append((int(step), self.scale))
        self.cooldown_left, self.num_bad_evals = self.cooldown, 0
        return reduced

    _STATE = ("scale", "best", "num_bad_evals", "cooldown_left", "drops")

    def state_dict(self) -> dict:
        return {key: getattr(self, key) for key in self._STATE}

    def load_state_dict(self, state: dict) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])
        self.drops = [tuple(d) for d in self.drops]


@dataclass
class GreedySchedule:
    """Hugging Face's ``GreedyLR`` (Subramanian et al. 2025, arXiv:2512.14527) after an optional warmup.

    ``m(t) = warmup(t) * scale``. Per evaluation (optionally on the running mean of the last
    ``window_size`` metrics when ``smooth``): during ``cooldown_left`` or ``warmup_left`` evaluations the
    counters are cleared; otherwise an improvement (:func:`_is_better`, torch's rule) counts as good and
    anything else as bad. More than ``patience`` good ones in a row: ``scale = min(scale / factor,
    ceiling)`` and ``warmup_evals`` quiet evaluations follow; more than ``patience`` bad ones:
    ``scale = max(scale * factor, floor)`` and ``cooldown`` quiet evaluations. A change is kept only when
    it exceeds ``eps``. After ``reset_start`` reductions with the LR at the floor, everything resets to the
    peak. ``floor``, ``ceiling`` and ``eps`` are fractions of the peak (``GreedyLR`` takes absolute
    ``min_lr``/``max_lr``/``eps``; the builder divides by the peak). Written here rather than wrapping
    ``GreedyLR`` because that class sets the LR itself and cannot be combined with a per-step warmup.
    """

    warmup: Schedule = field(default_factory=constant)
    mode: str = "min"
    factor: float = 0.95
    patience: int = 10
    threshold: float = 1e-6
    threshold_mode: str = "abs"
    cooldown: int = 0
    warmup_evals: int = 0
    floor: float = 0.0
    ceiling: float = float("inf")
    eps: float = 0.0
    smooth: bool = False
    window_size: int = 50
    reset_start: int = 500
    scale: float = 1.0
    best: float | None = None
    num_bad_evals: int = 0
    num_good_evals: int = 0
    cooldown_left: int = 0
    warmup_left: int = 0
    reset_left: int | None = None
    window: list = field(default_factory=list)
    window_sum: float = 0.0
    drops: list = field(default_factory=list)  # (step, new scale) of every change, for logs and plots

    def __post_init__(self):
        if self.reset_left is None:
            self.reset_left = self.reset_start

    def __call__(self, step: int) -> float:
        return self.warmup(step) * self.scale

    def _smoothed(self, metric: float) -> float:
        # The same running sum as GreedyLR's StreamingAverage, so the smoothed values agree to the bit.
        self.window.append(metric)
        self.window_sum += metric
        if len(self.window) > self.window_size:
            self.window_sum -= self.window.pop(0)
        return self.window_sum / len(self.window)

    def observe(self, metric: float, step: int = 0) -> bool:
        """Record one validation metric; returns True when the LR changed."""
        current = float(metric)
        if self.smooth:
            current = self._smoothed(current)
        before = self.scale
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.num_bad_evals = self.num_good_evals = 0
        elif self.warmup_left > 0:
            self.warmup_left -= 1
            self.num_bad_evals = self.num_good_evals = 0
        else:
            if _is_better(
                current,
                self.best,
                mode=self.mode,
                threshold=self.threshold,
                threshold_mode=self.threshold_mode,
                sign_aware=False,
            ):
                self.best, self.num_bad_evals = current, 0
                self.num_good_evals += 1
            else:
                self.num_bad_evals += 1
                self.num_good_evals = 0
            if self.num_good_evals > self.patience:
                raised = min(self.scale / self.factor, self.ceiling)
                if raised - self.scale > self.eps:
                    self.scale = raised
                self.reset_left = self.reset_start
                self.warmup_left, self.num_good_evals = self.warmup_evals, 0
            elif self.num_bad_evals > self.patience:
                self._reduce()
                self.cooldown_left, self.num_bad_evals = self.cooldown, 0
        changed = self.scale != before
        if changed:
            self.drops.append((int(step), self.scale))
        return changed

    def _reduce(self) -> None:
        lowered = max(self.scale * self.factor, self.floor)
        if self.scale - lowered > self.eps:
            self.scale = lowered
        if not self.scale > self.floor:
            self.reset_left -= 1
            if self.reset_left <= 0:  # stuck at the floor: start over from the peak
                self.scale, self.best = 1.0, None
                self.num_bad_evals = self.num_good_evals = self.cooldown_left = self.warmup_left = 0
                self.reset_left = self.reset_start
                self.window, self.window_sum = [], 0.0

    _STATE = (
        "scale",
        "best",
        "num_bad_evals",
        "num_good_evals",
        "cooldown_left",
        "warmup_left",
        "reset_left",
        "window",
        "window_sum",
        "drops",
    )

    def state_dict(self) -> dict:
        return {key: getattr(self, key) for key in self._STATE}

    def load_state_dict(self, state: dict) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])
        self.window = list(self.window)
        self.drops = [tuple(d) for d in self.drops]
