"""A recipe adopted in a Hugging Face-style script (scripts/examples/hf_style_example.py: HfArgumentParser,
TrainingArguments, do_train/do_eval, get_last_checkpoint) in three lines, for cls, cnn-step and pretrain.

What must hold: the LR at every step is the recipe's; every owned value is the recipe's unless given on
the command line, and says so in the log; the script's other flags (--seed, --save_steps,
--gradient_accumulation_steps, --resume_from_checkpoint, --do_eval only) behave as without the recipe;
training_args.bin, the model card and the run folder state the schedule that ran.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, on_tiny

from ftrecipes import ConfigError, Timeline, get_recipe
from ftrecipes.training.arguments import OWNED, apply_recipe, recipe_record
from ftrecipes.training.hf_schedule import stock_trainer_name
from ftrecipes.training.stock import expected_lr, log_history_lrs, recipe_optimizers
from ftrecipes.training.trainer import RecipeTrainer

SCRIPT = REPO / "scripts" / "examples" / "hf_style_example.py"
N_TRAIN_CLS, N_TRAIN_DIGITS = 96, 64


def _load_script():
    spec = importlib.util.spec_from_file_location("hf_style_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def tiny_clm(tmp_path_factory) -> str:
    from ftrecipes.testing import save_tiny_pretrained

    return save_tiny_pretrained(tmp_path_factory.mktemp("tiny-clm"), "clm")


def data_flags(name, tiny_base, tiny_clm, cls_files) -> list[str]:
    """Model and data flags of each scenario (the recipe's own batch sizes stay: the runs are tiny)."""
    files = ["--train_file", cls_files["train"], "--validation_file", cls_files["validation"]]
    if name == "cls":
        return ["--task", "cls", "--model_name_or_path", tiny_base, *files, "--max_seq_length", "32"]
    if name == "cnn-step":
        return [
            "--task",
            "image",
            "--model_name_or_path",
            "small-cnn",
            "--dataset_name",
            "digits",
            "--max_train_samples",
            str(N_TRAIN_DIGITS),
            "--max_eval_samples",
            "32",
        ]
    return ["--task", "clm", "--model_name_or_path", tiny_clm, *files, "--max_seq_length", "16"]


COMMON = [
    "--report_to",
    "none",
    "--logging_steps",
    "1",
    "--disable_tqdm",
    "true",
    "--dataloader_num_workers",
    "0",
    "--dataloader_pin_memory",
    "false",
]


def owned(name) -> list[str]:
    """The owned TrainingArguments fields of a recipe (SGD recipes have no Adam betas to own)."""
    return [f for f in OWNED if not (f.startswith("adam_") and get_recipe(name).optimizer != "adamw")]


STEPS = {"cls": 6, "cnn-step": 10, "pretrain": 6}


def length_flags(name) -> list[str]:
    # cls trains 1 epoch of its 96 rows (6 steps at the recipe's batch 16): durations in epochs; the
    # others run max_steps (the recipe's 100 epochs / 100,000 steps would be the real thing).
    return ["--num_train_epochs", "1"] if name == "cls" else ["--max_steps", str(STEPS[name])]


def plan_for(name, recipe=None, *, batch=None, accumulation=1):
    recipe = on_tiny(recipe or get_recipe(name))  # the width rule (cls) for the tiny model's hidden 32
    batch = batch or recipe.per_device_train_batch_size
    if name == "cls":
        return recipe.plan(Timeline(N_TRAIN_CLS, batch, 1, accumulation, num_train_epochs=1))
    return recipe.plan(Timeline(N_TRAIN_DIGITS, batch, 1, accumulation, max_steps=STEPS[name]))


def state(out) -> dict:
    return json.loads((Path(out) / "trainer_state.json").read_text())


def saved_args(out):
    return torch.load(Path(out) / "training_args.bin", weights_only=False)


def assert_trace(out, peak, schedule):
    lrs = log_history_lrs(state(out)["log_history"])
    assert sorted(lrs) == list(range(1, schedule.total_steps + 1))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(peak, schedule, step), rel=1e-9, abs=1e-15), step


# ------------------------------------------------------------------------------------------------
# The recipe's values, with only the run length on the command line


