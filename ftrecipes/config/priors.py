"""Learning-rate priors: the range of peak LRs a recipe is known to work in (its ``lr_prior`` field).

Used by the LR range test (:mod:`ftrecipes.tuning.range_test`) to bound and explain its suggestion, and by
``ftrecipes validate`` to note a recipe whose peak lies outside its own prior. Part of the config
layer: no torch, no transformers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.scaling import scaling_factor


@dataclass(frozen=True)
class LRPrior:
    """A range of peak LRs known to work, at ``global_batch_size`` (None: unscaled). ``regime`` names what
    it is for (e.g. ``recipe 'cls'``), ``source`` where it comes from."""

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
        return LRPrior(
            min(self.low, lr),
            max(self.high, lr),
            self.regime,
            f"{self.source}; widened to the recipe's own peak {lr:.3g}",
            self.global_batch_size,
        )

    def __str__(self) -> str:
        return f"{self.regime} prior {self.low:.3g}..{self.high:.3g}"


def recipe_prior(recipe) -> LRPrior:
    """The recipe's ``lr_prior`` as an :class:`LRPrior` (at its ``reference_global_batch_size``)."""
    low, high = recipe.lr_prior
    return LRPrior(low, high, f"recipe {recipe.name!r}", f"lr_prior of recipe {recipe.name!r}")


def prior_for_recipe(recipe, global_batch_size: int | None = None) -> LRPrior:
    """The recipe's ``lr_prior``, widened to include its own ``learning_rate`` and, when
    ``global_batch_size`` is given, rescaled from ``reference_global_batch_size`` by ``lr_scaling``."""
    prior = recipe_prior(recipe).widened(recipe.learning_rate)
    if global_batch_size is None:
        return prior
    factor = scaling_factor(global_batch_size, recipe.reference_global_batch_size, recipe.lr_scaling)
    return prior.scaled(factor, global_batch_size)


def recommend(suggestion: float, prior: LRPrior | None) -> float:
    """The peak to train at for a range test's ``suggestion``: the suggestion clipped into ``prior``.

    The one place where a finder's raw pick becomes the recommended peak (``--learning_rate auto``,
    ``ftrecipes lr-find``), so that a correction measured against a grid of fixed peaks (e.g. a factor
    on the raw pick) changes here and nowhere else."""
    return prior.clip(suggestion) if prior is not None else suggestion


def parse_prior(value: Any) -> LRPrior | None:
    """An :class:`LRPrior` from ``None``, an ``LRPrior``, a ``(low, high)`` pair or ``"low,high"``."""
    if value is None or isinstance(value, LRPrior):
        return value
    try:
        low, high = (float(v) for v in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise ConfigError("prior", value, "is not a pair of learning rates", "give e.g. 2e-5,5e-5") from None
    return LRPrior(low, high, "user", "given explicitly")
