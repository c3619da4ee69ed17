"""Token classification (``ner``): pre-split words with one tag each -> one label per sub-word.

Model: ``AutoModelForTokenClassification``; metrics: entity-level precision / recall / F1 (seqeval
rules, the shipped ``ner`` module) and token accuracy; best model by entity F1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ftrecipes.config.errors import ConfigError
from ftrecipes.data.tasks._common import (
    IGNORE_INDEX,
    _check_label_values,
    _clamp_length,
    _first_present,
    _value_to_name,
    check_columns,
    class_label_list,
    given_label_list,
    label_ids,
    tokenize_splits,
)
from ftrecipes.data.tasks.base import PreparedTask, Task

if TYPE_CHECKING:  # pragma: no cover
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase


def _b_to_i(label_list: Sequence[str]) -> list[int]:
    """For each label id, the id to use on continuation sub-tokens (``B-X`` -> ``I-X`` when it exists)."""
    ids = {name: i for i, name in enumerate(label_list)}
    out = []
    for i, name in enumerate(label_list):
        if name.startswith("B-") and ("I-" + name[2:]) in ids:
            out.append(ids["I-" + name[2:]])
        else:
            out.append(i)
    return out


def align_labels_with_tokens(
    word_ids: Sequence[int | None],
    word_labels: Sequence[int],
    label_all_tokens: bool = False,
    b_to_i: Sequence[int] | None = None,
) -> list[int]:
    """Word-level label ids -> one label per sub-token.

    Special tokens (``word_id is None``) get -100. The first sub-token of a word gets the word's
    label; later sub-tokens get -100, or with ``label_all_tokens`` the word's label with ``B-X``
    turned into ``I-X`` (via ``b_to_i``) so an entity is not split into several.
    """
    labels, previous = [], None
    for word_id in word_ids:
        if word_id is None:
            labels.append(IGNORE_INDEX)
        elif word_id != previous:
            labels.append(word_labels[word_id])
        elif label_all_tokens:
            label = word_labels[word_id]
            labels.append(b_to_i[label] if b_to_i is not None else label)
        else:
            labels.append(IGNORE_INDEX)
        previous = word_id
    return labels


def preprocess_token_classification(
    raw: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    *,
    text_column_name: str | None = None,
    label_column_name: str | None = None,
    max_seq_length: int | None = 128,
    label_all_tokens: bool = False,
    label_list: Sequence[str] | None = None,
    pad_to_multiple_of: int | None = None,
) -> PreparedTask:
    """Tokenize pre-split words and align word labels to sub-words (see :func:`align_labels_with_tokens`).

    Columns default to ``tokens`` and ``ner_tags`` (then ``labels`` / ``tags``). Needs a fast
    tokenizer (for ``word_ids``). Tags may be ``Sequence(ClassLabel)`` or strings; the label list
    comes from ``train``.
    """
    from transformers import DataCollatorForTokenClassification

    if text_column_name is None:
        text_column_name = _first_present(raw, ("tokens", "words")) or "tokens"
    if label_column_name is None:
        label_column_name = _first_present(raw, ("ner_tags", "tags", "labels")) or "ner_tags"
    check_columns(raw, {"--text_column_name": text_column_name})
    check_columns(raw, {"--label_column_name": label_column_name}, splits=("train", "validation"))
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            "--model_name_or_path",
            getattr(tokenizer, "name_or_path", None),
            "token classification needs a fast tokenizer (word_ids to align labels)",
            "use a model that ships tokenizer.json",
        )
    max_length = _clamp_length(tokenizer, max_seq_length, "--max_seq_length", 128)

    if label_list is None:
        label_list = class_label_list(raw, label_column_name, "--label_column_name", sequence=True)
    else:
        label_list = given_label_list(label_list)
    label_list = list(label_list)
    label2id = {name: i for i, name in enumerate(label_list)}
    _check_label_values(
        raw, label_column_name, "--label_column_name", label2id, sequence=True, required=("train", "validation")
    )
    b_to_i = _b_to_i(label_list)

    def tokenize(batch, to_name, split, streamed):
        words = batch[text_column_name]
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        if label_column_name in batch:
            all_labels = []
            for i, tags in enumerate(batch[label_column_name]):
                if len(tags) != len(words[i]):
                    raise ConfigError(
                        "--label_column_name",
                        label_column_name,
                        f"row has {len(words[i])} tokens but {len(tags)} tags",
                        "give one tag per token",
                    )
                word_labels = label_ids(
                    [to_name(t) for t in tags],
                    label2id,
                    flag="--label_column_name",
                    column=label_column_name,
                    split=split,
                    streamed=streamed,
                )
                all_labels.append(align_labels_with_tokens(encoded.word_ids(i), word_labels, label_all_tokens, b_to_i))
            encoded["labels"] = all_labels
        return encoded

    tokenized = tokenize_splits(
        raw,
        tokenize,
        lambda split, ds: {
            "to_name": _value_to_name(getattr((ds.features or {}).get(label_column_name), "feature", None))
        },
    )
    collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return PreparedTask(TASK.short, tokenized, collator, label_list)


# -----------------------------------------------------------------------------------------------
# Causal language modelling
# -----------------------------------------------------------------------------------------------


class TokenClassification(Task):
    name = "token-classification"
    short = "ner"
    aliases = ()
    auto_model = "AutoModelForTokenClassification"
    flags = {
        "text_column_name": "text_column_name",
        "label_column_name": "label_column_name",
        "max_seq_length": "max_seq_length",
        "label_all_tokens": "label_all_tokens",
        "label_list": "label_list",
    }
    supports_streaming = True
    metric_names = ("precision", "recall", "f1", "accuracy")
    metric_for_best_model = "f1"
    greater_is_better = True
    head_suffixes = ("ForTokenClassification",)

    preprocess = staticmethod(preprocess_token_classification)

    def compute_metrics(self, prepared=None, *, id2label=None, **metric_kwargs):
        """``metric_kwargs`` (e.g. ``mode="strict", scheme="IOB2"``) go to the metric."""
        from ftrecipes.data.metrics import ner_metrics

        return ner_metrics(id2label if id2label is not None else getattr(prepared, "id2label", None), **metric_kwargs)


TASK = TokenClassification()