@pytest.fixture(scope="module")
def recipe_runs(script, tiny_base, tiny_clm, cls_files, tmp_path_factory):
    """Each recipe trained once with --do_train --do_eval (checkpoints every 3 steps), its log kept."""
    runs = {}
    handler = _ListHandler()
    logging.getLogger("ftrecipes").addHandler(handler)
    logging.getLogger("ftrecipes").setLevel(logging.INFO)
    try:
        for name in ("cls", "cnn-step", "pretrain"):
            out = tmp_path_factory.mktemp(name)
            handler.records.clear()
            argv = [
                "--recipe",
                name,
                *data_flags(name, tiny_base, tiny_clm, cls_files),
                "--do_train",
                "--do_eval",
                *length_flags(name),
                "--save_steps",
                "3",
                "--output_dir",
                str(out),
                *COMMON,
            ]
            assert script.main(argv) == 0
            runs[name] = (out, [r.getMessage() for r in handler.records])
    finally:
        logging.getLogger("ftrecipes").removeHandler(handler)
        logging.getLogger("ftrecipes").setLevel(logging.NOTSET)
    return runs


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.parametrize("name", ["cls", "cnn-step", "pretrain"])
def test_lr_trace_and_owned_values_are_the_recipes(recipe_runs, name):
    out, _ = recipe_runs[name]
    recipe, plan = get_recipe(name), plan_for(name)
    assert_trace(out, plan.learning_rate, plan.schedule)
    args = saved_args(out)
    for field in (
        "weight_decay",
        "max_grad_norm",
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
    ):
        assert getattr(args, field) == getattr(recipe, field), field
    assert args.learning_rate == pytest.approx(plan.learning_rate)
    if recipe.optimizer == "adamw":
        assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon) == (
            recipe.adam_beta1,
            recipe.adam_beta2,
            recipe.adam_epsilon,
        )
        assert args.optim.startswith("adamw_torch")
    else:
        assert args.optim == "sgd" and args.optim_args == f"momentum={recipe.momentum},nesterov={recipe.nesterov}"
    sources = json.loads((out / "plan.json").read_text())["sources"]
    for field in owned(name):
        given = field in ("num_train_epochs", "max_steps") and f"--{field}" in length_flags(name)
        assert sources[field]["source"] == (
            "flag" if given else "scaled" if field == "learning_rate" and name == "pretrain" else "recipe"
        ), field


def test_the_recipes_numbers_are_what_the_issue_found_missing(recipe_runs):
    """cnn-step trains SGD at 0.1 with weight decay 5e-4, pretrain at 6e-4 x sqrt(32/256) with beta2 0.95."""
    cnn, pretrain, cls = (saved_args(recipe_runs[n][0]) for n in ("cnn-step", "pretrain", "cls"))
    assert (cnn.learning_rate, cnn.weight_decay, cnn.max_grad_norm) == (0.1, 5e-4, 0.0)
    assert pretrain.learning_rate == pytest.approx(6e-4 * (32 / 256) ** 0.5) and pretrain.adam_beta2 == 0.95
    assert cls.weight_decay == 0.01


@pytest.mark.parametrize("name", ["cls", "cnn-step", "pretrain"])
def test_one_log_line_per_owned_value_says_where_it_came_from(recipe_runs, name):
    _, lines = recipe_runs[name]
    for field in (*owned(name), "lr_scheduler_type", "warmup"):
        mine = [line for line in lines if line.startswith(f"recipe {name!r}: {field} = ")]
        assert len(mine) == 1, (field, mine)
        assert "(recipe" in mine[0] or "(flag" in mine[0]
    if name == "cnn-step":
        assert any(line.startswith("recipe 'cnn-step': momentum = 0.9") for line in lines)
    if name == "pretrain":
        assert any("learning_rate" in line and "batch-scaled" in line and "sqrt rule" in line for line in lines)


@pytest.mark.parametrize("name", ["cls", "cnn-step", "pretrain"])
def test_saved_args_model_card_and_run_folder_state_the_real_schedule(recipe_runs, name):
    out, _ = recipe_runs[name]
    recipe, plan = get_recipe(name), plan_for(name)
    args = saved_args(out)
    # No ftrecipes class inside; a name a stock Trainer refuses (these shapes have no transformers spelling),
    # and no private keys in the kwargs.
    assert type(args.lr_scheduler_type) is str and args.lr_scheduler_type == stock_trainer_name(
        recipe.lr_scheduler_type
    )
    assert args.warmup_steps == plan.schedule.warmup_steps
    assert args.lr_scheduler_kwargs == dict(recipe.lr_scheduler_kwargs)
    card = (out / "README.md").read_text()
    assert f"- lr_scheduler_type: {recipe.lr_scheduler_type} (ftrecipes recipe '{name}'" in card
    assert f"- learning_rate: {plan.learning_rate:g}" in card or f"- learning_rate: {plan.learning_rate}" in card
    if plan.schedule.warmup_steps:
        assert f"- lr_scheduler_warmup_steps: {plan.schedule.warmup_steps}" in card
    for drop in (t for t in plan.schedule.transitions if t.kind == "step_drop"):
        assert drop.label in card  # cnn-step: "LR x0.1 (step 3)" ...
    recorded = json.loads((out / "plan.json").read_text())
    assert recorded["total_steps"] == plan.total_steps and recorded["warmup_steps"] == plan.schedule.warmup_steps
    resolved = get_recipe(str(out / "recipe.yaml"))
    assert resolved.lr_scheduler_type == recipe.lr_scheduler_type and resolved.learning_rate == pytest.approx(
        plan.learning_rate
    )
    assert (out / "checkpoint-3" / "plan.json").is_file() and (out / "checkpoint-3" / "recipe.yaml").is_file()


