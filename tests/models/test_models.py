"""The small CNN and the image path of the main job (cnn-step on the bundled digits)."""

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

from ftrecipes.data.tasks.image_classification import prepare_image_classification
from ftrecipes.job.run import main
from ftrecipes.models.cnn import SmallCNNConfig, SmallCNNForImageClassification

torch.set_num_threads(1)


def test_forward_returns_loss_and_logits():
    model = SmallCNNForImageClassification(SmallCNNConfig(num_labels=10))
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    out = model(pixel_values=x, labels=y)
    assert out.logits.shape == (4, 10) and out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert 10_000 < sum(p.numel() for p in model.parameters()) < 50_000
    assert model(pixel_values=x).loss is None


def test_save_and_load_through_the_auto_classes(tmp_path):
    model = SmallCNNForImageClassification(
        SmallCNNConfig(num_labels=3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    )
    model.eval()
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "ftrecipes-small-cnn"
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, SmallCNNForImageClassification) and loaded.config.id2label[2] == "c"
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(loaded(pixel_values=x).logits, model(pixel_values=x).logits)


def test_prepare_digits():
    from ftrecipes.data.loading import load_raw_datasets

    prepared = prepare_image_classification(load_raw_datasets("digits", seed=0))
    assert prepared.label_list == [str(i) for i in range(10)]
    batch = prepared.data_collator([prepared.datasets["train"][i] for i in range(5)])
    assert batch["pixel_values"].shape == (5, 1, 8, 8) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.int64 and set(prepared.datasets["train"].column_names) == {
        "pixel_values",
        "labels",
    }


def test_cnn_step_trains_through_the_main_job(tmp_path):
    out = tmp_path / "cnn"
    code = main(
        [
            "--recipe",
            "cnn-step",
            "--output_dir",
            str(out),
            "--max_steps",
            "10",
            "--max_train_samples",
            "256",
            "--per_device_train_batch_size",
            "32",
            "--eval_strategy",
            "no",
            "--save_strategy",
            "no",
            "--plots",
            "false",
            "--logging_steps",
            "1",
            "--disable_tqdm",
            "true",
        ]
    )
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_f1", "eval_loss"} <= set(results) and results["eval_samples"] == 180
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "ftrecipes-small-cnn" and len(config["id2label"]) == 10
    state = json.loads((out / "trainer_state.json").read_text())
    lrs = [e["learning_rate"] for e in state["log_history"] if "learning_rate" in e]
    # SGD step decay at 30/60/90% of 10 steps (linear batch scaling: 0.1 * 32/128 = 0.025)
    assert lrs[0] == pytest.approx(0.025) and lrs[-1] < lrs[0]
    reloaded = AutoModelForImageClassification.from_pretrained(out)
    assert isinstance(reloaded, SmallCNNForImageClassification)


def test_image_recipe_with_a_text_model_is_rejected_cleanly(tmp_path, capsys):
    code = main(
        ["--recipe", "cnn-step", "--output_dir", str(tmp_path / "x"), "--dataset_name", "bbc_news", "--max_steps", "1"]
    )
    assert code == 2
    assert "finetune.py: error: --image_column_name='pixel_values'" in capsys.readouterr().err
