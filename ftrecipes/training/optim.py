"""The recipe's optimizer over its param groups: the Trainer's weight-decay split
(:mod:`ftrecipes.training.weight_decay`), layer-wise peaks (:mod:`ftrecipes.training.layerwise`) or
name-pattern LR groups (:mod:`ftrecipes.training.lr_groups`), and what a Trainer subclass trains beside
the model; with the check that every trainable parameter is in some group."""

from __future__ import annotations

import torch
from torch import nn

from ftrecipes.models.depth import uses_layerwise
from ftrecipes.training.layerwise import layerwise_parameter_groups
from ftrecipes.training.lr_groups import split_lr_groups, uses_lr_groups
from ftrecipes.training.weight_decay import decay_parameter_names, parameter_groups


def _extra_groups(extra_modules: dict[str, nn.Module], weight_decay: float, seen: set[int]) -> list[dict]:
    """Decay / no-decay groups for the trainable parameters of ``extra_modules`` not in ``seen`` (what a
    Trainer subclass trains beside the model, e.g. a sentence-transformers loss's classifier)."""
    groups = []
    for module in extra_modules.values():
        decay = decay_parameter_names(module)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for _, p in named)
        groups += [
            {"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
            {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
        ]
    return [g for g in groups if g["params"]]


def _with_lr_overrides(groups: list[dict], lr_overrides: dict[int, float]) -> list[dict]:
    """``groups`` with every parameter named in ``lr_overrides`` (``id(param) -> peak``) moved into a group of
    its own peak, keeping its weight decay; the schedule then scales that peak like every other."""
    out = []
    for group in groups:
        by_lr: dict[float | None, list] = {}
        for p in group["params"]:
            by_lr.setdefault(lr_overrides.get(id(p)), []).append(p)
        for lr, params in by_lr.items():
            out.append({**group, "params": params} if lr is None else {**group, "params": params, "lr": lr})
    return out


def create_optimizer(
    recipe,
    model: nn.Module,
    learning_rate: float | None = None,
    args=None,
    *,
    extra_modules: dict[str, nn.Module] | None = None,
    lr_overrides: dict[int, float] | None = None,
) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``model`` at peak ``learning_rate`` (default: the recipe's). With
    ``args`` (TrainingArguments after ``apply_recipe``) weight decay, betas and epsilon are the args'.

    ``extra_modules`` are trained too (their parameters not already in ``model``), with the same
    weight-decay split; ``lr_overrides`` (``id(param) -> peak``) gives single parameters their own peak."""
    lr = recipe.learning_rate if learning_rate is None else learning_rate
    source = args if args is not None else recipe
    # Layer-wise / head / embedding peaks when the recipe asks for them (ftrecipes.training.layerwise).
    groups = (
        layerwise_parameter_groups(model, recipe, lr)
        if uses_layerwise(recipe)
        else parameter_groups(model, source.weight_decay)
    )
    if uses_lr_groups(recipe):  # LoRA+ and lr_groups multiply within those groups (ftrecipes.training.lr_groups)
        groups = split_lr_groups(model, recipe, groups, lr)
    if extra_modules:
        groups += _extra_groups(extra_modules, source.weight_decay, {id(p) for g in groups for p in g["params"]})
    if lr_overrides:
        groups = _with_lr_overrides(groups, lr_overrides)
    if recipe.optimizer == "adamw":
        kwargs = dict(lr=lr, betas=(source.adam_beta1, source.adam_beta2), eps=source.adam_epsilon)
        try:
            # The fused kernel is what Trainer's default `adamw_torch_fused` uses.
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # a device or torch build without the fused kernel
            return torch.optim.AdamW(groups, **kwargs)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)
    raise AssertionError(f"unvalidated optimizer {recipe.optimizer!r}")  # Recipe validation rejects it first


def optimizer_for_args(recipe, model: nn.Module, args, **groups) -> torch.optim.Optimizer:
    """The recipe's optimizer kind (and SGD momentum) with the numbers the args hold after apply_recipe."""
    optimizer = create_optimizer(recipe, model, learning_rate=args.learning_rate, args=args, **groups)
    # Say in the args which optimizer runs, so training_args.bin and the model card state it.
    if recipe.optimizer == "sgd":
        args.optim, args.optim_args = "sgd", f"momentum={recipe.momentum},nesterov={recipe.nesterov}"
    else:
        args.optim = "adamw_torch_fused" if optimizer.defaults.get("fused") else "adamw_torch"
    return optimizer


def parameters_left_out(optimizer: torch.optim.Optimizer, named_parameters) -> list[str]:
    """Names of the ``requires_grad`` parameters in ``named_parameters`` that no param group of
    ``optimizer`` holds: they would never change. (torch itself refuses a parameter in two groups.)"""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    seen: set[int] = set()
    missing = []
    for name, p in named_parameters:
        if p.requires_grad and id(p) not in held and id(p) not in seen:
            missing.append(name)
        seen.add(id(p))
    return missing


def check_every_parameter_optimised(optimizer: torch.optim.Optimizer, named_parameters, fix: str) -> None:
    """One :class:`~ftrecipes.config.errors.ConfigError` when a trainable parameter is in no optimizer group."""
    from ftrecipes.config.errors import ConfigError

    missing = parameters_left_out(optimizer, named_parameters)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ConfigError(
            "optimizer",
            None,
            f"{len(missing)} trainable parameters are in no optimizer group, "
            f"so they would stay at their initial values ({shown})",
            fix,
        )
