"""The main job as a pip user runs it: ``ftrecipes train``, and ``python -m ftrecipes.train`` under
``torchrun`` and ``accelerate launch`` (the launchers' ``-m``). Same flags, behaviour and exit codes as
``scripts/finetune.py`` (whose catalogue is tests/job/test_bad_input.py); only the name in the error line
differs."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, REPO, free_port

from ftrecipes import cli
from ftrecipes.train import main as train_main


def tiny_job(tiny_base, cls_files, output_dir, *extra) -> list[str]:
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
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "4",
        "--max_seq_length",
        "32",
        "--eval_strategy",
        "no",
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


def subprocess_env(**extra) -> dict:
    """The test's environment, with this checkout first on the path (the scripts run outside it)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra}


def ftrecipes_command() -> list[str]:
    """The installed ``ftrecipes`` console script next to this interpreter, or ``python -m ftrecipes``
    (the same ``ftrecipes.cli:main``) where the environment has no scripts."""
    script = Path(PYTHON).with_name("ftrecipes")
    return [str(script)] if script.is_file() else [PYTHON, "-m", "ftrecipes"]


def trained_steps(output_dir) -> list[int]:
    history = json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
    return [entry["step"] for entry in history if "loss" in entry]


def test_ftrecipes_train_trains_a_tiny_job_as_a_subprocess(tiny_base, cls_files, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [*ftrecipes_command(), "train", *tiny_job(tiny_base, cls_files, out, "--logging_steps", "1")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=subprocess_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert trained_steps(out) == [1, 2]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["total_steps"] == 2 and plan["num_processes"] == 1 and plan["global_batch_size"] == 4
    assert (out / "model.safetensors").is_file() and "Reproduce: ftrecipes train --recipe" in (
        out / "recipe.yaml"
    ).read_text()


@pytest.mark.slow  # two interpreters importing torch and transformers; the default suite runs the module
@pytest.mark.multiprocess  # entry under torchrun in test_launch.py (a refusal, which needs neither)
def test_module_entry_under_torchrun_trains_one_run_over_two_processes(tiny_base, cls_files, tmp_path):
    """``torchrun --nproc_per_node 2 -m ftrecipes.train`` on CPU (gloo): one run, global batch 2 x 4."""
    out = tmp_path / "ddp"
    cmd = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        "-m",
        "ftrecipes.train",
        *tiny_job(tiny_base, cls_files, out, "--logging_steps", "1"),
    ]
    result = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=subprocess_env(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["num_processes"] == 2 and plan["global_batch_size"] == 8 and plan["total_steps"] == 2
    assert trained_steps(out) == [1, 2]


@pytest.mark.slow
def test_accelerate_launch_module_with_the_copied_cpu_config(tiny_base, cls_files, tmp_path):
    """What a pip user types: copy the shipped CPU config out, then ``accelerate launch -m ftrecipes.train``."""
    accelerate = shutil.which("accelerate", path=str(Path(PYTHON).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("no accelerate command in this environment")
    env = subprocess_env(OMP_NUM_THREADS="1")
    copied = subprocess.run(
        [*ftrecipes_command(), "configs", "cp", "cpu", "."], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert copied.returncode == 0 and (tmp_path / "cpu.yaml").is_file(), copied.stderr
    out = tmp_path / "launched"
    cmd = [
        accelerate,
        "launch",
        "--config_file",
        "cpu.yaml",
        "--main_process_port",
        str(free_port()),
        "-m",
        "ftrecipes.train",
        *tiny_job(tiny_base, cls_files, out),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "plan.json").read_text())["num_processes"] == 2


def test_train_refuses_bad_input_in_one_line_named_after_the_command(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["train", "--recipe", "clss", "--output_dir", str(out)]) == 2
    assert train_main(["--learnig_rate", "1e-4", "--output_dir", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "ftrecipes train: error: --recipe='clss': is not a known recipe; did you mean 'cls' or 'clm' or 'lora-cls'?",
        "ftrecipes train: error: --learnig_rate: is not a `ftrecipes train` flag; did you mean '--learning_rate' "
        "or '--learning-rate' or '--logging_strategy'?",
    ]
    assert not out.exists()


def test_train_help_is_the_jobs_help(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["train", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: ftrecipes train")
    for flag in (
        "--recipe",
        "--model_name_or_path",
        "--train_file",
        "--warmup",
        "--per_device_train_batch_size",
        "--output_dir",
    ):
        assert flag in text, flag


def test_a_bug_under_ftrecipes_train_keeps_its_traceback(monkeypatch, tiny_base, cls_files, tmp_path):
    import ftrecipes.job.check

    def broken(config):
        raise KeyError("a bug in the checks")

    monkeypatch.setattr(ftrecipes.job.check, "check_before_loading", broken)
    with pytest.raises(KeyError, match="a bug in the checks"):
        cli.main(["train", *tiny_job(tiny_base, cls_files, tmp_path / "out")])


def test_finetune_script_stays_a_thin_wrapper_of_the_same_main():
    source = (REPO / "scripts" / "finetune.py").read_text()
    assert "from ftrecipes.job.run import main" in source and len(source.splitlines()) < 30
