"""ftrecipes: fine-tuning recipes for Hugging Face Transformers.

>>> from ftrecipes import get_recipe
>>> recipe = get_recipe("cls")            # AdamW, 5% warmup, cosine to 10% of peak, clip 1.0

The names below are imported on first use (PEP 562 module ``__getattr__``): the config layer
(recipes, durations, timeline, schedules, scaling) imports neither torch nor transformers, so
``import ftrecipes`` and ``ftrecipes list`` stay fast; the Trainer side loads only when it is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS = {
    "ConfigError": "config.errors",
    "Recipe": "config.recipe",
    "RecipePlan": "config.recipe",
    "resolve_precision": "training.precision",
    "get_recipe": "config.registry",
    "list_recipes": "config.registry",
    "SCHEDULE_TYPES": "config.schedule_types",
    "BuiltSchedule": "config.built_schedule",
    "Transition": "config.built_schedule",
    "Timeline": "config.timeline",
    "ScheduleLR": "training.lr_scheduler",
    "RecipeTrainer": "training.trainer",
    "apply_recipe": "training.arguments",
    "recipe_training_args": "training.arguments",
    "recipe_optimizers": "training.stock",
    "accelerate_scheduler": "training.stock",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ftrecipes' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from ftrecipes.config.built_schedule import BuiltSchedule, Transition
    from ftrecipes.config.errors import ConfigError
    from ftrecipes.config.recipe import Recipe, RecipePlan
    from ftrecipes.config.registry import get_recipe, list_recipes
    from ftrecipes.config.schedule_types import SCHEDULE_TYPES
    from ftrecipes.config.timeline import Timeline
    from ftrecipes.training.arguments import apply_recipe, recipe_training_args
    from ftrecipes.training.lr_scheduler import ScheduleLR
    from ftrecipes.training.precision import resolve_precision
    from ftrecipes.training.stock import accelerate_scheduler, recipe_optimizers
    from ftrecipes.training.trainer import RecipeTrainer