# ------------------------------------------------------------------------------------------------
# Flags win; the script's other flags behave as without the recipe


FLAGS = {
    "cls": [
        "--learning_rate",
        "1e-4",
        "--weight_decay",
        "0.0",
        "--lr_scheduler_type",
        "constant",
        "--warmup_steps",
        "2",
    ],
    "cnn-step": ["--learning_rate", "0.05", "--max_grad_norm", "1.0", "--lr_scheduler_type", "linear"],
    "pretrain": [
        "--adam_beta2",
        "0.98",
        "--per_device_train_batch_size",
        "8",
        "--lr_scheduler_type",
        "cosine_with_restarts",
    ],
}
OTHER = ["--seed", "7", "--save_steps", "2", "--gradient_accumulation_steps", "2", "--do_train"]


@pytest.mark.parametrize("name", ["cls", "cnn-step", "pretrain"])
def test_flags_win_and_other_flags_behave_as_without_the_recipe(
    script, name, tiny_base, tiny_clm, cls_files, tmp_path, caplog, monkeypatch
):
    base = [*data_flags(name, tiny_base, tiny_clm, cls_files), *COMMON, *OTHER]
    with_recipe, without = tmp_path / "recipe", tmp_path / "plain"
    argv = ["--recipe", name, *base, *length_flags(name), *FLAGS[name], "--output_dir", str(with_recipe)]
    with caplog.at_level(logging.INFO, logger="ftrecipes"):
        if name == "cls":  # as run from a shell: both the script and apply_recipe read sys.argv
            monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
            assert script.main() == 0
        else:
            assert script.main(argv) == 0
    log = caplog.text
    # The plain Trainer run gets the values the recipe run ended with, so both run the same steps.
    args = saved_args(with_recipe)
    plain_sizes = [
        "--per_device_train_batch_size",
        str(args.per_device_train_batch_size),
        "--max_steps",
        str(args.max_steps),
        "--num_train_epochs",
        str(args.num_train_epochs),
    ]
    assert script.main([*base, *plain_sizes, "--output_dir", str(without)]) == 0
    plain = saved_args(without)

    for field in (
        "seed",
        "save_steps",
        "gradient_accumulation_steps",
        "do_train",
        "do_eval",
        "output_dir",
        "logging_steps",
        "save_strategy",
    ):
        if field != "output_dir":
            assert getattr(args, field) == getattr(plain, field), field
    assert sorted(p.name for p in with_recipe.glob("checkpoint-*")) == sorted(
        p.name for p in without.glob("checkpoint-*")
    )
    assert state(with_recipe)["global_step"] == state(without)["global_step"]
    assert args.gradient_accumulation_steps == 2

    recipe = get_recipe(name)
    if name == "cls":
        assert args.learning_rate == 1e-4 and args.weight_decay == 0.0  # as given, no scaling
        ran = recipe.replace(lr_scheduler_type="constant", lr_scheduler_kwargs={}, warmup=2)
        plan = plan_for(name, ran, accumulation=2)
        assert_trace(with_recipe, 1e-4, plan.schedule)
        assert "- lr_scheduler_type: constant (ftrecipes recipe 'cls'" in (with_recipe / "README.md").read_text()
        assert "weight_decay = 0.0 (flag --weight_decay)" in log
    elif name == "cnn-step":
        assert (args.learning_rate, args.max_grad_norm, args.weight_decay) == (0.05, 1.0, 5e-4)
        ran = recipe.replace(lr_scheduler_type="linear", lr_scheduler_kwargs={})
        assert_trace(with_recipe, 0.05, plan_for(name, ran, accumulation=2).schedule)
        assert "lr_scheduler_type = 'linear' (flag --lr_scheduler_type" in log
    else:
        # batch 8 x accumulation 2 = 16 against the reference 256: the recipe's peak, sqrt-scaled.
        assert args.adam_beta2 == 0.98 and args.learning_rate == pytest.approx(6e-4 * (16 / 256) ** 0.5)
        # Every transformers SchedulerType is a recipe type with Hugging Face's meaning: the flag overrides.
        assert args.lr_scheduler_type == "cosine_with_restarts"
        assert "lr_scheduler_type = 'cosine_with_restarts' (flag --lr_scheduler_type" in log
        ran = recipe.replace(lr_scheduler_type="cosine_with_restarts", lr_scheduler_kwargs={})
        assert_trace(with_recipe, args.learning_rate, plan_for(name, ran, batch=8, accumulation=2).schedule)


