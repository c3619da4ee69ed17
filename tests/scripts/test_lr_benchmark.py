"""scripts/benchmarks/lr_finder.py on a tiny budget: the grid, the finder and the report are real."""

import importlib.util
import json

from conftest import REPO


def test_lr_benchmark_tiny(tiny_base, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("lr_benchmark", REPO / "scripts" / "benchmarks" / "lr_finder.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench"
    code = bench.main(
        [
            "--model_name_or_path",
            tiny_base,
            "--dataset_name",
            "bbc_news",
            "--grid",
            "1e-4",
            "1e-3",
            "--max_train_samples",
            "32",
            "--max_eval_samples",
            "16",
            "--max_seq_length",
            "16",
            "--finder_steps",
            "12",
            "--output_dir",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "lr_benchmark.json").read_text())
    assert [r["learning_rate"] for r in report["grid"]] == [1e-4, 1e-3]
    assert report["best_grid_lr"] in (1e-4, 1e-3)
    assert report["finder"]["steps"] <= 12 and report["finder_cost_vs_full_run"] > 0
    assert report["full_run"]["train_rows"] == 1914  # bbc_news minus the 10% held out
    assert "| peak LR | eval accuracy |" in capsys.readouterr().out
