"""LR range test for Hugging Face models, with a suggestion rule suited to fine-tuning.

The test trains for at most ``num_steps`` optimizer steps while the LR grows geometrically::

    lr_i = min_lr * (max_lr / min_lr) ** (i / (num_steps - 1)),   i = 0 .. num_steps - 1

Each step runs ``accumulation_steps`` micro-batches (dict batches, ``loss = model(**batch).loss``),
clips like the recipe does, and steps the optimizer. The loss recorded for ``lr_i`` is the loss of the
*next* forward pass — the first one that sees the weights that update produced — so the curve is not
shifted one ramp step towards larger LRs. The raw losses are smoothed by a bias-corrected EMA::

    m_i = beta * m_{i-1} + (1 - beta) * loss_i,    smoothed_i = m_i / (1 - beta ** (i + 1))

and the run stops early once the online EMA (bias-corrected, as above) exceeds ``diverge_factor`` times
its minimum so far, or a loss is not finite.

The curve the suggestion reads is smoothed **without lag**: the same bias-corrected EMA run forwards,
then backwards over its output. A causal EMA trails the data by about ``beta / (1 - beta)`` steps (~9 at
``beta = 0.9``, the usual finder setting), which moves the steepest point — and every suggestion — towards
*larger* LRs, the wrong direction for fine-tuning; shifting it back by the mean lag over-corrects sharp drops. The
two-pass kernel is symmetric, ``h_k = (1 - beta) / (1 + beta) * beta^|k|``, so the smoothed curve sits on the data;
at the default ``beta = 0.8`` it removes as much noise as a one-pass EMA with ``beta = 0.9``.
Before smoothing, losses above the starting level are capped at it: the divergent tail says only "too
large" and must not leak backwards into the region the rule reads.

Suggestion rules (``rule``):

* ``"steepest"`` (default): the LR where the smoothed loss falls fastest per decade of LR, searched
  only *before* the minimum of the smoothed curve. The classic rule ("the largest
  LR before the loss blows up", Smith 2017) is what overshoots for fine-tuning (transformers#16013): near the
  minimum the model is already being pushed hard, and a short run rewards large steps that a full
  run at that peak does not survive. The steepest point is where learning is fastest while still
  stable, one to two decades below the blow-up. The slope is a central difference over
  ``±max(1, n // 25)`` points of the smoothed curve, so single noisy batches do not pick it.
* ``"minimum/10"``: a tenth of the LR at the minimum of the smoothed curve (the fastai-era rule): a
  fixed margin below where the loss stops improving.

A suggestion is only made when the smoothed loss really falls: the drop from the start of the search
region to the minimum must exceed twice the smoother's noise level, ``2 * sigma * sqrt(sum_k h_k^2)``
with ``sigma`` the spread of the raw losses around the smoothed curve.

The result is then checked against the recipe's **prior** (:class:`LRPrior`): the recipe's own
``lr_prior: [low, high]`` (peak LRs known to work for it at ``reference_global_batch_size``: AdamW
fine-tuning 2e-5..5e-5 by default, SGD on a CNN 0.01..0.1 in ``cnn-step``, pretraining 1e-4..1e-3 in
``pretrain``; with a recipe's width rule on, the range around the rule's peak, see
:mod:`ftrecipes.config.peak_rule`), rescaled to the batch the finder ran at by the recipe's batch-size rule.
A suggestion outside it comes with a warning that says why and what to try, and ``recommended`` is the suggestion
clipped into the prior (range tests overshoot for fine-tuning, transformers#16013: bound and explain;
:func:`ftrecipes.config.priors.recommend` is that step).

Model weights, optimizer state, param-group LRs, gradients, train/eval mode and the torch RNG are
restored exactly afterwards (deep copies held in memory).
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.outputs import LR_FINDER_JSON, LR_FINDER_PNG
from ftrecipes.config.priors import (  # noqa: F401 (re-exported: the priors live in ftrecipes.config.priors)
    LRPrior,
    parse_prior,
    prior_for_recipe,
    recipe_prior,
    recommend,
)
from ftrecipes.config.scaling import recipe_lr_scaling

RULES = ("steepest", "minimum/10")
ISSUE = "transformers#16013"


# ------------------------------------------------------------------------------------------------
# Result


@dataclass
class LRFinderResult:
    """The curve of a range test and what it suggests.

    ``lrs[i]`` is the LR of update ``i`` and ``losses[i]`` the loss right after it; ``smoothed[i]`` the
    zero-phase smoothed loss at the same LR. ``suggestion`` is what the
    rule found (None when the loss did not fall measurably); ``recommended`` is the value to train with:
    the suggestion clipped into ``prior`` (or the recipe's peak when there is no suggestion).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float | None
    recommended: float | None
    prior: LRPrior | None
    warning: str | None
    rule: str
    reason: str
    initial_loss: float
    min_lr: float
    max_lr: float
    num_steps: int
    accumulation_steps: int
    global_batch_size: int | None
    precision: str
    beta: float
    stopped_early: bool
    stop_reason: str
    seconds: float
    search_region: tuple[float, float] | None = None  # (first, last) smoothed LR the rule searched
    extra: dict = field(default_factory=dict)
    device: str = "cpu"  # where the ramp ran

    @property
    def suggestion_in_prior(self) -> bool | None:
        if self.suggestion is None or self.prior is None:
            return None
        return self.prior.contains(self.suggestion)

    def summary(self) -> str:
        """A few lines for a log or the terminal."""
        lines = [
            f"LR range test: {len(self.lrs)} steps over {self.min_lr:.3g}..{self.max_lr:.3g} "
            f"({self.stop_reason}, {self.seconds:.1f}s)"
        ]
        lines.append(f"suggestion ({self.rule}): {_fmt(self.suggestion)} — {self.reason}")
        if self.prior is not None:
            batch = f" at global batch {self.prior.global_batch_size}" if self.prior.global_batch_size else ""
            lines.append(f"prior: {self.prior}{batch} ({self.prior.source})")
        lines.append(f"recommended learning_rate: {_fmt(self.recommended)}")
        if self.warning:
            lines.append(f"warning: {self.warning}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["prior"] = asdict(self.prior) if self.prior is not None else None
        data["suggestion_in_prior"] = self.suggestion_in_prior
        return data

    def to_json(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=True) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "LRFinderResult":
        data = json.loads(Path(path).read_text())
        data.pop("suggestion_in_prior", None)
        if data.get("prior") is not None:
            data["prior"] = LRPrior(**data["prior"])
        if data.get("search_region") is not None:
            data["search_region"] = tuple(data["search_region"])
        return cls(**data)

    def plot(self, path: str | os.PathLike, title: str | None = None) -> Path:
        """A PNG of loss vs LR (log x) with the suggestion and the prior band (see :mod:`ftrecipes.report.plotting`)."""
        from ftrecipes.report.plotting import plot_lr_finder

        return plot_lr_finder(self, path, title=title)


def _fmt(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:.3g}"


# ------------------------------------------------------------------------------------------------
# Smoothing and the suggestion rule (pure functions of the curve)


def ema_smooth(losses: Sequence[float], beta: float) -> list[float]:
    """Causal bias-corrected EMA: ``m_i = beta m_{i-1} + (1 - beta) x_i``, ``out_i = m_i / (1 - beta^(i+1))``."""
    out, m = [], 0.0
    for i, x in enumerate(losses):
        m = beta * m + (1 - beta) * x
        out.append(m / (1 - beta ** (i + 1)))
    return out


def smooth_curve(losses: Sequence[float], beta: float, cap: float | None = None) -> list[float]:
    """Zero-phase smoothing: :func:`ema_smooth` forwards, then backwards over the result, after capping
    the losses at ``cap`` (see the module docstring)."""
    values = [min(x, cap) for x in losses] if cap is not None else list(losses)
    return ema_smooth(ema_smooth(values, beta)[::-1], beta)[::-1]


def _noise_gain(beta: float) -> float:
    """``sqrt(sum_k h_k^2)`` of the two-pass kernel ``h_k = (1-beta)/(1+beta) beta^|k|``."""
    if beta == 0.0:
        return 1.0
    return (1 - beta) / (1 + beta) * math.sqrt((1 + beta**2) / (1 - beta**2))


def _skip(n: int) -> int:
    return max(2, n // 20)  # the first smoothed values average only a couple of losses


def suggest_lr(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    *,
    rule: str = "steepest",
    beta: float = 0.8,
    skip_start: int | None = None,
) -> tuple[float | None, str, tuple[float, float] | None]:
    """Apply ``rule`` to a curve: ``(suggestion or None, reason, searched LR region)``."""
    if rule not in RULES:
        raise ConfigError("rule", rule, f"is not one of {list(RULES)}", "use 'steepest' (default) or 'minimum/10'")
    n = len(smoothed)
    skip_start = _skip(n) if skip_start is None else skip_start
    if n - skip_start < 5:
        return None, f"too few points ({n}) to read a curve; run more steps or lower min_lr", None
    s = np.asarray(smoothed, dtype=float)
    x = np.log10(np.asarray(lrs, dtype=float))
    i_min = skip_start + int(np.argmin(s[skip_start:]))
    region = (float(lrs[skip_start]), float(lrs[i_min]))

    # Is the fall real? Compare it with the smoother's own noise.
    residual = np.asarray(losses, dtype=float)[: i_min + 1] - s[: i_min + 1]
    sigma = float(np.std(residual[skip_start:])) if i_min > skip_start else 0.0
    noise = 2.0 * sigma * _noise_gain(beta)
    drop = float(s[skip_start] - s[i_min])
    if drop <= max(noise, 1e-12 * abs(s[skip_start])):
        return (
            None,
            (
                f"the smoothed loss did not fall measurably (drop {drop:.3g} vs noise {noise:.3g}) between "
                f"{lrs[skip_start]:.3g} and {lrs[-1]:.3g}"
            ),
            region,
        )

    if rule == "minimum/10":
        lr = float(lrs[i_min]) / 10.0
        return lr, f"a tenth of the LR at the minimum of the smoothed loss ({lrs[i_min]:.3g})", region

    h = max(1, n // 25)
    best_i, best_slope = None, 0.0
    for i in range(skip_start, i_min + 1):
        lo, hi = max(skip_start, i - h), min(i_min, i + h)
        if hi - lo < 1 or x[hi] == x[lo]:
            continue
        slope = (s[hi] - s[lo]) / (x[hi] - x[lo])
        if slope < best_slope:
            best_i, best_slope = i, slope
    if best_i is None:
        return None, "the smoothed loss never decreases before its minimum", region
    lr = float(lrs[best_i])
    return (
        lr,
        (
            f"steepest descent of the smoothed loss ({best_slope:.3g} per decade) at {lr:.3g}, "
            f"before its minimum at {lrs[i_min]:.3g}"
        ),
        region,
    )


def prior_warning(suggestion: float | None, prior: LRPrior | None) -> str | None:
    """One line explaining a suggestion outside the prior (or a missing suggestion), and what to try."""
    if prior is None:
        return None
    band = f"{prior.low:.3g}..{prior.high:.3g}"
    if suggestion is None:
        return (
            f"no suggestion: the loss did not fall clearly over the ramp; keep the {prior.regime} prior {band} "
            "(recommended is the recipe's peak), or rerun with more steps, a wider range or a larger batch "
            "(--accumulation_steps), and check that labels reach the model"
        )
    if prior.contains(suggestion):
        return None
    if suggestion > prior.high:
        why = (
            "range tests overshoot (" + ISSUE + "): a loss that falls fast at a high LR in a short run says nothing "
            "about the final validation metric, and when fine-tuning, large steps erase what the pretrained model knows"
        )
        return (
            f"suggested {suggestion:.3g} is {suggestion / prior.high:.3g}x above the {prior.regime} prior {band}: "
            f"{why}; train at {prior.high:.3g} (recommended, the prior's top), or score a short grid "
            f"{{{prior.low:.3g}, {prior.high:.3g}, {suggestion:.3g}}} on validation before trusting it"
        )
    return (
        f"suggested {suggestion:.3g} is {prior.low / suggestion:.3g}x below the {prior.regime} prior {band}: the "
        f"curve may be noisy or flat early (a fresh head, a small batch); train at {prior.low:.3g} (recommended, the "
        "prior's bottom), or rerun with a larger batch (--accumulation_steps) or more steps for a cleaner curve"
    )


# ------------------------------------------------------------------------------------------------
# The range test


def check_finder_args(
    *,
    num_steps: int = 100,
    min_lr: float | None = None,
    max_lr: float | None = None,
    rule: str = "steepest",
    beta: float = 0.8,
    diverge_factor: float = 4.0,
    accumulation_steps: int | None = None,
    prior: Any = None,
) -> None:
    """Reject bad range-test settings before any model or data is loaded (one-line ConfigErrors)."""
    if rule not in RULES:
        raise ConfigError("rule", rule, f"is not one of {list(RULES)}", "use 'steepest' (default) or 'minimum/10'")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 5 <= num_steps <= 1000:
        raise ConfigError(
            "num_steps",
            num_steps,
            "must be an integer in [5, 1000]",
            "use about 100: the test should cost a few percent of a run",
        )
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if value is not None and not (0 < value < math.inf):
            raise ConfigError(name, value, "must be a positive finite learning rate", "e.g. --min_lr 1e-7 --max_lr 1")
    if min_lr is not None and max_lr is not None and not min_lr < max_lr:
        raise ConfigError(
            "min_lr", min_lr, f"the ramp needs min_lr < max_lr={max_lr:g}", "e.g. --min_lr 1e-7 --max_lr 1"
        )
    if not 0 <= beta < 1:
        raise ConfigError("beta", beta, "must lie in [0, 1)", "use 0.8")
    if not diverge_factor > 1:
        raise ConfigError("diverge_factor", diverge_factor, "must be > 1", "use 4")
    if accumulation_steps is not None and (isinstance(accumulation_steps, bool) or accumulation_steps < 1):
        raise ConfigError(
            "accumulation_steps", accumulation_steps, "must be >= 1", "use the run's gradient_accumulation_steps"
        )
    parse_prior(prior)


def find_lr(
    model: nn.Module,
    train_dataloader: Iterable[Mapping[str, Any]],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    recipe=None,
    min_lr: float | None = None,
    max_lr: float | None = None,
    num_steps: int = 100,
    accumulation_steps: int | None = None,
    precision: str | None = None,
    max_grad_norm: float | None = None,
    beta: float = 0.8,
    diverge_factor: float = 4.0,
    rule: str = "steepest",
    prior: LRPrior | tuple[float, float] | str | None = None,
    num_processes: int = 1,
    show_progress: bool = True,
    device: torch.device | str | None = None,
) -> LRFinderResult:
    """Run an LR range test on ``model`` and restore it (and ``optimizer``) exactly afterwards.

    Args:
        model: a model whose forward returns ``.loss`` for a dict batch with labels.
        train_dataloader: yields dict batches; cycled if shorter than the test.
        optimizer: the optimizer to test (its param-group LR ratios are kept); built from ``recipe``
            (or the :class:`~ftrecipes.config.recipe.Recipe` defaults) when omitted.
        recipe: supplies the optimizer, ``gradient_accumulation_steps``, ``max_grad_norm`` and the prior.
        min_lr, max_lr: ramp bounds; default ``prior.low / 100`` .. ``prior.high * 100`` (1e-7..1
            without a prior), wide enough to see both the flat start and the blow-up.
        num_steps: optimizer steps of the ramp (at most; early stop on divergence). At most 1000.
        accumulation_steps: micro-batches per optimizer step (default: the recipe's, else 1).
        precision: ``auto``/``bf16``/``fp16``/``fp32`` (default: the recipe's, else ``auto``), resolved for the
            model's device as the run resolves it (:mod:`ftrecipes.training.precision`; bf16 autocast on a CPU
            with native bf16).
        max_grad_norm: clipping during the test (default: the recipe's, else none).
        beta: EMA factor of the smoothing (0.8); diverge_factor: early-stop threshold on the online EMA.
        rule: ``"steepest"`` or ``"minimum/10"`` (see the module docstring).
        prior: overrides the recipe's prior; ``(low, high)`` or ``"low,high"``.
        num_processes: processes the run will use, to size the prior's global batch.
        device: where to ramp (the run's training device); the model is moved there for the test and
            back afterwards. Default: where the model's parameters are.
    """
    from ftrecipes.config.recipe import Recipe
    from ftrecipes.training.optim import create_optimizer
    from ftrecipes.training.precision import precision_supported, resolve_precision

    check_finder_args(
        num_steps=num_steps,
        min_lr=min_lr,
        max_lr=max_lr,
        rule=rule,
        beta=beta,
        diverge_factor=diverge_factor,
        accumulation_steps=accumulation_steps,
        prior=prior,
    )
    accumulation_steps = accumulation_steps or (recipe.gradient_accumulation_steps if recipe is not None else 1)
    if max_grad_norm is None:
        max_grad_norm = recipe.max_grad_norm if recipe is not None else 0.0

    home = next(model.parameters()).device
    device = home if device is None else torch.device(device)
    batches = _cycle(train_dataloader)
    first = next(batches, None)
    if first is None:
        raise ConfigError("train_dataloader", "empty", "yields no batches", "check the training split and batch size")
    micro_batch = _batch_size(first)
    global_batch = micro_batch * accumulation_steps * num_processes if micro_batch else None

    prior = parse_prior(prior)
    if prior is None and recipe is not None:
        prior = prior_for_recipe(recipe, global_batch)
    lo_default, hi_default = (prior.low / 100, prior.high * 100) if prior is not None else (1e-7, 1.0)
    min_lr = lo_default if min_lr is None else float(min_lr)
    max_lr = hi_default if max_lr is None else float(max_lr)
    if not 0 < min_lr < max_lr:
        raise ConfigError(
            "min_lr", min_lr, f"the ramp needs 0 < min_lr < max_lr={max_lr:g}", "use e.g. --min_lr 1e-7 --max_lr 1"
        )

    model.to(device)  # before the optimizer exists: its state then lives on the device too
    if optimizer is None:
        optimizer = create_optimizer(recipe if recipe is not None else Recipe(), model, learning_rate=min_lr)
    if precision is None:
        precision = recipe.precision if recipe is not None else "auto"
    precision = resolve_precision(precision, device.type)
    if not precision_supported(precision, device.type):
        # The model may sit on the CPU before Trainer moves it to the GPU the run's precision is for;
        # the test then runs in fp32 (and says so in its result) rather than failing.
        precision = "fp32"

    saved = _snapshot(model, optimizer)
    start = time.perf_counter()
    try:
        lrs, losses, initial_loss, stop_reason = _ramp(
            model,
            optimizer,
            _prepend(first, batches),
            device,
            min_lr=min_lr,
            max_lr=max_lr,
            num_steps=num_steps,
            accumulation_steps=accumulation_steps,
            precision=precision,
            max_grad_norm=max_grad_norm,
            beta=beta,
            diverge_factor=diverge_factor,
            show_progress=show_progress,
        )
    finally:
        _restore(model, optimizer, saved)
        model.to(home)
    seconds = time.perf_counter() - start

    cap = max(losses[: _skip(len(losses)) + 1]) if losses else None
    smoothed = smooth_curve(losses, beta, cap)
    suggestion, reason, region = suggest_lr(lrs, losses, smoothed, rule=rule, beta=beta)
    if suggestion is None:
        recommended = (
            recipe_lr_scaling(recipe, global_batch).learning_rate_after
            if recipe is not None and global_batch
            else (recipe.learning_rate if recipe is not None else None)
        )
    else:
        recommended = recommend(suggestion, prior)
    return LRFinderResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        suggestion=suggestion,
        recommended=recommended,
        prior=prior,
        warning=prior_warning(suggestion, prior),
        rule=rule,
        reason=reason,
        initial_loss=initial_loss,
        min_lr=min_lr,
        max_lr=max_lr,
        num_steps=num_steps,
        accumulation_steps=accumulation_steps,
        global_batch_size=global_batch,
        precision=precision,
        beta=beta,
        stopped_early=len(lrs) < num_steps,
        stop_reason=stop_reason,
        seconds=seconds,
        search_region=region,
        device=str(device),
    )


def _ramp(
    model,
    optimizer,
    batches,
    device,
    *,
    min_lr,
    max_lr,
    num_steps,
    accumulation_steps,
    precision,
    max_grad_norm,
    beta,
    diverge_factor,
    show_progress,
):
    from tqdm.auto import tqdm

    from ftrecipes.training.precision import autocast as precision_autocast

    autocast = precision_autocast(precision, device.type)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    params = [p for g in optimizer.param_groups for p in g["params"]]
    # Keep the groups' LR ratios (e.g. a smaller LR for a backbone group) while ramping the first one.
    first_lr = optimizer.param_groups[0]["lr"]
    ratios = [g["lr"] / first_lr if first_lr > 0 else 1.0 for g in optimizer.param_groups]

    def loss_of(batch) -> torch.Tensor:
        with autocast:
            outputs = model(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
        # ModelOutput drops None fields from its mapping view, so read the attribute first.
        loss = getattr(outputs, "loss", None)
        if loss is None and isinstance(outputs, Mapping):
            loss = outputs.get("loss")
        if loss is None:
            raise ConfigError(
                "train_dataloader",
                "batch without labels",
                "the model returned no loss",
                "batches must carry the labels the model's loss needs (e.g. 'labels')",
            )
        return loss

    def forward_backward() -> float:
        total = 0.0
        for _ in range(accumulation_steps):
            loss = loss_of(_next(batches)).float()
            scaled = loss / accumulation_steps
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            total += loss.item()
        return total / accumulation_steps

    model.train()
    optimizer.zero_grad(set_to_none=True)
    ratio = (max_lr / min_lr) ** (1.0 / (num_steps - 1))
    lrs, losses, stop_reason = [], [], f"completed {num_steps} steps"
    best, m = math.inf, 0.0
    current = forward_backward()  # loss at the starting weights, before any update
    initial_loss = current
    progress = tqdm(total=num_steps, desc="lr-find", unit="step", disable=not show_progress, leave=False)
    try:
        for i in range(num_steps):
            lr = min_lr * ratio**i
            for group, r in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * r
            if scaler is not None:
                scaler.unscale_(optimizer)
            if max_grad_norm and max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            # The loss this update produced is measured by the next forward pass; its backward feeds
            # the next update, so the test costs num_steps + 1 forward/backward passes in all.
            if i < num_steps - 1:
                current = forward_backward()
            else:
                with torch.no_grad():
                    current = (
                        sum(loss_of(_next(batches)).float().item() for _ in range(accumulation_steps))
                        / accumulation_steps
                    )
            progress.update(1)
            if not math.isfinite(current):
                # A non-finite loss carries no curve information; the curve ends before it.
                stop_reason = f"stopped at step {i + 1}: loss is not finite"
                break
            lrs.append(lr)
            losses.append(current)
            progress.set_postfix(lr=f"{lr:.2e}", loss=f"{current:.4f}")
            m = beta * m + (1 - beta) * current
            smoothed = m / (1 - beta ** (i + 1))
            best = min(best, smoothed)
            if i >= 2 and smoothed > diverge_factor * best:
                stop_reason = (
                    f"stopped at step {i + 1}: smoothed loss {smoothed:.3g} > {diverge_factor:g}x best {best:.3g}"
                )
                break
    finally:
        progress.close()
    return lrs, losses, initial_loss, stop_reason


# ------------------------------------------------------------------------------------------------
# Exact save/restore and data helpers


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "grads": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
        "training": {name: module.training for name, module in model.named_modules()},
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _restore(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    model.load_state_dict(saved["model"])
    # load_state_dict replaces the whole state (entries created during the test disappear) and the
    # param groups, LRs included.
    optimizer.load_state_dict(saved["optimizer"])
    for p, g in zip(model.parameters(), saved["grads"]):
        p.grad = g
    for name, module in model.named_modules():
        module.training = saved["training"].get(name, module.training)
    # Dropout masks drawn during the test must not change the run that follows it.
    torch.set_rng_state(saved["rng"])
    if saved["cuda_rng"] is not None:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])


def _cycle(dataloader: Iterable):
    """Yield batches forever, restarting the dataloader when it ends (stops only if it is empty)."""
    while True:
        empty = True
        for batch in dataloader:
            empty = False
            if not isinstance(batch, Mapping):
                raise ConfigError(
                    "train_dataloader",
                    type(batch).__name__,
                    "yields non-dict batches",
                    "yield dicts of tensors, e.g. from a DataCollator",
                )
            yield batch
        if empty:
            return


def _next(batches):
    try:
        return next(batches)
    except StopIteration:
        raise ConfigError(
            "train_dataloader",
            "exhausted",
            "ran out of batches during the range test",
            "pass a re-iterable DataLoader, not a one-shot iterator",
        ) from None


def _prepend(first, rest):
    yield first
    yield from rest


def _batch_size(batch: Mapping[str, Any]) -> int | None:
    for value in batch.values():
        if torch.is_tensor(value) and value.dim() > 0:
            return int(value.shape[0])
    return None


# ------------------------------------------------------------------------------------------------
# The entry point finetune.py --learning_rate auto uses


def choose_learning_rate(
    recipe,
    model: nn.Module,
    train_dataloader: Iterable[Mapping[str, Any]],
    *,
    output_dir: str | os.PathLike | None = None,
    num_processes: int = 1,
    **finder_kwargs,
) -> tuple[float, LRFinderResult]:
    """Run the range test with the recipe's optimizer (a throwaway one: the model is restored) and
    return ``(learning_rate to train with, result)``. With ``output_dir``, writes ``lr_finder.json``
    and ``lr_finder.png`` there.

    The returned LR is for the global batch the test ran at (the dataloader's batch x accumulation x
    ``num_processes``): do **not** rescale it with ``lr_scaling`` again.
    """
    result = find_lr(model, train_dataloader, recipe=recipe, num_processes=num_processes, **finder_kwargs)
    if output_dir is not None:
        write_outputs(result, output_dir, title=f"LR range test — recipe {recipe.name}")
    learning_rate = result.recommended if result.recommended is not None else recipe.learning_rate
    return learning_rate, result


def write_outputs(result: LRFinderResult, output_dir: str | os.PathLike, title: str | None = None) -> dict[str, Path]:
    """Write ``lr_finder.json`` and ``lr_finder.png`` into ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return {
        "json": result.to_json(output_dir / LR_FINDER_JSON),
        "png": result.plot(output_dir / LR_FINDER_PNG, title=title),
    }
