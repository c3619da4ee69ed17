"""Shared fixtures: tiny saved checkpoints and small labelled data files (all offline, seconds)."""

import atexit
import csv
import gc
import os
import random
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest

# Hermetic to the Hugging Face environment of whoever runs the suite: huggingface_hub, datasets,
# transformers and accelerate read these variables (several at import time, so this runs before any
# of them is imported), and a user's TRANSFORMERS_OFFLINE, HF_HOME or ACCELERATE_USE_CPU would
# otherwise change what the tests see. The Hub and its caches are replaced by an empty cache folder
# with the Hub switched off; tests that need another setting set it themselves (monkeypatch, env=).
_USER_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "ACCELERATE_")
for _name in [n for n in os.environ if n.startswith(_USER_PREFIXES)]:
    del os.environ[_name]
_HF_HOME = tempfile.mkdtemp(prefix="ftrecipes-tests-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ.update(HF_HOME=_HF_HOME, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per xdist worker: with -n 2 on two cores, two threads each oversubscribe the
    # cores and OpenMP's spinning burns the difference (the tiny models gain nothing from a second thread).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from ftrecipes.data.topic_words import TOPIC_WORDS  # noqa: E402  (light: no torch, no transformers)

REPO = Path(__file__).resolve().parents[1]
FINETUNE = str(REPO / "scripts" / "finetune.py")
LOOP = str(REPO / "scripts" / "examples" / "accelerate_loop.py")
PYTHON = sys.executable

WORDS = TOPIC_WORDS


TINY_WIDTH = 32  # hidden size of ftrecipes.testing's tiny models (TINY_SIZES)


def on_tiny(recipe):
    """``recipe`` as a run on the tiny models trains it: its peak-LR rule (if any) applied for their width."""
    from ftrecipes.config.peak_rule import ModelWidth, apply_choice, choose_peak

    return apply_choice(recipe, choose_peak(recipe, ModelWidth(TINY_WIDTH, "the tiny test model")))


def assert_logged_group_lrs(output_dir, peaks: dict, plan) -> list[dict]:
    """Every training log of the run in ``output_dir`` has each ``peaks`` key (``learning_rate`` or
    ``learning_rate/<group>``) at that group's peak x ``plan``'s schedule, and there is one log per optimizer
    step. Returns the training logs."""
    import json

    import pytest

    from ftrecipes.training.stock import expected_lr

    history = json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
    logs = [e for e in history if "loss" in e]
    assert [e["step"] for e in logs] == list(range(1, plan.total_steps + 1))
    for entry in logs:
        for key, group_peak in peaks.items():
            assert entry[key] == pytest.approx(expected_lr(group_peak, plan.schedule, entry["step"]), rel=1e-9), (
                key,
                entry["step"],
            )
    return logs


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a torchrun rendezvous; fixed ports collide across xdist workers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_cls_csv(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    labels = sorted(WORDS)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(n):
            label = labels[i % len(labels)]
            writer.writerow([" ".join(rng.choice(WORDS[label]) for _ in range(rng.randint(5, 12))), label])
    return path


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> str:
    """A tiny base BERT checkpoint (no head) with the tiny WordPiece tokenizer (see ftrecipes.testing)."""
    from ftrecipes.testing import save_tiny_base

    return save_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def cls_files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("cls-data")
    return {
        "train": str(write_cls_csv(folder / "train.csv", 96, seed=1)),
        "validation": str(write_cls_csv(folder / "validation.csv", 24, seed=2)),
    }


def pytest_collection_finish(session):
    """Move what collection imported (torch, transformers: about half a million objects) out of the
    cyclic garbage collector's reach. Trainer ends every run with accelerate's ``free_memory()``, whose
    ``gc.collect()`` otherwise walks all of them (see ``_later_imports_are_frozen_too`` for the rest)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _later_imports_are_frozen_too():
    """After each test, collect its garbage and freeze what survives: mostly the modules it imported for the
    first time (the package imports tensorboard, optuna's database layer, scikit-learn's loaders and model
    classes inside functions, so they arrive after collection). Frozen, they are not walked again by the next
    ``gc.collect()`` a Trainer run makes; the objects a later test creates are, and are collected as before."""
    yield
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _torch_keeps_one_thread_per_worker():
    """Under xdist, a test that leaves torch on more threads than OMP_NUM_THREADS fails here: every later
    test in that worker would run two workers' threads on two cores, where OpenMP's spinning made the
    whole suite a third slower before the main job learned to keep the setting."""
    yield
    torch = sys.modules.get("torch")
    wanted = os.environ.get("OMP_NUM_THREADS")
    if (
        torch is not None
        and os.environ.get("PYTEST_XDIST_WORKER")
        and wanted
        and torch.get_num_threads() != int(wanted)
    ):
        left = torch.get_num_threads()
        torch.set_num_threads(int(wanted))
        pytest.fail(f"the test left torch on {left} threads (OMP_NUM_THREADS={wanted}); restore torch.set_num_threads")


def tiny_job_argv(recipe: str, tiny_base: str, cls_files: dict, output_dir, *extra: str) -> list[str]:
    """The main job's command line for ``recipe`` on the tiny BERT and the topic CSVs: one epoch, 20% warmup, the LR
    logged at every step, no evaluation, no reporting; ``extra`` flags follow (a later flag wins)."""
    return [
        "--recipe", recipe, "--model_name_or_path", tiny_base, "--train_file", cls_files["train"],
        "--validation_file", cls_files["validation"], "--output_dir", str(output_dir), "--num_train_epochs", "1",
        "--warmup", "20%", "--logging_steps", "1", "--eval_strategy", "no", "--max_seq_length", "32",
        "--report_to", "none", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip
