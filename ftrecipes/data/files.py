"""Local data files: the extensions the loader reads and the check of a given path.

Imports neither ``datasets`` nor torch, so the main job can answer a missing or unsupported data file
before any heavy import (:func:`ftrecipes.job.check.check_early`); :mod:`ftrecipes.data.loading` reads
the files through the same table.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftrecipes.config.errors import ConfigError

# extension -> (datasets builder, extra builder kwargs)
FILE_BUILDERS: dict[str, tuple[str, dict]] = {
    "csv": ("csv", {}),
    "tsv": ("csv", {"delimiter": "\t"}),
    "json": ("json", {}),
    "jsonl": ("json", {}),
    "parquet": ("parquet", {}),
    "txt": ("text", {}),
}


def file_builder(path: str, field: str) -> tuple[str, dict]:
    """``(datasets builder, kwargs)`` for the data file ``path`` given as ``field``; a missing file or an
    extension the loader does not read is a :class:`ConfigError` naming ``field``."""
    if not os.path.isfile(path):
        raise ConfigError(
            field, path, "file does not exist", "check the path (relative paths are from the working directory)"
        )
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FILE_BUILDERS:
        raise ConfigError(
            field,
            path,
            f"unsupported file extension {('.' + ext) if ext else '(none)'!r}",
            f"use one of {', '.join('.' + e for e in FILE_BUILDERS)}",
        )
    return FILE_BUILDERS[ext]
