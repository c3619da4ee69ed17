"""Why each recipe default is what it is.

Two sources, most specific first:

1. the recipe file's own comments — an inline ``# ...`` after ``key: value``, or a comment block directly
   above the key (the file's opening header block describes the whole recipe and is not attached);
2. :data:`FIELD_REASONS`, one line per field: the reason in plain words, with the paper or library
   documentation it comes from in brackets;

falling back to the field's ``help`` metadata. :func:`describe_plan` renders a resolved recipe with
the concrete steps, the global batch, the scaled peak and these reasons (``ftrecipes show``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ftrecipes.config.durations import FRACTION, STEPS, parse_duration

FIELD_REASONS: dict[str, str] = {
    "optimizer": "AdamW (decoupled weight decay) is the standard optimizer for fine-tuning Transformers; SGD + "
    "momentum remains the classic baseline for CNNs [Loshchilov & Hutter 2019; He et al. 2016]",
    "learning_rate": "the peak matters more than the schedule's shape: no schedule rescues a peak that is far off. "
    "Fine-tuning pretrained encoders works at 2e-5..5e-5; tune the peak first "
    "[Devlin et al. 2019, app. A.3; Mosbach et al. 2021]",
    "lr_rule": "the best fine-tuning peak falls as the model widens: ELECTRA fine-tunes hidden 256 / 768 / 1024 at "
    "3e-4 / 1e-4 / 5e-5, and muP puts Adam's best LR at ~1/width, so the peak is derived from the model's "
    "hidden size before training; LoRA trains at ~10x full fine-tuning [Clark et al. 2020, Table 7; "
    "Yang et al. 2022, Tensor Programs V; Hu et al. 2021; Schulman et al. 2025, LoRA Without Regret]",
    "lr_rule_reference_peak": (
        "the anchor of the width rule: a fine-tuning peak known to work at lr_rule_reference_width [Devlin et al. "
        "2019, app. A.3: 2e-5..5e-5 for BERT-base]"
    ),
    "lr_rule_width_exponent": "1 is muP's Adam scaling (LR ~ 1/width) and matches ELECTRA small -> base (3x wider, 1/3 "
    "the peak) [Yang et al. 2022; Clark et al. 2020, Table 7]",
    "lr_rule_depth_exponent": "off (0): on the two released checkpoints measured, twice the width and depth "
    "(MiniLM-L6 to all-mpnet-base-v2) halved the best peak, as the width alone predicts; Depth-muP's 1/sqrt(depth) "
    "is the option, and with width exponent 1 an exponent of 0.5 makes the peak ~ 1/sqrt(non-embedding parameters) "
    "[Yang et al. 2023, Tensor Programs VI; docs/results peak-LR grid]",
    "lr_rule_lora_multiplier": "only the low-rank adapters move, from B = 0, so LoRA needs larger steps: ~10x the full "
    "fine-tuning peak at lora_alpha 32, nearly independent of the rank [Schulman et al. 2025, LoRA Without Regret; "
    "Hu et al. 2021]",
    "lr_rule_lora_reference_alpha": "the adapter's update (alpha / r) B A grows as alpha x LR while B is small, so "
    "alpha and the peak trade one for one: the LoRA paper's alpha-16 RoBERTa-base peaks (4e-4..5e-4) are 15-25x "
    "full fine-tuning's [Hu et al. 2021; Liu et al. 2019]",
    "lr_rule_prior_factor": "the range test overshoots for fine-tuning, so its pick is kept near the rule's peak "
    "[transformers#16013]",
    "loraplus_lr_ratio": "with A and B at one LR, LoRA learns inefficiently in wide models; a larger LR for B (ratio "
    "~16) trains faster at the same cost [Hayou et al. 2024, LoRA+]",
    "lr_groups": "a new head or a module that should move faster or slower than the backbone gets its own "
    "multiplier, on the same schedule [axolotl lr_groups]",
    "weight_decay": "decoupled from the gradient step in AdamW, but its effective strength still scales with the "
    "LR and the number of steps [Loshchilov & Hutter 2019]",
    "max_grad_norm": "clipping the global gradient norm bounds the damage of a rare huge gradient; 1.0 is the "
    "Trainer's default [Pascanu et al. 2013; transformers TrainingArguments]",
    "lr_scheduler_type": "warmup then cosine decay: smooth, no abrupt drops, slow decay early and faster late "
    "[Loshchilov & Hutter 2017]",
    "warmup": "Adam's second-moment estimate is unreliable over the first steps, so full-size steps there can "
    "wreck pretrained weights; fine-tuning uses 0-10% warmup, pretraining 1-5%; counted in optimizer steps "
    "[Liu et al. 2020, RAdam; Goyal et al. 2017]",
    "warmup_type": "a linear ramp is the common warmup; an exponential (geometric) ramp spends longer at small "
    "LRs [Goyal et al. 2017]",
    "warmup_start": "warmup usually starts at 0 or at a small fraction of the peak",
    "min_lr_rate": "a floor keeps the last steps learning; 10% of the peak is a common choice, 0 decays fully "
    "[Loshchilov & Hutter 2017; transformers cosine_with_min_lr]",
    "min_lr": "an absolute floor such as 1e-6, when the recipe's scale calls for one",
    "num_train_epochs": "fine-tuning runs are short (2-4 epochs); the schedule itself is counted in optimizer "
    "steps, so it survives changes of data-loader or data-set size [Devlin et al. 2019, app. A.3]",
    "max_steps": "a step budget makes the schedule independent of the data set's size",
    "per_device_train_batch_size": "larger batches lower the gradient noise and often allow a larger peak "
    "[Smith et al. 2018, 'Don't Decay the Learning Rate, Increase the Batch Size']",
    "gradient_accumulation_steps": "schedules count optimizer updates, not micro-batches: accumulation changes the "
    "global batch, not the number of schedule steps per update",
    "reference_global_batch_size": "the global batch the peak was tuned at; more processes or accumulation change "
    "the global batch, and lr_scaling moves the peak with it [Goyal et al. 2017]",
    "lr_scaling": "linear scaling holds for SGD within limits; for Adam-type optimizers it is less predictable, "
    "so scale gently (sqrt) and tune [Goyal et al. 2017; Malladi et al. 2022]",
    "precision": "mixed precision's loss scaling can amplify early instability; warmup helps, and the loss scale "
    "is a first suspect when training diverges [Micikevicius et al. 2018]",
    "eval_strategy": "log the validation metric next to LR, loss and gradient norm, to tell a schedule problem "
    "from overfitting",
    "early_stopping_patience": "a constant LR with early stopping on the validation metric is simple and often "
    "enough for fine-tuning [transformers EarlyStoppingCallback]",
    "load_best_model_at_end": "with early stopping or restarts, keep the best validation checkpoint rather than "
    "the last [Loshchilov & Hutter 2017]",
    "lr_scheduler_kwargs": "options of the schedule type: e.g. x0.1 at 30/60/90% of training for step decay "
    "[He et al. 2016], the restart period for SGDR [Loshchilov & Hutter 2017]",
}


def yaml_comments(path: str | os.PathLike) -> dict[str, str]:
    """``{key: comment}`` for the top-level keys of a recipe YAML file (see the module docstring)."""
    comments: dict[str, str] = {}
    block: list[str] = []
    seen_key = False
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            block = []  # a blank line detaches a comment block from what follows
            continue
        if stripped.startswith("#"):
            if seen_key:
                block.append(stripped.lstrip("#").strip())
            continue
        if line[0].isspace() or ":" not in line:
            block = []
            continue
        key = line.split(":", 1)[0].strip()
        seen_key = True
        inline = _inline_comment(line.split(":", 1)[1])
        text = " ".join(t for t in block if t)
        if inline:
            text = f"{text} {inline}".strip() if text else inline
        if text:
            comments[key] = text
        block = []
    return comments


def _inline_comment(value: str) -> str:
    quote = None
    for i, ch in enumerate(value):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or value[i - 1].isspace()):
            return value[i + 1 :].strip()
    return ""


def field_reason(recipe, name: str, comments: dict[str, str] | None = None) -> str:
    """The best available reason for ``recipe.<name>``."""
    if comments and name in comments:
        return comments[name]
    if name in FIELD_REASONS:
        return FIELD_REASONS[name]
    for f in dataclasses.fields(recipe):
        if f.name == name:
            return f.metadata.get("help", "")
    return ""


def _spelled(duration) -> str:
    """A duration as the user wrote it, with its unit: ``'5%' of training``, ``500 optimizer steps``, ``'1ep'``."""
    unit = parse_duration(duration, "warmup").unit
    if unit == FRACTION:
        return f"{duration!r} of training"
    if unit == STEPS:
        return f"{duration!r} optimizer steps" if isinstance(duration, str) else f"{duration} optimizer steps"
    return repr(duration)


def describe_plan(
    plan, *, recipe_file: str | os.PathLike | None = None, assumed: list[str] | None = None, peak=None, written=None
) -> str:
    """A human-readable account of a :class:`~ftrecipes.config.recipe.RecipePlan` (``ftrecipes show``).

    ``peak``: the :class:`~ftrecipes.config.peak_rule.PeakChoice` the plan's recipe was resolved with, and
    ``written`` the recipe before that (whose fields and reasons are listed); see
    :func:`ftrecipes.models.width.resolve_peak_rule`."""
    recipe, timeline, schedule = plan.recipe, plan.timeline, plan.schedule
    comments = yaml_comments(recipe_file) if recipe_file and Path(recipe_file).is_file() else {}
    scaling = plan.scaling
    lines = [f"recipe {recipe.name}: {recipe.description}".rstrip(": ")]
    if recipe_file:
        lines.append(f"  file: {recipe_file}")
    lines += [
        "",
        "resolved for this run",
        f"  global batch          {timeline.global_batch_size} = {timeline.per_device_train_batch_size} per device x "
        f"{timeline.num_processes} processes x {timeline.gradient_accumulation_steps} accumulation",
        f"  examples              {timeline.num_examples}",
        f"  steps per epoch       {timeline.steps_per_epoch} optimizer steps",
        f"  total steps           {schedule.total_steps} optimizer steps"
        + (f" ({recipe.num_train_epochs:g} epochs)" if recipe.max_steps <= 0 else " (max_steps)"),
        f"  warmup steps          {schedule.warmup_steps} ({_spelled(recipe.warmup)}, {recipe.warmup_type})",
        *(
            [f"  peak-LR rule          {peak.line(timeline.global_batch_size, plan.learning_rate)}"]
            if peak is not None
            else []
        ),
        f"  peak learning rate    {scaling.message()}",
        f"  lr_prior              {recipe.lr_prior[0]:.3g}..{recipe.lr_prior[1]:.3g} (bounds --learning_rate auto at "
        f"batch {recipe.reference_global_batch_size})",
        f"  LR at step 0 / end of warmup / last step   {plan.lr_at(0):.4g} / {plan.lr_at(schedule.warmup_steps):.4g} / "
        f"{plan.lr_at(schedule.total_steps - 1):.4g}",
    ]
    for t in schedule.transitions[:8]:
        lines.append(f"  transition            {t.label}")
    if len(schedule.transitions) > 8:
        lines.append(f"  transition            ... {len(schedule.transitions) - 8} more")
    if schedule.momentum is not None:
        lines.append(
            f"  momentum/beta1        cycled: {schedule.momentum(0):.3g} at step 0, "
            f"{schedule.momentum(schedule.warmup_steps):.3g} at the LR peak"
        )
    if schedule.metric_driven:
        lines.append("  note                  reductions follow the validation metric; the trace shows none")
    if assumed:
        lines.append(f"  assumed               {'; '.join(assumed)}")
    lines += ["", "defaults and why"]
    recipe = written if written is not None else recipe
    width = max(len(f.name) for f in dataclasses.fields(recipe))
    for f in dataclasses.fields(recipe):
        if f.name in ("name", "description"):
            continue
        value = getattr(recipe, f.name)
        lines.append(f"  {f.name:<{width}}  {value!r}")
        reason = field_reason(recipe, f.name, comments)
        if reason:
            lines.append(f"  {'':<{width}}    why: {reason}")
    return "\n".join(lines)
