"""The main job, smoke-run in-process (and under torchrun) on a tiny config-built model.

What must hold: the LR at every optimizer step equals the recipe's schedule; the trace is
identical for (1 process, batch 8), (2 processes, batch 4) and (1 process, batch 4 x accumulation 2);
resume is exact; bad input exits 2 with one line and leaves output_dir as it was.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import LOOP, PYTHON, REPO, free_port, on_tiny
from safetensors.torch import load_file

from ftrecipes import Timeline, get_recipe
from ftrecipes.job.run import main
from ftrecipes.training.stock import expected_lr, log_history_lrs

N_TRAIN = 96


def base_args(tiny_base, cls_files, output_dir, *extra):
    return [
        "--recipe",
        "cls",
        "--model_name_or_path",
        tiny_base,
        "--train_file",
        cls_files["train"],
        "--validation_file",
        cls_files["validation"],
        "--output_dir",
        str(output_dir),
        "--num_train_epochs",
        "2",
        "--warmup",
        "20%",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--max_seq_length",
        "32",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--plots",
        "false",
        *extra,
    ]


def logged_lrs(output_dir) -> dict[int, float]:
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return log_history_lrs(state["log_history"])


def planned(batch, processes=1, accumulation=1, **overrides):
    recipe = on_tiny(get_recipe("cls", warmup="20%", num_train_epochs=2, **overrides))  # cls's width rule at hidden 32
    timeline = Timeline(N_TRAIN, batch, processes, accumulation, num_train_epochs=2)
    return recipe.plan(timeline)


def test_lr_at_every_step_equals_the_recipe_schedule(tiny_base, cls_files, tmp_path):
    assert main(base_args(tiny_base, cls_files, tmp_path / "run", "--per_device_train_batch_size", "8")) == 0
    plan = planned(8)
    lrs = logged_lrs(tmp_path / "run")
    assert sorted(lrs) == list(range(1, plan.total_steps + 1)) == list(range(1, 25))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(plan.learning_rate, plan.schedule, step), rel=1e-9), step
    # warmup then cosine to 10% of the peak: the last step trains just above the floor
    assert lrs[1] == pytest.approx(plan.learning_rate / plan.warmup_steps)
    assert lrs[plan.warmup_steps] == pytest.approx(plan.learning_rate)
    out = tmp_path / "run"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "train_results.json",
        "eval_results.json",
        "all_results.json",
        "recipe.yaml",
        "plan.json",
    ):
        assert (out / name).is_file(), name
    state = json.loads((out / "trainer_state.json").read_text())
    assert all({"loss", "grad_norm", "learning_rate"} <= set(e) for e in state["log_history"] if "loss" in e)
    resolved = get_recipe(str(out / "recipe.yaml"))
    assert resolved.learning_rate == pytest.approx(plan.learning_rate) and resolved.warmup == "20%"
    assert resolved.reference_global_batch_size == 8  # rerunning the file at batch 8 trains at the same peak
    assert resolved.plan(Timeline(N_TRAIN, 8, num_train_epochs=2)).learning_rate == pytest.approx(plan.learning_rate)
    recorded = json.loads((out / "plan.json").read_text())
    pick = 5e-5 * 768 / 32  # cls's width rule for the tiny BERT (hidden 32), at the reference batch 16
    assert (
        recorded["lr_scaling"]["learning_rate_before"] == pytest.approx(pick)
        and recorded["lr_scaling"]["rule"] == "sqrt"
    )
    assert recorded["learning_rate"] == pytest.approx(pick * 0.5**0.5)
    assert recorded["peak_rule"]["message"].startswith(
        "peak 8.49e-4: cls rule for hidden 32, full fine-tuning, batch 8"
    )


@pytest.mark.multiprocess
def test_trace_identical_across_processes_and_accumulation(tiny_base, cls_files, tmp_path):
    """(1 proc, batch 8) == (1 proc, batch 4, accumulation 2) == the hand-written Accelerate loop on
    2 processes via torchrun + gloo (batch 4), whose prepared scheduler accelerate steps twice per update.
    Two Trainer processes (one node uninterrupted, and two nodes with a preemption) are checked against one process,
    group by group, in test_multinode.py."""
    assert main(base_args(tiny_base, cls_files, tmp_path / "single", "--per_device_train_batch_size", "8")) == 0
    assert (
        main(
            base_args(
                tiny_base,
                cls_files,
                tmp_path / "accum",
                "--per_device_train_batch_size",
                "4",
                "--gradient_accumulation_steps",
                "2",
            )
        )
        == 0
    )
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    loop = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        LOOP,
        *base_args(tiny_base, cls_files, tmp_path / "loop", "--per_device_train_batch_size", "4"),
    ]
    result = subprocess.run(loop, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    loop_trace = {int(k): v for k, v in json.loads((tmp_path / "loop" / "lr_trace.json").read_text()).items()}

    # The loss of the same global batch has the same scale with accumulation (a head that drops
    # num_items_in_batch would otherwise log, and train on, twice the loss: transformers#47688).
    losses = [
        [
            e["loss"]
            for e in json.loads((tmp_path / name / "trainer_state.json").read_text())["log_history"]
            if "loss" in e
        ]
        for name in ("single", "accum")
    ]
    assert 0.9 < sum(losses[1]) / sum(losses[0]) < 1.1

    traces = [logged_lrs(tmp_path / name) for name in ("single", "accum")] + [loop_trace]
    assert len(traces[0]) == planned(8).total_steps
    for trace in traces[1:]:
        assert trace.keys() == traces[0].keys()
        for step in traces[0]:
            assert trace[step] == pytest.approx(traces[0][step], rel=1e-12)


# scripts/finetune.py, reporting (on Linux, one /proc entry per thread) the gloo threads still alive
# when main() has returned.
FINETUNE_REPORTING_GLOO_THREADS = """
import os, sys
from ftrecipes.job.run import main
code = main()
if os.path.isdir("/proc/self/task"):
    names = []
    for task in os.listdir("/proc/self/task"):
        try:
            names.append(open(f"/proc/self/task/{task}/comm").read().strip())
        except OSError:  # a thread that has just ended
            pass
    print(
        f"process {os.environ['RANK']} leaves main() with gloo threads: {sorted(n for n in names if 'gloo' in n)}",
        file=sys.stderr,
    )
