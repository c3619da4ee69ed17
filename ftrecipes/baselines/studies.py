"""Seed studies over the classification cards (``scripts/benchmarks/recipe_study.py``,
``scripts/benchmarks/adaptation_study.py``): arms x cards x seeds."""

from __future__ import annotations

from typing import Optional, Sequence

from ftrecipes.baselines.cards import BaselineCard, load_card, parse_overrides
from ftrecipes.baselines.hub import unreachable_reason
from ftrecipes.baselines.verdict import mean_std
from ftrecipes.config.errors import ConfigError

STUDY_CARDS = ("bbc-minilm", "tweets-minilm")


def add_study_arguments(parser, arms: Sequence[str], output_dir: str) -> None:
    """The flags every seed study takes (an ``argparse.ArgumentParser``; the study adds its own)."""
    parser.add_argument("--cards", nargs="+", default=list(STUDY_CARDS), help="Classification cards to study.")
    parser.add_argument("--arms", nargs="+", default=list(arms), choices=list(arms), help="Which arms to run.")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds per (card, arm), from the card's first seed.")
    parser.add_argument("--output_dir", default=output_dir)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per run (default: finetune.py's --cpu_threads rule).",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="Extra finetune.py flag for every run (e.g. max_steps=5 for a smoke run).",
    )


def study_cards(names: Sequence[str]) -> tuple[list[BaselineCard], Optional[str]]:
    """The classification cards a study compares (accuracy and macro-F1), and why one of them cannot
    run here (``None`` when all can: the study then runs; else it stops before any run)."""
    cards = [load_card(name) for name in names]
    for card in cards:
        if card.task != "sequence-classification":
            raise ConfigError(
                "--cards",
                card.name,
                f"has task {card.task!r}",
                "the study compares sequence-classification cards (accuracy and macro-F1)",
            )
    return cards, next((reason for reason in map(unreachable_reason, cards) if reason is not None), None)


def study_overrides(args) -> dict:
    """The finetune.py flags every run of a study takes: ``--override`` items, and ``--threads`` as ``cpu_threads``."""
    if args.seeds < 1:
        raise ConfigError("--seeds", args.seeds, "must be a positive integer", "e.g. --seeds 3")
    extra = parse_overrides(args.override)
    if args.threads is not None:
        extra["cpu_threads"] = str(args.threads)  # the pipeline sets torch threads from this flag
    return extra


# The recipe study: the cls recipe against plain Trainer defaults and a constant LR

STUDY_ARMS: dict[str, dict] = {
    # The card's recipe as shipped (cls: AdamW 5e-5, 5% warmup, cosine to 10%, wd 0.01, clip 1.0).
    "recipe": {},
    # transformers.Trainer's defaults: AdamW 5e-5, linear decay to 0, no warmup, no weight decay.
    "trainer-defaults": {
        "lr_scheduler_type": "linear",
        "warmup": 0,
        "min_lr_rate": 0,
        "weight_decay": 0,
        "learning_rate": 5e-5,
        "lr_scaling": "none",
    },
    # A constant LR (the recipe's peak), no warmup.
    "constant": {"lr_scheduler_type": "constant", "warmup": 0},
}


def summarize_study(rows: Sequence[dict], metrics: Sequence[str] = ("eval_accuracy", "eval_f1")) -> list[dict]:
    """Group study rows (``card``, ``arm``, ``seed``, metric values, ``wall_time_s``) into mean ± std per
    (card, arm)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["card"], row["arm"]), []).append(row)
    out = []
    for (card, arm), items in groups.items():
        entry = {"card": card, "arm": arm, "n": len(items), "seeds": [r["seed"] for r in items]}
        for key in (*metrics, "wall_time_s", "train_runtime"):
            values = [float(r[key]) for r in items if r.get(key) is not None]
            if values:
                entry[key] = dict(zip(("mean", "std"), mean_std(values)))
        out.append(entry)
    return out


def study_markdown(summary: Sequence[dict]) -> str:
    """The study summary as a markdown table."""

    def cell(entry, key, fmt):
        v = entry.get(key)
        return "n/a" if v is None else f"{fmt.format(v['mean'])} ± {fmt.format(v['std'])}"

    lines = [
        "| card | arm | accuracy | macro-F1 | wall time / run (s) | train time / run (s) | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        lines.append(
            f"| {e['card']} | {e['arm']} | {cell(e, 'eval_accuracy', '{:.4f}')} | {cell(e, 'eval_f1', '{:.4f}')} | "
            f"{cell(e, 'wall_time_s', '{:.0f}')} | {cell(e, 'train_runtime', '{:.0f}')} | {e['n']} |"
        )
    return "\n".join(lines)


__all__ = [
    "STUDY_CARDS",
    "add_study_arguments",
    "study_cards",
    "study_overrides",
    "STUDY_ARMS",
    "summarize_study",
    "study_markdown",
]
