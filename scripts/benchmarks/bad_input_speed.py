#!/usr/bin/env python
"""How fast the main job answers bad input, next to the import it no longer waits for.

    python scripts/benchmarks/bad_input_speed.py                # 5 runs of each command
    python scripts/benchmarks/bad_input_speed.py --repeats 9 --target 0.5

Runs, in fresh interpreters and side by side (round-robin, so background load falls on every command
alike): ``python -c "import transformers.training_args"`` (the reference), ``python -c pass`` (the
interpreter's own start), and ``ftrecipes train`` with several kinds of bad input — an unknown recipe
name, a recipe file with a mistyped key, an unknown flag, a value of the wrong type for a recipe flag
and for a TrainingArguments flag. Each bad-input command must exit 2 with one line on stderr. Prints
the median and fastest wall time of each, and the median's ratio to the reference; exits 1 when a
command misbehaves or a ratio is not below ``--target``.

The ``ftrecipes`` console script next to this interpreter is used when there is one, else
``python -m ftrecipes`` (the same ``ftrecipes.cli:main``). Run from a checkout, the checkout's package
is the one timed (it is put first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def ftrecipes_command() -> list[str]:
    script = Path(sys.executable).with_name("ftrecipes")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ftrecipes"]


def commands(folder: Path) -> list[tuple[str, list[str], bool]]:
    """``(label, argv, is_bad_input)`` of every timed command."""
    bad_recipe = folder / "my-recipe.yaml"
    bad_recipe.write_text("learnig_rate: 3.0e-5\nwarmup: 5%\n")
    train = [*ftrecipes_command(), "train"]
    out = ["--output_dir", str(folder / "never-written")]
    return [
        (
            'python -c "import transformers.training_args"',
            [sys.executable, "-c", "import transformers.training_args"],
            False,
        ),
        ('python -c "pass"', [sys.executable, "-c", "pass"], False),
        ("ftrecipes train --recipe clss", [*train, "--recipe", "clss", *out], True),
        ("ftrecipes train --recipe my-recipe.yaml (a mistyped key)", [*train, "--recipe", str(bad_recipe), *out], True),
        ("ftrecipes train --learnig_rate 3e-5", [*train, "--learnig_rate", "3e-5", *out], True),
        (
            "ftrecipes train --per_device_train_batch_size eight",
            [*train, "--per_device_train_batch_size", "eight", *out],
            True,
        ),
        ("ftrecipes train --dataloader_num_workers two", [*train, "--dataloader_num_workers", "two", *out], True),
    ]


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run_once(argv: list[str], env: dict, cwd: Path) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    return time.perf_counter() - start, proc.returncode, proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command (the median is reported)")
    parser.add_argument("--target", type=float, default=0.5, help="the largest ratio to the reference that passes")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)}
    problems = []
    with tempfile.TemporaryDirectory(prefix="bad-input-speed-") as tmp:
        folder = Path(tmp)
        timed = commands(folder)
        times: dict[str, list[float]] = {label: [] for label, _, _ in timed}
        for _ in range(args.repeats):
            for label, command, bad_input in timed:
                seconds, code, err = run_once(command, env, folder)
                times[label].append(seconds)
                lines = err.strip().splitlines()
                if bad_input and (code != 2 or len(lines) != 1 or "Traceback" in err):
                    problems.append(f"{label}: exit {code}, stderr {lines[-3:]}")
                elif not bad_input and code != 0:
                    problems.append(f"{label}: exit {code}: {lines[-1:]}")
            if (folder / "never-written").exists():
                problems.append("a bad-input command created --output_dir")

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    versions = ", ".join(f"{name} {_version(name)}" for name in ("torch", "transformers"))
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} CPUs, load average {load} (after the runs); "
        f"Python {sys.version.split()[0]}, {versions}; median of {args.repeats} runs each"
    )
    reference = statistics.median(times[timed[0][0]])
    width = max(len(label) for label in times)
    print(f"{'command'.ljust(width)}  median s  fastest s  / import")
    failed = bool(problems)
    for label, _, bad_input in timed:
        median = statistics.median(times[label])
        ratio = median / reference
        verdict = ""
        if bad_input:
            verdict = "  PASS" if ratio < args.target else "  FAIL"
            failed |= ratio >= args.target
        print(f"{label.ljust(width)}  {median:8.2f}  {min(times[label]):9.2f}  {ratio:8.2f}{verdict}")
    for problem in dict.fromkeys(problems):
        print(f"problem: {problem}")
    print(f"target: every bad-input command below {args.target:g}x the import: {'met' if not failed else 'NOT met'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
