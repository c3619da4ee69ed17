"""Recipes: every shipped file loads and plans; strict overrides; each bad input names its field."""

import math

import pytest
import yaml

from ftrecipes import ConfigError, Recipe, Timeline, get_recipe, list_recipes
from ftrecipes.config.registry import recipes_dir

REQUIRED = {
    "cls",
    "token-cls",
    "clm",
    "pretrain",
    "pretrain-invsqrt",
    "cnn-step",
    "constant",
    "plateau",
    "one-cycle",
    "sgdr",
}


def test_required_recipes_are_shipped():
    assert REQUIRED <= set(list_recipes())


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_file_loads_validates_and_plans(name):
    path = recipes_dir() / f"{name}.yaml"
    text = path.read_text()
    assert text.startswith("#") and "Launch:" in text and "Override:" in text  # headed by its commands
    assert f"ftrecipes.train --recipe {name}" in text or f"ftrecipes train --recipe {name}" in text
    recipe = get_recipe(name)
    assert recipe.name == name and recipe.description
    plan = recipe.plan(
        Timeline(
            5000,
            recipe.per_device_train_batch_size,
            num_train_epochs=recipe.num_train_epochs,
            max_steps=recipe.max_steps,
        )
    )
    assert 0 <= plan.warmup_steps < plan.total_steps
    trace = plan.schedule.trace()
    assert max(trace) == pytest.approx(1.0, abs=1e-3) and min(trace) >= 0
    # Every key in the file is a real field.
    data = yaml.safe_load(text)
    assert set(data) <= set(Recipe().to_dict())


def test_cls_holds_only_its_overrides_of_the_class_defaults():
    data = yaml.safe_load((recipes_dir() / "cls.yaml").read_text())
    defaults = Recipe()
    assert {
        k for k, v in data.items() if k != "description" and Recipe.from_dict(data).to_dict()[k] == getattr(defaults, k)
    } == set()
    assert set(data) == {"description", "lr_rule", "learning_rate", "lr_prior", "lr_scaling"}


