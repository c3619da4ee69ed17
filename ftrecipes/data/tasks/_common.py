"""Checks and label handling shared by the task modules (columns, lengths, label lists, head sizes).

Imports of ``datasets`` happen inside the functions: the registry imports this module, and the
registry must stay importable without torch, transformers or datasets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ftrecipes.config.errors import ConfigError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger("ftrecipes.data.tasks")

IGNORE_INDEX = -100  # the label that torch's cross-entropy (and every HF head) skips


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
        available = split_columns(raw[split])
        for flag, column in columns.items():
            if column is not None and column not in available:
                hint = did_you_mean(column, available)
                raise ConfigError(
                    flag,
                    column,
                    f"is not a column of the {split!r} split (columns: {', '.join(available)})",
                    f"{hint} pass {flag} with one of the columns".strip(),
                )


def _first_present(raw: DatasetDict, candidates: Sequence[str]) -> str | None:
    columns = split_columns(raw["train" if "train" in raw else next(iter(raw))])
    return next((c for c in candidates if c in columns), None)


# -----------------------------------------------------------------------------------------------
# Streamed splits (``datasets.IterableDataset``, ``--streaming``): read lazily, never scanned
# -----------------------------------------------------------------------------------------------


def is_streamed(ds) -> bool:
    """Whether a split is streamed (a ``datasets.IterableDataset``: no length, read row by row)."""
    from datasets import IterableDataset

    return isinstance(ds, IterableDataset)


def split_columns(ds) -> list[str]:
    """The column names of a split. A streamed file (csv/json/txt) does not know its features until
    it is read, so its first row is read for them (one row, never a scan; datasets' own feature
    resolution, ``IterableDataset._resolve_features``, does the same but is private)."""
    if ds.column_names is not None:
        return list(ds.column_names)
    first = next(iter(ds.take(1)), None)
    return list(first) if first is not None else []


def map_split(ds, function: Callable, *, desc: str, **kwargs):
    """``ds.map(function, **kwargs)`` for either kind of split: a streamed one maps lazily, as its rows
    are read (``IterableDataset.map`` takes no progress-bar ``desc``)."""
    if is_streamed(ds):
        return ds.map(function, **kwargs)
    return ds.map(function, desc=desc, **kwargs)


def tokenize_splits(raw, tokenize: Callable, split_kwargs: Callable[[str, Any], dict]):
    """Every split of ``raw`` through ``tokenize`` (batched, the raw columns dropped): a ``DatasetDict``
    of the same splits. ``tokenize(batch, split=..., streamed=..., **split_kwargs(split, ds))``."""
    from datasets import DatasetDict

    tokenized = DatasetDict()
    for split, ds in raw.items():
        tokenized[split] = map_split(
            ds,
            tokenize,
            batched=True,
            fn_kwargs={"split": split, "streamed": is_streamed(ds), **split_kwargs(split, ds)},
            remove_columns=split_columns(ds),
            desc=f"Tokenizing {split}",
        )
    return tokenized


def given_label_list(label_list: Sequence[Any], flag: str = "--label_list") -> list[str]:
    """An explicit label list (``--label_list``) as label names, in id order; repeated names would give
    two ids to one class."""
    names = [str(name) for name in label_list]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(
            flag, names, f"names {', '.join(repeated)} more than once", "give each class once, in id order"
        )
    return names


def label_ids(
    names: Sequence[str | None], label2id: Mapping[str, int], *, flag: str, column: str, split: str, streamed: bool
) -> list[int]:
    """Label names -> ids (``None`` -> ``IGNORE_INDEX``). A split in memory was checked whole before
    (:func:`_check_label_values`); a streamed one is checked here, row by row as it is read, so an
    unknown or missing label there stops the run with one line when that row arrives."""
    ids = []
    for name in names:
        if name is None:
            if streamed:
                raise ConfigError(
                    flag,
                    column,
                    f"a row of the streamed {split!r} split has no label",
                    "fill in every label of the training data",
                )
            ids.append(IGNORE_INDEX)
        elif name in label2id:
            ids.append(label2id[name])
        else:
            raise ConfigError(
                flag,
                column,
                f"the {'streamed ' if streamed else ''}{split!r} split has label {name!r}, which is not in the label "
                f"set ({', '.join(label2id)})",
                "pass every class with --label_list (the order gives the ids)",
            )
    return ids


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
    feature = (raw["train"].features or {}).get(column)  # a streamed file has no features until read
    if sequence:
        feature = getattr(feature, "feature", None)
    return feature


def _label_names_from_values(values: list, flag: str, column: str) -> list[str]:
    """Sorted label names for plain (non-``ClassLabel``) label values: strings, ints or bools."""
    present = [v for v in values if v is not None]
    if not present:
        raise ConfigError(flag, column, "has no labels in the train split", "check the label column")
    if any(isinstance(v, float) and not float(v).is_integer() for v in present):
        raise ConfigError(
            flag,
            column,
            "holds non-integer numbers (class labels were expected)",
            "give class labels as strings or integers, or train the regression task (--recipe regression) on numeric "
            "targets",
        )
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return [str(int(v)) for v in sorted({int(v) for v in present})]  # numeric order: "2" before "10"
    return sorted({str(v) for v in present})


def _value_to_name(feature) -> Callable[[Any], str | None]:
    """How to turn one raw label value into its label name (``None`` for "no label")."""
    from datasets import ClassLabel

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


def check_label_count(
    num_labels: int | Sequence[str], config, model_name_or_path: str | None, head_suffixes: Sequence[str]
) -> None:
    """Check that a model head fits the data's labels.

    ``config.num_labels`` smaller than the number of labels would index past the head's logits (an
    opaque CUDA/IndexError deep in the loss). A checkpoint that already carries a head (an
    architecture ending in one of ``head_suffixes``: pass every registered task's,
    :func:`ftrecipes.data.tasks.registered_head_suffixes`) with a
    *different* size would be silently re-initialised or fail to load, so that is an error too; a
    base checkpoint (no head in ``architectures``) just gets a fresh head. Pass the checkpoint's
    config as loaded (before overriding ``num_labels``, through :func:`with_head_size`) to catch the
    second case, or the final model's config to catch the first.
    """
    n = num_labels if isinstance(num_labels, int) else len(num_labels)
    head = int(getattr(config, "num_labels", 0) or 0)
    value = model_name_or_path if model_name_or_path is not None else getattr(config, "_name_or_path", None) or None
    if n > head:
        raise ConfigError(
            "--model_name_or_path",
            value,
            f"has a head with num_labels={head} but the data has {n} labels",
            f"build the config with num_labels={n} (label_config_kwargs) or use a base checkpoint",
        )
    suffixes = tuple(head_suffixes)
    architectures = getattr(config, "architectures", None) or []
    has_head = any(a.endswith(suffixes) for a in architectures)
    if has_head and n != head:
        raise ConfigError(
            "--model_name_or_path",
            value,
            f"is a fine-tuned checkpoint with num_labels={head} but the data has {n} labels",
            "start from a base checkpoint, or load with ignore_mismatched_sizes=True to replace the head",
        )


def with_head_size(config, num_labels: int, head_suffixes: Sequence[str]):
    """The config to check a checkpoint's head with: as loaded when it carries a head
    (``architectures`` ends in one of ``head_suffixes``); for a base checkpoint (no head yet, any label
    count fits) a copy that already has ``num_labels``."""
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(tuple(head_suffixes)) for a in architectures):
        return config
    probe = type(config).from_dict(config.to_dict())
    probe.num_labels = num_labels
    return probe


def class_label_list(raw: DatasetDict, column: str, flag: str, sequence: bool) -> list[str]:
    """The label names of a classification column, from the train split: a ``ClassLabel``'s names in
    order, else the sorted distinct values (integers numerically) of the column (or its sequences).

    A **streamed** train split cannot be scanned for its values, so its labels come from, in order:
    its ``ClassLabel`` feature (a Hub data set declares it), else the labels of the validation split
    (in memory: its sorted distinct values), else nowhere: one line asking for ``--label_list``. A
    streamed row whose label is not in that set stops the run when it is read (:func:`label_ids`).
    """
    from datasets import ClassLabel, DatasetDict

    feature = _label_feature(raw, column, sequence=sequence)
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    if is_streamed(raw["train"]):
        validation = raw.get("validation")
        if validation is None or is_streamed(validation) or column not in validation.column_names:
            raise ConfigError(
                "--label_list",
                None,
                f"the streamed train split cannot be scanned for its classes, and neither a ClassLabel "
                f"feature of {column!r} nor a validation split names them",
                "pass every class in id order, e.g. --label_list negative neutral positive (or give a "
                "--validation_file)",
            )
        names = class_label_list(DatasetDict({"train": validation}), column, flag, sequence)
        logger.info(
            "labels of the streamed train split, from the validation split: %s (a train row with another label stops "
            "the run)",
            names,
        )
        return names
    values = raw["train"][column]
    if sequence:
        values = [v for row in values for v in row]
    return _label_names_from_values(values, flag, column)


def _check_label_values(
    raw: DatasetDict, column: str, flag: str, label2id: Mapping[str, int], sequence: bool, required: Sequence[str]
) -> None:
    """Every label in every split is known from train (so a typo in validation fails here, not mid-run)."""
    from datasets import DatasetDict

    for split, ds in raw.items():
        if is_streamed(ds) or column not in ds.column_names:
            continue  # a streamed split is checked row by row as it is read (label_ids)
        to_name = _value_to_name(_label_feature(DatasetDict({"train": ds}), column, sequence))
        values = ds[column]
        flat = [v for row in values for v in row] if sequence else values
        names = {to_name(v) for v in set(flat)}
        if None in names and split in required:
            raise ConfigError(
                flag,
                column,
                f"has missing labels in the {split!r} split",
                "fill in every label of train and validation",
            )
        unknown = sorted(n for n in names - set(label2id) if n is not None)
        if unknown:
            raise ConfigError(
                flag,
                column,
                f"the {split!r} split has labels not seen in train: {', '.join(unknown[:5])}",
                "make sure train covers every label (or pass the full label list)",
            )


def text_columns(
    raw: DatasetDict, text_column_name: str | None, text_pair_column_name: str | None
) -> tuple[str, str | None]:
    """The text (and pair) columns of a sentence(-pair) task, checked in every split.

    ``text_column_name`` defaults to the first of ``text`` / ``sentence`` / ``sentence1`` present;
    when it is ``sentence1`` and ``sentence2`` exists, pairs are used (GLUE layout).
    """
    if text_column_name is None:
        text_column_name = _first_present(raw, ("text", "sentence", "sentence1"))
        if text_column_name is None:
            raise ConfigError(
                "--text_column_name",
                None,
                f"no text column found (columns: {', '.join(split_columns(raw['train']))})",
                "pass --text_column_name",
            )
        if (
            text_column_name == "sentence1"
            and text_pair_column_name is None
            and "sentence2" in split_columns(raw["train"])
        ):
            text_pair_column_name = "sentence2"
    check_columns(raw, {"--text_column_name": text_column_name, "--text_pair_column_name": text_pair_column_name})
    return text_column_name, text_pair_column_name


def encode_texts(
    tokenizer: PreTrainedTokenizerBase,
    batch: Mapping[str, list],
    text_column_name: str,
    text_pair_column_name: str | None,
    max_length: int,
):
    """Tokenize a ``map`` batch of single texts or pairs, truncated to ``max_length`` (missing texts: "")."""
    texts = ["" if t is None else str(t) for t in batch[text_column_name]]
    pairs = None
    if text_pair_column_name is not None:
        pairs = ["" if t is None else str(t) for t in batch[text_pair_column_name]]
    return tokenizer(texts, pairs, truncation=True, max_length=max_length)
