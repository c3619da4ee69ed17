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
import platform
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from ftrecipes.config.env import env_true
from ftrecipes.config.errors import ConfigError, did_you_mean
from ftrecipes.config.files import load_yaml_mapping

REQUIRED = ("description", "task", "model", "data", "recipe", "metric", "expected", "tolerance", "seeds", "source")
OPTIONAL = ("data_config", "overrides", "check", "needs_hub", "first_seed", "recorded")
CHECKS = ("within", "at_least")
SOURCE_KINDS = ("publication", "recorded")
# Flags a card sets through its own fields (or reproduce.py sets per seed), never through overrides.
RESERVED_FLAGS = ("model_name_or_path", "dataset_name", "dataset_config_name", "recipe", "seed", "output_dir", "overwrite_output_dir")
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
        return f"python scripts/reproduce.py --card {self.name}" + (f" --seeds {seeds}" if seeds is not None else "")


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


# ------------------------------------------------------------------------------------------------
# Loading and validation


def list_cards() -> list[str]:
    """Names of the shipped cards, sorted."""
    return sorted(p.stem for p in baselines_dir().glob("*.yaml"))


def card_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        if not candidate.is_file():
            raise ConfigError("--card", str(name_or_path), "file does not exist", "give a card name (see --list) or a YAML path")
        return candidate
    path = baselines_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError("--card", name_or_path, "is not a known card", did_you_mean(name_or_path, list_cards()) or f"choose one of {list_cards()}")
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
            raise ConfigError(key, data[key], f"is not a card field (in {source})", did_you_mean(key, known) or f"card fields: {', '.join(known)}")
    for key in REQUIRED:
        if key not in data:
            raise ConfigError(key, None, f"is missing from the card (in {source})", f"add `{key}:`" + (" (null until recorded)" if key == "expected" else ""))
    for key in ("description", "task", "model", "data", "recipe", "metric"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ConfigError(key, data[key], "must be a non-empty string", f"in {source}")
    expected = data["expected"]
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, (int, float)) or not math.isfinite(expected)):
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
        raise ConfigError("metric", data["metric"], "must be a key of eval_results.json or test_results.json", "e.g. eval_accuracy, eval_f1")
    _check_source(data["source"], source)
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError("overrides", overrides, "must be a mapping of finetune.py flags to values", "write e.g. {max_seq_length: 64}")
    if check_flags:
        _check_overrides(overrides)

    from ftrecipes.config.registry import get_recipe

    try:
        recipe = get_recipe(data["recipe"])
    except ConfigError as err:
        raise ConfigError("recipe", data["recipe"], f"cannot be loaded ({err})", "name a shipped recipe or a YAML path") from None
    if recipe.task != data["task"]:
        raise ConfigError("task", data["task"], f"differs from recipe {data['recipe']!r}'s task {recipe.task!r}", "fix the card's task or recipe")
    recorded = data.get("recorded")
    if recorded is not None and not isinstance(recorded, dict):
        raise ConfigError("recorded", recorded, "must be a mapping", "it is written by reproduce.py --record")
    return BaselineCard(
        name=name, description=data["description"], task=data["task"], model=data["model"], data=data["data"],
        recipe=data["recipe"], metric=data["metric"], expected=None if expected is None else float(expected),
        tolerance=float(tolerance), seeds=seeds, source=dict(data["source"]), data_config=data.get("data_config"),
        overrides=dict(overrides), check=check, needs_hub=needs_hub, first_seed=first_seed, recorded=recorded,
        path=source if source != "card" else None,
    )


def _check_source(src: Any, where: str) -> None:
    if not isinstance(src, dict):
        raise ConfigError("source", src, "must be a mapping with kind and citation/command", f"in {where}")
    kind = src.get("kind")
    if kind not in SOURCE_KINDS:
        raise ConfigError("source.kind", kind, f"is not one of {list(SOURCE_KINDS)}", "publication: a paper/README with its settings; recorded: a figure this project measured")
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
            raise ConfigError(f"overrides.{key}", overrides[key], "is set by the card itself", "use the card fields model/data/data_config/recipe/first_seed")
        if key not in flags:
            raise ConfigError(f"overrides.{key}", overrides[key], "is not a finetune.py flag", did_you_mean(key, flags) or "see scripts/finetune.py --help")


