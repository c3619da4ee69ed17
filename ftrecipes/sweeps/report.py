"""A sweep's results: ``trials.csv``, ``results.md``, ``sweep.json``, ``sweep.png`` and ``best_recipe.yaml``."""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.files import atomic_path
from ftrecipes.sweeps.parse import STAGE_LR, STAGE_WARMUP, SweepConfig

logger = logging.getLogger("ftrecipes.sweeps.report")


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


def best_point(rows: list[PointResult], stage: str, greater: bool) -> PointResult | None:
    done = [r for r in rows if r.stage == stage and r.status == "complete"]
    if not done:
        return None
    return max(done, key=lambda r: r.mean) if greater else min(done, key=lambda r: r.mean)


def write_report(config: SweepConfig, rows: list[PointResult], finder: dict | None) -> dict:
    """``trials.csv``, ``results.md``, ``sweep.json``, ``sweep.png`` and ``best_recipe.yaml``."""
    out = config.output_dir
    greater = config.greater_is_better
    best_lr_row = best_point(rows, STAGE_LR, greater)
    best_warmup_row = best_point(rows, STAGE_WARMUP, greater)
    # Stage 2 must beat stage 1 to move the warmup off the recipe's (a tie keeps the recipe's).
    best = (
        best_warmup_row
        if best_warmup_row is not None
        and (
            best_lr_row is None
            or (best_warmup_row.mean > best_lr_row.mean if greater else best_warmup_row.mean < best_lr_row.mean)
        )
        else best_lr_row
    )
    metric = config.metric

    with atomic_path(out / "trials.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "stage",
                "trial",
                "learning_rate",
                "warmup",
                f"{metric}_mean",
                f"{metric}_std",
                "values",
                "seconds",
                "status",
                "output_dir",
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.stage,
                    r.trial,
                    f"{r.learning_rate:.6g}",
                    r.warmup,
                    _num(r.mean),
                    _num(r.std),
                    " ".join(f"{v:.4f}" for v in r.values),
                    f"{r.seconds:.1f}",
                    r.status,
                    r.output_dir,
                ]
            )

    lines = [
        f"Sweep `{config.study_name}` — recipe `{config.recipe_arg}`, metric `{metric}` "
        f"({'higher' if greater else 'lower'} is better), seeds {config.seeds}",
        "",
        f"| stage | trial | peak LR | warmup | {metric} (mean ± std) | seconds | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r.stage != STAGE_LR, r.learning_rate, r.warmup)):
        score = f"{r.mean:.4f} ± {r.std:.4f}" if r.values else "—"
        mark = " **best**" if best is not None and r is best else ""
        lines.append(
            f"| {r.stage} | {r.trial} | {r.learning_rate:.3g} | {r.warmup} | {score}{mark} | {r.seconds:.0f} | "
            f"{r.status} |"
        )
    summary: dict[str, Any] = {
        "study": config.study_name,
        "storage": config.storage,
        "metric": metric,
        "greater_is_better": greater,
        "seeds": config.seeds,
        "recipe_default_lr": config.default_lr,
        "finder": finder,
        "trials": [r.__dict__ | {"mean": _num(r.mean), "std": _num(r.std)} for r in rows],
    }
    if best is not None:
        default_row = next(
            (
                r
                for r in rows
                if r.stage == STAGE_LR
                and r.status == "complete"
                and math.isclose(r.learning_rate, config.default_lr, rel_tol=1e-9)
            ),
            None,
        )
        summary["best"] = {
            "learning_rate": best.learning_rate,
            "warmup": best.warmup,
            "mean": best.mean,
            "std": best.std,
        }
        lines += [
            "",
            f"Best: peak {best.learning_rate:.3g}, warmup {best.warmup}: {metric} {best.mean:.4f} ± {best.std:.4f}.",
        ]
        ratio = config.default_lr / best.learning_rate
        gap = (
            f"; metric {default_row.mean - best.mean:+.4f} vs best" if default_row is not None else " (not on the grid)"
        )
        lines.append(f"Recipe default peak {config.default_lr:.3g} = {ratio:.2f}x the best{gap}.")
        summary["recipe_default"] = {
            "ratio_to_best": ratio,
            "metric_gap": None if default_row is None else default_row.mean - best.mean,
        }
        if finder:
            for key in ("suggestion", "recommended"):
                if finder.get(key):
                    lines.append(
                        f"LR range test {'raw pick' if key == 'suggestion' else 'pick clipped into the prior'}: "
                        f"{finder[key]:.3g} = {finder[key] / best.learning_rate:.2f}x the best."
                    )
        _write_best_recipe(config, best)
        lines.append(
            f"Best setting as a recipe: `ftrecipes train --recipe {out / 'best_recipe.yaml'}"
            f"{' ' + ' '.join(_non_recipe_flags(config)) if _non_recipe_flags(config) else ''}`"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "sweep.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    try:
        plot_sweep(config, rows, finder, best, out / "sweep.png")
    except ConfigError as err:  # matplotlib (the plot extra) is missing: the tables still stand
        logger.warning("sweep.png skipped: %s", err)
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
    recipe = config.recipe.replace(
        learning_rate=best.learning_rate,
        warmup=_as_duration(best.warmup),
        name=f"{config.recipe.name}-swept",
        description=f"{config.recipe.name} with the sweep's best peak and warmup",
    )
    path = config.output_dir / "best_recipe.yaml"
    header = (
        f"# Best setting of sweep {config.study_name!r} ({config.metric} {best.mean:.4f} ± {best.std:.4f} over seeds "
        f"{config.seeds}).\n"
        f"# Run: ftrecipes train --recipe {path} {' '.join(_non_recipe_flags(config))}\n"
    )
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


def plot_sweep(
    config: SweepConfig, rows: list[PointResult], finder: dict | None, best: PointResult | None, path: Path
) -> Path:
    """Metric against the peak LR (log axis; every seed, mean ± std, pruned/diverged marked) and, with
    stage 2, against the warmup; the recipe's default and the range test's picks as vertical lines."""
    from ftrecipes.report.plotting import new_figure, save_figure

    stage2 = [r for r in rows if r.stage == STAGE_WARMUP]
    fig, axes = new_figure(11 if stage2 else 7, 4.2, cols=2 if stage2 else 1, sharex=False)
    ax = axes[0][0]
    stage1 = sorted((r for r in rows if r.stage == STAGE_LR), key=lambda r: r.learning_rate)
    done = [r for r in stage1 if r.status == "complete"]
    for r in done:
        ax.scatter([r.learning_rate] * len(r.values), r.values, s=12, color="tab:blue", alpha=0.4)
    if done:
        ax.errorbar(
            [r.learning_rate for r in done],
            [r.mean for r in done],
            yerr=[r.std for r in done],
            fmt="o-",
            color="tab:blue",
            capsize=3,
            label=f"mean ± std ({len(config.seeds)} seeds)",
        )
    bottom = min((v for r in done for v in r.values), default=0.0)
    for status, marker in (("pruned", "v"), ("diverged", "x")):
        hit = [r for r in stage1 if r.status == status]
        if hit:
            ax.scatter(
                [r.learning_rate for r in hit], [bottom] * len(hit), marker=marker, color="tab:red", label=status
            )
    ax.axvline(config.default_lr, color="tab:green", ls="--", label=f"recipe default {config.default_lr:.2g}")
    if finder:
        if finder.get("suggestion"):
            ax.axvline(
                finder["suggestion"], color="tab:orange", ls=":", label=f"range test raw {finder['suggestion']:.2g}"
            )
        if finder.get("recommended"):
            ax.axvline(
                finder["recommended"], color="tab:red", ls=":", label=f"range test clipped {finder['recommended']:.2g}"
            )
    if best is not None:
        ax.scatter(
            [best.learning_rate],
            [best.mean],
            marker="*",
            s=180,
            color="gold",
            edgecolor="black",
            zorder=5,
            label="best",
        )
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
        ax2.errorbar(
            [xs[r.warmup] for r in done2], [r.mean for r in done2], yerr=[r.std for r in done2], fmt="o", capsize=3
        )
        ax2.set_xticks(range(len(order)), order)
        best1 = best_point(rows, STAGE_LR, config.greater_is_better)
        if best1 is not None:
            ax2.axhline(best1.mean, color="tab:gray", ls="--", label=f"stage 1 at the recipe's warmup ({best1.warmup})")
            ax2.legend(fontsize=7)
        ax2.set_ylabel(config.metric)
        ax2.set_xlabel(f"warmup (at peak {stage2[0].learning_rate:.3g})")
        ax2.set_title("stage 2: warmup")
    return save_figure(fig, path, dpi=120)