def test_resume_from_checkpoint_flag_and_detection_are_exact(script, recipe_runs, tiny_base, cls_files, tmp_path):
    """--resume_from_checkpoint, and a checkpoint found in output_dir (get_last_checkpoint), both continue
    the recipe's schedule exactly where the uninterrupted run was."""
    full, _ = recipe_runs["cls"]
    base = [
        "--recipe",
        "cls",
        *data_flags("cls", tiny_base, None, cls_files),
        "--do_train",
        *length_flags("cls"),
        "--save_steps",
        "3",
        *COMMON,
    ]
    flagged = tmp_path / "flag"
    assert (
        script.main([*base, "--output_dir", str(flagged), "--resume_from_checkpoint", str(full / "checkpoint-3")]) == 0
    )
    detected = tmp_path / "detected"
    shutil.copytree(full / "checkpoint-3", detected / "checkpoint-3")
    assert script.main([*base, "--output_dir", str(detected)]) == 0
    uninterrupted = log_history_lrs(state(full)["log_history"])
    for out in (flagged, detected):
        lrs = log_history_lrs(state(out)["log_history"])
        assert sorted(lrs) == list(range(1, 7))  # steps 1-3 restored from the checkpoint's history
        assert all(lrs[s] == uninterrupted[s] for s in range(4, 7))
        assert state(out)["global_step"] == 6


def test_eval_only_needs_no_training_set_and_matches_the_plain_script(script, tiny_base, cls_files, tmp_path):
    base = [*data_flags("cls", tiny_base, None, cls_files), "--do_eval", *COMMON]
    assert script.main(["--recipe", "cls", *base, "--output_dir", str(tmp_path / "recipe")]) == 0
    assert script.main([*base, "--output_dir", str(tmp_path / "plain")]) == 0
    with_recipe, plain = (json.loads((tmp_path / d / "eval_results.json").read_text()) for d in ("recipe", "plain"))
    assert with_recipe["eval_accuracy"] == plain["eval_accuracy"]
    assert with_recipe["eval_loss"] == pytest.approx(plain["eval_loss"], rel=1e-5)
    assert not list((tmp_path / "recipe").glob("checkpoint-*"))


# ------------------------------------------------------------------------------------------------
# apply_recipe, RecipeTrainer and recipe_optimizers without a script


def _args(tmp_path, **kwargs):
    from transformers import TrainingArguments

    return TrainingArguments(str(tmp_path), report_to="none", **kwargs)


def test_precedence_user_then_recipe_then_defaults(tmp_path):
    recipe = get_recipe("pretrain")
    raw = _args(tmp_path, weight_decay=0.0, num_train_epochs=2)
    args = apply_recipe(
        recipe, raw, ["prog.py", "--weight_decay", "0.0", "--num_train_epochs", "2", "--model_name_or_path", "x"]
    )
    assert args is not raw and raw.adam_beta2 == 0.999  # the script's object is left as it was
    sources = recipe_record(args)["sources"]
    assert args.weight_decay == 0.0 and sources["weight_decay"]["source"] == "flag"
    assert args.adam_beta2 == 0.95 and sources["adam_beta2"]["source"] == "recipe"
    # --num_train_epochs given: the recipe's max_steps 100000 would override it, so it is dropped.
    assert args.num_train_epochs == 2 and args.max_steps == -1 and "dropped" in sources["max_steps"]["detail"]
    # A value set in code (not on the command line) that differs from TrainingArguments' default is the user's.
    coded = apply_recipe(recipe, _args(tmp_path, adam_beta2=0.9), [])
    assert coded.adam_beta2 == 0.9 and recipe_record(coded)["sources"]["adam_beta2"]["source"] == "script"
    assert apply_recipe(recipe, args, []) is args  # applying twice changes nothing


