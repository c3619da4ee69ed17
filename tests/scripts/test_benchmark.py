"""scripts/benchmarks/throughput.py with a tiny budget: it runs every configuration and prints its table; the
spread and the paired per-step ratio are computed as documented; bf16 where it does not run is exit 2."""

import contextlib
import importlib.util
import io
import json
import subprocess

import pytest
import torch
from conftest import PYTHON, REPO

BENCH = str(REPO / "scripts" / "benchmarks" / "throughput.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ftrecipes_benchmark", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_tiny_prints_the_table(bench, tmp_path, monkeypatch, capsys):
    """The whole script with its workers run in this process: the script starts one interpreter per
    measurement (fresh memory for the peak-RSS column), four interpreter starts for a model that takes
    milliseconds; here each worker's command line goes through the same main() in-process."""

    def worker_in_this_process(cmd, capture_output, text, env):
        assert cmd[1] == BENCH and "--worker" in cmd
        threads = torch.get_num_threads()
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            code = bench.main(cmd[2:])
        torch.set_num_threads(threads)  # the worker set --threads for its own process
        return subprocess.CompletedProcess(cmd, code, stdout.getvalue(), "")

    monkeypatch.setattr(bench.subprocess, "run", worker_in_this_process)
    out = tmp_path / "bench.json"
    code = bench.main(
        [
            "--tiny",
            "--steps",
            "1",
            "--warmup_steps",
            "1",
            "--repeats",
            "1",
            "--batch_size",
            "4",
            "--datasets",
            "tweet_sentiment",
            "--precisions",
            "fp32",
            "--threads",
            "1",
            "--output",
            str(out),
        ]
    )
    result = subprocess.CompletedProcess([], code, capsys.readouterr().out, "")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| data |"))
    assert (
        "samples/s" in header
        and "spread" in header
        and "vs bare" in header
        and "step ratio vs bare" in header
        and "vs pad128" in header
    )
    for config in ("finetune", "bare", "pad128"):
        assert any(line.startswith(f"| tweet_sentiment | fp32 | {config} |") for line in lines), config
    record = json.loads(out.read_text())
    assert {r["config"] for r in record["results"]} == {"finetune", "bare", "pad128"}
    assert all(r["samples_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in record["results"])
    assert all(len(r["step_s"]) == 1 and r["step_s"][0] > 0 for r in record["results"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_benchmark_cuda_without_a_gpu_exits_2():
    result = subprocess.run(
        [PYTHON, BENCH, "--device", "cuda", "--bf16"], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def _result(config, rep, step_s, precision="fp32", dataset="bbc_news"):
    return {
        "config": config,
        "repeat": rep,
        "dataset": dataset,
        "precision": precision,
        "step_s": step_s,
        "samples_per_s": 16 * len(step_s) / sum(step_s),
        "real_tokens_per_s": 1000.0,
        "peak_rss_mb": 900.0,
        "rss_delta_mb": 100.0,
        "optimizer": "AdamW",
    }


def test_paired_step_ratio_ignores_a_stalled_step(bench):
    # Repetition 1 of 'finetune' has one step stalled 10x by another process: the ratio of totals moves
    # by 30%, the median of paired per-step ratios stays at the true 2% cost.
    results = [
        _result("bare", 0, [1.0, 2.0, 1.0, 2.0]),
        _result("finetune", 0, [1.02, 2.04, 1.02, 2.04]),
        _result("bare", 1, [1.0, 2.0, 1.0, 2.0]),
        _result("finetune", 1, [1.02, 2.04, 10.2, 2.04]),
    ]
    ratios = bench.step_ratios(results, "bbc_news", "fp32", "finetune")
    assert len(ratios) == 8 and sorted(ratios)[3:5] == pytest.approx([1.02, 1.02])
    table = bench.median_table(results, "cpu")
    row = next(line for line in table.splitlines() if line.startswith("| bbc_news | fp32 | finetune |"))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[8].startswith("1.020 [1.020, 1.020]")  # step ratio [IQR]
    spread = abs(16 * 4 / 6.12 - 16 * 4 / 15.3) / ((16 * 4 / 6.12 + 16 * 4 / 15.3) / 2)
    assert cells[4] == f"{100 * spread:.1f}%"


def test_bf16_where_it_does_not_run_exits_2(bench, monkeypatch, capsys):
    from ftrecipes.training import precision

    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    assert bench._default_precisions("cpu") == ["fp32"]
    assert bench.main(["--precisions", "bf16", "--tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--precisions bf16" in err[0] and "no native bf16" in err[0]
