"""Watching a run: the logs every fine-tuning run needs, loss spikes lined up against the
schedule, and a guard against divergence. All three are ``transformers.TrainerCallback`` s.

The practice this follows: *always log the current LR, the loss, the gradient norm and the validation
metric; loss spikes often line up with LR transitions (end of warmup, restarts, step drops); warmup
does not replace fixing instability — lower the peak LR, add clipping, check initialisation and
normalisation, mixed-precision loss scaling and the data pipeline.*

What the Trainer (transformers 5.24) already logs, verified against its source and by the tests:

* ``loss`` — the mean training loss over the ``logging_steps`` optimizer steps since the last log. A
  NaN/inf step loss is *replaced* by the running average when ``logging_nan_inf_filter`` is on (the
  default), so a non-finite loss can be invisible in the logs: :class:`DivergenceGuard` therefore
  watches the gradients, not only the logged loss.
* ``grad_norm`` — the global L2 norm of the gradients of the **last** optimizer step of the window,
  taken **before clipping**: it is the return value of ``accelerator.clip_grad_norm_`` (torch's
  ``clip_grad_norm_`` returns the norm of the unclipped gradients; under fp16 accelerate unscales
  first), or a norm with ``max_norm=inf`` when clipping is off. It is reused here, not recomputed.
* ``learning_rate`` — read after ``optimizer.step()`` and before ``lr_scheduler.step()``, so the value
  logged at ``global_step = s`` is the LR that optimizer step ``s`` used, i.e. ``peak * m(s - 1)`` for a
  schedule multiplier ``m`` indexed from 0. The same convention is used for everything added here.

How additions reach the logs: a callback that has values to add (per-group LR, momentum, skipped
steps) exposes ``log_values() -> dict``; :class:`~ftrecipes.training.trainer.RecipeTrainer` overrides
``Trainer.log`` — the hook transformers documents for custom logging — to merge them into every
training log *before* it is stored in ``state.log_history`` and handed to the reporters (TensorBoard,
...) and the console. Nothing edits ``log_history`` afterwards and the callback list keeps Trainer's
order (the callbacks here are appended with ``add_callback``, after ``DefaultFlowCallback``, so a
``control.should_save = False`` they set is not overwritten by it). A plain ``Trainer`` still gets the
files, the spike report and the guard, but only its own log keys.

Wiring in a script (files land in ``args.output_dir``: ``schedule.json`` at train start,
``spikes.json`` at train end, ``divergence.json`` when the guard fires)::

    monitoring = add_monitoring(trainer, on_divergence="stop")   # or "skip"
    trainer.train()
    trainer.save_state()                  # trainer_state.json, read by ftrecipes.report.curves
    plot_run(args.output_dir)             # training_curves.png
    if monitoring.exit_code:              # 1 after divergence: keep the checkpoints, skip save_model
        return monitoring.exit_code
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from ftrecipes.config.built_schedule import BuiltSchedule, Transition
from ftrecipes.config.files import write_json_atomic
from ftrecipes.config.outputs import DIVERGENCE_FILE, SCHEDULE_FILE, SPIKES_FILE

DIVERGED_EXIT_CODE = 1
logger = logging.getLogger(__name__)
_TRACE_POINTS = 2000  # the planned LR trace in schedule.json is subsampled to about this many points


# ------------------------------------------------------------------------------------------------
# Shared helpers


def _say(line: str) -> None:
    """One line on stderr that does not tear the tqdm progress bar."""
    try:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
    except Exception:  # pragma: no cover - tqdm is a dependency, but printing must never fail
        print(line, file=sys.stderr)


def _write_json(path: str, payload: dict) -> None:
    write_json_atomic(path, payload, allow_nan=True)


def _built_schedule(explicit: BuiltSchedule | None, lr_scheduler: Any) -> BuiltSchedule | None:
    """The run's :class:`BuiltSchedule`: the one given, else the one a :class:`ScheduleLR` carries."""
    return explicit if explicit is not None else getattr(lr_scheduler, "built_schedule", None)


