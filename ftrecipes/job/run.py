"""The main job, in phases each visited once: parse (:mod:`ftrecipes.job.parse`) -> check
(:func:`check_job`, over :mod:`ftrecipes.job.check`) -> data (:func:`load_data`) -> model
(:func:`build_job_model`) -> train and report (:func:`run`), with Trainer + Accelerate.

``ftrecipes train``, ``python -m ftrecipes.train`` and ``scripts/finetune.py`` are thin wrappers
around :func:`main`, so the job runs the same under ``python``, ``accelerate launch`` and ``torchrun``,
and tests smoke-run it in-process.

Flags follow Hugging Face conventions: every ``TrainingArguments`` flag, the model/data flags of
``run_glue.py`` and every :class:`~ftrecipes.config.recipe.Recipe` field. Precedence is
**command line > recipe file > Recipe class defaults**: a flag given on the command line always wins,
and a ``TrainingArguments`` default never silently overrides the recipe (only flags that were really
given count). Every user mistake exits with code 2 and one line; ``output_dir`` is not touched until
all inputs have been checked.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.recipe import Recipe
from ftrecipes.job.parse import JobConfig, ScriptArguments, parse_args
from ftrecipes.training.launch import refuse

logger = logging.getLogger("ftrecipes.finetune")


# ------------------------------------------------------------------------------------------------
# Components


@dataclass
class TrainingComponents:
    """What a Trainer needs, built and checked, before anything is written to ``output_dir``."""

    config: JobConfig
    recipe: Recipe
    args: Any  # TrainingArguments
    tokenizer: Any
    prepared: Any  # ftrecipes.data.tasks.PreparedTask
    model: Any
    plan: Any  # RecipePlan
    last_checkpoint: Optional[str]
    lr_scaling: dict = field(default_factory=dict)  # before/after of the batch-size rule
    learning_rate_source: dict = field(default_factory=lambda: {"source": "recipe"})
    peak_rule: Optional[dict] = (
        None  # what the recipe's peak-LR rule chose (ftrecipes.config.peak_rule), when it has one
    )

    def train_dataloader(self):
        """A shuffled, seeded loader of the training split at the per-device batch, with the task's
        collator: what the LR range test and hand-written loops read (the Trainer builds its own)."""
        import torch
        from torch.utils.data import DataLoader

        from ftrecipes.data.streaming import has_length

        train = self.prepared.datasets["train"]
        # A stream cannot be sampled (torch's DataLoader refuses shuffle for an IterableDataset); it
        # comes shuffled through its own buffer (ftrecipes.data.loading.load_streamed_datasets).
        shuffle = has_length(train)
        return DataLoader(
            train,
            batch_size=self.args.per_device_train_batch_size,
            shuffle=shuffle,
            collate_fn=self.prepared.data_collator,
            generator=torch.Generator().manual_seed(self.args.seed) if shuffle else None,
        )


def _check_output_dir(output_dir: str, overwrite: bool, resume: Optional[str]) -> Optional[str]:
    """The last checkpoint to resume from (as ``run_glue.py`` detects it), or ``None``."""
    from transformers.trainer_utils import get_last_checkpoint

    from ftrecipes.job.check import check_resume_from

    if resume is not None:
        check_resume_from(resume)
        return None
    if not os.path.isdir(output_dir) or overwrite:
        return None
    last = get_last_checkpoint(output_dir)
    if last is None and any(Path(output_dir).glob("*.safetensors")):
        raise ConfigError(
            "--output_dir",
            output_dir,
            "already holds a trained model and no checkpoint to resume",
            "choose a new --output_dir or pass --overwrite_output_dir",
        )
    return last


@dataclass
class CheckedJob:
    """The job after its checks: everything that needs no data or model has been verified."""

    config: JobConfig
    recipe: Recipe
    task: Any  # ftrecipes.data.tasks.Task
    args: Any  # TrainingArguments
    peak: Any  # the peak-LR rule's PeakChoice, or None
    last_checkpoint: Optional[str]
    load_kwargs: dict


@dataclass
class LoadedData:
    """The job's data, preprocessed for its task, and the plan it sizes."""

    tokenizer: Any
    prepared: Any  # ftrecipes.data.tasks.PreparedTask
    plan: Any  # RecipePlan
    scaling: Any  # LRScaling


