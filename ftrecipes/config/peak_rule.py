"""The peak-LR rule: a recipe's peak derived from the model it trains (the ``lr_rule`` fields).

With ``lr_rule: width`` the peak at the recipe's ``reference_global_batch_size`` is::

    peak = lr_rule_reference_peak * (lr_rule_reference_width / width) ** lr_rule_width_exponent
    peak = peak * (lr_rule_reference_depth / depth) ** lr_rule_depth_exponent   (exponent > 0, depth known)
    peak = peak * lr_rule_lora_multiplier * (lr_rule_lora_reference_alpha / lora_alpha)   (peft: lora or qlora)

where ``width`` is the model's hidden size: ``hidden_size``, ``d_model`` or ``n_embd`` of its config
(the first one present), and ``depth`` its number of layers: ``num_hidden_layers``, ``n_layer`` or
``num_layers``. The depth term is off (exponent 0) unless a recipe sets it; a model whose config names no
depth gets no depth term, and the line says so. The batch-size rule (:mod:`ftrecipes.config.scaling`) then
moves this peak to the run's global batch exactly as it moves a stated one, and the recipe's ``lr_prior`` becomes
``[peak / lr_rule_prior_factor, peak * lr_rule_prior_factor]``, so that the LR range test
(``--learning_rate auto``) is bounded around the same point.

Why this form, and the shipped constants (reference peak 5e-5 at width 768, exponent 1, LoRA x 10 at
lora_alpha 32):

* ELECTRA fine-tunes small / base / large (hidden 256 / 768 / 1024) at 3e-4 / 1e-4 / 5e-5 (Clark et
  al. 2020, Table 7): between small and base, 3x the width and a third of the peak.
* muP (Yang et al. 2022, "Tensor Programs V") puts Adam's best LR for the hidden weights at ~1/width.
* BERT's fine-tuning grid 2e-5..5e-5 (Devlin et al. 2019, app. A.3) is for hidden 768 and 1024; the
  rule gives 5e-5 and 3.75e-5.
* This project's peak-LR grid (docs/results/2026-12-01-peak-lr-grid.md) on two released checkpoints:
  MiniLM-L6 (hidden 384, 6 layers) is best at 1e-4 on BBC News and 2e-4 on tweets, all-mpnet-base-v2
  (hidden 768, 12 layers) at 5e-5 and 1e-4: half, the width ratio. The rule gives 1e-4 and 5e-5.
* Depth: twice the depth did not halve the best peak again (exponent 1 would have predicted a quarter),
  so the depth term stays off. Only a model truncated to 3 of MiniLM-L6's layers wants more (5e-4),
  and that is a model with its top layers cut off, not one pretrained at that depth.
* LoRA trains best at about 10x the full fine-tuning peak at lora_alpha 32 (Schulman et al. 2025, "LoRA
  Without Regret", ~15x in short runs; they also find that optimum nearly independent of the rank at a
  fixed lora_alpha, i.e. with peft's alpha / r scaling), so the rank is reported but does not enter the
  formula. The alpha does: B starts at 0 and Adam moves it by ~LR per step, so the adapter's update
  (alpha / r) B A grows as alpha x LR, and halving alpha wants twice the peak. At lora_alpha 16 that is
  20x: the LoRA paper's RoBERTa-base GLUE peaks 4e-4..5e-4 at alpha 16 (Hu et al. 2021) are 15-25x
  RoBERTa's full fine-tuning 2e-5..3e-5 (Liu et al. 2019).

The constants are recipe fields, to be re-tuned by editing YAML. The rule is for AdamW (muP's result is
Adam's); a recipe with ``optimizer: sgd`` states its peak. A ``learning_rate`` given on top of a recipe
(a flag, ``get_recipe(..., learning_rate=...)``, :meth:`Recipe.replace`) turns the rule off: a given
peak is used as given. A model whose config names no width trains at the recipe's stated
``learning_rate``, and the run says so in one line.

Part of the config layer: the rule's arithmetic on a width already known. Reading a model's width
(from a name's ``config.json`` or an object's ``config``) and applying the rule to it is
:mod:`ftrecipes.models.width`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

LR_RULES = ("none", "width")
WIDTH_KEYS = ("hidden_size", "d_model", "n_embd")
DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def format_lr(value: float) -> str:
    """``1e-4``, ``3.75e-5``: a learning rate as people write it (at most 3 significant digits)."""
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


# ------------------------------------------------------------------------------------------------
# The model's width


@dataclass(frozen=True)
class ModelWidth:
    """A model's width, or ``None`` with ``source`` saying why not; ``source`` says where it was read.
    ``depth``: its number of layers, read from the same config (``None`` when it names none)."""

    width: int | None
    source: str
    depth: int | None = None


def _first_positive_int(config: Any, keys: tuple[str, ...]) -> tuple[int | None, str | None]:
    """``(value, key)``: the first of ``keys`` holding a positive integer in a config mapping (``config.json``)
    or object (``PretrainedConfig``), else in a nested ``text_config``."""

    def get(key: str) -> Any:
        if isinstance(config, dict):
            return config.get(key)
        try:
            return getattr(config, key, None)
        except Exception:  # a config class whose attribute map raises for what it lacks
            return None

    for key in keys:
        value = get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, key
    text = get("text_config")
    if text is not None and text is not config:
        value, key = _first_positive_int(text, keys)
        if value is not None:
            return value, f"text_config.{key}"
    return None, None


def width_of_config(config: Any) -> tuple[int | None, str | None]:
    """``(width, key)``: the first of :data:`WIDTH_KEYS` in a config (a mapping or a ``PretrainedConfig``)."""
    return _first_positive_int(config, WIDTH_KEYS)


def depth_of_config(config: Any) -> int | None:
    """The number of layers: the first of :data:`DEPTH_KEYS` in a config (a mapping or a ``PretrainedConfig``)."""
    return _first_positive_int(config, DEPTH_KEYS)[0]


# ------------------------------------------------------------------------------------------------
# The rule


def rule_peak(recipe, width: int, depth: int | None = None) -> float:
    """The rule's peak for ``width`` (and ``depth``) at ``reference_global_batch_size`` (the formula of the module
    docstring)."""
    peak = recipe.lr_rule_reference_peak * (recipe.lr_rule_reference_width / width) ** recipe.lr_rule_width_exponent
    if _uses_depth(recipe, depth):
        peak *= (recipe.lr_rule_reference_depth / depth) ** recipe.lr_rule_depth_exponent
    return peak * _lora_factor(recipe) if _uses_lora(recipe) else peak


def _lora_factor(recipe) -> float:
    """LoRA's peak over full fine-tuning's: ``lr_rule_lora_multiplier x (lr_rule_lora_reference_alpha /
    lora_alpha)``."""
    return recipe.lr_rule_lora_multiplier * recipe.lr_rule_lora_reference_alpha / recipe.lora_alpha


def _uses_depth(recipe, depth: int | None) -> bool:
    return recipe.lr_rule_depth_exponent != 0 and depth is not None


def _uses_lora(recipe) -> bool:
    return recipe.peft in ("lora", "qlora")


def _adaptation(recipe) -> str:
    if not _uses_lora(recipe):
        return "full fine-tuning"
    return f"{'QLoRA' if recipe.peft == 'qlora' else 'LoRA'} r {recipe.lora_r} alpha {recipe.lora_alpha:g}"


@dataclass(frozen=True)
class PeakChoice:
    """What the rule made of one model: the peak at ``reference_global_batch_size`` and why.

    ``applied`` is False when the run trains at another peak: the stated ``learning_rate`` (the model
    names no width) or one the user gave (``given``); ``note`` then says why."""

    recipe: str
    applied: bool
    learning_rate: float
    stated_learning_rate: float
    width: int | None
    width_source: str
    adaptation: str
    formula: str
    reference_global_batch_size: int
    lr_prior: tuple[float, float]
    note: str = ""
    given: bool = False
    depth: int | None = None  # set when the depth term entered the peak

    def line(self, global_batch_size: int | None = None, learning_rate: float | None = None) -> str:
        """One line for logs, ``ftrecipes show`` and ``plan.json``, e.g. ``peak 1e-4: cls rule for hidden
        384, full fine-tuning, batch 16 (...)``. ``global_batch_size`` and ``learning_rate``: the run's
        global batch and its peak after batch scaling (default: the reference batch and this peak)."""
        batch = self.reference_global_batch_size if global_batch_size is None else global_batch_size
        peak = self.learning_rate if learning_rate is None else learning_rate
        if self.given:
            return f"peak {format_lr(peak)}: as given, not from the width rule of recipe {self.recipe!r} ({self.note})"
        if not self.applied:
            return (
                f"peak {format_lr(peak)}: the stated learning_rate of recipe {self.recipe!r}, not its width rule "
                f"({self.note})"
            )
        scaled = (
            ""
            if math.isclose(peak, self.learning_rate, rel_tol=1e-9)
            else f", batch-scaled from {format_lr(self.learning_rate)}"
        )
        layers = "" if self.depth is None else f", {self.depth} layers"
        return (
            f"peak {format_lr(peak)}: {self.recipe} rule for hidden {self.width}{layers}, {self.adaptation}, "
            f"batch {batch} "
            f"({self.formula} at batch {self.reference_global_batch_size}{scaled}; width: {self.width_source}; "
            f"lr_prior {format_lr(self.lr_prior[0])}..{format_lr(self.lr_prior[1])})"
        )

    def not_used(self, why: str) -> "PeakChoice":
        """This choice set aside for a peak from elsewhere (e.g. a ``learning_rate`` the user gave to
        TrainingArguments)."""
        return PeakChoice(**{**asdict(self), "applied": False, "given": True, "note": why})

    def to_dict(self) -> dict:
        return {**asdict(self), "lr_prior": list(self.lr_prior), "message": self.line()}


def choose_peak(recipe, width: ModelWidth) -> PeakChoice | None:
    """The rule's choice for a model of ``width`` (``None`` when the recipe's ``lr_rule`` is ``none``)."""
    if recipe.lr_rule == "none":
        return None
    common = dict(
        recipe=recipe.name,
        stated_learning_rate=recipe.learning_rate,
        width=width.width,
        width_source=width.source,
        adaptation=_adaptation(recipe),
        reference_global_batch_size=recipe.reference_global_batch_size,
    )
    if width.width is None:
        return PeakChoice(
            applied=False,
            learning_rate=recipe.learning_rate,
            formula="",
            lr_prior=tuple(recipe.lr_prior),
            note=f"no model width: {width.source}",
            **common,
        )
    peak = rule_peak(recipe, width.width, width.depth)
    formula = (
        f"{format_lr(recipe.lr_rule_reference_peak)} x ({recipe.lr_rule_reference_width}/{width.width})"
        f"^{recipe.lr_rule_width_exponent:g}"
    )
    if _uses_depth(recipe, width.depth):
        formula += f" x ({recipe.lr_rule_reference_depth}/{width.depth})^{recipe.lr_rule_depth_exponent:g}"
    elif recipe.lr_rule_depth_exponent != 0:
        formula += " (no depth term: the config names no number of layers)"
    if _uses_lora(recipe):
        formula += (
            f" x {recipe.lr_rule_lora_multiplier:g} x ({recipe.lr_rule_lora_reference_alpha:g}/{recipe.lora_alpha:g})"
            f" ({common['adaptation'].split()[0]})"
        )
    factor = recipe.lr_rule_prior_factor
    return PeakChoice(
        applied=True,
        learning_rate=peak,
        formula=formula,
        lr_prior=(peak / factor, peak * factor),
        depth=width.depth if _uses_depth(recipe, width.depth) else None,
        **common,
    )


def apply_choice(recipe, choice: PeakChoice | None):
    """``recipe`` with the choice made: ``learning_rate`` the rule's peak, ``lr_prior`` around it, and
    ``lr_rule: none`` (the result is a plain recipe that trains at that peak whatever the model)."""
    if choice is None:
        return recipe
    values = {**recipe.to_dict(), "lr_rule": "none"}
    if choice.applied:
        values.update(learning_rate=choice.learning_rate, lr_prior=list(choice.lr_prior))
    return type(recipe).from_dict(values)


def peak_record(choice: PeakChoice, record: dict, learning_rate: float) -> dict:
    """``plan.json``'s ``peak_rule`` entry for a run whose TrainingArguments record
    (``ftrecipes.training.arguments.recipe_record``) is ``record`` and whose peak is ``learning_rate``: the choice,
    set aside when the user gave the LR."""
    source = record["sources"].get("learning_rate", {}).get("source")
    if source not in ("recipe", "scaled"):
        choice = choice.not_used(f"learning_rate {learning_rate!r} came from the {source} and is used unchanged")
    elif choice.applied and not math.isclose(
        record.get("lr_scaling", {}).get("learning_rate_before", choice.learning_rate),
        choice.learning_rate,
        rel_tol=1e-9,
    ):
        choice = choice.not_used("the TrainingArguments' learning_rate was set before the rule was applied")
    batch = record.get("lr_scaling", {}).get("global_batch_size")
    return {**choice.to_dict(), "message": choice.line(batch, learning_rate)}


__all__ = [
    "LR_RULES",
    "WIDTH_KEYS",
    "DEPTH_KEYS",
    "ModelWidth",
    "PeakChoice",
    "width_of_config",
    "depth_of_config",
    "rule_peak",
    "choose_peak",
    "apply_choice",
    "peak_record",
    "format_lr",
]
