"""Learning-rate priors: the range of peak LRs each training regime is known to work in.

Used by the LR range test (:mod:`ftrecipes.lr_finder`) to bound and explain its suggestion, and by
``ftrecipes validate`` to note a recipe whose peak lies outside its regime's range. Part of the config
layer: no torch, no transformers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .scaling import scaling_factor


@dataclass(frozen=True)
class LRPrior:
    """A range of peak LRs known to work for a regime, at ``global_batch_size`` (None: unscaled)."""

    low: float
    high: float
    regime: str
    source: str
    global_batch_size: int | None = None

    def __post_init__(self):
        if not 0 < self.low <= self.high or not math.isfinite(self.high):
            raise ConfigError("prior", (self.low, self.high), "needs 0 < low <= high", "give e.g. 2e-5,5e-5")

    def contains(self, lr: float) -> bool:
        # A relative tolerance so that a bound that went through a float round trip still counts.
        return self.low * (1 - 1e-9) <= lr <= self.high * (1 + 1e-9)

    def clip(self, lr: float) -> float:
        return min(max(lr, self.low), self.high)

    def scaled(self, factor: float, global_batch_size: int | None) -> "LRPrior":
        return LRPrior(self.low * factor, self.high * factor, self.regime, self.source, global_batch_size)

    def widened(self, lr: float) -> "LRPrior":
        """The prior stretched to include ``lr`` (a recipe's own documented peak)."""
        if self.contains(lr):
            return self
        return LRPrior(min(self.low, lr), max(self.high, lr), self.regime,
                       f"{self.source}; widened to the recipe's own peak {lr:.3g}", self.global_batch_size)

    def __str__(self) -> str:
        return f"{self.regime} prior {self.low:.3g}..{self.high:.3g}"


PRIORS: dict[str, LRPrior] = {
    "fine-tuning": LRPrior(2e-5, 5e-5, "fine-tuning",
                           "AdamW fine-tuning of a pretrained Transformer: 2e-5..5e-5 (BERT's fine-tuning grid, Devlin et al. 2019)"),
    "sgd": LRPrior(1e-2, 1e-1, "sgd",
                   "SGD + momentum on a CNN: ~0.01..0.1 (ResNet starts at 0.1, He et al. 2016)"),
    "pretraining": LRPrior(1e-4, 1e-3, "pretraining",
                           "AdamW pretraining from scratch: 1e-4..1e-3 (long runs, warmup matters more)"),
}

# Shipped recipes whose regime is not the fine-tuning default.
RECIPE_REGIMES: dict[str, str] = {"pretrain": "pretraining", "pretrain-invsqrt": "pretraining", "cnn-step": "sgd"}


def recipe_regime(recipe) -> str:
    """``fine-tuning``, ``sgd`` or ``pretraining`` for a recipe (by name, then by optimizer)."""
    if recipe.name in RECIPE_REGIMES:
        return RECIPE_REGIMES[recipe.name]
    if recipe.optimizer == "sgd":
        return "sgd"
    if recipe.name.startswith("pretrain"):
        return "pretraining"
    return "fine-tuning"


def prior_for_recipe(recipe, global_batch_size: int | None = None) -> LRPrior:
    """The recipe's regime prior, widened to include its own ``learning_rate`` and, when
    ``global_batch_size`` is given, rescaled from ``reference_global_batch_size`` by ``lr_scaling``."""
    prior = PRIORS[recipe_regime(recipe)].widened(recipe.learning_rate)
    if global_batch_size is None:
        return prior
    factor = scaling_factor(global_batch_size, recipe.reference_global_batch_size, recipe.lr_scaling)
    return prior.scaled(factor, global_batch_size)


def parse_prior(value: Any) -> LRPrior | None:
    """An :class:`LRPrior` from ``None``, an ``LRPrior``, a ``(low, high)`` pair or ``"low,high"``."""
    if value is None or isinstance(value, LRPrior):
        return value
    try:
        low, high = (float(v) for v in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise ConfigError("prior", value, "is not a pair of learning rates", "give e.g. 2e-5,5e-5") from None
    return LRPrior(low, high, "user", "given explicitly")
