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
weights at weight decay 0, by the Trainer's own rule, see
:func:`ftrecipes.training.weight_decay.decay_parameter_names`), both carrying ``name`` (``head``, ``layer_5``,
``embeddings``) for the logs. Each group's ``lr`` is its
own peak: :class:`~ftrecipes.training.lr_scheduler.ScheduleLR` multiplies every group's ``initial_lr`` by the same
schedule, so every group follows the schedule shape exactly at its own peak, and batch-size scaling
(which scales ``eta``) scales every group.

Group 0 is the head, so the Trainer's own ``learning_rate`` log (group 0) is the peak's trace when
``head_lr_multiplier`` is 1.

transformers ships no such grouping (transformers#10140 was closed with "subclass Trainer"); it is
written here, over the families whose module names are known: BERT / MiniLM, RoBERTa, DeBERTa(-v2),
ELECTRA, Llama, Mistral, Qwen and GPT-2 (:mod:`ftrecipes.models.depth` places each parameter; one it
cannot place is a :class:`~ftrecipes.config.errors.ConfigError` naming the module).
"""

from __future__ import annotations

from typing import Iterable

from torch import nn

from ftrecipes.models.depth import num_layers, parameter_depths, unwrap_model
from ftrecipes.training.weight_decay import decay_parameter_names


def lr_scale(group: str, total_layers: int, recipe) -> float:
    """The multiplier of the peak for ``group`` (see the module docstring)."""
    xi = recipe.layerwise_lr_decay
    if group == "head":
        return recipe.head_lr_multiplier
    if group == "embeddings":
        return xi ** (total_layers + 1) * recipe.embedding_lr_multiplier
    return xi ** (total_layers - int(group.split("_", 1)[1]))


def layerwise_parameter_groups(
    model: nn.Module, recipe, learning_rate: float, weight_decay: float | None = None
) -> list[dict]:
    """Param groups, head first then layers top to bottom then embeddings, each split into decayed
    weights and biases/norms (weight decay 0); every group has ``lr`` (its peak) and ``name``."""
    weight_decay = recipe.weight_decay if weight_decay is None else weight_decay
    inner = unwrap_model(model)
    depths = parameter_depths(inner, recipe)
    total = num_layers(inner)
    if total < 0:
        total = 1 + max((i for _, i in depths.values() if i is not None and i >= 0), default=-1)
    decay = decay_parameter_names(inner)
    order = ["head"] + [f"layer_{layer}" for layer in reversed(range(total))] + ["embeddings"]
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
                groups.append(
                    {
                        "params": params,
                        "weight_decay": weight_decay if decayed else 0.0,
                        "lr": learning_rate * scale,
                        "lr_scale": scale,
                        "name": group,
                    }
                )
    return groups


def group_peaks(groups: Iterable[dict]) -> dict[str, float]:
    """``{group name: peak LR}`` (the decayed and non-decayed halves of a depth share one)."""
    return {g["name"]: g["lr"] for g in groups}


__all__ = ["layerwise_parameter_groups", "lr_scale", "group_peaks"]
