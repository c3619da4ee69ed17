"""Checks that run before anything is loaded: a mistake costs a second, not minutes of loading.

:func:`check_before_loading` is the first thing :func:`ftrecipes.job.run.build_training_components`
does, so every entry point that trains or loads (``scripts/finetune.py``, ``scripts/reproduce.py``,
``ftrecipes lr-find``) goes through it. In order:

1. the launch environment is consistent (``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` as ``torchrun`` and
   ``accelerate launch`` set them; no more processes per node than GPUs);
2. seeds lie in ``[0, 2**32 - 1]`` (the range NumPy's seeding accepts, which ``transformers.set_seed``
   uses);
3. the precision can run on this machine (:mod:`ftrecipes.training.precision`);
4. ``TrainingArguments(...)`` accepts the arguments — its ``ValueError`` becomes a one-line
   :class:`~ftrecipes.config.errors.ConfigError` naming the flag;
5. ``--output_dir`` is a folder that can be written, or created (probed by creating and removing an
   empty folder next to where it would go — ``os.access`` says yes for root even on ``/proc`` or a
   read-only mount);
6. data files exist and have a supported extension; with ``--streaming``, the run has ``--max_steps``,
   no duration in epochs and a way to know its classes (:func:`ftrecipes.data.streaming.check_streaming_job`);
7. model, config and tokenizer names resolve to a local folder holding the right files, or to a Hub
   id that is cached, or (online) that the Hub has (:mod:`ftrecipes.models.source`).

Nothing here writes to ``output_dir`` or loads a model or a data set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional

from ftrecipes.config.env import env_true
from ftrecipes.config.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import TrainingArguments

    from ftrecipes.job.parse import JobConfig

MAX_SEED = 2**32 - 1


# ------------------------------------------------------------------------------------------------
# The whole check


def check_before_loading(config: "JobConfig") -> "TrainingArguments":
    """Check everything that needs no model or data; returns the run's ``TrainingArguments``."""
    script, recipe = config.script, config.recipe
    overrides = dict(config.training_overrides)
    output_dir = overrides.pop("output_dir", None) or os.path.join("runs", recipe.name)
    check_launch_environment(use_cpu=bool(overrides.get("use_cpu")))
    check_seed("--seed", recipe.seed)
    check_seed("--data_seed", overrides.get("data_seed"))
    check_seed("--split_seed", script.split_seed)
    # The precision this machine can run (one line for --bf16 / --fp16 / a policy it cannot), and the
    # use_cpu that bf16 autocast on a CPU needs before TrainingArguments is built.
    from ftrecipes.training.precision import training_args_precision

    if training_args_precision(recipe.precision, overrides).get("use_cpu"):
        overrides.setdefault("use_cpu", True)
    args = training_arguments(recipe, output_dir, overrides)
    check_report_to(args.report_to)
    check_output_dir(args.output_dir, suggestion=os.path.join("runs", recipe.name))
    for field in ("train_file", "validation_file", "test_file"):
        check_data_file(f"--{field}", getattr(script, field))
    if script.streaming:
        from ftrecipes.data.streaming import check_streaming_job

        check_streaming_job(config, args)  # max_steps, no epochs, a label set it can know, a validation split
    check_models(config)
    return args


