"""``ftrecipes reproduce`` (also ``scripts/reproduce.py``): run a baseline card over seeds through the main job and
check the result.

    ftrecipes reproduce --list
    ftrecipes reproduce --card bbc-minilm                    # the card's number of seeds
    ftrecipes reproduce --card digits-cnn --seeds 1 --threads 1
    ftrecipes reproduce --card tweets-minilm --record        # write the measured mean into the card

Each seed is one in-process run of the main job (``--seed`` set, output under ``--output_dir/<card>/seed-<n>``).
Prints measured vs expected (mean ± std over seeds) with PASS / FAIL and writes ``result.json``. Exit codes: 0 pass
(or recorded), 1 a miss (or a diverged or unrecorded card), 2 bad input or a card that needs the Hugging Face Hub
here (one line, nothing run).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from ftrecipes.baselines.cards import list_cards, load_card, parse_overrides
from ftrecipes.baselines.hub import unreachable_reason
from ftrecipes.baselines.runs import card_result, record_expected, run_seed
from ftrecipes.baselines.verdict import judge
from ftrecipes.config.errors import USAGE_EXIT_CODE, ArgumentParser, ConfigError


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog, description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--card", help="A card name (see --list) or a path to a card YAML file.")
    parser.add_argument("--list", action="store_true", help="List the shipped cards and exit.")
    parser.add_argument("--seeds", type=int, default=None, help="Number of training seeds (default: the card's).")
    parser.add_argument(
        "--output_dir",
        default="runs/reproduce",
        help="Runs go to OUTPUT_DIR/<card>/seed-<n>; result.json to OUTPUT_DIR/<card>.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's). 1 is fastest on a busy 2-core machine.",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="Write the measured mean (and a tolerance of at least 3 std) into the card file.",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="Extra finetune.py flag for every seed (e.g. max_steps=5); repeatable.",
    )
    parser.add_argument("--verbose", action="store_true", help="Show the training logs.")
    return parser


def list_table() -> str:
    rows = [
        "| card | task | recipe | metric | expected | seeds | runs offline | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in list_cards():
        c = load_card(name, check_flags=False)  # listing needs no flag check (it would load transformers)
        expected = (
            "not recorded"
            if c.expected is None
            else (
                f"{c.expected:.4f} ± {c.tolerance:.4f}" if c.check == "within" else f"≥ {c.expected - c.tolerance:.4f}"
            )
        )
        rows.append(
            f"| {name} | {c.task} | {c.recipe} | {c.metric} | {expected} | {c.seeds} | "
            f"{'no (Hub)' if c.hub_names() else 'yes'} | {c.source['kind']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None, prog: str = "ftrecipes reproduce") -> int:
    """``ftrecipes reproduce ARGV`` (``prog`` names the command in its messages); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # The command a rerun types: the script's when run as the script, else the installed command.
    rerun = "python scripts/reproduce.py" if prog == "reproduce.py" else prog
    try:
        args = build_parser(prog).parse_args(argv)
        logging.basicConfig(
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            level=logging.INFO if args.verbose else logging.WARNING,
        )
        if args.list:
            print(list_table())
            return 0
        if not args.card:
            raise ConfigError("--card", None, "is required", "pass --card NAME (see --list)")
        # The card's fields, then whether it can run here, before its overrides are checked against
        # finetune.py's flags: that check imports transformers, which a refusal does not need.
        card = load_card(args.card, check_flags=False)
        if args.seeds is not None and args.seeds < 1:
            raise ConfigError("--seeds", args.seeds, "must be a positive integer", "e.g. --seeds 3")
        reason = unreachable_reason(card)
        if reason is not None:
            print(f"{prog}: {reason}", file=sys.stderr)
            return USAGE_EXIT_CODE
        card = load_card(args.card)
        extra = parse_overrides(args.override)
        if args.record and extra:
            raise ConfigError("--record", True, "cannot record a run with --override", "record the card as written")
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
            extra["cpu_threads"] = str(args.threads)  # the pipeline sets torch threads from this flag
        if not args.verbose:
            import transformers

            transformers.logging.set_verbosity_error()
        n = args.seeds if args.seeds is not None else card.seeds
        seeds = [card.first_seed + i for i in range(n)]
        out = Path(args.output_dir) / card.name
        results = []
        for seed in seeds:
            print(
                f"[{card.name}] seed {seed}: ftrecipes train "
                f"{shlex.join(card.argv(seed, str(out / f'seed-{seed}'), extra))}",
                flush=True,
            )
            result = run_seed(card, seed, str(out / f"seed-{seed}"), extra)
            value = result.value(card.metric)
            note = "" if result.exit_code == 0 else f" (exit code {result.exit_code}: diverged)"
            print(
                f"[{card.name}] seed {seed}: {card.metric} = {value:.4f} in {result.wall_time_s:.0f} s{note}",
                flush=True,
            )
            results.append(result)
        verdict = judge([r.value(card.metric) for r in results], card.expected, card.tolerance, card.check)
        command = f"{rerun} " + shlex.join(argv)
        record = card_result(card, results, verdict, command)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(record, indent=2, default=str))
        if args.record:
            if not all(r.exit_code == 0 for r in results):
                print(f"{prog}: {card.name}: a seed diverged; nothing recorded", file=sys.stderr)
                return 1
            precision = ", ".join(sorted({r.precision for r in results if r.precision})) or None
            record_expected(card, verdict, command, precision=precision)
            load_card(card.path)  # the written card still validates
            print(f"{card.name}: {verdict.line(card.metric)} -> recorded as expected in {card.path}")
            print(f"result: {out / 'result.json'}")
            return 0
        print(f"{card.name}: {verdict.line(card.metric)}")
        print(f"result: {out / 'result.json'}")
        return 0 if verdict.passed else 1
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE
