"""The builders of the named schedule types (:mod:`ftrecipes.config.schedule_types`): each composes the
primitives of :mod:`ftrecipes.config.schedules` for a run's sizes, and its keyword-only parameters after
``sizes`` are the ``lr_scheduler_kwargs`` it accepts. ftrecipes' own families honour the recipe's warmup
fields and floor; Hugging Face's (:data:`HF_TYPES`) mean exactly what ``transformers.get_scheduler`` means.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from ftrecipes.config import schedules as S
from ftrecipes.config.built_schedule import BuiltSchedule, Sizes, Transition
from ftrecipes.config.durations import parse_duration
from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.config.timeline import Duration


def _shape(shape: str) -> Callable[..., S.Schedule]:
    def make(warmup_steps: int, start: float = 0.0, offset: int = 0) -> S.Schedule:
        return S.shaped_warmup(warmup_steps, start=start, offset=offset, shape=shape)

    return make


# ``cosine`` and ``1-sqrt`` are the warmup shapes of Hugging Face's warmup-stable-decay schedule.
WARMUP_TYPES = {
    "linear": S.linear_warmup,
    "exponential": S.exponential_warmup,
    "cosine": _shape("cosine"),
    "1-sqrt": _shape("1-sqrt"),
}


def _warmup(sizes: Sizes) -> S.Schedule:
    start = sizes.warmup_start
    if sizes.warmup_type == "exponential" and start <= 0.0:
        start = 0.01  # a geometric ramp cannot start at 0: begin at 1% of the peak
    return WARMUP_TYPES[sizes.warmup_type](sizes.warmup_steps, start=start, offset=sizes.warmup_offset)


def _with_warmup(sizes: Sizes, decay: S.Schedule) -> S.Schedule:
    if sizes.warmup_steps <= 0:
        return decay
    return S.join([_warmup(sizes), decay], [sizes.warmup_steps])


def _warmup_transitions(sizes: Sizes) -> list[Transition]:
    if sizes.warmup_steps <= 0:
        return []
    return [Transition(sizes.warmup_steps, "warmup_end", f"end of warmup (step {sizes.warmup_steps})")]


def _decay_steps(sizes: Sizes) -> int:
    return max(1, sizes.total_steps - sizes.warmup_steps)


# --------------------------------------------------------------------------------------------------
# Helpers for options


def _opt(name: str) -> str:
    return f"lr_scheduler_kwargs.{name}"


def _one_of(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ConfigError(
            _opt(name),
            value,
            f"is not one of {list(choices)}",
            did_you_mean(str(value), [str(c) for c in choices]) or f"use {choices[0]!r}",
        )


def _fraction_of_peak(sizes: Sizes, name: str, value) -> float:
    """An absolute LR option (``min_lr``, ``lr_end``, ``eps``, ...) as a fraction of the run's peak."""
    if isinstance(value, (list, tuple)):
        raise ConfigError(_opt(name), list(value), "takes one value for every param group", f"give a single {name}")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError(_opt(name), value, "must be a non-negative learning rate", f"e.g. {name}: 1e-6")
    if sizes.peak_lr is None:
        raise ConfigError(
            _opt(name),
            value,
            "is an absolute LR but the peak is unknown here",
            "build the schedule from a Recipe (it knows learning_rate)",
        )
    return float(value) / sizes.peak_lr


def _steps_float(sizes: Sizes, name: str, value: Duration) -> float:
    """A positive duration in optimizer steps *without rounding* (``"2.5"``, ``12.5``, ``"0.5ep"``,
    ``"12.5%"``): restart periods may be fractional, as Hugging Face's ``num_cycles`` makes them
    (:func:`ftrecipes.config.durations.parse_duration` with ``fractional_steps``)."""
    number = parse_duration(value, _opt(name), fractional_steps=True).exact_steps(
        total_steps=sizes.total_steps, steps_per_epoch=sizes.steps_per_epoch, field=_opt(name), given=value
    )
    if not number > 0:
        raise ConfigError(
            _opt(name),
            value,
            "is not a positive duration",
            "give steps (500 or 12.5), a fraction (0.1 or '10%') or epochs ('1ep')",
        )
    return number


