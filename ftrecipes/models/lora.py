"""LoRA and QLoRA through the ``peft`` library: a recipe's ``peft`` fields applied to a model.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") freezes a pretrained
weight ``W`` (d x k) and trains a rank-``r`` update beside it::

    h = W x + (lora_alpha / r) * B A x,      A: r x k (random init),  B: d x r (zeros)

so only ``r (d + k)`` numbers per adapted matrix train, at a peak LR roughly ten times a full fine-tune's
(the LoRA paper's RoBERTa-base GLUE runs: r 8, alpha 16, 4e-4..5e-4). QLoRA (Dettmers et al. 2023)
stores the frozen base in 4-bit NormalFloat (NF4, double quantization, via ``bitsandbytes``) and
computes in bf16; it needs a CUDA GPU.

Recipe fields (``peft`` users' names): ``peft`` (``none`` | ``lora`` | ``qlora``), ``lora_r``,
``lora_alpha``, ``lora_dropout``, ``lora_target_modules``:

* ``auto`` — the attention projections peft lists for the architecture
  (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``: query/value for BERT, RoBERTa, ELECTRA;
  ``query_proj``/``value_proj`` for DeBERTa-v2; ``q_proj``/``v_proj`` for Llama, Mistral, Qwen;
  GPT-2's fused ``c_attn``) — the LoRA paper's choice;
* ``all-linear`` — every linear layer but the output head (QLoRA's choice);
* ``query,value`` — explicit module names (suffixes of module paths, as peft matches them).

The task head is new and must train in full: for classification tasks every top-level module outside
the backbone (``classifier``, ``score``, DeBERTa's ``pooler``) goes into ``modules_to_save``. For causal
LM the output embedding stays frozen (tied to the input embedding in most decoders).

The peft import is lazy: without peft installed, only ``peft: lora`` fails (one line naming the extra).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from ftrecipes.config.errors import ConfigError

PEFT_EXTRA = "pip install 'ftrecipes[peft]'"
_TASK_TYPES = {
    "sequence-classification": "SEQ_CLS",
    "cls": "SEQ_CLS",
    "token-classification": "TOKEN_CLS",
    "ner": "TOKEN_CLS",
    "causal-lm": "CAUSAL_LM",
    "clm": "CAUSAL_LM",
    "image-classification": None,
    "image": None,
}
MERGED_DIR = "merged"


def uses_peft(recipe) -> bool:
    return getattr(recipe, "peft", "none") != "none"


def check_peft_environment(recipe) -> None:
    """Fail before anything is loaded: peft missing; QLoRA without CUDA or without bitsandbytes."""
    if not uses_peft(recipe):
        return
    if importlib.util.find_spec("peft") is None:
        raise ConfigError("peft", recipe.peft, "needs the peft library, which is not installed", PEFT_EXTRA)
    if recipe.peft == "qlora":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "peft",
                "qlora",
                "the 4-bit NF4 base (bitsandbytes) needs a CUDA GPU and none is visible",
                "run on a CUDA machine, or use --peft lora (LoRA on a full-precision base)",
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                "peft",
                "qlora",
                "needs bitsandbytes for the 4-bit base, which is not installed",
                "pip install bitsandbytes",
            )


def peft_load_kwargs(recipe) -> dict[str, Any]:
    """Checks the environment (:func:`check_peft_environment`) and returns the extra
    ``from_pretrained`` keyword arguments: QLoRA's 4-bit NF4 ``quantization_config``, else nothing."""
    check_peft_environment(recipe)
    if getattr(recipe, "peft", "none") != "qlora":
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # QLoRA's storage: NF4 with double quantization of the quantization constants, compute in bf16.
    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
        )
    }


def _adaptable_module_names(model) -> list[str]:
    """Leaf names of the modules LoRA can wrap (linear, GPT-2's Conv1D, conv, embedding layers)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, Conv1D, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Embedding)
    return sorted(
        {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if name and isinstance(module, kinds)}
    )


def resolve_target_modules(model, spec: str) -> list[str] | str:
    """``lora_target_modules`` for ``model``: ``auto`` looked up by ``model_type``, ``all-linear`` passed
    to peft as is, a comma list checked against the model's modules."""
    available = _adaptable_module_names(model)
    spec = spec.strip()
    if spec == "all-linear":
        return spec
    if spec == "auto":
        from peft.utils.constants import (
            TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAPPING,
        )

        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type not in MAPPING:
            raise ConfigError(
                "lora_target_modules",
                "auto",
                f"knows no attention projections for model type {model_type!r}; the model has {available}",
                "name them, e.g. --lora_target_modules " + ",".join(available[:2]) + ", or use 'all-linear'",
            )
        wanted = list(MAPPING[model_type])
    else:
        wanted = [m.strip() for m in spec.split(",")]
    names = [name for name, _ in model.named_modules()]
    missing = [m for m in wanted if not any(n == m or n.endswith("." + m) for n in names)]
    if missing:
        raise ConfigError(
            "lora_target_modules",
            spec,
            f"the model has no module {missing}; it has {available}",
            "choose among those, or use 'auto' or 'all-linear'",
        )
    return wanted