def build_training_components(config: JobConfig) -> TrainingComponents:
    """Check the job, load its data, build its model (in that order; nothing is written).

    Task-agnostic: what differs between tasks (flags, preprocessing, model class, head check) comes
    from the recipe's task in the registry (:mod:`ftrecipes.data.tasks`); the model from the one build seam
    (:func:`ftrecipes.models.build.build_model`).
    """
    job = check_job(config)
    data = load_data(job)
    model = build_job_model(job, data)
    peak, scaling = job.peak, data.scaling
    components = TrainingComponents(
        job.config,
        job.recipe,
        job.args,
        data.tokenizer,
        data.prepared,
        model,
        data.plan,
        job.last_checkpoint,
        scaling.to_dict(),
        peak_rule=None
        if peak is None
        else {**peak.to_dict(), "message": peak.line(scaling.global_batch_size, scaling.learning_rate_after)},
    )
    if config.learning_rate_auto:
        _choose_learning_rate(components)
        if components.peak_rule is not None:  # the range test's pick replaces the rule's, inside the rule's prior
            components.peak_rule["message"] += (
                f"; --learning_rate auto: the run trains at the range test's "
                f"{components.args.learning_rate:.3g} instead"
            )
    return components


def check_job(config: JobConfig) -> CheckedJob:
    """Phase 2, check: the task's flags, the peak-LR rule, the launch, every TrainingArguments value,
    the output folder and the adapter's prerequisites; seeds and threads set for what follows."""
    from transformers import set_seed

    from ftrecipes.data.streaming import read_per_process
    from ftrecipes.data.tasks import get_task
    from ftrecipes.job.check import check_before_loading, check_task_flags
    from ftrecipes.training.launch import check_launch, check_world_size

    script = config.script
    task = get_task(config.recipe.task, field="task")
    check_task_flags(script, task)
    recipe = _with_task_metric(config.recipe, task)
    # The peak-LR rule reads the model's width from its config.json before anything is built, so that
    # the TrainingArguments carry the rule's peak; the loaded model's config is checked against it later.
    recipe, peak = peak_rule_for_job(recipe, script)
    # DeepSpeed blocks, engines on CPU, N processes seen as 1: before anything else is built.
    config = dataclasses.replace(config, recipe=recipe, training_overrides=check_launch(config.training_overrides))
    args = check_before_loading(config)  # everything that needs no model or data, first
    check_world_size(args)
    if script.streaming:
        read_per_process(args)  # each process reads the stream (ftrecipes.data.streaming)
    _set_cpu_threads(script.cpu_threads)
    set_seed(args.seed)
    last_checkpoint = _check_output_dir(args.output_dir, script.overwrite_output_dir, args.resume_from_checkpoint)
    load_kwargs = _peft_load_kwargs(recipe, script)  # peft / QLoRA prerequisites, before anything is loaded
    return CheckedJob(config, recipe, task, args, peak, last_checkpoint, load_kwargs)


