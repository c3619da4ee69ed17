"""The main job's early parser (ftrecipes.job.options) against the real one: the options read from the
installed transformers' source are the options ``HfArgumentParser`` builds, value counts and plain types
included, so that the early parse never refuses what the real parser accepts."""

import argparse
import ast
import dataclasses

import pytest
from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import string_to_bool

from ftrecipes.config.errors import ConfigError
from ftrecipes.job import options, parse
from ftrecipes.job.options import add_dataclass_options, fields_of, training_argument_fields, truth_value
from ftrecipes.job.parse import ScriptArguments, build_early_parser, parse_args


def _actions(parser):
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings and a.dest != "help"}


def _kind(tp):
    if tp in (string_to_bool, truth_value):
        return "bool"
    return tp.__name__ if isinstance(tp, type) else "choice"


@pytest.mark.parametrize("dataclass", [TrainingArguments, ScriptArguments], ids=lambda c: c.__name__)
def test_options_equal_hf_argparsers(dataclass):
    fields = training_argument_fields() if dataclass is TrainingArguments else fields_of(dataclass)
    assert fields is not None, "the installed TrainingArguments source could not be read"
    light = argparse.ArgumentParser(add_help=False)
    add_dataclass_options(light, fields)
    real = HfArgumentParser(dataclass, add_help=False)
    ours, theirs = _actions(light), _actions(real)
    assert ours.keys() == theirs.keys()
    lenient = []
    for name, real_action in theirs.items():
        action = ours[name]
        for attr in ("option_strings", "dest", "nargs", "const", "required"):
            assert getattr(action, attr) == getattr(real_action, attr), (name, attr)
        assert type(action) is type(real_action), name
        if _kind(action.type) != _kind(real_action.type):  # a type defined in transformers (an enum, a class):
            assert action.type is str and action.choices is None, (name, real_action.type)  # text, checked later
            lenient.append(name)
        elif action.choices is None and real_action.choices is not None:  # choices computed at import time
            lenient.append(name)
        else:
            assert list(action.choices or []) == list(real_action.choices or []), name
    if dataclass is ScriptArguments:
        assert not lenient
    else:  # what the early parse leaves to the real one
        assert {"--eval_strategy", "--save_strategy", "--optim", "--lr_scheduler_type"} <= set(lenient) and len(
            lenient
        ) < 15


GOOD_COMMAND_LINES = [
    [],
    ["--recipe", "lora-cls", "--learning_rate", "2e-4", "--warmup_ratio", "0.1", "--bf16", "--no_plots"],
    [
        "--output_dir",
        "runs/x",
        "--seed",
        "3",
        "--data_seed",
        "4",
        "--per_device_train_batch_size=8",
        "--report_to",
        "none",
        "--save_steps",
        "10%",
        "--logging_steps",
        "5",
        "--dataloader_num_workers",
        "2",
        "--use_cpu",
        "true",
    ],
    [
        "--label_list",
        "a",
        "b",
        "c",
        "--max_train_samples",
        "40",
        "--plots",
        "false",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "0.25",
    ],
    [
        "--learning-rate",
        "1e-4",
        "--fsdp",
        "--gradient_accumulation_steps",
        "2",
        "--adam_beta2",
        "0.98",
        "--optim",
        "adamw_torch",
    ],
]


@pytest.mark.parametrize("argv", GOOD_COMMAND_LINES)
def test_early_parse_agrees_with_the_real_one_on_good_command_lines(argv):
    early_parser, complete = build_early_parser()
    assert complete
    fields = {f.name for f in training_argument_fields()}
    early = parse._parse_with(early_parser, fields, list(argv), "finetune.py", judge_unknown=True)
    real = parse_args(list(argv))
    assert early.script == real.script and early.recipe == real.recipe
    assert early.learning_rate_auto == real.learning_rate_auto
    assert early.training_overrides == real.training_overrides


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--dataloader_num_workers", "two"], "--dataloader_num_workers: invalid int value: 'two'"),
        (["--bf16", "maybe"], "--bf16: Truthy value expected: got maybe"),
        (["--max_grad_norm", "big"], None),  # a recipe field: the recipe names it
        (["--learnig_rate", "3e-5"], "--learnig_rate: is not a finetune.py flag; did you mean '--learning_rate'"),
        (["--output_dir"], "--output_dir: expected one argument"),
    ],
)
def test_early_and_real_parsers_refuse_alike(argv, line, monkeypatch):
    """The same line whether the early parser or the real one answers (the real one alone: the source
    cannot be read)."""
    answers = []
    for readable in (True, False):
        if not readable:
            monkeypatch.setattr(options, "transformers_source", lambda module="training_args": None)
            training_argument_fields.cache_clear()
        with pytest.raises(ConfigError) as err:
            parse_args(list(argv))
        answers.append(str(err.value))
    training_argument_fields.cache_clear()
    assert answers[0] == answers[1]
    if line is not None:
        assert answers[0].startswith(line), answers[0]


def test_unreadable_source_leaves_every_training_flag_to_the_real_parser(monkeypatch):
    monkeypatch.setattr(options, "transformers_source", lambda module="training_args": None)
    training_argument_fields.cache_clear()
    try:
        assert training_argument_fields() is None
        parser, complete = build_early_parser()
        assert not complete and "--output_dir" not in _actions(parser)
        seen = []
        config = parse_args(["--output_dir", "runs/x", "--seed", "5"], early_checks=seen.append)
        assert seen == [] and config.training_overrides["output_dir"] == "runs/x"  # no early checks on half a parse
    finally:
        training_argument_fields.cache_clear()


SOURCE = """
from dataclasses import dataclass, field
@dataclass
class TrainingArguments:
    a: int = field(default=1, metadata={"help": "x"})
{extra}
"""


@pytest.mark.parametrize(
    "extra, readable",
    [
        ("    b: bool = False", True),
        ("    b: Optional[float] = None\n    c: list[str] = field(default_factory=list)", True),
        ("    if is_torch_available():\n        b: int = 2", False),  # a field declared conditionally
        (
            "    b: bool = field(default=compute_default())",
            False,
        ),  # a flag whose value count depends on a default we cannot read
        (
            "    b: int = field(default=1, metadata={'nargs': NARGS})",
            False,
        ),  # a metadata key that changes the value count
        ("    b: str = field(default='x', metadata={'choices': CHOICES})", True),  # choices: left to the real parser
    ],
)
def test_the_source_reader_is_strict_about_what_it_cannot_read(extra, readable, tmp_path, monkeypatch):
    path = tmp_path / "training_args.py"
    path.write_text(SOURCE.replace("{extra}", extra))
    monkeypatch.setattr(options, "transformers_source", lambda module="training_args": path)
    training_argument_fields.cache_clear()
    try:
        fields = training_argument_fields()
        assert (fields is not None) == readable
        if readable:
            assert fields[0] == options.OptionField("a", int, 1, dataclasses.MISSING, {"help": "x"})
            add_dataclass_options(argparse.ArgumentParser(), fields)
    finally:
        training_argument_fields.cache_clear()
    ast.parse(path.read_text())


def test_help_is_the_real_parsers(capsys):
    """``--help`` skips the early parse (it would list only part of the flags, and answer bad input first)."""
    with pytest.raises(SystemExit) as exited:
        parse_args(["--recipe", "clss", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "--recipe" in text and "--report_to" in text and "--lr_scheduler_type" in text
