"""The task registry: one module per task, found by name.

Every module of this package (except ``base`` and ``_``-prefixed helpers) defines ``TASK``, an
instance of a :class:`~ftrecipes.data.tasks.base.Task` subclass that declares the task's names, model
class, flags, preprocessing, head check and metrics. **To add a task, add one module here** (copy
``regression.py``, the smallest) and its name to :data:`ftrecipes.config.task_names.TASK_NAMES`,
which the registry checks; the recipe's ``task:`` field, ``finetune.py``, the metrics and the
tiny test models pick it up from the registry.

Shipped: ``sequence-classification`` (``cls``), ``token-classification`` (``ner``), ``causal-lm``
(``clm``), ``image-classification`` (``image``) and ``regression`` (STS-B style, one float target).

Importing this package loads neither torch nor transformers; task modules import them inside their
functions.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.config.task_names import TASK_NAMES
from ftrecipes.data.tasks import _common
from ftrecipes.data.tasks._common import (
    IGNORE_INDEX,
    check_columns,
    label_config_kwargs,
)
from ftrecipes.data.tasks.base import PreparedTask, Task


def _discover() -> dict[str, Task]:
    """``{name: Task}`` from the ``TASK`` of every task module of this package, in module-name order."""
    found: dict[str, Task] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        task = getattr(importlib.import_module(f"{__name__}.{info.name}"), "TASK", None)
        if not isinstance(task, Task):
            raise TypeError(f"{__name__}.{info.name} must define TASK, an ftrecipes.data.tasks.base.Task instance")
        if task.name in found:
            raise TypeError(f"task name {task.name!r} is declared twice")
        found[task.name] = task
    if tuple(found) != TASK_NAMES:
        raise TypeError(
            f"the task modules declare {tuple(found)} but ftrecipes.config.task_names.TASK_NAMES is "
            f"{TASK_NAMES}: list every task module's name there, in module-name order"
        )
    return found


REGISTRY: dict[str, Task] = _discover()

# Every spelling a user may give -> the task: its name, short name, snake_case name and aliases.
TASK_ALIASES: dict[str, Task] = {}
for _task in REGISTRY.values():
    for _alias in (_task.name, _task.short, _task.name.replace("-", "_"), *_task.aliases):
        if TASK_ALIASES.setdefault(_alias, _task) is not _task:
            raise TypeError(f"task alias {_alias!r} is declared by two tasks")
del _task, _alias


def task_names() -> tuple[str, ...]:
    """The names a recipe's ``task:`` field accepts."""
    return tuple(REGISTRY)


def get_task(task: str | Task, field: str = "--task") -> Task:
    """The :class:`Task` for a name, short name or alias (a :class:`ConfigError` naming ``field`` otherwise)."""
    if isinstance(task, Task):
        return task
    key = str(task).strip().lower()
    if key not in TASK_ALIASES:
        shorts = ", ".join(t.short for t in REGISTRY.values())
        raise ConfigError(
            field, task, "is not a known task", f"{did_you_mean(key, TASK_ALIASES)} use one of {shorts}".strip()
        )
    return TASK_ALIASES[key]


def normalize_task(task: str) -> str:
    """The short name (``cls``, ``ner``, ``clm``, ...) of a task name or one of its aliases."""
    return get_task(task).short


def prepare_task(task: str | Task, raw, tokenizer, **kwargs) -> PreparedTask:
    """Run the preprocessing of ``task`` (any name or alias).

    Keyword arguments that are ``None`` are dropped, and so are ``False`` flags the task does not
    take, so a script can pass all its flags through; a flag that is set but does not apply to the
    task is an error naming it.
    """
    task = get_task(task)
    accepted = set(inspect.signature(task.preprocess).parameters) - {"raw", "tokenizer"}
    kwargs = {k: v for k, v in kwargs.items() if v is not None and not (v is False and k not in accepted)}
    for key in kwargs:
        if key not in accepted:
            raise ConfigError(
                f"--{key}",
                kwargs[key],
                f"does not apply to task {task.short!r}",
                f"remove it (task {task.short!r} takes: {', '.join(sorted(accepted))})",
            )
    return task.preprocess(raw, tokenizer, **kwargs)


def registered_head_suffixes() -> tuple[str, ...]:
    """The architecture-name endings of every registered task's heads (``ForSequenceClassification``...)."""
    return tuple(suffix for task in REGISTRY.values() for suffix in task.head_suffixes)


def check_label_count(
    num_labels, config, model_name_or_path: str | None = None, head_suffixes: tuple[str, ...] | None = None
) -> None:
    """:func:`ftrecipes.data.tasks._common.check_label_count` against every registered task's heads by default."""
    suffixes = registered_head_suffixes() if head_suffixes is None else head_suffixes
    _common.check_label_count(num_labels, config, model_name_or_path, suffixes)


__all__ = [
    "IGNORE_INDEX",
    "PreparedTask",
    "REGISTRY",
    "TASK_ALIASES",
    "Task",
    "check_columns",
    "check_label_count",
    "registered_head_suffixes",
    "get_task",
    "label_config_kwargs",
    "normalize_task",
    "prepare_task",
    "task_names",
]