def _peak_lrs(lr_scheduler: Any, optimizer: Any, args: Any) -> list[float]:
    """Each param group's peak LR: the scheduler's ``base_lrs`` (torch sets them from ``initial_lr``)."""
    if lr_scheduler is not None and getattr(lr_scheduler, "base_lrs", None):
        return [float(x) for x in lr_scheduler.base_lrs]
    if optimizer is not None:
        return [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
    return [float(args.learning_rate)]


class RobustWindow:
    """The last ``size`` values with a robust centre and spread::

        median = med(x)
        sigma  = 1.4826 * med(|x - median|)      (MAD scaled to a std for Gaussian noise)

    Median and MAD ignore the spikes themselves, so one outlier neither hides the next nor drags the
    threshold up the way a mean and a standard deviation would.
    """

    def __init__(self, size: int):
        self.values: deque[float] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value: float) -> None:
        if math.isfinite(value):
            self.values.append(float(value))

    def median(self) -> float:
        return statistics.median(self.values)

    def sigma(self) -> float:
        centre = self.median()
        return 1.4826 * statistics.median(abs(v - centre) for v in self.values)


def _nice_percent(fraction: float) -> str:
    """``0.1 -> '10%'``, ``0.025 -> '2.5%'`` (two significant digits at most)."""
    return f"{float(f'{100 * fraction:.2g}'):g}%"


def suggested_overrides(args: Any, peak_lr: float, schedule: BuiltSchedule | None, *, warmup: bool = True) -> list[str]:
    """The concrete next recipe overrides after instability, in the usual order of fixes:
    lower the peak LR, add clipping, lengthen warmup, and leave fp16 loss scaling."""
    flags = [f"--learning_rate {peak_lr / 2:.3g}"]
    if not args.max_grad_norm:
        flags.append("--max_grad_norm 1.0")
    if warmup and schedule is not None and schedule.total_steps > 0:
        current = schedule.warmup_steps / schedule.total_steps
        longer = min(0.2, max(2 * current, 0.05))  # double it, within the usual 1-10% (at most 20%) of training
        if longer > current:
            flags.append(f"--warmup {_nice_percent(longer)}")
    if getattr(args, "fp16", False):
        flags.append("--precision bf16")  # fp16 needs loss scaling; bf16 does not overflow the same way
    return flags


def install_callbacks(trainer: Any, callbacks: Iterable[TrainerCallback]) -> None:
    """Add ``callbacks`` (in order) with Trainer's own ``add_callback``: after ``DefaultFlowCallback``, so
    that a ``control.should_save = False`` they set is not overwritten by it. Their extra log keys reach
    the logs through ``RecipeTrainer.log``; a plain ``Trainer`` has no such hook, which is said once."""
    for callback in callbacks:
        trainer.add_callback(callback)
    if type(trainer).log is Trainer.log and any(callable(getattr(cb, "log_values", None)) for cb in callbacks):
        logger.warning(
            "%s logs only its own keys; per-group LR, momentum and skipped-step counts are added by "
            "ftrecipes.training.trainer.RecipeTrainer (or any Trainer whose log() merges callbacks' log_values())",
            type(trainer).__name__,
        )


# ------------------------------------------------------------------------------------------------
# 1. Logging