def _metric_mode(sizes: Sizes, mode: str | None) -> str:
    if mode is None:
        return "max" if sizes.greater_is_better else "min"
    _one_of("mode", mode, ("min", "max"))
    return mode


def _check_plateau_rule(factor: float, patience: int, cooldown: int, threshold: float, threshold_mode: str) -> None:
    if not 0 < factor < 1:
        raise ConfigError(_opt("factor"), factor, "must be in (0, 1)", "use e.g. factor: 0.5")
    if patience < 0 or cooldown < 0:
        raise ConfigError(
            _opt("patience"), patience, "patience and cooldown cannot be negative", "use e.g. patience: 1"
        )
    if threshold < 0:
        raise ConfigError(_opt("threshold"), threshold, "cannot be negative", "use e.g. threshold: 1e-4")
    _one_of("threshold_mode", threshold_mode, ("rel", "abs"))


# Hugging Face's own families: each ftrecipes family that honours the recipe's warmup fields instead.
HF_TYPES = {
    "constant_with_warmup": "constant",
    "cosine_with_restarts": "sgdr",
    "cosine_with_min_lr": "cosine",
    "cosine_warmup_with_min_lr": "cosine",
    "warmup_stable_decay": "wsd",
    "reduce_lr_on_plateau": "plateau",
    "greedy": "plateau",
}
"""``transformers.SchedulerType`` names ftrecipes gives Hugging Face's exact semantics, each mapped to the
ftrecipes family of the same shape (which honours the recipe's warmup fields and floor)."""


def _hf_warmup(sizes: Sizes, name: str) -> S.Schedule:
    """Hugging Face's warmup, ``m(t) = t / W`` for ``t < W``; the recipe's warmup shape fields would
    silently change it, so they are refused here rather than ignored."""
    if sizes.warmup_type != "linear" or sizes.warmup_start != 0.0:
        field_name, value = (
            ("warmup_type", sizes.warmup_type)
            if sizes.warmup_type != "linear"
            else ("warmup_start", sizes.warmup_start)
        )
        raise ConfigError(
            field_name,
            value,
            f"does not apply to '{name}', which warms up as Hugging Face does (linear from 0, step/W)",
            f"drop {field_name}, or use lr_scheduler_type '{HF_TYPES[name]}', which honours it",
        )
    return S.linear_warmup(sizes.warmup_steps, start=0.0, offset=0)


def _hf_with_warmup(sizes: Sizes, name: str, decay: S.Schedule) -> S.Schedule:
    warmup = _hf_warmup(sizes, name)
    return decay if sizes.warmup_steps <= 0 else S.join([warmup, decay], [sizes.warmup_steps])


def _own_rise(sizes: Sizes, name: str, how: str) -> None:
    """Families whose rise is their own shape refuse the recipe's warmup shape fields (one line)."""
    if sizes.warmup_type != "linear":
        raise ConfigError(
            "warmup_type", sizes.warmup_type, f"does not apply to '{name}', whose rise is {how}", "drop warmup_type"
        )
    if sizes.warmup_start != 0.0:
        raise ConfigError(
            "warmup_start", sizes.warmup_start, f"does not apply to '{name}', whose rise is {how}", "drop warmup_start"
        )


# --------------------------------------------------------------------------------------------------
# Builders. Keyword-only parameters after ``sizes`` are the accepted ``lr_scheduler_kwargs``.


