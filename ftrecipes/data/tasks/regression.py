"""Regression (``regression``): single texts or text pairs -> one real-valued score (STS-B style).

As ``run_glue.py`` trains STS-B: a sequence-classification head with ``num_labels=1`` and
``problem_type="regression"``, so the model's loss is the mean squared error (transformers'
``...ForSequenceClassification`` picks ``MSELoss`` for that problem type). Labels are floats, not
normalised. Metrics: Pearson and Spearman correlation and MSE (the shipped ``regression`` module);
best model by Pearson's r.

This module is the whole task: the registry finds ``TASK`` below.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from ftrecipes.config.errors import ConfigError
from ftrecipes.data.tasks._common import (
    _clamp_length,
    _first_present,
    check_columns,
    encode_texts,
    is_streamed,
    split_columns,
    text_columns,
    tokenize_splits,
)
from ftrecipes.data.tasks.base import PreparedTask, Task

if TYPE_CHECKING:  # pragma: no cover
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger("ftrecipes.data.tasks")


def _targets(values: list, column: str, split: str) -> list[float | None]:
    """The column's values as floats (``None`` kept); anything else is a one-line error."""
    out = []
    for value in values:
        if value is None:
            out.append(None)
            continue
        try:
            number = None if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number):
            raise ConfigError(
                "--label_column_name",
                column,
                f"the {split!r} split holds {value!r}, not a finite number",
                "regression needs numeric targets; for class labels use --recipe cls",
            )
        out.append(number)
    return out


def preprocess_regression(
    raw: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    *,
    text_column_name: str | None = None,
    text_pair_column_name: str | None = None,
    label_column_name: str | None = None,
    max_seq_length: int | None = 128,
    pad_to_multiple_of: int | None = None,
) -> PreparedTask:
    """Tokenize texts or pairs (as
    :func:`~ftrecipes.data.tasks.sequence_classification.preprocess_sequence_classification`) and keep the
    float target as ``labels``.

    ``label_column_name`` defaults to ``label``, then ``score`` (sentence-transformers' STS layout).
    Train and validation need a target on every row. Another split (``test``) without targets, or
    with one constant value (GLUE's test splits mark every row -1), is kept without ``labels``: it
    can be predicted, not scored.
    """
    from transformers import DataCollatorWithPadding

    text_column_name, text_pair_column_name = text_columns(raw, text_column_name, text_pair_column_name)
    if label_column_name is None:
        label_column_name = _first_present(raw, ("label", "score")) or "label"
    check_columns(raw, {"--label_column_name": label_column_name}, splits=("train", "validation"))
    max_length = _clamp_length(tokenizer, max_seq_length, "--max_seq_length", 128)

    labelled = {}
    for split, ds in raw.items():
        if label_column_name not in split_columns(ds):
            labelled[split] = False
            continue
        if is_streamed(ds):  # never scanned: each row's target is checked as it is read (tokenize)
            labelled[split] = True
            continue
        targets = _targets(ds[label_column_name], label_column_name, split)
        if split in ("train", "validation"):
            if any(t is None for t in targets):
                raise ConfigError(
                    "--label_column_name",
                    label_column_name,
                    f"has missing targets in the {split!r} split",
                    "fill in every target of train and validation",
                )
            labelled[split] = True
        else:
            labelled[split] = None not in targets and len(set(targets)) > 1
            if not labelled[split]:
                logger.info("regression: the %r split has no usable targets; it is predicted, not scored", split)
    if not is_streamed(raw["train"]) and len(set(raw["train"][label_column_name])) < 2:
        raise ConfigError(
            "--label_column_name", label_column_name, "has a single value in train", "regression needs varying targets"
        )

    def tokenize(batch, with_labels, split, streamed):
        encoded = encode_texts(tokenizer, batch, text_column_name, text_pair_column_name, max_length)
        if with_labels:
            targets = (
                _targets(batch[label_column_name], label_column_name, split) if streamed else batch[label_column_name]
            )
            if streamed and None in targets:
                raise ConfigError(
                    "--label_column_name",
                    label_column_name,
                    f"a row of the streamed {split!r} split has no target",
                    "fill in every target of the training data",
                )
            encoded["labels"] = [float(v) for v in targets]
        return encoded

    tokenized = tokenize_splits(raw, tokenize, lambda split, ds: {"with_labels": labelled[split]})
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return PreparedTask(TASK.short, tokenized, collator, None)


def _compute_regression(metric):
    from ftrecipes.data.metrics import unpack_eval_pred

    def compute_metrics(eval_pred) -> dict[str, float]:
        predictions, labels = unpack_eval_pred(eval_pred)
        return metric.compute(predictions=predictions.reshape(-1), references=labels.reshape(-1))

    return compute_metrics


class Regression(Task):
    name = "regression"
    short = "regression"
    aliases = ("text-regression",)
    auto_model = "AutoModelForSequenceClassification"
    flags = {
        "text_column_name": "text_column_name",
        "text_pair_column_name": "text_pair_column_name",
        "label_column_name": "label_column_name",
        "max_seq_length": "max_seq_length",
    }
    metric_names = ("pearson", "spearmanr", "mse")
    metric_for_best_model = "pearson"
    greater_is_better = True
    head_suffixes = ("ForSequenceClassification",)
    supports_streaming = True

    preprocess = staticmethod(preprocess_regression)

    def config_overrides(self, prepared: PreparedTask) -> dict[str, Any]:
        # One output; problem_type makes the head's loss MSE whatever the labels' dtype.
        return {"num_labels": 1, "id2label": {0: "LABEL_0"}, "label2id": {"LABEL_0": 0}, "problem_type": "regression"}

    def compute_metrics(self, prepared=None, **metric_kwargs):
        from ftrecipes.data.metrics import load_metric

        return _compute_regression(load_metric("regression"))


TASK = Regression()