sys.exit(code)
"""


@pytest.mark.multiprocess
def test_learning_rate_auto_runs_once_and_every_rank_trains_at_its_choice(tiny_base, cls_files, tmp_path):
    """``--learning_rate auto`` under torchrun (2 gloo processes): the range test runs once, on process 0,
    at the run's global batch; both processes train at the peak it chose (broadcast, not recomputed per
    rank); the choice, bounded by the recipe's prior, is recorded with its reason and its plots.

    And the process group is gone, gloo threads included, when ``main()`` returns: left to the garbage
    collector, it went on whichever thread collected it, and on a daemon thread at interpreter shutdown
    that aborted the process ("terminate called without an active exception")."""
    out = tmp_path / "auto-ddp"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")]
    )  # the script below is not in scripts/
    on_linux = Path("/proc/self/task").is_dir()
    script = tmp_path / "finetune_reporting_gloo_threads.py"
    script.write_text(FINETUNE_REPORTING_GLOO_THREADS)
    cmd = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        str(script),
        *base_args(
            tiny_base,
            cls_files,
            out,
            "--per_device_train_batch_size",
            "4",
            "--max_steps",
            "2",
            "--learning_rate",
            "auto",
            "--save_strategy",
            "no",
        ),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    if on_linux:
        for rank in (0, 1):
            assert f"process {rank} leaves main() with gloo threads: []" in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("--learning_rate auto: LR range test:") == 1  # one test, on process 0
    chosen = dict(
        re.findall(
            r"process (\d) of 2 trains at peak ([0-9.e+-]+) \(range test on process 0, cpu(?::\d+)?\)", result.stderr
        )
    )
    assert sorted(chosen) == ["0", "1"] and chosen["0"] == chosen["1"], result.stderr[-3000:]
    finder = json.loads((out / "lr_finder.json").read_text())
    assert finder["global_batch_size"] == 8 and finder["accumulation_steps"] == 2 and finder["device"].startswith("cpu")
    assert float(chosen["0"]) == finder["recommended"]
    assert (out / "lr_finder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recorded = json.loads((out / "plan.json").read_text())["learning_rate_source"]
    assert recorded["source"] == "lr-find" and recorded["reason"] and recorded["learning_rate"] == finder["recommended"]
    low, high = finder["prior"]["low"], finder["prior"]["high"]
    assert low <= recorded["learning_rate"] <= high  # a suggestion outside the fine-tuning prior is pulled back into it
    # the prior is the one around cls's width-rule pick for hidden 32 (1.2e-3), sqrt-scaled from batch 16 to 8
    assert (low, high) == pytest.approx((1.2e-3 / 2.5 * 0.5**0.5, 1.2e-3 * 2.5 * 0.5**0.5))
    rule = json.loads((out / "plan.json").read_text())["peak_rule"]["message"]
    assert (
        rule.startswith("peak 8.49e-4: cls rule for hidden 32")
        and f"--learning_rate auto: the run trains at the range test's {recorded['learning_rate']:.3g}" in rule
    )
    lrs = logged_lrs(out)
    assert max(lrs.values()) == pytest.approx(recorded["learning_rate"])  # the run trained with what the finder chose


def test_resume_mid_warmup_and_mid_decay_is_exact(tiny_base, cls_files, tmp_path):
    extra = (
        "--per_device_train_batch_size",
        "8",
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
        "--save_total_limit",
        "10",
    )
    full = tmp_path / "full"
    assert main(base_args(tiny_base, cls_files, full, *extra)) == 0
    reference = logged_lrs(full)
    final = load_file(full / "model.safetensors")
    warmup_steps = planned(8).warmup_steps
    for stop in (4, 12):  # 4 < warmup (5 steps): mid-warmup; 12: mid-decay
        assert (stop < warmup_steps) == (stop == 4)
        resumed = tmp_path / f"resumed-{stop}"
        resumed.mkdir()
        shutil.copytree(full / f"checkpoint-{stop}", resumed / f"checkpoint-{stop}")
        assert main(base_args(tiny_base, cls_files, resumed, *extra)) == 0  # detects the checkpoint
        lrs = logged_lrs(resumed)
        later = {s: lr for s, lr in lrs.items() if s > stop}
        assert sorted(later) == list(range(stop + 1, 25))
        for step, lr in later.items():
            assert lr == pytest.approx(reference[step], rel=1e-12), (stop, step)
        weights = load_file(resumed / "model.safetensors")
        for name, tensor in final.items():
            torch.testing.assert_close(weights[name], tensor, rtol=1e-4, atol=1e-6)


def test_bundled_data_path_runs_end_to_end(tiny_base, tmp_path):
    """No data flags: the recipe's bundled BBC News (its own held-out split), tiny model, small budget."""
    out = tmp_path / "bbc"
    code = main(
        [
            "--recipe",
            "cls",
            "--model_name_or_path",
            tiny_base,
            "--output_dir",
            str(out),
            "--max_train_samples",
            "48",
            "--max_eval_samples",
            "16",
            "--max_steps",
            "3",
            "--max_seq_length",
            "32",
            "--disable_tqdm",
            "true",
        ]
    )
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_samples"] == 16 and 0.0 <= results["eval_accuracy"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["business", "entertainment", "politics", "sports", "tech"]


