"""scripts/benchmark.py with a tiny budget: it runs every configuration and prints its table."""

import json
import os
import subprocess

import pytest
import torch

from conftest import PYTHON, REPO

BENCH = str(REPO / "scripts" / "benchmark.py")


def test_benchmark_tiny_prints_the_table(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [PYTHON, BENCH, "--tiny", "--steps", "1", "--warmup_steps", "1", "--repeats", "1", "--batch_size", "4",
         "--datasets", "tweet_sentiment", "--threads", "1", "--output", str(out)],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(l for l in lines if l.startswith("| data |"))
    assert "samples/s" in header and "vs bare" in header and "vs pad128" in header
    for config in ("finetune", "bare", "pad128"):
        assert any(l.startswith(f"| tweet_sentiment | {config} |") for l in lines), config
    record = json.loads(out.read_text())
    assert {r["config"] for r in record["results"]} == {"finetune", "bare", "pad128"}
    assert all(r["samples_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in record["results"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_benchmark_cuda_without_a_gpu_exits_2():
    result = subprocess.run([PYTHON, BENCH, "--device", "cuda", "--bf16"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
