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

import argparse
import csv
import gc
import importlib.util
import json
import logging
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ftrecipes.config.errors import USAGE_EXIT_CODE, ArgumentParser, ConfigError

logger = logging.getLogger("ftrecipes.sweeps.study")

STAGE_LR = "lr"
STAGE_WARMUP = "warmup"
STORAGE_FILE = "sweep.db"
SURPLUS = "surplus"  # a trial opened after the last waiting point was taken by another worker
BACKENDS = ("optuna", "ray")
PRUNERS = ("median", "none")
# Flags the sweep sets for every trial itself; giving them would be ambiguous.
OWNED_FLAGS = ("learning_rate", "output_dir", "overwrite_output_dir", "resume_from_checkpoint")


# ------------------------------------------------------------------------------------------------
# Parsing


def parse_lr_spec(text: str) -> tuple[str, list[float]]:
    """``"2e-5,3e-5"`` -> ``("grid", [2e-5, 3e-5])``; ``"1e-5:1e-3"`` -> ``("range", [1e-5, 1e-3])``."""
    text = (text or "").strip()
    if not text:
        raise ConfigError("--lr", text, "is empty", "give a grid such as 2e-5,3e-5,5e-5 or a range such as 1e-5:1e-3")
    if ":" in text:
        parts = text.split(":")
        try:
            low, high = (float(p) for p in parts)
        except ValueError:
            raise ConfigError("--lr", text, "is not a range LOW:HIGH of two numbers", "write e.g. 1e-5:1e-3") from None
        if not (0 < low < high and math.isfinite(high)):
            raise ConfigError("--lr", text, "needs 0 < low < high", f"write e.g. {min(low, high) or 1e-5:g}:{max(low, high, 1e-3):g}")
        return "range", [low, high]
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError("--lr", text, f"{part.strip()!r} is not a number", "write a comma-separated grid such as 2e-5,3e-5,5e-5") from None
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError("--lr", text, f"{part.strip()!r} is not a positive learning rate", "use values such as 2e-5,3e-5,5e-5")
        values.append(value)
    if len(set(values)) != len(values):
        raise ConfigError("--lr", text, "repeats a value", "list each peak once (use --seeds for repeats)")
    return "grid", sorted(values)


def parse_warmup_grid(text: str | None, recipe) -> list[str]:
    """Stage-2 warmups; each must be a valid recipe ``warmup`` (checked by the Recipe itself)."""
    if text is None:
        return []
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise ConfigError("--warmup", text, "has an empty entry", "write e.g. 0,2%,5%,10%")
    for part in parts:
        recipe.replace(warmup=part)  # raises ConfigError naming 'warmup' for a bad duration
    if len(set(parts)) != len(parts):
        raise ConfigError("--warmup", text, "repeats a value", "list each warmup once")
    return parts


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="ftrecipes sweep", allow_abbrev=False,
        description="Tune the peak LR, then the warmup, with Optuna. Other flags are finetune.py's and go to every trial.",
    )
    p.add_argument("--recipe", default=None, help="recipe name or YAML path (default: the card's, else cls)")
    p.add_argument("--card", default=None, help="sweep on a baseline card's model, data, budget and metric (see reproduce.py --list)")
    p.add_argument("--lr", required=True, help="stage 1: a grid 2e-5,3e-5,5e-5 or a log-uniform range 1e-5:1e-3 (with --n_trials)")
    p.add_argument("--n_trials", type=int, default=None, help="points to try in a range (default 8); not used with a grid")
    p.add_argument("--warmup", default=None, help="stage 2 at the best peak: a grid such as 0,2%%,5%%,10%% (one value: fixed for every trial)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per point, from --seed upwards (default 1)")
    p.add_argument("--seed", type=int, default=None, help="first seed (default: the recipe's)")
    p.add_argument("--metric", default=None, help="validation metric to maximise/minimise (default: the recipe's metric_for_best_model)")
    p.add_argument("--pruner", default="median", choices=PRUNERS, help="prune hopeless points from their evaluations (default: median)")
    p.add_argument("--storage", default=None, help=f"SQLAlchemy URL of the study database (default: sqlite file {STORAGE_FILE} in --output_dir)")
    p.add_argument("--study_name", default=None, help="study name (default: sweep-<recipe>)")
    p.add_argument("--backend", default="optuna", help="optuna (default) or ray")
    p.add_argument("--output_dir", default=None, help="sweep folder (default: runs/sweep-<recipe>)")
    p.add_argument("--lr_finder", action="store_true", help="also run the LR range test once and mark its picks")
    p.add_argument("--heartbeat", type=int, default=30, help="seconds between a worker's heartbeats; a trial silent for 4x this is retried")
    p.add_argument("--report_only", action="store_true", help="only rewrite the tables and plot from the study")

    return p


