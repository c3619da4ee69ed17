"""Data of unknown length (``datasets`` streaming, a torch ``IterableDataset``): the plan from ``max_steps``.

Without a length there are no epochs: Trainer needs ``max_steps`` (it raises otherwise), and every
duration of the recipe resolves against it — ``warmup: 5%`` is 5% of ``max_steps``, ``500`` is 500
optimizer steps. A duration in epochs (``"1ep"``) has nothing to resolve against; it and a missing
``max_steps`` are one line each (:class:`~ftrecipes.config.errors.ConfigError`), found before anything loads
(datasets#5773 and alignment-handbook#27 are where fractional warmups broke on streamed data).
"""

from __future__ import annotations

from typing import Any

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.recipe import Recipe, RecipePlan
from ftrecipes.config.timeline import Timeline


def has_length(dataset: Any) -> bool:
    """Whether ``dataset`` knows its length (a streamed ``IterableDataset`` does not)."""
    try:
        len(dataset)
    except (TypeError, NotImplementedError):
        return False
    return True


def plan_unknown_length(
    recipe: Recipe,
    max_steps: int,
    *,
    per_device_train_batch_size: int | None = None,
    num_processes: int = 1,
    gradient_accumulation_steps: int | None = None,
) -> RecipePlan:
    """The recipe's plan for data of unknown length: ``max_steps`` optimizer steps, every duration a
    number of steps or a fraction of ``max_steps``; the peak scaled for the global batch as usual."""
    if max_steps is None or int(max_steps) <= 0:
        raise ConfigError(
            "--max_steps",
            max_steps,
            "data of unknown length (streaming, IterableDataset) has no epochs to count",
            "set --max_steps to the number of optimizer steps to train",
        )
    epochs = recipe.durations_in_epochs()
    if epochs:
        name, value = next(iter(epochs.items()))
        raise ConfigError(
            name,
            value,
            "is in epochs, but data of unknown length (streaming, IterableDataset) has no epochs",
            f"give optimizer steps or a fraction of --max_steps={max_steps} (e.g. '5%')",
        )
    timeline = Timeline(
        num_examples=None,  # unknown; with max_steps set it does not enter the step count
        per_device_train_batch_size=per_device_train_batch_size or recipe.per_device_train_batch_size,
        num_processes=num_processes,
        gradient_accumulation_steps=gradient_accumulation_steps or recipe.gradient_accumulation_steps,
        max_steps=int(max_steps),
    )
    return recipe.plan(timeline)


def check_unknown_length(recipe: Recipe, args: Any, train_dataset: Any) -> RecipePlan | None:
    """For a Trainer run: ``None`` when ``train_dataset`` has a length, else the plan of
    :func:`plan_unknown_length` for ``args`` (raising its one-line errors)."""
    if has_length(train_dataset):
        return None
    return plan_unknown_length(
        recipe,
        args.max_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        num_processes=max(1, int(getattr(args, "world_size", 1))),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
    )


def check_streaming_job(config: Any, args: Any) -> RecipePlan:
    """``finetune.py --streaming``, checked before anything loads (from :mod:`ftrecipes.job.check`).

    One line each for: a task that reads its data in memory; a bundled data set (built in memory,
    nothing to stream); a missing ``--max_steps`` or a duration in epochs (:func:`plan_unknown_length`);
    evaluation without a ``--validation_file`` (a stream of unknown length cannot be split); and a
    classification run on a local file with neither ``--label_list`` nor a ``--validation_file``: a
    streamed split cannot be scanned for its classes and a local file declares none (a Hub data set's
    ``ClassLabel`` feature can, so that case is decided once the stream is open,
    :func:`ftrecipes.data.tasks.class_label_list`). Returns the plan.
    """
    from ftrecipes.config.bundled import canonical_dataset_name
    from ftrecipes.data.tasks import get_task

    script, recipe = config.script, config.recipe
    task = get_task(recipe.task, field="task")
    if not task.supports_streaming:
        raise ConfigError(
            "--streaming",
            True,
            f"task {task.name!r} reads its data in memory",
            "drop --streaming (streaming supports " + ", ".join(_streaming_tasks()) + ")",
        )
    has_files = any((script.train_file, script.validation_file, script.test_file))
    if not has_files and canonical_dataset_name(recipe.dataset_name) is not None:
        raise ConfigError(
            "--streaming",
            True,
            f"the bundled data set {recipe.dataset_name!r} is built in memory; there is nothing to stream",
            "drop --streaming, or stream a --train_file or a Hub --dataset_name",
        )
    plan = plan_unknown_length(
        recipe,
        args.max_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        num_processes=max(1, int(getattr(args, "world_size", 1))),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
    )
    if has_files and script.validation_file is None and args.eval_strategy != "no":
        raise ConfigError(
            "--validation_file",
            None,
            "a streamed --train_file has no length to carve a validation split from",
            "pass --validation_file PATH, or --eval_strategy no (now "
            f"{getattr(args.eval_strategy, 'value', args.eval_strategy)!r})",
        )
    if has_files and "label_list" in task.flags and script.label_list is None and script.validation_file is None:
        raise ConfigError(
            "--label_list",
            None,
            "a streamed --train_file cannot be scanned for its classes, and no --validation_file names them",
            "pass every class in id order, e.g. --label_list negative neutral positive, or a --validation_file",
        )
    return plan


def read_per_process(args: Any) -> None:
    """Under several processes, let each process read the stream itself (``dispatch_batches=False``).

    Accelerate's default for an iterable data set is to read every batch on the main process and
    send each process its part (``dispatch_batches=True``), which concatenates the processes'
    batches first: with dynamic padding (cls, ner, regression) their lengths differ and the first
    step fails (accelerate#348, transformers#26548). Without dispatching, Accelerate gives each
    process its own files of the stream when it has at least as many as processes, else every
    process reads the stream and keeps its slice of each global batch (``IterableDatasetShard``):
    the global batch stays per-device batch x processes either way. A value the user set in
    ``--accelerator_config`` is kept.
    """
    if args.accelerator_config.dispatch_batches is None:
        args.accelerator_config.dispatch_batches = False


def check_stream_sharding(args: Any, stream: Any) -> None:
    """Passes over a stream split by files end at different steps on different processes (their
    files differ in length); an evaluation or a checkpoint at the end of each pass (``epoch``) would
    then start on one process and wait forever for the others. One line, before training."""
    processes = max(1, int(getattr(args, "world_size", 1)))
    shards = getattr(stream, "num_shards", 1)
    if processes < 2 or shards < processes or args.accelerator_config.dispatch_batches:
        return
    for flag in ("eval_strategy", "save_strategy"):
        value = getattr(getattr(args, flag), "value", getattr(args, flag))
        if value == "epoch":
            raise ConfigError(
                f"--{flag}",
                value,
                f"with --streaming on {processes} processes each process reads its own files of the stream "
                f"({shards} files), so their passes end at different steps",
                f"use --{flag} steps with --{flag.split('_')[0]}_steps (e.g. 10%)",
            )


def _streaming_tasks() -> list[str]:
    from ftrecipes.data.tasks import REGISTRY

    return [t.short for t in REGISTRY.values() if t.supports_streaming]


__all__ = [
    "has_length",
    "plan_unknown_length",
    "check_unknown_length",
    "check_streaming_job",
    "read_per_process",
    "check_stream_sharding",
]
