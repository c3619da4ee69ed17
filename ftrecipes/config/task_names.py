"""The names a recipe's ``task:`` field accepts.

The tasks themselves (preprocessing, model class, metrics) are the modules of
:mod:`ftrecipes.data.tasks`, a layer above this one; the config layer validates recipes without
importing it, so the names are stated here and the task registry refuses to load when its modules
and this tuple disagree (a new task is one module there and its name here).
"""

TASK_NAMES = ("causal-lm", "image-classification", "regression", "sequence-classification", "token-classification")

__all__ = ["TASK_NAMES"]
