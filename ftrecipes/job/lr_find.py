"""``ftrecipes lr-find``: the LR range test of a recipe on the main job's model and data.

Flags the command does not own are the main job's model/data flags, parsed by the job's own parser, so
the range test sees the model and batches a run with the same flags would train on. Sweeps call
:func:`main` for their ``--lr_finder`` stage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ftrecipes.config.errors import USAGE_EXIT_CODE, ArgumentParser, ConfigError


def add_lr_find_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``lr-find`` owns."""
    parser.add_argument("--recipe", default="cls", help="recipe name or YAML path (default: cls)")
    parser.add_argument("--model_name_or_path", default=None, help="overrides the recipe's model")
    parser.add_argument("--dataset_name", default=None, help="overrides the recipe's data set")
    parser.add_argument("--max_seq_length", type=int, default=None)
    parser.add_argument("--per_device_train_batch_size", type=int, default=None)
    parser.add_argument(
        "--accumulation_steps", type=int, default=None, help="micro-batches per step (default: the recipe's)"
    )
    parser.add_argument("--num_steps", type=int, default=100, help="ramp length in optimizer steps (default: 100)")
    parser.add_argument("--min_lr", type=float, default=None, help="start of the ramp (default: prior low / 100)")
    parser.add_argument("--max_lr", type=float, default=None, help="end of the ramp (default: prior high x 100)")
    parser.add_argument("--rule", default="steepest", help="suggestion rule: steepest (default) or minimum/10")
    parser.add_argument("--prior", default=None, help="override the recipe's prior, e.g. 2e-5,5e-5")
    parser.add_argument("--precision", default=None, help="auto, bf16, fp16 or fp32 (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--output_dir", default="lr_find", help="where lr_finder.json and lr_finder.png go")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")


ComponentBuilder = Callable[..., Any]


def _pipeline_builder(recipe_arg: str, finetune_argv: list[str]):
    """Model and training dataloader from the data/model pipeline of ``finetune.py`` (same flags, same
    preprocessing)."""
    import torch

    from ftrecipes.job.parse import parse_args
    from ftrecipes.job.run import build_training_components

    config = parse_args(["--recipe", recipe_arg, *finetune_argv])
    c = build_training_components(config)
    loader = c.train_dataloader()
    model = c.model.to("cuda") if torch.cuda.is_available() else c.model
    return {"model": model, "train_dataloader": loader, "recipe": c.recipe}


def _unpack_components(components) -> tuple[Any, Any, Any]:
    """``(model, train_dataloader, recipe or None)`` from a mapping, an object with those attributes, or a pair."""
    if isinstance(components, tuple) and len(components) == 2:
        return (*components, None)
    get = components.get if isinstance(components, dict) else lambda k: getattr(components, k, None)
    model, dataloader = get("model"), get("train_dataloader")
    if model is None or dataloader is None:
        raise TypeError("a component builder must provide `model` and `train_dataloader`")
    return model, dataloader, get("recipe")


def run_lr_find(args, build_components: ComponentBuilder | None = None, finetune_argv: Sequence[str] = ()) -> int:
    """Range test of ``args.recipe``; flags lr-find does not know are finetune.py flags (model/data)."""
    from ftrecipes.config.outputs import LR_FINDER_JSON, LR_FINDER_PNG
    from ftrecipes.config.registry import get_recipe
    from ftrecipes.job.check import check_output_dir
    from ftrecipes.models.width import resolve_peak_rule_for_model
    from ftrecipes.tuning.range_test import check_finder_args, choose_learning_rate

    check_finder_args(
        num_steps=args.num_steps,
        min_lr=args.min_lr,
        max_lr=args.max_lr,
        rule=args.rule,
        accumulation_steps=args.accumulation_steps,
        prior=args.prior,
    )
    output_dir = Path(args.output_dir)
    check_output_dir(args.output_dir, suggestion="lr_find")  # writable or creatable, before any loading
    passed = [
        f"--{k}={getattr(args, k)}"
        for k in (
            "model_name_or_path",
            "dataset_name",
            "max_seq_length",
            "per_device_train_batch_size",
            "seed",
            "precision",
        )
        if getattr(args, k) is not None
    ]
    if build_components is None:
        model, dataloader, recipe = _unpack_components(_pipeline_builder(args.recipe, [*passed, *finetune_argv]))
    else:
        if finetune_argv:
            raise ConfigError(finetune_argv[0], None, "is not an lr-find flag", "see `ftrecipes lr-find --help`")
        recipe = get_recipe(
            args.recipe,
            **{
                k: getattr(args, k)
                for k in (
                    "model_name_or_path",
                    "dataset_name",
                    "max_seq_length",
                    "per_device_train_batch_size",
                    "seed",
                    "precision",
                )
                if getattr(args, k) is not None
            },
        )
        model, dataloader, _ = _unpack_components(build_components(recipe))
    if recipe is None:
        recipe = get_recipe(args.recipe)
    # A recipe with the width rule: the peak and prior for this model (a no-op for the pipeline's, already resolved).
    recipe = resolve_peak_rule_for_model(recipe, model)[0]
    _, result = choose_learning_rate(
        recipe,
        model,
        dataloader,
        output_dir=output_dir,
        num_steps=args.num_steps,
        min_lr=args.min_lr,
        max_lr=args.max_lr,
        accumulation_steps=args.accumulation_steps,
        precision=recipe.precision,
        rule=args.rule,
        prior=args.prior,
        show_progress=not args.no_progress,
    )
    print(result.summary())
    print(f"wrote {output_dir / LR_FINDER_JSON} and {output_dir / LR_FINDER_PNG}")
    return 0


def main(argv: Sequence[str], *, build_components: ComponentBuilder | None = None) -> int:
    """``ftrecipes lr-find ARGV``; returns the exit code (a user error: one line, exit 2)."""
    parser = ArgumentParser(prog="ftrecipes lr-find", description="LR range test of a recipe on a model and data set")
    add_lr_find_arguments(parser)
    try:
        args, finetune_argv = parser.parse_known_args(list(argv))
        return run_lr_find(args, build_components, finetune_argv)
    except ConfigError as err:
        print(f"ftrecipes lr-find: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE
