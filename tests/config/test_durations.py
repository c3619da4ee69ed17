"""The one duration parser: steps, fractions, percentages and epochs, and Trainer intervals."""

import pytest

from ftrecipes import ConfigError, Recipe, Timeline
from ftrecipes.config.durations import (
    EPOCHS,
    FRACTION,
    STEPS,
    normalize_duration,
    parse_duration,
    resolve_duration,
    training_interval,
)


@pytest.mark.parametrize(
    "value,unit,amount",
    [
        (500, STEPS, 500),
        (0, STEPS, 0),
        ("500", STEPS, 500),
        ("500steps", STEPS, 500),
        (" 12 step ", STEPS, 12),
        (0.05, FRACTION, 0.05),
        (0.0, FRACTION, 0.0),
        ("0.05", FRACTION, 0.05),
        (".5", FRACTION, 0.5),
        ("1e-2", FRACTION, 0.01),
        ("5%", FRACTION, 0.05),
        ("2.5 %", FRACTION, 0.025),
        ("100%", FRACTION, 1.0),
        ("2ep", EPOCHS, 2.0),
        ("0.5ep", EPOCHS, 0.5),
        ("1epoch", EPOCHS, 1.0),
        ("3 epochs", EPOCHS, 3.0),
    ],
)
def test_units(value, unit, amount):
    parsed = parse_duration(value, "warmup")
    assert parsed.unit == unit and parsed.value == pytest.approx(amount)


def test_resolution_in_optimizer_steps():
    assert resolve_duration(0.015, total_steps=1000) == 15  # ceil, like TrainingArguments.get_warmup_steps
    assert resolve_duration(0.0151, total_steps=1000) == 16
    assert resolve_duration("0.5ep", total_steps=1000, steps_per_epoch=33) == 17
    assert resolve_duration("100%", total_steps=40) == 40
    with pytest.raises(ConfigError, match=r"^period='1ep': epochs need the data set's size"):
        resolve_duration("1ep", total_steps=100, field="period")


@pytest.mark.parametrize("value", [1.0, 2.5, 500.0, "1.0", "2.5"])
def test_float_of_one_or_more_is_ambiguous_and_refused_in_one_line(value):
    with pytest.raises(ConfigError) as info:
        parse_duration(value, "warmup")
    message = str(info.value)
    assert message.startswith(f"warmup={value!r}: a float is read as a fraction of training")
    assert "without the decimal point" in message or "an integer" in message
    assert "'5%'" in message and "\n" not in message


@pytest.mark.parametrize(
    "value", [-1, -0.1, "-3", float("nan"), float("inf"), "five", "5 %%", "150%", True, None, [1], "ep"]
)
def test_malformed(value):
    with pytest.raises(ConfigError, match=r"^warmup[=:]"):
        parse_duration(value, "warmup")


def test_normalize_keeps_unit_strings_and_turns_numbers_into_numbers():
    assert normalize_duration("500") == 500 and isinstance(normalize_duration("500"), int)
    assert normalize_duration("0.05") == 0.05
    assert normalize_duration("5%") == "5%" and normalize_duration(" 2ep ") == "2ep"
    assert normalize_duration(30) == 30 and normalize_duration(0.3) == 0.3


@pytest.mark.parametrize("value,expected", [(100, 100), ("100", 100), (0.1, 0.1), ("10%", 0.1), ("0.25", 0.25)])
def test_training_interval_is_what_trainingarguments_takes(value, expected):
    got = training_interval(value, "eval_steps")
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    "value,pattern",
    [
        ("1ep", r"^eval_steps='1ep': a Trainer interval cannot be given in epochs; use --eval_strategy epoch"),
        (0, r"^eval_steps=0: must be positive"),
        ("0%", r"^eval_steps='0%': must be positive"),
        (1.5, r"^eval_steps=1.5: a float is read as a fraction"),
    ],
)
def test_training_interval_refusals(value, pattern):
    with pytest.raises(ConfigError, match=pattern):
        training_interval(value, "eval_steps")
    with pytest.raises(ConfigError, match=pattern.replace("eval", "save").replace("^save_steps", "^--save_steps")):
        training_interval(value, "--save_steps")


def test_recipe_uses_the_parser():
    assert Recipe(warmup="30").warmup == 30 and Recipe(warmup="0.1").warmup == 0.1
    with pytest.raises(ConfigError, match=r"^warmup=1.0: a float"):
        Recipe(warmup=1.0)
    with pytest.raises(ConfigError, match=r"^eval_steps='1ep': a Trainer interval"):
        Recipe(eval_strategy="steps", eval_steps="1ep")
    plan = Recipe(warmup=1, max_steps=50).plan(Timeline(100, 10, max_steps=50))
    assert plan.warmup_steps == 1
    assert Recipe(warmup=0.99, max_steps=100).plan(Timeline(1000, 10, max_steps=100)).warmup_steps == 99


def test_timeline_of_a_dataset_without_length():
    t = Timeline(None, 8, max_steps=120)
    assert t.total_steps == 120 and t.steps_per_epoch is None and t.resolve("5%") == 6
    with pytest.raises(ConfigError, match=r"^warmup='1ep': epochs need"):
        t.resolve("1ep", "warmup")
    with pytest.raises(ConfigError, match=r"^max_steps=-1: a data set without a length needs a step budget"):
        Timeline(None, 8)


def test_timeline_from_training_args_reads_attributes():
    class Args:  # what TrainingArguments exposes, without importing transformers
        per_device_train_batch_size, world_size, gradient_accumulation_steps = 4, 2, 3
        num_train_epochs, max_steps, dataloader_drop_last = 2.0, -1, False

    t = Timeline.from_training_args(Args(), 103)
    assert (
        t == Timeline(103, 4, 2, 3, 2.0, -1, False) and t.total_steps == 10
    )  # 26 batches, 13 per rank, 5 steps per epoch
    inside_trainer = Timeline.from_training_args(Args(), 103, num_training_steps=7)  # Trainer's count wins
    assert (
        inside_trainer.total_steps == 7 and inside_trainer.steps_per_epoch == 5 and inside_trainer.resolve("1ep") == 5
    )
    assert Timeline.from_training_args(Args(), None, num_training_steps=40).resolve("10%") == 4


@pytest.mark.parametrize(
    "argv,head",
    [
        (
            ["--eval_strategy", "steps", "--eval_steps", "1ep"],
            "eval_steps='1ep': a Trainer interval cannot be given in epochs",
        ),
        (["--save_steps", "1ep"], "--save_steps='1ep': a Trainer interval"),
        (["--save_steps", "1.5"], "--save_steps='1.5': a float"),
        (["--logging_steps", "0"], "--logging_steps='0': must be positive"),
        (["--warmup", "1.0"], "warmup='1.0': a float"),
        (["--warmup_steps", "2.5"], "--warmup_steps='2.5': a float"),
        (["--warmup_ratio", "5"], "--warmup_ratio='5': is a ratio of training"),
        (["--warmup_ratio", "1ep"], "--warmup_ratio='1ep': is a ratio of training"),
    ],
)
def test_finetune_duration_flags_fail_in_one_line(argv, head, tmp_path, capsys):
    from ftrecipes.job.run import main

    out = tmp_path / "run"
    assert main(["--output_dir", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"finetune.py: error: {head}") and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_finetune_interval_flags_reach_trainingarguments_resolved(tmp_path):
    from ftrecipes.job.parse import parse_args
    from ftrecipes.training.arguments import recipe_training_args

    config = parse_args(
        [
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "10%",
            "--save_steps",
            "20%",
            "--logging_steps",
            "7",
            "--warmup_ratio",
            "0.1",
        ]
    )
    assert config.recipe.warmup == 0.1 and config.training_overrides["save_steps"] == 0.2
    args = recipe_training_args(config.recipe, str(tmp_path / "run"), **config.training_overrides)
    assert (args.eval_steps, args.save_steps, args.logging_steps) == (0.1, 0.2, 7)
