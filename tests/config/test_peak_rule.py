"""The peak-LR rule (ftrecipes.config.peak_rule): the peak a recipe derives from the model's width, the prior
that follows it, what `ftrecipes show` and a run say about it, and that a given learning_rate wins."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import tiny_job_argv

from ftrecipes import Timeline, get_recipe
from ftrecipes.cli import main as cli_main
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.peak_rule import (
    ModelWidth,
    choose_peak,
    depth_of_config,
    format_lr,
    rule_peak,
    width_of_config,
)
from ftrecipes.config.priors import prior_for_recipe
from ftrecipes.models.width import model_width, read_model_width, resolve_peak_rule, resolve_peak_rule_for_model

N_TRAIN = 96
WIDTHS = {"electra-small": 256, "minilm-l6": 384, "bert-base": 768, "bert-large": 1024}


def _config_folder(tmp_path: Path, name: str, config: dict) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


# ------------------------------------------------------------------------------------------------
# The rule's picks


def test_hidden_384_lands_in_the_sweeps_best_range_and_768_in_berts_grid():
    cls = get_recipe("cls")
    assert cls.lr_rule == "width"
    # The project's MiniLM-L6 sweeps: best 1e-4 (BBC News) and 2e-4 (tweets).
    assert 1e-4 <= rule_peak(cls, 384) <= 2e-4
    assert rule_peak(cls, 384) == pytest.approx(1e-4, rel=1e-12)
    # BERT's fine-tuning grid 2e-5..5e-5 for BERT-base and BERT-large widths.
    for width in (768, 1024):
        assert 2e-5 <= rule_peak(cls, width) <= 5e-5 * (1 + 1e-12), width
    assert rule_peak(cls, 768) == pytest.approx(5e-5, rel=1e-12)
    # The formula itself: reference peak x (reference width / width) ** exponent.
    for width in WIDTHS.values():
        assert rule_peak(cls, width) == pytest.approx(5e-5 * 768 / width, rel=1e-12)
    steeper = cls.replace(lr_rule_width_exponent=1.5, lr_rule_reference_peak=4e-5)
    assert rule_peak(steeper, 384) == pytest.approx(4e-5 * 2**1.5, rel=1e-12)
    assert rule_peak(cls.replace(lr_rule_width_exponent=0), 4096) == pytest.approx(5e-5)


def test_lora_trains_at_the_multiplier_times_the_full_fine_tuning_pick_scaled_by_alpha():
    cls, lora = get_recipe("cls"), get_recipe("lora-cls")
    assert (lora.lora_alpha, lora.lr_rule_lora_multiplier, lora.lr_rule_lora_reference_alpha) == (16, 10, 32)
    for width in WIDTHS.values():
        assert rule_peak(lora, width) == pytest.approx(20 * rule_peak(cls, width), rel=1e-12)
    # 20x at alpha 16: the LoRA paper's alpha-16 RoBERTa-base peaks 4e-4..5e-4 are 15-25x full fine-tuning's
    assert rule_peak(lora, 768) == pytest.approx(1e-3)
    # alpha and the peak trade one for one; the rank does not enter
    assert rule_peak(lora.replace(lora_alpha=32), 384) == pytest.approx(1e-3)
    assert rule_peak(lora.replace(lora_alpha=64, lora_r=64), 384) == pytest.approx(5e-4)
    assert rule_peak(lora.replace(lora_r=64), 384) == rule_peak(lora, 384)
    assert rule_peak(lora.replace(lr_rule_lora_multiplier=4, lr_rule_lora_reference_alpha=16), 384) == pytest.approx(
        4e-4
    )
    line = choose_peak(lora, ModelWidth(384, "test")).line()
    assert line.startswith(
        "peak 2e-3: lora-cls rule for hidden 384, LoRA r 8 alpha 16, batch 16 (5e-5 x (768/384)^1 x 10 x (32/16) (LoRA)"
    ), line
    qlora = get_recipe("lora-cls", peft="qlora", lora_alpha=8)
    assert (
        choose_peak(qlora, ModelWidth(384, "test"))
        .line()
        .startswith("peak 4e-3: lora-cls rule for hidden 384, QLoRA r 8 alpha 8, batch 16 ")
    )


def test_the_prior_follows_the_pick_and_keeps_the_best_peak(tmp_path):
    cls = get_recipe("cls")
    resolved, choice = resolve_peak_rule(cls, "minilm")
    assert choice.applied and choice.width == 384 and "bundled 'minilm'" in choice.width_source
    assert resolved.learning_rate == pytest.approx(1e-4) and resolved.lr_rule == "none"
    assert resolved.lr_prior == pytest.approx([1e-4 / 2.5, 1e-4 * 2.5])
    prior = prior_for_recipe(resolved)
    # the sweeps' best peaks on MiniLM (1e-4, 2e-4) and the range test's raw BBC pick (1.54e-4) are all inside
    assert all(prior.contains(lr) for lr in (1e-4, 1.54e-4, 2e-4))
    assert prior.clip(1.54e-4) == 1.54e-4
    # at BERT-base width the prior still holds BERT's grid
    bert = resolve_peak_rule(cls, _config_folder(tmp_path, "bert", {"model_type": "bert", "hidden_size": 768}))[0]
    assert bert.lr_prior[0] <= 2e-5 and bert.lr_prior[1] >= 5e-5
    wider = resolve_peak_rule(cls.replace(lr_rule_prior_factor=4), "minilm")[0]
    assert wider.lr_prior == pytest.approx([2.5e-5, 4e-4])


def test_a_given_learning_rate_turns_the_rule_off():
    assert get_recipe("cls", learning_rate=2e-5).lr_rule == "none"
    assert get_recipe("cls").replace(learning_rate="3e-4").lr_rule == "none"
    recipe, choice = resolve_peak_rule(get_recipe("cls", learning_rate=2e-5), "minilm")
    assert choice is None and recipe.learning_rate == 2e-5 and recipe.lr_prior == [2e-5, 2e-4]
    # both given: the rule stays on and learning_rate is its fallback
    both = get_recipe("cls", learning_rate=2e-5, lr_rule="width")
    assert both.lr_rule == "width" and resolve_peak_rule(both, "minilm")[0].learning_rate == pytest.approx(1e-4)
    # the recipes without the rule keep their stated peak
    for name in ("cnn-step", "pretrain", "clm", "qlora-clm"):
        recipe = get_recipe(name)
        assert recipe.lr_rule == "none" and resolve_peak_rule(recipe, "minilm") == (recipe, None), name


# ------------------------------------------------------------------------------------------------
# The width, from a config.json or a config object


@pytest.mark.parametrize(
    "config, width, key",
    [
        ({"hidden_size": 384}, 384, "hidden_size"),  # BERT, RoBERTa, Llama
        ({"d_model": 512}, 512, "d_model"),  # T5, BART
        ({"n_embd": 768}, 768, "n_embd"),  # GPT-2's config.json
        ({"text_config": {"hidden_size": 1024}}, 1024, "text_config.hidden_size"),
        ({"hidden_sizes": [16, 32]}, None, None),  # a CNN: no single width
        ({"hidden_size": 0}, None, None),
        ({"hidden_size": True}, None, None),
    ],
)
def test_width_keys(config, width, key):
    assert width_of_config(config) == (width, key)


def test_width_from_folders_files_aliases_and_objects(tmp_path, tiny_base):
    assert read_model_width("minilm").width == 384
    assert read_model_width(tiny_base).width == 32
    gpt2 = _config_folder(tmp_path, "gpt2", {"model_type": "gpt2", "n_embd": 768})
    assert read_model_width(gpt2) == ModelWidth(768, f"n_embd in the config.json of {gpt2}")
    assert read_model_width(str(Path(gpt2) / "config.json")).width == 768
    missing = read_model_width(str(tmp_path / "nowhere"))
    assert missing.width is None and "nowhere" in missing.source
    cnn = _config_folder(tmp_path, "cnn", {"model_type": "ftrecipes-small-cnn", "hidden_sizes": [16, 32]})
    assert (
        read_model_width(cnn).width is None
        and "names none of hidden_size, d_model, n_embd" in read_model_width(cnn).source
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    assert read_model_width(str(tmp_path / "broken")).width is None
    offline = read_model_width("someone/not-cached-anywhere")  # HF_HUB_OFFLINE=1 in the tests
    assert offline.width is None and "offline" in offline.source

    from transformers import GPT2Config

    from ftrecipes.models.cnn import SmallCNNConfig, SmallCNNForImageClassification
    from ftrecipes.testing import tiny_model

    assert model_width(tiny_model("cls")) == ModelWidth(32, "hidden_size of the model's config", 2)
    assert width_of_config(GPT2Config(n_embd=64)) == (64, "hidden_size")  # the attribute map aliases n_embd
    assert model_width(SmallCNNForImageClassification(SmallCNNConfig(num_labels=3))).width is None
    assert model_width(None).width is None


@pytest.mark.parametrize(
    "config, depth",
    [
        ({"num_hidden_layers": 6}, 6),  # BERT, RoBERTa, Llama
        ({"n_layer": 12}, 12),  # GPT-2's config.json
        ({"num_layers": 24}, 24),  # T5
        ({"text_config": {"num_hidden_layers": 32}}, 32),
        ({"hidden_size": 384}, None),
        ({"num_hidden_layers": 0}, None),
    ],
)
def test_depth_keys(config, depth):
    assert depth_of_config(config) == depth


def test_the_depth_term_is_off_by_default_and_when_on_keeps_bert_base_at_its_anchor(tmp_path):
    """Exponent 0 (every shipped recipe): the depth changes nothing. Exponent 0.5: the peak goes as
    1/sqrt(depth) around 12 layers, so BERT-base (768, 12) keeps 5e-5 and a 3-layer MiniLM gets 2x a 6-layer one."""
    cls = get_recipe("cls")
    assert cls.lr_rule_depth_exponent == 0 and cls.lr_rule_reference_depth == 12
    assert rule_peak(cls, 384, 6) == rule_peak(cls, 384, 3) == rule_peak(cls, 384) == pytest.approx(1e-4, rel=1e-12)
    off = choose_peak(cls, ModelWidth(384, "test", 6))
    assert off.depth is None and "layers" not in off.line() and "(12/" not in off.formula

    deep = get_recipe("cls", lr_rule_depth_exponent=0.5)
    assert rule_peak(deep, 768, 12) == pytest.approx(5e-5, rel=1e-12)
    assert rule_peak(deep, 384, 6) == pytest.approx(1e-4 * 2**0.5, rel=1e-12)
    assert rule_peak(deep, 384, 3) == pytest.approx(2e-4, rel=1e-12)
    # with width exponent 1, (768/w) x (12/L)^0.5 is sqrt of the non-embedding parameter ratio, ~ L x w^2
    assert rule_peak(deep, 384, 3) / rule_peak(deep, 768, 12) == pytest.approx(((12 * 768**2) / (3 * 384**2)) ** 0.5)
    lora = get_recipe("lora-cls", lr_rule_depth_exponent=0.5)
    assert rule_peak(lora, 384, 6) == pytest.approx(20 * 1e-4 * 2**0.5, rel=1e-12)

    minilm = read_model_width("minilm")
    assert (minilm.width, minilm.depth) == (384, 6)
    choice = choose_peak(deep, minilm)
    assert choice.depth == 6 and choice.learning_rate == pytest.approx(1.4142e-4, rel=1e-4)
    assert choice.line().startswith("peak 1.41e-4: cls rule for hidden 384, 6 layers, full fine-tuning, batch 16 ")
    assert "5e-5 x (768/384)^1 x (12/6)^0.5 at batch 16" in choice.line()

    no_depth = _config_folder(tmp_path, "no-depth", {"model_type": "custom", "hidden_size": 384})
    choice = choose_peak(deep, read_model_width(no_depth))
    assert choice.applied and choice.depth is None and choice.learning_rate == pytest.approx(1e-4, rel=1e-12)
    assert "(no depth term: the config names no number of layers)" in choice.line()


def test_width_of_a_hub_id_from_the_cache_offline(tmp_path):
    """A Hub id is read from the Hugging Face cache (laid out as huggingface_hub caches it), no network."""
    repo = tmp_path / "models--someone--roberta-large-ish"
    snap = repo / "snapshots" / ("b" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"model_type": "roberta", "hidden_size": 1024}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    width = read_model_width("someone/roberta-large-ish", cache_dir=str(tmp_path))
    assert width.width == 1024 and "(Hugging Face cache)" in width.source
    recipe, choice = resolve_peak_rule(get_recipe("cls"), "someone/roberta-large-ish", cache_dir=str(tmp_path))
    assert recipe.learning_rate == pytest.approx(3.75e-5) and choice.line().startswith(
        "peak 3.75e-5: cls rule for hidden 1024"
    )


def test_a_model_without_a_width_falls_back_to_the_stated_peak_in_one_line(tmp_path):
    cnn = _config_folder(tmp_path, "cnn", {"model_type": "ftrecipes-small-cnn", "hidden_sizes": [16, 32]})
    recipe, choice = resolve_peak_rule(get_recipe("cls"), cnn)
    assert not choice.applied and recipe.learning_rate == 5e-5 and recipe.lr_prior == [2e-5, 2e-4]
    line = choice.line()
    assert "\n" not in line
    assert line.startswith(
        f"peak 5e-5: the stated learning_rate of recipe 'cls', not its width rule (no model width: the config of {cnn} "
        "names none of"
    )


# ------------------------------------------------------------------------------------------------
# Bad rule fields


@pytest.mark.parametrize(
    "overrides, field, fix",
    [
        ({"lr_rule": "auto"}, "lr_rule='auto'", "use 'width'"),
        ({"lr_rule": "wdth"}, "lr_rule='wdth'", "did you mean 'width'?"),
        ({"lr_rule_reference_peak": "fast"}, "lr_rule_reference_peak='fast'", "write e.g."),
        ({"lr_rule_reference_peak": -1e-4}, "lr_rule_reference_peak=-0.0001", "use e.g. 5e-5"),
        ({"lr_rule_reference_width": "wide"}, "lr_rule_reference_width='wide'", "write a whole number"),
        ({"lr_rule_reference_width": 0}, "lr_rule_reference_width=0", "use e.g. 768"),
        ({"lr_rule_width_exponent": 4}, "lr_rule_width_exponent=4.0", "use 1.0"),
        ({"lr_rule_reference_depth": 0}, "lr_rule_reference_depth=0", "use e.g. 12"),
        ({"lr_rule_depth_exponent": -0.5}, "lr_rule_depth_exponent=-0.5", "use 0"),
        ({"lr_rule_lora_multiplier": 0}, "lr_rule_lora_multiplier=0.0", "use e.g. 10"),
        ({"lr_rule_lora_reference_alpha": -16}, "lr_rule_lora_reference_alpha=-16.0", "use e.g. 32"),
        ({"lr_rule_lora_reference_alpha": "nan"}, "lr_rule_lora_reference_alpha=nan", "use e.g. 32"),
        ({"lr_rule_prior_factor": 0.5}, "lr_rule_prior_factor=0.5", "use e.g. 2.5"),
        ({"optimizer": "sgd"}, "lr_rule='width'", "set lr_rule none"),
    ],
)
def test_bad_rule_fields_name_the_field_and_a_fix(overrides, field, fix):
    with pytest.raises(ConfigError) as err:
        get_recipe("cls", **overrides)
    message = str(err.value)
    assert message.startswith(f"{field}:") and "; " in message and fix in message.split("; ", 1)[1], message


def test_format_lr():
    assert [format_lr(v) for v in (1e-4, 5e-5, 3.75e-5, 1.25e-4, 2.5e-3)] == [
        "1e-4",
        "5e-5",
        "3.75e-5",
        "1.25e-4",
        "2.5e-3",
    ]


# ------------------------------------------------------------------------------------------------
# ftrecipes show / plot / list


def _show(argv, capsys):
    code = cli_main(argv)
    out = capsys.readouterr().out
    assert code == 0
    return out


def test_show_states_the_rules_pick_and_why(tmp_path, capsys):
    out = _show(["show", "cls", "--model_name_or_path", "minilm", "--num_examples", "2000"], capsys)
    assert (
        "peak-LR rule          peak 1e-4: cls rule for hidden 384, full fine-tuning, batch 16 (5e-5 x (768/384)^1 at "
        "batch 16" in out
    )
    assert "peak LR 0.0001 unchanged" in out and "lr_prior              4e-05..0.00025" in out
    assert re.search(r"\n  lr_rule +'width'\n", out)  # the fields listed are the recipe as written
    assert "why: The peak follows the model (ftrecipes/config/peak_rule.py)" in out  # the recipe file's comment
    assert "why: 1 is muP's Adam scaling" in out  # FIELD_REASONS for a field the file does not set
    bert = _config_folder(tmp_path, "bert-base", {"model_type": "bert", "hidden_size": 768})
    out = _show(["show", "cls", "--model_name_or_path", bert, "--num_examples", "2000"], capsys)
    assert "peak 5e-5: cls rule for hidden 768, full fine-tuning, batch 16" in out
    out = _show(["show", "lora-cls", "--model_name_or_path", bert, "--num_examples", "2000"], capsys)
    assert "peak 1e-3: lora-cls rule for hidden 768, LoRA r 8 alpha 16, batch 16" in out
    # the batch rule stays one step of it: 16 per device x 2 processes -> sqrt(2) x the pick
    out = _show(["show", "cls", "--num_processes", "2", "--num_examples", "2000"], capsys)
    assert (
        "peak 1.41e-4: cls rule for hidden 384, full fine-tuning, batch 32 (5e-5 x (768/384)^1 at batch 16, "
        "batch-scaled from 1e-4" in out
    )
    cnn = _config_folder(tmp_path, "cnn", {"hidden_sizes": [16, 32]})
    out = _show(["show", "cls", "--model_name_or_path", cnn, "--num_examples", "2000"], capsys)
    assert (
        "peak-LR rule          peak 5e-5: the stated learning_rate of recipe 'cls', not its width rule (no model width"
        in out
    )
    out = _show(["show", "cls", "--learning_rate", "2e-5", "--num_examples", "2000"], capsys)
    assert "peak-LR rule" not in out and "peak LR 2e-05 unchanged" in out
    out = _show(["list"], capsys)
    assert any(line.startswith("cls ") and "0.0001 (hidden 384)" in line for line in out.splitlines())


def test_show_plans_every_shipped_recipe_with_the_rule(capsys):
    from ftrecipes.config.registry import list_recipes

    for name in list_recipes():
        if get_recipe(name).lr_rule != "none":
            out = _show(["show", name, "--num_examples", "1000"], capsys)
            assert f"{name} rule for hidden 384" in out, name


# ------------------------------------------------------------------------------------------------
# A run: the rule's peak at every step, the provenance line and plan.json


def _args(tiny_base, cls_files, output_dir, *extra):
    return tiny_job_argv(
        "cls", tiny_base, cls_files, output_dir, "--save_strategy", "no", "--plots", "false",
        "--per_device_train_batch_size", "16", *extra,
    )  # fmt: skip


def _logged(output_dir):
    from ftrecipes.training.stock import log_history_lrs

    return log_history_lrs(json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"])


def test_a_run_trains_at_the_rules_peak_and_says_why(tiny_base, cls_files, tmp_path, caplog):
    from ftrecipes.job.run import main
    from ftrecipes.training.stock import expected_lr

    out = tmp_path / "rule"
    with caplog.at_level(logging.INFO, logger="ftrecipes"):
        assert main(_args(tiny_base, cls_files, out)) == 0
    pick = 5e-5 * 768 / 32  # the tiny BERT is 32 wide
    plan = (
        get_recipe("cls", warmup="20%", num_train_epochs=1)
        .replace(learning_rate=pick)
        .plan(Timeline(N_TRAIN, 16, num_train_epochs=1))
    )
    lrs = _logged(out)
    assert sorted(lrs) == list(range(1, plan.total_steps + 1))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(pick, plan.schedule, step), rel=1e-9), step
    line = (
        "peak 1.2e-3: cls rule for hidden 32, full fine-tuning, batch 16 (5e-5 x (768/32)^1 at batch 16; width: "
        "hidden_size in the config.json of"
    )
    assert sum(line in r.getMessage() for r in caplog.records) == 1
    recorded = json.loads((out / "plan.json").read_text())
    assert recorded["peak_rule"]["applied"] and recorded["peak_rule"]["width"] == 32
    assert recorded["peak_rule"]["message"].startswith(line) and recorded["learning_rate"] == pytest.approx(pick)
    assert recorded["peak_rule"]["lr_prior"] == pytest.approx([pick / 2.5, pick * 2.5])
    # recipe.yaml states the peak as trained with the rule off: rerunning it gives the same peak on any model
    again = get_recipe(str(out / "recipe.yaml"))
    assert again.lr_rule == "none" and again.learning_rate == pytest.approx(pick)


def test_an_explicit_learning_rate_is_used_unchanged(tiny_base, cls_files, tmp_path, caplog):
    from ftrecipes.job.run import main
    from ftrecipes.training.stock import expected_lr

    out = tmp_path / "explicit"
    with caplog.at_level(logging.INFO, logger="ftrecipes"):
        assert main(_args(tiny_base, cls_files, out, "--learning_rate", "3e-4")) == 0
    plan = get_recipe("cls", warmup="20%", num_train_epochs=1, learning_rate=3e-4).plan(
        Timeline(N_TRAIN, 16, num_train_epochs=1)
    )
    for step, lr in _logged(out).items():
        assert lr == pytest.approx(expected_lr(3e-4, plan.schedule, step), rel=1e-9), step
    assert not any("rule for hidden" in r.getMessage() for r in caplog.records)
    recorded = json.loads((out / "plan.json").read_text())
    assert "peak_rule" not in recorded and recorded["learning_rate"] == pytest.approx(3e-4)


# ------------------------------------------------------------------------------------------------
# The user's own Trainer: RecipeTrainer reads the model's config


def test_recipe_trainer_applies_the_rule_from_the_models_config(tmp_path, caplog):
    from transformers import TrainingArguments

    from ftrecipes.models.cnn import SmallCNNConfig, SmallCNNForImageClassification
    from ftrecipes.testing import tiny_model
    from ftrecipes.training.trainer import RecipeTrainer

    model = tiny_model("cls")
    with caplog.at_level(logging.INFO, logger="ftrecipes"):
        trainer = RecipeTrainer(
            model=model,
            args=TrainingArguments(output_dir=str(tmp_path / "a"), report_to="none"),
            recipe=get_recipe("cls"),
            argv=[],
        )
    assert trainer.args.learning_rate == pytest.approx(1.2e-3)  # batch 16 = the reference: no batch scaling
    assert (
        trainer.run_info["peak_rule"]["applied"]
        and trainer.run_info["peak_rule"]["width_source"] == "hidden_size of the model's config"
    )
    assert any(
        "peak 1.2e-3: cls rule for hidden 32, full fine-tuning, batch 16" in r.getMessage() for r in caplog.records
    )

    # a learning_rate the script set wins unchanged, and plan.json says the rule was set aside
    given = RecipeTrainer(
        model=tiny_model("cls"),
        args=TrainingArguments(output_dir=str(tmp_path / "b"), learning_rate=2e-5, report_to="none"),
        recipe=get_recipe("cls"),
        argv=[],
    )
    assert given.args.learning_rate == 2e-5
    assert not given.run_info["peak_rule"]["applied"]
    assert given.run_info["peak_rule"]["message"] == (
        "peak 2e-5: as given, not from the width rule of recipe 'cls' "
        "(learning_rate 2e-05 came from the script and is used unchanged)"
    )

    # no width in the config: the stated peak, in one line
    cnn = SmallCNNForImageClassification(SmallCNNConfig(num_labels=3))
    recipe, choice = resolve_peak_rule_for_model(get_recipe("cls"), cnn)
    assert not choice.applied and recipe.learning_rate == 5e-5
    assert choice.line().startswith(
        "peak 5e-5: the stated learning_rate of recipe 'cls', not its width rule (no model width: the config of the "
        "SmallCNNForImageClassification"
    )


def test_args_applied_before_the_model_get_the_rules_peak_when_the_model_is_known(tmp_path):
    """The Hugging Face script order: apply_recipe on the parsed TrainingArguments first (no model yet,
    so the stated peak), then RecipeTrainer or recipe_optimizers with the model, which set the rule's."""
    from transformers import TrainingArguments

    from ftrecipes.testing import tiny_model
    from ftrecipes.training.arguments import apply_recipe, recipe_record
    from ftrecipes.training.stock import recipe_optimizers
    from ftrecipes.training.trainer import RecipeTrainer

    args = apply_recipe(get_recipe("cls"), TrainingArguments(output_dir=str(tmp_path / "a"), report_to="none"), [])
    assert (
        args.learning_rate == 5e-5
        and "the stated peak until lr_rule 'width' sees the model"
        in recipe_record(args)["sources"]["learning_rate"]["detail"]
    )
    trainer = RecipeTrainer(model=tiny_model("cls"), args=args, recipe=get_recipe("cls"), argv=[])
    assert trainer.args.learning_rate == pytest.approx(1.2e-3) and trainer.run_info["peak_rule"]["applied"]
    assert recipe_record(trainer.args)["lr_scaling"]["learning_rate_before"] == pytest.approx(1.2e-3)

    args = apply_recipe(
        get_recipe("cls"),
        TrainingArguments(output_dir=str(tmp_path / "b"), report_to="none", max_steps=4, per_device_train_batch_size=4),
        ["--per_device_train_batch_size", "4"],
    )
    optimizer, scheduler = recipe_optimizers(get_recipe("cls"), tiny_model("cls"), args)
    assert scheduler.base_lrs[0] == pytest.approx(1.2e-3 * 0.5)  # the rule's peak, sqrt-scaled from batch 16 to 4
    assert args.learning_rate == pytest.approx(1.2e-3 * 0.5)

    # a learning_rate on the command line stays as given
    given = apply_recipe(
        get_recipe("cls"),
        TrainingArguments(output_dir=str(tmp_path / "c"), report_to="none", learning_rate=3e-4),
        ["--learning_rate", "3e-4"],
    )
    assert (
        RecipeTrainer(model=tiny_model("cls"), args=given, recipe=get_recipe("cls"), argv=[]).args.learning_rate == 3e-4
    )