def test_token_classification_on_bundled_ner(tiny_base, tmp_path):
    out = tmp_path / "ner"
    code = main(
        [
            "--recipe",
            "token-cls",
            "--model_name_or_path",
            tiny_base,
            "--output_dir",
            str(out),
            "--max_train_samples",
            "48",
            "--max_eval_samples",
            "16",
            "--max_steps",
            "3",
            "--max_seq_length",
            "32",
            "--disable_tqdm",
            "true",
        ]
    )
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_precision", "eval_recall", "eval_f1"} <= set(results)
    assert len(json.loads((out / "config.json").read_text())["id2label"]) == 21


def test_causal_lm_on_a_text_file(tmp_path):
    from ftrecipes.testing import save_tiny_pretrained

    model = save_tiny_pretrained(tmp_path / "tiny-lm", "clm")
    text = tmp_path / "train.txt"
    text.write_text("\n".join(f"the {w} market rose as the team won the cup and the chip shipped" for w in range(200)))
    out = tmp_path / "clm"
    code = main(
        [
            "--recipe",
            "clm",
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
        ]
    )
    assert code == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_perplexity"] > 1.0


# ---------------------------------------------------------------------------------------------
# Bad input (exit 2, one line naming the field, output_dir left as it was): tests/job/test_bad_input.py


