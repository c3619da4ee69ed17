"""User-facing errors.

Every mistake a user can make in a recipe, an override, a flag or a data file is raised as a
:class:`ConfigError`: one line that names the field, the value that was given and the fix. The
scripts and the ``ftrecipes`` command catch it, print that line to stderr and exit with code 2 —
no traceback, nothing written to ``output_dir``.
"""

from __future__ import annotations

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
