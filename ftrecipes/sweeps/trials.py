"""One point of a sweep: the main job run once per seed, in-process, and its final validation metric."""

from __future__ import annotations

import gc
import json
import math
import time
from pathlib import Path

from ftrecipes.config.errors import ConfigError
from ftrecipes.sweeps.parse import SweepConfig


class TrialDiverged(Exception):
    """A run of the point diverged (the guard stopped it): recorded as a failed trial, status ``diverged``."""


def pruning_callback(trial, metric: str):
    """A TrainerCallback that reports each evaluation to Optuna and prunes hopeless points."""
    import optuna
    from transformers import TrainerCallback

    class OptunaPruning(TrainerCallback):
        def __init__(self):
            self.reported: set[int] = set()

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get(metric)
            # The job's final evaluation repeats the last step's: report each step once.
            if value is None or not math.isfinite(value) or state.global_step in self.reported:
                return
            self.reported.add(state.global_step)
            trial.report(float(value), step=state.global_step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{metric}={value:.4g} at step {state.global_step}")

    return OptunaPruning()


def run_point(config: SweepConfig, params: dict, folder: Path, trial=None) -> dict:
    """Train the point ``params`` once per seed through the main job; returns per-seed metrics."""
    from ftrecipes.job.parse import parse_args
    from ftrecipes.job.run import run
    from ftrecipes.training.callbacks import DIVERGED_EXIT_CODE

    values, seconds, dirs = [], [], []
    for i, seed in enumerate(config.seeds):
        out = folder / f"seed-{seed}"
        argv = [
            "--recipe",
            config.recipe_arg,
            *config.finetune_argv,
            "--learning_rate",
            repr(params["learning_rate"]),
            "--seed",
            str(seed),
            "--output_dir",
            str(out),
            "--overwrite_output_dir",
            "true",
        ]
        if not config.split_seed_given:
            argv += ["--split_seed", str(config.seeds[0])]  # every seed trains on the same split
        warmup = params.get("warmup", config.fixed_warmup)
        if warmup is not None:
            argv += ["--warmup", str(warmup)]
        job = parse_args(argv)
        callbacks = (
            [pruning_callback(trial, config.metric)] if trial is not None and i == 0 and config.pruner != "none" else []
        )
        start = time.perf_counter()
        code = run(job, callbacks=callbacks)
        seconds.append(time.perf_counter() - start)
        dirs.append(str(out))
        gc.collect()
        if code == DIVERGED_EXIT_CODE:
            raise TrialDiverged(f"seed {seed} diverged (see {out}/divergence.json)")
        if code > 128:
            # The run stopped on SIGTERM/SIGINT after checkpointing (ftrecipes.training.preemption): the sweep
            # stops too; the point stays unfinished and runs again when the same command is rerun.
            raise KeyboardInterrupt(f"seed {seed} stopped by signal {code - 128}")
        results = json.loads((out / "eval_results.json").read_text()) if (out / "eval_results.json").is_file() else {}
        if config.metric not in results:
            known = ", ".join(sorted(k for k in results if k.startswith("eval_"))) or "none"
            raise ConfigError(
                "--metric", config.metric, f"is not among the evaluation metrics ({known})", "pick one of those"
            )
        values.append(float(results[config.metric]))
    return {"values": values, "seconds": seconds, "output_dirs": dirs}