def test_help_lists_recipe_model_data_and_training_flags(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    for flag in (
        "--recipe",
        "--model_name_or_path",
        "--dataset_name",
        "--train_file",
        "--text_column_name",
        "--max_seq_length",
        "--max_train_samples",
        "--learning_rate",
        "--lr_scheduler_type",
        "--lr_scheduler_kwargs",
        "--warmup",
        "--min_lr_rate",
        "--per_device_train_batch_size",
        "--gradient_accumulation_steps",
        "--bf16",
        "--resume_from_checkpoint",
        "--output_dir",
    ):
        assert flag in help_text, flag


def test_trainer_integration_example_follows_the_recipe(tiny_base, tmp_path):
    """scripts/examples/trainer_integration.py: a stock Trainer with optimizers=recipe_optimizers(...)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "trainer_integration", REPO / "scripts" / "examples" / "trainer_integration.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "mine"
    assert (
        example.main(
            [
                "--recipe",
                "one-cycle",
                "--model_name_or_path",
                tiny_base,
                "--max_steps",
                "20",
                "--max_train_samples",
                "64",
                "--output_dir",
                str(out),
            ]
        )
        == 0
    )
    recipe = get_recipe("one-cycle", max_steps=20)
    plan = recipe.plan(Timeline(64, recipe.per_device_train_batch_size, max_steps=20))
    lrs = logged_lrs(out)
    assert sorted(lrs) == [1, 10, 20]
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(plan.learning_rate, plan.schedule, step), rel=1e-9)


def write_regression_csv(path: Path, n: int, seed: int) -> Path:
    """Rows of 4-10 words; the target is 5x the share of 'good' words (a learnable STS-like score)."""
    import csv
    import random

    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence1", "sentence2", "label"])
        for _ in range(n):
            words = [rng.choice(["good", "fine", "bad", "poor"]) for _ in range(rng.randint(4, 10))]
            share = sum(w in ("good", "fine") for w in words) / len(words)
            writer.writerow(
                [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :]), round(5 * share, 3)]
            )
    return path


def test_regression_end_to_end_on_float_labels(tiny_base, tmp_path):
    """STS-B style: one output, MSE loss (eval_loss equals the metric's MSE), Pearson and Spearman."""
    train = write_regression_csv(tmp_path / "train.csv", 48, seed=1)
    validation = write_regression_csv(tmp_path / "validation.csv", 20, seed=2)
    out = tmp_path / "reg"
    code = main(
        [
            "--recipe",
            "regression",
            "--model_name_or_path",
            tiny_base,
            "--train_file",
            str(train),
            "--validation_file",
            str(validation),
            "--output_dir",
            str(out),
            "--max_steps",
            "4",
            "--per_device_train_batch_size",
            "8",
            "--max_seq_length",
            "16",
            "--save_strategy",
            "no",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--plots",
            "false",
            "--learning_rate",
            "1e-3",
            # fp32: after 4 steps the tiny model's predictions differ below bf16's resolution, so in
            # bf16 they can tie and the correlation is undefined (and eval_loss != MSE to 1e-4).
            "--precision",
            "fp32",
        ]
    )
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert (
        len(config["id2label"]) == 1
        and config["problem_type"] == "regression"
        and config["architectures"] == ["BertForSequenceClassification"]
    )
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_pearson", "eval_spearmanr", "eval_mse"} <= set(results) and results["eval_samples"] == 20
    assert -1 <= results["eval_pearson"] <= 1 and -1 <= results["eval_spearmanr"] <= 1
    assert results["eval_loss"] == pytest.approx(results["eval_mse"], rel=1e-4)  # the head's loss is MSE
