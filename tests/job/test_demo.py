"""The README's main command, end to end on the bundled data (slow: a full training run; figures in
docs/results/2026-11-25-quickstart-demo.md)."""

import json
import os
import shutil
import subprocess

import pytest
from conftest import FINETUNE, REPO


@pytest.mark.slow
def test_quickstart_demo_reaches_096_accuracy(tmp_path):
    accelerate = shutil.which("accelerate")
    assert accelerate, "accelerate's launcher is installed with the package"
    out = tmp_path / "cls"
    result = subprocess.run(
        [accelerate, "launch", FINETUNE, "--recipe", "cls", "--output_dir", str(out)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "eval_results.json").read_text())
    assert results["eval_samples"] == 213
    assert results["eval_accuracy"] >= 0.96