def test_schedule_flags_become_recipe_overrides_or_one_warning(tmp_path, caplog):
    recipe = get_recipe("cnn-step")
    args = apply_recipe(
        recipe,
        _args(tmp_path, warmup_steps=0.1, lr_scheduler_kwargs={"gamma": 0.5}),
        ["--warmup_steps", "0.1", "--lr_scheduler_kwargs", '{"gamma": 0.5}'],
    )
    assert recipe_record(args)["recipe_overrides"] == {"warmup": 0.1, "lr_scheduler_kwargs": {"gamma": 0.5}}
    with pytest.raises(ConfigError, match="lr_scheduler_kwargs.gama"):
        apply_recipe(recipe, _args(tmp_path, lr_scheduler_kwargs={"gama": 0.5}), [])
    with caplog.at_level(logging.WARNING, logger="ftrecipes"):
        apply_recipe(recipe, _args(tmp_path, optim="adafactor"), [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "recipe field `optimizer`" in warnings[0]


def test_recipe_trainer_alone_trains_with_the_recipes_values(tmp_path):
    """RecipeTrainer(recipe=..., args=raw script args) merges the recipe itself: no TrainingArguments
    default (5e-5, weight decay 0) takes the recipe's place."""
    from ftrecipes.testing import tiny_model

    trainer = RecipeTrainer(recipe=get_recipe("cnn-step"), model=tiny_model("cls"), args=_args(tmp_path), argv=[])
    assert (trainer.args.learning_rate, trainer.args.weight_decay, trainer.args.per_device_train_batch_size) == (
        0.1,
        5e-4,
        128,
    )
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.9
    assert trainer.train_dataset is None  # nothing above needed a training set


def test_recipe_optimizers_without_a_training_set_refuses_to_step(tmp_path):
    from ftrecipes.testing import tiny_model

    model = tiny_model("cls")
    args = apply_recipe(get_recipe("cls"), _args(tmp_path), [])
    optimizer, scheduler = recipe_optimizers(get_recipe("cls"), model, args)  # eval-only scripts pass no train set
    model(input_ids=torch.tensor([[5, 6]]), labels=torch.tensor([1])).loss.backward()
    with pytest.raises(ConfigError, match="train_dataset"):
        optimizer.step()
    sized_optimizer, sized = recipe_optimizers(
        get_recipe("cls"), model, apply_recipe(get_recipe("cls"), _args(tmp_path, max_steps=20), [])
    )
    assert sized.built_schedule.total_steps == 20 and sized.built_schedule.warmup_steps == 1


def test_schedule_name_pickles_as_plain_str(tmp_path):
    args = apply_recipe(get_recipe("cnn-step"), _args(tmp_path), [])
    assert args.lr_scheduler_type.value.startswith("step (ftrecipes recipe 'cnn-step'")
    loaded = pickle.loads(pickle.dumps(args.lr_scheduler_type))
    assert type(loaded) is str and loaded == stock_trainer_name("step")


def test_given_flags_are_read_from_a_full_command_line_and_leave_the_parser_as_it_was():
    from transformers import HfArgumentParser, TrainingArguments

    from ftrecipes.training.flags import given_flags, given_training_arguments

    argv = ["run.py", "--model_name_or_path", "m", "--weight_decay", "0.0", "--do_train", "--max_grad_norm=1.0"]
    assert set(given_training_arguments(argv)) == {"weight_decay", "do_train", "max_grad_norm"}
    parser = HfArgumentParser(TrainingArguments)
    given, unknown = given_flags(parser, ["--seed", "3", "--nope", "1"])
    assert given == {"seed": 3} and unknown == ["--nope", "1"]
    assert parser.parse_args([]).seed == 42  # defaults restored


def test_a_metric_driven_recipe_fills_the_evaluation_it_needs(tmp_path):
    args = apply_recipe(get_recipe("plateau"), _args(tmp_path), [])
    recipe = get_recipe("plateau")
    assert args.eval_strategy == recipe.eval_strategy and args.metric_for_best_model == recipe.metric_for_best_model
    assert recipe_record(args)["sources"]["eval_strategy"]["source"] == "recipe"
    kept = apply_recipe(
        recipe, _args(tmp_path, eval_strategy="steps", eval_steps=5), ["--eval_strategy", "steps", "--eval_steps", "5"]
    )
    assert kept.eval_strategy == "steps" and kept.eval_steps == 5
