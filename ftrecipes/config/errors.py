"""User-facing errors.

Every mistake a user can make in a recipe, an override, a flag or a data file is raised as a
:class:`ConfigError`: one line that names the field, the value that was given and the fix. The
scripts and the ``ftrecipes`` command catch it, print that line to stderr and exit with code 2 —
no traceback, nothing written to ``output_dir``.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any, Iterable

USAGE_EXIT_CODE = 2


class ConfigError(ValueError):
    """A user error, rendered as ``<field>=<value>: <problem>; <fix>`` on a single line."""

    def __init__(self, field: str, value: Any = None, problem: str = "", fix: str = ""):
        self.field = field
        self.value = value
        self.problem = problem
        self.fix = fix
        head = f"{field}={value!r}" if value is not None else field
        message = f"{head}: {problem}" if problem else head
        if fix:
            message += f"; {fix}"
        super().__init__(" ".join(message.split()))  # always one line


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> str:
    """A suggestion clause for a mistyped name, e.g. ``"did you mean 'cls'?"`` (empty when nothing is close)."""
    close = difflib.get_close_matches(str(word), list(choices), n=n, cutoff=0.5)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


def usage_error(message: str, help_command: str = "--help") -> ConfigError:
    """argparse's own complaint as a :class:`ConfigError`, naming the flag when argparse names one:
    ``argument --lr: invalid float value: 'x'`` becomes ``--lr: invalid float value: 'x'; see --help``."""
    head, sep, rest = message.partition(": ")
    fix = f"see {help_command}"
    if sep and head.startswith("argument "):
        return ConfigError(head.removeprefix("argument ").split("/")[0], None, rest, fix)
    if sep and head == "the following arguments are required":
        return ConfigError(rest, None, "is required" if "," not in rest else "are required", fix)
    if sep and head == "unrecognized arguments":
        return ConfigError(rest, None, "is not a flag of this command", fix)
    return ConfigError("arguments", None, message, fix)


def raise_usage_errors(parser: argparse.ArgumentParser, help_command: str = "--help") -> argparse.ArgumentParser:
    """Have ``parser`` (an argparse or ``HfArgumentParser`` instance) raise its complaints as
    :class:`ConfigError` — printed as one line with exit code 2 like every other user error — instead of
    printing its usage block and exiting itself. argparse offers ``error`` as the method to override."""

    def error(message: str):
        raise usage_error(message, help_command)

    parser.error = error  # type: ignore[method-assign]
    return parser


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose complaints are :class:`ConfigError` (see :func:`raise_usage_errors`);
    as a class, so that sub-command parsers (``add_subparsers(parser_class=...)``) behave alike."""

    def error(self, message: str):
        raise usage_error(message, f"`{self.prog} --help`")
