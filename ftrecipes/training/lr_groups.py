"""Per-parameter LR multipliers of a recipe: LoRA+ and LR groups by parameter name.

Two recipe fields multiply the LR of some parameters on top of whatever groups the optimizer already
has (the Trainer's weight-decay split, or the layer-wise groups of :mod:`ftrecipes.training.layerwise`)::

    lr(p) = group_lr(p) * m_groups(p) * m_loraplus(p)

* ``lr_groups: [{pattern, multiplier}, ...]`` — ``m_groups(p)`` is the ``multiplier`` of the first entry
  whose ``pattern`` (a regular expression, ``re.search``) matches the parameter's name as
  ``model.named_parameters()`` spells it, else 1 (the same idea as axolotl's ``lr_groups``);
* ``loraplus_lr_ratio`` — ``m_loraplus(p)`` is the ratio for LoRA's B matrices (peft's ``lora_B`` and
  ``lora_embedding_B``) and 1 for everything else. LoRA+ (Hayou et al. 2024, "LoRA+: Efficient Low Rank
  Adaptation of Large Models") shows that A and B at one LR is inefficient for wide models and sets
  ``lr_B = ratio * lr_A``, ratio ~16 in the paper; axolotl and LLaMA-Factory expose the same
  ``loraplus_lr_ratio``.

Each existing group is split by multiplier, keeping its weight decay (so biases and norm weights stay
undecayed in every split), its ``name`` and its ``lr_scale``; a split's ``lr`` is its own peak and its
``lr_scale`` the product of the scales, so :class:`~ftrecipes.training.lr_scheduler.ScheduleLR`, which multiplies
every group's ``initial_lr`` by the schedule, runs every split on the recipe's schedule exactly at its own
peak. Split groups are named for the logs (``learning_rate/<name>``): the entry's pattern and/or
``lora_B``, joined with ``+``, after the layer-wise name (``layer_3/lora_B``).

A pattern that matches no trainable parameter and a LoRA+ ratio with no B matrix to scale are
:class:`~ftrecipes.config.errors.ConfigError` naming the field, listing parameter names that do exist.
"""

from __future__ import annotations

import re
from typing import Iterable

from torch import nn

from ftrecipes.config.errors import ConfigError

# peft's LoRA layers keep B in ``lora_B.<adapter>`` (linear, conv) and ``lora_embedding_B.<adapter>`` (embedding).
_LORA_B = re.compile(r"(?:^|\.)lora_(?:embedding_)?B(?:\.|$)")
UNSCALED = "default"  # the name of the unscaled part of a group that had no name


def uses_lr_groups(recipe) -> bool:
    """Whether the recipe multiplies some parameters' LRs (``lr_groups`` or ``loraplus_lr_ratio``)."""
    return bool(getattr(recipe, "lr_groups", None)) or getattr(recipe, "loraplus_lr_ratio", None) is not None


def _named_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    from accelerate.utils import extract_model_from_parallel

    return list(extract_model_from_parallel(model).named_parameters())


def _examples(names: Iterable[str], limit: int = 4) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def parameter_multipliers(model: nn.Module, recipe) -> dict[int, tuple[str, float]]:
    """``{id(parameter): (label, multiplier)}`` for every trainable parameter with a multiplier other than
    the plain 1 (see the module docstring); raises :class:`ConfigError` for a pattern that matches no
    trainable parameter, or a LoRA+ ratio with no trainable B matrix."""
    named = [(n, p) for n, p in _named_parameters(model) if p.requires_grad]
    trainable = [n for n, _ in named]
    entries = list(getattr(recipe, "lr_groups", None) or [])
    matched = [False] * len(entries)
    ratio = getattr(recipe, "loraplus_lr_ratio", None)
    found_b = False
    out: dict[int, tuple[str, float]] = {}
    for name, param in named:
        labels, multiplier = [], 1.0
        for i, entry in enumerate(entries):
            if re.search(entry["pattern"], name):
                matched[i] = True
                labels.append(entry["pattern"])
                multiplier *= entry["multiplier"]
                break  # the first matching entry counts
        if ratio is not None and _LORA_B.search(name):
            found_b = True
            labels.append("lora_B")
            multiplier *= ratio
        if labels:
            out[id(param)] = ("+".join(labels), multiplier)
    for entry, hit in zip(entries, matched):
        if not hit:
            frozen = [n for n, p in _named_parameters(model) if not p.requires_grad and re.search(entry["pattern"], n)]
            why = f"matches only frozen parameters ({_examples(frozen, 2)})" if frozen else "matches no parameter name"
            raise ConfigError(
                "lr_groups",
                entry["pattern"],
                f"{why}; trainable parameters are e.g. {_examples(trainable)}",
                "use a pattern (regex, re.search) that matches some of those names, e.g. 'classifier'",
            )
    if ratio is not None and not found_b:
        raise ConfigError(
            "loraplus_lr_ratio",
            ratio,
            f"the model has no trainable LoRA B matrix (lora_B); trainable parameters are e.g. {_examples(trainable)}",
            "train with peft lora (or qlora), or leave loraplus_lr_ratio unset",
        )
    return out


def check_lr_groups(model: nn.Module, recipe) -> None:
    """Fail before training (and before ``output_dir`` is written) on what :func:`parameter_multipliers` refuses."""
    if uses_lr_groups(recipe):
        parameter_multipliers(model, recipe)


def split_lr_groups(model: nn.Module, recipe, groups: list[dict], learning_rate: float) -> list[dict]:
    """``groups`` (optimizer param groups; ``lr`` absent means ``learning_rate``) with each group split by
    the parameters' multipliers: the unscaled part first, keeping the group's place, then one group per
    label. Every returned group has ``lr``, ``lr_scale`` and ``name``."""
    multipliers = parameter_multipliers(model, recipe)
    out: list[dict] = []
    for group in groups:
        base_lr = group.get("lr", learning_rate)
        base_scale = group.get("lr_scale", 1.0)
        base_name = group.get("name")
        parts: dict[tuple[str, float] | None, list] = {}
        for param in group["params"]:
            parts.setdefault(multipliers.get(id(param)), []).append(param)
        for key, params in sorted(parts.items(), key=lambda item: item[0] is not None):
            label, multiplier = key if key is not None else (None, 1.0)
            name = base_name or UNSCALED
            if label is not None:
                name = f"{base_name}/{label}" if base_name else label
            out.append(
                {
                    **group,
                    "params": params,
                    "lr": base_lr * multiplier,
                    "lr_scale": base_scale * multiplier,
                    "name": name,
                }
            )
    return out


__all__ = ["uses_lr_groups", "parameter_multipliers", "check_lr_groups", "split_lr_groups", "UNSCALED"]
