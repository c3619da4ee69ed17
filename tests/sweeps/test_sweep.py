"""Sweeps (ftrecipes.sweeps.study): the peak-LR grid, then warmup, on an Optuna study in SQLite.

Tiny config-built model and a small generated data set; each trial is a real run of the main job.
"""

import json
import os
import subprocess
from pathlib import Path

import optuna
import pytest
from conftest import PYTHON, REPO

from ftrecipes.config.errors import ConfigError
from ftrecipes.sweeps import parse as sweep_parse
from ftrecipes.sweeps import report as sweep_report
from ftrecipes.sweeps import study as S

SWEEP = str(REPO / "scripts" / "sweep.py")


def trial_flags(tiny_base, cls_files, *extra):
    return [
        "--model_name_or_path",
        tiny_base,
        "--train_file",
        cls_files["train"],
        "--validation_file",
        cls_files["validation"],
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "16",
        "--max_seq_length",
        "16",
        "--warmup",
        "0",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "2",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--plots",
        "false",
        *extra,
    ]


def trials_of(output_dir, stage="lr"):
    config_name = "sweep-cls" if stage == "lr" else f"sweep-cls-{stage}"
    study = optuna.load_study(study_name=config_name, storage=f"sqlite:///{Path(output_dir).resolve() / 'sweep.db'}")
    return study.get_trials(deepcopy=False)


def test_four_trial_sweep_writes_table_plot_and_runnable_best_recipe(tiny_base, cls_files, tmp_path):
    out = tmp_path / "sweep"
    flags = trial_flags(tiny_base, cls_files)
    i = flags.index("--warmup")
    del flags[i : i + 2]  # the warmup is stage 2's grid here, not a fixed flag
    argv = ["--recipe", "cls", "--lr", "1e-4,3e-3", "--warmup", "0,1", "--output_dir", str(out), *flags]
    assert S.main(argv) == 0

    rows = list((out / "trials.csv").read_text().splitlines())
    assert len(rows) == 1 + 4  # header + 2 peaks + 2 warmups
    assert {r.params["learning_rate"] for r in trials_of(out)} == {1e-4, 3e-3}
    assert {r.params["warmup"] for r in trials_of(out, "warmup")} == {"0", "1"}
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials_of(out) + trials_of(out, "warmup"))
    for t in trials_of(out):  # each trial is a normal run of the main job, in its own folder
        assert (Path(t.user_attrs["output_dir"]) / "seed-42" / "eval_results.json").is_file()
        assert (Path(t.user_attrs["output_dir"]) / "seed-42" / "plan.json").is_file()
    assert (out / "sweep.png").stat().st_size > 10_000
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["best"]["learning_rate"] in (1e-4, 3e-3)
    assert "| lr |" in (out / "results.md").read_text()

    # The best recipe runs through finetune.py's parser as is, with the swept values.
    from ftrecipes.job.parse import parse_args

    best = parse_args(["--recipe", str(out / "best_recipe.yaml")]).recipe
    assert best.learning_rate == summary["best"]["learning_rate"]
    assert str(best.warmup) == str(summary["best"]["warmup"]) or best.warmup == sweep_report._as_duration(
        summary["best"]["warmup"]
    )
    assert best.model_name_or_path == tiny_base and best.max_seq_length == 16


