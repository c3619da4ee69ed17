"""Task preprocessing and collators: sequence classification, token classification, causal LM.

Each ``preprocess_*`` function takes the raw splits from :func:`ftrecipes.data.load_raw_datasets`
and a tokenizer, checks the columns up front (a :class:`ConfigError` lists the columns there are),
tokenizes with ``datasets.map(batched=True)`` and returns a :class:`PreparedTask`: tokenized splits
with only model inputs and ``labels``, a dynamic-padding collator and the label maps a model config
needs. Padding is left to the collator so each batch pads only to its own longest row.

Task names follow the recipes: ``cls`` (sequence classification, single texts or pairs), ``ner``
(token classification, labels aligned to sub-words) and ``clm`` (causal LM on fixed-size blocks).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from datasets import ClassLabel, DatasetDict
from transformers import (
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerBase,
)

from .errors import ConfigError, did_you_mean

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # the label that torch's cross-entropy (and every HF head) skips

TASK_ALIASES = {
    "cls": "cls",
    "sequence_classification": "cls",
    "sequence-classification": "cls",
    "text-classification": "cls",
    "ner": "ner",
    "token_classification": "ner",
    "token-classification": "ner",
    "clm": "clm",
    "causal_lm": "clm",
    "causal-lm": "clm",
    "text-generation": "clm",
}
TASKS = ("cls", "ner", "clm")


def normalize_task(task: str) -> str:
    """``cls`` / ``ner`` / ``clm`` for a task name or one of its HF-style aliases."""
    key = str(task).strip().lower()
    if key not in TASK_ALIASES:
        raise ConfigError("--task", task, "is not a known task", f"{did_you_mean(key, TASK_ALIASES)} use one of {', '.join(TASKS)}".strip())
    return TASK_ALIASES[key]


@dataclass
class PreparedTask:
    """Tokenized splits plus everything a Trainer and a model config need for one task."""

    task: str
    datasets: DatasetDict
    data_collator: Callable[[list[dict]], dict]
    label_list: list[str] | None = None

    @property
    def num_labels(self) -> int | None:
        return None if self.label_list is None else len(self.label_list)

    @property
    def label2id(self) -> dict[str, int] | None:
        return None if self.label_list is None else {name: i for i, name in enumerate(self.label_list)}

    @property
    def id2label(self) -> dict[int, str] | None:
        return None if self.label_list is None else dict(enumerate(self.label_list))


# -----------------------------------------------------------------------------------------------
# Checks shared by the tasks
# -----------------------------------------------------------------------------------------------


def check_columns(raw: DatasetDict, columns: Mapping[str, str | None], splits: Sequence[str] | None = None) -> None:
    """Every ``{flag: column}`` (``None`` skipped) exists in every split of ``splits`` (default: all).

    The error names the flag, the column and the columns that *are* there.
    """
    for split in splits if splits is not None else list(raw):
        if split not in raw:
            continue
        available = raw[split].column_names
        for flag, column in columns.items():
            if column is not None and column not in available:
                hint = did_you_mean(column, available)
                raise ConfigError(
                    flag, column, f"is not a column of the {split!r} split (columns: {', '.join(available)})",
                    f"{hint} pass {flag} with one of the columns".strip(),
                )


def _first_present(raw: DatasetDict, candidates: Sequence[str]) -> str | None:
    columns = raw["train" if "train" in raw else next(iter(raw))].column_names
    return next((c for c in candidates if c in columns), None)


def _clamp_length(tokenizer: PreTrainedTokenizerBase, length: int | None, flag: str, default: int) -> int:
    if length is None:
        length = default
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(flag, length, "must be a positive integer", f"pass e.g. {flag} 128")
    limit = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)); only a real limit clamps.
    if limit is not None and limit < 1_000_000 and length > limit:
        logger.warning("%s=%d exceeds the tokenizer's model_max_length=%d; using %d", flag, length, limit, limit)
        length = limit
    return length


def _label_feature(raw: DatasetDict, column: str, sequence: bool):
    feature = raw["train"].features[column]
    if sequence:
        feature = getattr(feature, "feature", None)
    return feature


def _label_names_from_values(values: list, flag: str, column: str) -> list[str]:
    """Sorted label names for plain (non-``ClassLabel``) label values: strings, ints or bools."""
    present = [v for v in values if v is not None]
    if not present:
        raise ConfigError(flag, column, "has no labels in the train split", "check the label column")
    if any(isinstance(v, float) and not float(v).is_integer() for v in present):
        raise ConfigError(flag, column, "holds non-integer numbers (regression is not supported)", "give class labels as strings or integers")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return [str(int(v)) for v in sorted({int(v) for v in present})]  # numeric order: "2" before "10"
    return sorted({str(v) for v in present})


def _value_to_name(feature) -> Callable[[Any], str | None]:
    """How to turn one raw label value into its label name (``None`` for "no label")."""
    if isinstance(feature, ClassLabel):
        def to_name(value):
            # GLUE-style test splits mark missing labels with -1.
            return None if value is None or value < 0 else feature.int2str(int(value))
    else:
        def to_name(value):
            if value is None:
                return None
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            return str(value)
    return to_name


def label_config_kwargs(label_list: Sequence[str]) -> dict[str, Any]:
    """``num_labels``, ``id2label`` and ``label2id`` for ``AutoConfig.from_pretrained(..., **kwargs)``."""
    return {
        "num_labels": len(label_list),
        "id2label": dict(enumerate(label_list)),
        "label2id": {name: i for i, name in enumerate(label_list)},
    }


HEAD_SUFFIXES = ("ForSequenceClassification", "ForTokenClassification")


def check_label_count(num_labels: int | Sequence[str], config, model_name_or_path: str | None = None) -> None:
    """Check that a model head fits the data's labels.

    ``config.num_labels`` smaller than the number of labels would index past the head's logits (an
    opaque CUDA/IndexError deep in the loss). A checkpoint that already carries a classification
    head with a *different* size would be silently re-initialised or fail to load, so that is an
    error too; a base checkpoint (no head in ``architectures``) just gets a fresh head. Pass the
    checkpoint's config as loaded (before overriding ``num_labels``) to catch the second case, or
    the final model's config to catch the first.
    """
    n = num_labels if isinstance(num_labels, int) else len(num_labels)
    head = int(getattr(config, "num_labels", 0) or 0)
    value = model_name_or_path if model_name_or_path is not None else getattr(config, "_name_or_path", None) or None
    if n > head:
        raise ConfigError(
            "--model_name_or_path", value, f"has a head with num_labels={head} but the data has {n} labels",
            f"build the config with num_labels={n} (label_config_kwargs) or use a base checkpoint",
        )
    architectures = getattr(config, "architectures", None) or []
    has_head = any(a.endswith(HEAD_SUFFIXES) for a in architectures)
    if has_head and n != head:
        raise ConfigError(
            "--model_name_or_path", value, f"is a fine-tuned checkpoint with num_labels={head} but the data has {n} labels",
            "start from a base checkpoint, or load with ignore_mismatched_sizes=True to replace the head",
        )


def _check_label_values(raw: DatasetDict, column: str, flag: str, label2id: Mapping[str, int], sequence: bool, required: Sequence[str]) -> None:
    """Every label in every split is known from train (so a typo in validation fails here, not mid-run)."""
    for split, ds in raw.items():
        if column not in ds.column_names:
            continue
        to_name = _value_to_name(_label_feature(DatasetDict({"train": ds}), column, sequence))
        values = ds[column]
        flat = [v for row in values for v in row] if sequence else values
        names = {to_name(v) for v in set(flat)}
        if None in names and split in required:
            raise ConfigError(flag, column, f"has missing labels in the {split!r} split", "fill in every label of train and validation")
        unknown = sorted(n for n in names - set(label2id) if n is not None)
        if unknown:
            raise ConfigError(
                flag, column, f"the {split!r} split has labels not seen in train: {', '.join(unknown[:5])}",
                "make sure train covers every label (or pass the full label list)",
            )


# -----------------------------------------------------------------------------------------------
# Sequence classification
# -----------------------------------------------------------------------------------------------


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
    if text_column_name is None:
        text_column_name = _first_present(raw, ("text", "sentence", "sentence1"))
        if text_column_name is None:
            raise ConfigError(
                "--text_column_name", None, f"no text column found (columns: {', '.join(raw['train'].column_names)})",
                "pass --text_column_name",
            )
        if text_column_name == "sentence1" and text_pair_column_name is None and "sentence2" in raw["train"].column_names:
            text_pair_column_name = "sentence2"
    check_columns(raw, {"--text_column_name": text_column_name, "--text_pair_column_name": text_pair_column_name})
    check_columns(raw, {"--label_column_name": label_column_name}, splits=("train", "validation"))
    max_length = _clamp_length(tokenizer, max_seq_length, "--max_seq_length", 128)

    feature = _label_feature(raw, label_column_name, sequence=False)
    if label_list is None:
        if isinstance(feature, ClassLabel):
            label_list = list(feature.names)
        else:
            label_list = _label_names_from_values(raw["train"][label_column_name], "--label_column_name", label_column_name)
    label_list = list(label_list)
    if len(label_list) < 2:
        raise ConfigError("--label_column_name", label_column_name, f"has {len(label_list)} distinct label(s) in train", "classification needs at least 2 classes")
    label2id = {name: i for i, name in enumerate(label_list)}
    _check_label_values(raw, label_column_name, "--label_column_name", label2id, sequence=False, required=("train", "validation"))

    def tokenize(batch, to_name):
        texts = ["" if t is None else str(t) for t in batch[text_column_name]]
        pairs = None
        if text_pair_column_name is not None:
            pairs = ["" if t is None else str(t) for t in batch[text_pair_column_name]]
        encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
        if label_column_name in batch:
            names = [to_name(v) for v in batch[label_column_name]]
            encoded["labels"] = [IGNORE_INDEX if n is None else label2id[n] for n in names]
        return encoded

    tokenized = DatasetDict()
    for split, ds in raw.items():
        to_name = _value_to_name(ds.features.get(label_column_name))
        tokenized[split] = ds.map(
            tokenize, batched=True, fn_kwargs={"to_name": to_name}, remove_columns=ds.column_names,
            desc=f"Tokenizing {split}",
        )
    collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return PreparedTask("cls", tokenized, collator, label_list)


# -----------------------------------------------------------------------------------------------
# Token classification
# -----------------------------------------------------------------------------------------------


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


def align_labels_with_tokens(word_ids: Sequence[int | None], word_labels: Sequence[int], label_all_tokens: bool = False, b_to_i: Sequence[int] | None = None) -> list[int]:
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
    if text_column_name is None:
        text_column_name = _first_present(raw, ("tokens", "words")) or "tokens"
    if label_column_name is None:
        label_column_name = _first_present(raw, ("ner_tags", "tags", "labels")) or "ner_tags"
    check_columns(raw, {"--text_column_name": text_column_name})
    check_columns(raw, {"--label_column_name": label_column_name}, splits=("train", "validation"))
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            "--model_name_or_path", getattr(tokenizer, "name_or_path", None),
            "token classification needs a fast tokenizer (word_ids to align labels)", "use a model that ships tokenizer.json",
        )
    max_length = _clamp_length(tokenizer, max_seq_length, "--max_seq_length", 128)

    feature = _label_feature(raw, label_column_name, sequence=True)
    if label_list is None:
        if isinstance(feature, ClassLabel):
            label_list = list(feature.names)
        else:
            values = [v for row in raw["train"][label_column_name] for v in row]
            label_list = _label_names_from_values(values, "--label_column_name", label_column_name)
    label_list = list(label_list)
    label2id = {name: i for i, name in enumerate(label_list)}
    _check_label_values(raw, label_column_name, "--label_column_name", label2id, sequence=True, required=("train", "validation"))
    b_to_i = _b_to_i(label_list)

    def tokenize(batch, to_name):
        words = batch[text_column_name]
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        if label_column_name in batch:
            all_labels = []
            for i, tags in enumerate(batch[label_column_name]):
                if len(tags) != len(words[i]):
                    raise ConfigError(
                        "--label_column_name", label_column_name,
                        f"row has {len(words[i])} tokens but {len(tags)} tags", "give one tag per token",
                    )
                word_labels = [label2id[to_name(t)] for t in tags]
                all_labels.append(align_labels_with_tokens(encoded.word_ids(i), word_labels, label_all_tokens, b_to_i))
            encoded["labels"] = all_labels
        return encoded

    tokenized = DatasetDict()
    for split, ds in raw.items():
        to_name = _value_to_name(getattr(ds.features.get(label_column_name), "feature", None))
        tokenized[split] = ds.map(
            tokenize, batched=True, fn_kwargs={"to_name": to_name}, remove_columns=ds.column_names,
            desc=f"Tokenizing {split}",
        )
    collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return PreparedTask("ner", tokenized, collator, label_list)


# -----------------------------------------------------------------------------------------------
# Causal language modelling
# -----------------------------------------------------------------------------------------------


def group_texts(examples: Mapping[str, list[list[int]]], block_size: int) -> dict[str, list[list[int]]]:
    """Concatenate tokenized rows and cut them into ``block_size`` blocks; ``labels = input_ids``.

    The tail shorter than one block is dropped (padding it would waste compute on pad tokens).
    The model shifts labels internally, so labels are a plain copy.
    """
    concatenated = {k: [t for row in examples[k] for t in row] for k in examples}
    total = (len(concatenated["input_ids"]) // block_size) * block_size
    blocks = {k: [v[i : i + block_size] for i in range(0, total, block_size)] for k, v in concatenated.items()}
    blocks["labels"] = [list(b) for b in blocks["input_ids"]]
    return blocks


def preprocess_causal_lm(
    raw: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    *,
    text_column_name: str | None = None,
    block_size: int | None = None,
    pad_to_multiple_of: int | None = None,
) -> PreparedTask:
    """Tokenize texts, concatenate them and chunk into ``block_size`` blocks for causal LM.

    ``block_size`` defaults to ``min(1024, tokenizer.model_max_length)``. Concatenation runs per
    ``map`` batch (1,000 rows), so at most one partial block per batch is dropped. Empty lines are
    skipped. A tokenizer without a pad token gets its EOS token as pad (the collator needs one;
    blocks are all full length, so nothing is actually padded).
    """
    if text_column_name is None:
        text_column_name = _first_present(raw, ("text", "content", "sentence")) or "text"
    check_columns(raw, {"--text_column_name": text_column_name})
    block_size = _clamp_length(tokenizer, block_size, "--block_size", 1024)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("--model_name_or_path", getattr(tokenizer, "name_or_path", None), "tokenizer has neither a pad nor an EOS token", "use a tokenizer with an EOS token")
        tokenizer.pad_token = tokenizer.eos_token

    def tokenize(batch):
        texts = [t for t in batch[text_column_name] if t is not None and str(t).strip()]
        encoded = tokenizer(texts)
        # token_type_ids mean nothing to a decoder (GPT-2 would even embed them as tokens).
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}

    tokenized = DatasetDict()
    for split, ds in raw.items():
        tokens = ds.map(tokenize, batched=True, remove_columns=ds.column_names, desc=f"Tokenizing {split}")
        blocks = tokens.map(group_texts, batched=True, fn_kwargs={"block_size": block_size}, desc=f"Grouping {split} into blocks of {block_size}")
        if len(blocks) == 0:
            n_tokens = sum(len(ids) for ids in tokens["input_ids"])
            raise ConfigError(
                "--block_size", block_size, f"the {split!r} split has {n_tokens} tokens, fewer than one block",
                "lower --block_size or give more text",
            )
        tokenized[split] = blocks
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=pad_to_multiple_of)
    return PreparedTask("clm", tokenized, collator, None)


# -----------------------------------------------------------------------------------------------
# Dispatcher
# -----------------------------------------------------------------------------------------------

_PREPROCESSORS = {
    "cls": preprocess_sequence_classification,
    "ner": preprocess_token_classification,
    "clm": preprocess_causal_lm,
}


def prepare_task(task: str, raw: DatasetDict, tokenizer: PreTrainedTokenizerBase, **kwargs) -> PreparedTask:
    """Run the preprocessing of ``task`` (``cls`` / ``ner`` / ``clm`` or an alias).

    Keyword arguments that are ``None`` are dropped, and so are ``False`` flags the task does not
    take, so a script can pass all its flags through; a flag that is set but does not apply to the
    task is an error naming it.
    """
    task = normalize_task(task)
    fn = _PREPROCESSORS[task]
    accepted = set(inspect.signature(fn).parameters) - {"raw", "tokenizer"}
    kwargs = {k: v for k, v in kwargs.items() if v is not None and not (v is False and k not in accepted)}
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(f"--{key}", kwargs[key], f"does not apply to task {task!r}", f"remove it (task {task!r} takes: {', '.join(sorted(accepted))})")
    return fn(raw, tokenizer, **kwargs)