def build_cosine(sizes: Sizes, *, num_cycles: float = 0.5) -> BuiltSchedule:
    """Warmup, then cosine decay to ``min_lr_rate`` of the peak at the last step (the common fine-tuning
    default, e.g. BERT fine-tuning with a floor). ``num_cycles`` as in Hugging Face's ``cosine`` (0.5: one
    half-wave down)."""
    if not num_cycles > 0:
        raise ConfigError(_opt("num_cycles"), num_cycles, "must be > 0", "use 0.5 (one half-wave down to the floor)")
    lr = _with_warmup(sizes, S.cosine_decay(_decay_steps(sizes), sizes.floor, num_cycles))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_linear(sizes: Sizes) -> BuiltSchedule:
    """Warmup, then linear decay to ``min_lr_rate`` of the peak (the Trainer default shape)."""
    lr = _with_warmup(sizes, S.linear_decay(_decay_steps(sizes), sizes.floor))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_polynomial(sizes: Sizes, *, power: float = 1.0, lr_end: float | None = None) -> BuiltSchedule:
    """Warmup, then ``floor + (1 - floor)(1 - t/T)^power`` (Hugging Face's default ``power`` 1.0). The
    floor is ``lr_end / peak`` when Hugging Face's absolute ``lr_end`` is given, else the recipe's."""
    if power <= 0:
        raise ConfigError(_opt("power"), power, "must be > 0", "use e.g. power: 1.0 or 2.0")
    floor = sizes.floor
    if lr_end is not None:
        floor = _fraction_of_peak(sizes, "lr_end", lr_end)
        if floor >= 1.0:
            raise ConfigError(
                _opt("lr_end"),
                lr_end,
                f"must be below the peak learning rate {sizes.peak_lr:g}",
                "lower lr_end, e.g. 1e-7",
            )
    lr = _with_warmup(sizes, S.polynomial_decay(_decay_steps(sizes), power, floor))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_constant(sizes: Sizes) -> BuiltSchedule:
    """Warmup (optional), then the peak LR until the end (pair it with early stopping).
    Hugging Face's ``constant`` has no warmup: it is this with ``warmup: 0``."""
    lr = _with_warmup(sizes, S.constant(1.0))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_step(
    sizes: Sizes, *, milestones: Sequence[Duration] = ("30%", "60%", "90%"), gamma: float = 0.1
) -> BuiltSchedule:
    """Warmup (optional), then ``x gamma`` at each milestone (the classic CNN baseline: x0.1 at 30/60/90
    of 100 epochs). Milestones are durations from the start of training."""
    if gamma <= 0:
        raise ConfigError("lr_scheduler_kwargs.gamma", gamma, "must be > 0", "use e.g. gamma: 0.1")
    if isinstance(milestones, (str, int, float)):
        milestones = [milestones]
    steps = [sizes.duration(m, "lr_scheduler_kwargs.milestones") for m in milestones]
    if steps != sorted(steps) or len(set(steps)) != len(steps):
        raise ConfigError(
            "lr_scheduler_kwargs.milestones",
            list(milestones),
            f"resolve to {steps}, which are not strictly increasing",
            "list milestones in increasing order",
        )
    if steps and (steps[0] <= sizes.warmup_steps or steps[-1] >= sizes.total_steps):
        raise ConfigError(
            "lr_scheduler_kwargs.milestones",
            list(milestones),
            f"resolve to steps {steps}, outside the decay phase ({sizes.warmup_steps}, {sizes.total_steps})",
            "put every milestone after warmup and before the last step",
        )
    relative = [s - sizes.warmup_steps for s in steps]
    lr = _with_warmup(sizes, S.multistep_decay(relative, gamma))
    drops = [Transition(s, "step_drop", f"LR x{gamma:g} (step {s})") for s in steps]
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes) + drops)


