"""Baseline cards: a recipe's expected result on a task, checked by running it.

A card is a small YAML file in ``recipes/baselines/`` naming what to run and what should come out::

    description: MiniLM on BBC News topics with the cls recipe
    task: sequence-classification        # must equal the recipe's task
    model: minilm                        # --model_name_or_path
    data: bbc_news                       # --dataset_name (data_config: --dataset_config_name)
    recipe: cls
    overrides: {max_seq_length: 64}      # any finetune.py flag, without the dashes
    metric: eval_accuracy                # a key of eval_results.json
    expected: 0.97                       # null until a recording run fills it in (reproduce.py --record)
    tolerance: 0.01
    check: within                        # |mean - expected| <= tolerance; or at_least: mean >= expected - tolerance
    seeds: 3                             # training seeds first_seed, first_seed+1, ...
    needs_hub: false                     # true: model or data come from the Hugging Face Hub
    source: {kind: recorded, command: "python scripts/reproduce.py --card bbc-minilm --seeds 3 --record"}

Every seed runs the same code path as ``scripts/finetune.py`` (:func:`ftrecipes.job.parse.parse_args` +
:func:`~ftrecipes.job.run.run`, in-process) with ``--seed`` set; the verdict compares the mean over
seeds with ``expected ± tolerance`` (:func:`judge`). Bad cards raise :class:`ConfigError` naming the field.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.config.files import load_yaml_mapping

REQUIRED = ("description", "task", "model", "data", "recipe", "metric", "expected", "tolerance", "seeds", "source")
OPTIONAL = ("data_config", "overrides", "check", "needs_hub", "first_seed", "recorded")
CHECKS = ("within", "at_least")
SOURCE_KINDS = ("publication", "recorded")
# Flags a card sets through its own fields (or reproduce.py sets per seed), never through overrides.
RESERVED_FLAGS = (
    "model_name_or_path",
    "dataset_name",
    "dataset_config_name",
    "recipe",
    "seed",
    "output_dir",
    "overwrite_output_dir",
)
# Offline names that never need the Hub (besides bundled data aliases and existing local paths).
LOCAL_MODELS = ("minilm", "all-minilm-l6-v2", "small-cnn", "small_cnn", "smallcnn")


def baselines_dir() -> Path:
    """The folder of shipped cards (``recipes/baselines``, reached through the package's ``recipes`` link)."""
    from ftrecipes.config.registry import recipes_dir

    return recipes_dir() / "baselines"


@dataclass
class BaselineCard:
    """A validated baseline card (see the module docstring for the fields)."""

    name: str
    description: str
    task: str
    model: str
    data: str
    recipe: str
    metric: str
    expected: Optional[float]
    tolerance: float
    seeds: int
    source: dict
    data_config: Optional[str] = None
    overrides: dict = field(default_factory=dict)
    check: str = "within"
    needs_hub: bool = False
    first_seed: int = 42
    recorded: Optional[dict] = None
    path: Optional[str] = None

    @property
    def seed_list(self) -> list[int]:
        return [self.first_seed + i for i in range(self.seeds)]

    def hub_names(self) -> list[str]:
        """The model / data names this card would fetch from the Hub (empty: runs offline)."""
        from ftrecipes.config.bundled import canonical_dataset_name

        names = []
        if self.model.strip().lower() not in LOCAL_MODELS and not os.path.exists(self.model):
            names.append(f"model {self.model!r}")
        if canonical_dataset_name(self.data) is None and not os.path.exists(self.data):
            names.append(f"data {self.data!r}" + (f" ({self.data_config})" if self.data_config else ""))
        if self.needs_hub and not names:
            names.append(f"model {self.model!r} / data {self.data!r}")
        return names

    def argv(self, seed: int, output_dir: str, extra: dict | None = None) -> list[str]:
        """The ``finetune.py`` command line of one seed (``extra`` overrides win over the card's)."""
        args = ["--recipe", self.recipe, "--model_name_or_path", self.model, "--dataset_name", self.data]
        if self.data_config:
            args += ["--dataset_config_name", self.data_config]
        for key, value in {**self.overrides, **(extra or {})}.items():
            args += [f"--{key}", _flag_value(value)]
        args += ["--seed", str(seed), "--output_dir", output_dir, "--overwrite_output_dir", "true"]
        return args

    def command(self, seeds: int | None = None) -> str:
        return f"ftrecipes reproduce --card {self.name}" + (f" --seeds {seeds}" if seeds is not None else "")


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def list_cards() -> list[str]:
    """Names of the shipped cards, sorted."""
    return sorted(p.stem for p in baselines_dir().glob("*.yaml"))


def card_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        if not candidate.is_file():
            raise ConfigError(
                "--card", str(name_or_path), "file does not exist", "give a card name (see --list) or a YAML path"
            )
        return candidate
    path = baselines_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            "--card",
            name_or_path,
            "is not a known card",
            did_you_mean(name_or_path, list_cards()) or f"choose one of {list_cards()}",
        )
    return path


def load_card(name_or_path: str, *, check_flags: bool = True) -> BaselineCard:
    """Load and validate a card by name (``recipes/baselines/<name>.yaml``) or path. ``check_flags=False``
    skips checking ``overrides`` against finetune.py's flags (that loads transformers; listing cards
    does not need it — running one does)."""
    path = card_path(name_or_path)
    data = load_yaml_mapping(path, "--card", "card fields")
    return card_from_dict(data, name=path.stem, source=str(path), check_flags=check_flags)