def load_data(job: CheckedJob) -> LoadedData:
    """Phase 3, data: the raw splits (bundled, files, the Hub, or a stream), the tokenizer, the task's
    preprocessing, and the plan checked against the real sizes."""
    from transformers import AutoTokenizer

    from ftrecipes.config.scaling import recipe_lr_scaling
    from ftrecipes.config.timeline import Timeline
    from ftrecipes.data.loading import load_raw_datasets, load_streamed_datasets
    from ftrecipes.data.streaming import check_stream_sharding, check_unknown_length, has_length
    from ftrecipes.data.tasks import prepare_task
    from ftrecipes.models.names import resolve_model_name_or_path

    script, recipe, task, args = job.config.script, job.recipe, job.task, job.args
    has_files = any((script.train_file, script.validation_file, script.test_file))
    if script.streaming:  # the train split as a datasets.IterableDataset (ftrecipes.data.streaming)
        raw = load_streamed_datasets(
            dataset_name=None if has_files else recipe.dataset_name,
            dataset_config_name=script.dataset_config_name,
            train_file=script.train_file,
            validation_file=script.validation_file,
            test_file=script.test_file,
            seed=args.data_seed if args.data_seed is not None else args.seed,
            shuffle_buffer_size=script.shuffle_buffer_size,
            max_train_samples=script.max_train_samples,
            max_eval_samples=script.max_eval_samples,
            cache_dir=script.cache_dir,
        )
    else:
        raw = load_raw_datasets(
            dataset_name=None if has_files else recipe.dataset_name,
            dataset_config_name=script.dataset_config_name,
            train_file=script.train_file,
            validation_file=script.validation_file,
            test_file=script.test_file,
            validation_split_percentage=script.validation_split_percentage,
            seed=args.seed if script.split_seed is None else script.split_seed,
            max_train_samples=script.max_train_samples,
            max_eval_samples=script.max_eval_samples,
            cache_dir=script.cache_dir,
        )
    tokenizer = None
    if task.uses_tokenizer:
        tokenizer_path = resolve_model_name_or_path(script.tokenizer_name or recipe.model_name_or_path)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, cache_dir=script.cache_dir)
    task_kwargs = {
        keyword: getattr(script, flag) if hasattr(script, flag) else getattr(recipe, flag)
        for flag, keyword in task.flags.items()
    }
    with args.main_process_first(desc="dataset map pre-processing"):
        prepared = prepare_task(task, raw, tokenizer, **task_kwargs)
    train = prepared.datasets["train"]
    if has_length(train) and len(train) == 0:
        raise ConfigError(
            "--train_file" if has_files else "--dataset_name",
            script.train_file or recipe.dataset_name,
            "has no training rows after preprocessing",
            "give more data or a smaller --max_seq_length for clm",
        )

    # The schedule is checked against the run's real sizes now (warmup longer than training, bad
    # milestones...), before output_dir exists. RecipeTrainer rebuilds it from Trainer's own count.
    # A streamed split has no size: its plan is max_steps long (checked before loading, too).
    plan = (
        recipe.plan(Timeline.from_training_args(args, len(train)))
        if has_length(train)
        else check_unknown_length(recipe, args, train)
    )
    if script.streaming:
        check_stream_sharding(args, train)
    scaling = recipe_lr_scaling(recipe, plan.timeline.global_batch_size)
    logger.info("batch-size scaling: %s", scaling.message())
    return LoadedData(tokenizer, prepared, plan, scaling)


def build_job_model(job: CheckedJob, data: LoadedData):
    """Phase 4, model: built and wrapped for the task and the data (one seam:
    :func:`ftrecipes.models.build.build_model`), then checked against the rule's width and the LR groups."""
    from ftrecipes.models.build import build_model
    from ftrecipes.training.precision import args_precision, attention_implementation

    script, recipe, args = job.config.script, job.recipe, job.args
    # Eager attention for bf16 on a CPU: torch's CPU flash-attention backward is slow in bf16.
    model = build_model(
        job.task,
        data.prepared,
        recipe.model_name_or_path,
        config_name=script.config_name,
        cache_dir=script.cache_dir,
        ignore_mismatched_sizes=script.ignore_mismatched_sizes,
        recipe=recipe,
        attn_implementation=attention_implementation(args_precision(args), args.device.type),
        load_kwargs=job.load_kwargs,
    )
    _check_model_lrs(model, recipe, job.peak)
    return model


def peak_rule_for_job(recipe: Recipe, script: ScriptArguments):
    """``(recipe, choice)``: the recipe with its peak-LR rule applied for the model the job will build
    (its ``--config_name`` when given, as the model's config comes from there); see
    :mod:`ftrecipes.config.peak_rule`."""
    from ftrecipes.models.width import resolve_peak_rule

    return resolve_peak_rule(recipe, config_name=script.config_name, cache_dir=script.cache_dir)


