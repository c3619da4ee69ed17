#!/usr/bin/env python
"""A recipe in a hand-written Accelerate loop, with the same LR per optimizer step as the Trainer.

    accelerate launch scripts/examples/accelerate_loop.py --recipe cls --max_train_samples 256
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 scripts/examples/accelerate_loop.py --recipe cls

Takes the same flags as ``scripts/finetune.py`` (data, model, recipe and batch flags). The pitfall it
shows the way around: a scheduler passed to ``accelerator.prepare`` is stepped ``num_processes``
times per call and skipped during gradient accumulation, so a schedule written per optimizer step
would warm up ``num_processes`` times too fast (accelerate#662, #2773; transformers#26827).
``ftrecipes.training.stock.accelerate_scheduler`` divides the extra steps back out. Writes
``lr_trace.json`` (``{optimizer_step: lr}``, the LR each step used) to ``--output_dir``.
"""

import json
import math
import sys
from pathlib import Path

from accelerate import Accelerator

from ftrecipes.config.errors import ConfigError
from ftrecipes.config.timeline import Timeline
from ftrecipes.job.parse import parse_args
from ftrecipes.job.run import build_training_components
from ftrecipes.training.arguments import recipe_schedule
from ftrecipes.training.launch import refuse
from ftrecipes.training.optim import create_optimizer
from ftrecipes.training.stock import accelerate_scheduler


def train(argv=None) -> dict[int, float]:
    # Phase 1: the recipe, data, model and sizes, checked exactly as finetune.py checks them.
    components = build_training_components(parse_args(argv))
    args, recipe = components.args, components.recipe
    train_dataset = components.prepared.datasets["train"]

    # Phase 2: Accelerate owns devices, processes, precision and accumulation.
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision="bf16" if args.bf16 else "fp16" if args.fp16 else "no",
    )
    loader = components.train_dataloader()

    # Phase 3: optimizer and scheduler from the recipe, sized like the Trainer would size them: the
    # numbers (peak, weight decay, betas, clipping) from the args, the schedule's shape from the recipe.
    timeline = Timeline.from_training_args(args, len(train_dataset))
    schedule = recipe_schedule(recipe, args, timeline.total_steps, train_dataset)
    optimizer = create_optimizer(recipe, components.model, learning_rate=args.learning_rate, args=args)
    scheduler = accelerate_scheduler(schedule, optimizer, accelerator)
    model, optimizer, loader, scheduler = accelerator.prepare(components.model, optimizer, loader, scheduler)

    # Phase 4: the loop. An optimizer step happens when Accelerate syncs gradients (end of an
    # accumulation window or of the epoch), which is exactly when Trainer counts one.
    trace: dict[int, float] = {}
    step = 0
    model.train()
    for _epoch in range(math.ceil(timeline.num_train_epochs) if args.max_steps <= 0 else sys.maxsize):
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                lr_used = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                step += 1
                trace[step] = lr_used
                if step >= timeline.total_steps:
                    break
        if step >= timeline.total_steps:
            break

    if accelerator.is_main_process:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "lr_trace.json").write_text(json.dumps(trace, indent=1))
    # end_training() destroys the process group: first every rank arrives, and the DDP wrapper (which
    # holds the group) and everything else Accelerate prepared are released, so nothing outlives the
    # group it was built on.
    accelerator.wait_for_everyone()
    model = optimizer = loader = scheduler = None
    accelerator.free_memory()
    accelerator.end_training()
    return trace


def main(argv=None) -> int:
    try:
        train(argv)
    except ConfigError as err:
        return refuse("accelerate_loop.py", err)  # once, under a launcher too
    return 0


if __name__ == "__main__":
    sys.exit(main())
