"""Why each recipe default is what it is.

Two sources, most specific first:

1. the recipe file's own comments — an inline ``# ...`` after ``key: value``, or a comment block directly
   above the key (the file's opening header block describes the whole recipe and is not attached);
2. :data:`FIELD_REASONS`, one line per field grounded in the reference document
   (``reference/learning-rate-schedules.pt.txt``; section titles are quoted in Portuguese as they appear);

falling back to the field's ``help`` metadata. :func:`describe_plan` renders a resolved recipe with
the concrete steps, the global batch, the scaled peak and these reasons (``ftrecipes show``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .scaling import recipe_lr_scaling

REF = "ref"  # short tag that marks a line as coming from the reference document

FIELD_REASONS: dict[str, str] = {
    "optimizer": "AdamW is the optimizer of the worked fine-tuning example and of Strategy A; SGD + momentum is the "
                 "classic CNN baseline of Strategy B [ref: 'Exemplo trabalhado', 'Estratégia B']",
    "learning_rate": "the peak matters most: 'a schedule does not save an absurdly wrong peak LR'; fine-tuning NLP "
                     "typically 2e-5..5e-5 — tune the peak first [ref: 'Escolhendo a taxa de aprendizado de pico']",
    "weight_decay": "AdamW decouples weight decay, but its effective strength still depends on the LR and the run "
                    "length [ref: 'Dicas práticas' 4]",
    "max_grad_norm": "if gradients explode, lower the peak or clip them; clipping at 1.0 is the reference code's "
                     "optional line [ref: 'Exemplos de implementação', 'Dicas práticas' 3]",
    "lr_scheduler_type": "warmup + cosine decay is the modern default (smooth, no abrupt drops, decays slowly early "
                         "and faster late) [ref: 'Estratégia A', 'Decaimento cosseno']",
    "warmup": "Adam's early moment estimates are biased; warmup avoids large damaging first steps; fine-tuning "
              "0-2% (sometimes none), worked example ~5%, pretraining 1-5%; counted in optimizer steps "
              "[ref: 'Aquecimento']",
    "warmup_type": "linear is the common warmup; exponential (multiplicative) is less common [ref: 'Aquecimento']",
    "warmup_start": "lr_start is often 0 or a small fraction of the peak [ref: 'Aquecimento']",
    "min_lr_rate": "cosine to a small floor: 10% of the peak in the worked example, or 0 / ~1e-6 "
                   "[ref: 'Exemplo trabalhado', 'Resumo']",
    "min_lr": "an absolute floor such as 1e-6, when the scale calls for one [ref: 'Estratégia A']",
    "num_train_epochs": "fine-tuning runs are short (worked example: 3 epochs); the schedule itself is in "
                        "optimizer steps, which survive changes of dataloader or dataset size [ref: 'Dicas práticas' 1, 5]",
    "max_steps": "a step budget makes the schedule independent of the dataset size [ref: 'Dicas práticas' 1]",
    "per_device_train_batch_size": "larger batches reduce gradient noise and often allow larger LRs "
                                   "[ref: 'A estocasticidade muda ao longo do tempo']",
    "gradient_accumulation_steps": "schedules count optimizer updates, not micro-batches "
                                   "[ref: 'Armadilhas do aquecimento']",
    "reference_global_batch_size": "the global batch the peak was tuned at; distributed training changes the "
                                   "global batch and with it the dynamics [ref: 'Armadilhas do aquecimento']",
    "lr_scaling": "linear scaling is common for SGD (within limits); for Adam/AdamW it is less predictable: scale a "
                  "little and tune [ref: 'Escolhendo a taxa de aprendizado de pico']",
    "precision": "mixed precision's gradient scaling can amplify early instability; warmup helps, and the loss "
                 "scale is a first suspect when training diverges [ref: 'Aquecimento', 'Dicas práticas' 3]",
    "eval_strategy": "always log the validation metric next to LR, loss and gradient norm [ref: 'Dicas práticas' 2]",
    "early_stopping_patience": "constant LR + early stopping is simple and often effective for fine-tuning "
                               "[ref: 'Estratégia C']",
    "load_best_model_at_end": "with early stopping or restarts, keep the best validation checkpoint "
                              "[ref: 'Estratégia C', 'Cosseno com reinícios']",
    "lr_scheduler_kwargs": "options of the schedule type: e.g. x0.1 at epochs 30/60/90 of 100 for step decay, "
                           "restart period for SGDR [ref: 'Estratégia B', 'Cosseno com reinícios']",
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
            return value[i + 1:].strip()
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


def describe_plan(plan, *, recipe_file: str | os.PathLike | None = None, assumed: list[str] | None = None) -> str:
    """A human-readable account of a :class:`~ftrecipes.recipe.RecipePlan` (``ftrecipes show``)."""
    recipe, timeline, schedule = plan.recipe, plan.timeline, plan.schedule
    comments = yaml_comments(recipe_file) if recipe_file and Path(recipe_file).is_file() else {}
    scaling = recipe_lr_scaling(recipe, timeline.global_batch_size)
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
        f"  warmup steps          {schedule.warmup_steps} ({recipe.warmup!r} of training, {recipe.warmup_type})",
        f"  peak learning rate    {scaling.message()}",
        f"  LR at step 0 / end of warmup / last step   {plan.lr_at(0):.4g} / {plan.lr_at(schedule.warmup_steps):.4g} / "
        f"{plan.lr_at(schedule.total_steps - 1):.4g}",
    ]
    for t in schedule.transitions[:8]:
        lines.append(f"  transition            {t.label}")
    if len(schedule.transitions) > 8:
        lines.append(f"  transition            ... {len(schedule.transitions) - 8} more")
    if schedule.momentum is not None:
        lines.append(f"  momentum/beta1        cycled: {schedule.momentum(0):.3g} at step 0, "
                     f"{schedule.momentum(schedule.warmup_steps):.3g} at the LR peak")
    if schedule.metric_driven:
        lines.append("  note                  reductions follow the validation metric; the trace shows none")
    if assumed:
        lines.append(f"  assumed               {'; '.join(assumed)}")
    lines += ["", "defaults and why"]
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