def head_modules(model, task_type: str | None = None) -> list[str]:
    """The task head, trained in full: top-level modules with parameters outside the backbone, and for
    sequence classification the backbone's pooler too (it feeds only the head, and a checkpoint's pooler
    was trained for another objective — NSP, or not at all in sentence-embedding models)."""
    import torch

    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    if backbone is None:
        return []  # a bare backbone: no head
    heads = [
        name for name, child in model.named_children() if name != prefix and next(child.parameters(), None) is not None
    ]
    pooler = getattr(backbone, "pooler", None)
    if task_type == "SEQ_CLS" and isinstance(pooler, torch.nn.Module) and next(pooler.parameters(), None) is not None:
        heads.append("pooler")
    return heads


def is_peft_model(model) -> bool:
    """Whether ``model`` already carries a peft adapter (a ``PeftModel``, or adapters added in place)."""
    return model is not None and not isinstance(model, (str, os.PathLike)) and hasattr(model, "peft_config")


def active_adapter_config(model) -> Any:
    """The peft config of ``model``'s active adapter (``None`` for a model without one)."""
    configs = getattr(model, "peft_config", None)
    if not isinstance(configs, dict):
        return None
    return configs.get(getattr(model, "active_adapter", "default"))


def carries_recipe_adapter(model, recipe) -> bool:
    """Whether a peft ``model``'s active adapter has the recipe's LoRA settings (rank, alpha, dropout and the
    target modules the recipe resolves on its base model): the main job's models, wrapped when built."""
    active = active_adapter_config(model)
    if active is None or not hasattr(model, "get_base_model"):
        return False
    expected = resolve_target_modules(model.get_base_model(), recipe.lora_target_modules)
    # peft expands "all-linear" into module names when it injects the adapter: the settings decide then
    targets_match = isinstance(expected, str) or set(active.target_modules or ()) == set(expected)
    settings = (active.r, active.lora_alpha, active.lora_dropout)
    return targets_match and settings == (recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout)


def lora_summary(recipe) -> str:
    """The recipe's adapter settings in one phrase, for the lines that say whose settings won."""
    return (
        f"r={recipe.lora_r}, lora_alpha={recipe.lora_alpha}, lora_dropout={recipe.lora_dropout}, "
        f"target_modules={recipe.lora_target_modules!r}"
    )


def _target_modules_for_name(name: str, spec: str) -> list[str] | str:
    """``lora_target_modules`` for a model given by name or path (a trainer loads it later): ``auto`` is
    looked up from the model type in its config; a list goes to peft as written (peft names a missing one)."""
    spec = spec.strip()
    if spec != "auto":
        return spec if spec == "all-linear" else [m.strip() for m in spec.split(",")]
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as MAPPING,
    )
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(name).model_type
    if model_type not in MAPPING:
        raise ConfigError(
            "lora_target_modules",
            "auto",
            f"knows no attention projections for model type {model_type!r}",
            "name them, e.g. --lora_target_modules q_proj,v_proj, or use 'all-linear'",
        )
    return list(MAPPING[model_type])


def lora_config(recipe, model, task: str | None = None):
    """The recipe's ``peft.LoraConfig`` for ``model`` (a model object, or a name/path a trainer will load).

    ``task``: a recipe task (``sequence-classification``...) or the pipeline's short name (``cls``...);
    defaults to ``recipe.task``. The task head (:func:`head_modules`) is trained in full."""
    check_peft_environment(recipe)
    from peft import LoraConfig

    task = task or recipe.task
    task_type = _TASK_TYPES.get(task)
    by_name = isinstance(model, (str, os.PathLike))
    heads = head_modules(model, task_type) if task_type != "CAUSAL_LM" and not by_name else []
    targets = (
        _target_modules_for_name(str(model), recipe.lora_target_modules)
        if by_name
        else resolve_target_modules(model, recipe.lora_target_modules)
    )
    return LoraConfig(
        task_type=task_type,
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=targets,
        modules_to_save=heads or None,
    )


def apply_peft(model, recipe, task: str | None = None):
    """``model`` wrapped for the recipe's ``peft`` method (unchanged for ``peft: none``).

    ``task`` as for :func:`lora_config`. Under LoRA only the adapters and the head require gradients.
    """
    if not uses_peft(recipe):
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    config = lora_config(recipe, model, task)
    if recipe.peft == "qlora":
        # Casts norms to fp32, enables input gradients and gradient checkpointing (the QLoRA setup).
        model = prepare_model_for_kbit_training(model)
    return get_peft_model(model, config)


def trainable_parameters(model) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (peft's ``get_nb_trainable_parameters`` where it exists)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        return tuple(model.get_nb_trainable_parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters())


def save_merged(model, output_dir: str | os.PathLike, processing_class=None) -> str | None:
    """``--merge_adapter``: the adapters folded into the base weights (``W + alpha/r * B A``), saved as a
    plain Transformers model in ``<output_dir>/merged`` (loadable without peft). ``None`` if not a peft model."""
    if not hasattr(model, "merge_and_unload"):
        return None
    import copy

    target = os.path.join(os.fspath(output_dir), MERGED_DIR)
    # merge_and_unload modifies the wrapped model in place; the trainer's model stays an adapter model.
    merged = copy.deepcopy(model).merge_and_unload()
    merged.save_pretrained(target)
    if processing_class is not None:
        processing_class.save_pretrained(target)
    return target


__all__ = [
    "active_adapter_config",
    "apply_peft",
    "carries_recipe_adapter",
    "check_peft_environment",
    "peft_load_kwargs",
    "resolve_target_modules",
    "head_modules",
    "trainable_parameters",
    "save_merged",
    "uses_peft",
    "PEFT_EXTRA",
    "MERGED_DIR",
]
