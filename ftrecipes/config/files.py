"""Reading YAML files and writing run outputs: one loader and one atomic writer for the package.

Outputs are written to a temporary file in the destination folder and moved into place with
``os.replace`` (atomic on POSIX and Windows for a path on the same file system), so a reader, a resumed
run or a killed process never sees a half-written report.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import yaml

from ftrecipes.config.errors import ConfigError


def load_yaml_mapping(path: str | os.PathLike, field: str, what: str = "recipe fields") -> dict:
    """The mapping a YAML file holds (an empty file is ``{}``); a :class:`ConfigError` naming ``field``
    for a file that is missing, not UTF-8, not valid YAML (with its line) or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(field, str(path), "does not exist", "give the path of an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(field, str(path), f"is not valid YAML{where}", "fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(field, str(path), f"must hold a mapping of {what}", "write `key: value` lines")
    return data


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so writers that pick a format by it still do)
    that replaces ``path`` when the block ends without an exception, and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload: Any, **dump_kwargs) -> Path:
    """``payload`` as indented JSON (``dump_kwargs`` go to ``json.dumps``), with a final newline."""
    return write_text_atomic(path, json.dumps(payload, indent=2, **dump_kwargs) + "\n")


__all__ = ["load_yaml_mapping", "atomic_path", "write_text_atomic", "write_json_atomic"]