def build_exponential(sizes: Sizes, *, gamma: float | None = None) -> BuiltSchedule:
    """Warmup, then ``x gamma`` every step. Without ``gamma`` it is chosen so that the LR reaches the
    floor (``min_lr_rate``, at least 1e-3) exactly at the last step: ``gamma = floor^(1/T)``."""
    decay_steps, floor = _decay_steps(sizes), sizes.floor
    if gamma is None:
        floor = max(sizes.floor, 1e-3)  # the target is reached at the last step and held after it
        gamma = floor ** (1.0 / decay_steps)
    if not 0 < gamma <= 1:
        raise ConfigError("lr_scheduler_kwargs.gamma", gamma, "must be in (0, 1] for a decay", "use e.g. gamma: 0.999")
    lr = _with_warmup(sizes, S.exponential_decay(gamma, floor))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_sgdr(
    sizes: Sizes,
    *,
    period: Duration | None = None,
    num_cycles: float | None = None,
    period_mult: float = 1.0,
    peak_decay: float = 1.0,
) -> BuiltSchedule:
    """Warmup, then cosine annealing with warm restarts to the floor; first cycle ``period`` long (default
    one epoch; may be fractional, e.g. ``12.5`` or ``"0.5ep"``) or ``num_cycles`` equal cycles over the
    decay phase, each next one ``period_mult`` times longer (any real >= 1) with a peak ``peak_decay``
    times lower."""
    decay_steps = _decay_steps(sizes)
    if period is not None and num_cycles is not None:
        raise ConfigError(_opt("num_cycles"), num_cycles, "was given together with period", "give one of them")
    if num_cycles is not None:
        if isinstance(num_cycles, bool) or not isinstance(num_cycles, (int, float)) or not num_cycles > 0:
            raise ConfigError(_opt("num_cycles"), num_cycles, "must be > 0", "use e.g. num_cycles: 3")
        first = decay_steps / float(num_cycles)
        label = _opt("num_cycles"), num_cycles
    else:
        label = _opt("period"), "1ep" if period is None else period
        first = _steps_float(sizes, "period", "1ep" if period is None else period)
    if first < 1:
        raise ConfigError(
            label[0],
            label[1],
            f"makes cycles of {first:.3g} steps, shorter than one step",
            "give a longer period, e.g. '1ep' or 500",
        )
    if isinstance(period_mult, bool) or not isinstance(period_mult, (int, float)) or period_mult < 1:
        raise ConfigError(
            "lr_scheduler_kwargs.period_mult", period_mult, "must be >= 1", "use 1 (equal cycles) or 2 (doubling)"
        )
    if not 0 < peak_decay <= 1:
        raise ConfigError(
            "lr_scheduler_kwargs.peak_decay",
            peak_decay,
            "must be in (0, 1]",
            "use 1 (same peak each cycle) or e.g. 0.8",
        )
    lr = _with_warmup(sizes, S.sgdr(first, period_mult, peak_decay, sizes.floor))
    restarts = [
        Transition(sizes.warmup_steps + r, "restart", f"warm restart (step {sizes.warmup_steps + r})")
        for r in S.sgdr_restarts(first, period_mult, decay_steps)
    ]
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes) + restarts)


def build_one_cycle(
    sizes: Sizes,
    *,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    anneal_strategy: str = "cos",
    three_phase: bool = False,
    pct_start: float | None = None,
) -> BuiltSchedule:
    """One-cycle (torch's ``OneCycleLR``): rise from ``peak/div_factor`` to the peak, then fall to
    ``peak/(div_factor*final_div_factor)`` on the **last trained step**; momentum (SGD) or beta1 (Adam)
    runs inversely. The peak falls where the warmup ends under ``warmup_offset`` (step ``W - 1`` with the
    default offset 1, which is torch's ``pct_start * T - 1`` when ``W = pct_start * T``); ``pct_start``
    (torch's name) places it at ``pct_start * T - 1`` exactly, even between steps. ``three_phase`` and
    ``anneal_strategy`` ("cos" or "linear") are torch's."""
    if div_factor < 1 or final_div_factor < 1:
        raise ConfigError(
            "lr_scheduler_kwargs.div_factor",
            div_factor,
            "div_factor and final_div_factor must be >= 1",
            "use e.g. div_factor: 25",
        )
    if not 0 < base_momentum <= max_momentum < 1:
        raise ConfigError(
            "lr_scheduler_kwargs.base_momentum",
            base_momentum,
            "need 0 < base_momentum <= max_momentum < 1",
            "use 0.85 and 0.95",
        )
    _one_of("anneal_strategy", anneal_strategy, ("cos", "linear"))
    _own_rise(sizes, "one_cycle", "set by div_factor and anneal_strategy")
    total = sizes.total_steps
    if pct_start is not None:
        if isinstance(pct_start, bool) or not isinstance(pct_start, (int, float)) or not 0 < pct_start < 1:
            raise ConfigError(_opt("pct_start"), pct_start, "must lie in (0, 1)", "use e.g. pct_start: 0.3")
        peak, rise = float(pct_start) * total - 1.0, math.ceil(float(pct_start) * total)
    else:
        peak, rise = float(max(0, sizes.warmup_steps - sizes.warmup_offset)), sizes.warmup_steps
    last_needed = 2.0 * peak if three_phase else peak
    if last_needed >= total - 1:
        raise ConfigError(
            "warmup" if pct_start is None else _opt("pct_start"),
            sizes.warmup_steps if pct_start is None else pct_start,
            f"puts the LR peak at step {peak:g}, leaving no annealing before the last step {total - 1}",
            "shorten the rise (e.g. 30% of training)",
        )
    lr = S.one_cycle(total, peak, div_factor, final_div_factor, anneal_strategy, three_phase)
    momentum = (
        S.one_cycle_momentum(total, peak, base_momentum, max_momentum, anneal_strategy, three_phase)
        if cycle_momentum
        else None
    )
    # Marked at step W like every family's end of warmup (with pct_start: the first step at or after the peak).
    peak_step = rise if pct_start is None else max(0, math.ceil(peak))
    transitions = (
        [Transition(peak_step, "warmup_end", f"LR peak, end of the rise (step {peak_step})")] if peak_step > 0 else []
    )
    if three_phase:
        back = math.ceil(2.0 * peak)
        transitions.append(
            Transition(back, "decay_start", f"back at peak/div_factor, final annealing starts (step {back})")
        )
    return BuiltSchedule(lr, total, rise, momentum=momentum, transitions=transitions)


