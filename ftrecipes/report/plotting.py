"""Pictures of schedules and LR range tests: PNG files and a compact terminal chart.

Every figure of the package is made by :func:`new_figure` and written by :func:`save_figure`: a bare
``matplotlib.figure.Figure`` on the Agg canvas, never through ``pyplot``:
no GUI backend is touched, no global figure state leaks into the caller, and it works on headless
machines. matplotlib is the optional ``plot`` extra; without it the PNG functions raise a
:class:`~ftrecipes.config.errors.ConfigError` naming the install command. The terminal chart needs nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.files import atomic_path

# Eighth-blocks: a column of height h cells shows 8*h levels.
_BLOCKS = " ▁▂▃▄▅▆▇█"
_ASCII_BLOCKS = " .:-=+*##"
_TRANSITION_COLORS = {
    "warmup_end": "tab:orange",
    "restart": "tab:purple",
    "step_drop": "tab:red",
    "decay_start": "tab:brown",
}


def new_figure(width: float = 8.0, height: float = 4.5, rows: int = 1, cols: int = 1, *, sharex: bool = True):
    """``(figure, axes)``: a bare ``Figure`` on the Agg canvas with a ``rows x cols`` grid of axes
    (``axes[row][col]``). The one way this package makes a figure; a :class:`ConfigError` naming the
    install command when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "matplotlib", "not installed", "PNG plots need matplotlib", "pip install 'ftrecipes[plot]'"
        ) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, sharex=sharex, squeeze=False)


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically: a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


def _figure(width: float = 8.0, height: float = 4.5, rows: int = 1):
    fig, axes = new_figure(width, height, rows)
    return fig, list(axes[:, 0])


# ------------------------------------------------------------------------------------------------
# Schedules


def schedule_steps(total_steps: int, max_points: int = 2000, extra: Sequence[int] = ()) -> list[int]:
    """Steps to sample a schedule at: all of them for short runs, else ``max_points`` evenly spaced
    plus each transition and its predecessor (so drops and restarts stay vertical, not smeared)."""
    if total_steps <= max_points:
        return list(range(total_steps))
    stride = total_steps / max_points
    steps = {min(total_steps - 1, int(i * stride)) for i in range(max_points)} | {total_steps - 1}
    for s in extra:
        steps |= {max(0, s - 1), min(total_steps - 1, s)}
    return sorted(steps)


def schedule_trace(schedule, peak_lr: float = 1.0, max_points: int = 2000):
    """``(steps, lrs, momenta or None)`` of a :class:`~ftrecipes.config.built_schedule.BuiltSchedule`."""
    steps = schedule_steps(schedule.total_steps, max_points, [t.step for t in schedule.transitions])
    lrs = [peak_lr * schedule.lr(s) for s in steps]
    momenta = [schedule.momentum(s) for s in steps] if schedule.momentum is not None else None
    return steps, lrs, momenta


def plot_schedule(
    schedule,
    path: str | os.PathLike,
    *,
    peak_lr: float = 1.0,
    title: str | None = None,
    momentum_label: str = "momentum / beta1",
) -> Path:
    """PNG of LR against optimizer steps (plus momentum/beta1 where the schedule cycles it), with the
    transitions (end of warmup, restarts, step drops, cool-down) marked as vertical lines."""
    steps, lrs, momenta = schedule_trace(schedule, peak_lr)
    fig, axes = _figure(height=5.5 if momenta else 4.0, rows=2 if momenta else 1)
    ax = axes[0]
    ax.plot(steps, lrs, color="tab:blue", lw=1.6, label="learning rate")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    if momenta:
        axes[1].plot(steps, momenta, color="tab:green", lw=1.4)
        axes[1].set_ylabel(momentum_label)
        axes[1].grid(alpha=0.3)
    _mark_transitions(axes, schedule.transitions)
    if getattr(schedule, "metric_driven", False):
        ax.text(
            0.99,
            0.02,
            "metric-driven: reductions follow validation (not shown)",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            color="0.3",
        )
    axes[-1].set_xlabel("optimizer step")
    axes[-1].set_xlim(0, max(1, schedule.total_steps - 1))
    return save_figure(fig, path)


