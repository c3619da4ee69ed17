"""Sweeps: tune the peak LR first, then the warmup, on Optuna.

The protocol is the one fine-tuning papers use (BERT, Devlin et al. 2019, §4.1: the peak is chosen on
dev from {5e-5, 4e-5, 3e-5, 2e-5}) with the order practitioners recommend: the peak LR matters most,
so it is tuned first; the warmup length is then adjusted lightly at the best peak.

- **Stage 1, the peak**: a grid (``--lr 2e-5,3e-5,5e-5``) or a log-uniform range with a trial count
  (``--lr 1e-5:1e-3 --n_trials 8``, proposed by Optuna's TPE sampler).
- **Stage 2, the warmup** (optional, ``--warmup 0,2%,5%,10%``): a grid at the best stage-1 peak.
- ``--seeds N`` runs every point with N seeds (``--seed``, ``--seed + 1``, ...) on the same data split;
  a point's score is the mean over its seeds and the table shows mean ± std.

Every trial runs the main job (:mod:`ftrecipes.job.run`: recipe, plan, monitoring) in-process, one run
per seed, each in its own folder ``trials/<stage>-<trial>/seed-<seed>``. A point is scored by the
validation metric of its final evaluation. Hopeless points are pruned from their intermediate
evaluations (Optuna's median pruner, on the first seed's evaluations); runs that diverge are recorded
as ``diverged``, not as crashes.

Storage is an Optuna study in any database SQLAlchemy reaches: by default a SQLite file
``sweep.db`` in the output folder, so a sweep killed midway resumes where it stopped when the same
command is run again, and several worker processes on one machine share it. A server database
(``--storage postgresql://user:pass@host/db``) lets workers on several machines share one study: run the
same command on each. Grid points are enqueued once; each worker takes waiting points one at a time,
so every point runs exactly once. A worker that dies mid-trial stops sending heartbeats; after the
grace period its point is failed as ``interrupted`` and enqueued again (Optuna's
``RetryHeartbeatStaleTrialCallback``).

Outputs, rewritten by each worker when it runs out of work: ``trials.csv`` and ``results.md`` (trial,
peak, warmup, metric mean ± std, seconds, status), ``sweep.png`` (metric against the peak LR, and
against the warmup), ``sweep.json`` and ``best_recipe.yaml``, which ``finetune.py --recipe`` runs
directly. The recipe's default peak and, with ``--lr_finder``, the LR range test's raw and clipped picks
are marked on the plot and reported as ratios to the best peak.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from typing import Sequence

from ftrecipes.config.errors import USAGE_EXIT_CODE, ConfigError
from ftrecipes.sweeps.parse import (
    STAGE_LR,
    STAGE_WARMUP,
    STORAGE_FILE,
    SURPLUS,
    SweepConfig,
    parse_sweep_args,
)
from ftrecipes.sweeps.report import PointResult, best_point, write_report
from ftrecipes.sweeps.trials import TrialDiverged, run_point

logger = logging.getLogger("ftrecipes.sweeps.study")


# ------------------------------------------------------------------------------------------------
# Study


def _direction(config: SweepConfig) -> str:
    return "maximize" if config.greater_is_better else "minimize"


def open_study(config: SweepConfig, stage: str, *, create: bool = True):
    """The stage's study (created on first use); one line and exit 2 when it cannot be reached or was
    made with other settings."""

    name = config.study_name if stage == STAGE_LR else f"{config.study_name}-{stage}"
    # Workers starting together on a new SQLite file would race to create its tables: one at a time.
    with _storage_lock(config):
        return _open_study_locked(config, name, create)


def _storage_lock(config: SweepConfig):
    """A file lock beside a local SQLite study (server databases handle concurrency themselves)."""
    import contextlib

    from filelock import FileLock

    if not config.storage.startswith("sqlite:///"):
        return contextlib.nullcontext()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(config.output_dir / f"{STORAGE_FILE}.lock"))


def _open_study_locked(config: SweepConfig, name: str, create: bool):
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        storage = optuna.storages.RDBStorage(
            config.storage,
            heartbeat_interval=config.heartbeat,
            grace_period=4 * config.heartbeat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2),
            engine_kwargs={"connect_args": {"timeout": 60}} if config.storage.startswith("sqlite") else None,
        )
        if not create:
            try:
                return optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                return None
        # Unseeded on purpose: workers sharing a study must not propose the same range points.
        # (Grid points come from the queue, so grids are reproducible regardless.)
        sampler = optuna.samplers.TPESampler()
        pruner = (
            optuna.pruners.MedianPruner(n_startup_trials=2) if config.pruner == "median" else optuna.pruners.NopPruner()
        )
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=_direction(config),
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except (SQLAlchemyError, ImportError, OSError) as err:
        reason = str(err).splitlines()[0][:160]
        raise ConfigError(
            "--storage",
            config.storage,
            f"cannot be opened ({reason})",
            "check the URL, the server and its driver, or drop --storage for a local SQLite file",
        ) from None
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", config.settings())
    elif stored != json.loads(json.dumps(config.settings())):
        changed = sorted(k for k in stored if stored.get(k) != json.loads(json.dumps(config.settings())).get(k))
        raise ConfigError(
            "--study_name",
            config.study_name,
            f"exists in {config.storage} with other settings ({', '.join(changed)})",
            "rerun with the same flags to resume it, or give a new --study_name",
        )
    return study


def _point_key(params: dict) -> tuple:
    return tuple(sorted((k, f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in params.items()))


def _enqueue_missing(config: SweepConfig, study, points: list[dict]) -> None:
    """Enqueue every grid point that has no trial yet, or whose trial was interrupted or crashed.

    Points that completed, were pruned or diverged are final; waiting and running ones belong to the
    queue or to a live worker (a dead worker's running trial is failed by its missing heartbeat and
    retried by Optuna). On a local SQLite file a lock makes two workers starting together enqueue
    each point once; server databases rely on workers being started a moment apart.
    """
    from optuna.trial import TrialState

    with _storage_lock(config):
        final = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
        # A waiting trial has no params yet (Optuna keeps them aside until they are suggested): the
        # point is read from the 'point' attribute it was enqueued with.
        taken = {
            _point_key(t.params or t.user_attrs.get("point", {}))
            for t in study.get_trials(deepcopy=False)
            if t.state in final or t.user_attrs.get("status") == "diverged"
        }
        for params in points:
            if _point_key(params) not in taken:
                study.enqueue_trial(params, user_attrs={"queued": True, "point": params})


# ------------------------------------------------------------------------------------------------
# Trials


class _SurplusTrial(Exception):
    """The queue was emptied by another worker between the check and the ask."""


def _objective(config: SweepConfig, stage: str, best_lr: float | None):
    def objective(trial) -> float:
        # Enqueued points carry the user attribute 'queued' (a point retried after its worker died
        # keeps it: Optuna's RetryHeartbeatStaleTrialCallback copies user attributes). Anything else was
        # opened after another worker took the last waiting point.
        from_queue = bool(trial.user_attrs.get("queued"))
        if stage == STAGE_LR:
            if config.lr_mode == "grid" and not from_queue:
                trial.set_user_attr("status", SURPLUS)
                raise _SurplusTrial()
            low, high = (
                (config.lr_values[0], config.lr_values[-1])
                if config.lr_mode == "range"
                else (min(config.lr_values), max(config.lr_values))
            )
            params = {"learning_rate": trial.suggest_float("learning_rate", low, high, log=True)}
        else:
            if not from_queue:
                trial.set_user_attr("status", SURPLUS)
                raise _SurplusTrial()
            params = {"learning_rate": best_lr, "warmup": trial.suggest_categorical("warmup", config.warmups)}
        folder = config.output_dir / "trials" / f"{stage}-{trial.number:03d}"
        trial.set_user_attr("output_dir", str(folder))
        logger.info("sweep %s trial %d: %s", stage, trial.number, params)
        try:
            result = run_point(config, params, folder, trial)
        except TrialDiverged as err:
            trial.set_user_attr("status", "diverged")
            trial.set_user_attr("reason", str(err))
            raise
        except _pruned_type() as err:
            trial.set_user_attr("status", "pruned")
            trial.set_user_attr("reason", str(err))
            raise
        except BaseException as err:
            # A crash (a bug) or Ctrl-C: recorded, and re-raised with its traceback. Without a
            # 'complete' status a later run of the same command does not count the point as done.
            trial.set_user_attr("status", "error" if isinstance(err, Exception) else "interrupted")
            raise
        trial.set_user_attr("status", "complete")
        trial.set_user_attr("values", result["values"])
        trial.set_user_attr("seconds", sum(result["seconds"]))
        trial.set_user_attr("seeds", config.seeds)
        return statistics.fmean(result["values"])

    return objective


def _pruned_type():
    import optuna

    return optuna.TrialPruned


def _open_count(study) -> tuple[int, int]:
    """(waiting, running) trials of a study."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    return (sum(t.state == TrialState.WAITING for t in trials), sum(t.state == TrialState.RUNNING for t in trials))