def _check_model_lrs(model, recipe: Recipe, peak) -> None:
    """The loaded model agrees with the width the rule read from config.json, and every ``lr_groups``
    pattern (and LoRA+) finds its parameters: before anything is written to ``output_dir``."""
    from ftrecipes.models.width import model_width
    from ftrecipes.training.lr_groups import check_lr_groups

    if peak is not None and peak.applied and model_width(model).width != peak.width:
        raise ConfigError(
            "--model_name_or_path",
            recipe.model_name_or_path,
            f"the peak-LR rule read hidden {peak.width} ({peak.width_source}) but the loaded model's config says "
            f"{model_width(model).width}",
            "give a model folder whose config.json describes its weights, or --lr_rule none with a --learning_rate",
        )
    check_lr_groups(model, recipe)


def _choose_learning_rate(c: "TrainingComponents") -> None:
    """``--learning_rate auto``: an LR range test on the training data, bounded by the recipe's ``lr_prior``.

    The test runs **once**, on the main process, on the run's device (``args.device``) and in its
    precision (bf16/fp16 autocast as the Trainer will train), at the run's global batch: the main
    process accumulates ``gradient_accumulation_steps x world_size`` micro-batches per ramp step, so
    the curve has the gradient noise of the real run. Its choice is then broadcast to every process
    (``accelerate.utils.broadcast_object_list``), so all ranks train at the same peak. The pick
    replaces the scaled peak as-is; ``lr_finder.json`` / ``lr_finder.png`` go to ``output_dir``.
    """
    from accelerate.utils import broadcast_object_list

    from ftrecipes.training.precision import args_precision
    from ftrecipes.tuning.range_test import choose_learning_rate

    args = c.args
    payload: list = [None]
    if args.process_index == 0:
        precision = args_precision(args)
        payload = [
            choose_learning_rate(
                c.recipe,
                c.model,
                c.train_dataloader(),
                output_dir=args.output_dir,
                num_processes=1,
                accumulation_steps=args.gradient_accumulation_steps * max(1, args.world_size),
                device=args.device,
                precision=precision,
            )
        ]
    if args.world_size > 1:
        broadcast_object_list(payload, from_process=0)
    lr, result = payload[0]
    if args.process_index == 0:
        logger.info("--learning_rate auto: %s", result.summary())
        if result.warning:
            logger.warning("%s", result.warning)
    logger.info(
        "--learning_rate auto: process %d of %d trains at peak %r (range test on process 0, %s)",
        args.process_index,
        max(1, args.world_size),
        lr,
        result.device,
    )
    args.learning_rate = lr
    c.learning_rate_source = {
        "source": "lr-find",
        "learning_rate": lr,
        "suggestion": result.suggestion,
        "rule": result.rule,
        "reason": result.reason,
        "warning": result.warning,
    }


def _with_task_metric(recipe: Recipe, task) -> Recipe:
    """The recipe with a ``metric_for_best_model`` its task reports: the class default (``accuracy``) on a
    task without accuracy becomes the task's own default (and its direction), said in one line; a metric
    the task never reports is an error (:func:`ftrecipes.job.check.check_task_metric`)."""
    from ftrecipes.job.check import check_task_metric

    if check_task_metric(recipe, task):
        return recipe
    logger.info(
        "metric_for_best_model: %s (task %s's default; %r is not one of its metrics)",
        task.metric_for_best_model,
        task.name,
        recipe.metric_for_best_model,
    )
    return recipe.replace(metric_for_best_model=task.metric_for_best_model, greater_is_better=task.greater_is_better)


def _peft_load_kwargs(recipe: Recipe, script: ScriptArguments) -> dict:
    from ftrecipes.job.check import check_merge_adapter
    from ftrecipes.models.lora import peft_load_kwargs

    check_merge_adapter(recipe, script)
    return peft_load_kwargs(recipe)


