"""The ``ftrecipes`` command: every subcommand exits 0 on good input and 2 (one line, no traceback) on bad."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ftrecipes import list_recipes
from ftrecipes.cli import main, validate_file
from ftrecipes.testing import synthetic_batches, tiny_classifier

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys, **kwargs):
    try:
        code = main(argv, **kwargs)
    except SystemExit as exit_:  # --help and friends
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code, err):
    assert code == 2
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- list


def test_list(capsys):
    code, out, _ = run(["list"], capsys)
    assert code == 0
    for name in list_recipes():
        assert f"\n{name} " in out
    assert "purpose" in out and "Sequence classification with AdamW" in out


# ---------------------------------------------------------------------------------------------- show


def test_show_resolves_sizes_and_explains_defaults(capsys):
    code, out, _ = run(
        [
            "show",
            "cls",
            "--num_examples",
            "2000",
            "--per_device_train_batch_size",
            "16",
            "--num_processes",
            "2",
            "--gradient_accumulation_steps",
            "2",
        ],
        capsys,
    )
    assert code == 0
    # 2000 examples / 16 per device = 125 batches, 63 per process, 32 optimizer steps per epoch, 96 in all.
    assert "global batch          64 = 16 per device x 2 processes x 2 accumulation" in out
    assert "steps per epoch       32" in out and "total steps           96" in out
    assert "warmup steps          5" in out  # ceil(5% of 96)
    # the width rule's peak for the bundled MiniLM (hidden 384), then the sqrt batch rule from 16 to 64
    assert (
        "peak-LR rule          peak 2e-4: cls rule for hidden 384, full fine-tuning, batch 64 (5e-5 x (768/384)^1 at "
        "batch 16, batch-scaled from 1e-4" in out
    )
    assert "peak LR 0.0001 -> 0.0002 (sqrt rule" in out
    assert "the top of BERT's grid" in out  # the recipe file's own comment
    assert (
        "why: Adam's second-moment estimate is unreliable" in out and "[Liu et al. 2020, RAdam" in out
    )  # FIELD_REASONS
    assert "┤" in out  # the terminal chart


def test_show_lr_scaling_flag_and_assumed_size(capsys):
    code, out, _ = run(["show", "cls", "--num_processes", "4", "--lr_scaling", "none"], capsys)
    assert code == 0
    assert "unchanged (no scaling; lr_scaling=none" in out
    assert "assumed" in out and "--num_examples" in out


def test_show_and_plot_take_every_recipe_field_as_train_does(tmp_path, capsys):
    code, out, _ = run(["show", "lora-cls", "--lora_alpha", "32", "--warmup", "10%", "--num_examples", "2000"], capsys)
    assert code == 0
    assert "peak 1e-3: lora-cls rule for hidden 384, LoRA r 8 alpha 32, batch 16" in out  # 10x at alpha 32
    assert "warmup steps          38 ('10%' of training, linear)" in out
    code, out, _ = run(["show", "cls", "--lr_rule_depth_exponent", "1"], capsys)
    assert code == 0 and "peak 2e-4: cls rule for hidden 384, 6 layers, full fine-tuning" in out
    output = tmp_path / "plot.png"
    code, out, _ = run(["plot", "cls", "--lr_scheduler_type", "linear", "--output", str(output)], capsys)
    assert code == 0 and output.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "clss"],
        ["show", "cls", "--num_processes", "0"],
        ["show", "cls", "--per_device_train_batch_size", "many"],
        ["show", "cls", "--lr_scaling", "cubic"],
        ["show", "cls", "--lr_rule_depth_exponent", "9"],
        ["show", "lora-cls", "--lora_alpha", "none"],
        ["plot", "cls", "--lr_scheduler_type", "cosin"],
        ["show"],
        ["bogus"],
    ],
)
def test_show_bad_input(argv, capsys):
    code, _, err = run(argv, capsys)
    assert_user_error(code, err)


# ---------------------------------------------------------------------------------------------- plot


def test_plot_writes_png_and_terminal_chart(tmp_path, capsys):
    import matplotlib.image

    output = tmp_path / "one-cycle.png"
    code, out, _ = run(["plot", "one-cycle", "--num_examples", "1000", "--output", str(output)], capsys)
    assert code == 0
    assert output.read_bytes()[:8] == PNG_MAGIC
    assert matplotlib.image.imread(output).shape[0] > 100
    assert "momentum / beta1" in out  # one-cycle cycles beta1: a second chart
    assert "^ LR peak, end of the rise" in out  # the transition is marked and listed


def test_plot_ascii_and_default_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["plot", "cnn-step", "--num_examples", "1280", "--ascii", "--width", "30"], capsys)
    assert code == 0 and (tmp_path / "cnn-step-schedule.png").is_file()
    assert "#" in out and "┤" not in out
    assert out.count("LR x0.1") == 3  # the three step drops


@pytest.mark.parametrize(
    "argv",
    [
        ["plot", "cls", "--output", "schedule.txt"],
        ["plot", "cls", "--width", "2"],
        ["plot", "nope"],
    ],
)
def test_plot_bad_input(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(argv, capsys)
    assert_user_error(code, err)
    assert not list(tmp_path.iterdir())  # nothing half-written


# ---------------------------------------------------------------------------------------------- validate


@pytest.mark.parametrize("name", list_recipes())
def test_validate_every_shipped_recipe(name, capsys):
    code, out, err = run(["validate", str(REPO / "recipes" / f"{name}.yaml")], capsys)
    assert code == 0, err
    assert out.rstrip().endswith("valid")


def test_validate_reports_every_problem(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "learning_rat: 3e-5\n"  # unknown key (typo)
        "weight_decay: heavy\n"  # wrong type
        "warmup_type: cubic\n"  # not a choice
        "lr_scheduler_type: step\n"
        "lr_scheduler_kwargs: {gama: 0.1, milestones: ['30%']}\n"  # unknown option of 'step'
        "max_grad_norm: -1\n"  # out of range
    )
    code, out, err = run(["validate", str(path)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 5, err
    for field in ("learning_rat", "weight_decay", "warmup_type", "lr_scheduler_kwargs.gama", "max_grad_norm"):
        assert any(f"{field}=" in line for line in lines), field
    assert "did you mean 'learning_rate'" in err
    assert "5 problems" in out
    assert "Traceback" not in err


def test_validate_schedule_errors_found_at_plan_time(tmp_path):
    path = tmp_path / "gamma.yaml"
    path.write_text("lr_scheduler_type: step\nlr_scheduler_kwargs: {gamma: -1}\nwarmup: 2ep\nnum_train_epochs: 1\n")
    problems, _ = validate_file(str(path))
    assert any("warmup=" in p for p in problems)
    assert any("lr_scheduler_kwargs.gamma" in p for p in problems)


def test_validate_notes_learning_rate_outside_prior(tmp_path, capsys):
    path = tmp_path / "hot.yaml"
    path.write_text("learning_rate: 1e-3\n")
    code, out, _ = run(["validate", str(path)], capsys)
    assert code == 0 and "learning_rate 0.001 lies outside the recipe 'hot' prior" in out and "lr_prior" in out


@pytest.mark.parametrize(
    "text", [None, "learning_rate: [1, 2\n", "- a list\n"], ids=["missing", "bad-yaml", "not-a-mapping"]
)
def test_validate_bad_files(text, tmp_path, capsys):
    path = tmp_path / "r.yaml"
    if text is not None:
        path.write_text(text)
    code, _, err = run(["validate", str(path)], capsys)
    assert_user_error(code, err)


# ---------------------------------------------------------------------------------------------- lr-find


def _tiny_components(recipe):
    return {"model": tiny_classifier(), "train_dataloader": synthetic_batches(num_batches=4)}


def test_lr_find_with_an_injected_model(tmp_path, capsys):
    out_dir = tmp_path / "find"
    code, out, err = run(
        [
            "lr-find",
            "--recipe",
            "cls",
            "--num_steps",
            "10",
            "--min_lr",
            "1e-6",
            "--max_lr",
            "1",
            "--output_dir",
            str(out_dir),
            "--no_progress",
        ],
        capsys,
        build_components=_tiny_components,
    )
    assert code == 0, err
    assert (out_dir / "lr_finder.json").is_file()
    assert (out_dir / "lr_finder.png").read_bytes()[:8] == PNG_MAGIC
    assert "recommended learning_rate" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["lr-find", "--num_steps", "2"],
        ["lr-find", "--rule", "valley"],
        ["lr-find", "--min_lr", "1", "--max_lr", "1e-3"],
        ["lr-find", "--prior", "fast"],
        ["lr-find", "--recipe", "nope"],
        ["lr-find", "--not_a_flag", "1"],
    ],
)
def test_lr_find_bad_input(argv, tmp_path, capsys):
    code, _, err = run([*argv, "--output_dir", str(tmp_path / "o")], capsys, build_components=_tiny_components)
    assert_user_error(code, err)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------- plot-run


def test_plot_run_is_delegated(monkeypatch, capsys):
    seen = []
    fake = types.ModuleType("ftrecipes.report.curves")
    fake.main_plot_run = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "ftrecipes.report.curves", fake)
    code, _, _ = run(["plot-run", "runs/cls", "--output", "x.png"], capsys)
    assert code == 0 and seen == [["runs/cls", "--output", "x.png"]]


# ---------------------------------------------------------------------------------------------- process


def test_no_traceback_reaches_stderr_of_a_real_process():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "ftrecipes.cli", "show", "no-such-recipe"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "did you mean" in proc.stderr or "choose one of" in proc.stderr
