"""Batch-size scaling of the peak learning rate.

A recipe's ``learning_rate`` was tuned at ``reference_global_batch_size``. When a run's global batch
``B = per_device_train_batch_size * num_processes * gradient_accumulation_steps`` differs from that
reference ``B_ref``, the peak follows the recipe's ``lr_scaling`` rule::

    linear:  lr(B) = lr_ref * B / B_ref          SGD + momentum (Goyal et al. 2017)
    sqrt:    lr(B) = lr_ref * sqrt(B / B_ref)    Adam / AdamW (the gentle choice, see below)
    none:    lr(B) = lr_ref

Why these choices:

* **SGD: linear.** Doubling the batch halves the variance of the gradient estimate, so twice the step
  covers the same ground per epoch (Goyal et al. 2017, "Accurate, Large Minibatch SGD", which also
  needs warmup to make it hold). The rule breaks down far from the reference — beyond a "critical
  batch size" larger batches stop buying progress (McCandlish et al. 2018, "An Empirical Model of
  Large-Batch Training") — so a factor beyond :data:`SAFE_FACTOR` in either direction is flagged.
* **AdamW: sqrt.** Adam normalises the step by the gradient's second moment, so the step does not grow
  with the batch as SGD's does, and the best peak moves less predictably with it. The square-root
  rule keeps the per-step noise scale roughly constant (Hoffer et al. 2017, "Train longer, generalize
  better"; Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive Gradient Algorithms") and
  moves the peak only half as far (in log terms) as the linear rule. It is a starting point to tune
  from, which is what the logged message says. Recipes that would rather not move the peak at all set
  ``lr_scaling: none``.

Every run logs the before/after pair (:meth:`LRScaling.message`), and ``lr_scaling`` is a recipe field,
so ``--lr_scaling none`` on the command line switches scaling off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ftrecipes.config.errors import ConfigError, did_you_mean

# The rules, and the rule each optimizer family defaults to.
SCALING_RULES = ("none", "linear", "sqrt")
DEFAULT_RULE_FOR_OPTIMIZER = {"sgd": "linear", "adamw": "sqrt"}
# Beyond this factor (or below its inverse) no rule is trustworthy without a re-tune.
SAFE_FACTOR = 8.0


def scaling_factor(global_batch_size: int, reference_global_batch_size: int, rule: str) -> float:
    """The multiplier of the peak LR: ``B/B_ref`` (linear), ``sqrt(B/B_ref)`` (sqrt) or ``1`` (none)."""
    if rule not in SCALING_RULES:
        raise ConfigError(
            "lr_scaling",
            rule,
            f"is not one of {list(SCALING_RULES)}",
            did_you_mean(rule, SCALING_RULES) or "use 'sqrt' for AdamW, 'linear' for SGD or 'none'",
        )
    for name, value in (
        ("global_batch_size", global_batch_size),
        ("reference_global_batch_size", reference_global_batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(name, value, "must be a positive integer", f"set {name} >= 1")
    ratio = global_batch_size / reference_global_batch_size
    if rule == "linear":
        return ratio
    if rule == "sqrt":
        return math.sqrt(ratio)
    return 1.0


@dataclass(frozen=True)
class LRScaling:
    """The peak LR before and after batch-size scaling, with what decided it."""

    rule: str
    reference_global_batch_size: int
    global_batch_size: int
    learning_rate_before: float
    learning_rate_after: float
    factor: float
    overridden: bool = False  # the rule came from an explicit flag, not the recipe

    @property
    def outside_safe_range(self) -> bool:
        return self.factor > SAFE_FACTOR or self.factor < 1.0 / SAFE_FACTOR

    def message(self) -> str:
        """One line for the run log, e.g. ``peak LR 5e-05 -> 0.0001 (sqrt rule: global batch 64 vs
        reference 16, x2)``."""
        source = "flag" if self.overridden else "recipe"
        if self.rule == "none" or self.global_batch_size == self.reference_global_batch_size:
            why = "no scaling" if self.rule == "none" else "global batch equals the reference"
            return (
                f"peak LR {self.learning_rate_before:.4g} unchanged ({why}; lr_scaling={self.rule} from {source}, "
                f"global batch {self.global_batch_size}, reference {self.reference_global_batch_size})"
            )
        line = (
            f"peak LR {self.learning_rate_before:.4g} -> {self.learning_rate_after:.4g} "
            f"({self.rule} rule from {source}: global batch {self.global_batch_size} vs reference "
            f"{self.reference_global_batch_size}, x{self.factor:.4g})"
        )
        if self.outside_safe_range:
            line += (
                f"; the batch is more than {SAFE_FACTOR:g}x away from the reference, where scaling rules stop "
                "holding: re-tune the peak (e.g. `ftrecipes lr-find`) or add warmup"
            )
        elif self.rule == "sqrt":
            line += "; Adam-type scaling is a starting point, tune around it"
        return line

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "reference_global_batch_size": self.reference_global_batch_size,
            "global_batch_size": self.global_batch_size,
            "learning_rate_before": self.learning_rate_before,
            "learning_rate_after": self.learning_rate_after,
            "factor": self.factor,
            "overridden": self.overridden,
            "message": self.message(),
        }


def scale_learning_rate(
    learning_rate: float,
    global_batch_size: int,
    reference_global_batch_size: int,
    rule: str,
    *,
    overridden: bool = False,
) -> LRScaling:
    """Scale ``learning_rate`` (tuned at ``reference_global_batch_size``) to ``global_batch_size``."""
    factor = scaling_factor(global_batch_size, reference_global_batch_size, rule)
    return LRScaling(
        rule=rule,
        reference_global_batch_size=reference_global_batch_size,
        global_batch_size=global_batch_size,
        learning_rate_before=learning_rate,
        learning_rate_after=learning_rate * factor,
        factor=factor,
        overridden=overridden,
    )


def recipe_lr_scaling(
    recipe, global_batch_size: int, *, rule: str | None = None, learning_rate: float | None = None
) -> LRScaling:
    """The scaling a recipe applies at ``global_batch_size``.

    ``rule`` overrides the recipe's ``lr_scaling`` (the command-line flag); ``learning_rate`` overrides
    the recipe's peak at the reference batch. This is the only implementation of batch-size scaling:
    :meth:`Recipe.plan`, ``recipe_training_args`` and the LR finder's prior all call it.
    """
    chosen = recipe.lr_scaling if rule is None else rule
    base = recipe.learning_rate if learning_rate is None else learning_rate
    return scale_learning_rate(
        base, global_batch_size, recipe.reference_global_batch_size, chosen, overridden=rule is not None
    )
