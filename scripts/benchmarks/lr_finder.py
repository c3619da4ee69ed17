#!/usr/bin/env python
"""Does the LR range test land near the best peak LR? A grid of short runs against one finder run.

    python scripts/benchmarks/lr_finder.py           # MiniLM + tweets (docs/results/*-lr-finder-benchmark.md)
    python scripts/benchmarks/lr_finder.py --dataset_name bbc_news --grid 1e-5 3e-5 1e-4 --max_train_samples 800

For each peak LR of the grid, the ``cls`` recipe trains the bundled MiniLM for ``--num_train_epochs``
on a fixed subsample (no batch-size rescaling, same seed) and is scored on the validation split. Then
the range test runs once on the same data and batch. The report gives the best grid LR, the finder's
pick and their ratio, and the finder's cost as a fraction of (a) one grid run and (b) one full
recipe run on the whole data set (its optimizer steps times the measured seconds per step).
Writes ``lr_benchmark.json`` to ``--output_dir``.
"""

import json
import os
import sys
import time
from pathlib import Path

from ftrecipes import Timeline, get_recipe
from ftrecipes.config.errors import USAGE_EXIT_CODE, ArgumentParser, ConfigError
from ftrecipes.job.parse import parse_args
from ftrecipes.job.run import build_training_components
from ftrecipes.job.run import main as finetune


def _threads(cli) -> list[str]:
    return ["--cpu_threads", str(cli.threads)] if cli.threads else []


def grid_run(lr: float, cli, out: Path) -> dict:
    run_dir = out / f"lr-{lr:g}"
    argv = [
        "--recipe",
        "cls",
        "--model_name_or_path",
        cli.model_name_or_path,
        "--dataset_name",
        cli.dataset_name,
        "--learning_rate",
        str(lr),
        "--lr_scaling",
        "none",
        "--max_train_samples",
        str(cli.max_train_samples),
        "--max_eval_samples",
        str(cli.max_eval_samples),
        "--num_train_epochs",
        str(cli.num_train_epochs),
        "--max_seq_length",
        str(cli.max_seq_length),
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--output_dir",
        str(run_dir),
        "--overwrite_output_dir",
        "true",
        "--disable_tqdm",
        "true",
        "--plots",
        "false",
        "--seed",
        str(cli.seed),
        *_threads(cli),
    ]
    start = time.perf_counter()
    code = finetune(argv)
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(code)
    results = json.loads((run_dir / "all_results.json").read_text())
    steps = json.loads((run_dir / "trainer_state.json").read_text())["global_step"]
    return {
        "learning_rate": lr,
        "eval_accuracy": results["eval_accuracy"],
        "eval_f1": results["eval_f1"],
        "seconds": seconds,
        "train_seconds": results["train_runtime"],
        "steps": steps,
    }


def finder_run(cli, out: Path) -> dict:
    from ftrecipes.tuning.range_test import choose_learning_rate

    config = parse_args(
        [
            "--recipe",
            "cls",
            "--model_name_or_path",
            cli.model_name_or_path,
            "--dataset_name",
            cli.dataset_name,
            "--max_train_samples",
            str(cli.max_train_samples),
            "--max_eval_samples",
            str(cli.max_eval_samples),
            "--max_seq_length",
            str(cli.max_seq_length),
            "--lr_scaling",
            "none",
            "--output_dir",
            str(out / "finder"),
            "--seed",
            str(cli.seed),
            *_threads(cli),
        ]
    )
    c = build_training_components(config)
    loader = c.train_dataloader()  # seeded with --seed, passed to the pipeline
    start = time.perf_counter()
    lr, result = choose_learning_rate(c.recipe, c.model, loader, output_dir=out / "finder", num_steps=cli.finder_steps)
    seconds = time.perf_counter() - start
    return {
        "recommended": lr,
        "suggestion": result.suggestion,
        "warning": result.warning,
        "reason": result.reason,
        "seconds": seconds,
        "steps": len(result.lrs),
        "prior": [result.prior.low, result.prior.high] if result.prior else None,
    }


def full_run_steps(dataset_name: str) -> tuple[int, int]:
    """(training rows, optimizer steps) of the plain `cls` recipe on the whole data set."""
    from ftrecipes.data.loading import load_raw_datasets

    rows = len(load_raw_datasets(dataset_name)["train"])
    recipe = get_recipe("cls")
    return rows, Timeline(
        rows, recipe.per_device_train_batch_size, num_train_epochs=recipe.num_train_epochs
    ).total_steps


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_name_or_path", default="minilm")
    parser.add_argument("--dataset_name", default="tweet_sentiment")
    parser.add_argument("--grid", type=float, nargs="+", default=[1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4])
    parser.add_argument("--max_train_samples", type=int, default=2000)
    parser.add_argument("--max_eval_samples", type=int, default=600)
    parser.add_argument("--num_train_epochs", type=float, default=1.0)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--finder_steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: every available core)")
    parser.add_argument("--output_dir", default="runs/lr_benchmark")
    try:
        cli = parser.parse_args(argv)
        out = Path(cli.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        grid = [grid_run(lr, cli, out) for lr in cli.grid]
        finder = finder_run(cli, out)
        rows, steps = full_run_steps(cli.dataset_name)
    except ConfigError as err:
        print(f"lr_benchmark.py: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE

    best = max(grid, key=lambda r: r["eval_accuracy"])
    seconds_per_step = sum(r["train_seconds"] for r in grid) / sum(r["steps"] for r in grid)
    full_seconds = steps * seconds_per_step
    ratio = finder["recommended"] / best["learning_rate"]
    report = {
        "dataset": cli.dataset_name,
        "grid": grid,
        "finder": finder,
        "best_grid_lr": best["learning_rate"],
        "finder_over_best": ratio,
        "within_2x": 0.5 <= ratio <= 2.0,
        "finder_cost_vs_grid_run": finder["seconds"] / (sum(r["seconds"] for r in grid) / len(grid)),
        "full_run": {"train_rows": rows, "optimizer_steps": steps, "estimated_seconds": full_seconds},
        "finder_cost_vs_full_run": finder["seconds"] / full_seconds,
        "machine": f"{os.cpu_count()} CPU cores",
    }
    (out / "lr_benchmark.json").write_text(json.dumps(report, indent=2))

    print(
        f"\n### LR finder vs grid — MiniLM, {cli.dataset_name}, {cli.max_train_samples} train rows, "
        f"{cli.num_train_epochs:g} epoch(s), max_seq_length {cli.max_seq_length}\n"
    )
    print("| peak LR | eval accuracy | eval macro-F1 | run seconds |")
    print("|---|---|---|---|")
    for r in grid:
        mark = " **best**" if r is best else ""
        print(f"| {r['learning_rate']:g}{mark} | {r['eval_accuracy']:.4f} | {r['eval_f1']:.4f} | {r['seconds']:.0f} |")
    print(
        f"\nfinder: suggestion {finder['suggestion']!s:.8}, recommended {finder['recommended']:.3g} ({finder['steps']} "
        f"steps, {finder['seconds']:.0f} s); best grid LR {best['learning_rate']:g}; ratio {ratio:.2f} "
        f"({'within' if report['within_2x'] else 'outside'} 2x)"
    )
    print(
        f"finder cost: {report['finder_cost_vs_grid_run']:.0%} of one grid run; "
        f"{report['finder_cost_vs_full_run']:.1%} of a full `cls` run on all {rows} rows ({steps} steps, "
        f"~{full_seconds / 60:.0f} min est.)"
    )
    if finder["warning"]:
        print(f"finder warning: {finder['warning']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