def build_inverse_sqrt(sizes: Sizes, *, timescale: float | None = None) -> BuiltSchedule:
    """Warmup (the recipe's fields), then ``sqrt(tau / (tau + u))`` where ``u`` counts steps after the
    warmup reaches the peak (step ``W - warmup_offset``). ``timescale`` ``tau`` defaults to ``W`` — the
    original Transformer schedule ``min((t+1)/W, sqrt(W/(t+1)))`` with the default offset 1, Hugging
    Face's ``inverse_sqrt`` with offset 0 — and, as in Hugging Face, to 10,000 when there is no warmup
    (a decay over the first steps as steep as ``1/sqrt(t+1)`` would halve the LR by step 3)."""
    W = sizes.warmup_steps
    if timescale is None:
        timescale = W or 10_000
    if isinstance(timescale, bool) or not isinstance(timescale, (int, float)) or not timescale > 0:
        raise ConfigError(
            _opt("timescale"),
            timescale,
            "must be a positive number of steps",
            "use e.g. timescale: 10000, or drop it (default: the warmup)",
        )
    decay = S.inverse_sqrt_decay(timescale)
    boundary = max(0, W - sizes.warmup_offset) if W > 0 else 0
    lr = S.join([_warmup(sizes), decay], [boundary]) if boundary > 0 else decay
    return BuiltSchedule(lr, sizes.total_steps, W, transitions=_warmup_transitions(sizes))


_DECAY_SHAPES = {"linear": S.linear_decay, "cosine": S.cosine_decay, "sqrt": S.sqrt_decay, "1-sqrt": S.sqrt_decay}


def build_wsd(
    sizes: Sizes, *, decay: Duration = "20%", decay_shape: str = "sqrt", num_cycles: float = 0.5
) -> BuiltSchedule:
    """Warmup-stable-decay: warmup (any ``warmup_type``, including Hugging Face's ``cosine`` and
    ``1-sqrt``), hold the peak, then cool down to the floor over the last ``decay`` with ``decay_shape``
    "sqrt" (= "1-sqrt", Hägele et al. 2024), "linear" or "cosine" (``num_cycles`` as Hugging Face's)."""
    _one_of("decay_shape", decay_shape, tuple(_DECAY_SHAPES))
    decay_steps = sizes.duration(decay, "lr_scheduler_kwargs.decay")
    stable_end = sizes.total_steps - decay_steps
    if decay_steps < 1 or stable_end < sizes.warmup_steps:
        raise ConfigError(
            "lr_scheduler_kwargs.decay",
            decay,
            f"resolves to {decay_steps} steps, which does not fit after warmup",
            "shorten warmup or the decay",
        )
    cool_down = (
        S.cosine_decay(decay_steps, sizes.floor, num_cycles)
        if decay_shape == "cosine"
        else _DECAY_SHAPES[decay_shape](decay_steps, sizes.floor)
    )
    lr = S.join([_warmup(sizes), S.constant(1.0), cool_down], [sizes.warmup_steps, stable_end])
    transitions = _warmup_transitions(sizes) + [
        Transition(stable_end, "decay_start", f"cool-down starts (step {stable_end})")
    ]
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=transitions)


