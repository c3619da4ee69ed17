"""Named schedule types: how a recipe's ``lr_scheduler_type`` becomes a concrete schedule.

Each type is one small builder that composes the primitives of :mod:`ftrecipes.schedules` for a run
of ``total_steps`` optimizer steps with ``warmup_steps`` of warmup, and declares the keyword arguments
it accepts in ``lr_scheduler_kwargs`` (anything else is an error naming the key). The result is a
:class:`BuiltSchedule`: the LR multiplier, the momentum/beta1 schedule where the type cycles it, and
the *transitions* (end of warmup, restarts, step drops, start of cool-down) that plots mark and the
spike monitor lines loss spikes up against.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Sequence

from . import schedules as S
from .errors import ConfigError, did_you_mean
from .timeline import Duration, resolve_duration


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

    def duration(self, value: Duration, field_name: str) -> int:
        return resolve_duration(value, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch, field=field_name)


WARMUP_TYPES = {"linear": S.linear_warmup, "exponential": S.exponential_warmup}


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
# Builders. Keyword-only parameters after ``sizes`` are the accepted ``lr_scheduler_kwargs``.


def build_cosine(sizes: Sizes) -> BuiltSchedule:
    """Warmup, then cosine decay to ``min_lr_rate`` of the peak at the last step (reference "Strategy A")."""
    lr = _with_warmup(sizes, S.cosine_decay(_decay_steps(sizes), sizes.floor))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_linear(sizes: Sizes) -> BuiltSchedule:
    """Warmup, then linear decay to ``min_lr_rate`` of the peak (the Trainer default shape)."""
    lr = _with_warmup(sizes, S.linear_decay(_decay_steps(sizes), sizes.floor))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_polynomial(sizes: Sizes, *, power: float = 2.0) -> BuiltSchedule:
    """Warmup, then ``(1 - t/T)^power`` decay to the floor (common in segmentation)."""
    if power <= 0:
        raise ConfigError("lr_scheduler_kwargs.power", power, "must be > 0", "use e.g. power: 0.9 or 2.0")
    lr = _with_warmup(sizes, S.polynomial_decay(_decay_steps(sizes), power, sizes.floor))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_constant(sizes: Sizes) -> BuiltSchedule:
    """Warmup (optional), then the peak LR until the end (reference "Strategy C", with early stopping)."""
    lr = _with_warmup(sizes, S.constant(1.0))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_step(sizes: Sizes, *, milestones: Sequence[Duration] = ("30%", "60%", "90%"), gamma: float = 0.1) -> BuiltSchedule:
    """Warmup (optional), then ``x gamma`` at each milestone (reference "Strategy B": x0.1 at 30/60/90
    of 100 epochs). Milestones are durations from the start of training."""
    if gamma <= 0:
        raise ConfigError("lr_scheduler_kwargs.gamma", gamma, "must be > 0", "use e.g. gamma: 0.1")
    if isinstance(milestones, (str, int, float)):
        milestones = [milestones]
    steps = [sizes.duration(m, "lr_scheduler_kwargs.milestones") for m in milestones]
    if steps != sorted(steps) or len(set(steps)) != len(steps):
        raise ConfigError("lr_scheduler_kwargs.milestones", list(milestones), f"resolve to {steps}, which are not strictly increasing", "list milestones in increasing order")
    if steps and (steps[0] <= sizes.warmup_steps or steps[-1] >= sizes.total_steps):
        raise ConfigError(
            "lr_scheduler_kwargs.milestones", list(milestones),
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


def build_sgdr(sizes: Sizes, *, period: Duration = "1ep", period_mult: float = 1.0, peak_decay: float = 1.0) -> BuiltSchedule:
    """Warmup, then cosine annealing with warm restarts to the floor; first cycle ``period`` long,
    each next one ``period_mult`` times longer with a peak ``peak_decay`` times lower."""
    first = sizes.duration(period, "lr_scheduler_kwargs.period")
    if first < 1:
        raise ConfigError("lr_scheduler_kwargs.period", period, "resolves to 0 steps", "give a longer period, e.g. '1ep' or 500")
    if period_mult < 1:
        raise ConfigError("lr_scheduler_kwargs.period_mult", period_mult, "must be >= 1", "use 1 (equal cycles) or 2 (doubling)")
    if not 0 < peak_decay <= 1:
        raise ConfigError("lr_scheduler_kwargs.peak_decay", peak_decay, "must be in (0, 1]", "use 1 (same peak each cycle) or e.g. 0.8")
    lr = _with_warmup(sizes, S.sgdr(first, period_mult, peak_decay, sizes.floor))
    restarts = [
        Transition(sizes.warmup_steps + r, "restart", f"warm restart (step {sizes.warmup_steps + r})")
        for r in S.sgdr_restarts(first, period_mult, _decay_steps(sizes))
    ]
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes) + restarts)


def build_one_cycle(
    sizes: Sizes, *, div_factor: float = 25.0, final_div_factor: float = 1e4,
    cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
) -> BuiltSchedule:
    """One-cycle: the warmup is the rising half (cosine from ``peak/div_factor``), then a cosine fall to
    ``peak/(div_factor*final_div_factor)``; momentum (SGD) or beta1 (Adam) runs inversely."""
    if div_factor < 1 or final_div_factor < 1:
        raise ConfigError("lr_scheduler_kwargs.div_factor", div_factor, "div_factor and final_div_factor must be >= 1", "use e.g. div_factor: 25")
    if not 0 < base_momentum <= max_momentum < 1:
        raise ConfigError("lr_scheduler_kwargs.base_momentum", base_momentum, "need 0 < base_momentum <= max_momentum < 1", "use 0.85 and 0.95")
    rise = sizes.warmup_steps
    lr = S.one_cycle(sizes.total_steps, rise, div_factor, final_div_factor)
    momentum = S.one_cycle_momentum(sizes.total_steps, rise, base_momentum, max_momentum) if cycle_momentum else None
    transitions = [Transition(rise, "warmup_end", f"LR peak, end of the rise (step {rise})")] if rise > 0 else []
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, momentum=momentum, transitions=transitions)


def build_inverse_sqrt(sizes: Sizes) -> BuiltSchedule:
    """The original Transformer schedule relative to the peak: ``min((t+1)/W, sqrt(W/(t+1)))``. With
    ``learning_rate = d_model^-0.5 * W^-0.5`` it is exactly ``d_model^-0.5 min(s^-0.5, s W^-1.5)``."""
    lr = S.inverse_sqrt(max(1, sizes.warmup_steps))
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes))


def build_wsd(sizes: Sizes, *, decay: Duration = "20%", decay_shape: str = "sqrt") -> BuiltSchedule:
    """Warmup-stable-decay: warmup, hold the peak, then cool down to the floor over the last ``decay``."""
    shapes = {"linear": S.linear_decay, "cosine": S.cosine_decay, "sqrt": S.sqrt_decay}
    if decay_shape not in shapes:
        raise ConfigError("lr_scheduler_kwargs.decay_shape", decay_shape, f"is not one of {sorted(shapes)}", "use 'sqrt', 'linear' or 'cosine'")
    decay_steps = sizes.duration(decay, "lr_scheduler_kwargs.decay")
    stable_end = sizes.total_steps - decay_steps
    if decay_steps < 1 or stable_end < sizes.warmup_steps:
        raise ConfigError("lr_scheduler_kwargs.decay", decay, f"resolves to {decay_steps} steps, which does not fit after warmup", "shorten warmup or the decay")
    lr = S.join(
        [_warmup(sizes), S.constant(1.0), shapes[decay_shape](decay_steps, sizes.floor)],
        [sizes.warmup_steps, stable_end],
    )
    transitions = _warmup_transitions(sizes) + [Transition(stable_end, "decay_start", f"cool-down starts (step {stable_end})")]
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=transitions)


def build_plateau(sizes: Sizes, *, factor: float = 0.5, patience: int = 1, threshold: float = 1e-4, cooldown: int = 0) -> BuiltSchedule:
    """Warmup, then hold the peak and multiply it by ``factor`` whenever the validation metric has not
    improved for more than ``patience`` evaluations (reference "Strategy D"), never below the floor."""
    if not 0 < factor < 1:
        raise ConfigError("lr_scheduler_kwargs.factor", factor, "must be in (0, 1)", "use e.g. factor: 0.5")
    if patience < 0 or cooldown < 0:
        raise ConfigError("lr_scheduler_kwargs.patience", patience, "patience and cooldown cannot be negative", "use e.g. patience: 1")
    lr = S.PlateauSchedule(
        warmup=_with_warmup(sizes, S.constant(1.0)), mode="max" if sizes.greater_is_better else "min",
        factor=factor, patience=patience, threshold=threshold, cooldown=cooldown, floor=sizes.floor,
    )
    return BuiltSchedule(lr, sizes.total_steps, sizes.warmup_steps, transitions=_warmup_transitions(sizes), metric_driven=True)


SCHEDULE_TYPES: dict[str, Callable[..., BuiltSchedule]] = {
    "cosine": build_cosine,
    "linear": build_linear,
    "polynomial": build_polynomial,
    "constant": build_constant,
    "step": build_step,
    "exponential": build_exponential,
    "sgdr": build_sgdr,
    "one_cycle": build_one_cycle,
    "inverse_sqrt": build_inverse_sqrt,
    "wsd": build_wsd,
    "plateau": build_plateau,
}


def schedule_kwargs(schedule_type: str) -> dict[str, object]:
    """The ``lr_scheduler_kwargs`` a schedule type accepts, with their defaults."""
    params = inspect.signature(SCHEDULE_TYPES[schedule_type]).parameters
    return {name: p.default for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_schedule_type(schedule_type: str) -> None:
    if schedule_type not in SCHEDULE_TYPES:
        raise ConfigError("lr_scheduler_type", schedule_type, "is not a known schedule", did_you_mean(schedule_type, SCHEDULE_TYPES) or f"choose one of {sorted(SCHEDULE_TYPES)}")


def check_schedule_kwargs(schedule_type: str, kwargs: dict) -> None:
    accepted = schedule_kwargs(schedule_type)
    for key in kwargs:
        if key not in accepted:
            hint = did_you_mean(key, accepted) or (f"it accepts {sorted(accepted)}" if accepted else "it accepts none")
            raise ConfigError(f"lr_scheduler_kwargs.{key}", kwargs[key], f"is not an option of the '{schedule_type}' schedule", hint)


def build_schedule(schedule_type: str, sizes: Sizes, kwargs: dict | None = None) -> BuiltSchedule:
    """Build ``schedule_type`` for ``sizes`` with the given ``lr_scheduler_kwargs`` (validated)."""
    kwargs = dict(kwargs or {})
    check_schedule_type(schedule_type)
    check_schedule_kwargs(schedule_type, kwargs)
    return SCHEDULE_TYPES[schedule_type](sizes, **kwargs)
