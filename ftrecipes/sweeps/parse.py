"""The ``ftrecipes sweep`` command line, parsed into a :class:`SweepConfig` (see :mod:`ftrecipes.sweeps.study`)."""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ftrecipes.config.errors import ArgumentParser, ConfigError

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
            raise ConfigError(
                "--lr", text, "needs 0 < low < high", f"write e.g. {min(low, high) or 1e-5:g}:{max(low, high, 1e-3):g}"
            )
        return "range", [low, high]
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(
                "--lr", text, f"{part.strip()!r} is not a number", "write a comma-separated grid such as 2e-5,3e-5,5e-5"
            ) from None
        if not (value > 0 and math.isfinite(value)):
            raise ConfigError(
                "--lr", text, f"{part.strip()!r} is not a positive learning rate", "use values such as 2e-5,3e-5,5e-5"
            )
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
        prog="ftrecipes sweep",
        allow_abbrev=False,
        description=(
            "Tune the peak LR, then the warmup, with Optuna. Other flags are finetune.py's and go to every trial."
        ),
    )
    p.add_argument("--recipe", default=None, help="recipe name or YAML path (default: the card's, else cls)")
    p.add_argument(
        "--card",
        default=None,
        help="sweep on a baseline card's model, data, budget and metric (see reproduce.py --list)",
    )
    p.add_argument(
        "--lr", required=True, help="stage 1: a grid 2e-5,3e-5,5e-5 or a log-uniform range 1e-5:1e-3 (with --n_trials)"
    )
    p.add_argument(
        "--n_trials", type=int, default=None, help="points to try in a range (default 8); not used with a grid"
    )
    p.add_argument(
        "--warmup",
        default=None,
        help="stage 2 at the best peak: a grid such as 0,2%%,5%%,10%% (one value: fixed for every trial)",
    )
    p.add_argument("--seeds", type=int, default=1, help="seeds per point, from --seed upwards (default 1)")
    p.add_argument("--seed", type=int, default=None, help="first seed (default: the recipe's)")
    p.add_argument(
        "--metric",
        default=None,
        help="validation metric to maximise/minimise (default: the recipe's metric_for_best_model)",
    )
    p.add_argument(
        "--pruner",
        default="median",
        choices=PRUNERS,
        help="prune hopeless points from their evaluations (default: median)",
    )
    p.add_argument(
        "--storage",
        default=None,
        help=f"SQLAlchemy URL of the study database (default: sqlite file {STORAGE_FILE} in --output_dir)",
    )
    p.add_argument("--study_name", default=None, help="study name (default: sweep-<recipe>)")
    p.add_argument("--backend", default="optuna", help="optuna (default) or ray")
    p.add_argument("--output_dir", default=None, help="sweep folder (default: runs/sweep-<recipe>)")
    p.add_argument("--lr_finder", action="store_true", help="also run the LR range test once and mark its picks")
    p.add_argument(
        "--heartbeat",
        type=int,
        default=30,
        help="seconds between a worker's heartbeats; a trial silent for 4x this is retried",
    )
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
        return {
            "recipe": self.recipe_arg,
            "lr": [self.lr_mode, self.lr_values],
            "n_trials": self.n_trials,
            "warmup": self.warmups,
            "fixed_warmup": self.fixed_warmup,
            "seeds": self.seeds,
            "metric": self.metric,
            "finetune_argv": self.finetune_argv,
        }


def _flag_names(argv: Sequence[str]) -> list[str]:
    return [a[2:].split("=", 1)[0] for a in argv if a.startswith("--")]