def build_plateau(
    sizes: Sizes,
    *,
    factor: float = 0.5,
    patience: int = 1,
    threshold: float = 1e-4,
    cooldown: int = 0,
    threshold_mode: str = "rel",
) -> BuiltSchedule:
    """Warmup, then hold the peak and multiply it by ``factor`` whenever the validation metric has not
    improved for more than ``patience`` evaluations (torch's ``ReduceLROnPlateau`` idea), never below the floor.
    ``threshold_mode`` "rel" scales the threshold by ``|best|`` (the same bar for negative metrics, unlike
    torch, whose rule ``reduce_lr_on_plateau`` keeps); "abs" compares differences."""
    _check_plateau_rule(factor, patience, cooldown, threshold, threshold_mode)
    lr = S.PlateauSchedule(
        warmup=_with_warmup(sizes, S.constant(1.0)),
        mode="max" if sizes.greater_is_better else "min",
        factor=factor,
        patience=patience,
        threshold=threshold,
        cooldown=cooldown,
        floor=sizes.floor,
        threshold_mode=threshold_mode,
    )
    return BuiltSchedule(
        lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes), metric_driven=True
    )


# ---- Hugging Face's own families (exact ``transformers.get_scheduler`` semantics) -----------------


def build_constant_with_warmup(sizes: Sizes) -> BuiltSchedule:
    """Hugging Face's ``constant_with_warmup``: ``t / W`` during warmup, then 1."""
    lr = _hf_with_warmup(sizes, "constant_with_warmup", S.constant(1.0))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_cosine_with_restarts(sizes: Sizes, *, num_cycles: float = 1) -> BuiltSchedule:
    """Hugging Face's ``cosine_with_restarts``: warmup ``t / W``, then ``num_cycles`` equal cosine cycles
    from the peak to 0 over the rest of training (periods need not be whole steps)."""
    if isinstance(num_cycles, bool) or not isinstance(num_cycles, (int, float)) or not num_cycles > 0:
        raise ConfigError(_opt("num_cycles"), num_cycles, "must be > 0", "use e.g. num_cycles: 3")
    decay_steps = _decay_steps(sizes)
    lr = _hf_with_warmup(sizes, "cosine_with_restarts", S.cosine_hard_restarts(decay_steps, num_cycles))
    restarts = [sizes.warmup_steps + t for t in S.hard_restart_steps(decay_steps, num_cycles)]
    transitions = _warmup_transitions(sizes) + [Transition(s, "restart", f"warm restart (step {s})") for s in restarts]
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=transitions)


def _min_lr_rate(sizes: Sizes, min_lr: float | None, min_lr_rate: float | None) -> float:
    if min_lr is not None and min_lr_rate is not None:
        raise ConfigError(_opt("min_lr"), min_lr, "was given together with min_lr_rate", "give one of them")
    if min_lr is not None:
        return _fraction_of_peak(sizes, "min_lr", min_lr)
    if min_lr_rate is not None:
        if not 0 <= min_lr_rate <= 1:
            raise ConfigError(
                _opt("min_lr_rate"), min_lr_rate, "is a fraction of the peak and must lie in [0, 1]", "use e.g. 0.1"
            )
        return float(min_lr_rate)
    # Hugging Face requires one of the two; ftrecipes falls back to the recipe's floor.
    return sizes.floor