def _mark_transitions(axes, transitions, max_labels: int = 6) -> None:
    for k, t in enumerate(transitions):
        color = _TRANSITION_COLORS.get(t.kind, "0.4")
        for ax in axes:
            ax.axvline(t.step, color=color, ls=":", lw=1.0)
        if k < max_labels:  # dozens of restart labels would hide the curve
            axes[0].annotate(
                t.label,
                xy=(t.step, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                ha="right",
                va="top",
                fontsize=7,
                color=color,
            )


# ------------------------------------------------------------------------------------------------
# LR range test


def plot_lr_finder(result, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """PNG of an :class:`~ftrecipes.tuning.range_test.LRFinderResult`: raw and smoothed loss against LR (log x),
    the prior band shaded, the suggestion and the recommended LR as vertical lines."""
    fig, (ax,) = _figure()
    if result.lrs:
        ax.plot(result.lrs, result.losses, ".", color="0.65", ms=3, label="loss (per step)")
        ax.plot(
            result.lrs, result.smoothed, color="tab:blue", lw=1.8, label=f"smoothed (zero-phase EMA {result.beta:g})"
        )
        ax.set_xscale("log")
        ax.set_ylim(*_finder_ylim(result))
    if result.prior is not None:
        ax.axvspan(result.prior.low, result.prior.high, color="tab:green", alpha=0.15, label=f"{result.prior} ")
    if result.suggestion is not None:
        ax.axvline(
            result.suggestion, color="tab:red", lw=1.5, label=f"suggestion ({result.rule}) {result.suggestion:.3g}"
        )
    if result.recommended is not None and result.recommended != result.suggestion:
        ax.axvline(
            result.recommended, color="tab:green", lw=1.5, ls="--", label=f"recommended {result.recommended:.3g}"
        )
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "LR range test", fontsize=10)
    if result.warning:
        ax.text(
            0.99,
            0.02,
            "suggestion outside the prior: see warning in lr_finder.json",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=7,
            color="tab:red",
        )
    return save_figure(fig, path)


def _finder_ylim(result) -> tuple[float, float]:
    # The divergent tail would squash the informative part: cap the axis a little above the start.
    finite = [v for v in result.losses + result.smoothed if math.isfinite(v)]
    low = min(finite)
    start = result.smoothed[min(len(result.smoothed) - 1, 2)]
    high = min(max(finite), start + 1.5 * max(start - low, 0.05 * abs(start), 1e-8))
    return low - 0.05 * (high - low), high


# ------------------------------------------------------------------------------------------------
# Terminal


def render_chart(
    values: Sequence[float],
    *,
    width: int = 64,
    height: int = 8,
    baseline: float | None = 0.0,
    ascii_only: bool = False,
    marks: Sequence[float] = (),
    x_range: tuple[float, float] | None = None,
    label: str = "",
    fmt: str = "{:.3g}",
) -> str:
    """A column chart of ``values`` in ``height`` text rows and ``width`` columns (each column shows the
    mean of its slice of ``values``). ``baseline`` is the value at the bottom (None: the minimum);
    ``marks`` are x positions (in the units of ``x_range``, default the value index) drawn as ``^``."""
    if not values:
        return f"{label} (empty)"
    blocks = _ASCII_BLOCKS if ascii_only else _BLOCKS
    width = max(1, min(width, len(values)))
    columns = []
    for c in range(width):
        chunk = values[c * len(values) // width : max(c * len(values) // width + 1, (c + 1) * len(values) // width)]
        columns.append(sum(chunk) / len(chunk))
    top = max(values)
    bottom = min(values) if baseline is None else min(baseline, min(values))
    span = top - bottom or 1.0
    levels = [round((v - bottom) / span * height * 8) for v in columns]
    y_top, y_bottom = fmt.format(top), fmt.format(bottom)
    pad = max(len(y_top), len(y_bottom))
    rows = []
    for r in range(height):
        floor = (height - 1 - r) * 8
        cells = "".join(blocks[max(0, min(8, lv - floor))] for lv in levels)
        tick = y_top if r == 0 else (y_bottom if r == height - 1 else "")
        rows.append(f"{tick:>{pad}} {'|' if ascii_only else '┤'}{cells}")
    axis = ["-" if ascii_only else "─"] * width
    lo, hi = x_range if x_range is not None else (0, len(values) - 1)
    for m in marks:
        if hi > lo and lo <= m <= hi:
            axis[min(width - 1, int((m - lo) / (hi - lo) * width))] = "^"
    rows.append(f"{'':>{pad}} {'+' if ascii_only else '└'}{''.join(axis)}")
    left, right = str(int(lo)), str(int(hi))
    rows.append(f"{'':>{pad}}  {left}{right:>{max(1, width - len(left))}}")
    if label:
        rows.insert(0, label)
    return "\n".join(rows)


def render_schedule(
    schedule, *, peak_lr: float = 1.0, width: int = 64, height: int = 8, ascii_only: bool = False
) -> str:
    """The terminal rendering of a schedule: LR chart (and momentum/beta1 chart where it cycles), with
    transitions marked ``^`` under the x axis and listed below."""
    steps, lrs, momenta = schedule_trace(schedule, peak_lr, max_points=max(width * 8, 512))
    # Resample to uniform steps so columns are equal step spans even where transitions added points.
    uniform = [peak_lr * schedule.lr(s) for s in _uniform_steps(schedule.total_steps, width * 4)]
    marks = [t.step for t in schedule.transitions]
    x_range = (0, schedule.total_steps - 1)
    parts = [
        render_chart(
            uniform,
            width=width,
            height=height,
            marks=marks,
            x_range=x_range,
            ascii_only=ascii_only,
            label=f"learning rate vs optimizer step (peak {max(lrs):.3g}, {schedule.total_steps} steps)",
        )
    ]
    if momenta:
        m_uniform = [schedule.momentum(s) for s in _uniform_steps(schedule.total_steps, width * 4)]
        parts.append(
            render_chart(
                m_uniform,
                width=width,
                height=max(3, height // 2),
                baseline=None,
                marks=marks,
                x_range=x_range,
                ascii_only=ascii_only,
                label="momentum / beta1",
            )
        )
    if schedule.transitions:
        shown = schedule.transitions[:8]
        more = f" (+{len(schedule.transitions) - 8} more)" if len(schedule.transitions) > 8 else ""
        parts.append("^ " + "; ".join(t.label for t in shown) + more)
    return "\n".join(parts)


def _uniform_steps(total_steps: int, n: int) -> list[int]:
    if total_steps <= n:
        return list(range(total_steps))
    return [round(i * (total_steps - 1) / (n - 1)) for i in range(n)]