# ------------------------------------------------------------------------------------------------
# The verdict


@dataclass
class Verdict:
    """Measured mean ± std over seeds against ``expected ± tolerance``."""

    values: list[float]
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for one seed
    expected: Optional[float]
    tolerance: float
    check: str
    passed: Optional[bool]  # None: the card has no expected value yet

    @property
    def status(self) -> str:
        return "UNRECORDED" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def line(self, metric: str) -> str:
        measured = f"{metric} {self.mean:.4f} ± {self.std:.4f} (n={len(self.values)})"
        if self.expected is None:
            return f"{measured}; no expected value recorded: {self.status}"
        rule = f"expected {self.expected:.4f} ± {self.tolerance:.4f}" if self.check == "within" else f"expected ≥ {self.expected - self.tolerance:.4f} ({self.expected:.4f} - {self.tolerance:.4f})"
        return f"{measured} vs {rule}: {self.status}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value); NaN in, NaN out."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def judge(values: Sequence[float], expected: Optional[float], tolerance: float, check: str = "within") -> Verdict:
    """PASS when the seed mean is within ``tolerance`` of ``expected`` (``check='within'``), or at least
    ``expected - tolerance`` (``check='at_least'``, for published figures a run may beat). A non-finite
    value (a diverged seed) always fails. The spread over seeds is reported, not tested: the card's
    tolerance is meant to cover seed-to-seed variation.
    """
    if check not in CHECKS:
        raise ConfigError("check", check, f"is not one of {list(CHECKS)}")
    mean, std = mean_std(values)
    if expected is None:
        passed = None
    elif not all(math.isfinite(v) for v in values):
        passed = False
    elif check == "within":
        passed = abs(mean - expected) <= tolerance + 1e-12
    else:
        passed = mean >= expected - tolerance - 1e-12
    return Verdict([float(v) for v in values], mean, std, expected, tolerance, check, passed)


# ------------------------------------------------------------------------------------------------
# Offline detection


