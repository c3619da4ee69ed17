"""The verdict on a card: the mean over seeds against ``expected ± tolerance`` (or at least
``expected - tolerance``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from ftrecipes.baselines.cards import CHECKS
from ftrecipes.config.errors import ConfigError


@dataclass
class Verdict:
    """Measured mean ± std over seeds against ``expected ± tolerance``."""

    values: list[float]
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for one seed
    expected: Optional[float]
    tolerance: float
    check: str
    passed: Optional[bool]  # None: the card has no expected value yet

    @property
    def status(self) -> str:
        return "UNRECORDED" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def line(self, metric: str) -> str:
        measured = f"{metric} {self.mean:.4f} ± {self.std:.4f} (n={len(self.values)})"
        if self.expected is None:
            return f"{measured}; no expected value recorded: {self.status}"
        rule = (
            f"expected {self.expected:.4f} ± {self.tolerance:.4f}"
            if self.check == "within"
            else f"expected ≥ {self.expected - self.tolerance:.4f} ({self.expected:.4f} - {self.tolerance:.4f})"
        )
        return f"{measured} vs {rule}: {self.status}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value); NaN in, NaN out."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def judge(values: Sequence[float], expected: Optional[float], tolerance: float, check: str = "within") -> Verdict:
    """PASS when the seed mean is within ``tolerance`` of ``expected`` (``check='within'``), or at least
    ``expected - tolerance`` (``check='at_least'``, for published figures a run may beat). A non-finite
    value (a diverged seed) always fails. The spread over seeds is reported, not tested: the card's
    tolerance is meant to cover seed-to-seed variation.
    """
    if check not in CHECKS:
        raise ConfigError("check", check, f"is not one of {list(CHECKS)}")
    mean, std = mean_std(values)
    if expected is None:
        passed = None
    elif not all(math.isfinite(v) for v in values):
        passed = False
    elif check == "within":
        passed = abs(mean - expected) <= tolerance + 1e-12
    else:
        passed = mean >= expected - tolerance - 1e-12
    return Verdict([float(v) for v in values], mean, std, expected, tolerance, check, passed)


__all__ = ["Verdict", "mean_std", "judge"]
