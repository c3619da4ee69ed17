#!/usr/bin/env python
"""Adaptation study: full fine-tuning (cls) vs layer-wise LR decay (llrd-cls) vs LoRA (lora-cls).

  python scripts/benchmarks/adaptation_study.py --threads 1  # bbc-minilm and tweets-minilm, 3 seeds, 3 arms
  python scripts/benchmarks/adaptation_study.py --cards bbc-minilm --seeds 1 --override max_steps=5  # a quick smoke run

Each arm is the card (its model, data, budget and split) trained with another recipe: ``--recipe cls``
(the cards' own), ``--recipe llrd-cls`` or ``--recipe lora-cls``. Runs are interleaved (for each seed,
for each card, every arm) so a slow spell of a shared machine hits all arms alike, and each run is a
fresh spawned process so that its peak RSS (``ru_maxrss``) is its own. Prints a markdown table —
accuracy and macro-F1 mean ± std, trainable parameters, seconds per optimizer step (``train_runtime``
/ steps), peak RSS — and writes ``adaptation_study.json`` (every run and the summary) to ``--output_dir``.
"""

from __future__ import annotations

import json
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ARMS = {"cls": "cls", "llrd": "llrd-cls", "lora": "lora-cls"}


def _one_run(card_file: str, seed: int, run_dir: str, overrides: dict, threads: int | None) -> dict:
    """One seed in this (spawned) process: metrics, steps, trainable parameters and peak RSS."""
    import logging
    import resource

    import transformers

    from ftrecipes.baselines.cards import load_card
    from ftrecipes.baselines.runs import run_seed

    logging.basicConfig(level=logging.WARNING)
    transformers.logging.set_verbosity_error()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    result = run_seed(load_card(card_file), seed, run_dir, overrides)
    plan = json.loads((Path(run_dir) / "plan.json").read_text()) if (Path(run_dir) / "plan.json").is_file() else {}
    steps = plan.get("total_steps")
    runtime = result.metrics.get("train_runtime")
    return {
        "exit_code": result.exit_code,
        "eval_accuracy": result.value("eval_accuracy"),
        "eval_f1": result.value("eval_f1"),
        "wall_time_s": result.wall_time_s,
        "train_runtime": runtime,
        "steps": steps,
        "s_per_step": runtime / steps if runtime and steps else None,
        "trainable_parameters": plan.get("trainable_parameters"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
    }


def summarize(rows: list[dict]) -> list[dict]:
    """Mean ± std per (card, arm) of the study's columns (``baselines.summarize_study``), with each arm's recipe."""
    from ftrecipes.baselines.studies import summarize_study

    summary = summarize_study(
        rows, metrics=("eval_accuracy", "eval_f1", "s_per_step", "peak_rss_mb", "trainable_parameters")
    )
    return [{**entry, "recipe": ARMS[entry["arm"]]} for entry in summary]


def markdown(summary: list[dict]) -> str:
    def cell(entry, key, fmt, with_std=True):
        v = entry.get(key)
        if v is None:
            return "n/a"
        return f"{fmt.format(v['mean'])} ± {fmt.format(v['std'])}" if with_std else fmt.format(v["mean"])

    lines = [
        "| card | recipe | accuracy | macro-F1 | trainable params | s / optimizer step | peak RSS (MB) | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        lines.append(
            f"| {e['card']} | `{e['recipe']}` | {cell(e, 'eval_accuracy', '{:.4f}')} | {cell(e, 'eval_f1', '{:.4f}')} "
            f"| {cell(e, 'trainable_parameters', '{:,.0f}', False)} | {cell(e, 's_per_step', '{:.2f}')} | "
            f"{cell(e, 'peak_rss_mb', '{:.0f}')} | {e['n']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ftrecipes.baselines.cards import load_card
    from ftrecipes.baselines.runs import machine_info, record_expected
    from ftrecipes.baselines.studies import add_study_arguments, study_cards, study_overrides
    from ftrecipes.baselines.verdict import judge
    from ftrecipes.config.errors import USAGE_EXIT_CODE, ArgumentParser, ConfigError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add_study_arguments(parser, ARMS, "runs/adaptation-study")
    parser.add_argument(
        "--record",
        action="store_true",
        help="Write each llrd / lora arm's mean into its baseline card (<card>-llrd, <card>-lora).",
    )
    try:
        args = parser.parse_args(argv)
        cards, unreachable = study_cards(args.cards)
        if unreachable is not None:
            print(f"adaptation_study.py: {unreachable}", file=sys.stderr)
            return USAGE_EXIT_CODE
        extra = study_overrides(args)
        if args.record and args.override:
            raise ConfigError(
                "--record", True, "cannot record runs made with --override", "record the cards as written"
            )
        record_cards = {
            (card.name, arm): load_card(f"{card.name}-{arm}")
            for card in cards
            for arm in args.arms
            if args.record and arm != "cls"
        }
    except ConfigError as err:
        print(f"adaptation_study.py: error: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    started = time.time()
    context = multiprocessing.get_context("spawn")
    # Seed-major: a study cut short still has every card and arm at the seeds it finished.
    for index in range(args.seeds):
        for card in cards:
            seed = card.first_seed + index
            for arm in args.arms:
                run_dir = out / card.name / arm / f"seed-{seed}"
                overrides = {"recipe": ARMS[arm], "save_strategy": "no", **extra}
                # One fresh process per run, shut down cleanly (a terminated Pool leaks a semaphore warning).
                with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                    result = pool.submit(
                        _one_run, card.path, seed, str(run_dir), overrides, args.threads
                    ).result()  # a card given as a path too
                row = {
                    "card": card.name,
                    "arm": arm,
                    "seed": seed,
                    **result,
                    "argv": card.argv(seed, str(run_dir), overrides),
                }
                rows.append(row)
                print(
                    f"[{card.name} / {ARMS[arm]} / seed {seed}] exit {row['exit_code']}  accuracy "
                    f"{row['eval_accuracy']}  macro-F1 {row['eval_f1']}  {row['s_per_step']} s/step  "
                    f"{row['peak_rss_mb']:.0f} MB  {row['trainable_parameters']} trainable  {row['wall_time_s']:.0f} s",
                    flush=True,
                )
                # Written after every run: a long study interrupted midway keeps what it measured.
                summary = summarize(rows)
                command = "python scripts/benchmarks/adaptation_study.py " + shlex.join(argv)
                (out / "adaptation_study.json").write_text(
                    json.dumps(
                        {
                            "command": command,
                            "machine": machine_info(),
                            "arms": ARMS,
                            "extra_overrides": extra,
                            "total_wall_time_s": time.time() - started,
                            "summary": summary,
                            "runs": rows,
                        },
                        indent=2,
                    )
                )
    table = markdown(summarize(rows))
    for (card_name, arm), record_card in record_cards.items():
        values = [
            r[record_card.metric] for r in rows if r["card"] == card_name and r["arm"] == arm and r["exit_code"] == 0
        ]
        if values:
            verdict = judge(values, None, record_card.tolerance, record_card.check)
            record_expected(record_card, verdict, "python scripts/benchmarks/adaptation_study.py " + shlex.join(argv))
            print(f"recorded {record_card.name}: {verdict.line(record_card.metric)}")
    (out / "adaptation_study.md").write_text(table + "\n")
    print()
    print(table)
    print(
        f"\npython scripts/benchmarks/adaptation_study.py {shlex.join(argv)}  ({len(rows)} runs, "
        f"{time.time() - started:.0f} s; {out / 'adaptation_study.json'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