@dataclass
class SweepConfig:
    recipe_arg: str
    lr_mode: str
    lr_values: list[float]
    n_trials: int
    warmups: list[str]
    fixed_warmup: str | None
    seeds: list[int]
    metric: str
    greater_is_better: bool
    pruner: str
    storage: str
    study_name: str
    backend: str
    output_dir: Path
    finetune_argv: list[str]
    default_lr: float
    lr_finder: bool
    heartbeat: int
    report_only: bool = False
    split_seed_given: bool = False
    recipe: Any = field(default=None, repr=False)

    def settings(self) -> dict:
        """What makes two invocations the same sweep (stored with the study, compared on resume)."""
        return {"recipe": self.recipe_arg, "lr": [self.lr_mode, self.lr_values], "n_trials": self.n_trials,
                "warmup": self.warmups, "fixed_warmup": self.fixed_warmup, "seeds": self.seeds,
                "metric": self.metric, "finetune_argv": self.finetune_argv}


def _flag_names(argv: Sequence[str]) -> list[str]:
    return [a[2:].split("=", 1)[0] for a in argv if a.startswith("--")]


def parse_sweep_args(argv: Sequence[str]) -> SweepConfig:
    """Sweep flags + finetune flags; everything is checked here, before anything is written."""
    from ftrecipes.job.run import peak_rule_for_job, parse_args

    args, finetune_argv = build_parser().parse_known_args(list(argv))
    if args.card is not None:
        finetune_argv = _card_flags(args.card) + finetune_argv  # the user's own flags come last and win
        if args.recipe is None:
            from ftrecipes.baselines import load_card

            args.recipe = load_card(args.card).recipe
        if args.metric is None:
            from ftrecipes.baselines import load_card

            args.metric = load_card(args.card).metric
    args.recipe = args.recipe or "cls"
    for name in _flag_names(finetune_argv):
        if name in OWNED_FLAGS:
            fix = "use --lr for the peak grid" if name == "learning_rate" else "the sweep sets it for every trial; drop it"
            raise ConfigError(f"--{name}", None, "is set by the sweep for each trial", fix)
    if args.backend not in BACKENDS:
        raise ConfigError("--backend", args.backend, f"is not one of {BACKENDS}", "use --backend optuna")
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("--backend", "ray", "Ray is not installed", "pip install 'ftrecipes[ray]', or use --backend optuna")
    if args.seeds < 1:
        raise ConfigError("--seeds", args.seeds, "must be at least 1", "use --seeds 1 (or 2-3 for mean ± std)")
    if args.heartbeat < 1:
        raise ConfigError("--heartbeat", args.heartbeat, "must be at least 1 second", "use the default 30")
    lr_mode, lr_values = parse_lr_spec(args.lr)
    if lr_mode == "grid" and args.n_trials is not None:
        raise ConfigError("--n_trials", args.n_trials, "applies to a range, not a grid", "drop --n_trials or give --lr LOW:HIGH")
    n_trials = len(lr_values) if lr_mode == "grid" else (8 if args.n_trials is None else args.n_trials)
    if n_trials < 1:
        raise ConfigError("--n_trials", n_trials, "must be at least 1", "use e.g. --n_trials 8")

    # The finetune flags are checked by finetune's own parser, exactly as a trial will see them.
    base = parse_args(["--recipe", args.recipe, *finetune_argv])
    recipe = base.recipe
    warmups = parse_warmup_grid(args.warmup, recipe)
    fixed_warmup = warmups[0] if len(warmups) == 1 else None
    if fixed_warmup is not None:
        warmups = []
    if recipe.eval_strategy == "no":
        raise ConfigError("eval_strategy", "no", "a sweep scores each point on the validation set", "use --eval_strategy epoch")
    first_seed = recipe.seed if args.seed is None else args.seed
    if first_seed < 0:
        raise ConfigError("--seed", first_seed, "must be >= 0", "use e.g. --seed 42")
    metric = args.metric or recipe.metric_for_best_model
    metric = metric if metric.startswith("eval_") else f"eval_{metric}"
    output_dir = Path(args.output_dir or f"runs/sweep-{recipe.name}")
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError("--output_dir", str(output_dir), "exists and is not a folder", "give a folder path")
    storage = args.storage or f"sqlite:///{(output_dir / STORAGE_FILE).resolve()}"
    _check_storage_url(storage)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("launch", f"WORLD_SIZE={os.environ['WORLD_SIZE']}", "a sweep worker is one process (trials under DDP break most search backends, transformers#27487)",
                          "start one `ftrecipes sweep` worker per device instead (CUDA_VISIBLE_DEVICES=i), all on the same --storage")
    return SweepConfig(
        recipe_arg=args.recipe, lr_mode=lr_mode, lr_values=lr_values, n_trials=n_trials, warmups=warmups,
        fixed_warmup=fixed_warmup, seeds=[first_seed + i for i in range(args.seeds)], metric=metric,
        greater_is_better=recipe.greater_is_better, pruner=args.pruner, storage=storage,
        study_name=args.study_name or f"sweep-{recipe.name}", backend=args.backend, output_dir=output_dir,
        # The recipe's default peak for this model: its width rule's pick when it has one (ftrecipes.config.peak_rule).
        finetune_argv=list(finetune_argv), default_lr=peak_rule_for_job(recipe, base.script)[0].learning_rate, lr_finder=args.lr_finder,
        heartbeat=args.heartbeat, report_only=args.report_only,
        split_seed_given="split_seed" in _flag_names(finetune_argv), recipe=recipe,
    )