def test_cls_is_the_class_defaults_with_a_higher_peak():
    r = get_recipe("cls")
    assert (
        r.optimizer,
        r.lr_scheduler_type,
        r.warmup,
        r.min_lr_rate,
        r.weight_decay,
        r.max_grad_norm,
        r.num_train_epochs,
    ) == ("adamw", "cosine", "5%", 0.1, 0.01, 1.0, 3.0)
    assert 2e-5 <= r.learning_rate <= 5e-5
    plan = r.plan(Timeline(10_000 * 16 // 3, 16, num_train_epochs=3))  # ~10k optimizer steps
    assert plan.warmup_steps == math.ceil(0.05 * plan.total_steps)
    assert plan.schedule.lr(plan.total_steps) == pytest.approx(0.1)


def test_cnn_step_is_the_classic_step_decay():
    r = get_recipe("cnn-step")
    plan = r.plan(Timeline(12_800, 128, num_train_epochs=100))  # 100 steps per epoch, 10k steps
    assert plan.total_steps == 10_000 and r.optimizer == "sgd" and r.momentum == 0.9 and r.learning_rate == 0.1
    lr = plan.schedule.lr
    assert [lr(2999), lr(3000), lr(6000), lr(9000)] == pytest.approx([1.0, 0.1, 0.01, 0.001])
    assert [t.step for t in plan.schedule.transitions] == [3000, 6000, 9000]


def test_yaml_round_trip_and_overrides(tmp_path):
    r = get_recipe("sgdr", learning_rate="2e-5", num_train_epochs="6")
    assert r.learning_rate == 2e-5 and r.num_train_epochs == 6.0
    path = tmp_path / "mine.yaml"
    path.write_text(r.to_yaml())
    assert Recipe.from_yaml(path) == r
    assert get_recipe(str(path)) == r


def test_dict_override_from_command_line_string():
    r = get_recipe("plateau", lr_scheduler_kwargs='{"factor": 0.3, "patience": 2}')
    assert r.lr_scheduler_kwargs == {"factor": 0.3, "patience": 2}


def test_scaling_rules_set_the_planned_peak():
    r = Recipe(learning_rate=1e-4, reference_global_batch_size=32, max_steps=100)

    def peak(rule, batch):
        return r.replace(lr_scaling=rule).plan(Timeline(1000, batch, max_steps=100)).learning_rate

    assert peak("none", 128) == 1e-4
    assert peak("linear", 128) == pytest.approx(4e-4)
    assert peak("sqrt", 128) == pytest.approx(2e-4)
    assert peak("linear", 16) == pytest.approx(5e-5)


def test_str_shows_resolved_fields():
    text = str(get_recipe("cls"))
    assert text.startswith("Recipe 'cls'") and "learning_rate" in text and "lr_scheduler_type" in text


# ---------------------------------------------------------------------------------------------
# Bad input: one line naming the field and the fix.

BAD = [
    ({"learnig_rate": 1e-4}, r"^learnig_rate=.*did you mean 'learning_rate'"),
    ({"learning_rate": "fast"}, r"^learning_rate='fast': must be a number"),
    ({"learning_rate": -1e-5}, r"^learning_rate=.*positive"),
    ({"num_train_epochs": "three"}, r"^num_train_epochs="),
    ({"per_device_train_batch_size": 2.5}, r"^per_device_train_batch_size=.*integer"),
    ({"nesterov": "maybe"}, r"^nesterov="),
    ({"min_lr": 1e-3, "learning_rate": 1e-4}, r"^min_lr=.*floor must lie"),
    ({"min_lr_rate": 1.5}, r"^min_lr_rate="),
    ({"lr_scheduler_type": "cosin"}, r"^lr_scheduler_type='cosin'.*did you mean 'cosine'"),
    ({"optimizer": "adam"}, r"^optimizer='adam'.*did you mean 'adamw'"),
    (
        {"lr_scheduler_type": "step", "lr_scheduler_kwargs": {"gama": 0.1}},
        r"^lr_scheduler_kwargs.gama=.*did you mean 'gamma'",
    ),
    ({"warmup": "lots"}, r"^warmup='lots'"),
    ({"precision": "half"}, r"^precision="),
    ({"lr_scheduler_type": "plateau", "eval_strategy": "no"}, r"^lr_scheduler_type="),
    ({"lr_scheduler_kwargs": "[1, 2"}, r"^lr_scheduler_kwargs="),
]


@pytest.mark.parametrize("overrides,pattern", BAD)
def test_bad_values_raise_one_line(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        Recipe.from_dict(overrides)
    assert "\n" not in str(info.value)


BAD_PLANS = [
    ({"warmup": 500}, r"^warmup=500: resolves to 500 optimizer steps but training has only 100"),
    ({"warmup": "1ep", "num_train_epochs": 1}, r"^warmup='1ep'"),
    ({"lr_scheduler_type": "step", "lr_scheduler_kwargs": {"gamma": 0}}, r"^lr_scheduler_kwargs.gamma=0"),
    ({"lr_scheduler_type": "step", "lr_scheduler_kwargs": {"gamma": -0.5}}, r"^lr_scheduler_kwargs.gamma"),
    (
        {"lr_scheduler_type": "step", "lr_scheduler_kwargs": {"milestones": ["60%", "30%"]}},
        r"^lr_scheduler_kwargs.milestones=.*not strictly increasing",
    ),
    (
        {"lr_scheduler_type": "step", "lr_scheduler_kwargs": {"milestones": [50, 150]}},
        r"^lr_scheduler_kwargs.milestones=.*outside the decay phase",
    ),
    ({"lr_scheduler_type": "sgdr", "lr_scheduler_kwargs": {"period_mult": 0.5}}, r"^lr_scheduler_kwargs.period_mult"),
]


@pytest.mark.parametrize("overrides,pattern", BAD_PLANS)
def test_bad_values_that_need_sizes(overrides, pattern):
    recipe = Recipe.from_dict({"num_train_epochs": 1, **overrides})
    with pytest.raises(ConfigError, match=pattern):
        recipe.plan(Timeline(1000, 10, num_train_epochs=recipe.num_train_epochs))  # 100 steps


def test_unknown_recipe_suggests_close_names():
    with pytest.raises(ConfigError, match=r"^--recipe='clss': is not a known recipe; did you mean 'cls'"):
        get_recipe("clss")
    with pytest.raises(ConfigError, match=r"^--recipe=.*does not exist"):
        get_recipe("nowhere/recipe.yaml")


def test_bad_yaml_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("learning_rate: [1e-4\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        Recipe.from_yaml(path)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        Recipe.from_yaml(path)


def test_epoch_durations_without_epoch_size_name_their_field():
    with pytest.raises(ConfigError, match=r"^lr_scheduler_kwargs.period='1ep'"):
        get_recipe("sgdr").build_schedule(100)
    assert get_recipe("sgdr").build_schedule(100, steps_per_epoch=25).transitions[-1].kind == "restart"