def build_cosine_with_min_lr(
    sizes: Sizes, *, num_cycles: float = 0.5, min_lr: float | None = None, min_lr_rate: float | None = None
) -> BuiltSchedule:
    """Hugging Face's ``cosine_with_min_lr``: warmup ``t / W``, then cosine to ``min_lr`` (absolute) or
    ``min_lr_rate`` (of the peak); with neither, the recipe's floor."""
    floor = _min_lr_rate(sizes, min_lr, min_lr_rate)
    lr = _hf_with_warmup(sizes, "cosine_with_min_lr", S.cosine_decay(_decay_steps(sizes), floor, num_cycles))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_cosine_warmup_with_min_lr(
    sizes: Sizes,
    *,
    num_cycles: float = 0.5,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
    warmup_lr_rate: float | None = None,
) -> BuiltSchedule:
    """Hugging Face's ``cosine_warmup_with_min_lr``: warmup ``(t + 1) / W`` (or, with ``warmup_lr_rate``
    ``r``, ``r + (1 - r) t / (W - 1)``), then a cosine that counts its first step as progress
    ``1 / (T - W)`` and so reaches the floor on the last trained step."""
    name = "cosine_warmup_with_min_lr"
    floor = _min_lr_rate(sizes, min_lr, min_lr_rate)
    _hf_warmup(sizes, name)  # refuses the recipe's warmup shape fields
    W = sizes.warmup_steps
    if warmup_lr_rate is None:
        warmup = S.linear_warmup(W, offset=1)
    else:
        if not 0 <= warmup_lr_rate <= 1:
            raise ConfigError(
                _opt("warmup_lr_rate"),
                warmup_lr_rate,
                "is a fraction of the peak and must lie in [0, 1]",
                "use e.g. 0.01",
            )
        # r + (1 - r) * t / max(1, W - 1): the ramp ends at the peak on the last warmup step.
        warmup = S.linear_warmup(max(1, W - 1), start=warmup_lr_rate, offset=0)
    decay = S.shift(S.cosine_decay(_decay_steps(sizes), floor, num_cycles), 1)
    lr = decay if W <= 0 else S.join([warmup, decay], [W])
    return BuiltSchedule(lr, sizes.total_steps, W, transitions=_warmup_transitions(sizes))


_WSD_SHAPES = ("linear", "cosine", "1-sqrt")