def _counted(study) -> int:
    """Trials that use up the range's budget (everything but surplus and interrupted-then-retried)."""
    return sum(
        1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") != SURPLUS and not _interrupted(t)
    )


def _interrupted(t) -> bool:
    from optuna.trial import TrialState

    return t.state == TrialState.FAIL and t.user_attrs.get("status") in (None, "interrupted")


def _work(config: SweepConfig, study, stage: str, best_lr: float | None) -> None:
    """Run trials of ``study`` until its points are done (waiting for other workers' running trials)."""
    from optuna.storages import fail_stale_trials

    objective = _objective(config, stage, best_lr)
    while True:
        fail_stale_trials(study)
        waiting, running = _open_count(study)
        budget_left = stage == STAGE_LR and config.lr_mode == "range" and _counted(study) < config.n_trials
        if waiting == 0 and not budget_left:
            if running == 0:
                return
            logger.info(
                "waiting for %d running trial(s) of other workers (a dead worker's trial is retried after %ds)",
                running,
                4 * config.heartbeat,
            )
            time.sleep(min(5, config.heartbeat))
            continue
        # optimize() takes a waiting point if there is one, and keeps the trial's heartbeat while it
        # runs (a worker that dies stops beating; its point is failed and enqueued again).
        study.optimize(objective, n_trials=1, catch=(TrialDiverged, _SurplusTrial))


