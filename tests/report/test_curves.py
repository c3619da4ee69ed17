"""Training-curve PNGs from a real run's output_dir, and the plot-run command's handling of bad input."""

from __future__ import annotations

import json

import pytest
from monitor_helpers import make_trainer, tiny_model

from ftrecipes import get_recipe
from ftrecipes.report.curves import CURVES_FILE, load_run, main_plot_run, plot_run
from ftrecipes.training.callbacks import add_monitoring

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run with a spike after warmup, evaluation every 6 steps and save_state()."""
    out = tmp_path_factory.mktemp("run")
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=12)
    trainer = make_trainer(out, recipe, model=tiny_model({14: 5.0}), max_steps=24, eval_strategy="steps", eval_steps=6)
    add_monitoring(trainer)
    trainer.train()
    trainer.save_state()
    return out


def _assert_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 500 and image.shape[1] > 500 and image.shape[2] in (3, 4)


def test_load_run_reads_every_file(run_dir):
    run = load_run(str(run_dir))
    assert run.series("learning_rate")[0] == list(range(1, 25))
    assert run.validation_metrics() == ["eval_accuracy"]
    assert [s["step"] for s in run.spikes] == [14]
    assert run.schedule["transitions"][0]["kind"] == "warmup_end" and run.divergence is None


def test_plot_run_writes_a_valid_png(run_dir):
    path = plot_run(str(run_dir))
    assert path.endswith(CURVES_FILE)
    _assert_png(run_dir / CURVES_FILE)


def test_command_writes_where_asked(run_dir, tmp_path, capsys):
    target = tmp_path / "sub" / "curves.png"
    assert main_plot_run([str(run_dir), "--output", str(target)]) == 0
    _assert_png(target)
    assert capsys.readouterr().out.strip() == str(target)


def test_plots_from_trainer_state_alone(tmp_path):
    """Only trainer_state.json (a plain Trainer run, no monitoring files), including a NaN loss."""
    history = [{"loss": 0.7 - 0.01 * s, "grad_norm": 1.0, "learning_rate": 1e-3, "step": s} for s in range(1, 11)]
    history[4]["loss"] = float("nan")
    history.append({"eval_loss": 0.6, "eval_f1": 0.5, "eval_runtime": 0.1, "step": 10})
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    assert main_plot_run([str(tmp_path)]) == 0
    _assert_png(tmp_path / CURVES_FILE)
    assert load_run(str(tmp_path)).validation_metrics() == ["eval_f1"]


def test_falls_back_to_the_newest_checkpoint(tmp_path):
    for step in (5, 10):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        history = [{"loss": 1.0, "learning_rate": 1e-3, "step": s} for s in range(1, step + 1)]
        (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    assert load_run(str(tmp_path)).series("loss")[0][-1] == 10


@pytest.mark.parametrize("make", ["missing", "empty", "broken"])
def test_bad_output_dir_is_one_line_and_exit_2(tmp_path, capsys, make):
    target = tmp_path / "nope"
    if make != "missing":
        target.mkdir()
    if make == "broken":
        (target / "trainer_state.json").write_text("{not json")
    assert main_plot_run([str(target)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("ftrecipes plot-run: error: OUTPUT_DIR=")
        and "Traceback" not in captured.err
    )
    assert not (target / CURVES_FILE).exists()
