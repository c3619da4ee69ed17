"""Precision policy: which floating-point mode a run trains in, and whether this machine runs it.

The one home of the policy (the recipe layer only names the policies, ``auto``/``bf16``/``fp16``/
``fp32``, and imports no torch). What ``auto`` means, per device the run trains on:

* **CUDA** — bf16 autocast where the GPU supports it (Ampere and later), else fp16 with loss scaling;
* **CPU with native bf16** — bf16 autocast. "Native" is detected, never assumed: x86 ``AMX-BF16`` or
  ``AVX512_BF16`` (Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later), ARM
  ``FEAT_BF16`` (``bf16`` in ``/proc/cpuinfo``, ``hw.optional.arm.FEAT_BF16`` on macOS; Neoverse
  V1/N2, Graviton 3, Apple M2 and later). There oneDNN runs the matmuls of a bf16-autocast forward
  and backward in bf16 with fp32 accumulation; on a MiniLM step of 16 x 128 tokens that was about 2x
  faster than fp32 on an AVX512_BF16 CPU (docs/results/2026-11-25-cpu-bf16.md has the figures and the quality
  check). Without those instructions bf16 is emulated and slower than fp32;
* **anything else** (CPU without native bf16, Apple MPS, other accelerators) — fp32.

Mixed precision here always means *autocast*: the weights, gradients and optimizer state stay fp32
(master weights) and only the matmul-heavy ops run in the low precision, which is what ``Trainer``
does with ``bf16=True`` (through ``accelerate``'s ``mixed_precision="bf16"``) and what
:func:`autocast` gives a hand-written loop. bf16 keeps fp32's exponent range, so it needs no loss
scaling; fp16 does (``torch.amp.GradScaler``) and is offered on CUDA only.

``transformers`` refuses ``bf16=True`` unless a bf16 GPU is present or ``use_cpu=True`` is set
(``TrainingArguments.__post_init__``, transformers 5.24); :func:`training_args_precision` returns the
``bf16``/``fp16``/``use_cpu`` triple that makes Trainer autocast on CPU.
"""

from __future__ import annotations

import contextlib
import functools
import json
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

from ftrecipes.config.env import env_true, is_true
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.outputs import PLAN_FILE
from ftrecipes.config.recipe import (
    PRECISIONS as POLICIES,  # the names live with the recipe (no torch there)
)

_X86_BF16 = ("amx_bf16", "avx512_bf16")
_ARM_BF16 = ("bf16", "sve_bf16")


# ------------------------------------------------------------------------------------------------
# Detection


@functools.lru_cache(maxsize=None)
def cpu_bf16_features() -> tuple[str, ...]:
    """The native-bf16 CPU features this machine has (empty when it has none).

    Sources, first that answers: ``torch.cpu.get_capabilities()`` (torch >= 2.10, cpuinfo-based, any
    OS); the ``flags``/``Features`` lines of ``/proc/cpuinfo`` (Linux); ``sysctl
    hw.optional.arm.FEAT_BF16`` (macOS on Apple silicon).
    """
    found = _torch_capabilities()
    if found is not None:
        return found
    found = _proc_cpuinfo_flags()
    if found is not None:
        return found
    return _macos_feat_bf16()


def _torch_capabilities() -> tuple[str, ...] | None:
    try:
        import torch

        get = getattr(torch.cpu, "get_capabilities", None)
        if get is None:
            return None
        caps = dict(get())
    except Exception:  # an old torch or an unknown CPU: fall back to the OS
        return None
    return tuple(name for name in _X86_BF16 + _ARM_BF16 if caps.get(name) is True)


def _proc_cpuinfo_flags(path: str = "/proc/cpuinfo") -> tuple[str, ...] | None:
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return None
    return parse_cpuinfo(text)