def hub_offline() -> bool:
    """Whether the environment forbids the Hub: ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` (what
    ``huggingface_hub.is_offline_mode`` honours) or ``HF_DATASETS_OFFLINE`` (what ``datasets`` adds) set true."""
    # huggingface_hub and datasets read these variables once, at import (is_offline_mode() returns that
    # frozen value); they are read again here, with the same truth values, so a variable set after
    # import (a launcher, a test) still counts.
    return any(env_true(v) for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """A TCP connection to the Hub endpoint (``HF_ENDPOINT``) succeeds within ``timeout`` seconds."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0]
    host, _, port = host.partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=timeout):
            return True
    except OSError:
        return False


def unreachable_reason(card: BaselineCard, *, probe: bool = True) -> Optional[str]:
    """Why ``card`` cannot run here (one line), or ``None`` when it can. Checked before any run."""
    names = card.hub_names()
    if not names:
        return None
    what = " and ".join(names)
    if hub_offline():
        return f"card {card.name!r} needs the Hugging Face Hub ({what}) but HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set; run it on a machine with Hub access"
    if probe and not hub_reachable():
        return f"card {card.name!r} needs the Hugging Face Hub ({what}), which is not reachable from here; run it on a machine with Hub access"
    return None


# ------------------------------------------------------------------------------------------------
# Running a card


@dataclass
class SeedResult:
    seed: int
    exit_code: int
    metrics: dict
    wall_time_s: float
    output_dir: str

    def value(self, metric: str) -> float:
        return float(self.metrics.get(metric, float("nan"))) if self.exit_code == 0 else float("nan")


def run_seed(card: BaselineCard, seed: int, output_dir: str, extra: dict | None = None) -> SeedResult:
    """One training run of ``card`` at ``seed`` through the finetune pipeline (in-process).

    Raises :class:`ConfigError` for bad input (as finetune.py would exit 2)."""
    import gc

    from ftrecipes.job.parse import parse_args
    from ftrecipes.job.run import run

    argv = card.argv(seed, output_dir, extra)
    start = time.perf_counter()
    code = run(parse_args(argv))
    wall = time.perf_counter() - start
    metrics: dict = {}
    for split in ("eval", "test", "train"):
        f = Path(output_dir) / f"{split}_results.json"
        if f.is_file():
            metrics.update(json.loads(f.read_text()))
    gc.collect()
    return SeedResult(seed, code, metrics, wall, output_dir)


def machine_info() -> dict:
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def card_result(card: BaselineCard, results: Sequence[SeedResult], verdict: Verdict, command: str) -> dict:
    """The JSON record of a reproduction."""
    return {
        "card": card.name, "metric": card.metric, "command": command, "machine": machine_info(),
        "expected": card.expected, "tolerance": card.tolerance, "check": card.check,
        "mean": verdict.mean, "std": verdict.std, "values": verdict.values, "status": verdict.status,
        "seeds": [asdict(r) for r in results],
        "source": card.source,
    }


def record_expected(card: BaselineCard, verdict: Verdict, command: str, min_tolerance: Optional[float] = None) -> str:
    """Write the measured mean into the card file as ``expected`` (comments kept), widen ``tolerance``
    to at least 3 standard deviations over seeds, and store what was measured under ``recorded``.
    Returns the new file text."""
    if card.path is None:
        raise ConfigError("--record", card.name, "the card has no file to write", "load it from a YAML file")
    path = Path(card.path)
    text = path.read_text()
    tolerance = max(card.tolerance if min_tolerance is None else min_tolerance, _round_up(3 * verdict.std, 4))
    text = _set_line(text, "expected", f"{verdict.mean:.4f}")
    text = _set_line(text, "tolerance", f"{tolerance:.4f}")
    recorded = {
        "mean": round(verdict.mean, 6), "std": round(verdict.std, 6), "values": [round(v, 6) for v in verdict.values],
        "seeds": card.seed_list[: len(verdict.values)], "command": command, "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {machine_info()['torch_threads']}",
    }
    block = "recorded: " + json.dumps(recorded)
    if re.search(r"^recorded:.*$", text, flags=re.M):
        text = re.sub(r"^recorded:.*$", lambda _: block, text, count=1, flags=re.M)
    else:
        text = text.rstrip("\n") + "\n" + block + "\n"
    card_from_dict(yaml.safe_load(text), name=card.name, source=str(path))  # still a valid card
    path.write_text(text)
    return text


def _round_up(x: float, digits: int) -> float:
    scale = 10**digits
    return math.ceil(x * scale - 1e-6) / scale  # 0.030000000000000002 stays 0.03


def _set_line(text: str, key: str, value: str) -> str:
    pattern = rf"^{key}:[^\n#]*(#.*)?$"
    if not re.search(pattern, text, flags=re.M):
        raise ConfigError(key, None, "has no top-level line in the card to update")
    return re.sub(pattern, lambda m: f"{key}: {value}" + (f"  {m.group(1)}" if m.group(1) else ""), text, count=1, flags=re.M)


# ------------------------------------------------------------------------------------------------
# Seed studies (scripts/benchmarks/recipe_study.py, scripts/benchmarks/adaptation_study.py): arms x classification cards x seeds

STUDY_CARDS = ("bbc-minilm", "tweets-minilm")


def add_study_arguments(parser, arms: Sequence[str], output_dir: str) -> None:
    """The flags every seed study takes (an ``argparse.ArgumentParser``; the study adds its own)."""
    parser.add_argument("--cards", nargs="+", default=list(STUDY_CARDS), help="Classification cards to study.")
    parser.add_argument("--arms", nargs="+", default=list(arms), choices=list(arms), help="Which arms to run.")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds per (card, arm), from the card's first seed.")
    parser.add_argument("--output_dir", default=output_dir)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (default: finetune.py's --cpu_threads rule).")
    parser.add_argument("--override", action="append", default=[], metavar="FLAG=VALUE",
                        help="Extra finetune.py flag for every run (e.g. max_steps=5 for a smoke run).")


def study_cards(names: Sequence[str]) -> tuple[list[BaselineCard], Optional[str]]:
    """The classification cards a study compares (accuracy and macro-F1), and why one of them cannot
    run here (``None`` when all can: the study then runs; else it stops before any run)."""
    cards = [load_card(name) for name in names]
    for card in cards:
        if card.task != "sequence-classification":
            raise ConfigError("--cards", card.name, f"has task {card.task!r}", "the study compares sequence-classification cards (accuracy and macro-F1)")
    return cards, next((reason for reason in map(unreachable_reason, cards) if reason is not None), None)


def study_overrides(args) -> dict:
    """The finetune.py flags every run of a study takes: ``--override`` items, and ``--threads`` as ``cpu_threads``."""
    if args.seeds < 1:
        raise ConfigError("--seeds", args.seeds, "must be a positive integer", "e.g. --seeds 3")
    extra = parse_overrides(args.override)
    if args.threads is not None:
        extra["cpu_threads"] = str(args.threads)  # the pipeline sets torch threads from this flag
    return extra


# The recipe study: the cls recipe against plain Trainer defaults and a constant LR

STUDY_ARMS: dict[str, dict] = {
    # The card's recipe as shipped (cls: AdamW 5e-5, 5% warmup, cosine to 10%, wd 0.01, clip 1.0).
    "recipe": {},
    # transformers.Trainer's defaults: AdamW 5e-5, linear decay to 0, no warmup, no weight decay.
    "trainer-defaults": {"lr_scheduler_type": "linear", "warmup": 0, "min_lr_rate": 0, "weight_decay": 0, "learning_rate": 5e-5, "lr_scaling": "none"},
    # A constant LR (the recipe's peak), no warmup.
    "constant": {"lr_scheduler_type": "constant", "warmup": 0},
}


def summarize_study(rows: Sequence[dict], metrics: Sequence[str] = ("eval_accuracy", "eval_f1")) -> list[dict]:
    """Group study rows (``card``, ``arm``, ``seed``, metric values, ``wall_time_s``) into mean ± std per (card, arm)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["card"], row["arm"]), []).append(row)
    out = []
    for (card, arm), items in groups.items():
        entry = {"card": card, "arm": arm, "n": len(items), "seeds": [r["seed"] for r in items]}
        for key in (*metrics, "wall_time_s", "train_runtime"):
            values = [float(r[key]) for r in items if r.get(key) is not None]
            if values:
                entry[key] = dict(zip(("mean", "std"), mean_std(values)))
        out.append(entry)
    return out


def study_markdown(summary: Sequence[dict]) -> str:
    """The study summary as a markdown table."""

    def cell(entry, key, fmt):
        v = entry.get(key)
        return "n/a" if v is None else f"{fmt.format(v['mean'])} ± {fmt.format(v['std'])}"

    lines = ["| card | arm | accuracy | macro-F1 | wall time / run (s) | train time / run (s) | seeds |", "|---|---|---|---|---|---|---|"]
    for e in summary:
        lines.append(
            f"| {e['card']} | {e['arm']} | {cell(e, 'eval_accuracy', '{:.4f}')} | {cell(e, 'eval_f1', '{:.4f}')} | "
            f"{cell(e, 'wall_time_s', '{:.0f}')} | {cell(e, 'train_runtime', '{:.0f}')} | {e['n']} |"
        )
    return "\n".join(lines)


__all__ = [
    "BaselineCard",
    "Verdict",
    "SeedResult",
    "STUDY_ARMS",
    "baselines_dir",
    "list_cards",
    "load_card",
    "card_from_dict",
    "judge",
    "mean_std",
    "hub_offline",
    "hub_reachable",
    "unreachable_reason",
    "run_seed",
    "card_result",
    "record_expected",
    "summarize_study",
    "study_markdown",
]