def check_early(config: "JobConfig") -> None:
    """The pre-load checks that need neither torch nor transformers, on the command line as the early
    parser read it (:func:`ftrecipes.job.parse.parse_args` runs this before transformers is imported).

    The launch variables, the seeds, the task's data flags and metric, ``--cpu_threads``, the output
    folder, the data files, the checkpoint to resume from, ``--merge_adapter`` and a DeepSpeed config's
    blocks. Each is the same check :func:`check_before_loading` and the job run later, on the same values,
    so a command line that passes here is never refused there for a reason checked here.
    """
    from ftrecipes.data.tasks import get_task
    from ftrecipes.training.launch import check_deepspeed_config, cpu_threads_for, read_launch

    script, recipe = config.script, config.recipe
    overrides = config.training_overrides
    check_launch_environment(use_cpu=bool(overrides.get("use_cpu")), count_gpus=False)
    check_seed("--seed", recipe.seed)
    check_seed("--data_seed", overrides.get("data_seed"))
    check_seed("--split_seed", script.split_seed)
    task = get_task(recipe.task, field="task")
    check_task_flags(script, task)
    check_task_metric(recipe, task)
    cpu_threads_for(script.cpu_threads, {}, 1)  # refuses a count below 1
    default_dir = os.path.join("runs", recipe.name)
    check_output_dir(overrides.get("output_dir") or default_dir, suggestion=default_dir)
    for field in ("train_file", "validation_file", "test_file"):
        check_data_file(f"--{field}", getattr(script, field))
    check_resume_from(overrides.get("resume_from_checkpoint"))
    check_merge_adapter(recipe, script)
    launch = read_launch(overrides)
    if launch.deepspeed is not None and launch.deepspeed != {}:
        check_deepspeed_config(launch.deepspeed, launch.deepspeed_source)


def check_task_flags(script, task) -> None:
    """A data flag that only other tasks read is an error naming it (e.g. --text_column_name for images)."""
    from ftrecipes.data.tasks import REGISTRY

    others = {flag for t in REGISTRY.values() for flag in t.flags} - set(task.flags)
    for flag in sorted(others):
        value = getattr(script, flag, None)
        if value is not None and value is not False:
            readers = ", ".join(t.name for t in REGISTRY.values() if flag in t.flags)
            takes = ", ".join(f"--{f}" for f in task.flags if hasattr(script, f))
            raise ConfigError(
                f"--{flag}",
                value,
                f"does not apply to task {task.name!r} (it is read by {readers})",
                f"remove it; task {task.name!r} takes {takes}",
            )


def check_task_metric(recipe, task) -> bool:
    """Whether ``recipe.metric_for_best_model`` is one ``task`` reports (always true without evaluation).

    ``False`` for the class default (``accuracy``) on a task without accuracy, which the job replaces by
    the task's own default; a metric the task never reports is an error now rather than a ``KeyError`` at
    the first checkpoint.
    """
    from ftrecipes.config.recipe import Recipe

    if recipe.eval_strategy == "no":
        return True
    metric = recipe.metric_for_best_model
    reported = ("loss", *task.metric_names)
    if metric.removeprefix("eval_") in reported:
        return True
    if metric == Recipe.__dataclass_fields__["metric_for_best_model"].default:
        return False
    raise ConfigError(
        "metric_for_best_model",
        metric,
        f"is not a metric of task {task.name!r}",
        f"use one of {', '.join(reported)} (default: {task.metric_for_best_model})",
    )


def check_resume_from(resume: Any) -> None:
    """``--resume_from_checkpoint`` is ``true`` (the last checkpoint in output_dir) or an existing folder."""
    if resume is not None and resume not in ("True", "true", True) and not os.path.isdir(resume):
        raise ConfigError(
            "--resume_from_checkpoint",
            resume,
            "is not a checkpoint folder",
            "give a checkpoint-N folder inside output_dir",
        )


def check_merge_adapter(recipe, script) -> None:
    """``--merge_adapter`` needs an adapter to merge."""
    if script.merge_adapter and recipe.peft == "none":
        raise ConfigError(
            "--merge_adapter",
            True,
            "there is no adapter to merge (peft: none)",
            "drop --merge_adapter or pass --peft lora",
        )


# ------------------------------------------------------------------------------------------------
# Launch environment


def _env_int(name: str, minimum: int) -> Optional[int]:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ConfigError(
            name,
            value,
            f"must be an integer >= {minimum}",
            "let `torchrun` or `accelerate launch` set it, or unset it for one process",
        )
    return number


def check_launch_environment(*, use_cpu: bool = False, count_gpus: bool = True) -> None:
    """The process-group variables a launcher sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``) must agree with each other; a
    ``WORLD_SIZE`` > 1 without them makes every process wait for peers that never come. With
    ``count_gpus``, no more processes per node than visible GPUs (this asks torch)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    launch = "launch with `torchrun --nproc_per_node N` or `accelerate launch`, or unset it to train in one process"
    if world is not None and world > 1:
        missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
        if missing:
            raise ConfigError(
                "WORLD_SIZE", str(world), f"asks for {world} processes but {', '.join(missing)} is not set", launch
            )
    if rank is not None and world is not None and rank >= world:
        raise ConfigError("RANK", str(rank), f"must be below WORLD_SIZE={world}", launch)
    if local_rank is not None and local_world is not None and local_rank >= local_world:
        raise ConfigError("LOCAL_RANK", str(local_rank), f"must be below LOCAL_WORLD_SIZE={local_world}", launch)
    on_cpu = use_cpu or env_true("ACCELERATE_USE_CPU")
    if count_gpus and local_world is not None and local_world > 1 and not on_cpu:
        import torch

        gpus = torch.cuda.device_count()
        if gpus and local_world > gpus:
            raise ConfigError(
                "LOCAL_WORLD_SIZE",
                str(local_world),
                f"starts more processes per node than the {gpus} visible GPUs",
                f"use --nproc_per_node {gpus} (or --num_processes {gpus})",
            )


# ------------------------------------------------------------------------------------------------
# Seeds and precision


def check_seed(flag: str, seed: Any) -> None:
    """A seed NumPy (and so ``transformers.set_seed``) accepts: an integer in ``[0, 2**32 - 1]``."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        fix = (
            f"use an integer in [0, {MAX_SEED}], e.g. {flag} 42" if seed != 42 else f"use an integer in [0, {MAX_SEED}]"
        )
        raise ConfigError(flag, seed, "is not a valid seed", fix)


# ------------------------------------------------------------------------------------------------
# TrainingArguments


def training_arguments(recipe, output_dir: str, overrides: Mapping[str, Any]) -> "TrainingArguments":
    """``recipe_training_args(recipe, output_dir, **overrides)`` with TrainingArguments' own
    validation errors turned into one line naming the flag (see :func:`training_args_errors`)."""
    from ftrecipes.training.arguments import recipe_training_args

    with training_args_errors(recipe, overrides):
        return recipe_training_args(recipe, output_dir, **overrides)


@contextlib.contextmanager
def training_args_errors(recipe, overrides: Mapping[str, Any]) -> Iterator[None]:
    """Turn ``TrainingArguments.__post_init__``'s ``ValueError`` into a :class:`ConfigError` naming the
    flag its message mentions (the flag if the user gave it, else the recipe's field).

    A ``TypeError`` is a bug unless a recipe interval (``eval_steps``) still holds a duration string
    TrainingArguments cannot compare (``'1ep'``): then it names that field; otherwise it propagates.
    """
    try:
        yield
    except ConfigError:
        raise
    except ValueError as err:
        field, value = _field_in_message(str(err), overrides)
        text = " ".join(str(err).split())
        if len(text) > 240:
            text = text[:237] + "..."
        fix = (
            f"change or drop {field}" if field.startswith("--") else f"change the recipe's {field} (or pass --{field})"
        )
        raise ConfigError(field, value, f"rejected by TrainingArguments: {text}", fix) from None
    except TypeError:
        for name in ("eval_steps", "save_steps", "logging_steps"):
            value = overrides.get(name, getattr(recipe, name, None))
            if isinstance(value, str) and not _is_number(value.strip().rstrip("%")):
                raise ConfigError(
                    f"--{name}",
                    value,
                    "TrainingArguments takes this interval as steps or a fraction of training",
                    f"give steps (e.g. --{name} 100) or a fraction (e.g. --{name} 0.1)",
                ) from None
        raise


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _field_in_message(message: str, overrides: Mapping[str, Any]) -> tuple[str, Any]:
    """The TrainingArguments field a validation message is about: the longest field name it contains,
    preferring fields the user gave. ``('TrainingArguments', None)`` when it names none."""
    import re

    from transformers import TrainingArguments

    names = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]
    mentioned = [n for n in names if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", message)]
    given = [n for n in mentioned if n in overrides]
    for pool in (given, mentioned):
        if pool:
            name = max(pool, key=len)
            return (f"--{name}", overrides[name]) if name in overrides else (name, None)
    return "TrainingArguments", None


def check_report_to(report_to: Any) -> None:
    """Every ``--report_to`` integration is one transformers knows and is installed (Trainer would
    otherwise fail in its constructor, after the model is loaded)."""
    from transformers.integrations import (
        get_available_reporting_integrations,
        get_reporting_integration_callbacks,
    )

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n for n in names if n not in ("none", "all")]
    available = get_available_reporting_integrations()
    for name in names:
        try:
            get_reporting_integration_callbacks([name])
        except ValueError:
            from ftrecipes.config.errors import did_you_mean

            raise ConfigError(
                "--report_to",
                name,
                "is not an integration transformers reports to",
                did_you_mean(name, list(dict.fromkeys([*available, "tensorboard", "wandb", "mlflow", "none"])))
                or "use --report_to none",
            ) from None
        if name not in available:
            raise ConfigError("--report_to", name, "is not installed", f"pip install {name}, or use --report_to none")


# ------------------------------------------------------------------------------------------------
# Output folder


def check_output_dir(output_dir: str, *, flag: str = "--output_dir", suggestion: str = "runs/my-run") -> None:
    """``output_dir`` is an existing writable folder, or can be created. Nothing is left behind."""
    path = Path(output_dir).expanduser()
    other = suggestion if Path(suggestion) != path else f"{suggestion}-2"
    if path.exists():
        if not path.is_dir():
            raise ConfigError(
                flag, output_dir, "exists and is a file, not a folder", f"give a folder, e.g. {flag} {other}"
            )
        if not os.access(path, os.W_OK | os.X_OK) or _read_only_mount(path):
            raise ConfigError(
                flag,
                output_dir,
                "is a folder this user cannot write to",
                f"choose a writable folder, e.g. {flag} {other}",
            )
        return
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            flag, output_dir, f"cannot be created: {ancestor} is a file", f"choose another folder, e.g. {flag} {other}"
        )
    try:
        # The real test: make (and remove) an empty folder where output_dir's first missing part
        # would go. os.access is not enough: root passes it on /proc and on read-only mounts.
        os.rmdir(tempfile.mkdtemp(prefix=".ftrecipes-probe-", dir=ancestor))
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            reason = f"{ancestor} does not accept new folders ({reason})"
        raise ConfigError(
            flag, output_dir, f"cannot be created: {reason}", f"choose a folder you can write to, e.g. {flag} {other}"
        ) from None


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


# ------------------------------------------------------------------------------------------------
# Data files and models


def check_data_file(flag: str, path: Optional[str]) -> None:
    """A data file exists and has an extension the loader reads."""
    if path is None:
        return
    from ftrecipes.data.files import file_builder  # the loader's own check (existence, extension), run early

    file_builder(path, flag)


def check_models(config: "JobConfig") -> None:
    """Model, config and tokenizer names resolve to loadable files
    (:func:`~ftrecipes.models.source.check_model_source`)."""
    from ftrecipes.data.tasks import get_task
    from ftrecipes.models.names import is_small_cnn_alias
    from ftrecipes.models.source import check_model_source

    recipe, script = config.recipe, config.script
    task = get_task(recipe.task, field="task")
    model = recipe.model_name_or_path
    cache = script.cache_dir
    if not task.uses_tokenizer and is_small_cnn_alias(model) and script.config_name is None:
        return  # built fresh from the data's shape, nothing to load
    if script.config_name is not None:
        check_model_source(script.config_name, field="--config_name", parts=("config",), cache_dir=cache)
        check_model_source(model, field="--model_name_or_path", parts=("weights",), cache_dir=cache)
    else:
        check_model_source(model, field="--model_name_or_path", parts=("config", "weights"), cache_dir=cache)
    if task.uses_tokenizer:
        if script.tokenizer_name is not None:
            check_model_source(script.tokenizer_name, field="--tokenizer_name", parts=("tokenizer",), cache_dir=cache)
        else:
            check_model_source(model, field="--model_name_or_path", parts=("tokenizer",), cache_dir=cache)
