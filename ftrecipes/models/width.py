"""A model's width (and depth), read without loading the model, and the peak-LR rule applied to it.

A model *name*'s width comes from its ``config.json``: a local folder or file, the bundled MiniLM, the
Hugging Face cache, and online the Hub's copy of that one file (``huggingface_hub.hf_hub_download``, as
``from_pretrained`` would fetch it). A model *object*'s comes from its ``config``. The rule itself (the
formula, the choice and its provenance line) is :mod:`ftrecipes.config.peak_rule`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ftrecipes.config.bundled import MINILM_PACKAGE, MODEL_ALIASES
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.peak_rule import (
    WIDTH_KEYS,
    ModelWidth,
    PeakChoice,
    apply_choice,
    choose_peak,
    depth_of_config,
    width_of_config,
)
from ftrecipes.models.lora import active_adapter_config
from ftrecipes.models.names import default_model_path


def _config_json(name: str, cache_dir: str | None) -> tuple[Path | None, str]:
    """Where ``name``'s config.json is (or ``None``, and why not)."""
    if name.lower() in MODEL_ALIASES:
        try:
            return Path(default_model_path()) / "config.json", f"the bundled {name!r}"
        except ConfigError:
            return None, f"the bundled {name!r} (package {MINILM_PACKAGE}) is not installed"
    path = Path(name).expanduser()
    if path.is_dir():
        return path / "config.json", str(path)
    if path.is_file():
        return path, str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return None, f"{name!r} is not a folder"
    return _hub_config_json(name, cache_dir)


def _hub_config_json(repo_id: str, cache_dir: str | None) -> tuple[Path | None, str]:
    """A Hub id's config.json: from the local cache, or (online) downloaded, as from_pretrained would."""
    try:
        import huggingface_hub
    except ImportError:
        return None, f"{repo_id!r} is not a local folder and huggingface_hub is not installed"
    try:
        cached = huggingface_hub.try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir)
    except Exception:  # not a valid repository id
        return None, f"{repo_id!r} is neither a local folder nor a Hub id"
    if isinstance(cached, str):
        return Path(cached), f"{repo_id!r} (Hugging Face cache)"
    offline = getattr(huggingface_hub, "is_offline_mode", None)
    if offline() if callable(offline) else huggingface_hub.constants.HF_HUB_OFFLINE:
        return None, f"{repo_id!r} has no config.json in the Hugging Face cache and the Hub is offline"
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, "config.json", cache_dir=cache_dir)), f"{repo_id!r} (Hub)"
    except Exception as err:
        return None, f"the config.json of {repo_id!r} could not be fetched ({type(err).__name__})"


def read_model_width(name_or_path: str, *, cache_dir: str | None = None) -> ModelWidth:
    """The width of the model ``name_or_path`` (a folder, a config.json, ``minilm``, a Hub id), read
    from its config.json without loading anything."""
    path, where = _config_json(str(name_or_path), cache_dir)
    if path is None:
        return ModelWidth(None, where)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ModelWidth(None, f"{where} has no readable config.json")
    width, key = width_of_config(data) if isinstance(data, dict) else (None, None)
    if width is None:
        return ModelWidth(None, f"the config of {where} names none of {', '.join(WIDTH_KEYS)}")
    return ModelWidth(width, f"{key} in the config.json of {where}", depth_of_config(data))


def model_width(model: Any) -> ModelWidth:
    """The width of a model object (a ``PreTrainedModel``, a peft model, anything with ``.config``)."""
    if model is None:
        return ModelWidth(None, "no model was given")
    config = getattr(model, "config", None)
    if config is None and hasattr(model, "get_base_model"):
        config = getattr(model.get_base_model(), "config", None)
    if config is None:
        return ModelWidth(None, f"the {type(model).__name__} has no config")
    width, key = width_of_config(config)
    if width is None:
        return ModelWidth(None, f"the config of the {type(model).__name__} names none of {', '.join(WIDTH_KEYS)}")
    return ModelWidth(width, f"{key} of the model's config", depth_of_config(config))


def resolve_peak_rule(
    recipe, model_name_or_path: str | None = None, *, config_name: str | None = None, cache_dir: str | None = None
) -> tuple[Any, PeakChoice | None]:
    """``(recipe with the rule applied, the choice)`` for the model named ``config_name`` (whose config
    the model is built from when given) or ``model_name_or_path`` (default: the recipe's); the recipe
    unchanged and ``None`` when its ``lr_rule`` is ``none``."""
    if recipe.lr_rule == "none":
        return recipe, None
    name = config_name or model_name_or_path or recipe.model_name_or_path
    choice = choose_peak(recipe, read_model_width(name, cache_dir=cache_dir))
    return apply_choice(recipe, choice), choice


def resolve_peak_rule_for_model(recipe, model: Any, adapter: Any = None) -> tuple[Any, PeakChoice | None]:
    """As :func:`resolve_peak_rule`, for a model object (its ``config``). Under LoRA the rule reads the rank and
    alpha of the adapter that trains, where it is not the recipe's: ``adapter`` (a peft config a trainer will
    apply) or else the model's active adapter (a peft model); one line says so. The returned recipe keeps its own
    adapter settings."""
    if recipe.lr_rule == "none":
        return recipe, None
    choice = choose_peak(
        _as_trained(recipe, adapter if adapter is not None else active_adapter_config(model)), model_width(model)
    )
    return apply_choice(recipe, choice), choice


def _as_trained(recipe, adapter: Any):
    """``recipe`` with the rank and alpha of ``adapter`` when it is a LoRA adapter with other ones; a full
    fine-tuning recipe handed a LoRA adapter is read as LoRA (only the adapter trains, so its peak applies)."""
    r, alpha = getattr(adapter, "r", None), getattr(adapter, "lora_alpha", None)
    if not isinstance(r, int) or not isinstance(alpha, (int, float)):
        return recipe
    if recipe.peft == "none":
        logging.getLogger(__name__).warning(
            "recipe %r: full fine-tuning, but the model trains a LoRA adapter (r=%s, lora_alpha=%s): the peak-LR "
            "rule gives the adapter's peak; use a LoRA recipe (e.g. lora-cls) for its other settings",
            recipe.name,
            r,
            alpha,
        )
        return recipe.replace(peft="lora", lora_r=r, lora_alpha=alpha)
    if (r, alpha) == (recipe.lora_r, recipe.lora_alpha):
        return recipe
    logging.getLogger(__name__).info(
        "recipe %r: the peak-LR rule reads the adapter that trains (r=%s, lora_alpha=%s), not the recipe's "
        "(r=%s, lora_alpha=%s)",
        recipe.name,
        r,
        alpha,
        recipe.lora_r,
        recipe.lora_alpha,
    )
    return recipe.replace(lora_r=r, lora_alpha=alpha)


__all__ = ["read_model_width", "model_width", "resolve_peak_rule", "resolve_peak_rule_for_model"]