def card_from_dict(data: dict, name: str = "card", source: str = "card", *, check_flags: bool = True) -> BaselineCard:
    """A :class:`BaselineCard` from a mapping; every problem is a :class:`ConfigError` naming the field."""
    known = REQUIRED + OPTIONAL
    for key in data:
        if key not in known:
            raise ConfigError(
                key,
                data[key],
                f"is not a card field (in {source})",
                did_you_mean(key, known) or f"card fields: {', '.join(known)}",
            )
    for key in REQUIRED:
        if key not in data:
            raise ConfigError(
                key,
                None,
                f"is missing from the card (in {source})",
                f"add `{key}:`" + (" (null until recorded)" if key == "expected" else ""),
            )
    for key in ("description", "task", "model", "data", "recipe", "metric"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ConfigError(key, data[key], "must be a non-empty string", f"in {source}")
    expected = data["expected"]
    if expected is not None and (
        isinstance(expected, bool) or not isinstance(expected, (int, float)) or not math.isfinite(expected)
    ):
        raise ConfigError("expected", expected, "must be a number or null", "write e.g. 0.97 (null: not recorded yet)")
    tolerance = data["tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise ConfigError("tolerance", tolerance, "must be a non-negative number", "write e.g. 0.01")
    seeds = data["seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError("seeds", seeds, "must be a positive integer", "write e.g. 3")
    first_seed = data.get("first_seed", 42)
    if isinstance(first_seed, bool) or not isinstance(first_seed, int):
        raise ConfigError("first_seed", first_seed, "must be an integer", "write e.g. 42")
    check = data.get("check", "within")
    if check not in CHECKS:
        raise ConfigError("check", check, f"is not one of {list(CHECKS)}", did_you_mean(str(check), CHECKS))
    needs_hub = data.get("needs_hub", False)
    if not isinstance(needs_hub, bool):
        raise ConfigError("needs_hub", needs_hub, "must be true or false")
    if not data["metric"].startswith(("eval_", "test_")):
        raise ConfigError(
            "metric",
            data["metric"],
            "must be a key of eval_results.json or test_results.json",
            "e.g. eval_accuracy, eval_f1",
        )
    _check_source(data["source"], source)
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(
            "overrides",
            overrides,
            "must be a mapping of finetune.py flags to values",
            "write e.g. {max_seq_length: 64}",
        )
    if check_flags:
        _check_overrides(overrides)

    from ftrecipes.config.registry import get_recipe

    try:
        recipe = get_recipe(data["recipe"])
    except ConfigError as err:
        raise ConfigError(
            "recipe", data["recipe"], f"cannot be loaded ({err})", "name a shipped recipe or a YAML path"
        ) from None
    if recipe.task != data["task"]:
        raise ConfigError(
            "task",
            data["task"],
            f"differs from recipe {data['recipe']!r}'s task {recipe.task!r}",
            "fix the card's task or recipe",
        )
    recorded = data.get("recorded")
    if recorded is not None and not isinstance(recorded, dict):
        raise ConfigError("recorded", recorded, "must be a mapping", "it is written by reproduce.py --record")
    return BaselineCard(
        name=name,
        description=data["description"],
        task=data["task"],
        model=data["model"],
        data=data["data"],
        recipe=data["recipe"],
        metric=data["metric"],
        expected=None if expected is None else float(expected),
        tolerance=float(tolerance),
        seeds=seeds,
        source=dict(data["source"]),
        data_config=data.get("data_config"),
        overrides=dict(overrides),
        check=check,
        needs_hub=needs_hub,
        first_seed=first_seed,
        recorded=recorded,
        path=source if source != "card" else None,
    )


def _check_source(src: Any, where: str) -> None:
    if not isinstance(src, dict):
        raise ConfigError("source", src, "must be a mapping with kind and citation/command", f"in {where}")
    kind = src.get("kind")
    if kind not in SOURCE_KINDS:
        raise ConfigError(
            "source.kind",
            kind,
            f"is not one of {list(SOURCE_KINDS)}",
            "publication: a paper/README with its settings; recorded: a figure this project measured",
        )
    need = ("citation", "settings") if kind == "publication" else ("command",)
    for key in need:
        if not isinstance(src.get(key), str) or not src[key].strip():
            raise ConfigError(f"source.{key}", src.get(key), f"is required for a {kind} source", f"in {where}")


def parse_overrides(items: Sequence[str]) -> dict:
    """``--override FLAG=VALUE`` items (reproduce.py, study.py, adaptation_study.py) as ``{flag: value}``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--override", item, "must be FLAG=VALUE", "e.g. --override max_steps=5")
        out[key.strip().lstrip("-")] = value
    return out


def _check_overrides(overrides: dict) -> None:
    from ftrecipes.job.parse import build_parser

    parser = build_parser()
    flags = {o[2:] for a in parser._actions for o in a.option_strings if o.startswith("--")}
    for key in overrides:
        if key in RESERVED_FLAGS:
            raise ConfigError(
                f"overrides.{key}",
                overrides[key],
                "is set by the card itself",
                "use the card fields model/data/data_config/recipe/first_seed",
            )
        if key not in flags:
            raise ConfigError(
                f"overrides.{key}",
                overrides[key],
                "is not a finetune.py flag",
                did_you_mean(key, flags) or "see `ftrecipes train --help`",
            )


__all__ = [
    "REQUIRED",
    "OPTIONAL",
    "CHECKS",
    "SOURCE_KINDS",
    "RESERVED_FLAGS",
    "LOCAL_MODELS",
    "baselines_dir",
    "BaselineCard",
    "list_cards",
    "card_path",
    "load_card",
    "card_from_dict",
    "parse_overrides",
]
