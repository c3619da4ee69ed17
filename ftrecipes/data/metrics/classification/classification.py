"""Classification metric: accuracy and macro-averaged precision, recall and F1.

A local ``evaluate`` module shipped inside ftrecipes so that ``evaluate.load(<this folder>)`` works
with no network. Self-contained on purpose (numpy only): evaluate copies this file alone into its
modules cache and imports it from there.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy is the fraction of predictions equal to the reference. Macro precision, recall and F1 are
computed per class and averaged with equal weight per class, over the classes that occur in the
references or the predictions (scikit-learn's default for average="macro"). A class with no
predicted (or no reference) rows scores 0 precision (or recall) instead of being undefined.
    precision_c = TP_c / (TP_c + FP_c)
    recall_c    = TP_c / (TP_c + FN_c)
    f1_c        = 2 * precision_c * recall_c / (precision_c + recall_c)
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    labels (`list` of `int`, optional): the classes to average over; default: those present in
        either predictions or references.
Returns:
    accuracy, f1, precision, recall (floats in [0, 1]; f1/precision/recall are macro averages).
Examples:
    >>> metric = evaluate.load("ftrecipes/data/metrics/classification")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]
    0.6666666666666666
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12}, pages={2825--2830}, year={2011}
}
"""


def _safe_divide(numerator, denominator):
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/model_evaluation.html#precision-recall-f-measure-metrics"
            ],
        )

    def _compute(self, predictions, references, labels=None):
        predictions = np.asarray(predictions, dtype=np.int64)
        references = np.asarray(references, dtype=np.int64)
        if predictions.size == 0:
            return {"accuracy": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0}
        classes = np.unique(np.concatenate([predictions, references])) if labels is None else np.asarray(labels)
        # One row per class: true positives, predicted count, reference count.
        tp = np.array([np.sum((predictions == c) & (references == c)) for c in classes], dtype=np.float64)
        predicted = np.array([np.sum(predictions == c) for c in classes], dtype=np.float64)
        actual = np.array([np.sum(references == c) for c in classes], dtype=np.float64)
        precision = _safe_divide(tp, predicted)
        recall = _safe_divide(tp, actual)
        f1 = _safe_divide(2 * precision * recall, precision + recall)
        return {
            "accuracy": float(np.mean(predictions == references)),
            "f1": float(np.mean(f1)),
            "precision": float(np.mean(precision)),
            "recall": float(np.mean(recall)),
        }
