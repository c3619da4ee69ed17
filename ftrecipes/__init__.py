"""ftrecipes: fine-tuning recipes for Hugging Face Transformers.

>>> from ftrecipes import get_recipe
>>> recipe = get_recipe("cls")            # AdamW, 5% warmup, cosine to 10% of peak, clip 1.0
"""

from .errors import ConfigError
from .lr_scheduler import ScheduleLR
from .precision import resolve_precision
from .recipe import Recipe, RecipePlan
from .registry import get_recipe, list_recipes
from .schedule_types import SCHEDULE_TYPES, BuiltSchedule, Transition
from .timeline import Timeline
from .trainer import RecipeTrainer, accelerate_scheduler, recipe_optimizers, recipe_training_args

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Recipe",
    "RecipePlan",
    "ScheduleLR",
    "SCHEDULE_TYPES",
    "BuiltSchedule",
    "Transition",
    "Timeline",
    "RecipeTrainer",
    "recipe_training_args",
    "recipe_optimizers",
    "accelerate_scheduler",
    "get_recipe",
    "list_recipes",
    "resolve_precision",
]
