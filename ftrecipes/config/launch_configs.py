"""The launch configurations shipped in the package, for ``accelerate launch --config_file``.

Accelerate config files for several processes on CPU cores, DDP, FSDP2, DeepSpeed ZeRO-2/3 and several
machines, and the DeepSpeed JSON files two of them name. They are package data (``recipes/launch/`` in
a checkout), read through :mod:`importlib.resources`, so a pip install has them too::

    ftrecipes configs                        # name and purpose of each
    ftrecipes configs cp cpu .               # writes ./cpu.yaml, to edit and launch with
    accelerate launch --config_file cpu.yaml -m ftrecipes.train --recipe cls

A DeepSpeed config is copied with the JSON it names, and the copy names the copied JSON (a path from
the folder the copy was made from, where ``accelerate launch`` is run); both are said in the output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

from ftrecipes.config.errors import ConfigError, did_you_mean

# The line of an Accelerate config that names its DeepSpeed JSON (accelerate's deepspeed_config keys).
_DEEPSPEED_FILE_LINE = re.compile(
    r"^(?P<lead>\s*deepspeed_config_file:\s*)(?P<path>[^\s#]+)(?P<rest>.*)$", re.MULTILINE
)
LAUNCH_COMMAND = "accelerate launch --config_file {file} -m ftrecipes.train --recipe cls"


@dataclass(frozen=True)
class LaunchConfig:
    """One shipped file: its ``name`` on the command line, its file name, a one-line purpose and, for a
    DeepSpeed config, the JSON file it names (copied along)."""

    name: str
    file_name: str
    purpose: str
    companion: Optional[str] = None


def _folder():
    return resources.files("ftrecipes") / "recipes" / "launch"


def _purpose(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def launch_configs() -> list[LaunchConfig]:
    """Every shipped launch config, Accelerate files first (named by their stem, ``cpu``), then the
    DeepSpeed JSONs (named by their file name, ``deepspeed-zero2.json``)."""
    entries = sorted((entry for entry in _folder().iterdir() if entry.is_file()), key=lambda e: e.name)
    yamls, jsons = [], {}
    for entry in entries:
        if entry.name.endswith(".yaml"):
            text = entry.read_text(encoding="utf-8")
            match = _DEEPSPEED_FILE_LINE.search(text)
            companion = Path(match.group("path")).name if match else None
            yamls.append(LaunchConfig(entry.name[: -len(".yaml")], entry.name, _purpose(text), companion))
        elif entry.name.endswith(".json"):
            jsons[entry.name] = entry.name
    named_by = {c.companion: c for c in yamls if c.companion}
    found = [*yamls]
    for name in jsons:
        owner = named_by.get(name)
        purpose = (
            f"the DeepSpeed settings {owner.file_name} names (`cp {owner.name}` copies it along)"
            if owner
            else "DeepSpeed settings for --deepspeed"
        )
        found.append(LaunchConfig(name, name, purpose))
    return found


def get_launch_config(name: str) -> LaunchConfig:
    """The shipped config called ``name`` (``cpu`` or ``cpu.yaml``); an unknown name is a :class:`ConfigError`."""
    configs = {c.name: c for c in launch_configs()}
    key = name[: -len(".yaml")] if name.endswith(".yaml") and name[: -len(".yaml")] in configs else name
    if key not in configs:
        raise ConfigError(
            "NAME",
            name,
            "is not a shipped launch config",
            did_you_mean(name, list(configs)) or "see `ftrecipes configs` for the list",
        )
    return configs[key]


def _target(config: LaunchConfig, dest: str) -> Path:
    path = Path(dest)
    if path.is_dir() or dest.endswith(("/", "\\")):
        return path / config.file_name
    allowed = (".json",) if config.file_name.endswith(".json") else (".yaml", ".yml")
    if path.suffix.lower() not in allowed:
        raise ConfigError(
            "DEST",
            dest,
            f"is neither a folder nor a {' or '.join(allowed)} file name",
            f"give a folder (e.g. .) or a file name such as my-{config.file_name}",
        )
    return path


def copy_launch_config(name: str, dest: str = ".", *, force: bool = False) -> list[str]:
    """Copy the shipped config ``name`` to ``dest`` (a folder, or a file name); returns the lines to print.

    Nothing is written when a file would be replaced (unless ``force``: then the line says so), when
    ``dest``'s folder does not exist, or when ``name`` is unknown: each is a :class:`ConfigError`.
    A DeepSpeed config brings its JSON, written next to it, and the copy's ``deepspeed_config_file``
    names that JSON's path as written (relative paths are read from the folder you launch in).
    """
    config = get_launch_config(name)
    target = _target(config, dest)
    writes = [(target, (_folder() / config.file_name).read_text(encoding="utf-8"))]
    notes = {}
    if config.companion is not None:
        companion = target.parent / config.companion
        pointed = _DEEPSPEED_FILE_LINE.sub(
            lambda m: f"{m.group('lead')}{companion.as_posix()}{m.group('rest')}", writes[0][1], count=1
        )
        writes = [(target, pointed), (companion, (_folder() / config.companion).read_text(encoding="utf-8"))]
        notes[companion] = f"{target.name} names it as deepspeed_config_file: {companion.as_posix()}" + (
            "" if companion.is_absolute() else " (relative to the folder you launch from)"
        )
    for path, _ in writes:
        if not path.parent.is_dir():
            raise ConfigError(
                "DEST",
                dest,
                f"is in a folder that does not exist ({path.parent})",
                "create the folder first, or give an existing one",
            )
        if path.exists() and (not force or path.is_dir()):
            raise ConfigError(
                "DEST",
                str(path),
                "already exists" + (" and is a folder" if path.is_dir() else ""),
                "choose another DEST" + ("" if path.is_dir() else ", or pass --force to replace it"),
            )
    lines = []
    for path, text in writes:
        replaced = path.exists()
        # "x" without --force: never over a file that appeared since the check above
        with open(path, "w" if force else "x", encoding="utf-8") as handle:
            handle.write(text)
        line = f"wrote {path}" + (" (replaced the file that was there)" if replaced else "")
        if path in notes:
            line += f"; {notes[path]}"
        lines.append(line)
    if not config.file_name.endswith(".json"):
        lines.append("launch: " + LAUNCH_COMMAND.format(file=target.as_posix()))
    return lines


__all__ = ["LaunchConfig", "launch_configs", "get_launch_config", "copy_launch_config", "LAUNCH_COMMAND"]