def build_warmup_stable_decay(
    sizes: Sizes,
    *,
    num_decay_steps: Duration | None = None,
    num_stable_steps: Duration | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> BuiltSchedule:
    """Hugging Face's ``warmup_stable_decay``: warmup of ``warmup_type`` from ``min_lr_ratio`` to 1, hold,
    then ``decay_type`` down to ``min_lr_ratio`` over ``num_decay_steps`` (required, as in Hugging Face; a
    duration here), held after. The stable phase is ``num_stable_steps`` or whatever is left."""
    _hf_warmup(sizes, "warmup_stable_decay")
    if num_decay_steps is None:
        raise ConfigError(
            _opt("num_decay_steps"),
            None,
            "is required by warmup_stable_decay",
            "add it, e.g. num_decay_steps: 200 or '20%'",
        )
    _one_of("warmup_type", warmup_type, _WSD_SHAPES)
    _one_of("decay_type", decay_type, _WSD_SHAPES)
    if not 0 <= min_lr_ratio <= 1:
        raise ConfigError(
            _opt("min_lr_ratio"),
            min_lr_ratio,
            "is a fraction of the peak and must lie in [0, 1]",
            "use e.g. 0.0 or 0.1",
        )
    W, D = sizes.warmup_steps, sizes.duration(num_decay_steps, _opt("num_decay_steps"))
    S_ = (
        sizes.total_steps - W - D
        if num_stable_steps is None
        else sizes.duration(num_stable_steps, _opt("num_stable_steps"))
    )
    if S_ < 0:
        raise ConfigError(
            _opt("num_decay_steps"),
            num_decay_steps,
            f"resolves to {D} steps, longer than training after warmup ({sizes.total_steps - W})",
            "shorten the decay or the warmup",
        )
    warmup = S.shaped_warmup(W, start=min_lr_ratio, offset=0, shape=warmup_type)
    if decay_type == "cosine":
        cool_down = S.cosine_decay(D, min_lr_ratio, num_cycles)
    else:
        cool_down = (S.linear_decay if decay_type == "linear" else S.sqrt_decay)(D, min_lr_ratio)
    lr = S.join([warmup, S.constant(1.0), cool_down, S.constant(min_lr_ratio)], [W, W + S_, W + S_ + D])
    transitions = _warmup_transitions(sizes) + [Transition(W + S_, "decay_start", f"cool-down starts (step {W + S_})")]
    return BuiltSchedule(lr, sizes.total_steps, W, transitions=transitions)


def build_reduce_lr_on_plateau(
    sizes: Sizes,
    *,
    mode: str | None = None,
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> BuiltSchedule:
    """Hugging Face's ``reduce_lr_on_plateau``: torch's ``ReduceLROnPlateau`` rule exactly (its defaults,
    its relative threshold for negative metrics too), fed ``eval_<metric_for_best_model>``. Two
    differences, both deliberate: the warmup applies (``get_scheduler`` drops ``num_warmup_steps`` for
    this type; use ``warmup: 0`` for its trace) and ``mode`` defaults to the recipe's
    ``greater_is_better`` (torch's default "min" would treat an accuracy as a loss)."""
    _check_plateau_rule(factor, patience, cooldown, threshold, threshold_mode)
    lr = S.PlateauSchedule(
        warmup=_hf_with_warmup(sizes, "reduce_lr_on_plateau", S.constant(1.0)),
        mode=_metric_mode(sizes, mode),
        factor=factor,
        patience=patience,
        threshold=threshold,
        cooldown=cooldown,
        threshold_mode=threshold_mode,
        sign_aware=False,
        floor=_fraction_of_peak(sizes, "min_lr", min_lr) if min_lr else 0.0,
        eps=_fraction_of_peak(sizes, "eps", eps) if eps else 0.0,
    )
    return BuiltSchedule(
        lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes), metric_driven=True
    )


def build_greedy(
    sizes: Sizes,
    *,
    mode: str | None = None,
    factor: float = 0.95,
    patience: int = 10,
    threshold: float = 1e-6,
    threshold_mode: str = "abs",
    cooldown: int = 0,
    warmup: int = 0,
    min_lr: float = 1e-3,
    max_lr: float = 1.0,
    eps: float = 1e-8,
    verbose: bool = False,
    smooth: bool = False,
    window_size: int = 50,
    reset_start: int = 500,
) -> BuiltSchedule:
    """Hugging Face's ``greedy`` (``GreedyLR``): raise the LR by ``1/factor`` after more than ``patience``
    improving evaluations, lower it by ``factor`` after more than ``patience`` others, between ``min_lr``
    and ``max_lr`` (absolute, Hugging Face's defaults 1e-3 and 1.0). ``warmup`` here is GreedyLR's: the
    evaluations to wait after a raise. As for ``reduce_lr_on_plateau``, the recipe's warmup applies and
    ``mode`` defaults to ``greater_is_better``. ``verbose`` is accepted and unused (changes are logged)."""
    _check_plateau_rule(factor, patience, cooldown, threshold, threshold_mode)
    for name, value in (("warmup", warmup), ("window_size", window_size), ("reset_start", reset_start)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "window_size" else 0):
            raise ConfigError(
                _opt(name),
                value,
                "must be a whole number of evaluations" + (" >= 1" if name == "window_size" else " >= 0"),
                f"e.g. {name}: 10",
            )
    lr = S.GreedySchedule(
        warmup=_hf_with_warmup(sizes, "greedy", S.constant(1.0)),
        mode=_metric_mode(sizes, mode),
        factor=factor,
        patience=patience,
        threshold=threshold,
        threshold_mode=threshold_mode,
        cooldown=cooldown,
        warmup_evals=warmup,
        floor=_fraction_of_peak(sizes, "min_lr", min_lr) if min_lr else 0.0,
        ceiling=_fraction_of_peak(sizes, "max_lr", max_lr),
        eps=_fraction_of_peak(sizes, "eps", eps) if eps else 0.0,
        smooth=bool(smooth),
        window_size=window_size,
        reset_start=reset_start,
    )
    return BuiltSchedule(
        lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes), metric_driven=True
    )
