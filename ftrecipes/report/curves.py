"""Training curves of a finished (or stopped) run: LR, loss, gradient norm and validation metrics
against optimizer steps on one shared x axis, with the schedule's phase boundaries and the detected
loss spikes marked — the four series every run should log, in one picture.

It reads what a run leaves in its ``output_dir``:

* ``trainer_state.json`` (``Trainer.save_state()``; else the newest ``checkpoint-*/trainer_state.json``)
  — its ``log_history`` holds ``loss``, ``grad_norm``, ``learning_rate`` (and what
  :class:`~ftrecipes.training.callbacks.ScheduleLogger` adds) at the logged global steps, and the ``eval_*``
  metrics at the evaluation steps;
* ``schedule.json`` (optional, :class:`~ftrecipes.training.callbacks.ScheduleLogger`) — the transitions and
  the planned LR trace;
* ``spikes.json`` and ``divergence.json`` (optional, :class:`~ftrecipes.training.callbacks.SpikeMonitor` and
  :class:`~ftrecipes.training.callbacks.DivergenceGuard`).

Step convention: the value logged at global step ``s`` belongs to optimizer step ``s``, which used the
schedule multiplier ``m(s - 1)``; a transition at schedule index ``t`` is drawn at ``x = t + 0.5``,
between the last step of the old regime and the first of the new one.

Command line (registered by :mod:`ftrecipes.cli` as ``ftrecipes plot-run``)::

    ftrecipes plot-run OUTPUT_DIR [--output PNG]
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from ftrecipes.config.errors import USAGE_EXIT_CODE, ArgumentParser, ConfigError
from ftrecipes.config.outputs import (
    CURVES_FILE,
    DIVERGENCE_FILE,
    SCHEDULE_FILE,
    SPIKES_FILE,
    TRAINER_STATE_FILE,
)
from ftrecipes.report.plotting import new_figure, save_figure

# Evaluation keys that are bookkeeping, not metrics.
_NOT_METRICS = ("_runtime", "_samples_per_second", "_steps_per_second", "_model_preparation_time")


@dataclass
class RunLogs:
    """Everything :func:`plot_curves` draws, as read from a run's ``output_dir``."""

    log_history: list[dict]
    schedule: dict | None = None
    spikes: list[dict] = field(default_factory=list)
    divergence: dict | None = None
    source: str = ""

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """``(steps, values)`` of ``key`` over the log entries that hold a number for it."""
        steps, values = [], []
        for entry in self.log_history:
            value = entry.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and "step" in entry:
                steps.append(int(entry["step"]))
                values.append(float(value))
        return steps, values

    def training_loss(self) -> tuple[list[int], list[float]]:
        # The end-of-training summary has ``train_loss``, never ``loss``, so it is excluded by the key.
        return self.series("loss")

    def validation_metrics(self) -> list[str]:
        keys: list[str] = []
        for entry in self.log_history:
            for key in entry:
                if (
                    key.startswith("eval_")
                    and key != "eval_loss"
                    and not key.endswith(_NOT_METRICS)
                    and key not in keys
                ):
                    keys.append(key)
        return keys


def _read_json(path: str) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(
            "OUTPUT_DIR",
            os.path.dirname(path),
            f"cannot read {os.path.basename(path)} ({err.__class__.__name__})",
            "give the output_dir of a run that finished writing",
        ) from None


def _state_file(output_dir: str) -> str | None:
    """``output_dir/trainer_state.json`` (written by ``save_state``), else the newest checkpoint's, found
    as the Trainer finds a checkpoint to resume from (``get_last_checkpoint``)."""
    from transformers.trainer_utils import get_last_checkpoint

    direct = os.path.join(output_dir, TRAINER_STATE_FILE)
    if os.path.isfile(direct):
        return direct
    last = get_last_checkpoint(output_dir)
    path = os.path.join(last, TRAINER_STATE_FILE) if last else None
    return path if path and os.path.isfile(path) else None


