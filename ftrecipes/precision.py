"""Which training precisions this machine supports.

One home for the question "can this device train in bf16 / fp16?", asked by the pre-load checks
(:mod:`ftrecipes.preflight`) before anything is loaded. CPU support is read from PyTorch's own CPU
capability report (``torch.cpu.get_capabilities()``), not from ``/proc/cpuinfo``: a CPU computes bf16
matmuls natively with AVX-512 BF16 or AMX-BF16 (oneDNN's bf16 paths), otherwise autocast emulates
them and is slower than fp32.
"""

from __future__ import annotations

import functools

PRECISIONS = ("bf16", "fp16", "fp32")


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX-512 BF16 or AMX-BF16)."""
    import torch

    try:
        caps = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # older torch: no capability report
        return False
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def default_device() -> str:
    """``cuda`` when a CUDA device is visible, else ``cpu`` (what Trainer would pick)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def precision_supported(precision: str, device: str | None = None) -> bool:
    """Whether ``precision`` (``bf16``/``fp16``/``fp32``) can train on ``device`` (default: this machine's).

    * CUDA: fp16 always; bf16 where ``torch.cuda.is_bf16_supported()`` (Ampere or newer).
    * CPU: bf16 with native bf16 instructions (:func:`cpu_supports_bf16`); fp16 mixed precision
      through Trainer needs a GPU.
    """
    import torch

    device = device or default_device()
    if precision == "fp32":
        return True
    if device.startswith("cuda"):
        return precision == "fp16" or bool(torch.cuda.is_bf16_supported())
    if precision == "bf16":
        return cpu_supports_bf16()
    return False
