"""LoRA through peft on tiny config-built models: what trains, adapter save/reload, exact resume,
a user's own Trainer, the LR range test's prior, and every bad input (one line, exit 2)."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import on_tiny, tiny_job_argv
from safetensors.torch import load_file

from ftrecipes import Timeline, get_recipe
from ftrecipes.config.errors import ConfigError
from ftrecipes.job.run import main
from ftrecipes.models.lora import apply_peft, resolve_target_modules, save_merged
from ftrecipes.testing import tiny_causal_lm, tiny_model
from ftrecipes.training.stock import expected_lr, log_history_lrs
from ftrecipes.tuning.range_test import prior_for_recipe

NEW_RECIPES = ("lora-cls", "lora-clm", "qlora-clm", "llrd-cls")


@pytest.mark.parametrize("name", NEW_RECIPES)
def test_every_new_recipe_loads_and_validates(name):
    recipe = get_recipe(name)
    assert recipe.name == name and recipe.description
    assert (recipe.peft != "none") or recipe.layerwise_lr_decay < 1
    if recipe.peft != "none":
        low, high = recipe.lr_prior
        assert low <= recipe.learning_rate <= high
    # the published settings the YAML cites
    expected = {
        "lora-cls": dict(peft="lora", lora_r=8, lora_alpha=16, learning_rate=4e-4, warmup="6%", weight_decay=0.1),
        "lora-clm": dict(peft="lora", learning_rate=2e-4, lr_scheduler_type="cosine"),
        "qlora-clm": dict(
            peft="qlora",
            lora_r=64,
            lora_alpha=16,
            lora_dropout=0.1,
            learning_rate=2e-4,
            lr_scheduler_type="constant",
            warmup="3%",
            max_grad_norm=0.3,
            lora_target_modules="all-linear",
        ),
        "llrd-cls": dict(layerwise_lr_decay=0.95, peft="none"),
    }[name]
    assert {k: getattr(recipe, k) for k in expected} == expected


def _trainable(model):
    return [n for n, p in model.named_parameters() if p.requires_grad]


def test_only_adapters_and_head_require_gradients():
    model = apply_peft(tiny_model("cls", num_labels=3), get_recipe("lora-cls"))
    names = _trainable(model)
    for name in names:
        assert re.search(r"\.lora_[AB]\.|\.modules_to_save\.", name), name
    for layer in (0, 1):
        for proj in ("query", "value"):
            assert any(f"layer.{layer}.attention.self.{proj}.lora_A" in n for n in names), (layer, proj)
    assert not any(".key.lora" in n for n in names)  # 'auto' = the paper's query and value
    assert any("classifier.modules_to_save" in n for n in names) and any("pooler.modules_to_save" in n for n in names)
    # causal LM: adapters only; the (tied) output embedding stays frozen
    lm = apply_peft(tiny_causal_lm(), get_recipe("lora-clm"))
    assert _trainable(lm) and all(".lora_" in n for n in _trainable(lm))


def test_target_modules_auto_all_linear_and_explicit():
    bert, llama = tiny_model("cls"), tiny_causal_lm()
    assert resolve_target_modules(bert, "auto") == ["query", "value"]
    assert resolve_target_modules(llama, "auto") == ["q_proj", "v_proj"]
    assert resolve_target_modules(llama, "all-linear") == "all-linear"
    assert resolve_target_modules(bert, "query, key") == ["query", "key"]
    with pytest.raises(
        ConfigError,
        match=r"lora_target_modules='q_proj': the model has no module \['q_proj'\]; it has \[.*'query'.*'value'",
    ):
        resolve_target_modules(bert, "q_proj")


def test_adapter_and_merged_weights_reload_with_equal_outputs(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    model = apply_peft(tiny_model("cls", num_labels=3), get_recipe("lora-cls"))
    with torch.no_grad():  # B starts at zero: give the adapters and the head a non-trivial value
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.1)
    model.eval()
    batch = {"input_ids": torch.randint(1, 1000, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    with torch.no_grad():
        logits = model(**batch).logits
        base_logits = tiny_model("cls", num_labels=3)(**batch).logits
    assert not torch.allclose(logits, base_logits)
    model.save_pretrained(tmp_path / "adapter")
    assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in (tmp_path / "adapter").iterdir()}
    reloaded = PeftModel.from_pretrained(tiny_model("cls", num_labels=3), tmp_path / "adapter").eval()
    merged_dir = save_merged(model, tmp_path)
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, logits)
        torch.testing.assert_close(merged(**batch).logits, logits, rtol=1e-5, atol=1e-5)
    assert any(".lora_" in n for n, _ in model.named_parameters())  # merging a copy left the trainer's model alone


# ------------------------------------------------------------------------------------------------
# Through scripts/finetune.py


def _args(tiny_base, cls_files, output_dir, *extra):
    return tiny_job_argv(
        "lora-cls", tiny_base, cls_files, output_dir, "--per_device_train_batch_size", "8", "--plots", "false", *extra
    )


def _lrs(output_dir):
    return log_history_lrs(json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"])


def test_lora_job_saves_the_adapter_merges_and_resumes_exactly(tiny_base, cls_files, tmp_path):
    extra = ("--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "10")
    full = tmp_path / "full"
    assert main(_args(tiny_base, cls_files, full, *extra, "--merge_adapter", "true")) == 0
    assert (full / "adapter_model.safetensors").is_file() and (full / "adapter_config.json").is_file()
    assert not (full / "model.safetensors").exists()  # the frozen base is not copied
    assert (full / "merged" / "model.safetensors").is_file() and (full / "merged" / "config.json").is_file()
    plan = on_tiny(get_recipe("lora-cls", warmup="20%", num_train_epochs=1)).plan(Timeline(96, 8, num_train_epochs=1))
    reference = _lrs(full)
    assert sorted(reference) == list(range(1, plan.total_steps + 1))
    for step, lr in reference.items():
        assert lr == pytest.approx(expected_lr(plan.learning_rate, plan.schedule, step), rel=1e-9)
    recorded = json.loads((full / "plan.json").read_text())
    assert 0 < recorded["trainable_parameters"] < 10_000  # adapters + head of a ~1M-parameter model

    final = load_file(full / "adapter_model.safetensors")
    stop = 2  # mid-warmup (warmup is 3 of 12 steps)
    assert plan.total_steps == 12 and plan.warmup_steps == 3
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / f"checkpoint-{stop}", resumed / f"checkpoint-{stop}")
    assert main(_args(tiny_base, cls_files, resumed, *extra)) == 0  # detects the checkpoint
    later = {s: lr for s, lr in _lrs(resumed).items() if s > stop}
    assert sorted(later) == list(range(stop + 1, plan.total_steps + 1))
    for step, lr in later.items():
        assert lr == pytest.approx(reference[step], rel=1e-12), step
    weights = load_file(resumed / "adapter_model.safetensors")
    assert weights.keys() == final.keys() and any("lora_B" in k for k in final)
    for name, tensor in final.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-6)


def test_lora_clm_runs_end_to_end_on_a_text_file(tmp_path):
    from ftrecipes.testing import save_tiny_pretrained

    model = save_tiny_pretrained(tmp_path / "tiny-lm", "clm")
    text = tmp_path / "train.txt"
    text.write_text("\n".join(f"the {w} market rose as the team won the cup and the chip shipped" for w in range(200)))
    out = tmp_path / "clm"
    assert (
        main(
            [
                "--recipe",
                "lora-clm",
                "--model_name_or_path",
                model,
                "--train_file",
                str(text),
                "--output_dir",
                str(out),
                "--max_steps",
                "3",
                "--max_seq_length",
                "32",
                "--per_device_train_batch_size",
                "4",
                "--disable_tqdm",
                "true",
                "--plots",
                "false",
                "--save_strategy",
                "no",
            ]
        )
        == 0
    )
    config = json.loads((out / "adapter_config.json").read_text())
    assert (
        config["task_type"] == "CAUSAL_LM"
        and sorted(config["target_modules"]) == ["q_proj", "v_proj"]
        and config["r"] == 8
    )
    assert json.loads((out / "eval_results.json").read_text())["eval_perplexity"] > 1.0


def test_users_own_trainer_applies_a_lora_recipe(tmp_path):
    """A stock ``transformers.Trainer`` (as in scripts/examples/trainer_integration.py): apply_peft, then the
    recipe's TrainingArguments and optimizer/scheduler pair. Only adapters and head move; LRs follow the plan."""
    from transformers import Trainer

    from ftrecipes.testing import synthetic_batches
    from ftrecipes.training.arguments import recipe_training_args
    from ftrecipes.training.stock import recipe_optimizers

    recipe = get_recipe("lora-cls", max_steps=6, per_device_train_batch_size=8, eval_strategy="no")
    rows = [{k: v[i] for k, v in b.items()} for b in synthetic_batches(4, 12, 8) for i in range(12)]
    model = apply_peft(tiny_model("cls", vocab_size=1000), recipe)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    args = recipe_training_args(
        recipe, str(tmp_path / "mine"), logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, optimizers=recipe_optimizers(recipe, model, args, rows)
    )
    trainer.train()
    plan = on_tiny(recipe).plan(Timeline(len(rows), 8, max_steps=6))  # recipe_optimizers applies the width rule
    lrs = log_history_lrs(trainer.state.log_history)
    assert sorted(lrs) == list(range(1, 7))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(plan.learning_rate, plan.schedule, step), rel=1e-9)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved == {n for n in moved if ".lora_B." in n or ".lora_A." in n or ".modules_to_save." in n}
    assert any(".lora_B." in n for n in moved)


