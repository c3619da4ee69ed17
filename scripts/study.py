#!/usr/bin/env python
"""Recipe study: the card's recipe vs the plain Trainer defaults vs a constant LR, over seeds.

    python scripts/study.py                                   # bbc-minilm and tweets-minilm, 3 seeds, 3 arms
    python scripts/study.py --cards bbc-minilm --seeds 1 --override max_steps=5   # a quick smoke run

Arms (overrides of the card's recipe, see ``ftrecipes.baselines.STUDY_ARMS``):

* ``recipe``           — the card as written (cls: AdamW 5e-5, 5% warmup, cosine to 10%, wd 0.01, clip 1.0);
* ``trainer-defaults`` — ``--lr_scheduler_type linear --warmup 0 --min_lr_rate 0 --weight_decay 0
  --learning_rate 5e-5 --lr_scaling none`` (what a bare ``Trainer`` does);
* ``constant``         — ``--lr_scheduler_type constant --warmup 0``.

Runs are interleaved (for each card, for each seed, every arm) so a slow spell of a shared machine
hits all arms alike. Prints a markdown table of mean ± std of accuracy, macro-F1 and time per run,
and writes ``study.json`` (every run and the summary) to ``--output_dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

from ftrecipes.baselines import STUDY_ARMS, load_card, machine_info, parse_overrides, run_seed, study_markdown, summarize_study, unreachable_reason
from ftrecipes.errors import USAGE_EXIT_CODE, ConfigError

DEFAULT_CARDS = ("bbc-minilm", "tweets-minilm")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", nargs="+", default=list(DEFAULT_CARDS), help="Classification cards to study.")
    parser.add_argument("--arms", nargs="+", default=list(STUDY_ARMS), choices=list(STUDY_ARMS), help="Which arms to run.")
    parser.add_argument("--seeds", type=int, default=3, help="Seeds per (card, arm).")
    parser.add_argument("--output_dir", default="runs/study")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's).")
    parser.add_argument("--override", action="append", default=[], metavar="FLAG=VALUE", help="Extra finetune.py flag for every run (smoke tests).")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        cards = [load_card(name) for name in args.cards]
        for card in cards:
            if card.task != "sequence-classification":
                raise ConfigError("--cards", card.name, f"is a {card.task} card", "the study compares classification cards (accuracy and macro-F1)")
            reason = unreachable_reason(card)
            if reason is not None:
                print(f"study.py: {reason}", file=sys.stderr)
                return USAGE_EXIT_CODE
        if args.seeds < 1:
            raise ConfigError("--seeds", args.seeds, "must be a positive integer", "e.g. --seeds 3")
        extra = parse_overrides(args.override)
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
            extra["cpu_threads"] = str(args.threads)  # the pipeline sets torch threads from this flag
        if not args.verbose:
            import transformers

            transformers.logging.set_verbosity_error()

        out = Path(args.output_dir)
        rows = []
        started = time.time()
        for card in cards:
            for seed in [card.first_seed + i for i in range(args.seeds)]:
                for arm in args.arms:
                    overrides = {**STUDY_ARMS[arm], **extra}
                    run_dir = out / card.name / arm / f"seed-{seed}"
                    result = run_seed(card, seed, str(run_dir), overrides)
                    row = {
                        "card": card.name, "arm": arm, "seed": seed, "exit_code": result.exit_code,
                        "eval_accuracy": result.value("eval_accuracy"), "eval_f1": result.value("eval_f1"),
                        "wall_time_s": result.wall_time_s, "train_runtime": result.metrics.get("train_runtime"),
                        "argv": card.argv(seed, str(run_dir), overrides),
                    }
                    rows.append(row)
                    print(f"[{card.name} / {arm} / seed {seed}] accuracy {row['eval_accuracy']:.4f}  macro-F1 {row['eval_f1']:.4f}  {row['wall_time_s']:.0f} s", flush=True)
        summary = summarize_study(rows)
        table = study_markdown(summary)
        command = "python scripts/study.py " + shlex.join(argv)
        out.mkdir(parents=True, exist_ok=True)
        (out / "study.json").write_text(json.dumps({"command": command, "machine": machine_info(), "arms": {a: STUDY_ARMS[a] for a in args.arms},
                                                     "extra_overrides": extra, "total_wall_time_s": time.time() - started,
                                                     "summary": summary, "runs": rows}, indent=2))
        (out / "study.md").write_text(table + "\n")
        print()
        print(table)
        print(f"\n{command}  ({len(rows)} runs, {time.time() - started:.0f} s; {out / 'study.json'})")
        return 0
    except ConfigError as err:
        print(f"study.py: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