def _card_flags(name: str) -> list[str]:
    """A card's finetune flags (model, data, budget), without its seed and output folder."""
    from ftrecipes.baselines import load_card, unreachable_reason

    card = load_card(name)
    reason = unreachable_reason(card)
    if reason:
        raise ConfigError("--card", name, reason, "pick an offline card (python scripts/reproduce.py --list) or go online")
    argv = card.argv(card.first_seed, "unused")
    argv = argv[2:argv.index("--seed")]  # drop --recipe (the sweep's own flag) and the per-run flags
    return argv


def _check_storage_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("--storage", url, "is not a database URL", "write e.g. sqlite:///sweep.db or postgresql://user:pass@host/db") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        probe = folder
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise ConfigError("--storage", url, f"{probe} is not writable", "give a sqlite path in a writable folder")


# ------------------------------------------------------------------------------------------------
# Study


def _direction(config: SweepConfig) -> str:
    return "maximize" if config.greater_is_better else "minimize"


def open_study(config: SweepConfig, stage: str, *, create: bool = True):
    """The stage's study (created on first use); one line and exit 2 when it cannot be reached or was
    made with other settings."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

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
            config.storage, heartbeat_interval=config.heartbeat, grace_period=4 * config.heartbeat,
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
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2) if config.pruner == "median" else optuna.pruners.NopPruner()
        study = optuna.create_study(storage=storage, study_name=name, direction=_direction(config), sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
    except (SQLAlchemyError, ImportError, OSError) as err:
        reason = str(err).splitlines()[0][:160]
        raise ConfigError("--storage", config.storage, f"cannot be opened ({reason})", "check the URL, the server and its driver, or drop --storage for a local SQLite file") from None
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", config.settings())
    elif stored != json.loads(json.dumps(config.settings())):
        changed = sorted(k for k in stored if stored.get(k) != json.loads(json.dumps(config.settings())).get(k))
        raise ConfigError("--study_name", config.study_name, f"exists in {config.storage} with other settings ({', '.join(changed)})",
                          "rerun with the same flags to resume it, or give a new --study_name")
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
        taken = {_point_key(t.params or t.user_attrs.get("point", {})) for t in study.get_trials(deepcopy=False)
                 if t.state in final or t.user_attrs.get("status") == "diverged"}
        for params in points:
            if _point_key(params) not in taken:
                study.enqueue_trial(params, user_attrs={"queued": True, "point": params})


# ------------------------------------------------------------------------------------------------
# Trials


class TrialDiverged(Exception):
    """A run of the point diverged (the guard stopped it): recorded as a failed trial, status ``diverged``."""


class _SurplusTrial(Exception):
    """The queue was emptied by another worker between the check and the ask."""


def _pruning_callback(trial, metric: str):
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
    from ftrecipes.training.callbacks import DIVERGED_EXIT_CODE
    from ftrecipes.job.run import parse_args, run

    values, seconds, dirs = [], [], []
    for i, seed in enumerate(config.seeds):
        out = folder / f"seed-{seed}"
        argv = ["--recipe", config.recipe_arg, *config.finetune_argv, "--learning_rate", repr(params["learning_rate"]),
                "--seed", str(seed), "--output_dir", str(out), "--overwrite_output_dir", "true"]
        if not config.split_seed_given:
            argv += ["--split_seed", str(config.seeds[0])]  # every seed trains on the same split
        warmup = params.get("warmup", config.fixed_warmup)
        if warmup is not None:
            argv += ["--warmup", str(warmup)]
        job = parse_args(argv)
        callbacks = [_pruning_callback(trial, config.metric)] if trial is not None and i == 0 and config.pruner != "none" else []
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
            raise ConfigError("--metric", config.metric, f"is not among the evaluation metrics ({known})", "pick one of those")
        values.append(float(results[config.metric]))
    return {"values": values, "seconds": seconds, "output_dirs": dirs}


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
            low, high = (config.lr_values[0], config.lr_values[-1]) if config.lr_mode == "range" else (min(config.lr_values), max(config.lr_values))
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
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") != SURPLUS and not _interrupted(t))


def _interrupted(t) -> bool:
    from optuna.trial import TrialState

    return t.state == TrialState.FAIL and t.user_attrs.get("status") in (None, "interrupted")


def _work(config: SweepConfig, study, stage: str, best_lr: float | None) -> None:
    """Run trials of ``study`` until its points are done (waiting for other workers' running trials)."""
    import optuna
    from optuna.storages import fail_stale_trials

    objective = _objective(config, stage, best_lr)
    while True:
        fail_stale_trials(study)
        waiting, running = _open_count(study)
        budget_left = stage == STAGE_LR and config.lr_mode == "range" and _counted(study) < config.n_trials
        if waiting == 0 and not budget_left:
            if running == 0:
                return
            logger.info("waiting for %d running trial(s) of other workers (a dead worker's trial is retried after %ds)", running, 4 * config.heartbeat)
            time.sleep(min(5, config.heartbeat))
            continue
        # optimize() takes a waiting point if there is one, and keeps the trial's heartbeat while it
        # runs (a worker that dies stops beating; its point is failed and enqueued again).
        study.optimize(objective, n_trials=1, catch=(TrialDiverged, _SurplusTrial))


# ------------------------------------------------------------------------------------------------
# Results


@dataclass
class PointResult:
    stage: str
    trial: int
    learning_rate: float
    warmup: str
    status: str
    values: list[float]
    seconds: float
    output_dir: str

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else float("nan")

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


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
            rows.append(PointResult(stage, t.number, lr, str(warmup), status, list(t.user_attrs.get("values", [])),
                                    float(t.user_attrs.get("seconds", 0.0)), t.user_attrs.get("output_dir", "")))
    return rows


def _best(rows: list[PointResult], stage: str, greater: bool) -> PointResult | None:
    done = [r for r in rows if r.stage == stage and r.status == "complete"]
    if not done:
        return None
    return max(done, key=lambda r: r.mean) if greater else min(done, key=lambda r: r.mean)


def write_report(config: SweepConfig, rows: list[PointResult], finder: dict | None) -> dict:
    """``trials.csv``, ``results.md``, ``sweep.json``, ``sweep.png`` and ``best_recipe.yaml``."""
    out = config.output_dir
    greater = config.greater_is_better
    best_lr_row = _best(rows, STAGE_LR, greater)
    best_warmup_row = _best(rows, STAGE_WARMUP, greater)
    # Stage 2 must beat stage 1 to move the warmup off the recipe's (a tie keeps the recipe's).
    best = best_warmup_row if best_warmup_row is not None and (
        best_lr_row is None or (best_warmup_row.mean > best_lr_row.mean if greater else best_warmup_row.mean < best_lr_row.mean)) else best_lr_row
    metric = config.metric

    with open(out / "trials.csv.tmp", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["stage", "trial", "learning_rate", "warmup", f"{metric}_mean", f"{metric}_std", "values", "seconds", "status", "output_dir"])
        for r in rows:
            writer.writerow([r.stage, r.trial, f"{r.learning_rate:.6g}", r.warmup, _num(r.mean), _num(r.std),
                             " ".join(f"{v:.4f}" for v in r.values), f"{r.seconds:.1f}", r.status, r.output_dir])
    os.replace(out / "trials.csv.tmp", out / "trials.csv")

    lines = [f"Sweep `{config.study_name}` — recipe `{config.recipe_arg}`, metric `{metric}` ({'higher' if greater else 'lower'} is better), "
             f"seeds {config.seeds}", "",
             f"| stage | trial | peak LR | warmup | {metric} (mean ± std) | seconds | status |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.stage != STAGE_LR, r.learning_rate, r.warmup)):
        score = f"{r.mean:.4f} ± {r.std:.4f}" if r.values else "—"
        mark = " **best**" if best is not None and r is best else ""
        lines.append(f"| {r.stage} | {r.trial} | {r.learning_rate:.3g} | {r.warmup} | {score}{mark} | {r.seconds:.0f} | {r.status} |")
    summary: dict[str, Any] = {"study": config.study_name, "storage": config.storage, "metric": metric, "greater_is_better": greater,
                               "seeds": config.seeds, "recipe_default_lr": config.default_lr, "finder": finder,
                               "trials": [r.__dict__ | {"mean": _num(r.mean), "std": _num(r.std)} for r in rows]}
    if best is not None:
        default_row = next((r for r in rows if r.stage == STAGE_LR and r.status == "complete" and math.isclose(r.learning_rate, config.default_lr, rel_tol=1e-9)), None)
        summary["best"] = {"learning_rate": best.learning_rate, "warmup": best.warmup, "mean": best.mean, "std": best.std}
        lines += ["", f"Best: peak {best.learning_rate:.3g}, warmup {best.warmup}: {metric} {best.mean:.4f} ± {best.std:.4f}."]
        ratio = config.default_lr / best.learning_rate
        gap = f"; metric {default_row.mean - best.mean:+.4f} vs best" if default_row is not None else " (not on the grid)"
        lines.append(f"Recipe default peak {config.default_lr:.3g} = {ratio:.2f}x the best{gap}.")
        summary["recipe_default"] = {"ratio_to_best": ratio, "metric_gap": None if default_row is None else default_row.mean - best.mean}
        if finder:
            for key in ("suggestion", "recommended"):
                if finder.get(key):
                    lines.append(f"LR range test {'raw pick' if key == 'suggestion' else 'pick clipped into the prior'}: "
                                 f"{finder[key]:.3g} = {finder[key] / best.learning_rate:.2f}x the best.")
        _write_best_recipe(config, best)
        lines.append(f"Best setting as a recipe: `python scripts/finetune.py --recipe {out / 'best_recipe.yaml'}"
                     f"{' ' + ' '.join(_non_recipe_flags(config)) if _non_recipe_flags(config) else ''}`")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    try:
        plot_sweep(config, rows, finder, best, out / "sweep.png")
    except ImportError:
        logger.warning("sweep.png skipped: matplotlib is not installed (pip install 'ftrecipes[plot]')")
    return summary


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 6)


def _non_recipe_flags(config: SweepConfig) -> list[str]:
    """The finetune flags that are not recipe fields (data, model): the best recipe needs them too."""
    from dataclasses import fields

    from ftrecipes.config.recipe import Recipe

    recipe_fields = {f.name for f in fields(Recipe)}
    kept, skip = [], False
    argv = config.finetune_argv
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a.startswith("--"):
            name = a[2:].split("=", 1)[0]
            has_value = "=" not in a and i + 1 < len(argv) and not argv[i + 1].startswith("--")
            if name in recipe_fields or name in ("warmup_steps", "warmup_ratio"):
                skip = has_value
                continue
            kept.append(a)
            if has_value:
                kept.append(argv[i + 1])
                skip = True
        else:
            kept.append(a)
    return kept


def _write_best_recipe(config: SweepConfig, best: PointResult) -> Path:
    recipe = config.recipe.replace(learning_rate=best.learning_rate, warmup=_as_duration(best.warmup),
                                   name=f"{config.recipe.name}-swept", description=f"{config.recipe.name} with the sweep's best peak and warmup")
    path = config.output_dir / "best_recipe.yaml"
    header = (f"# Best setting of sweep {config.study_name!r} ({config.metric} {best.mean:.4f} ± {best.std:.4f} over seeds {config.seeds}).\n"
              f"# Run: python scripts/finetune.py --recipe {path} {' '.join(_non_recipe_flags(config))}\n")
    path.write_text(header + recipe.to_yaml())
    return path


def _as_duration(text: str):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def plot_sweep(config: SweepConfig, rows: list[PointResult], finder: dict | None, best: PointResult | None, path: Path) -> Path:
    """Metric against the peak LR (log axis; every seed, mean ± std, pruned/diverged marked) and, with
    stage 2, against the warmup; the recipe's default and the range test's picks as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stage2 = [r for r in rows if r.stage == STAGE_WARMUP]
    fig, axes = plt.subplots(1, 2 if stage2 else 1, figsize=(11 if stage2 else 7, 4.2), squeeze=False)
    ax = axes[0][0]
    stage1 = sorted((r for r in rows if r.stage == STAGE_LR), key=lambda r: r.learning_rate)
    done = [r for r in stage1 if r.status == "complete"]
    for r in done:
        ax.scatter([r.learning_rate] * len(r.values), r.values, s=12, color="tab:blue", alpha=0.4)
    if done:
        ax.errorbar([r.learning_rate for r in done], [r.mean for r in done], yerr=[r.std for r in done],
                    fmt="o-", color="tab:blue", capsize=3, label=f"mean ± std ({len(config.seeds)} seeds)")
    bottom = min((v for r in done for v in r.values), default=0.0)
    for status, marker in (("pruned", "v"), ("diverged", "x")):
        hit = [r for r in stage1 if r.status == status]
        if hit:
            ax.scatter([r.learning_rate for r in hit], [bottom] * len(hit), marker=marker, color="tab:red", label=status)
    ax.axvline(config.default_lr, color="tab:green", ls="--", label=f"recipe default {config.default_lr:.2g}")
    if finder:
        if finder.get("suggestion"):
            ax.axvline(finder["suggestion"], color="tab:orange", ls=":", label=f"range test raw {finder['suggestion']:.2g}")
        if finder.get("recommended"):
            ax.axvline(finder["recommended"], color="tab:red", ls=":", label=f"range test clipped {finder['recommended']:.2g}")
    if best is not None:
        ax.scatter([best.learning_rate], [best.mean], marker="*", s=180, color="gold", edgecolor="black", zorder=5, label="best")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel(config.metric)
    ax.set_title("stage 1: peak LR")
    ax.legend(fontsize=7)
    if stage2:
        ax2 = axes[0][1]
        done2 = [r for r in stage2 if r.status == "complete"]
        order = [w for w in config.warmups]
        xs = {w: i for i, w in enumerate(order)}
        ax2.errorbar([xs[r.warmup] for r in done2], [r.mean for r in done2], yerr=[r.std for r in done2], fmt="o", capsize=3)
        ax2.set_xticks(range(len(order)), order)
        best1 = _best(rows, STAGE_LR, config.greater_is_better)
        if best1 is not None:
            ax2.axhline(best1.mean, color="tab:gray", ls="--", label=f"stage 1 at the recipe's warmup ({best1.warmup})")
            ax2.legend(fontsize=7)
        ax2.set_ylabel(config.metric)
        ax2.set_xlabel(f"warmup (at peak {stage2[0].learning_rate:.3g})")
        ax2.set_title("stage 2: warmup")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------
# Driver


def _run_finder(config: SweepConfig, study) -> dict | None:
    """The LR range test, once per sweep (its result is stored with the study)."""
    if not config.lr_finder:
        return None
    stored = study.user_attrs.get("finder")
    if stored:
        return stored
    from ftrecipes.cli import main as cli_main
    from ftrecipes.tuning.range_test import LRFinderResult

    folder = config.output_dir / "lr_finder"
    argv = ["lr-find", "--recipe", config.recipe_arg, "--output_dir", str(folder), "--no_progress", *config.finetune_argv]
    if cli_main(argv) != 0:
        raise ConfigError("--lr_finder", None, "the LR range test failed (see the line above)", "drop --lr_finder or fix its flags")
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
            best = _best(rows, STAGE_LR, config.greater_is_better)
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
