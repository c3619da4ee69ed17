"""Which parameters get weight decay: the Trainer's own rule, as two param groups.

AdamW decays every weight matrix but not biases or normalisation weights (decaying a LayerNorm gain
toward 0 only fights the normalisation). The split is computed with the public
``transformers.trainer_pt_utils.get_parameter_names``, so that a recipe and a plain Trainer group identically.
"""

from __future__ import annotations

from torch import nn
from transformers.trainer_pt_utils import get_parameter_names

# The name patterns of Trainer.get_decay_parameter_names (transformers 5.x): that method is an instance
# method of a Trainer, so the rule is restated here on the public helper it calls.
NO_DECAY_NAME_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters that get weight decay (Trainer's rule: not biases, not norm weights)."""
    return set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY_NAME_PATTERNS))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two param groups: decayed weights and the rest (biases, norms) with ``weight_decay=0``."""
    decay = decay_parameter_names(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


__all__ = ["NO_DECAY_NAME_PATTERNS", "decay_parameter_names", "parameter_groups"]
