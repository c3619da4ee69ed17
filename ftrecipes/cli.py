"""The ``ftrecipes`` command: train, list, show, plot and validate recipes, launch configs, the LR range test.

::

    ftrecipes train --recipe cls --output_dir runs/cls     # the main job (ftrecipes.job.run)
    ftrecipes configs                                       # the shipped launch configs
    ftrecipes configs cp cpu .                              # copy one out for accelerate launch --config_file
    ftrecipes list
    ftrecipes show cls --num_examples 2000 --per_device_train_batch_size 16 --num_processes 2
    ftrecipes show lora-cls --lora_alpha 32                 # any recipe field, as train takes it
    ftrecipes plot one-cycle --num_examples 2000 --output one-cycle.png
    ftrecipes validate my-recipe.yaml
    ftrecipes lr-find --recipe cls --num_steps 100 --output_dir lr_find

User errors (an unknown recipe, a bad flag value, an invalid file) print one line to stderr and exit
with code 2, never a traceback. ``train`` is the main job with exactly ``scripts/finetune.py``'s flags
and exit codes; under a launcher use its module form, ``accelerate launch -m ftrecipes.train ...``.
``validate`` prints one line per problem it finds, all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from ftrecipes.config.bundled import MODEL_ALIASES
from ftrecipes.config.errors import (
    USAGE_EXIT_CODE,
    ArgumentParser,
    ConfigError,
    did_you_mean,
)
from ftrecipes.config.files import load_yaml_mapping
from ftrecipes.job.lr_find import ComponentBuilder, add_lr_find_arguments, run_lr_find

ASSUMED_NUM_EXAMPLES = 10_000  # used by show/plot when neither --num_examples nor max_steps sizes the run


# ------------------------------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="ftrecipes", description="Fine-tuning recipes: train, inspect, plot, validate, find the peak LR."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True

    # --- train: its flags are the main job's, parsed by ftrecipes.job.parse (`ftrecipes train --help`).
    sub.add_parser(
        "train",
        add_help=False,
        help="fine-tune a model with a recipe (the main job; under a launcher: -m ftrecipes.train)",
    )
    p = sub.add_parser(
        "configs",
        help="the shipped launch configs for accelerate launch: list them, or `cp NAME [DEST]` to copy one out",
    )
    actions = p.add_subparsers(dest="configs_command", metavar="ACTION", parser_class=ArgumentParser)
    actions.add_parser("ls", help="name and purpose of each launch config (what `ftrecipes configs` prints)")
    cp = actions.add_parser("cp", help="copy a launch config (a DeepSpeed one with its JSON) to DEST")
    cp.add_argument("name", metavar="NAME", help="a launch config (see `ftrecipes configs`)")
    cp.add_argument(
        "dest", metavar="DEST", nargs="?", default=".", help="a folder (default: the current one) or a file name"
    )
    cp.add_argument("--force", action="store_true", help="replace a file that is already at DEST")

    sub.add_parser("list", help="table of the shipped recipes with their purpose")

    for name, text in (
        ("show", "the resolved recipe: steps, global batch, scaled peak, and why each default"),
        ("plot", "PNG and terminal chart of the recipe's LR (and momentum) vs optimizer steps"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("name", metavar="NAME", help="a shipped recipe (see `ftrecipes list`) or a recipe YAML path")
        _add_sizing_flags(p)
        if name == "plot":
            p.add_argument("--output", default=None, help="PNG path (default: NAME-schedule.png)")
            p.add_argument("--width", type=int, default=64, help="terminal chart width in columns")
            p.add_argument("--ascii", action="store_true", help="plain ASCII terminal chart")

    p = sub.add_parser("validate", help="check a recipe YAML file and report every problem")
    p.add_argument("file", metavar="FILE")

    p = sub.add_parser("lr-find", help="LR range test of a recipe on a model and data set")
    add_lr_find_arguments(p)

    # --- plot-run: its flags belong to ftrecipes.report.curves, whose own parser handles them.
    sub.add_parser("reproduce", help="run a baseline card over seeds and check (or record) its result", add_help=False)
    sub.add_parser(
        "sweep", help="tune the peak LR, then the warmup, with Optuna (ftrecipes.sweeps.study)", add_help=False
    )
    p = sub.add_parser("plot-run", help="plot a finished run's curves (ftrecipes.report.curves)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _add_sizing_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--num_examples",
        type=int,
        default=None,
        help=f"training examples (default: {ASSUMED_NUM_EXAMPLES}, stated as assumed)",
    )
    p.add_argument("--per_device_train_batch_size", type=int, default=None, help="default: the recipe's")
    p.add_argument("--num_processes", type=int, default=1)
    p.add_argument("--gradient_accumulation_steps", type=int, default=None, help="default: the recipe's")
    p.add_argument("--lr_scaling", default=None, help="override the recipe's batch-size rule: none, linear or sqrt")
    p.add_argument(
        "--model_name_or_path",
        default=None,
        help=(
            "the model the recipe's peak-LR rule reads the width of (config.json of a folder, 'minilm' or a cached Hub "
            "id; default: the recipe's)"
        ),
    )
    p.add_argument(
        "--learning_rate", default=None, help="a peak to plan with instead of the recipe's (turns its peak-LR rule off)"
    )
    # Every other recipe field, as `ftrecipes train` takes it: what the plan would be with that change.
    from ftrecipes.job.parse import add_recipe_field_flags

    sized = ("per_device_train_batch_size", "gradient_accumulation_steps", "lr_scaling", "model_name_or_path")
    add_recipe_field_flags(
        p.add_argument_group("recipe fields (as `ftrecipes train` takes them)"), skip=(*sized, "learning_rate")
    )


# ------------------------------------------------------------------------------------------------
# Commands


def cmd_list(args) -> int:
    from ftrecipes.config.registry import get_recipe, list_recipes
    from ftrecipes.models.width import resolve_peak_rule

    rows = [("recipe", "task", "optimizer", "schedule", "peak LR", "purpose")]
    for name in list_recipes():
        r = get_recipe(name)
        # A recipe with the peak-LR rule: its peak for the recipe's own model (the stated one without a width).
        resolved, choice = (
            resolve_peak_rule(r) if r.lr_rule != "none" and r.model_name_or_path.lower() in MODEL_ALIASES else (r, None)
        )
        peak = f"{resolved.learning_rate:.3g}" + (
            f" (hidden {choice.width})" if choice is not None and choice.applied else ""
        )
        rows.append((name, r.task, r.optimizer, r.lr_scheduler_type, peak, r.description))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for k, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5])
        if k == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return 0


def _plan(args):
    """The recipe (with the recipe-field and sizing flags given) planned for the sizes on the command line."""
    from ftrecipes.config.recipe import Recipe
    from ftrecipes.config.registry import get_recipe, recipe_path
    from ftrecipes.config.timeline import Timeline
    from ftrecipes.models.width import resolve_peak_rule

    fields = {f.name for f in dataclasses.fields(Recipe)} - {"name", "description", "model_name_or_path"}
    overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    recipe = get_recipe(args.name, **overrides)
    written = recipe
    recipe, peak = resolve_peak_rule(recipe, args.model_name_or_path)
    assumed = []
    num_examples = args.num_examples
    if num_examples is None:
        num_examples = ASSUMED_NUM_EXAMPLES
        if recipe.max_steps <= 0:
            assumed.append(f"{num_examples} training examples (pass --num_examples)")
    timeline = Timeline(
        num_examples=num_examples,
        per_device_train_batch_size=recipe.per_device_train_batch_size,
        num_processes=args.num_processes,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        num_train_epochs=recipe.num_train_epochs,
        max_steps=recipe.max_steps,
    )
    path = Path(args.name) if Path(args.name).suffix in (".yaml", ".yml") else recipe_path(args.name)
    return recipe.plan(timeline), path, assumed, peak, written


def cmd_show(args) -> int:
    from ftrecipes.config.explain import describe_plan
    from ftrecipes.report.plotting import render_schedule

    plan, path, assumed, peak, written = _plan(args)
    print(describe_plan(plan, recipe_file=path, assumed=assumed, peak=peak, written=written))
    print()
    print(render_schedule(plan.schedule, peak_lr=plan.learning_rate, width=64, height=6))
    return 0


def cmd_plot(args) -> int:
    from ftrecipes.report.plotting import plot_schedule, render_schedule

    plan, _, assumed, peak, _ = _plan(args)
    if args.width < 8:
        raise ConfigError("--width", args.width, "is too narrow", "use at least 8 columns")
    output = Path(args.output or f"{Path(args.name).stem}-schedule.png")
    if output.suffix.lower() != ".png":
        raise ConfigError("--output", str(output), "must be a .png file", "e.g. --output schedule.png")
    momentum_label = "beta1" if plan.recipe.optimizer == "adamw" else "momentum"
    title = (
        f"{plan.recipe.name}: peak {plan.learning_rate:.3g}, {plan.total_steps} optimizer steps, "
        f"global batch {plan.timeline.global_batch_size}"
    )
    print(render_schedule(plan.schedule, peak_lr=plan.learning_rate, width=args.width, ascii_only=args.ascii))
    if assumed:
        print(f"assumed: {'; '.join(assumed)}")
    if peak is not None:
        print(peak.line(plan.timeline.global_batch_size, plan.learning_rate))
    written = plot_schedule(
        plan.schedule, output, peak_lr=plan.learning_rate, title=title, momentum_label=momentum_label
    )
    print(f"wrote {written}")
    return 0


def validate_file(path: str) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of a recipe YAML: every problem found, not only the first. A file that
    cannot be read as a mapping at all raises :class:`ConfigError`.

    Unknown keys are reported one by one; then the recipe is built (and planned for a nominal run of
    10,000 examples) repeatedly, each time setting aside the key the last error named, so that each
    remaining key is still checked in the context of the others.
    """
    from ftrecipes.config.priors import recipe_prior
    from ftrecipes.config.recipe import Recipe
    from ftrecipes.config.timeline import Timeline

    file = Path(path)
    if not file.is_file():
        raise ConfigError("FILE", path, "does not exist", "give the path of a recipe YAML file")
    data = load_yaml_mapping(file, "FILE")

    problems, notes = [], []
    known = {f.name for f in dataclasses.fields(Recipe)}
    data = {str(k): v for k, v in data.items()}
    data.setdefault("name", file.stem)
    for key in [k for k in data if k not in known]:
        problems.append(
            str(
                ConfigError(
                    key, data.pop(key), "is not a recipe field", did_you_mean(key, known) or "see `ftrecipes show cls`"
                )
            )
        )

    recipe = None
    for _ in range(len(data) + 32):  # each round removes one key or sub-key, so this terminates
        try:
            recipe = Recipe.from_dict(data, source=str(path))
            recipe.plan(
                Timeline(
                    num_examples=10_000,
                    per_device_train_batch_size=recipe.per_device_train_batch_size,
                    gradient_accumulation_steps=recipe.gradient_accumulation_steps,
                    num_train_epochs=recipe.num_train_epochs,
                    max_steps=recipe.max_steps,
                )
            )
            break
        except ConfigError as err:
            recipe = None
            problems.append(str(err))
            key, _, sub = err.field.lstrip("-").partition(".")
            kwargs = data.get("lr_scheduler_kwargs")
            if key == "lr_scheduler_kwargs" and sub and isinstance(kwargs, dict) and sub in kwargs:
                data["lr_scheduler_kwargs"] = {k: v for k, v in kwargs.items() if k != sub}
            elif key in data and key != "name":
                data.pop(key)
                if key == "lr_scheduler_type" and data.pop("lr_scheduler_kwargs", None):
                    notes.append("lr_scheduler_kwargs not checked: they depend on a valid lr_scheduler_type")
            else:
                break  # the error names nothing in the file; it cannot be isolated further
    if recipe is not None and not problems:
        prior = recipe_prior(recipe)
        if not prior.contains(recipe.learning_rate):
            notes.append(
                f"learning_rate {recipe.learning_rate:.3g} lies outside the {prior} ({prior.source}); "
                "fine if the recipe says why"
            )
    return problems, notes