def load_run(output_dir: str) -> RunLogs:
    """Read a run's logs; a missing folder or a folder without ``trainer_state.json`` is a
    :class:`ConfigError` (one line, exit code 2 from the command)."""
    if not os.path.isdir(output_dir):
        raise ConfigError("OUTPUT_DIR", output_dir, "is not a folder", "give the output_dir of a training run")
    state_path = _state_file(output_dir)
    if state_path is None:
        raise ConfigError(
            "OUTPUT_DIR",
            output_dir,
            "holds no trainer_state.json (nor a checkpoint-*/trainer_state.json)",
            "give the output_dir of a run that called trainer.save_state() or saved a checkpoint",
        )
    state = _read_json(state_path)
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise ConfigError(
            "OUTPUT_DIR", output_dir, f"{state_path} has no log_history", "give the output_dir of a Trainer run"
        )
    optional = {}
    for name in (SCHEDULE_FILE, SPIKES_FILE, DIVERGENCE_FILE):
        path = os.path.join(output_dir, name)
        optional[name] = _read_json(path) if os.path.isfile(path) else None
    spikes = (optional[SPIKES_FILE] or {}).get("spikes", [])
    return RunLogs(history, optional[SCHEDULE_FILE], spikes, optional[DIVERGENCE_FILE], state_path)


