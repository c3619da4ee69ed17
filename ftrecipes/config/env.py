"""Whether a setting that arrives as text (an environment variable, a command-line value) says "true".

One set of spellings for every variable ftrecipes reads: huggingface_hub's ``ENV_VARS_TRUE_VALUES``
(``1``, ``ON``, ``YES``, ``TRUE``, any case), which is also what accelerate and transformers accept for
their ``*_USE_*`` variables.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

TRUE_VALUES = frozenset({"1", "on", "yes", "true"})


def is_true(value: Any) -> bool:
    """``True`` for a true spelling (any case, surrounding spaces ignored) or a truthy non-string; ``None`` is false."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() in TRUE_VALUES
    return bool(value)


def env_true(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment variable ``name`` is set to a true spelling."""
    return is_true((os.environ if environ is None else environ).get(name))


__all__ = ["TRUE_VALUES", "is_true", "env_true"]
