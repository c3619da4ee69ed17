"""Data of unknown length: a streamed local file trains for max_steps with every duration resolved
against it; epoch durations and a missing max_steps are one line each (ftrecipes.streaming)."""

import pytest

from conftest import WORDS
from ftrecipes import get_recipe
from ftrecipes.errors import ConfigError
from ftrecipes.streaming import check_unknown_length, has_length, plan_unknown_length
from ftrecipes.trainer import RecipeTrainer, expected_lr, log_history_lrs, recipe_training_args


def test_durations_resolve_against_max_steps():
    plan = plan_unknown_length(get_recipe("cls", warmup="10%"), 40, per_device_train_batch_size=4, num_processes=2)
    assert (plan.total_steps, plan.warmup_steps, plan.timeline.global_batch_size) == (40, 4, 8)
    assert plan_unknown_length(get_recipe("cls", warmup=7), 40).warmup_steps == 7
    assert plan_unknown_length(get_recipe("cls", warmup=0.25), 40).warmup_steps == 10


def test_epochs_and_a_missing_max_steps_are_one_line_each():
    with pytest.raises(ConfigError, match=r"^--max_steps=-1: data of unknown length .* has no epochs to count; set --max_steps"):
        plan_unknown_length(get_recipe("cls"), -1)
    with pytest.raises(ConfigError, match=r"^warmup='1ep': is in epochs, but data of unknown length .*; give optimizer steps or a fraction of --max_steps=40"):
        plan_unknown_length(get_recipe("cls", warmup="1ep"), 40)
    with pytest.raises(ConfigError, match=r"^lr_scheduler_kwargs.step_size='2ep'"):
        plan_unknown_length(get_recipe("cls", lr_scheduler_type="step", lr_scheduler_kwargs={"step_size": "2ep"}, warmup=0), 40)


def test_a_streamed_local_file_follows_the_plan(cls_files, tmp_path):
    from datasets import load_dataset

    from ftrecipes.testing import tiny_model, tiny_tokenizer

    labels = sorted(WORDS)
    tokenizer = tiny_tokenizer()
    stream = load_dataset("csv", data_files=cls_files["train"], streaming=True)["train"]
    stream = stream.map(lambda row: {**tokenizer(row["text"], truncation=True, max_length=16, padding="max_length"),
                                     "labels": labels.index(row["label"])}, remove_columns=["text", "label"])
    assert not has_length(stream)
    recipe = get_recipe("cls", warmup="50%", eval_strategy="no")
    args = recipe_training_args(recipe, str(tmp_path), max_steps=6, per_device_train_batch_size=8, logging_steps=1,
                                report_to="none", disable_tqdm=True, use_cpu=True, save_strategy="no")
    plan = check_unknown_length(recipe, args, stream)
    assert (plan.total_steps, plan.warmup_steps) == (6, 3)
    trainer = RecipeTrainer(model=tiny_model("cls", num_labels=len(labels)), args=args, recipe=recipe, train_dataset=stream)
    trainer.train()
    lrs = log_history_lrs(trainer.state.log_history)
    assert sorted(lrs) == list(range(1, 7))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(plan.learning_rate, plan.schedule, step), rel=1e-9), step
    args.max_steps = -1
    with pytest.raises(ConfigError, match=r"^--max_steps=-1"):
        check_unknown_length(recipe, args, stream)
