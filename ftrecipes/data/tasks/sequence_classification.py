"""Sequence classification (``cls``): single texts or text pairs -> one class per row.

Model: ``AutoModelForSequenceClassification``; metrics: accuracy and macro precision / recall / F1
(the shipped ``classification`` module); best model by accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ftrecipes.config.errors import ConfigError
from ftrecipes.data.tasks._common import (
    _check_label_values,
    _clamp_length,
    _value_to_name,
    check_columns,
    class_label_list,
    encode_texts,
    given_label_list,
    label_ids,
    text_columns,
    tokenize_splits,
)
from ftrecipes.data.tasks.base import PreparedTask, Task

if TYPE_CHECKING:  # pragma: no cover
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase


def preprocess_sequence_classification(
    raw: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    *,
    text_column_name: str | None = None,
    text_pair_column_name: str | None = None,
    label_column_name: str = "label",
    max_seq_length: int | None = 128,
    label_list: Sequence[str] | None = None,
    pad_to_multiple_of: int | None = None,
) -> PreparedTask:
    """Tokenize single texts or text pairs (truncated to ``max_seq_length``) and map labels to ids.

    ``text_column_name`` defaults to the first of ``text`` / ``sentence`` / ``sentence1`` present;
    when it is ``sentence1`` and ``sentence2`` exists, pairs are used (GLUE layout). Labels may be a
    ``ClassLabel`` (its names, in order), strings (sorted) or integers (sorted numerically); the
    label list is taken from ``train``. Rows of a ``test`` split without labels get ``-100``.
    """
    from transformers import DataCollatorWithPadding

    text_column_name, text_pair_column_name = text_columns(raw, text_column_name, text_pair_column_name)
    check_columns(raw, {"--label_column_name": label_column_name}, splits=("train", "validation"))
    max_length = _clamp_length(tokenizer, max_seq_length, "--max_seq_length", 128)

    if label_list is None:
        label_list = class_label_list(raw, label_column_name, "--label_column_name", sequence=False)
    else:
        label_list = given_label_list(label_list)
    label_list = list(label_list)
    if len(label_list) < 2:
        raise ConfigError(
            "--label_column_name",
            label_column_name,
            f"has {len(label_list)} distinct label(s) in train",
            "classification needs at least 2 classes",
        )
    label2id = {name: i for i, name in enumerate(label_list)}
    _check_label_values(
        raw, label_column_name, "--label_column_name", label2id, sequence=False, required=("train", "validation")
    )

    def tokenize(batch, to_name, split, streamed):
        encoded = encode_texts(tokenizer, batch, text_column_name, text_pair_column_name, max_length)
        if label_column_name in batch:
            names = [to_name(v) for v in batch[label_column_name]]
            encoded["labels"] = label_ids(
                names, label2id, flag="--label_column_name", column=label_column_name, split=split, streamed=streamed
            )
        return encoded

    tokenized = tokenize_splits(
        raw, tokenize, lambda split, ds: {"to_name": _value_to_name((ds.features or {}).get(label_column_name))}
    )
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return PreparedTask(TASK.short, tokenized, collator, label_list)


class SequenceClassification(Task):
    name = "sequence-classification"
    short = "cls"
    aliases = ("text-classification",)
    auto_model = "AutoModelForSequenceClassification"
    flags = {
        "text_column_name": "text_column_name",
        "text_pair_column_name": "text_pair_column_name",
        "label_column_name": "label_column_name",
        "max_seq_length": "max_seq_length",
        "label_list": "label_list",
    }
    supports_streaming = True
    metric_names = ("accuracy", "f1", "precision", "recall")
    metric_for_best_model = "accuracy"
    greater_is_better = True
    head_suffixes = ("ForSequenceClassification",)

    preprocess = staticmethod(preprocess_sequence_classification)

    def compute_metrics(self, prepared=None, **metric_kwargs):
        from ftrecipes.data.metrics import classification_metrics

        return classification_metrics()


TASK = SequenceClassification()
