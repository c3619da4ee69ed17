"""Entity-level NER metric (precision, recall, F1) plus token accuracy, from BIO tag sequences.

A local ``evaluate`` module shipped inside ftrecipes so that ``evaluate.load(<this folder>)`` works
with no network. Entity extraction and scoring are delegated to ``seqeval`` (the reference
implementation of the CoNLL evaluation), so results match the numbers papers report.
"""

import datasets
import evaluate
import seqeval.metrics
import seqeval.scheme

_DESCRIPTION = """
An entity is a maximal span that starts with B-X (or, in the default lenient mode, an I-X that does
not continue an X span) and continues with I-X tags. A predicted entity counts as correct only if
its type and both boundaries equal a reference entity.
    precision = correct / predicted entities
    recall    = correct / reference entities
    f1        = 2 * precision * recall / (precision + recall)
overall_* are micro averages over all entity types; per-type scores are returned under the type's
name. overall_accuracy is the fraction of tokens whose tag is right (O included).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): predicted tags per sentence, e.g. [["B-person", "O"]].
    references (`list` of `list` of `str`): reference tags, same shapes.
    mode (`str`, optional): None for the lenient CoNLL rules, "strict" to only accept spans that
        are well-formed under `scheme`.
    scheme (`str`, optional): "IOB1", "IOB2", "IOE1", "IOE2", "IOBES" or "BILOU" (strict mode only).
    zero_division (`int`): value for an undefined ratio, 0 by default.
Returns:
    overall_precision, overall_recall, overall_f1, overall_accuracy and, per entity type, a dict
    with precision, recall, f1 and number (reference entities of that type).
"""

_CITATION = """
@inproceedings{ramshaw-marcus-1995-text,
  title = "Text Chunking using Transformation-Based Learning",
  author = "Ramshaw, Lance and Marcus, Mitch",
  booktitle = "Third Workshop on Very Large Corpora", year = "1995"
}
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  author={Hiroki Nakayama}, year={2018}, url={https://github.com/chakki-works/seqeval}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Ner(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(self, predictions, references, mode=None, scheme=None, zero_division=0):
        predictions = [list(p) for p in predictions]
        references = [list(r) for r in references]
        for p, r in zip(predictions, references):
            if len(p) != len(r):
                raise ValueError(f"a prediction has {len(p)} tags but its reference {len(r)}")
        scheme_cls = getattr(seqeval.scheme, scheme) if scheme is not None else None
        report = seqeval.metrics.classification_report(
            y_true=references,
            y_pred=predictions,
            output_dict=True,
            mode=mode,
            scheme=scheme_cls,
            zero_division=zero_division,
        )
        micro = report.pop("micro avg")
        for key in ("macro avg", "weighted avg"):
            report.pop(key, None)
        scores = {
            entity_type: {
                "precision": float(values["precision"]),
                "recall": float(values["recall"]),
                "f1": float(values["f1-score"]),
                "number": int(values["support"]),
            }
            for entity_type, values in report.items()
        }
        scores["overall_precision"] = float(micro["precision"])
        scores["overall_recall"] = float(micro["recall"])
        scores["overall_f1"] = float(micro["f1-score"])
        scores["overall_accuracy"] = float(seqeval.metrics.accuracy_score(y_true=references, y_pred=predictions))
        return scores
