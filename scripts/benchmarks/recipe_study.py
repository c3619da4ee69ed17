#!/usr/bin/env python
"""Recipe study: the card's recipe vs the plain Trainer defaults vs a constant LR, over seeds.

    python scripts/benchmarks/recipe_study.py                   # bbc-minilm and tweets-minilm, 3 seeds, 3 arms
    python scripts/benchmarks/recipe_study.py --cards bbc-minilm --seeds 1 --override max_steps=5  # a quick smoke run

Arms (overrides of the card's recipe, see ``ftrecipes.baselines.studies.STUDY_ARMS``):

* ``recipe``           — the card as written (cls: AdamW 5e-5, 5% warmup, cosine to 10%, wd 0.01, clip 1.0);
* ``trainer-defaults`` — ``--lr_scheduler_type linear --warmup 0 --min_lr_rate 0 --weight_decay 0
  --learning_rate 5e-5 --lr_scaling none`` (what a bare ``Trainer`` does);
* ``constant``         — ``--lr_scheduler_type constant --warmup 0``.

Runs are interleaved (for each card, for each seed, every arm) so a slow spell of a shared machine
hits all arms alike. Prints a markdown table of mean ± std of accuracy, macro-F1 and time per run,
and writes ``study.json`` (every run and the summary) to ``--output_dir``.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path

from ftrecipes.baselines.runs import machine_info, run_seed
from ftrecipes.baselines.studies import (
    STUDY_ARMS,
    add_study_arguments,
    study_cards,
    study_markdown,
    study_overrides,
    summarize_study,
)
from ftrecipes.config.errors import USAGE_EXIT_CODE, ArgumentParser, ConfigError


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_study_arguments(parser, STUDY_ARMS, "runs/study")
    parser.add_argument("--verbose", action="store_true")
    try:
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
        cards, unreachable = study_cards(args.cards)
        if unreachable is not None:
            print(f"study.py: {unreachable}", file=sys.stderr)
            return USAGE_EXIT_CODE
        extra = study_overrides(args)
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
                        "card": card.name,
                        "arm": arm,
                        "seed": seed,
                        "exit_code": result.exit_code,
                        "eval_accuracy": result.value("eval_accuracy"),
                        "eval_f1": result.value("eval_f1"),
                        "wall_time_s": result.wall_time_s,
                        "train_runtime": result.metrics.get("train_runtime"),
                        "argv": card.argv(seed, str(run_dir), overrides),
                    }
                    rows.append(row)
                    print(
                        f"[{card.name} / {arm} / seed {seed}] accuracy {row['eval_accuracy']:.4f}  macro-F1 "
                        f"{row['eval_f1']:.4f}  {row['wall_time_s']:.0f} s",
                        flush=True,
                    )
        summary = summarize_study(rows)
        table = study_markdown(summary)
        command = "python scripts/benchmarks/recipe_study.py " + shlex.join(argv)
        out.mkdir(parents=True, exist_ok=True)
        (out / "study.json").write_text(
            json.dumps(
                {
                    "command": command,
                    "machine": machine_info(),
                    "arms": {a: STUDY_ARMS[a] for a in args.arms},
                    "extra_overrides": extra,
                    "total_wall_time_s": time.time() - started,
                    "summary": summary,
                    "runs": rows,
                },
                indent=2,
            )
        )
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
