"""The one place where a model is created: :func:`build_model`.

The main job (``finetune.py``), ``--learning_rate auto`` and ``ftrecipes lr-find`` (which build their
components through :func:`ftrecipes.job.run.build_training_components`), and the baseline cards and
studies (which run the main job) all get their model from here, so a model wrapper added here applies
to every one of them.
"""

from __future__ import annotations

import logging
from typing import Any

from ftrecipes.data.tasks import Task, get_task, registered_head_suffixes
from ftrecipes.data.tasks.base import PreparedTask
from ftrecipes.models.names import is_small_cnn_alias

logger = logging.getLogger("ftrecipes.models.build")


def build_model(
    task: str | Task,
    prepared: PreparedTask,
    model_name_or_path: str,
    *,
    config_name: str | None = None,
    cache_dir: str | None = None,
    ignore_mismatched_sizes: bool = False,
    recipe: Any = None,
    attn_implementation: str | None = None,
    load_kwargs: dict | None = None,
):
    """Create the model of a run for ``task``, sized for the prepared data, and wrap it.

    1. ``small-cnn`` for an image task is a fresh :class:`~ftrecipes.models.cnn.SmallCNNForImageClassification`
       sized from the data (a model the Hub does not have).
    2. Otherwise the config of ``config_name or model_name_or_path`` is loaded, the checkpoint's
       head is checked against the data (:meth:`Task.check_head`, skipped with
       ``ignore_mismatched_sizes``), the data's fields (``num_labels``, ``id2label``, ``problem_type``)
       are set on it (:meth:`Task.config_overrides`) and the task's ``AutoModelFor...`` class loads
       the weights (with ``attn_implementation`` when given: the precision policy picks eager
       attention for bf16 on a CPU).
    3. **Model wrappers go here**, in :func:`wrap_model`, and nowhere else: parameter-efficient
       adapters (PEFT / LoRA), layer-wise learning-rate groups, anything that changes which
       parameters train or how. ``recipe`` is passed through so a wrapper reads its settings from
       the run's recipe.

    Names such as ``minilm`` (the bundled checkpoint) resolve to their local folder. Bad names and
    head-size mismatches are :class:`~ftrecipes.config.errors.ConfigError`\\ s naming ``--model_name_or_path``.
    """
    from transformers import AutoConfig

    from ftrecipes.models.names import resolve_model_name_or_path

    task = get_task(task)
    model = None
    if task.name == "image-classification" and is_small_cnn_alias(model_name_or_path) and config_name is None:
        from ftrecipes.models.cnn import (
            SmallCNNForImageClassification,
            small_cnn_config_for,
        )

        model = SmallCNNForImageClassification(small_cnn_config_for(prepared))
    if model is None:
        model_path = resolve_model_name_or_path(model_name_or_path)
        config = AutoConfig.from_pretrained(resolve_model_name_or_path(config_name or model_path), cache_dir=cache_dir)
        if not ignore_mismatched_sizes:
            task.check_head(config, prepared, model_name_or_path, registered_head_suffixes())
        for key, value in task.config_overrides(prepared).items():
            setattr(config, key, value)
        model = task.auto_model_class().from_pretrained(
            model_path,
            config=config,
            cache_dir=cache_dir,
            ignore_mismatched_sizes=ignore_mismatched_sizes,
            **({"attn_implementation": attn_implementation} if attn_implementation else {}),
            **(load_kwargs or {}),  # e.g. QLoRA's 4-bit quantization_config (ftrecipes.models.lora.peft_load_kwargs)
        )
    return wrap_model(model, recipe=recipe)


def wrap_model(model, *, recipe: Any = None):
    """The single hook for model wrappers, applied by :func:`build_model` to every model it creates:

    - LoRA / QLoRA adapters when ``recipe.peft`` asks for them (:func:`ftrecipes.models.lora.apply_peft`:
      only the adapters and the task head train);
    - the layer-wise LR mapping (``layerwise_lr_decay`` and the head / embedding multipliers) checked
      against the model's modules now, so an architecture it cannot place fails before anything is
      written; the optimizer builds the groups from it (:mod:`ftrecipes.training.layerwise`, over
      :mod:`ftrecipes.models.depth`).
    """
    import logging

    from ftrecipes.models.depth import parameter_depths, uses_layerwise
    from ftrecipes.models.lora import apply_peft, trainable_parameters

    if recipe is None:
        return model
    model = apply_peft(model, recipe)
    if uses_layerwise(recipe):
        parameter_depths(model, recipe)
    logging.getLogger("ftrecipes.models.build").info("trainable parameters: %d of %d", *trainable_parameters(model))
    return model