def test_lr_range_test_uses_the_lora_prior():
    prior = prior_for_recipe(get_recipe("lora-cls"))
    assert (prior.low, prior.high) == (1e-4, 5e-4) and "lr_prior" in prior.source
    assert (prior_for_recipe(get_recipe("cls")).low, prior_for_recipe(get_recipe("cls")).high) == (2e-5, 2e-4)


# ------------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, output_dir untouched


def _bad_cases(monkeypatch):
    return {
        "target modules the model lacks": (
            ["--lora_target_modules", "q_proj,v_proj"],
            r"lora_target_modules='q_proj,v_proj': the model has no module \['q_proj', 'v_proj'\]; it has \[.*'query'",
        ),
        "rank 0": (["--lora_r", "0"], r"lora_r=0: the LoRA rank must be a positive integer"),
        "negative rank": (["--lora_r", "-4"], r"lora_r=-4: the LoRA rank must be a positive integer"),
        "unknown method": (
            ["--peft", "lorra"],
            r"peft='lorra': is not one of \['none', 'lora', 'qlora'\]; did you mean 'lora'",
        ),
        "merge without adapters": (
            ["--peft", "none", "--merge_adapter", "true"],
            r"--merge_adapter=True: there is no adapter to merge",
        ),
        "qlora without CUDA": (
            ["--peft", "qlora"],
            r"peft='qlora': the 4-bit NF4 base \(bitsandbytes\) needs a CUDA GPU",
        ),
        "bad prior": (["--lr_prior", "5e-4,1e-4"], r"lr_prior=.*must be \[low, high\] with 0 < low <= high"),
    }


