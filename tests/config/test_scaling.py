"""Batch-size scaling: the documented rules give the documented values, and the log line says so."""

from __future__ import annotations

import math

import pytest

from ftrecipes import ConfigError, Timeline, get_recipe, list_recipes
from ftrecipes.config.scaling import (
    DEFAULT_RULE_FOR_OPTIMIZER,
    SAFE_FACTOR,
    recipe_lr_scaling,
    scale_learning_rate,
    scaling_factor,
)


@pytest.mark.parametrize(
    "rule, batch, ref, factor",
    [
        ("linear", 256, 128, 2.0),  # SGD: twice the batch, twice the LR (Goyal et al.)
        ("linear", 64, 128, 0.5),
        ("sqrt", 64, 16, 2.0),  # AdamW: four times the batch, twice the LR
        ("sqrt", 4, 16, 0.5),
        ("sqrt", 32, 16, math.sqrt(2)),
        ("none", 1024, 16, 1.0),
        ("linear", 16, 16, 1.0),
        ("sqrt", 16, 16, 1.0),
    ],
)
def test_rules_give_the_documented_factor(rule, batch, ref, factor):
    assert scaling_factor(batch, ref, rule) == pytest.approx(factor, rel=1e-15)


def test_documented_recipe_values():
    # cls: AdamW 5e-5 tuned at 16, sqrt rule -> 1e-4 at a global batch of 64 (16 x 2 processes x 2 accumulation).
    cls = get_recipe("cls")
    timeline = Timeline(
        num_examples=1000, per_device_train_batch_size=16, num_processes=2, gradient_accumulation_steps=2
    )
    scaling = recipe_lr_scaling(cls, timeline.global_batch_size)
    assert (scaling.learning_rate_before, scaling.learning_rate_after) == (5e-5, 1e-4)
    assert cls.plan(timeline).learning_rate == scaling.learning_rate_after  # the recipe plan agrees
    # cnn-step: SGD 0.1 tuned at 128, linear rule -> 0.2 at 256 and 0.05 at 64.
    step = get_recipe("cnn-step")
    assert recipe_lr_scaling(step, 256).learning_rate_after == pytest.approx(0.2)
    assert recipe_lr_scaling(step, 64).learning_rate_after == pytest.approx(0.05)


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_follows_the_rule_of_its_optimizer_and_its_plan_uses_it(name):
    recipe = get_recipe(name).replace(max_steps=1000, warmup=0.01)
    assert recipe.lr_scaling == DEFAULT_RULE_FOR_OPTIMIZER[recipe.optimizer]
    for batch in (1, 8, 16, 100, 4096):
        plan = recipe.plan(Timeline(10_000, batch, max_steps=1000))
        scaling = recipe_lr_scaling(recipe, batch)
        assert plan.learning_rate == scaling.learning_rate_after and plan.scaling == scaling


def test_flag_overrides_the_recipe_rule_and_the_message_says_so():
    cls = get_recipe("cls")
    off = recipe_lr_scaling(cls, 64, rule="none")
    assert off.learning_rate_after == 5e-5 and off.overridden and off.factor == 1.0
    assert "unchanged" in off.message() and "from flag" in off.message()
    linear = recipe_lr_scaling(cls, 64, rule="linear")
    assert linear.learning_rate_after == pytest.approx(2e-4)
    msg = recipe_lr_scaling(cls, 64).message()
    assert msg.startswith("peak LR 5e-05 -> 0.0001") and "sqrt rule from recipe" in msg and "\n" not in msg


def test_far_from_the_reference_is_flagged():
    far = scale_learning_rate(0.1, 128 * 16, 128, "linear")
    assert far.factor > SAFE_FACTOR and far.outside_safe_range
    assert "re-tune" in far.message()
    assert not scale_learning_rate(0.1, 256, 128, "linear").outside_safe_range
    assert set(far.to_dict()) >= {"rule", "learning_rate_before", "learning_rate_after", "factor", "message"}


@pytest.mark.parametrize(
    "args, field",
    [
        ((16, 16, "cube"), "lr_scaling"),
        ((0, 16, "sqrt"), "global_batch_size"),
        ((16, 0, "sqrt"), "reference_global_batch_size"),
    ],
)
def test_bad_input_names_the_field(args, field):
    with pytest.raises(ConfigError) as err:
        scaling_factor(*args)
    assert err.value.field == field
