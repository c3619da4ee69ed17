"""Trainer integration: a recipe inside ``transformers.Trainer``, with every value accounted for.

In an existing Hugging Face script::

    trainer = RecipeTrainer(recipe=get_recipe("cls"), model=model, args=training_args, ...)

or, composed with the Trainer subclass a script already uses,
``class MyTrainer(RecipeTrainer, SFTTrainer)``. The recipe is merged into the args by
:func:`ftrecipes.training.arguments.apply_recipe` (a value the user gave wins, one line per value).

:class:`RecipeTrainer` builds the recipe's optimizer (SGD momentum or AdamW with the args' betas and
no decay on biases/norms) and :class:`~ftrecipes.training.lr_scheduler.ScheduleLR` lazily, in Trainer's own
``create_optimizer`` / ``create_scheduler`` hooks: nothing needs the training set before training
starts, so eval-only and predict-only runs work. Sizes come from the ``TrainingArguments`` and the
optimizer-step count the Trainer computes; the shape (type, warmup, floor, options) from the recipe.
Once the schedule exists the args describe it (``lr_scheduler_type``, ``warmup_steps``,
``lr_scheduler_kwargs``, ``optim``), so ``training_args.bin`` and the model card state the schedule
that ran, and every saved model or checkpoint gets ``recipe.yaml`` and ``plan.json`` beside it.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import (
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from ftrecipes.config.built_schedule import BuiltSchedule
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.outputs import PLAN_FILE, RECIPE_FILE
from ftrecipes.config.recipe import Recipe
from ftrecipes.config.timeline import args_global_batch_size
from ftrecipes.training.arguments import (
    OWNED,
    RECORD_ATTRIBUTE,
    adopt_rule_peak,
    apply_recipe,
    describe_schedule,
    effective_recipe,
    log_sources,
    recipe_record,
    recipe_schedule,
)
from ftrecipes.training.lr_scheduler import ScheduleLR
from ftrecipes.training.optim import check_every_parameter_optimised, optimizer_for_args

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# RecipeTrainer


class RecipeTrainer(Trainer):
    """A ``Trainer`` whose optimizer and LR scheduler come from ``recipe``.

    ``args`` that did not go through :func:`apply_recipe` are merged here (``argv`` as there), so
    ``RecipeTrainer(recipe=..., args=training_args)`` alone never trains with TrainingArguments'
    defaults in place of the recipe's values. The optimizer and the scheduler are created in Trainer's
    ``create_optimizer`` / ``create_scheduler`` hooks, from the ``num_training_steps`` the Trainer itself
    computed, so warmup fractions and totals always agree with the loop that steps it. Early stopping
    and metric-driven schedules (reduce-on-plateau) are wired as callbacks.

    Extra log keys (per-group LR, momentum, skipped steps) come from callbacks with a
    ``log_values() -> dict`` method (see :mod:`ftrecipes.training.callbacks`), added in :meth:`log` — the hook
    Trainer documents for this — so the logs, ``trainer_state.json`` and every reporter see them alike.
    """

    def __init__(
        self,
        model=None,
        args: TrainingArguments | None = None,
        *positional,
        recipe: Recipe,
        argv: Sequence[str] | None = None,
        **kwargs,
    ):
        from ftrecipes.config.peak_rule import peak_record
        from ftrecipes.models.width import resolve_peak_rule_for_model

        # The recipe's peak-LR rule reads the width of the model it is given (no-op without lr_rule), and the
        # alpha of the adapter that will train: a peft_config the base class takes wins over the recipe's.
        takes_peft_config = "peft_config" in inspect.signature(super().__init__).parameters
        adapter = kwargs.get("peft_config") if takes_peft_config else None
        recipe, peak = resolve_peak_rule_for_model(recipe, model, adapter)
        if args is not None and peak is not None:
            adopt_rule_peak(args, recipe)  # args applied before the model was known
        args = apply_recipe(recipe, args if args is not None else TrainingArguments(output_dir="trainer_output"), argv)
        record = recipe_record(args)
        self.recipe = effective_recipe(recipe, args)
        model, kwargs = self._with_recipe_adapter(model, kwargs)
        if kwargs.get("optimizer_cls_and_kwargs") is not None:
            record["ignored"].append(
                "optimizer_cls_and_kwargs is replaced by the recipe's optimizer "
                f"{self.recipe.optimizer!r}; to change it set the recipe field `optimizer`"
            )
        callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks.append(PlateauMetricCallback())
        if self.recipe.early_stopping_patience > 0:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=self.recipe.early_stopping_patience))
        # The base class sees a neutral schedule name: subclasses that rebuild their own arguments class from
        # these args (TRL's SFTConfig(**args.to_dict())) validate it, and this class builds the real one.
        neutral = copy.copy(args)
        neutral.lr_scheduler_type, neutral.lr_scheduler_kwargs = "constant", {}
        super().__init__(model, neutral, *positional, callbacks=callbacks, **kwargs)
        self._adopt_args(args, record)
        log_sources(self.args)
        self.run_info: dict[str, Any] = {}  # extra entries for plan.json (finetune.py adds the LR's source)
        if peak is not None:
            self.run_info["peak_rule"] = peak_record(peak, recipe_record(args), args.learning_rate)
            if args.should_log:
                logger.info("recipe %r: %s", recipe.name, self.run_info["peak_rule"]["message"])
        self._loss_kwargs_checked = False

    def _adopt_args(self, applied: TrainingArguments, record: dict) -> None:
        """Keep the recipe's record and schedule description on the args the base class ended up with,
        which a subclass may have rebuilt as its own class; an owned value it changed gets one line."""
        if self.args is not applied:
            for name in OWNED:
                if hasattr(self.args, name) and getattr(self.args, name) != getattr(applied, name):
                    record["ignored"].append(
                        f"{type(self).__name__}'s base changed {name} from {getattr(applied, name)!r} to "
                        f"{getattr(self.args, name)!r} after the recipe set it; it trains with the latter"
                    )
                    record["sources"][name] = {
                        "value": getattr(self.args, name),
                        "source": "trainer",
                        "detail": "set by the trainer class",
                    }
            setattr(self.args, RECORD_ATTRIBUTE, record)
        describe_schedule(self.args, self.recipe)

    def _base_name(self) -> str:
        """The Trainer class this one composes with (``SFTTrainer`` in ``class X(RecipeTrainer, SFTTrainer)``)."""
        mro = type(self).__mro__
        return mro[mro.index(RecipeTrainer) + 1].__name__

    def _with_recipe_adapter(self, model, kwargs: dict) -> tuple[Any, dict]:
        """The recipe's LoRA applied once: handed to a base class that takes ``peft_config`` (TRL's trainers,
        which also load a model given by name), else wrapped here. A ``peft_config`` the caller gave, or a model
        already wrapped, wins over the recipe's adapter settings, with one line saying so."""
        if self.recipe.peft == "none":
            return model, kwargs
        from ftrecipes.models.lora import carries_recipe_adapter, is_peft_model, lora_config, lora_summary

        takes_peft_config = "peft_config" in inspect.signature(super().__init__).parameters
        given = kwargs.get("peft_config")
        if is_peft_model(model) and carries_recipe_adapter(model, self.recipe):
            logger.info(
                "recipe %r: the model already carries the recipe's LoRA (%s)",
                self.recipe.name,
                lora_summary(self.recipe),
            )
        elif is_peft_model(model):
            logger.warning(
                "recipe %r: the model is already a PeftModel, so its adapter trains and the recipe's LoRA "
                "settings (%s) are not applied; the recipe's optimizer and schedule are",
                self.recipe.name,
                lora_summary(self.recipe),
            )
        elif given is not None and takes_peft_config:
            logger.warning(
                "recipe %r: the trainer's peft_config (r=%s, lora_alpha=%s, target_modules=%s) is the adapter; "
                "the recipe's LoRA settings (%s) are not applied, its optimizer and schedule are",
                self.recipe.name,
                getattr(given, "r", "?"),
                getattr(given, "lora_alpha", "?"),
                getattr(given, "target_modules", "?"),
                lora_summary(self.recipe),
            )
        elif takes_peft_config:
            kwargs = {**kwargs, "peft_config": lora_config(self.recipe, model)}
            logger.info(
                "recipe %r: LoRA (%s) passed to %s as its peft_config",
                self.recipe.name,
                lora_summary(self.recipe),
                self._base_name(),
            )
        elif isinstance(model, (str, os.PathLike)):
            raise ConfigError(
                "model",
                str(model),
                "a LoRA recipe adapts a model object, and this trainer takes no peft_config",
                "load the model first (e.g. AutoModelForSequenceClassification.from_pretrained(name))",
            )
        elif model is not None:
            from ftrecipes.models.build import wrap_model

            model = wrap_model(model, recipe=self.recipe)  # the hook finetune.py's models go through
        return model, kwargs

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Trainer's loss, after checking once (on the first batch with labels) that the model's loss
        really divides by ``num_items_in_batch`` before Trainer relies on it: a head that drops it trains
        with the per-batch mean divided by the accumulation steps, as on one process without
        accumulation (see :mod:`ftrecipes.training.loss_scaling`)."""
        if not self._loss_kwargs_checked and "labels" in inputs:
            self._loss_kwargs_checked = True
            if self.model_accepts_loss_kwargs and self.compute_loss_func is None and self.label_smoother is None:
                from ftrecipes.training.loss_scaling import loss_uses_num_items

                if not loss_uses_num_items(self.accelerator.unwrap_model(model), inputs):
                    self.model_accepts_loss_kwargs = False
                    logger.info(
                        "%s's loss ignores num_items_in_batch: scaling it per batch and accumulation step "
                        "instead (transformers#47688)",
                        type(self.accelerator.unwrap_model(model)).__name__,
                    )
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """The recipe's optimizer over everything this trainer trains: the model, plus what a subclass's
        ``get_optimizer_cls_and_kwargs`` adds (sentence-transformers: the loss modules), at the peaks that
        hook sets (its ``learning_rate_mapping``). Refuses, before the first step, to leave a trainable
        parameter out."""
        if self.optimizer is None:
            model = model if model is not None else self.model
            extra_modules, lr_overrides, declared = self._subclass_parameters(model)
            self.optimizer = optimizer_for_args(
                self.recipe, model, self.args, extra_modules=extra_modules, lr_overrides=lr_overrides
            )
            named = list(model.named_parameters()) + [
                (f"{prefix}.{n}", p) for prefix, m in extra_modules.items() for n, p in m.named_parameters()
            ]
            # What the subclass declared but no module attribute of the trainer holds is checked too.
            named += [
                (f"{type(self).__name__}.get_optimizer_cls_and_kwargs parameter {i}", p) for i, p in enumerate(declared)
            ]
            check_every_parameter_optimised(
                self.optimizer, named, "report it as an ftrecipes bug with the trainer class and model"
            )
        return self.optimizer

    def _subclass_parameters(self, model) -> tuple[dict[str, torch.nn.Module], dict[int, float], list]:
        """What a subclass's ``get_optimizer_cls_and_kwargs`` says it trains beyond ``model``: named modules
        (found among the trainer's attributes), the peaks it gives single parameters, and every parameter it
        declared (for the coverage check)."""
        hook = getattr(type(self), "get_optimizer_cls_and_kwargs")
        if hook is Trainer.get_optimizer_cls_and_kwargs:
            return {}, {}, []
        _, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        groups = next((optimizer_kwargs[k] for k in ("optimizer_dict", "params") if k in optimizer_kwargs), None)
        if not groups or not isinstance(groups, (list, tuple)) or not isinstance(groups[0], dict):
            return {}, {}, []
        params = {id(p): p for g in groups for p in g["params"]}
        lr_overrides = {id(p): float(g["lr"]) for g in groups if "lr" in g for p in g["params"]}
        in_model = {id(p) for p in model.parameters()}
        extra_ids = {i for i in params if i not in in_model}
        modules: dict[str, torch.nn.Module] = {}
        for name, value in vars(self).items():
            candidates = value.items() if isinstance(value, dict) else [("", value)]
            for key, module in candidates:
                if (
                    isinstance(module, torch.nn.Module)
                    and module is not model
                    and extra_ids & {id(p) for p in module.parameters()}
                ):
                    modules[f"{name}.{key}" if key else name] = module
        if lr_overrides:
            pattern = getattr(self.args, "learning_rate_mapping", None)
            logger.info(
                "recipe %r: %d parameters at the peaks %s sets (%s), on the recipe's schedule",
                self.recipe.name,
                len(lr_overrides),
                self._base_name(),
                pattern or sorted(set(lr_overrides.values())),
            )
        return modules, lr_overrides, list(params.values())

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None) -> ScheduleLR:
        if self.lr_scheduler is None:
            schedule = recipe_schedule(self.recipe, self.args, num_training_steps, self.train_dataset)
            self.lr_scheduler = ScheduleLR(optimizer if optimizer is not None else self.optimizer, schedule)
            self._created_lr_scheduler = True
            describe_schedule(self.args, self.recipe, schedule)
            if self.args.should_log:
                logger.info(
                    "recipe %r: %s schedule over %d optimizer steps, warmup %d, peak LR %.4g%s",
                    self.recipe.name,
                    self.recipe.lr_scheduler_type,
                    schedule.total_steps,
                    schedule.warmup_steps,
                    self.args.learning_rate,
                    "".join(f"; {t.label}" for t in schedule.transitions),
                )
        return self.lr_scheduler

    @property
    def schedule(self) -> BuiltSchedule | None:
        return getattr(self.lr_scheduler, "built_schedule", None)

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:  # a training log (evaluation and the end-of-training summary carry no LR)
            for callback in self.callback_handler.callbacks:
                values = getattr(callback, "log_values", None)
                if callable(values):
                    logs.update(values())
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            self.write_run_description(output_dir if output_dir is not None else self.args.output_dir)

    def write_run_description(self, output_dir: str) -> None:
        """``recipe.yaml`` (the recipe as this run trained it) and ``plan.json`` (its schedule, sizes and
        where every owned value came from) into ``output_dir``."""
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        args, record = self.args, recipe_record(self.args)
        global_batch = args_global_batch_size(args)
        # The peak this run trained at, stated for this run's global batch: rerunning the file at the same
        # batch gives the same LR, and at another batch the recipe's rule scales from this point.
        as_trained = dict(
            learning_rate=args.learning_rate,
            reference_global_batch_size=global_batch,
            weight_decay=args.weight_decay,
            max_grad_norm=args.max_grad_norm,
            per_device_train_batch_size=args.per_device_train_batch_size,
            per_device_eval_batch_size=args.per_device_eval_batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            num_train_epochs=args.num_train_epochs,
            max_steps=args.max_steps,
            seed=args.seed,
            precision="bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        )
        if self.recipe.optimizer == "adamw":
            as_trained.update(adam_beta1=args.adam_beta1, adam_beta2=args.adam_beta2, adam_epsilon=args.adam_epsilon)
        resolved = self.recipe.replace(**as_trained)
        (out / RECIPE_FILE).write_text(
            f"# Recipe as this run trained it (recipe {record['recipe']!r} with this run's values; peak LR as "
            "trained,\n"
            f"# at this run's global batch of {global_batch}).\n"
            f"# Reproduce: ftrecipes train --recipe {out / RECIPE_FILE}\n"
            "# (under a launcher: accelerate launch -m ftrecipes.train --recipe ...)\n" + resolved.to_yaml()
        )
        schedule = self.schedule
        plan = {
            "recipe": record["recipe"],
            "lr_scheduler_type": self.recipe.lr_scheduler_type,
            "total_steps": schedule.total_steps if schedule else None,
            "warmup_steps": schedule.warmup_steps if schedule else None,
            "global_batch_size": global_batch,
            "num_processes": max(1, args.world_size),
            "learning_rate_recipe": self.recipe.learning_rate,
            "learning_rate": args.learning_rate,
            "lr_scaling": record["lr_scaling"],
            "sources": record["sources"],
            "ignored_flags": record["ignored"],
            "transitions": [dataclasses.asdict(t) for t in (schedule.transitions if schedule else [])],
            "trainable_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            **self.run_info,
        }
        (out / PLAN_FILE).write_text(json.dumps(plan, indent=2, default=str))


class PlateauMetricCallback(TrainerCallback):
    """Feeds ``eval_<metric_for_best_model>`` to a metric-driven schedule (reduce-on-plateau).

    The Trainer steps a ``ScheduleLR`` once per optimizer step — which keeps the warmup exact — but
    only a callback sees the validation metrics, so the reduction is applied here.
    """

    def on_evaluate(self, args, state, control, metrics=None, lr_scheduler=None, **kwargs):
        if not isinstance(lr_scheduler, ScheduleLR) or not metrics or not hasattr(lr_scheduler.lr_schedule, "observe"):
            return
        name = args.metric_for_best_model or "loss"
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in metrics:
            logger.warning("reduce-on-plateau: metric %r not in the evaluation results %s", key, sorted(metrics))
            return
        if lr_scheduler.observe(metrics[key], step=state.global_step):
            logger.info(
                "reduce-on-plateau: %s stalled at %.4f; LR now %.3g", key, metrics[key], lr_scheduler.get_last_lr()[0]
            )


__all__ = ["RecipeTrainer", "PlateauMetricCallback"]