def _set_cpu_threads(requested: Optional[int]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    from ftrecipes.training.launch import cpu_threads_for

    threads = cpu_threads_for(requested, os.environ, cores)
    if threads is not None:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------
# The job


def run(config: JobConfig, callbacks: Sequence[Any] = ()) -> int:
    """Train, evaluate and save; returns the process exit code. ``callbacks`` are extra
    ``TrainerCallback``s (the sweep's pruning hook)."""
    from ftrecipes.data.tasks import get_task
    from ftrecipes.training.callbacks import add_monitoring
    from ftrecipes.training.preemption import (
        PlanRecordCallback,
        PreemptionCallback,
        check_resume_plan,
        resume_checkpoint,
        stop_after_preemption,
    )
    from ftrecipes.training.trainer import RecipeTrainer

    c = build_training_components(config)  # check -> data -> model
    task = get_task(c.recipe.task)
    eval_dataset = c.prepared.datasets.get("validation")
    args = c.args
    if eval_dataset is None and args.eval_strategy != "no":
        raise ConfigError(
            "--validation_file",
            None,
            "evaluation needs a validation split",
            "pass --validation_file or --eval_strategy no",
        )

    _log_plan(c)
    replanned = check_resume_plan(
        resume_checkpoint(args, c.last_checkpoint),
        args,
        c.plan.total_steps,
        c.plan.warmup_steps,
        replan=config.script.replan,
        compare_learning_rate=not config.learning_rate_auto,
    )
    trainer = RecipeTrainer(
        model=c.model,
        args=args,
        recipe=c.recipe,
        train_dataset=c.prepared.datasets["train"],
        eval_dataset=eval_dataset,
        data_collator=c.prepared.data_collator,
        processing_class=c.tokenizer,
        compute_metrics=task.compute_metrics(c.prepared),
        preprocess_logits_for_metrics=task.preprocess_logits_for_metrics(),
    )
    trainer.run_info["learning_rate_source"] = c.learning_rate_source  # recipe.yaml + plan.json come with save_model()
    if c.peak_rule is not None:
        trainer.run_info["peak_rule"] = c.peak_rule
    if config.script.streaming:
        trainer.run_info["train_data"] = "streamed (length unknown): total_steps is --max_steps"
    monitoring = add_monitoring(trainer, on_divergence=config.script.on_divergence)
    preemption = PreemptionCallback()  # SIGTERM/SIGINT: finish the step, save, exit 128+signal
    trainer.add_callback(preemption)
    trainer.add_callback(PlanRecordCallback(replanned))  # the plan kept with every checkpoint
    for callback in callbacks:
        trainer.add_callback(callback)
    checkpoint = args.resume_from_checkpoint or c.last_checkpoint
    if c.last_checkpoint and not args.resume_from_checkpoint:
        logger.warning(
            "Checkpoint detected, resuming training at %s (pass --overwrite_output_dir to start fresh).",
            c.last_checkpoint,
        )
    if checkpoint in ("True", "true"):
        checkpoint = True

    # Train.
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    if monitoring.exit_code:
        # Diverged: the guard printed its one line and kept the last good checkpoint; the weights in
        # memory are not worth saving. The state and curves show what happened.
        trainer.save_state()
        if config.script.plots and trainer.is_world_process_zero():
            _plot_curves(args.output_dir)
        return monitoring.exit_code
    if preemption.received:
        return stop_after_preemption(trainer, preemption, program=config.program)
    # Report: the model, its recipe and plan, metrics, curves.
    trainer.save_model()
    if config.script.merge_adapter and trainer.is_world_process_zero():
        from ftrecipes.models.lora import save_merged

        logger.info("merged weights: %s", save_merged(trainer.model, args.output_dir, c.tokenizer))
    metrics = dict(train_result.metrics)
    if not config.script.streaming:  # a stream is never counted
        metrics["train_samples"] = len(c.prepared.datasets["train"])
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    if eval_dataset is not None:
        eval_metrics = _evaluated_already(trainer) or trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_dataset)
        eval_metrics = task.final_metrics(eval_metrics, "eval")
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    test_dataset = c.prepared.datasets.get("test")
    if test_dataset is not None and "labels" in test_dataset.column_names:
        test_metrics = trainer.evaluate(test_dataset, metric_key_prefix="test")
        trainer.log_metrics("test", test_metrics)
        trainer.save_metrics("test", test_metrics)

    if trainer.is_world_process_zero() and config.script.plots:
        _plot_curves(args.output_dir)
    return 0


