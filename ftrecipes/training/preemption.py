"""Stopping and resuming a job: preemption (SIGTERM / SIGINT) and the plan kept with each checkpoint.

**Preemption.** Clusters end jobs with SIGTERM (Slurm, Kubernetes, spot instances) and give a grace
period; torchrun forwards it to every worker and waits 30 s before SIGKILL. :class:`PreemptionCallback`
turns the signal into a clean stop through Trainer's own control flow: the handler only records the
signal; at the end of the current optimizer step the processes agree (one all-reduce of the signal
number, so a signal that reached one rank stops all of them at the same step), and the callback sets
``control.should_save`` and ``control.should_training_stop``. Trainer then saves ``checkpoint-<step>``
(weights, optimizer, scheduler, RNG states, ``trainer_state.json``) and leaves the loop. The job writes
``preempted.json`` (signal, step, checkpoint) and exits with ``128 + signal`` — 143 for SIGTERM, 130 for
SIGINT, the shell's code for "ended by that signal", so schedulers that requeue on it still do. Running
the same command again resumes from that checkpoint (``finetune.py`` picks up the last checkpoint in
``output_dir``); the LR at every later step and the final weights equal an uninterrupted run.
A signal that arrives before training starts keeps its default effect (nothing is worth saving yet);
repeated signals are one request (torchrun re-sends the signal it receives to its workers).

**The plan kept with the checkpoint.** The schedule is a function of the optimizer step, sized from
the first launch: total optimizer steps, warmup, peak LR and the global batch (per-device batch x
processes x accumulation). :class:`PlanRecordCallback` writes them into every checkpoint as
``ftrecipes_plan.json``. :func:`check_resume_plan` compares a resumed launch with it: the same global
batch through another factorisation (2 processes x 4 -> 1 process x 4 x accumulation 2) gives the same
plan and continues exactly; a launch whose plan differs (another global batch, hence another step
count and scaled peak — transformers#43708) is refused with one line saying what would change, unless
``--replan`` is given: then the schedule is re-sized for the new launch (its total steps and warmup)
and continues from the checkpoint's optimizer-step count; the peak stays the checkpoint's (the restored
optimizer and scheduler state carry it), the first resumed step still uses the LR the optimizer was
saved with, and from the next step on the LR is the re-sized schedule's. The checkpoints record it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional

from transformers import TrainerCallback

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.files import write_json_atomic
from ftrecipes.config.outputs import CHECKPOINT_PLAN_FILE, PREEMPTION_FILE
from ftrecipes.config.timeline import args_global_batch_size

logger = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def preempted_exit_code(signum: int) -> int:
    """The exit code after a clean stop on ``signum``: ``128 + signum`` (SIGTERM 143, SIGINT 130)."""
    return 128 + int(signum)


class PreemptionCallback(TrainerCallback):
    """Finish the current optimizer step, save a checkpoint and stop when SIGTERM or SIGINT arrives.

    ``received`` is the signal number once the processes agreed to stop (``None`` otherwise);
    ``stopped_at`` the optimizer step saved.
    """

    def __init__(self, signals: tuple = HANDLED_SIGNALS):
        self.signals = tuple(signals)
        self.received: Optional[int] = None
        self.stopped_at: Optional[int] = None
        self._pending = 0
        self._previous: dict = {}

    def _handle(self, signum, frame):  # a signal handler only records: the training loop acts on it
        self._pending = int(signum)

    def on_train_begin(self, args, state, control, **kwargs):
        # signal.signal works only in the main thread (a Trainer run from a worker thread keeps the defaults).
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_end(self, args, state, control, **kwargs):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _agreed_signal(self, args) -> int:
        """The largest signal number any process has received: every rank stops at the same step."""
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return self._pending
        flag = torch.tensor([self._pending], dtype=torch.int64, device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        signum = self._agreed_signal(args)
        if signum and self.received is None:
            self.received, self.stopped_at = signum, state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


def write_preemption_report(output_dir: str, callback: PreemptionCallback, state: Any = None) -> dict:
    """``preempted.json``: what the stopped job did and how to go on (call on the main process)."""
    name = signal.Signals(callback.received).name
    report = {
        "signal": name,
        "exit_code": preempted_exit_code(callback.received),
        "global_step": callback.stopped_at,
        "max_steps": getattr(state, "max_steps", None),
        "checkpoint": os.path.join(output_dir, f"checkpoint-{callback.stopped_at}"),
        "resume": "run the same command again: it resumes from this checkpoint",
    }
    write_json_atomic(Path(output_dir) / PREEMPTION_FILE, report)
    return report


# ------------------------------------------------------------------------------------------------
# The plan kept with the checkpoint


def run_plan(args: Any, total_steps: int, warmup_steps: int) -> dict:
    """The plan of a run: what must not change when it resumes."""
    processes = max(1, int(getattr(args, "world_size", 1)))
    return {
        "total_steps": int(total_steps),
        "warmup_steps": int(warmup_steps),
        "learning_rate": float(args.learning_rate),
        "global_batch_size": args_global_batch_size(args, processes),
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "num_processes": processes,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
    }


class PlanRecordCallback(TrainerCallback):
    """Writes the run's plan into every checkpoint (``checkpoint-<step>/ftrecipes_plan.json``).

    ``replanned`` (from :func:`check_resume_plan` with ``--replan``) is recorded alongside.
    """

    def __init__(self, replanned: Optional[dict] = None):
        self.replanned = replanned

    def on_save(self, args, state, control, lr_scheduler=None, optimizer=None, **kwargs):
        if not state.is_world_process_zero:
            return
        schedule = getattr(lr_scheduler, "built_schedule", None)
        if schedule is None:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.is_dir():
            return
        record = run_plan(args, schedule.total_steps, schedule.warmup_steps)
        if getattr(lr_scheduler, "base_lrs", None):
            # The peak the schedule really multiplies, restored from the checkpoint on a resume: a group's
            # base LR over its layer-wise scale (1 without layer-wise LRs).
            group = getattr(optimizer, "param_groups", [{}])[0]
            record["learning_rate"] = float(lr_scheduler.base_lrs[0]) / float(group.get("lr_scale", 1.0))
        if self.replanned:
            record["replanned"] = self.replanned
        (folder / CHECKPOINT_PLAN_FILE).write_text(json.dumps(record, indent=2) + "\n")


def read_checkpoint_plan(checkpoint: str) -> Optional[dict]:
    path = Path(checkpoint) / CHECKPOINT_PLAN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _checkpoint_step(checkpoint: str) -> Optional[int]:
    state = Path(checkpoint) / "trainer_state.json"
    if state.is_file():
        return int(json.loads(state.read_text()).get("global_step", 0))
    return None


def check_resume_plan(
    checkpoint: Optional[str],
    args: Any,
    total_steps: int,
    warmup_steps: int,
    *,
    replan: bool = False,
    compare_learning_rate: bool = True,
) -> Optional[dict]:
    """Refuse a resume whose plan differs from the one kept in ``checkpoint`` (unless ``replan``).

    Returns ``None`` when there is nothing to compare or the plans agree; with ``replan`` and a
    difference, the record of the change (old plan, new plan, step), for :class:`PlanRecordCallback`.
    """
    if not checkpoint or checkpoint is True or not os.path.isdir(str(checkpoint)):
        return None
    saved = read_checkpoint_plan(str(checkpoint))
    if saved is None:
        logger.warning(
            "%s has no %s (written by an older run): the plan cannot be checked against it",
            checkpoint,
            CHECKPOINT_PLAN_FILE,
        )
        return None
    pinned_peak = "replanned" in saved  # an earlier --replan kept the checkpoint's peak, not this launch's
    saved = {k: v for k, v in saved.items() if k != "replanned"}
    now = run_plan(args, total_steps, warmup_steps)
    keys = ["global_batch_size", "total_steps", "warmup_steps"] + (
        ["learning_rate"] if compare_learning_rate and not pinned_peak else []
    )
    changed = [k for k in keys if not _same(saved.get(k), now[k])]
    if not changed:
        return None
    step = _checkpoint_step(str(checkpoint))
    if replan:
        # The optimizer and scheduler state restored from the checkpoint carry its peak (base_lrs):
        # the schedule is re-sized, the peak is kept.
        now["learning_rate"] = saved["learning_rate"]
        logger.warning(
            "--replan: continuing from optimizer step %s of %s with the schedule re-sized to %s (was %s)",
            step,
            checkpoint,
            now,
            saved,
        )
        return {"at_step": step, "previous": saved, "plan": now}

    def describe(p: dict) -> str:
        return (
            f"global batch {p['global_batch_size']}, {p['total_steps']} optimizer steps, warmup {p['warmup_steps']}, "
            f"peak LR {p['learning_rate']:.3g}"
        )

    factorisation = (
        f"{now['per_device_train_batch_size']} per device x {now['num_processes']} processes x "
        f"{now['gradient_accumulation_steps']} accumulation"
    )
    if "global_batch_size" in changed:
        fix = (
            f"relaunch with a global batch of {saved['global_batch_size']} (per-device batch x processes x "
            f"--gradient_accumulation_steps), or pass --replan to continue from step {step} with the schedule re-sized "
            "for this launch"
        )
    else:
        fix = (
            f"relaunch with the settings of the first launch, or pass --replan to continue from step {step} with the "
            "schedule re-sized for this launch"
        )
    raise ConfigError(
        "--resume_from_checkpoint",
        str(checkpoint),
        f"was planned for {describe(saved)}; this launch ({factorisation}) would make it {describe(now)}, "
        f"shifting the LR from step {step} on",
        fix,
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            a is not None
            and b is not None
            and abs(float(a) - float(b)) <= 1e-12 * max(abs(float(a)), abs(float(b)), 1e-30)
        )
    return a == b


__all__ = [
    "PreemptionCallback",
    "PlanRecordCallback",
    "write_preemption_report",
    "preempted_exit_code",
    "check_resume_plan",
    "read_checkpoint_plan",
    "run_plan",
    "resume_checkpoint",
    "stop_after_preemption",
    "HANDLED_SIGNALS",
]


def resume_checkpoint(args: Any, last_checkpoint: Optional[str]) -> Optional[str]:
    """The checkpoint folder a run will resume from: ``--resume_from_checkpoint`` (a folder, or
    ``True`` for the last one in ``output_dir``) or the one found in ``output_dir``."""
    from transformers.trainer_utils import get_last_checkpoint

    given = getattr(args, "resume_from_checkpoint", None)
    if given in (True, "True", "true"):
        return get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
    return given or last_checkpoint


def stop_after_preemption(trainer: Any, callback: PreemptionCallback, program: str = "finetune.py") -> int:
    """After ``trainer.train()`` returned on a signal: every process waits until the checkpoint is
    written, the main process writes ``preempted.json`` and one line; returns the exit code."""
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        report = write_preemption_report(trainer.args.output_dir, callback, trainer.state)
        print(
            f"{program}: stopped by {report['signal']} after optimizer step {report['global_step']} of "
            f"{report['max_steps']}: saved {report['checkpoint']}; run the same command to resume (exit "
            f"{report['exit_code']})",
            file=sys.stderr,
            flush=True,
        )
    trainer.accelerator.wait_for_everyone()
    return preempted_exit_code(callback.received)