def parse_cpuinfo(text: str) -> tuple[str, ...]:
    """The native-bf16 features named on the first ``flags`` (x86) or ``Features`` (ARM) line."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            return tuple(name for name in _X86_BF16 + _ARM_BF16 if name in flags)
    return ()


def _macos_feat_bf16() -> tuple[str, ...]:
    if platform.system() != "Darwin":
        return ()
    try:
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ()
    return ("bf16",) if out.returncode == 0 and out.stdout.strip() == "1" else ()


def cpu_supports_bf16() -> bool:
    """Whether this CPU executes bf16 natively (see :func:`cpu_bf16_features`)."""
    return bool(cpu_bf16_features())


def training_device(use_cpu: bool | None = None) -> str:
    """The device type ``Trainer`` will train on: ``cuda``, ``mps``, ``xpu`` or ``cpu`` (``use_cpu`` or
    ``ACCELERATE_USE_CPU`` force the CPU, as in ``TrainingArguments``)."""
    import torch

    if use_cpu or env_true("ACCELERATE_USE_CPU"):
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return "cpu"


def precision_supported(precision: str, device: str | None = None) -> bool:
    """Whether ``device`` (default: :func:`training_device`) trains in the concrete ``precision``."""
    import torch

    device = device or training_device()
    if precision == "fp32":
        return True
    if device == "cuda":
        return torch.cuda.is_available() and (precision == "fp16" or torch.cuda.is_bf16_supported())
    if device == "cpu":
        return precision == "bf16" and cpu_supports_bf16()  # fp16 autocast + loss scaling: GPUs only
    if precision == "bf16":  # mps / xpu: as transformers decides
        from transformers.utils import is_torch_bf16_gpu_available

        return bool(is_torch_bf16_gpu_available())
    return precision == "fp16"


def resolve_precision(policy: str, device: str | None = None) -> str:
    """The concrete precision of ``policy`` on ``device`` (default: :func:`training_device`):
    ``bf16``/``fp16``/``fp32`` are themselves; ``auto`` is bf16 on a bf16 GPU, fp16 on an older CUDA
    GPU, bf16 on a CPU with native bf16 and fp32 elsewhere."""
    if policy != "auto":
        return policy
    device = device or training_device()
    if device == "cuda":
        return "bf16" if precision_supported("bf16", "cuda") else "fp16"
    if device == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "fp32"


def _unsupported(field: str, value: Any, precision: str, device: str) -> ConfigError:
    fix = "use --precision fp32 (or auto, which picks what this machine runs)"
    if field.startswith("--"):
        fix = f"drop {field} (or use --precision fp32)"
    if device == "cpu" and precision == "bf16":
        problem = (
            "this CPU has no native bf16 (AVX512_BF16, AMX-BF16 or ARM FEAT_BF16): emulated bf16 is slower than fp32"
        )
    elif device == "cpu":
        problem = f"{precision} mixed precision needs a GPU"
    else:
        problem = f"this {device} device does not support {precision}"
    return ConfigError(field, value, problem, fix)


def check_precision(policy: str, device: str | None = None, *, field: str = "precision", value: Any = None) -> str:
    """:func:`resolve_precision`, with a :class:`~ftrecipes.config.errors.ConfigError` naming ``field``
    when ``device`` cannot train in the precision asked for (``value``: what the user gave, default ``policy``)."""
    if policy not in POLICIES:
        raise ConfigError(field, policy, "is not a precision", f"use one of {', '.join(POLICIES)}")
    device = device or training_device()
    precision = resolve_precision(policy, device)
    if not precision_supported(precision, device):
        raise _unsupported(field, policy if value is None else value, precision, device)
    return precision


# ------------------------------------------------------------------------------------------------
# Wiring


def training_args_precision(policy: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``bf16``/``fp16`` (and ``use_cpu`` where needed) for ``TrainingArguments`` from the recipe's
    ``policy``; ``--bf16``/``--fp16`` given explicitly in ``overrides`` win over the policy (and are
    checked the same way, naming the flag). ``use_cpu=True`` is added for bf16 on CPU: without it
    transformers rejects ``bf16=True`` on a machine without a bf16 GPU; with it accelerate runs the
    forward under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (and ``MULTI_CPU`` + gloo under a
    multi-process launch, as without it)."""
    overrides = overrides or {}
    device = training_device(overrides.get("use_cpu"))
    if is_true(overrides.get("bf16")) and is_true(overrides.get("fp16")):
        raise ConfigError("--bf16", True, "was given together with --fp16", "give one of them")
    if is_true(overrides.get("bf16")):
        precision = check_precision("bf16", device, field="--bf16", value=True)
    elif is_true(overrides.get("fp16")):
        precision = check_precision("fp16", device, field="--fp16", value=True)
    else:
        precision = check_precision(policy, device)
    kwargs: dict[str, Any] = dict(bf16=precision == "bf16", fp16=precision == "fp16")
    if device == "cpu" and precision == "bf16":
        kwargs["use_cpu"] = True
    return kwargs


def args_precision(args: Any) -> str:
    """The concrete precision a ``TrainingArguments`` trains in: ``bf16``, ``fp16`` or ``fp32``."""
    return "bf16" if getattr(args, "bf16", False) else "fp16" if getattr(args, "fp16", False) else "fp32"


def autocast(precision: str, device: str):
    """The autocast context of ``precision`` on ``device`` for a hand-written loop (a no-op for
    fp32): the same ``torch.autocast`` that accelerate's ``mixed_precision`` applies in Trainer."""
    import torch

    if precision not in ("bf16", "fp16"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def attention_implementation(precision: str, device: str) -> str | None:
    """The attention kernel to load a model with for ``precision`` on ``device``: ``"eager"`` for bf16
    on CPU, else ``None`` (transformers' default, ``sdpa``).

    Why: torch's CPU flash-attention backward (``_scaled_dot_product_flash_attention_for_cpu_backward``)
    is slow in bf16, while the eager path's two batched matmuls go to oneDNN's bf16 kernels; at fine-tuning
    lengths the eager score matrix is small. The measurements are in docs/results/2026-11-25-cpu-bf16.md.
    """
    return "eager" if precision == "bf16" and device == "cpu" else None


def trained_precision(run_dir: str | Path) -> str:
    """What a finished run trained in — 'bf16', 'fp16' or 'fp32' — as its ``plan.json`` records the
    TrainingArguments it set; '' when the run wrote no plan. ``precision: auto`` resolves per machine (bf16 on a
    CPU with native bf16), so a recording or a benchmark states which one it measured."""
    plan = Path(run_dir) / PLAN_FILE
    if not plan.is_file():
        return ""
    sources = json.loads(plan.read_text()).get("sources", {})
    return next((name for name in ("bf16", "fp16") if sources.get(name, {}).get("value") is True), "fp32")


__all__ = [
    "POLICIES",
    "cpu_bf16_features",
    "cpu_supports_bf16",
    "parse_cpuinfo",
    "training_device",
    "precision_supported",
    "resolve_precision",
    "check_precision",
    "training_args_precision",
    "args_precision",
    "autocast",
    "attention_implementation",
    "trained_precision",
]
