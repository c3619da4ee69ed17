"""The main job's command-line options, built without importing transformers.

``import transformers.training_args`` imports torch and most of transformers; a mistyped recipe or flag
should be answered before that. This module gives the parse phase an ``argparse`` parser equal to the
real one in everything bad input depends on (option names, how many values each takes, plain types):

* :func:`add_dataclass_options` adds a dataclass's fields to a parser by the rules
  ``transformers.HfArgumentParser`` documents and applies: ``--name`` and ``--name-with-dashes``, the
  ``aliases`` metadata, ``Optional[X]`` read as ``X``, a ``bool`` taking an optional truth value (and a
  ``--no_name`` complement when it defaults to true), ``list[X]`` taking one or more values, ``Literal``
  and ``Enum`` as choices, and every other metadata key passed to ``add_argument``.
* :func:`training_argument_fields` reads the fields of ``TrainingArguments`` from the installed
  transformers' own source file with :mod:`ast` (parsed, never run), so the names, defaults and
  annotations are those of the version installed, whatever it is.

A type that lives elsewhere in transformers (its strategy enums, ``ParallelismConfig``) and a metadata
value that is not a literal (``choices`` computed at import time) are read as plain strings: those
values are checked by the real ``HfArgumentParser``, which the parse phase builds afterwards, before
anything loads. The reader is strict about everything else: a class body it does not recognise (a
field declared conditionally, a base class, a bool whose default is not a literal) makes
:func:`training_argument_fields` return ``None``, and the parse phase leaves every TrainingArguments
flag to the real parser. ``tests/job/test_job_options.py`` checks the result against the real parser.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import functools
import importlib.util
import types
import typing
from dataclasses import MISSING
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Union

_NONE_TYPE = type(None)
# Metadata keys whose value may be dropped when it is not a literal: the help text, and choices (the
# real parser checks them later). Any other key changes how the command line is split into values.
_DROPPABLE_METADATA = ("help", "choices")


@dataclasses.dataclass(frozen=True)
class OptionField:
    """One dataclass field as :func:`add_dataclass_options` needs it (the attributes of
    ``dataclasses.Field`` it reads, with the annotation already resolved to a type)."""

    name: str
    type: Any
    default: Any = MISSING
    default_factory: Any = MISSING
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def fields_of(cls: type) -> list[OptionField]:
    """The ``init`` fields of dataclass ``cls`` with their annotations resolved (``typing.get_type_hints``),
    as ``HfArgumentParser`` reads them."""
    hints = typing.get_type_hints(cls)
    return [
        OptionField(f.name, hints[f.name], f.default, f.default_factory, dict(f.metadata))
        for f in dataclasses.fields(cls)
        if f.init
    ]


class TruthValueError(argparse.ArgumentTypeError):
    pass


def truth_value(text: Any) -> bool:
    """A command-line truth value as ``HfArgumentParser`` reads one: yes/true/t/y/1 or no/false/f/n/0, any case."""
    if isinstance(text, bool):
        return text
    lowered = str(text).lower()
    if lowered in ("yes", "true", "t", "y", "1"):
        return True
    if lowered in ("no", "false", "f", "n", "0"):
        return False
    raise TruthValueError(
        f"Truthy value expected: got {text} but expected one of yes/no, true/false, t/f, y/n, 1/0 (case insensitive)."
    )


def _choice_reader(choices: Iterable[Any]) -> Callable[[str], Any]:
    """A value given as text mapped back to the choice it spells (``"1"`` to ``1``), else left as text
    for argparse's own ``invalid choice`` message."""
    by_text = {str(choice): choice for choice in choices}
    return lambda text: by_text.get(text, text)


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is Union or isinstance(tp, types.UnionType)


def _is_optional_bool(tp: Any) -> bool:
    return tp is bool or (_is_union(tp) and set(typing.get_args(tp)) == {bool, _NONE_TYPE})


