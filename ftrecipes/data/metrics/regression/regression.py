"""Regression metric: Pearson and Spearman correlation and mean squared error (STS-B's scores).

A local ``evaluate`` module shipped inside ftrecipes so that ``evaluate.load(<this folder>)`` works
with no network. Self-contained on purpose (numpy only): evaluate copies this file alone into its
modules cache and imports it from there, and scipy is not a dependency of ftrecipes (the results equal
``scipy.stats.pearsonr`` / ``spearmanr``, which the tests check).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Pearson's r is the linear correlation of predictions and references; Spearman's rho is Pearson's r of
their ranks (ties get the mean of the ranks they span), so it rewards any monotone agreement. GLUE's
STS-B task reports both (Wang et al., 2019). MSE is the mean squared error, the loss of a regression
head.
    pearson   = sum((p - mean(p)) (r - mean(r))) / sqrt(sum((p - mean(p))^2) sum((r - mean(r))^2))
    spearmanr = pearson(rank(p), rank(r))
    mse       = mean((p - r)^2)
A correlation is undefined (NaN) when predictions or references are constant.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): predicted scores.
    references (`list` of `float`): true scores.
Returns:
    pearson, spearmanr (floats in [-1, 1], NaN when undefined), mse (float >= 0).
Examples:
    >>> metric = evaluate.load("ftrecipes/data/metrics/regression")
    >>> metric.compute(predictions=[1.0, 2.0, 4.0], references=[1.0, 2.0, 3.0])["spearmanr"]
    1.0
"""

_CITATION = """
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={International Conference on Learning Representations},
  year={2019}
}
"""


def _pearson(x, y):
    x = x - x.mean()
    y = y - y.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    if denominator == 0:
        return float("nan")
    return float(np.clip(np.sum(x * y) / denominator, -1.0, 1.0))


def _ranks(values):
    """1-based ranks; tied values share the mean of the ranks they span ("average" ties, as scipy)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Regression(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            reference_urls=[
                "https://gluebenchmark.com/tasks",
                "https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.spearmanr.html",
            ],
        )

    def _compute(self, predictions, references):
        predictions = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references, dtype=np.float64)
        if predictions.size == 0:
            return {"pearson": float("nan"), "spearmanr": float("nan"), "mse": float("nan")}
        return {
            "pearson": _pearson(predictions, references),
            "spearmanr": _pearson(_ranks(predictions), _ranks(references)),
            "mse": float(np.mean((predictions - references) ** 2)),
        }