def collect(config: SweepConfig) -> list[PointResult]:
    from optuna.trial import TrialState

    rows = []
    for stage in (STAGE_LR, STAGE_WARMUP):
        study = open_study(config, stage, create=False) if stage == STAGE_WARMUP else open_study(config, stage)
        if study is None:
            continue
        for t in study.get_trials(deepcopy=False):
            status = t.user_attrs.get("status")
            if status == SURPLUS or t.state == TrialState.WAITING:
                continue
            if status is None:
                status = "running" if t.state == TrialState.RUNNING else "interrupted"
            lr = t.params.get("learning_rate", study.user_attrs.get("best_lr"))
            warmup = t.params.get("warmup", config.fixed_warmup or str(config.recipe.warmup))
            rows.append(
                PointResult(
                    stage,
                    t.number,
                    lr,
                    str(warmup),
                    status,
                    list(t.user_attrs.get("values", [])),
                    float(t.user_attrs.get("seconds", 0.0)),
                    t.user_attrs.get("output_dir", ""),
                )
            )
    return rows


# ------------------------------------------------------------------------------------------------
# Driver


def _run_finder(config: SweepConfig, study) -> dict | None:
    """The LR range test, once per sweep (its result is stored with the study)."""
    if not config.lr_finder:
        return None
    stored = study.user_attrs.get("finder")
    if stored:
        return stored
    from ftrecipes.job.lr_find import main as lr_find_main
    from ftrecipes.tuning.range_test import LRFinderResult

    folder = config.output_dir / "lr_finder"
    argv = ["--recipe", config.recipe_arg, "--output_dir", str(folder), "--no_progress", *config.finetune_argv]
    if lr_find_main(argv) != 0:
        raise ConfigError(
            "--lr_finder", None, "the LR range test failed (see the line above)", "drop --lr_finder or fix its flags"
        )
    result = LRFinderResult.from_json(folder / "lr_finder.json")
    prior = [result.prior.low, result.prior.high] if result.prior is not None else None
    finder = {"suggestion": result.suggestion, "recommended": result.recommended, "prior": prior}
    study.set_user_attr("finder", finder)
    return finder


def sweep(config: SweepConfig) -> dict:
    """Run this worker's share of the sweep and write the report; returns the summary."""
    if config.backend == "ray":
        from ftrecipes.sweeps.ray_backend import run_ray

        return run_ray(config)
    study = open_study(config, STAGE_LR)
    finder = _run_finder(config, study) if not config.report_only else study.user_attrs.get("finder")
    if not config.report_only:
        if config.lr_mode == "grid":
            _enqueue_missing(config, study, [{"learning_rate": lr} for lr in config.lr_values])
        _work(config, study, STAGE_LR, None)
        if config.warmups:
            rows = collect(config)
            best = best_point(rows, STAGE_LR, config.greater_is_better)
            if best is None:
                logger.warning("stage 2 skipped: no stage-1 point completed")
            else:
                study2 = open_study(config, STAGE_WARMUP)
                study2.set_user_attr("best_lr", best.learning_rate)
                _enqueue_missing(config, study2, [{"warmup": w} for w in config.warmups])
                _work(config, study2, STAGE_WARMUP, study2.user_attrs.get("best_lr", best.learning_rate))
    summary = write_report(config, collect(config), finder)
    print((config.output_dir / "results.md").read_text())
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``ftrecipes sweep`` / ``scripts/sweep.py``: 0 done, 2 bad input (one line), 130 stopped by a
    signal (resumable), 1 a crash (a bug)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats and stale-trial retries are marked experimental in Optuna; they are what makes a
    # killed worker's point run again, so they are used deliberately.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        config = parse_sweep_args(list(sys.argv[1:] if argv is None else argv))
        sweep(config)
    except ConfigError as err:
        print(f"ftrecipes sweep: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE
    except KeyboardInterrupt:
        # Ctrl-C or a scheduler's SIGTERM (the trial's run checkpointed first): finished points are in
        # the study, the interrupted one runs again on resume.
        print("ftrecipes sweep: stopped; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