class ScheduleLogger(TrainerCallback):
    """Adds what the Trainer does not log itself to every training log (every ``logging_steps``,
    through :meth:`log_values`, which ``RecipeTrainer.log`` merges):

    * ``learning_rate/<name>`` for every param group ``i >= 1`` when the groups' LRs differ (group 0
      is the Trainer's own ``learning_rate``): the group's ``name`` key (``layer_5``, ``embeddings``, set
      by :mod:`ftrecipes.training.layerwise`), else ``group_<i>``;
    * ``momentum`` — beta1 (Adam) or momentum (SGD) of group 0 when the schedule cycles it (one-cycle).

    Both are the values *used* by the logged optimizer step (recorded in ``on_optimizer_step``, after
    ``optimizer.step()`` and before the scheduler moves on), the Trainer's convention for
    ``learning_rate``. At train start it writes ``schedule.json`` into ``output_dir``: the transitions,
    the per-group peaks and the planned LR trace, which :mod:`ftrecipes.report.curves` draws.
    """

    def __init__(
        self, schedule: BuiltSchedule | None = None, *, log_momentum: bool | None = None, write_schedule: bool = True
    ):
        self.schedule = schedule
        self.log_momentum = log_momentum
        self.write_schedule = write_schedule
        self._used_lrs: list[float] | None = None
        self._group_names: list[str] = []
        self._used_momentum: float | None = None
        self._cycles_momentum = False

    def on_train_begin(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
        schedule = _built_schedule(self.schedule, lr_scheduler)
        if self.log_momentum is None:
            self._cycles_momentum = bool(
                getattr(lr_scheduler, "momentum_schedule", None) is not None
                or (schedule is not None and schedule.momentum is not None)
                or getattr(lr_scheduler, "cycle_momentum", False)  # torch's OneCycleLR / CyclicLR
            )
        else:
            self._cycles_momentum = self.log_momentum
        if self.write_schedule and state.is_world_process_zero:
            payload = schedule_payload(schedule, _peak_lrs(lr_scheduler, optimizer, args), args)
            _write_json(os.path.join(args.output_dir, SCHEDULE_FILE), payload)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is None:
            return
        groups = optimizer.param_groups
        self._used_lrs = [float(g["lr"]) for g in groups]
        self._group_names = [
            str(g.get("name") or f"group_{i}") for i, g in enumerate(groups)
        ]  # ftrecipes.training.layerwise names them
        if self._cycles_momentum:
            group = groups[0]
            self._used_momentum = float(group["betas"][0]) if "betas" in group else float(group.get("momentum", 0.0))

    def log_values(self) -> dict[str, float]:
        """The keys this logger adds to a training log (merged by ``RecipeTrainer.log``)."""
        if self._used_lrs is None:
            return {}
        extra: dict[str, float] = {}
        if len(set(self._used_lrs)) > 1:
            for name, lr in zip(self._group_names[1:], self._used_lrs[1:]):
                if name != self._group_names[0]:  # a named depth has two groups (decayed, not): one key
                    extra[f"learning_rate/{name}"] = lr
        if self._cycles_momentum and self._used_momentum is not None:
            extra["momentum"] = self._used_momentum
        return extra


def _logged_losses(state) -> list[float]:
    return [float(e["loss"]) for e in state.log_history if isinstance(e.get("loss"), (int, float))]


def schedule_payload(schedule: BuiltSchedule | None, peak_lrs: Sequence[float], args: Any = None) -> dict:
    """What ``schedule.json`` holds. ``planned_lr[j]`` is the LR of param group 0 at global step
    ``planned_steps[j]`` (the LR optimizer step ``s`` uses is ``peak * m(s - 1)``); a transition at
    schedule index ``t`` first takes effect at global step ``t + 1``."""
    payload: dict[str, Any] = {
        "peak_lrs": list(peak_lrs),
        "max_grad_norm": getattr(args, "max_grad_norm", None),
        "step_convention": (
            "global step s uses the multiplier m(s-1); transitions are schedule indices t (effective at global step "
            "t+1)"
        ),
    }
    if schedule is None:
        payload.update(
            total_steps=None, warmup_steps=None, transitions=[], planned_steps=[], planned_lr=[], planned_momentum=None
        )
        return payload
    total = schedule.total_steps
    stride = max(1, math.ceil(total / _TRACE_POINTS))
    indices = list(range(0, total, stride))
    if indices and indices[-1] != total - 1:
        indices.append(total - 1)
    peak = peak_lrs[0] if peak_lrs else 1.0
    payload.update(
        total_steps=total,
        warmup_steps=schedule.warmup_steps,
        metric_driven=schedule.metric_driven,
        transitions=[asdict(t) for t in schedule.transitions],
        planned_steps=[t + 1 for t in indices],
        planned_lr=[peak * schedule.lr(t) for t in indices],
        planned_momentum=[schedule.momentum(t) for t in indices] if schedule.momentum is not None else None,
    )
    return payload


# ------------------------------------------------------------------------------------------------
# 2. Spike attribution

ADVICE = {
    "warmup_end": "an early spike at the end of warmup: lengthen warmup or lower the peak LR; keep clipping on",
    "restart": (
        "a spike at a warm restart: lower the restart peak (lr_scheduler_kwargs.peak_decay) or the peak LR; keep "
        "clipping on"
    ),
    "step_drop": (
        "a spike at a step drop: usually transient; if it repeats lower the peak LR or prefer a smooth decay (cosine)"
    ),
    "decay_start": "a spike as the cool-down starts: usually transient; if it repeats lower the peak LR",
    None: "check the data pipeline (a bad batch looks like an LR problem), then lower the peak LR or add clipping",
}


@dataclass
class Spike:
    """One detected loss spike. ``steps`` are the optimizer steps the logged loss averages over."""

    step: int
    loss: float
    median: float
    threshold: float
    learning_rate: float | None
    steps: tuple[int, int]
    transition: dict | None = None
    steps_after_transition: int | None = None
    advice: str = ""
    overrides: list[str] = field(default_factory=list)

    def line(self) -> str:
        ratio = self.loss / self.median if self.median > 0 else float("inf")
        where = (
            f"{self.steps_after_transition} step(s) after {self.transition['label']}"
            if self.transition is not None
            else "at no schedule transition"
        )
        fix = f" ({' '.join(self.overrides)})" if self.overrides else ""
        return (
            f"[ftrecipes] loss spike at step {self.step}: {self.loss:.4g} = {ratio:.1f}x the running median "
            f"{self.median:.4g}, {where} -> {self.advice}{fix}"
        )


def align(
    steps: tuple[int, int], transitions: Sequence[Transition], *, before: int = 1, after: int = 10
) -> Transition | None:
    """The latest transition ``t`` whose window ``[t - before, t + after]`` (schedule indices) meets the
    optimizer steps ``steps`` (global steps ``a..b`` used schedule indices ``a-1..b-1``)."""
    first, last = steps[0] - 1, steps[1] - 1
    hits = [t for t in transitions if first <= t.step + after and last >= t.step - before]
    return max(hits, key=lambda t: t.step) if hits else None


class SpikeMonitor(TrainerCallback):
    """Detects training-loss spikes and says whether each lines up with a schedule transition.

    A logged loss ``L`` is a spike when, over the previous ``window`` logged losses (at least
    ``min_history`` of them)::

        L > median + k * sigma     and     L > min_ratio * median

    (``sigma`` the scaled MAD of :class:`RobustWindow`; the ratio keeps a near-constant loss, whose
    MAD is ~0, from flagging noise). A spike is *aligned* with a transition at schedule index ``t``
    when the optimizer steps it covers meet ``[t - before, t + after]``. Each spike is printed as one
    line with the step, the transition and the matching advice; all of them go to
    ``output_dir/spikes.json`` at train end.
    """

    def __init__(
        self,
        schedule: BuiltSchedule | None = None,
        *,
        window: int = 50,
        min_history: int = 10,
        k: float = 6.0,
        min_ratio: float = 1.2,
        before: int = 1,
        after: int = 10,
        verbose: bool = True,
    ):
        if min_history < 3 or window < min_history:
            raise ValueError(f"need 3 <= min_history <= window, got {min_history=} {window=}")
        self.schedule = schedule
        self.window, self.min_history, self.k, self.min_ratio = window, min_history, k, min_ratio
        self.before, self.after, self.verbose = before, after, verbose
        self.spikes: list[Spike] = []
        self._history = RobustWindow(window)
        self._transitions: list[Transition] = []
        self._resolved: BuiltSchedule | None = None
        self._peak = 0.0
        self._last_logged_step = 0

    def on_train_begin(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
        self._resolved = _built_schedule(self.schedule, lr_scheduler)
        self._transitions = list(self._resolved.transitions) if self._resolved else []
        self._peak = _peak_lrs(lr_scheduler, optimizer, args)[0]
        self._last_logged_step = state.global_step
        # A fresh train() call starts a fresh report; after a resume the restored log_history seeds the
        # window, so detection works from the first step instead of after min_history new logs.
        self.spikes = []
        self._history = RobustWindow(self.window)
        for loss in _logged_losses(state):
            self._history.add(loss)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        loss = float(logs["loss"])
        steps = (self._last_logged_step + 1, state.global_step)
        self._last_logged_step = state.global_step
        if len(self._history) >= self.min_history and math.isfinite(loss):
            median, sigma = self._history.median(), self._history.sigma()
            threshold = max(median + self.k * sigma, self.min_ratio * median)
            if loss > threshold:
                self._record(args, state, loss, median, threshold, steps, logs.get("learning_rate"))
        self._history.add(loss)

    def _record(self, args, state, loss, median, threshold, steps, lr) -> None:
        transition = align(steps, self._transitions, before=self.before, after=self.after)
        kind = transition.kind if transition is not None else None
        overrides = (
            suggested_overrides(args, self._peak, self._resolved, warmup=kind in ("warmup_end", None))
            if self._peak
            else []
        )
        spike = Spike(
            step=state.global_step,
            loss=loss,
            median=median,
            threshold=threshold,
            learning_rate=lr,
            steps=steps,
            transition=asdict(transition) if transition else None,
            steps_after_transition=(steps[1] - 1 - transition.step) if transition else None,
            advice=ADVICE.get(kind, ADVICE[None]),
            overrides=overrides,
        )
        self.spikes.append(spike)
        if self.verbose and state.is_world_process_zero:
            _say(spike.line())

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        payload = {
            "detector": {
                "rule": "loss > max(median + k*1.4826*MAD, min_ratio*median) over the last `window` logged losses",
                "window": self.window,
                "min_history": self.min_history,
                "k": self.k,
                "min_ratio": self.min_ratio,
                "aligned_if_within_steps": [-self.before, self.after],
            },
            "transitions": [asdict(t) for t in self._transitions],
            "spikes": [asdict(s) for s in self.spikes],
        }
        _write_json(os.path.join(args.output_dir, SPIKES_FILE), payload)


# ------------------------------------------------------------------------------------------------
# 3. Divergence guard


class DivergenceGuard(TrainerCallback):
    """Stops a run whose loss goes non-finite or explodes, before a bad checkpoint is written.

    Two checks:

    * **non-finite gradients**, every optimizer step, in ``on_pre_optimizer_step`` (after clipping,
      before ``optimizer.step()``): a NaN/inf loss always shows up here, even when the Trainer's
      ``logging_nan_inf_filter`` hides it from the logs. The gradients are then set to ``None`` so the
      optimizer **skips the update** entirely (AdamW/SGD leave a parameter with no gradient untouched:
      no step, no weight decay, no moment update — zeroing them would still decay and move the
      weights), which keeps the weights and optimizer state in memory at their last good values.
      ``mode="stop"`` ends the run there; ``mode="skip"`` counts the step (``skipped_steps`` in the
      logs) and goes on, and gives up after ``max_consecutive_skips`` bad steps in a row. The LR
      schedule still advances over a skipped step (it counts optimizer steps, not successful ones).
      Under fp16 the loss scaler itself skips overflowing steps and lowers the scale, so those are left
      to it and only ``max_consecutive_skips`` overflows in a row count as divergence.
    * **exploding loss**, at each training log: ``loss > explode_factor * median`` of the previous
      logged losses (``min_history`` at least) *and* above the first logged loss (training has undone
      its progress), or a non-finite logged loss.

    On divergence it sets ``should_training_stop``, and ``should_save = False`` /
    ``should_evaluate = False`` at the bad step and at the epoch end that follows (it runs after
    ``DefaultFlowCallback``, see :func:`install_callbacks`), so the last checkpoint on disk stays the
    last good one. It prints one message with the concrete next overrides, writes
    ``output_dir/divergence.json`` and sets :attr:`diverged`; the caller turns that into exit code 1
    with :attr:`exit_code`. Decisions use all-reduced gradients and the
    process-averaged loss, so every process stops at the same step.

    **Cost.** The gradient check reads the global norm the Trainer has just computed for clipping and
    logging (pre-clip, all-reduced; under fp16 unscaled) instead of a second pass over every gradient:
    :meth:`attach` (called by :func:`add_monitoring`) receives the return value of the Trainer's
    ``_get_grad_norm``, which transformers 5.x calls exactly once per optimizer step, right before
    ``on_pre_optimizer_step`` — the event itself is given no norm. What remains per step is one
    scalar ``isfinite`` read (free on CPU; on CUDA one small host sync after the clip kernels, next to
    the loss sync the Trainer's ``logging_nan_inf_filter`` already does every micro-batch). A guard
    installed without :meth:`attach`, or on a Trainer without that method, computes the norm itself
    (:attr:`own_norm_passes` counts those passes).
    """

    def __init__(
        self,
        schedule: BuiltSchedule | None = None,
        *,
        mode: str = "stop",
        explode_factor: float = 10.0,
        window: int = 50,
        min_history: int = 10,
        max_consecutive_skips: int = 10,
        verbose: bool = True,
    ):
        if mode not in ("stop", "skip"):
            raise ValueError(f"mode must be 'stop' or 'skip', got {mode!r}")
        self.schedule = schedule
        self.mode, self.explode_factor, self.min_history = mode, explode_factor, min_history
        self.max_consecutive_skips, self.verbose = max_consecutive_skips, verbose
        self.window = window
        self.diverged = False
        self.report: dict | None = None
        self.skipped_steps = 0
        self._consecutive = 0
        self._skipped_since_log = 0
        self._history = RobustWindow(window)
        self._first_loss: float | None = None
        self._stop_now = False
        self._resolved: BuiltSchedule | None = None
        self._peak = 0.0
        self._trainer_norm: Any = None  # the Trainer's norm of the step being taken (see attach)
        self.own_norm_passes = 0

    def attach(self, trainer: Any) -> None:
        """Receive the gradient norm ``trainer`` computes each optimizer step (for clipping and the
        logged ``grad_norm``) so the guard needs no pass of its own. Why a wrapper: the Trainer does
        not hand the norm to ``on_pre_optimizer_step`` (transformers 5.24 ``_inner_training_loop``),
        and ``_get_grad_norm`` is the one place it returns it. Without that method nothing changes and
        the guard falls back to computing the norm."""
        compute = getattr(trainer, "_get_grad_norm", None)
        if compute is None or getattr(compute, "__self__", None) is not trainer:
            return  # another transformers version, or already wrapped

        def _get_grad_norm(model, grad_norm=None):
            norm = compute(model, grad_norm=grad_norm)
            self._trainer_norm = norm
            return norm

        trainer._get_grad_norm = _get_grad_norm

    # -- results -------------------------------------------------------------------------------
    @property
    def exit_code(self) -> int:
        """0 for a healthy run, 1 (:data:`DIVERGED_EXIT_CODE`) after divergence."""
        return DIVERGED_EXIT_CODE if self.diverged else 0

    @property
    def message(self) -> str:
        return self.report["message"] if self.report else ""

    # -- events --------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
        self._resolved = _built_schedule(self.schedule, lr_scheduler)
        self._peak = _peak_lrs(lr_scheduler, optimizer, args)[0]
        self.diverged, self.report, self._stop_now = False, None, False
        self.skipped_steps = self._consecutive = self._skipped_since_log = 0
        self._history = RobustWindow(self.window)
        losses = _logged_losses(state)  # non-empty after a resume
        self._first_loss = losses[0] if losses else None
        for loss in losses:
            self._history.add(loss)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        total, self._trainer_norm = self._trainer_norm, None
        if self.diverged or model is None:
            return
        if total is None:  # not attached (or DeepSpeed, which returns no norm): one pass of our own
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if not grads:
                return  # DeepSpeed/FSDP keep gradients elsewhere; the loss check still applies
            self.own_norm_passes += 1
            total = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
        # One scalar read: the price of catching a NaN before it is applied.
        if math.isfinite(float(total)):
            self._consecutive = 0
            return
        step = state.global_step + 1  # the step being taken
        self._consecutive += 1
        if getattr(args, "fp16", False):
            # The GradScaler skips this step and lowers the scale by itself; only a collapse is ours.
            if self._consecutive >= self.max_consecutive_skips:
                self._diverge(
                    args, state, step, f"{self._consecutive} fp16 overflows in a row (the loss scale collapsed)", None
                )
            return
        for p in model.parameters():
            p.grad = None  # the optimizer skips parameters without a gradient: no update at all
        self.skipped_steps += 1
        self._skipped_since_log += 1
        if self.mode == "stop":
            self._diverge(args, state, step, "non-finite loss/gradients (NaN or inf); the update was skipped", None)
        elif self._consecutive >= self.max_consecutive_skips:
            self._diverge(args, state, step, f"{self._consecutive} non-finite steps in a row (skip mode gave up)", None)
        elif self.verbose and state.is_world_process_zero:
            _say(f"[ftrecipes] step {step}: non-finite loss/gradients, batch skipped ({self.skipped_steps} so far)")

    def on_step_end(self, args, state, control, **kwargs):
        if self._stop_now:
            self._halt(control)
            control.should_log = True  # record the bad step in log_history

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        loss = float(logs["loss"])
        skipped_here, self._skipped_since_log = self._skipped_since_log, 0
        if self.diverged:
            self._halt(control)
            return
        if not math.isfinite(loss):
            if not skipped_here:  # a skipped NaN step is already handled
                self._diverge(args, state, state.global_step, f"non-finite training loss ({loss})", loss)
                self._halt(control)
            return
        if self._first_loss is None:
            self._first_loss = loss
        if len(self._history) >= self.min_history:
            median = self._history.median()
            if loss > self.explode_factor * median and loss > self._first_loss:
                reason = (
                    f"loss exploded to {loss:.4g} ({loss / median:.0f}x the running median {median:.4g}, above the "
                    f"first logged loss {self._first_loss:.4g})"
                )
                self._diverge(args, state, state.global_step, reason, loss)
                self._halt(control)
                return
        self._history.add(loss)

    def log_values(self) -> dict[str, int]:
        """``skipped_steps`` once a batch was skipped (merged into training logs by ``RecipeTrainer.log``)."""
        return {"skipped_steps": self.skipped_steps} if self.skipped_steps else {}

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.diverged:
            self._halt(control)  # DefaultFlowCallback has just asked for an epoch-end save/eval

    # -- internals -----------------------------------------------------------------------------
    def _halt(self, control) -> None:
        control.should_training_stop = True
        control.should_save = False
        control.should_evaluate = False
        self._stop_now = False

    def _diverge(self, args, state, step: int, reason: str, loss: float | None) -> None:
        self.diverged = True
        self._stop_now = True
        last = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
        overrides = suggested_overrides(args, self._peak, self._resolved) if self._peak else []
        keep = f"last good checkpoint kept: {last}" if last else "no checkpoint had been saved yet"
        message = (
            f"[ftrecipes] training diverged at step {step}: {reason}. Stopped; {keep}. "
            f"Next try: {' '.join(overrides)}; if it persists check initialisation/normalisation, "
            "mixed-precision loss scaling and the data pipeline."
        )
        self.report = {
            "step": step,
            "reason": reason,
            "loss": loss,
            "mode": self.mode,
            "skipped_steps": self.skipped_steps,
            "last_checkpoint": last,
            "suggested_overrides": overrides,
            "message": message,
        }
        if state.is_world_process_zero:
            _write_json(os.path.join(args.output_dir, DIVERGENCE_FILE), self.report)
            if self.verbose:
                _say(message)


# ------------------------------------------------------------------------------------------------
# The three together


@dataclass
class Monitoring:
    """The callbacks :func:`add_monitoring` installed; ``exit_code`` is what a script should return."""

    logger: ScheduleLogger
    spikes: SpikeMonitor | None
    guard: DivergenceGuard | None

    @property
    def exit_code(self) -> int:
        return self.guard.exit_code if self.guard is not None else 0


def add_monitoring(
    trainer: Any,
    schedule: BuiltSchedule | None = None,
    *,
    on_divergence: str = "stop",
    spikes: bool = True,
    guard: bool = True,
) -> Monitoring:
    """Install the logger, the spike monitor and the divergence guard on ``trainer`` in the right
    place (see :func:`install_callbacks`). ``schedule`` defaults to the scheduler's own
    ``built_schedule`` (any :class:`~ftrecipes.training.lr_scheduler.ScheduleLR`); ``on_divergence`` is
    ``"stop"`` or ``"skip"`` (skip batches with a non-finite loss, count them)."""
    monitoring = Monitoring(
        logger=ScheduleLogger(schedule),
        spikes=SpikeMonitor(schedule) if spikes else None,
        guard=DivergenceGuard(schedule, mode=on_divergence) if guard else None,
    )
    install_callbacks(
        trainer, [cb for cb in (monitoring.logger, monitoring.spikes, monitoring.guard) if cb is not None]
    )
    if monitoring.guard is not None:
        monitoring.guard.attach(trainer)  # reuse the Trainer's gradient norm: no extra pass per step
    return monitoring