def _finite(steps: Sequence[int], values: Sequence[float]) -> tuple[list[int], list[float]]:
    pairs = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_curves(run: RunLogs, output: str, title: str | None = None) -> str:
    """Draw ``run`` into the PNG ``output`` (four panels, shared x = optimizer steps) and return its path."""
    figure, axes = new_figure(10, 11, rows=4)
    ax_lr, ax_loss, ax_grad, ax_metric = axes[:, 0]
    schedule = run.schedule or {}

    # LR: what was used (logged) over what was planned; other param groups and a cycled momentum.
    if schedule.get("planned_steps"):
        ax_lr.plot(
            schedule["planned_steps"], schedule["planned_lr"], "--", color="0.6", lw=1, label="planned (group 0)"
        )
    steps, lrs = run.series("learning_rate")
    ax_lr.plot(steps, lrs, ".-", color="C0", ms=3, label="learning_rate")
    group_keys = sorted({k for e in run.log_history for k in e if k.startswith("learning_rate/")})
    for index, key in enumerate(group_keys):
        ax_lr.plot(*run.series(key), ".-", ms=2, lw=1, color=f"C{(index + 4) % 10}", label=key)
    momentum_steps, momentum = run.series("momentum")
    if momentum_steps:
        twin = ax_lr.twinx()
        twin.plot(momentum_steps, momentum, ":", color="C1", label="momentum / beta1")
        twin.set_ylabel("momentum", color="C1")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend(loc="upper right", fontsize="small")

    # Loss: training (window means), validation loss, spikes and the divergence point.
    loss_steps, losses = _finite(*run.training_loss())
    ax_loss.plot(loss_steps, losses, ".-", ms=3, color="C0", label="train loss")
    eval_steps, eval_losses = _finite(*run.series("eval_loss"))
    if eval_steps:
        ax_loss.plot(eval_steps, eval_losses, "o-", color="C2", label="eval loss")
    spikes = [s for s in run.spikes if isinstance(s.get("loss"), (int, float)) and math.isfinite(s["loss"])]
    if spikes:
        ax_loss.scatter(
            [s["step"] for s in spikes],
            [s["loss"] for s in spikes],
            marker="x",
            s=80,
            color="red",
            zorder=5,
            label="spike",
        )
        for s in spikes:
            tag = s["transition"]["kind"] if s.get("transition") else "no transition"
            ax_loss.annotate(
                tag, (s["step"], s["loss"]), textcoords="offset points", xytext=(4, 4), fontsize="x-small", color="red"
            )
    all_losses = [v for v in losses + eval_losses if v > 0]
    if all_losses and max(all_losses) / min(all_losses) > 100:
        ax_loss.set_yscale("log")  # one exploded loss would flatten the rest of the curve
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right", fontsize="small")

    # Gradient norm before clipping, and the clipping threshold.
    grad_steps, grads = _finite(*run.series("grad_norm"))
    ax_grad.plot(grad_steps, grads, ".-", ms=3, color="C3", label="grad norm (before clipping)")
    clip = schedule.get("max_grad_norm")
    if isinstance(clip, (int, float)) and clip > 0:
        ax_grad.axhline(clip, ls="--", color="0.5", lw=1, label=f"max_grad_norm {clip:g}")
    if grads and min(grads) > 0 and max(grads) / min(grads) > 100:
        ax_grad.set_yscale("log")  # exploding gradients would flatten everything else
    ax_grad.set_ylabel("grad norm")
    ax_grad.legend(loc="upper right", fontsize="small")

    # Validation metrics.
    metrics = run.validation_metrics()
    for index, key in enumerate(metrics):
        ax_metric.plot(*_finite(*run.series(key)), "o-", color=f"C{index % 10}", label=key)
    if metrics:
        ax_metric.legend(loc="best", fontsize="small")
    else:
        ax_metric.text(
            0.5,
            0.5,
            "no validation metric logged",
            ha="center",
            va="center",
            transform=ax_metric.transAxes,
            color="0.5",
        )
    ax_metric.set_ylabel("validation")
    ax_metric.set_xlabel("optimizer step")

    # Phase boundaries on every panel, labelled on the top one.
    for transition in schedule.get("transitions", []):
        x = transition["step"] + 0.5
        for ax in (ax_lr, ax_loss, ax_grad, ax_metric):
            ax.axvline(x, color="0.3", ls=":", lw=1)
        ax_lr.annotate(
            transition["label"],
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize="x-small",
            color="0.3",
        )
    if run.divergence and isinstance(run.divergence.get("step"), int):
        for ax in (ax_lr, ax_loss, ax_grad, ax_metric):
            ax.axvline(run.divergence["step"], color="red", lw=1.5)
        ax_loss.annotate(
            " diverged",
            (run.divergence["step"], 0.5),
            xycoords=("data", "axes fraction"),
            va="center",
            ha="left",
            fontsize="small",
            color="red",
        )
    for ax in (ax_lr, ax_loss, ax_grad, ax_metric):
        ax.grid(alpha=0.3)
    figure.suptitle(title or os.path.dirname(run.source) or "training curves")

    save_figure(figure, output, dpi=100)
    return output


def plot_run(output_dir: str, output: str | None = None) -> str:
    """Read ``output_dir`` and write its curves to ``output`` (default ``output_dir/training_curves.png``)."""
    run = load_run(output_dir)
    return plot_curves(
        run, output or os.path.join(output_dir, CURVES_FILE), title=os.path.basename(os.path.abspath(output_dir))
    )


def main_plot_run(argv: Sequence[str] | None = None) -> int:
    """``ftrecipes plot-run OUTPUT_DIR [--output PNG]``: 0 on success, 2 (one line on stderr) on bad input."""
    parser = ArgumentParser(
        prog="ftrecipes plot-run",
        description="Plot LR, loss, grad norm and validation metrics of a run against optimizer steps, "
        "with schedule transitions and loss spikes marked.",
    )
    parser.add_argument("output_dir", help="the run's output_dir (holds trainer_state.json)")
    parser.add_argument("--output", default=None, help=f"PNG to write (default: OUTPUT_DIR/{CURVES_FILE})")
    try:
        options = parser.parse_args(argv)
        path = plot_run(options.output_dir, options.output)
    except ConfigError as err:
        print(f"ftrecipes plot-run: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE
    print(path)
    return 0