def parse_sweep_args(argv: Sequence[str]) -> SweepConfig:
    """Sweep flags + finetune flags; everything is checked here, before anything is written."""
    from ftrecipes.job.parse import parse_args
    from ftrecipes.job.run import peak_rule_for_job

    args, finetune_argv = build_parser().parse_known_args(list(argv))
    if args.card is not None:
        finetune_argv = _card_flags(args.card) + finetune_argv  # the user's own flags come last and win
        if args.recipe is None:
            from ftrecipes.baselines.cards import load_card

            args.recipe = load_card(args.card).recipe
        if args.metric is None:
            from ftrecipes.baselines.cards import load_card

            args.metric = load_card(args.card).metric
    args.recipe = args.recipe or "cls"
    for name in _flag_names(finetune_argv):
        if name in OWNED_FLAGS:
            fix = (
                "use --lr for the peak grid"
                if name == "learning_rate"
                else "the sweep sets it for every trial; drop it"
            )
            raise ConfigError(f"--{name}", None, "is set by the sweep for each trial", fix)
    if args.backend not in BACKENDS:
        raise ConfigError("--backend", args.backend, f"is not one of {BACKENDS}", "use --backend optuna")
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "--backend", "ray", "Ray is not installed", "pip install 'ftrecipes[ray]', or use --backend optuna"
        )
    if args.seeds < 1:
        raise ConfigError("--seeds", args.seeds, "must be at least 1", "use --seeds 1 (or 2-3 for mean ± std)")
    if args.heartbeat < 1:
        raise ConfigError("--heartbeat", args.heartbeat, "must be at least 1 second", "use the default 30")
    lr_mode, lr_values = parse_lr_spec(args.lr)
    if lr_mode == "grid" and args.n_trials is not None:
        raise ConfigError(
            "--n_trials", args.n_trials, "applies to a range, not a grid", "drop --n_trials or give --lr LOW:HIGH"
        )
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
        raise ConfigError(
            "eval_strategy", "no", "a sweep scores each point on the validation set", "use --eval_strategy epoch"
        )
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
        raise ConfigError(
            "launch",
            f"WORLD_SIZE={os.environ['WORLD_SIZE']}",
            "a sweep worker is one process (trials under DDP break most search backends, transformers#27487)",
            "start one `ftrecipes sweep` worker per device instead (CUDA_VISIBLE_DEVICES=i), all on the same --storage",
        )
    return SweepConfig(
        recipe_arg=args.recipe,
        lr_mode=lr_mode,
        lr_values=lr_values,
        n_trials=n_trials,
        warmups=warmups,
        fixed_warmup=fixed_warmup,
        seeds=[first_seed + i for i in range(args.seeds)],
        metric=metric,
        greater_is_better=recipe.greater_is_better,
        pruner=args.pruner,
        storage=storage,
        study_name=args.study_name or f"sweep-{recipe.name}",
        backend=args.backend,
        output_dir=output_dir,
        # The recipe's default peak for this model: its width rule's pick when it has one (ftrecipes.config.peak_rule).
        finetune_argv=list(finetune_argv),
        default_lr=peak_rule_for_job(recipe, base.script)[0].learning_rate,
        lr_finder=args.lr_finder,
        heartbeat=args.heartbeat,
        report_only=args.report_only,
        split_seed_given="split_seed" in _flag_names(finetune_argv),
        recipe=recipe,
    )


def _card_flags(name: str) -> list[str]:
    """A card's finetune flags (model, data, budget), without its seed and output folder."""
    from ftrecipes.baselines.cards import load_card
    from ftrecipes.baselines.hub import unreachable_reason

    card = load_card(name)
    reason = unreachable_reason(card)
    if reason:
        raise ConfigError("--card", name, reason, "pick an offline card (ftrecipes reproduce --list) or go online")
    argv = card.argv(card.first_seed, "unused")
    argv = argv[2 : argv.index("--seed")]  # drop --recipe (the sweep's own flag) and the per-run flags
    return argv


def _check_storage_url(url: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "--storage", url, "is not a database URL", "write e.g. sqlite:///sweep.db or postgresql://user:pass@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        probe = folder
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise ConfigError("--storage", url, f"{probe} is not writable", "give a sqlite path in a writable folder")
