"""The sweep on a Ray cluster (``ftrecipes sweep --backend ray``): the same stages, points and trial
runs as the Optuna backend, scheduled by Ray Tune across the cluster's nodes.

Ray connects to a running cluster when ``RAY_ADDRESS`` is set (``ray start --head`` on one machine,
``ray start --address HEAD:6379`` on the others), else it starts a local one. Each Ray trial runs one
point (all its seeds) through :func:`ftrecipes.sweeps.trials.run_point`, so a trial is the same run of the main
job as with Optuna; results land in the same tables, plot and ``best_recipe.yaml``. Ray keeps its own
experiment state under ``<output_dir>/ray`` (``Tuner.restore`` resumes it); pruning is Optuna-only.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from ftrecipes.config.errors import ConfigError


def _tune_point(config, stage: str, params: dict) -> dict:
    from ray import tune

    from ftrecipes.sweeps.trials import TrialDiverged, run_point

    context = tune.get_context()
    folder = Path(config.output_dir).resolve() / "trials" / f"{stage}-ray-{context.get_trial_id()}"
    try:
        result = run_point(config, params, folder)
    except TrialDiverged as err:
        return {"score": float("nan"), "status": "diverged", "reason": str(err), "output_dir": str(folder)}
    return {
        "score": statistics.fmean(result["values"]),
        "values": result["values"],
        "seconds": sum(result["seconds"]),
        "status": "complete",
        "output_dir": str(folder),
    }


def _fit(config, stage: str, space: dict, num_samples: int):
    import ray
    from ray import tune

    mode = "max" if config.greater_is_better else "min"

    def trainable(params):
        tune.report(_tune_point(config, stage, dict(params)))

    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(num_samples=num_samples, metric="score", mode=mode),
        run_config=tune.RunConfig(
            name=f"{config.study_name}-{stage}", storage_path=str(Path(config.output_dir).resolve() / "ray")
        ),
    )
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, log_to_driver=False)
    return tuner.fit()


def _rows(config, stage: str, grid, fixed: dict):
    from ftrecipes.sweeps.report import PointResult

    rows = []
    for number, result in enumerate(grid):
        metrics, params = result.metrics or {}, {**fixed, **(result.config or {})}
        status = metrics.get("status", "error" if result.error else "interrupted")
        rows.append(
            PointResult(
                stage,
                number,
                float(params["learning_rate"]),
                str(params.get("warmup", config.fixed_warmup or config.recipe.warmup)),
                status,
                list(metrics.get("values", [])),
                float(metrics.get("seconds", 0.0)),
                metrics.get("output_dir", ""),
            )
        )
    return rows


def run_ray(config) -> dict:
    """Stage 1 (and stage 2) on Ray Tune; writes the same report as the Optuna backend."""
    from ray import tune

    from ftrecipes.sweeps.parse import STAGE_LR, STAGE_WARMUP
    from ftrecipes.sweeps.report import best_point, write_report

    if config.report_only:
        raise ConfigError(
            "--report_only",
            True,
            "reads an Optuna study",
            "drop --backend ray (Ray keeps its results under <output_dir>/ray)",
        )
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    if config.lr_mode == "grid":
        space, samples = {"learning_rate": tune.grid_search(config.lr_values)}, 1
    else:
        space, samples = {"learning_rate": tune.loguniform(*config.lr_values)}, config.n_trials
    rows = _rows(config, STAGE_LR, _fit(config, STAGE_LR, space, samples), {})
    best = best_point(rows, STAGE_LR, config.greater_is_better)
    if config.warmups and best is not None:
        space = {"learning_rate": best.learning_rate, "warmup": tune.grid_search(config.warmups)}
        rows += _rows(config, STAGE_WARMUP, _fit(config, STAGE_WARMUP, space, 1), {})
    summary = write_report(config, rows, None)
    print((Path(config.output_dir) / "results.md").read_text())
    return summary