def add_dataclass_options(parser: argparse.ArgumentParser, fields: Iterable[OptionField]) -> None:
    """Add one option per field to ``parser``, by ``HfArgumentParser``'s rules (see the module docstring).

    Raises ``TypeError`` for an annotation those rules reject (a ``Union`` of two types neither of which
    is ``str`` or ``None``), as ``HfArgumentParser`` does.
    """
    for f in fields:
        names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
        kwargs = dict(f.metadata)
        aliases = kwargs.pop("aliases", [])
        names += [aliases] if isinstance(aliases, str) else list(aliases)
        tp = f.type
        if _is_union(tp):
            args = typing.get_args(tp)
            if str not in args and (len(args) != 2 or _NONE_TYPE not in args):
                raise TypeError(f"field {f.name!r}: only Optional[X] or a Union with str can be a command-line option")
            if _NONE_TYPE not in args:  # Union[X, str]: X
                tp = args[0] if args[1] is str else args[1]
            elif bool not in args:  # Optional[X]: X (the second member unless it is None)
                tp = args[0] if args[1] is _NONE_TYPE else args[1]
        origin = typing.get_origin(tp) or tp
        complement = None
        if origin is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
            kwargs["choices"] = list(typing.get_args(tp)) if origin is Literal else [member.value for member in tp]
            kwargs["type"] = _choice_reader(kwargs["choices"])
            _set_default(kwargs, f)
        elif _is_optional_bool(tp):
            complement = dict(kwargs)
            kwargs["type"] = truth_value
            if tp is bool or (f.default is not None and f.default is not MISSING):
                kwargs["default"] = False if f.default is MISSING else f.default
                kwargs["nargs"] = "?"  # `--flag` alone means true
                kwargs["const"] = True
        elif isinstance(origin, type) and issubclass(origin, list):
            kwargs["type"] = typing.get_args(tp)[0] if typing.get_args(tp) else str
            kwargs["nargs"] = "+"
            if f.default_factory is not MISSING:
                kwargs["default"] = f.default_factory()
            elif f.default is MISSING:
                kwargs["required"] = True
        else:
            kwargs["type"] = tp
            _set_default(kwargs, f)
        parser.add_argument(*names, **kwargs)
        if complement is not None and f.default is True:
            parser.add_argument(
                f"--no_{f.name}",
                f"--no-{f.name.replace('_', '-')}",
                action="store_false",
                dest=f.name,
                **{**complement, "default": False},
            )


def _set_default(kwargs: dict, f: OptionField) -> None:
    if f.default is not MISSING:
        kwargs["default"] = f.default
    elif f.default_factory is not MISSING:
        kwargs["default"] = f.default_factory()
    else:
        kwargs["required"] = True


# ------------------------------------------------------------------------------------------------
# TrainingArguments, read from the installed source


class _NotAValue:
    """The default of a field whose default expression is not a literal (``default=default_optim``)."""

    def __repr__(self) -> str:
        return "<computed at import>"


NOT_A_LITERAL = _NotAValue()


class _Unreadable(Exception):
    """The class body holds something these rules cannot read safely."""


def transformers_source(module: str = "training_args") -> Optional[Path]:
    """The ``.py`` file of ``transformers.<module>`` in the installed transformers, found without
    importing transformers (``importlib.util.find_spec`` of a top-level package runs none of its code);
    ``None`` when transformers is not installed as source files."""
    try:
        spec = importlib.util.find_spec("transformers")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / f"{module.replace('.', '/')}.py"
        if path.is_file():
            return path
    return None


def _annotation_names() -> dict[str, Any]:
    return {
        "int": int,
        "float": float,
        "bool": bool,
        "str": str,
        "bytes": bytes,
        "list": list,
        "dict": dict,
        "tuple": tuple,
        "set": set,
        "Optional": Optional,
        "Union": Union,
        "Literal": Literal,
        "Any": Any,
        "typing": typing,
    }


class _Names(dict):
    """Names an annotation may use: builtins and typing by their own meaning; any other name (a
    transformers enum or class) reads as ``str``, the type its values have on the command line."""

    def __missing__(self, key: str) -> Any:
        return str


def _resolve(annotation: ast.expr) -> Any:
    try:
        code = compile(ast.Expression(annotation), "<annotation>", "eval")
        return eval(code, {"__builtins__": {}}, _Names(_annotation_names()))  # noqa: S307 (names: _Names only)
    except Exception as err:  # an annotation these names cannot spell
        raise _Unreadable(ast.unparse(annotation)) from err


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NOT_A_LITERAL


def _is_dataclass_field_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "field") or (
        isinstance(func, ast.Attribute) and func.attr == "field"
    )