def test_every_bad_input_exits_2_with_one_line(tiny_base, cls_files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the QLoRA case on a GPU machine too
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    cases = _bad_cases(monkeypatch)
    for name, (extra, pattern) in cases.items():
        capsys.readouterr()
        code = main(_args(tiny_base, cls_files, out, *extra))
        err = [
            line
            for line in capsys.readouterr().err.strip().splitlines()
            if "error" in line.lower() or "Traceback" in line
        ]
        assert code == 2, name
        assert len(err) == 1 and err[0].startswith("finetune.py: error: "), (name, err)
        assert re.search(pattern, err[0]), (name, err[0])
        assert sorted(p.name for p in out.iterdir()) == ["keep.txt"], name


def test_lora_without_peft_installed_names_the_extra(tiny_base, cls_files, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "peft" else real(name, *a, **k)
    )
    out = tmp_path / "out"
    assert main(_args(tiny_base, cls_files, out)) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "finetune.py: error: peft='lora': needs the peft library, which is not installed; pip install 'ftrecipes[peft]'"
    )
    assert not out.exists()


def test_a_model_wrapped_with_the_recipes_own_adapter_is_not_reported_as_someone_elses(tmp_path, caplog):
    """The main job builds its model with the recipe's LoRA (build_model -> wrap_model) and hands it to
    RecipeTrainer: no line saying the recipe's LoRA settings were not applied. A PeftModel with other settings
    still gets that line."""
    from ftrecipes.models.lora import carries_recipe_adapter
    from ftrecipes.training.arguments import recipe_training_args
    from ftrecipes.training.trainer import RecipeTrainer

    recipe = get_recipe("lora-cls", max_steps=2, per_device_train_batch_size=8, eval_strategy="no")
    own = apply_peft(tiny_model("cls", vocab_size=1000), recipe)
    other = apply_peft(tiny_model("cls", vocab_size=1000), recipe.replace(lora_r=4))
    assert carries_recipe_adapter(own, recipe) and not carries_recipe_adapter(other, recipe)
    assert not carries_recipe_adapter(own, recipe.replace(lora_alpha=32))
    assert not carries_recipe_adapter(own, recipe.replace(lora_target_modules="key"))
    assert not carries_recipe_adapter(tiny_model("cls", vocab_size=1000), recipe)  # no adapter at all
    args = recipe_training_args(recipe, str(tmp_path), save_strategy="no", report_to="none", disable_tqdm=True)
    not_applied = "the recipe's LoRA settings (r=8, lora_alpha=16"
    with caplog.at_level("INFO", logger="ftrecipes.training.trainer"):
        RecipeTrainer(model=own, args=args, recipe=recipe)
    assert not_applied not in caplog.text and "already carries the recipe's LoRA (r=8" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="ftrecipes.training.trainer"):
        RecipeTrainer(model=other, args=args, recipe=recipe)
    assert f"{not_applied}, lora_dropout=0.0, target_modules='auto') are not applied" in caplog.text