def cmd_validate(args) -> int:
    problems, notes = validate_file(args.file)
    for note in notes:
        print(f"{args.file}: note: {note}")
    if problems:
        for problem in problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"{args.file}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
        return USAGE_EXIT_CODE
    print(f"{args.file}: valid")
    return 0


def cmd_configs(args) -> int:
    from ftrecipes.config.launch_configs import LAUNCH_COMMAND, copy_launch_config, launch_configs

    if args.configs_command == "cp":
        for line in copy_launch_config(args.name, args.dest, force=args.force):
            print(line)
        return 0
    configs = launch_configs()
    width = max(len(c.name) for c in configs)
    print(f"{'config'.ljust(width)}  purpose")
    print(f"{'-' * width}  {'-' * 7}")
    for c in configs:
        print(f"{c.name.ljust(width)}  {c.purpose}")
    print()
    print("copy one out: ftrecipes configs cp NAME [DEST]; then e.g. " + LAUNCH_COMMAND.format(file="cpu.yaml"))
    return 0


def cmd_plot_run(args) -> int:
    from ftrecipes.report.curves import main_plot_run

    code = main_plot_run(args.rest)
    return 0 if code is None else int(code)


# ------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, *, build_components: ComponentBuilder | None = None) -> int:
    """Run the ``ftrecipes`` command; returns the exit code (0 success, 2 user error).

    ``build_components(recipe) -> (model, train_dataloader)`` replaces the data pipeline of ``lr-find``
    (tests inject a tiny model this way); without it ``lr-find`` loads data and model exactly as
    ``finetune.py`` does, through ``ftrecipes.job.run``, and passes it any flag lr-find does not own.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else ""
    prog = f"ftrecipes {command}".strip()
    try:
        if command == "train":  # the main job: its own parser, exit codes and launcher-aware refusal
            from ftrecipes.train import main as train_main

            return train_main(argv[1:])
        if command == "plot-run":  # its flags belong to ftrecipes.report.curves: hand them over untouched
            return cmd_plot_run(argparse.Namespace(rest=argv[1:]))
        if command == "reproduce":  # its flags belong to ftrecipes.baselines.reproduce
            from ftrecipes.baselines.reproduce import main as reproduce_main

            return reproduce_main(argv[1:])
        if command == "sweep":  # its flags are finetune.py's plus its own (ftrecipes.sweeps.study)
            from ftrecipes.sweeps.study import main as sweep_main

            return sweep_main(argv[1:])
        parser = build_parser()
        if command == "lr-find":  # unknown flags are finetune.py's model/data flags, checked by its parser
            args, finetune_argv = parser.parse_known_args(argv)
            return run_lr_find(args, build_components, finetune_argv)
        args = parser.parse_args(argv)
        handlers = {
            "list": cmd_list,
            "show": cmd_show,
            "plot": cmd_plot,
            "validate": cmd_validate,
            "configs": cmd_configs,
        }
        return handlers[args.command](args)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE
    except BrokenPipeError:  # `ftrecipes show cls | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except OSError as err:  # an output path that cannot be written, a file that cannot be read
        print(f"{prog}: error: {err.filename or ''}: {err.strerror or err}".replace(" : ", " "), file=sys.stderr)
        return USAGE_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
