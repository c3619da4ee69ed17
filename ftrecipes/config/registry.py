"""The registry of shipped recipes: one YAML file per recipe in ``recipes/``.

``get_recipe("cls")`` loads ``recipes/cls.yaml``; a path to any YAML file works too, so a user's own
recipe is loaded exactly like a shipped one. Keyword overrides are applied on top, strictly.
"""

from __future__ import annotations

import os
from pathlib import Path

from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.config.recipe import Recipe

# Shipped recipes sit in ``recipes/`` at the top of the project; inside the package the same folder is
# reached through the ``ftrecipes/recipes`` link, which packaging turns into real files.
_PACKAGE_RECIPES = Path(__file__).resolve().parents[1] / "recipes"
_ENV_DIR = "FTRECIPES_RECIPES_DIR"


def recipes_dir() -> Path:
    """The folder of shipped recipes (``$FTRECIPES_RECIPES_DIR`` overrides it)."""
    return Path(os.environ.get(_ENV_DIR, _PACKAGE_RECIPES))


def list_recipes() -> list[str]:
    """Names of the shipped recipes, sorted."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def recipe_path(name: str) -> Path:
    return recipes_dir() / f"{name}.yaml"


def get_recipe(name_or_path: str, **overrides) -> Recipe:
    """A shipped recipe by name, or a recipe YAML file by path, with ``overrides`` applied."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        recipe = Recipe.from_yaml(candidate)
    else:
        path = recipe_path(name_or_path)
        if not path.is_file():
            names = list_recipes()
            hint = did_you_mean(name_or_path, names) or f"choose one of {names}"
            raise ConfigError("--recipe", name_or_path, "is not a known recipe", hint)
        recipe = Recipe.from_yaml(path)
    return recipe.replace(**overrides) if overrides else recipe