def _evaluated_already(trainer) -> Optional[dict]:
    """The evaluation Trainer already ran on the weights now in memory, or ``None``: with
    ``load_best_model_at_end`` those are the best checkpoint's (scored at ``best_global_step``),
    otherwise the final step's. Evaluating them again gives the same numbers at the cost of a pass."""
    state = trainer.state
    step = (
        state.best_global_step
        if trainer.args.load_best_model_at_end and state.best_model_checkpoint
        else state.global_step
    )
    for entry in reversed(state.log_history):
        if entry.get("step") == step and "eval_loss" in entry:
            return {k: v for k, v in entry.items() if k != "step"}
    return None


def _plot_curves(output_dir: str) -> None:
    """training_curves.png; a missing matplotlib costs the picture, never the finished run."""
    from ftrecipes.report.curves import plot_run

    try:
        logger.info("training curves: %s", plot_run(output_dir))
    except ConfigError as err:
        logger.warning("training curves skipped: %s", err)


def _log_plan(c: TrainingComponents) -> None:
    t = c.plan.timeline
    per_epoch = f"{t.steps_per_epoch}/epoch" if t.steps_per_epoch is not None else "streamed: --max_steps, no epochs"
    logger.info(
        "recipe %s: %d optimizer steps (%s), warmup %d, global batch %d = %d x %d processes x %d accumulation, peak LR "
        "%.3g (%s scaling from %.3g at batch %d)",
        c.recipe.name,
        c.plan.total_steps,
        per_epoch,
        c.plan.warmup_steps,
        t.global_batch_size,
        t.per_device_train_batch_size,
        t.num_processes,
        t.gradient_accumulation_steps,
        c.args.learning_rate,
        c.recipe.lr_scaling,
        c.recipe.learning_rate,
        c.recipe.reference_global_batch_size,
    )
    if c.peak_rule is not None:  # the recipe's peak-LR rule: what it picked and why, or why it did not
        logger.info("recipe %s: %s", c.recipe.name, c.peak_rule["message"])


def main(argv: Sequence[str] | None = None, *, prog: str = "finetune.py") -> int:
    """The main job from a command line: returns 0, 2 for bad input, 1 when training diverged.

    The entry of ``scripts/finetune.py``, ``ftrecipes train`` and ``python -m ftrecipes.train`` (``prog``
    names the command in its error lines). Bad input is one line on stderr, printed once under a
    launcher (:func:`ftrecipes.training.launch.refuse`), with exit code 2; everything else, a bug
    included, propagates with its traceback. The checks that need neither torch nor transformers run
    before either is imported (:func:`ftrecipes.job.check.check_early`).
    """
    from ftrecipes.job.check import check_early

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        config = parse_args(argv, prog=prog, early_checks=check_early)
        return run(config)
    except ConfigError as err:
        return refuse(prog, err)  # once, under a launcher too
    finally:
        _destroy_process_group()


def _destroy_process_group() -> None:
    """Tear the process group down here, on the main thread, before the interpreter shuts down.

    ``destroy_process_group()`` only unregisters the group; its gloo sockets and threads go with the
    last reference to it, held by the DDP wrapper, which is cyclic garbage once :func:`run` returns.
    Collected first, it goes with the group now. Left to the collector, the group went on whichever
    thread ran the next collection. torch releases the GIL while a group is destroyed; on a daemon
    thread the main thread could start interpreter shutdown meanwhile, and Python then ends the daemon
    thread as it takes the GIL back, inside a C++ destructor: the process aborts after a finished run
    ("terminate called without an active exception", exit -6; pytorch#38228)."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        gc.collect()
        distributed.destroy_process_group()
