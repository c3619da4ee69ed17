"""LoRA+ and LR groups by parameter name (ftrecipes.training.lr_groups): the optimizer groups, the weight-decay
split inside them, composition with layer-wise LRs, bad patterns, and a real run where every group
trains at exactly its peak x the recipe's schedule at every step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_logged_group_lrs, tiny_job_argv

from ftrecipes import Timeline, get_recipe
from ftrecipes.config.errors import ConfigError
from ftrecipes.training.optim import create_optimizer
from ftrecipes.training.weight_decay import decay_parameter_names

N_TRAIN = 96
PEAK = 5e-4


def _lora_model(recipe):
    from ftrecipes.models.lora import apply_peft
    from ftrecipes.testing import tiny_model

    return apply_peft(tiny_model("cls"), recipe)


def _by_param(optimizer, model):
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: g for g in optimizer.param_groups for p in g["params"]}


def _check_partition(optimizer, model, weight_decay):
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(grouped) == len({id(p) for p in grouped}) == len(trainable)  # every trainable parameter, once
    decay = {id(p) for n, p in model.named_parameters() if n in decay_parameter_names(model)}
    for group in optimizer.param_groups:
        assert all((id(p) in decay) == (group["weight_decay"] == weight_decay) for p in group["params"]), group["name"]
        assert group["lr"] == pytest.approx(PEAK * group["lr_scale"], rel=1e-12)


def test_loraplus_puts_the_b_matrices_at_ratio_times_the_peak():
    recipe = get_recipe("lora-cls", loraplus_lr_ratio=16)
    model = _lora_model(recipe)
    optimizer = create_optimizer(recipe, model, learning_rate=PEAK)
    groups = _by_param(optimizer, model)
    b = [n for n in groups if ".lora_B." in n]
    a = [n for n in groups if ".lora_A." in n]
    assert b and a
    assert all(groups[n]["lr"] == pytest.approx(16 * PEAK) and groups[n]["name"] == "lora_B" for n in b)
    assert all(groups[n]["lr"] == PEAK for n in groups if n not in b)  # A, the head, the pooler
    assert (
        optimizer.param_groups[0]["lr"] == PEAK and optimizer.param_groups[0]["lr_scale"] == 1.0
    )  # the Trainer logs group 0
    _check_partition(optimizer, model, recipe.weight_decay)


def test_lr_groups_multiply_by_pattern_with_the_weight_decay_split():
    from ftrecipes.testing import tiny_model

    recipe = get_recipe(
        "cls",
        lr_groups=[{"pattern": "classifier", "multiplier": 10}, {"pattern": r"layer\.1\.", "multiplier": 0.5}],
        learning_rate=PEAK,
    )
    model = tiny_model("cls")
    optimizer = create_optimizer(recipe, model, learning_rate=PEAK)
    groups = _by_param(optimizer, model)
    for name, group in groups.items():
        expected = 10 if "classifier" in name else 0.5 if ".layer.1." in name else 1
        assert group["lr"] == pytest.approx(expected * PEAK), name
    assert {g["name"] for g in optimizer.param_groups} == {"default", "classifier", r"layer\.1\."}
    assert (
        groups["classifier.bias"]["weight_decay"] == 0.0
        and groups["classifier.weight"]["weight_decay"] == recipe.weight_decay
    )
    _check_partition(optimizer, model, recipe.weight_decay)
    # the first matching entry counts
    first = get_recipe(
        "cls",
        lr_groups=[{"pattern": "classifier", "multiplier": 10}, {"pattern": "weight", "multiplier": 3}],
        learning_rate=PEAK,
    )
    groups = _by_param(create_optimizer(first, model, learning_rate=PEAK), model)
    assert groups["classifier.weight"]["lr"] == pytest.approx(10 * PEAK) and groups["bert.pooler.dense.weight"][
        "lr"
    ] == pytest.approx(3 * PEAK)


def test_multipliers_compose_with_layerwise_lrs_and_loraplus():
    from ftrecipes.testing import tiny_model
    from ftrecipes.training.layerwise import lr_scale

    recipe = get_recipe(
        "llrd-cls", layerwise_lr_decay=0.8, lr_groups=[{"pattern": r"layer\.0\.", "multiplier": 2}], learning_rate=PEAK
    )
    model = tiny_model("cls")
    optimizer = create_optimizer(recipe, model, learning_rate=PEAK)
    for name, group in _by_param(optimizer, model).items():
        if ".layer.0." in name:
            assert (
                group["lr"] == pytest.approx(PEAK * lr_scale("layer_0", 2, recipe) * 2)
                and group["name"] == r"layer_0/layer\.0\."
            )
    both = get_recipe("lora-cls", loraplus_lr_ratio=4, lr_groups=[{"pattern": "query", "multiplier": 3}])
    model = _lora_model(both)
    groups = _by_param(create_optimizer(both, model, learning_rate=PEAK), model)
    query_b = next(n for n in groups if "query.lora_B" in n)
    value_b = next(n for n in groups if "value.lora_B" in n)
    query_a = next(n for n in groups if "query.lora_A" in n)
    assert groups[query_b]["lr"] == pytest.approx(12 * PEAK) and groups[query_b]["name"] == "query+lora_B"
    assert groups[value_b]["lr"] == pytest.approx(4 * PEAK) and groups[query_a]["lr"] == pytest.approx(3 * PEAK)


def test_a_pattern_that_matches_nothing_lists_names_that_exist():
    from ftrecipes.testing import tiny_model

    model = tiny_model("cls")
    with pytest.raises(ConfigError) as err:
        create_optimizer(get_recipe("cls", lr_groups=[{"pattern": "decoder", "multiplier": 2}]), model)
    message = str(err.value)
    assert message.startswith(
        "lr_groups='decoder': matches no parameter name; trainable parameters are e.g. "
        "'bert.embeddings.word_embeddings.weight'"
    )
    assert "; use a pattern" in message
    lora = get_recipe("lora-cls", lr_groups=[{"pattern": "word_embeddings", "multiplier": 2}])
    with pytest.raises(
        ConfigError,
        match=(
            r"lr_groups='word_embeddings': matches only frozen parameters "
            r"\('base_model.model.bert.embeddings.word_embeddings.weight'\)"
        ),
    ):
        create_optimizer(lora, _lora_model(lora))


def test_loraplus_needs_lora_b_matrices():
    from ftrecipes.testing import tiny_model

    with pytest.raises(
        ConfigError, match=r"loraplus_lr_ratio=16.0: scales LoRA's B matrices but peft is 'none'; set peft lora"
    ):
        get_recipe("cls", loraplus_lr_ratio=16)
    with pytest.raises(ConfigError, match=r"loraplus_lr_ratio=16.0: the model has no trainable LoRA B matrix"):
        create_optimizer(get_recipe("lora-cls", loraplus_lr_ratio=16), tiny_model("cls"))  # not wrapped by peft
    for bad in (0, -2, "none-such"):
        with pytest.raises(ConfigError, match=r"^loraplus_lr_ratio="):
            get_recipe("lora-cls", loraplus_lr_ratio=bad)


@pytest.mark.parametrize(
    "value, pattern",
    [
        ("[{pattern: classifier}]", r"lr_groups=.*each entry needs exactly the keys pattern and multiplier"),
        ("[{pattern: '(', multiplier: 2}]", r"lr_groups='\(': is not a valid regular expression"),
        (
            "[{pattern: classifier, multiplier: 0}]",
            r"lr_groups=\{'pattern': 'classifier', 'multiplier': 0\}: the multiplier of pattern 'classifier' must be a "
            r"positive finite number",
        ),
        (
            "[{pattern: classifier, multiplier: fast}]",
            r"lr_groups=.*the multiplier of pattern 'classifier' must be a positive finite number",
        ),
        ("classifier", r"lr_groups='classifier': must be a list"),
        ("[{pattern: '', multiplier: 2}]", r"pattern must be a non-empty string"),
    ],
)
def test_bad_lr_groups_name_the_field(value, pattern):
    with pytest.raises(ConfigError, match=pattern) as err:
        get_recipe("cls", lr_groups=value)
    assert "; " in str(err.value)


def test_lr_groups_from_the_command_line_and_yaml_round_trip(tmp_path):
    recipe = get_recipe("cls", lr_groups="[{pattern: classifier, multiplier: 10}]")
    assert recipe.lr_groups == [{"pattern": "classifier", "multiplier": 10.0}]
    path = tmp_path / "mine.yaml"
    path.write_text(recipe.to_yaml())
    assert get_recipe(str(path)).lr_groups == recipe.lr_groups


# ------------------------------------------------------------------------------------------------
# A real run through scripts/finetune.py: every group at its peak x schedule(step), at every step


def _args(tiny_base, cls_files, output_dir, *extra):
    return tiny_job_argv(
        "lora-cls", tiny_base, cls_files, output_dir, "--save_strategy", "no", "--plots", "false",
        "--per_device_train_batch_size", "8", "--learning_rate", str(PEAK), *extra,
    )  # fmt: skip


def test_every_group_follows_the_schedule_at_every_step(tiny_base, cls_files, tmp_path):
    from ftrecipes.job.run import main

    out = tmp_path / "loraplus"
    assert (
        main(
            _args(
                tiny_base,
                cls_files,
                out,
                "--loraplus_lr_ratio",
                "4",
                "--lr_groups",
                "[{pattern: classifier, multiplier: 5}]",
            )
        )
        == 0
    )
    plan = get_recipe("lora-cls", warmup="20%", num_train_epochs=1, learning_rate=PEAK).plan(
        Timeline(N_TRAIN, 8, num_train_epochs=1)
    )
    peak = plan.learning_rate  # the given peak, sqrt-scaled from batch 16 to 8: every group scales with it
    peaks = {"learning_rate": peak, "learning_rate/lora_B": 4 * peak, "learning_rate/classifier": 5 * peak}
    assert_logged_group_lrs(out, peaks, plan)
    schedule = json.loads((Path(out) / "schedule.json").read_text())
    assert schedule  # the per-group peaks are written for the curves


@pytest.mark.parametrize(
    "extra, pattern",
    [
        (
            ["--lr_groups", "[{pattern: decoder, multiplier: 2}]"],
            r"^finetune.py: error: lr_groups='decoder': matches no parameter name; trainable parameters are e.g. "
            r"'base_model",
        ),
        (
            ["--loraplus_lr_ratio", "0"],
            r"^finetune.py: error: loraplus_lr_ratio=0.0: must be a positive finite number; use e.g. 16",
        ),
        (
            ["--recipe", "cls", "--loraplus_lr_ratio", "8"],
            r"^finetune.py: error: loraplus_lr_ratio=8.0: scales LoRA's B matrices but peft is 'none'",
        ),
    ],
)
def test_bad_groups_exit_2_with_one_line_and_leave_output_dir_alone(
    tiny_base, cls_files, tmp_path, capsys, extra, pattern
):
    import datasets
    from transformers.utils import logging as hf_logging

    from ftrecipes.job.run import main

    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    # the libraries' progress bars (data map, weight loading) write to stderr; the promise is about the error
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        capsys.readouterr()
        assert main(_args(tiny_base, cls_files, out, *extra)) == 2
    finally:
        datasets.enable_progress_bars()
        hf_logging.enable_progress_bar()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert __import__("re").search(pattern, err[0]), err[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"] and (out / "keep.txt").read_text() == "precious"
