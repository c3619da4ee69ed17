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
    "ConfigError": "errors",
    "Recipe": "recipe",
    "RecipePlan": "recipe",
    "resolve_precision": "precision",
    "get_recipe": "registry",
    "list_recipes": "registry",
    "SCHEDULE_TYPES": "schedule_types",
    "BuiltSchedule": "schedule_types",
    "Transition": "schedule_types",
    "Timeline": "timeline",
    "ScheduleLR": "lr_scheduler",
    "RecipeTrainer": "trainer",
    "apply_recipe": "trainer",
    "recipe_training_args": "trainer",
    "recipe_optimizers": "trainer",
    "accelerate_scheduler": "trainer",
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
    from ftrecipes.errors import ConfigError
    from ftrecipes.lr_scheduler import ScheduleLR
    from ftrecipes.precision import resolve_precision
    from ftrecipes.recipe import Recipe, RecipePlan
    from ftrecipes.registry import get_recipe, list_recipes
    from ftrecipes.schedule_types import SCHEDULE_TYPES, BuiltSchedule, Transition
    from ftrecipes.timeline import Timeline
    from ftrecipes.trainer import RecipeTrainer, accelerate_scheduler, apply_recipe, recipe_optimizers, recipe_training_args