def _read_field(statement: ast.AnnAssign) -> Optional[OptionField]:
    """The field ``statement`` declares, or ``None`` for a ``ClassVar`` or an ``init=False`` field."""
    if not isinstance(statement.target, ast.Name):
        raise _Unreadable(ast.unparse(statement))
    name = statement.target.id
    if "ClassVar" in ast.unparse(statement.annotation):
        return None
    tp = _resolve(statement.annotation)
    default, default_factory, metadata = MISSING, MISSING, {}
    value = statement.value
    if value is not None and _is_dataclass_field_call(value):
        if value.args:
            raise _Unreadable(name)
        for keyword in value.keywords:
            if keyword.arg == "default":
                default = _literal(keyword.value)
            elif keyword.arg == "default_factory":
                default_factory = _Factory(keyword.value)
            elif keyword.arg == "init":
                if _literal(keyword.value) is False:
                    return None
            elif keyword.arg == "metadata":
                metadata = _read_metadata(name, keyword.value)
            elif keyword.arg in ("repr", "compare", "hash", "kw_only"):
                continue
            else:
                raise _Unreadable(f"{name}: field({keyword.arg}=...)")
    elif value is not None:
        default = _literal(value)
    if _is_optional_bool(tp) and (default is NOT_A_LITERAL or default_factory is not MISSING):
        raise _Unreadable(f"{name}: a bool whose default is computed")
    return OptionField(name, tp, default, default_factory, metadata)


class _Factory:
    """A ``default_factory`` expression: called for a literal (``list`` / ``dict`` / a lambda returning
    a literal); anything else gives :data:`NOT_A_LITERAL`."""

    def __init__(self, node: ast.expr):
        self.node = node

    def __call__(self) -> Any:
        node = self.node
        if isinstance(node, ast.Name) and node.id in ("list", "dict", "set", "tuple"):
            return {"list": list, "dict": dict, "set": set, "tuple": tuple}[node.id]()
        if isinstance(node, ast.Lambda) and not node.args.args:
            return _literal(node.body)
        return NOT_A_LITERAL


def _read_metadata(name: str, node: ast.expr) -> dict:
    if not isinstance(node, ast.Dict) or any(key is None for key in node.keys):
        raise _Unreadable(f"{name}: metadata")
    metadata = {}
    for key_node, value_node in zip(node.keys, node.values):
        key = _literal(key_node)
        if not isinstance(key, str):
            raise _Unreadable(f"{name}: metadata key")
        value = _literal(value_node)
        if value is NOT_A_LITERAL:
            if key in _DROPPABLE_METADATA:
                continue
            raise _Unreadable(f"{name}: metadata {key}")
        metadata[key] = value
    return metadata


def _class_fields(tree: ast.Module, class_name: str) -> list[OptionField]:
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name]
    if len(classes) != 1:
        raise _Unreadable(f"{len(classes)} classes named {class_name}")
    cls = classes[0]
    decorators = [ast.unparse(d) for d in cls.decorator_list]
    if cls.bases or cls.keywords or decorators not in (["dataclass"], ["dataclasses.dataclass"]):
        raise _Unreadable(f"{class_name}: bases or decorators {decorators}")
    fields = []
    for statement in cls.body:
        if isinstance(statement, ast.AnnAssign):
            read = _read_field(statement)
            if read is not None:
                fields.append(read)
        elif isinstance(statement, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            if any(isinstance(inner, ast.AnnAssign) for inner in ast.walk(statement)):
                raise _Unreadable(f"{class_name}: a field declared under {type(statement).__name__}")
    return fields


@functools.lru_cache(maxsize=None)
def training_argument_fields() -> Optional[tuple[OptionField, ...]]:
    """The command-line fields of the installed ``transformers.TrainingArguments``, read from its source
    without importing it; ``None`` when the source cannot be found or read by these rules."""
    path = transformers_source("training_args")
    if path is None:
        return None
    try:
        return tuple(_class_fields(ast.parse(path.read_text(encoding="utf-8")), "TrainingArguments"))
    except (_Unreadable, OSError, SyntaxError, UnicodeDecodeError, TypeError):
        return None


__all__ = [
    "OptionField",
    "fields_of",
    "add_dataclass_options",
    "truth_value",
    "training_argument_fields",
    "transformers_source",
    "NOT_A_LITERAL",
]