def test_the_rule_reads_the_alpha_of_the_adapter_that_trains(tmp_path, caplog):
    """A caller's PeftModel with lora_alpha 32 trains at half the peak of the recipe's alpha 16 (the LoRA peak goes
    as 1 / alpha); the recipe's own settings stay what it states, and a line says whose alpha the rule read."""
    from ftrecipes.training.arguments import recipe_training_args
    from ftrecipes.training.trainer import RecipeTrainer

    recipe = get_recipe("lora-cls", max_steps=2, per_device_train_batch_size=8, eval_strategy="no")
    peaks = {}
    for alpha in (16, 32):
        model = apply_peft(tiny_model("cls", vocab_size=1000), recipe.replace(lora_alpha=alpha))
        args = recipe_training_args(recipe, str(tmp_path / str(alpha)), report_to="none", disable_tqdm=True)
        with caplog.at_level("INFO", logger="ftrecipes"):
            trainer = RecipeTrainer(model=model, args=args, recipe=recipe)
        peaks[alpha] = trainer.args.learning_rate
        assert (trainer.recipe.lora_r, trainer.recipe.lora_alpha) == (8, 16)
        assert trainer.run_info["peak_rule"]["adaptation"] == f"LoRA r 8 alpha {alpha}"
    assert peaks[32] == pytest.approx(peaks[16] / 2, rel=1e-12)
    assert "the peak-LR rule reads the adapter that trains (r=8, lora_alpha=32), not the recipe's" in caplog.text


def test_the_stock_trainer_path_reads_the_alpha_of_the_adapter_it_is_given(tmp_path):
    """recipe_optimizers (a stock Trainer's optimizer and scheduler) resolves the rule on the PeftModel it is
    handed: lora_alpha 32 trains at half the peak of the recipe's 16."""
    from ftrecipes.testing import synthetic_batches
    from ftrecipes.training.arguments import recipe_training_args
    from ftrecipes.training.stock import recipe_optimizers

    recipe = get_recipe("lora-cls", max_steps=2, per_device_train_batch_size=8, eval_strategy="no")
    rows = [{k: v[i] for k, v in b.items()} for b in synthetic_batches(2, 12, 8) for i in range(8)]
    peaks = {}
    for alpha in (16, 32):
        model = apply_peft(tiny_model("cls", vocab_size=1000), recipe.replace(lora_alpha=alpha))
        args = recipe_training_args(recipe, str(tmp_path / str(alpha)), report_to="none", disable_tqdm=True)
        optimizer, _ = recipe_optimizers(recipe, model, args, rows)
        peaks[alpha] = max(group["initial_lr"] for group in optimizer.param_groups)
    assert peaks[32] == pytest.approx(peaks[16] / 2, rel=1e-12)


def test_a_full_fine_tuning_recipe_handed_a_lora_model_trains_it_at_the_adapters_peak(tmp_path, caplog):
    """cls (full fine-tuning) with a caller's LoRA PeftModel: only the adapter trains, so the rule gives LoRA's
    peak (20x at lora_alpha 16, as lora-cls does) and one line says so, instead of full fine-tuning's peak."""
    from ftrecipes.training.arguments import recipe_training_args
    from ftrecipes.training.trainer import RecipeTrainer

    lora = get_recipe("lora-cls", max_steps=2, per_device_train_batch_size=8, eval_strategy="no")
    peaks = {}
    for name in ("cls", "lora-cls"):
        recipe = get_recipe(name, max_steps=2, per_device_train_batch_size=8, eval_strategy="no")
        model = apply_peft(tiny_model("cls", vocab_size=1000), lora)
        args = recipe_training_args(recipe, str(tmp_path / name), report_to="none", disable_tqdm=True)
        with caplog.at_level("INFO", logger="ftrecipes"):
            trainer = RecipeTrainer(model=model, args=args, recipe=recipe)
        peaks[name] = trainer.args.learning_rate
        assert trainer.run_info["peak_rule"]["adaptation"] == "LoRA r 8 alpha 16"
    assert peaks["cls"] == pytest.approx(peaks["lora-cls"], rel=1e-12)
    assert "full fine-tuning, but the model trains a LoRA adapter (r=8, lora_alpha=16)" in caplog.text
