"""Launch checks: what ``accelerate launch`` / ``torchrun`` asked for, checked before anything loads.

A launcher talks to the training script through environment variables — ``torchrun`` sets
``WORLD_SIZE`` / ``RANK`` / ``LOCAL_WORLD_SIZE``; ``accelerate launch`` adds ``ACCELERATE_USE_FSDP``,
``ACCELERATE_USE_DEEPSPEED``, ``ACCELERATE_DEEPSPEED_CONFIG_FILE`` and ``ACCELERATE_USE_CPU``
(accelerate ``utils/launch.py``) — and ``TrainingArguments`` turns them into a process group. Several
ways of launching look fine and then do something else; each is caught here with one line naming the
setting and the fix (a :class:`~ftrecipes.config.errors.ConfigError`, exit 2):

* **DeepSpeed would own the schedule.** A DeepSpeed config with a ``"scheduler"`` block makes
  transformers hand the run a ``DummyScheduler`` built by DeepSpeed and ignore the recipe's schedule;
  an ``"optimizer"`` block replaces the recipe's AdamW and its weight-decay groups
  (transformers ``integrations/deepspeed.py`` ``deepspeed_optim_sched``; LlamaFactory#1515,
  DeepSpeed#7303). The shipped DeepSpeed JSONs (``ftrecipes configs``) have neither.
* **An engine that cannot engage.** FSDP and DeepSpeed shard over GPUs. On a machine without one
  (or with ``use_cpu``), Trainer either drops the FSDP settings and runs plain DDP, or lets each
  process train alone — a silent fallback, so it is an error here.
* **N processes that Trainer sees as 1.** ``accelerate launch`` with a multi-GPU config on a
  machine without GPUs starts N processes through torchrun but does not pass ``use_cpu`` on; each
  process then builds a one-process Trainer, trains alone on all the data and writes the same files.
  With no engine requested this is made to work (``use_cpu=True``: DDP over gloo, logged); a launch
  still seen as one process after that is an error (:func:`check_world_size`).

Only the main process writes shared files (``plan.json``, ``recipe.yaml``, curves, reports): the
writers check ``is_world_process_zero``, which is only true on one process once the checks above hold.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from ftrecipes.config.env import is_true
from ftrecipes.config.errors import USAGE_EXIT_CODE, ConfigError

logger = logging.getLogger(__name__)

# What a pip user runs to get the shipped configs (ftrecipes.config.launch_configs), named in every fix.
CPU_LAUNCH_CONFIG = "cpu.yaml"
CPU_LAUNCH = "`ftrecipes configs cp cpu .` then `accelerate launch --config_file cpu.yaml -m ftrecipes.train ...`"
DEEPSPEED_EXAMPLE = "`ftrecipes configs cp deepspeed-zero2.json .` writes a working one"

# What each DeepSpeed block would take away from the recipe (transformers integrations/deepspeed.py).
_DEEPSPEED_BLOCKS = {
    "optimizer": "the recipe's optimizer and its weight-decay groups (DeepSpeed builds its own)",
    "scheduler": "the recipe's LR schedule (Trainer hands the run a DummyScheduler that DeepSpeed drives)",
}


# Each launcher names a process's rank on its machine: torchrun (and accelerate launch, which starts
# torchrun) LOCAL_RANK, MPI launchers their own; the list is accelerate's (utils/environment.py).
_LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def is_local_main_process(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is the first on its machine: true without a launcher, and under one for
    local rank 0 only."""
    env = os.environ if environ is None else environ
    for name in _LOCAL_RANK_VARIABLES:
        value = env.get(name, "").strip()
        if value:
            try:
                return int(value) <= 0  # torch writes -1 for "not launched"
            except ValueError:
                return True  # an unreadable rank must not hide the reason for the exit
    return True


def refuse(program: str, error: ConfigError, environ: Mapping[str, str] | None = None, wait_s: float = 60.0) -> int:
    """Print ``<program>: error: <error>`` on stderr and return the exit code of bad input, once per
    machine under a launcher.

    Every process of a launch meets the same bad input, so the first process on each machine prints
    the line (each machine's terminal shows its own processes, as Trainer logs once per node). The
    others wait for the launcher to stop them: torchrun (which accelerate launch starts) stops the rest
    as soon as one process exits, so a silent process that exited first would get the one with the
    line killed before it printed it. One still running after ``wait_s`` (the refusal was its own, or
    its launcher lets processes run on) prints its line too.
    """
    if not is_local_main_process(environ):
        time.sleep(wait_s)
    print(f"{program}: error: {error}", file=sys.stderr, flush=True)
    return USAGE_EXIT_CODE


def has_accelerator() -> bool:
    """Whether this machine has a device FSDP/DeepSpeed can shard over (CUDA, XPU, ...)."""
    import torch

    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: one question for every backend
    if accelerator is not None:
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


@dataclass(frozen=True)
class Launch:
    """What the launcher asked for, read from the environment and the TrainingArguments flags."""

    world_size: int = 1
    fsdp: bool = False
    deepspeed: Optional[Any] = None  # a path, a JSON string or a dict (TrainingArguments.deepspeed)
    deepspeed_source: str = "--deepspeed"
    use_cpu: bool = False
    use_cpu_given: bool = False  # --use_cpu was on the command line (true or false)

    @property
    def engine(self) -> Optional[str]:
        if self.deepspeed is not None:
            return "DeepSpeed"
        if self.fsdp:
            return "FSDP"
        return None


def read_launch(
    training_overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Launch:
    """The :class:`Launch` of this process from ``environ`` (default ``os.environ``) and the
    TrainingArguments flags given on the command line (``--deepspeed``, ``--fsdp``, ``--use_cpu``)."""
    env = os.environ if environ is None else environ
    overrides = dict(training_overrides or {})
    deepspeed, source = overrides.get("deepspeed"), "--deepspeed"
    if deepspeed is None and is_true(env.get("ACCELERATE_USE_DEEPSPEED")):
        source = "deepspeed_config_file"
        deepspeed = env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE") or {}
    fsdp_flag = overrides.get("fsdp")
    fsdp = is_true(env.get("ACCELERATE_USE_FSDP")) or bool(
        fsdp_flag and str(fsdp_flag).strip().lower() not in ("false", "none", "")
    )
    use_cpu_given = "use_cpu" in overrides
    use_cpu = is_true(overrides["use_cpu"]) if use_cpu_given else is_true(env.get("ACCELERATE_USE_CPU"))
    try:
        world_size = int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(
            "WORLD_SIZE",
            env.get("WORLD_SIZE"),
            "is not a number",
            "launch with torchrun or accelerate launch, which set it",
        ) from None
    return Launch(
        world_size=world_size,
        fsdp=fsdp,
        deepspeed=deepspeed,
        deepspeed_source=source,
        use_cpu=use_cpu,
        use_cpu_given=use_cpu_given,
    )


def load_deepspeed_config(config: Any, field: str = "--deepspeed") -> dict:
    """A DeepSpeed config given as a dict, a JSON string or a path to a JSON file, as a dict."""
    if isinstance(config, Mapping):
        return dict(config)
    text = str(config).strip()
    if text.startswith("{"):
        source = text
    else:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(
                field,
                text,
                "is not a DeepSpeed config file",
                f"give a JSON file (paths are relative to where you launch): {DEEPSPEED_EXAMPLE}",
            )
        source = path.read_text()
    try:
        loaded = json.loads(source)
    except json.JSONDecodeError as err:
        raise ConfigError(
            field, text, f"is not valid JSON ({err.msg} at line {err.lineno})", f"fix the file: {DEEPSPEED_EXAMPLE}"
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(field, text, "must hold a JSON object", f"write a JSON object: {DEEPSPEED_EXAMPLE}")
    return loaded


def check_deepspeed_config(config: Any, field: str = "--deepspeed") -> dict:
    """The DeepSpeed config as a dict, refused when it would replace the recipe's optimizer or schedule.

    Raises a :class:`ConfigError` naming the blocks, what DeepSpeed would replace and the fix.
    """
    loaded = load_deepspeed_config(config, field)
    blocks = [name for name in _DEEPSPEED_BLOCKS if name in loaded]
    if blocks:
        described = "; ".join(
            f'"{name}" ({loaded[name].get("type", "?") if isinstance(loaded[name], dict) else loaded[name]}) would '
            f"replace {_DEEPSPEED_BLOCKS[name]}"
            for name in blocks
        )
        quoted = " and ".join(f'"{name}"' for name in blocks)
        value = config if not isinstance(config, Mapping) else None
        raise ConfigError(
            field,
            value,
            f"has {described}",
            f"remove the {quoted} block{'s' if len(blocks) > 1 else ''} so the recipe's own are used "
            "(as in the file `ftrecipes configs cp deepspeed-zero2.json .` writes)",
        )
    return loaded


def check_launch(
    training_overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    accelerator_available: Optional[bool] = None,
) -> dict:
    """Check the launch before anything loads; returns the TrainingArguments overrides to train with.

    * a DeepSpeed config (``--deepspeed`` or accelerate's ``deepspeed_config_file``) with an
      ``optimizer`` or ``scheduler`` block: error;
    * FSDP or DeepSpeed requested without a GPU (or with ``use_cpu``): error, never a silent fallback;
    * several processes, no engine, no GPU and ``--use_cpu`` not given: ``use_cpu=True`` is added, so the
      processes form one DDP run over gloo instead of N runs each seeing one process.
    """
    launch = read_launch(training_overrides, environ)
    overrides = dict(training_overrides or {})
    if launch.deepspeed is not None and launch.deepspeed != {}:
        check_deepspeed_config(launch.deepspeed, launch.deepspeed_source)
    available = has_accelerator() if accelerator_available is None else accelerator_available
    if launch.engine is not None and (launch.use_cpu or not available):
        where = "with use_cpu" if launch.use_cpu else "on a machine without a GPU"
        if launch.engine == "FSDP":
            field, value = (
                ("ACCELERATE_USE_FSDP", "true") if not overrides.get("fsdp") else ("--fsdp", overrides.get("fsdp"))
            )
            effect = "Trainer would drop the FSDP settings and run plain DDP, or let each process train alone"
        else:
            field, value = (
                launch.deepspeed_source,
                (launch.deepspeed if isinstance(launch.deepspeed, str) else "ACCELERATE_USE_DEEPSPEED"),
            )
            effect = "Trainer cannot start the DeepSpeed engine"
        raise ConfigError(
            field,
            value,
            f"{launch.engine} cannot engage {where}: {effect}",
            f"run it on GPUs, or train data-parallel on CPU: {CPU_LAUNCH}",
        )
    if (
        launch.world_size > 1
        and launch.engine is None
        and not available
        and not launch.use_cpu
        and not launch.use_cpu_given
    ):
        # accelerate launch does not forward a config's `use_cpu` to torchrun's processes; without it
        # each would build a one-process Trainer. There is nothing else N processes on CPU can mean.
        logger.info(
            "%d processes and no GPU: training data-parallel on CPU over gloo (use_cpu=True)", launch.world_size
        )
        overrides["use_cpu"] = True
    return overrides


def check_world_size(args, environ: Mapping[str, str] | None = None) -> None:
    """After ``TrainingArguments`` exist: the launcher's process count must be the one Trainer sees.

    Otherwise each of the N processes would train alone on all the data and write the same files.
    """
    env = os.environ if environ is None else environ
    launched = int(env.get("WORLD_SIZE", "1") or 1)
    seen = max(1, int(getattr(args, "world_size", 1)))
    if launched > 1 and seen != launched:
        fix = (
            "on CPU drop --use_cpu false (or set ACCELERATE_USE_CPU=true)"
            if not getattr(args, "use_cpu", False)
            else "check the launcher's settings"
        )
        raise ConfigError(
            "WORLD_SIZE",
            str(launched),
            f"the launcher started {launched} processes but Trainer sees {seen}, so each would train alone on all the "
            "data and write the same files",
            fix,
        )


def is_sharded_engine(args, environ: Mapping[str, str] | None = None) -> Optional[str]:
    """``"FSDP"`` or ``"DeepSpeed"`` when ``args`` (or the launcher) turn one on, else ``None``."""
    env = os.environ if environ is None else environ
    if getattr(args, "deepspeed", None) or is_true(env.get("ACCELERATE_USE_DEEPSPEED")):
        return "DeepSpeed"
    if getattr(args, "fsdp", None) or is_true(env.get("ACCELERATE_USE_FSDP")):
        return "FSDP"
    return None


def check_optimizers_path(args, environ: Mapping[str, str] | None = None) -> None:
    """For ``recipe_optimizers``: a prebuilt ``(optimizer, scheduler)`` pair cannot work under FSDP or
    DeepSpeed — Trainer refuses ``optimizers=`` under FSDP ("override create_optimizer_and_scheduler"),
    and under DeepSpeed it creates them itself after the engine wraps the model. ``RecipeTrainer``
    installs the recipe's through ``create_optimizer`` / ``create_scheduler``, which both engines call."""
    engine = is_sharded_engine(args, environ)
    if engine is not None:
        raise ConfigError(
            "optimizers",
            "recipe_optimizers(...)",
            f"a prebuilt optimizer and scheduler cannot be used under {engine}",
            "use ftrecipes.RecipeTrainer(recipe=..., args=..., model=...) instead of "
            "Trainer(optimizers=recipe_optimizers(...))",
        )


def cpu_threads_for(requested: Optional[int], environ: Mapping[str, str], cores: int) -> Optional[int]:
    """The torch threads of one CPU process, or None to keep what torch took from ``OMP_NUM_THREADS``.

    ``--cpu_threads`` wins; else an ``OMP_NUM_THREADS`` the user set is kept; else cores / local
    processes. Launchers put OMP_NUM_THREADS=1 in every process's environment whether or not the user
    asked (``torchrun`` marks its processes with ``LOCAL_WORLD_SIZE``, ``accelerate launch`` with
    ``ACCELERATE_MIXED_PRECISION``), which on a single-process launch leaves all cores but one idle
    (about 2x slower on 2 cores), so under a launcher the value is not taken as the user's. Outside
    one it is: two jobs (or test workers) sharing a machine each ask for their share that way.
    """
    if requested is not None:
        if requested < 1:
            raise ConfigError("--cpu_threads", requested, "must be at least 1", "omit it to use every available core")
        return requested
    launched = "LOCAL_WORLD_SIZE" in environ or "ACCELERATE_MIXED_PRECISION" in environ
    if "OMP_NUM_THREADS" in environ and not launched:
        return None
    return max(1, cores // max(1, int(environ.get("LOCAL_WORLD_SIZE", "1"))))


__all__ = [
    "Launch",
    "read_launch",
    "check_launch",
    "check_world_size",
    "check_deepspeed_config",
    "load_deepspeed_config",
    "check_optimizers_path",
    "is_sharded_engine",
    "has_accelerator",
    "CPU_LAUNCH_CONFIG",
    "CPU_LAUNCH",
    "cpu_threads_for",
    "is_local_main_process",
    "refuse",
]
