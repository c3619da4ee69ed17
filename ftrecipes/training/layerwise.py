"""Layer-wise learning-rate decay (LLRD) and per-module learning rates, as optimizer param groups.

With the peak ``eta`` (``args.learning_rate``, already batch-size scaled), the decay ``xi`` in (0, 1]
(``layerwise_lr_decay``) and ``L`` transformer layers indexed ``l = 0 .. L-1`` as the model numbers them
(``encoder.layer.<l>``, ``layers.<l>``, ``h.<l>``)::

    head  (classifier / score / LM head, pooler, final norm):  eta * head_lr_multiplier
    layer l:                                                   eta * xi ** (L - l)      top layer: eta * xi
    embeddings:                                                eta * xi ** (L + 1) * embedding_lr_multiplier

Sun et al. 2019 ("How to Fine-Tune BERT for Text Classification?": xi = 0.95 with peak 2e-5) decay
the LR by ``xi`` per layer going down; the depth convention here — head at depth ``L + 1`` trained at the
peak, embeddings at depth 0 — is the one of timm's ``layer_decay`` (``param_groups_layer_decay``) and
ELECTRA's ``layerwise_lr_decay``. Each depth gets two groups (weight-decayed weights, and biases/norm
weights at weight decay 0, by the Trainer's own rule, see :func:`ftrecipes.training.optim.decay_parameter_names`),
both carrying ``name`` (``head``, ``layer_5``, ``embeddings``) for the logs. Each group's ``lr`` is its
own peak: :class:`~ftrecipes.training.lr_scheduler.ScheduleLR` multiplies every group's ``initial_lr`` by the same
schedule, so every group follows the schedule shape exactly at its own peak, and batch-size scaling
(which scales ``eta``) scales every group.

Group 0 is the head, so the Trainer's own ``learning_rate`` log (group 0) is the peak's trace when
``head_lr_multiplier`` is 1.

transformers ships no such grouping (transformers#10140 was closed with "subclass Trainer"); it is
written here, over the families whose module names are known: BERT / MiniLM, RoBERTa, DeBERTa(-v2),
ELECTRA, Llama, Mistral, Qwen and GPT-2. A parameter it cannot place is a
:class:`~ftrecipes.config.errors.ConfigError` naming the module.
"""

from __future__ import annotations

import re
from typing import Iterable

from torch import nn

from ftrecipes.config.errors import ConfigError

SUPPORTED_FAMILIES = "BERT, MiniLM, RoBERTa, DeBERTa, ELECTRA, Llama, Mistral, Qwen, GPT-2"

# ``<...>.layer.3.<...>`` (BERT, RoBERTa, DeBERTa, ELECTRA), ``layers.3`` (Llama, Mistral, Qwen), ``h.3`` (GPT-2).
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h)\.(\d+)\.")
# Token / position / type embeddings, ELECTRA's embedding projection, DeBERTa's relative-position
# embeddings and the LayerNorm DeBERTa-v2's encoder applies to them (``encoder.LayerNorm``).
_EMBEDDINGS = re.compile(r"(?:^|\.)(?:embeddings|embeddings_project|embed_tokens|wte|wpe|rel_embeddings)(?:\.|$)|^encoder\.LayerNorm\.")
# Parts of the backbone that sit above the last layer: they belong with the head.
_TOP = re.compile(r"(?:^|\.)(?:pooler|norm|ln_f|final_layer_norm)(?:\.|$)")
# DeBERTa-v2's optional convolution is applied to the first layer's output.
_FIRST_LAYER_EXTRA = re.compile(r"^encoder\.conv\.")


def uses_layerwise(recipe) -> bool:
    """Whether the recipe asks for more than one LR (any of the three fields off its neutral 1.0)."""
    return (recipe.layerwise_lr_decay, recipe.head_lr_multiplier, recipe.embedding_lr_multiplier) != (1.0, 1.0, 1.0)


def _unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under DDP / compile wrappers and peft's ``get_base_model()``."""
    from accelerate.utils import extract_model_from_parallel

    model = extract_model_from_parallel(model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def num_layers(model: nn.Module) -> int:
    """``L``: the model config's ``num_hidden_layers`` (GPT-2's ``n_layer`` is aliased to it); -1 if absent."""
    config = getattr(_unwrap(model), "config", None)
    value = getattr(config, "num_hidden_layers", None)
    return int(value) if value is not None else -1


def parameter_depths(model: nn.Module, recipe=None) -> dict[str, tuple[str, int | None]]:
    """``{parameter name: (group name, layer index or None)}`` for every trainable parameter.

    Group names: ``head``, ``layer_<l>``, ``embeddings``. Raises ``ConfigError`` for a parameter of
    the backbone that is none of these (an architecture whose module names are not known here);
    ``recipe`` only supplies the value its message names.
    """
    value = getattr(recipe, "layerwise_lr_decay", None)
    inner = _unwrap(model)
    backbone = getattr(inner, "base_model", inner)
    backbone_ids = {id(p) for p in backbone.parameters()}
    prefix = "" if backbone is inner else f"{inner.base_model_prefix}."
    total = num_layers(inner)
    depths: dict[str, tuple[str, int | None]] = {}
    for name, param in inner.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) not in backbone_ids:  # the task head: classifier, score, lm_head, DeBERTa's pooler
            depths[name] = ("head", None)
            continue
        local = name[len(prefix):] if name.startswith(prefix) else name
        match = _LAYER.search(local)
        if match:
            index = int(match.group(1))
            if total >= 0 and index >= total:
                raise ConfigError("layerwise_lr_decay", value, f"module {_module(name)!r} has layer index {index} but the config has num_hidden_layers={total}",
                                  "set layerwise_lr_decay: 1.0 for this model, or fix its config")
            depths[name] = (f"layer_{index}", index)
        elif _FIRST_LAYER_EXTRA.search(local):
            depths[name] = ("layer_0", 0)
        elif _EMBEDDINGS.search(local):
            depths[name] = ("embeddings", -1)
        elif _TOP.search(local):
            depths[name] = ("head", None)
        else:
            model_type = getattr(getattr(inner, "config", None), "model_type", type(inner).__name__)
            raise ConfigError(
                "layerwise_lr_decay", value,
                f"cannot place module {_module(name)!r} of a {model_type!r} model in a layer, the embeddings or the head",
                f"use a supported family ({SUPPORTED_FAMILIES}) or set layerwise_lr_decay, head_lr_multiplier and embedding_lr_multiplier to 1.0",
            )
    return depths


def _module(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0]


def lr_scale(group: str, total_layers: int, recipe) -> float:
    """The multiplier of the peak for ``group`` (see the module docstring)."""
    xi = recipe.layerwise_lr_decay
    if group == "head":
        return recipe.head_lr_multiplier
    if group == "embeddings":
        return xi ** (total_layers + 1) * recipe.embedding_lr_multiplier
    return xi ** (total_layers - int(group.split("_", 1)[1]))


def layerwise_parameter_groups(model: nn.Module, recipe, learning_rate: float, weight_decay: float | None = None) -> list[dict]:
    """Param groups, head first then layers top to bottom then embeddings, each split into decayed
    weights and biases/norms (weight decay 0); every group has ``lr`` (its peak) and ``name``."""
    from ftrecipes.training.optim import decay_parameter_names

    weight_decay = recipe.weight_decay if weight_decay is None else weight_decay
    inner = _unwrap(model)
    depths = parameter_depths(inner, recipe)
    total = num_layers(inner)
    if total < 0:
        total = 1 + max((i for _, i in depths.values() if i is not None and i >= 0), default=-1)
    decay = decay_parameter_names(inner)
    order = ["head"] + [f"layer_{l}" for l in reversed(range(total))] + ["embeddings"]
    named = dict(inner.named_parameters())
    groups = []
    for group in order:
        members = [n for n, (g, _) in depths.items() if g == group]
        scale = lr_scale(group, total, recipe)
        for decayed in (True, False):
            params = [named[n] for n in members if (n in decay) == decayed]
            if params:
                # "lr_scale" travels with the optimizer state, so a resumed run can tell the run's peak
                # from a group's (lr = peak * lr_scale).
                groups.append({"params": params, "weight_decay": weight_decay if decayed else 0.0, "lr": learning_rate * scale,
                               "lr_scale": scale, "name": group})
    return groups


def group_peaks(groups: Iterable[dict]) -> dict[str, float]:
    """``{group name: peak LR}`` (the decayed and non-decayed halves of a depth share one)."""
    return {g["name"]: g["lr"] for g in groups}


__all__ = ["uses_layerwise", "parameter_depths", "layerwise_parameter_groups", "lr_scale", "group_peaks", "num_layers", "SUPPORTED_FAMILIES"]
