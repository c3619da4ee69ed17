"""Running a card: each seed through the main job in-process, its result, and recording the measured mean
into the card."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import yaml

from ftrecipes.baselines.cards import BaselineCard, card_from_dict
from ftrecipes.baselines.verdict import Verdict
from ftrecipes.config.errors import ConfigError
from ftrecipes.training.precision import trained_precision


@dataclass
class SeedResult:
    seed: int
    exit_code: int
    metrics: dict
    wall_time_s: float
    output_dir: str
    precision: str = ""  # what the run trained in, from its plan.json ('' if it wrote none)

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
    return SeedResult(seed, code, metrics, wall, output_dir, trained_precision(output_dir))


def machine_info() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
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
        "card": card.name,
        "metric": card.metric,
        "command": command,
        "machine": machine_info(),
        "expected": card.expected,
        "tolerance": card.tolerance,
        "check": card.check,
        "mean": verdict.mean,
        "std": verdict.std,
        "values": verdict.values,
        "status": verdict.status,
        "seeds": [asdict(r) for r in results],
        "source": card.source,
    }


def record_expected(
    card: BaselineCard,
    verdict: Verdict,
    command: str,
    min_tolerance: Optional[float] = None,
    precision: Optional[str] = None,
) -> str:
    """Write the measured mean into the card file as ``expected`` (comments kept), widen ``tolerance``
    to at least 3 standard deviations over seeds, and store what was measured under ``recorded`` (with the
    precision the seeds trained in, when given). Returns the new file text."""
    if card.path is None:
        raise ConfigError("--record", card.name, "the card has no file to write", "load it from a YAML file")
    path = Path(card.path)
    text = path.read_text()
    tolerance = max(card.tolerance if min_tolerance is None else min_tolerance, _round_up(3 * verdict.std, 4))
    text = _set_line(text, "expected", f"{verdict.mean:.4f}")
    text = _set_line(text, "tolerance", f"{tolerance:.4f}")
    recorded = {
        "mean": round(verdict.mean, 6),
        "std": round(verdict.std, 6),
        "values": [round(v, 6) for v in verdict.values],
        "seeds": card.seed_list[: len(verdict.values)],
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {machine_info()['torch_threads']}",
    }
    if precision:
        recorded["precision"] = precision
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
    return re.sub(
        pattern, lambda m: f"{key}: {value}" + (f"  {m.group(1)}" if m.group(1) else ""), text, count=1, flags=re.M
    )


__all__ = ["SeedResult", "run_seed", "machine_info", "card_result", "record_expected"]
