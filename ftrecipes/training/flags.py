"""Which flags a command line really gave.

``argparse`` fills every option it was not given with its default, so a parsed namespace cannot tell
``--weight_decay 0.0`` from no flag at all. Both ``scripts/finetune.py`` and :func:`ftrecipes.apply_recipe`
need that difference (a flag the user gave beats the recipe; a default does not), so it is answered in
this one place: parse once more with every default replaced by ``argparse.SUPPRESS``, and the namespace
then holds exactly the options that appeared on the command line.
"""

from __future__ import annotations

import argparse
from typing import Sequence


def given_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[dict, list[str]]:
    """``({dest: value}, unknown)`` for the options present in ``argv``, parsed by ``parser``.

    The parser is left as it was (its defaults are restored). ``unknown`` holds what ``parser`` does not
    know (``parse_known_args``): another parser's flags, a program name, a config-file argument.
    """
    saved = [(action, action.default) for action in parser._actions if action.dest != "help"]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        namespace, unknown = parser.parse_known_args(list(argv))
    finally:
        for action, default in saved:
            action.default = default
    return vars(namespace), unknown


def given_training_arguments(argv: Sequence[str], args_class: type | None = None) -> dict:
    """The fields of ``args_class`` (default ``TrainingArguments``; a subclass such as TRL's ``SFTConfig``) given
    in ``argv`` (a script's full command line; the program name and the script's own flags are ignored),
    parsed as ``HfArgumentParser`` parses them — prefix abbreviations included (``--per_device_train 8``):
    a script's parser accepted the line, so a prefix it resolved is unique among these options too."""
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser(args_class or TrainingArguments)
    parser.error = _no_exit  # type: ignore[method-assign] # a value the script already accepted must not exit here
    try:
        given, _ = given_flags(parser, argv)
    except _Unparsable:
        given = _given_by_name(parser, argv)
    return given


class _Unparsable(Exception):
    pass


def _no_exit(message: str):
    raise _Unparsable(message)


def _given_by_name(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict:
    """Fallback when argparse cannot parse ``argv`` with the TrainingArguments parser alone (e.g. a
    script's own option takes a value that looks like a flag): the option names that appear, no values."""
    by_option = {option: action.dest for action in parser._actions for option in action.option_strings}
    given = {}
    for token in argv:
        name = token.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        matches = {dest for option, dest in by_option.items() if option == name} or {
            dest for option, dest in by_option.items() if option.startswith(name)
        }
        if len(matches) == 1:
            given[matches.pop()] = None
    return given