def test_two_workers_share_one_sqlite_study_and_run_each_point_once(tiny_base, cls_files, tmp_path):
    """A worker process (scripts/sweep.py) and this process run the same command on one SQLite study."""
    out = tmp_path / "shared"
    argv = [
        "--recipe",
        "cls",
        "--lr",
        "1e-4,2e-4,5e-4,1e-3",
        "--output_dir",
        str(out),
        "--heartbeat",
        "2",
        *trial_flags(tiny_base, cls_files),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(
        [PYTHON, SWEEP, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        assert S.main(argv) == 0
    finally:
        log = worker.communicate(timeout=600)[0]
    assert worker.returncode == 0, log[-3000:]
    ran = [t for t in trials_of(out) if t.user_attrs.get("status") == "complete"]
    assert sorted(t.params["learning_rate"] for t in ran) == [1e-4, 2e-4, 5e-4, 1e-3]  # each exactly once
    folders = sorted(p.name for p in (out / "trials").iterdir())
    assert len(folders) == 4 and len({t.user_attrs["output_dir"] for t in ran}) == 4


def test_interrupted_sweep_resumes_without_redoing_finished_points(tiny_base, cls_files, tmp_path, monkeypatch):
    out = tmp_path / "resume"
    argv = ["--recipe", "cls", "--lr", "1e-4,2e-4,5e-4", "--output_dir", str(out), *trial_flags(tiny_base, cls_files)]
    real_run_point = S.run_point
    calls = []

    def interrupted_on_second(config, params, folder, trial=None):
        calls.append(params["learning_rate"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C (or a job scheduler's stop) in the middle of a point
        return real_run_point(config, params, folder, trial)

    monkeypatch.setattr(S, "run_point", interrupted_on_second)
    assert S.main(argv) == 130  # stopped, resumable
    done_first = {t.params["learning_rate"] for t in trials_of(out) if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(done_first) == 1

    calls.clear()
    monkeypatch.setattr(
        S, "run_point", lambda *a, **k: (calls.append(a[1]["learning_rate"]), real_run_point(*a, **k))[1]
    )
    assert S.main(argv) == 0
    assert sorted(calls) == sorted({1e-4, 2e-4, 5e-4} - done_first)  # finished points are not redone
    complete = [t.params["learning_rate"] for t in trials_of(out) if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(complete) == [1e-4, 2e-4, 5e-4]
    assert "interrupted" in (out / "trials.csv").read_text()


def test_diverging_point_is_recorded_as_diverged(tiny_base, cls_files, tmp_path):
    out = tmp_path / "diverge"
    # 1e6 with AdamW blows the tiny model's loss up within two steps; the guard stops that run.
    argv = [
        "--recipe",
        "cls",
        "--lr",
        "1e-4,1e6",
        "--output_dir",
        str(out),
        *trial_flags(tiny_base, cls_files, "--max_grad_norm", "0"),
    ]
    assert S.main(argv) == 0
    status = {t.params["learning_rate"]: t.user_attrs.get("status") for t in trials_of(out)}
    assert status == {1e-4: "complete", 1e6: "diverged"}
    table = (out / "results.md").read_text()
    assert "diverged" in table and "**best**" in table


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--lr", ""], "--lr"),
        (["--lr", "2e-5,abc"], "--lr"),
        (["--lr", "1e-3:1e-5"], "--lr"),
        (["--lr", "1e-5:1e-3", "--n_trials", "0"], "--n_trials"),
        (["--lr", "2e-5", "--warmup", "5%,,2%"], "--warmup"),
        (["--lr", "2e-5", "--storage", "not a url"], "--storage"),
        (["--lr", "2e-5", "--storage", "postgresql://nobody@127.0.0.1:1/none"], "--storage"),
        (["--lr", "2e-5", "--learning_rate", "3e-5"], "--learning_rate"),
        (["--lr", "2e-5", "--backend", "slurm"], "--backend"),
        (["--lr", "2e-5", "--seeds", "0"], "--seeds"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(extra, field, tmp_path, capsys):
    out = tmp_path / "bad"
    assert S.main(["--recipe", "cls", "--output_dir", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0] and "Traceback" not in err[0]
    assert not out.exists()  # nothing half-written


def test_ray_backend_without_ray_is_one_line(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert S.main(["--recipe", "cls", "--lr", "2e-5", "--backend", "ray", "--output_dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "ftrecipes[ray]" in err and not (tmp_path / "r").exists()


def test_existing_study_with_other_settings_is_refused(tiny_base, cls_files, tmp_path, capsys):
    out = tmp_path / "clash"
    config = S.parse_sweep_args(
        ["--recipe", "cls", "--lr", "1e-4", "--output_dir", str(out), *trial_flags(tiny_base, cls_files)]
    )
    S.open_study(config, S.STAGE_LR)
    before = sorted(p.name for p in out.iterdir())
    assert (
        S.main(["--recipe", "cls", "--lr", "1e-4,2e-4", "--output_dir", str(out), *trial_flags(tiny_base, cls_files)])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--study_name" in err[0] and "lr" in err[0]
    assert sorted(p.name for p in out.iterdir()) == before


def test_lr_spec_parsing():
    assert sweep_parse.parse_lr_spec("5e-5, 2e-5,3e-5") == ("grid", [2e-5, 3e-5, 5e-5])
    assert sweep_parse.parse_lr_spec("1e-5:1e-3") == ("range", [1e-5, 1e-3])
    for bad in ("", "1e-5:1e-5", "-1e-5", "2e-5,2e-5", "1e-5:x"):
        with pytest.raises(ConfigError):
            sweep_parse.parse_lr_spec(bad)
