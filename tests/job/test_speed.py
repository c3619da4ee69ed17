"""Work the main job does not do twice: the final evaluation reuses the one Trainer already ran on
the weights in memory (the best checkpoint's under load_best_model_at_end)."""

from __future__ import annotations

import json

import pytest

from ftrecipes.job.run import main
from ftrecipes.training.trainer import RecipeTrainer


@pytest.mark.parametrize("load_best", ["true", "false"])
def test_final_evaluation_is_not_run_twice(tiny_base, cls_files, tmp_path, monkeypatch, load_best):
    calls = []
    evaluate = RecipeTrainer.evaluate

    def counting(self, *args, **kwargs):
        calls.append(self.state.global_step)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(RecipeTrainer, "evaluate", counting)
    out = tmp_path / "run"
    code = main(
        [
            "--recipe",
            "cls",
            "--model_name_or_path",
            tiny_base,
            "--train_file",
            cls_files["train"],
            "--validation_file",
            cls_files["validation"],
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "2",
            "--max_seq_length",
            "32",
            "--precision",
            "fp32",
            "--load_best_model_at_end",
            load_best,
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--plots",
            "false",
        ]
    )
    assert code == 0
    steps_per_epoch = 96 // 16
    assert calls == [steps_per_epoch, 2 * steps_per_epoch]  # one evaluation per epoch, none after training
    state = json.loads((out / "trainer_state.json").read_text())
    scored = state["best_global_step"] if load_best == "true" else state["global_step"]
    entry = next(e for e in state["log_history"] if e.get("step") == scored and "eval_loss" in e)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_accuracy"] == entry["eval_accuracy"] and results["eval_loss"] == entry["eval_loss"]
    assert results["eval_samples"] == 24
