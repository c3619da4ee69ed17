"""Where each trainable parameter sits in a transformer: the head, layer ``l`` of ``L``, or the embeddings.

Layer-wise learning rates (:mod:`ftrecipes.training.layerwise`) are built on this map. Module names are
matched for the families whose layouts are known (``encoder.layer.<l>``, ``layers.<l>``, ``h.<l>``);
a trainable parameter of the backbone outside every pattern is a
:class:`~ftrecipes.config.errors.ConfigError` naming its module, checked when the model is built.
"""

from __future__ import annotations

import re

from torch import nn

from ftrecipes.config.errors import ConfigError

SUPPORTED_FAMILIES = "BERT, MiniLM, RoBERTa, DeBERTa, ELECTRA, Llama, Mistral, Qwen, GPT-2"

# ``<...>.layer.3.<...>`` (BERT, RoBERTa, DeBERTa, ELECTRA), ``layers.3`` (Llama, Mistral, Qwen), ``h.3`` (GPT-2).
_LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h)\.(\d+)\.")
# Token / position / type embeddings, ELECTRA's embedding projection, DeBERTa's relative-position
# embeddings and the LayerNorm DeBERTa-v2's encoder applies to them (``encoder.LayerNorm``).
_EMBEDDINGS = re.compile(
    r"(?:^|\.)(?:embeddings|embeddings_project|embed_tokens|wte|wpe|rel_embeddings)(?:\.|$)|^encoder\.LayerNorm\."
)
# Parts of the backbone that sit above the last layer: they belong with the head.
_TOP = re.compile(r"(?:^|\.)(?:pooler|norm|ln_f|final_layer_norm)(?:\.|$)")
# DeBERTa-v2's optional convolution is applied to the first layer's output.
_FIRST_LAYER_EXTRA = re.compile(r"^encoder\.conv\.")


def uses_layerwise(recipe) -> bool:
    """Whether the recipe asks for more than one LR (any of the three fields off its neutral 1.0)."""
    return (recipe.layerwise_lr_decay, recipe.head_lr_multiplier, recipe.embedding_lr_multiplier) != (1.0, 1.0, 1.0)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The transformers model under DDP / compile wrappers and peft's ``get_base_model()``."""
    from accelerate.utils import extract_model_from_parallel

    model = extract_model_from_parallel(model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def num_layers(model: nn.Module) -> int:
    """``L``: the model config's ``num_hidden_layers`` (GPT-2's ``n_layer`` is aliased to it); -1 if absent."""
    config = getattr(unwrap_model(model), "config", None)
    value = getattr(config, "num_hidden_layers", None)
    return int(value) if value is not None else -1


def parameter_depths(model: nn.Module, recipe=None) -> dict[str, tuple[str, int | None]]:
    """``{parameter name: (group name, layer index or None)}`` for every trainable parameter.

    Group names: ``head``, ``layer_<l>``, ``embeddings``. Raises ``ConfigError`` for a parameter of
    the backbone that is none of these (an architecture whose module names are not known here);
    ``recipe`` only supplies the value its message names.
    """
    value = getattr(recipe, "layerwise_lr_decay", None)
    inner = unwrap_model(model)
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
        local = name[len(prefix) :] if name.startswith(prefix) else name
        match = _LAYER.search(local)
        if match:
            index = int(match.group(1))
            if total >= 0 and index >= total:
                raise ConfigError(
                    "layerwise_lr_decay",
                    value,
                    f"module {_module(name)!r} has layer index {index} but the config has num_hidden_layers={total}",
                    "set layerwise_lr_decay: 1.0 for this model, or fix its config",
                )
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
                "layerwise_lr_decay",
                value,
                f"cannot place module {_module(name)!r} of a {model_type!r} model in a layer, the embeddings or the "
                "head",
                f"use a supported family ({SUPPORTED_FAMILIES}) or set layerwise_lr_decay, head_lr_multiplier and "
                "embedding_lr_multiplier to 1.0",
            )
    return depths


def _module(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0]


__all__ = ["SUPPORTED_FAMILIES", "uses_layerwise", "unwrap_model", "num_layers", "parameter_depths"]
