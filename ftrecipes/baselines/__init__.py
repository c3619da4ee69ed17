"""Baseline cards: what a recipe should reach on a task, checked by running it
(see :mod:`ftrecipes.baselines.cards`)."""
