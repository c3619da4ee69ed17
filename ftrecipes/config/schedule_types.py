"""Named schedule types: how a recipe's ``lr_scheduler_type`` becomes a concrete schedule.

Each type is one small builder that composes the primitives of :mod:`ftrecipes.config.schedules` for a run
of ``total_steps`` optimizer steps with ``warmup_steps`` of warmup, and declares the keyword arguments
it accepts in ``lr_scheduler_kwargs`` (anything else is an error naming the key). The result is a
:class:`BuiltSchedule`: the LR multiplier, the momentum/beta1 schedule where the type cycles it, and
the *transitions* (end of warmup, restarts, step drops, start of cool-down) that plots mark and the
spike monitor lines loss spikes up against.

Two kinds of names live here. ftrecipes' own families (``cosine``, ``linear``, ``polynomial``,
``constant``, ``inverse_sqrt``, ``step``, ``exponential``, ``sgdr``, ``one_cycle``, ``wsd``,
``plateau``) honour the recipe's warmup fields (``warmup_type``, ``warmup_start``, ``warmup_offset``) and
its floor (``min_lr_rate`` / ``min_lr``). Every other ``transformers.SchedulerType`` name
(:data:`HF_TYPES`) means exactly what it means in ``transformers.get_scheduler``: Hugging Face's warmup
count (``step / W``) and only that type's own ``lr_scheduler_kwargs``. The names both have also accept
Hugging Face's kwargs, and with ``warmup_offset: 0`` and no floor they give Hugging Face's trace.
"""

from __future__ import annotations

import inspect
import re
from typing import Callable

from ftrecipes.config.built_schedule import BuiltSchedule, Sizes
from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.config.schedule_builders import (
    build_constant,
    build_constant_with_warmup,
    build_cosine,
    build_cosine_warmup_with_min_lr,
    build_cosine_with_min_lr,
    build_cosine_with_restarts,
    build_exponential,
    build_greedy,
    build_inverse_sqrt,
    build_linear,
    build_one_cycle,
    build_plateau,
    build_polynomial,
    build_reduce_lr_on_plateau,
    build_sgdr,
    build_step,
    build_warmup_stable_decay,
    build_wsd,
)

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
    "constant_with_warmup": build_constant_with_warmup,
    "cosine_with_restarts": build_cosine_with_restarts,
    "cosine_with_min_lr": build_cosine_with_min_lr,
    "cosine_warmup_with_min_lr": build_cosine_warmup_with_min_lr,
    "warmup_stable_decay": build_warmup_stable_decay,
    "reduce_lr_on_plateau": build_reduce_lr_on_plateau,
    "greedy": build_greedy,
}

METRIC_DRIVEN_TYPES = frozenset(name for name in ("plateau", "reduce_lr_on_plateau", "greedy"))
"""Types that need validation metrics (an evaluation strategy)."""


def is_metric_driven(schedule_type: str) -> bool:
    return schedule_type in METRIC_DRIVEN_TYPES


# What people call these schedules elsewhere (torch and timm class names, papers, other libraries),
# keyed by the name lower-cased with separators and a trailing "lr"/"scheduler"/"schedule" removed.
_SYNONYMS = {
    "cosinerestarts": "sgdr",
    "warmrestarts": "sgdr",
    "cosinewarmrestarts": "sgdr",
    "cosineannealingwarmrestarts": "sgdr",
    "cosinewithwarmrestarts": "sgdr",
    "restarts": "sgdr",
    "hardrestarts": "cosine_with_restarts",
    "cosinehardrestarts": "cosine_with_restarts",
    "onecycle": "one_cycle",
    "1cycle": "one_cycle",
    "onecyclepolicy": "one_cycle",
    "superconvergence": "one_cycle",
    "triangular": "one_cycle",
    "stepdecay": "step",
    "multistep": "step",
    "multistepdecay": "step",
    "steplr": "step",
    "piecewise": "step",
    "piecewiseconstant": "step",
    "staircase": "step",
    "noam": "inverse_sqrt",
    "rsqrt": "inverse_sqrt",
    "invsqrt": "inverse_sqrt",
    "inversesquareroot": "inverse_sqrt",
    "transformer": "inverse_sqrt",
    "attentionisallyouneed": "inverse_sqrt",
    "vaswani": "inverse_sqrt",
    "reduceonplateau": "plateau",
    "reducelronplateau": "reduce_lr_on_plateau",
    "plateaudecay": "plateau",
    "exp": "exponential",
    "expdecay": "exponential",
    "exponentialdecay": "exponential",
    "cosineannealing": "cosine",
    "cosinedecay": "cosine",
    "halfcosine": "cosine",
    "cos": "cosine",
    "cosinewarmup": "cosine",
    "linearwarmup": "linear",
    "lineardecay": "linear",
    "triangle": "linear",
    "poly": "polynomial",
    "polynomialdecay": "polynomial",
    "power": "polynomial",
    "fixed": "constant",
    "none": "constant",
    "flat": "constant",
    "constantlr": "constant",
    "warmupconstant": "constant_with_warmup",
    "trapezoidal": "wsd",
    "trapezoid": "wsd",
    "warmupstabledecay": "warmup_stable_decay",
    "stabledecay": "wsd",
    "cooldown": "wsd",
    "cosineminlr": "cosine_with_min_lr",
    "cosinewithfloor": "cosine_with_min_lr",
    "adaptive": "greedy",
    "greedylr": "greedy",
}


def _normalise(name: str) -> str:
    key = re.sub(r"[\s_\-.]", "", str(name).lower())
    for suffix in ("scheduler", "schedule", "lr"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
    return key


def suggest_schedule_type(name: str) -> str:
    """A "did you mean" clause for an unknown ``lr_scheduler_type``: by meaning first, then by spelling."""
    key = _normalise(name)
    by_name = {_normalise(known): known for known in SCHEDULE_TYPES}
    meant = _SYNONYMS.get(key) or by_name.get(key)
    if meant:
        return f"did you mean {meant!r}?"
    return did_you_mean(name, SCHEDULE_TYPES)


def schedule_kwargs(schedule_type: str) -> dict[str, object]:
    """The ``lr_scheduler_kwargs`` a schedule type accepts, with their defaults."""
    params = inspect.signature(SCHEDULE_TYPES[schedule_type]).parameters
    return {name: p.default for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_schedule_type(schedule_type: str) -> None:
    if schedule_type not in SCHEDULE_TYPES:
        raise ConfigError(
            "lr_scheduler_type",
            schedule_type,
            "is not a known schedule",
            suggest_schedule_type(schedule_type) or f"choose one of {sorted(SCHEDULE_TYPES)}",
        )


def check_schedule_kwargs(schedule_type: str, kwargs: dict) -> None:
    accepted = schedule_kwargs(schedule_type)
    for key in kwargs:
        if key not in accepted:
            hint = did_you_mean(key, accepted) or (f"it accepts {sorted(accepted)}" if accepted else "it accepts none")
            raise ConfigError(
                f"lr_scheduler_kwargs.{key}", kwargs[key], f"is not an option of the '{schedule_type}' schedule", hint
            )


def build_schedule(schedule_type: str, sizes: Sizes, kwargs: dict | None = None) -> BuiltSchedule:
    """Build ``schedule_type`` for ``sizes`` with the given ``lr_scheduler_kwargs`` (validated)."""
    kwargs = dict(kwargs or {})
    check_schedule_type(schedule_type)
    check_schedule_kwargs(schedule_type, kwargs)
    return SCHEDULE_TYPES[schedule_type](sizes, **kwargs)
