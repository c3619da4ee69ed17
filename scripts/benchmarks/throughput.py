#!/usr/bin/env python
"""Training throughput and peak memory: the finetune path vs a bare PyTorch loop vs pad-to-max Trainer.

  python scripts/benchmarks/throughput.py --threads 1  # BBC News + tweets, fp32 and bf16, MiniLM, CPU
  python scripts/benchmarks/throughput.py --steps 2 --warmup_steps 1 --repeats 1 --tiny  # seconds: a smoke run
  python scripts/benchmarks/throughput.py --device cuda --precisions bf16 --peak_tflops 989 --steps 50 --warmup_steps 10

Configurations, all on the same rows in the same order (a fixed shuffle of the training split read
sequentially, so (a) and (b) see identical dynamically padded batches):

* ``finetune``  — the finetune path: ``RecipeTrainer`` with the ``cls`` recipe (its AdamW groups,
  schedule, clipping, logging every 10 steps, the monitoring callbacks) and dynamic padding;
* ``bare``      — a hand-written PyTorch loop: the same model, batches, optimizer, schedule, clipping
  and precision, nothing else (forward, backward, clip, step, scheduler step, zero_grad);
* ``pad128``    — a plain ``transformers.Trainer`` with its defaults (AdamW ``adamw_torch_fused``, linear
  decay) on batches padded to 128 tokens, as ``run_glue.py`` does by default (``pad_to_max_length``).

Every measurement runs in a fresh subprocess (peak memory is that process's ``ru_maxrss``; on CUDA
``torch.cuda.max_memory_allocated``). Order is interleaved (finetune, bare, pad128, finetune, ...)
over ``--repeats`` repetitions and each cell reports the median, with the spread of the repetitions
(``(max - min) / median``) next to it: a difference smaller than the spread is not a result. Each
measurement trains ``--warmup_steps`` untimed steps, then times ``--steps`` steps (end of step W to
end of step W+T) and records every step's duration. Because all configurations see the same batches
in the same order, the framework's cost is also given **paired per step**: for each repetition and
step ``k``, ``t_finetune[k] / t_bare[k]``; the median over all of them (``step ratio``) shrugs off the
stalls a shared machine puts into single steps, which a ratio of total times does not. Every
precision in ``--precisions`` (default: fp32, and bf16 where the device runs it natively, see
:mod:`ftrecipes.training.precision`) is measured for every configuration: bf16 is autocast, as in Trainer.
On CUDA an MFU estimate is printed: ``6 * parameters * real tokens/s / peak FLOP/s`` (real = not
padding; padding FLOPs are not useful work), with the peak given by ``--peak_tflops``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ("finetune", "bare", "pad128")
DATASETS = ("bbc_news", "tweet_sentiment")


# ------------------------------------------------------------------------------------------------
# Worker: one configuration, one process


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def worker(opts) -> dict:
    import torch
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    from ftrecipes.config.registry import get_recipe
    from ftrecipes.data.loading import load_raw_datasets
    from ftrecipes.models.names import default_model_path

    transformers.logging.set_verbosity_error()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = opts.device
    steps_total = opts.warmup_steps + opts.steps
    n_rows = steps_total * opts.batch_size

    raw = load_raw_datasets(opts.dataset, seed=42)["train"]
    raw = raw.shuffle(seed=0).select(range(min(n_rows, len(raw))))
    if len(raw) < n_rows:
        raise SystemExit(f"benchmark.py: {opts.dataset} has {len(raw)} rows, fewer than {n_rows} needed")
    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    num_labels = raw.features["label"].num_classes
    padded = opts.config == "pad128"

    def tok(batch):
        enc = tokenizer(
            batch["text"], truncation=True, max_length=opts.max_length, padding="max_length" if padded else False
        )
        enc["labels"] = batch["label"]
        return enc

    data = raw.map(tok, batched=True, remove_columns=raw.column_names)
    lengths = [len(ids) if not padded else int(sum(m)) for ids, m in zip(data["input_ids"], data["attention_mask"])]
    batches = [lengths[i * opts.batch_size : (i + 1) * opts.batch_size] for i in range(steps_total)]
    timed = batches[opts.warmup_steps :]
    real_tokens = sum(sum(b) for b in timed)
    processed_tokens = sum(len(b) * (opts.max_length if padded else max(b)) for b in timed)

    set_seed(0)
    if opts.tiny:
        from ftrecipes.testing import tiny_bert_config

        model = AutoModelForSequenceClassification.from_config(tiny_bert_config(num_labels=num_labels))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(default_model_path(), num_labels=num_labels)
    n_params = sum(p.numel() for p in model.parameters())
    collator = default_data_collator if padded else DataCollatorWithPadding(tokenizer)
    recipe = get_recipe(
        "cls", per_device_train_batch_size=opts.batch_size, max_steps=steps_total, precision=opts.precision
    )
    bf16 = opts.precision == "bf16"
    precision_kwargs = dict(bf16=bf16, fp16=False)
    out_dir = tempfile.mkdtemp(prefix="ftrecipes-bench-")

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_bytes()
    marks: dict[str, float] = {}
    step_ends: list[float] = []

    def mark(step: int) -> None:
        if step >= opts.warmup_steps:
            _sync(device)
            step_ends.append(time.perf_counter())
        if step in (opts.warmup_steps, steps_total):
            marks["start" if step == opts.warmup_steps else "end"] = step_ends[-1]

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            mark(state.global_step)

    def sequential(trainer_cls):
        class SequentialTrainer(trainer_cls):
            # The benchmark feeds every configuration the same rows in the same order.
            def _get_train_sampler(self, train_dataset=None):
                return torch.utils.data.SequentialSampler(
                    train_dataset if train_dataset is not None else self.train_dataset
                )

        return SequentialTrainer

    common = dict(
        output_dir=out_dir,
        per_device_train_batch_size=opts.batch_size,
        max_steps=steps_total,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=device == "cpu",
        **precision_kwargs,
    )
    if opts.config == "finetune":
        from ftrecipes.training.arguments import recipe_training_args
        from ftrecipes.training.callbacks import add_monitoring
        from ftrecipes.training.trainer import RecipeTrainer

        args = recipe_training_args(recipe, out_dir, **{k: v for k, v in common.items() if k != "output_dir"})
        trainer = sequential(RecipeTrainer)(
            model=model,
            args=args,
            recipe=recipe,
            train_dataset=data,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[Clock()],
        )
        add_monitoring(trainer)
        trainer.train()
        optimizer_name = f"{type(trainer.optimizer).__name__} (recipe)"
    elif opts.config == "pad128":
        args = TrainingArguments(learning_rate=5e-5, **common)
        trainer = sequential(Trainer)(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=collator,
            processing_class=tokenizer,
            callbacks=[Clock()],
        )
        trainer.train()
        optimizer_name = f"Trainer default ({args.optim})"
    else:
        from ftrecipes.config.timeline import Timeline
        from ftrecipes.training.lr_scheduler import ScheduleLR
        from ftrecipes.training.optim import create_optimizer

        model.to(device)
        model.train()
        plan = recipe.plan(
            Timeline(num_examples=n_rows, per_device_train_batch_size=opts.batch_size, max_steps=steps_total)
        )
        optimizer = create_optimizer(recipe, model, learning_rate=plan.learning_rate)
        scheduler = ScheduleLR(optimizer, plan.schedule)
        loader = torch.utils.data.DataLoader(
            data.with_format(None), batch_size=opts.batch_size, shuffle=False, collate_fn=collator
        )
        autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)
        for step, batch in enumerate(loader, start=1):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast:
                loss = model(**batch).loss
            loss.backward()
            if recipe.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            mark(step)
        optimizer_name = f"{type(optimizer).__name__} (recipe)"

    shutil.rmtree(out_dir, ignore_errors=True)
    elapsed = marks["end"] - marks["start"]
    result = {
        "config": opts.config,
        "dataset": opts.dataset,
        "device": device,
        "precision": opts.precision,
        "threads": torch.get_num_threads(),
        "batch_size": opts.batch_size,
        "steps": opts.steps,
        "elapsed_s": elapsed,
        "step_s": [b - a for a, b in zip(step_ends, step_ends[1:])],
        "samples_per_s": opts.steps * opts.batch_size / elapsed,
        "real_tokens_per_s": real_tokens / elapsed,
        "processed_tokens_per_s": processed_tokens / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_delta_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before / 2**20,
        "params": n_params,
        "optimizer": optimizer_name,
    }
    if device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        if opts.peak_tflops:
            result["mfu"] = 6 * n_params * result["real_tokens_per_s"] / (opts.peak_tflops * 1e12)
    return result


# ------------------------------------------------------------------------------------------------
# Driver: interleave configurations in subprocesses, take medians


def _spread(values: list[float]) -> float:
    """``(max - min) / median`` of the repetitions (0 for one)."""
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else 0.0


def step_ratios(results: list[dict], dataset: str, precision: str, config: str, reference: str = "bare") -> list[float]:
    """``t_config[k] / t_reference[k]`` for every repetition and timed step ``k`` (same batches)."""
    ratios = []
    for rep in sorted({r["repeat"] for r in results}):
        pair = {
            r["config"]: r
            for r in results
            if r["repeat"] == rep and r["dataset"] == dataset and r["precision"] == precision
        }
        if config in pair and reference in pair:
            ratios += [a / b for a, b in zip(pair[config]["step_s"], pair[reference]["step_s"]) if b > 0]
    return ratios


def median_table(results: list[dict], device: str) -> str:
    """One row per (data, precision, config): medians over repetitions and their spread, the
    throughput ratios against the bare loop and pad128, and the paired per-step ratio to bare."""
    cells: dict[tuple[str, str, str], dict] = {}
    for ds in dict.fromkeys(r["dataset"] for r in results):
        for prec in dict.fromkeys(r["precision"] for r in results):
            for cfg in CONFIGS:
                rows = [r for r in results if r["dataset"] == ds and r["config"] == cfg and r["precision"] == prec]
                if rows:
                    keys = ("samples_per_s", "real_tokens_per_s", "peak_rss_mb", "rss_delta_mb", "peak_gpu_mb", "mfu")
                    cells[(ds, prec, cfg)] = {
                        k: statistics.median(r[k] for r in rows) for k in keys if k in rows[0]
                    } | {"n": len(rows), "spread": _spread([r["samples_per_s"] for r in rows])}
    mem = "peak GPU MB" if device == "cuda" else "peak RSS MB (delta)"
    head = (
        f"| data | precision | config | samples/s | spread | real tokens/s | {mem} | vs bare | step ratio vs bare "
        "[IQR] | vs pad128 |" + (" MFU |" if device == "cuda" else "") + " n |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (ds, prec, cfg), c in cells.items():
        bare, pad = cells.get((ds, prec, "bare")), cells.get((ds, prec, "pad128"))
        vs_bare = f"{c['samples_per_s'] / bare['samples_per_s']:.3f}x" if bare else "n/a"
        ratios = step_ratios(results, ds, prec, cfg) if cfg != "bare" else []
        if ratios:
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            paired = f"{statistics.median(ratios):.3f} [{q[0]:.3f}, {q[2]:.3f}]"
        else:
            paired = "1" if cfg == "bare" else "n/a"
        vs_pad = f"{c['samples_per_s'] / pad['samples_per_s']:.2f}x" if pad else "n/a"
        memory = f"{c['peak_gpu_mb']:.0f}" if device == "cuda" else f"{c['peak_rss_mb']:.0f} ({c['rss_delta_mb']:+.0f})"
        mfu = f" {100 * c['mfu']:.1f}% |" if device == "cuda" and "mfu" in c else (" n/a |" if device == "cuda" else "")
        lines.append(
            f"| {ds} | {prec} | {cfg} | {c['samples_per_s']:.2f} | {100 * c['spread']:.1f}% | "
            f"{c['real_tokens_per_s']:.0f} | {memory} | {vs_bare} | {paired} | {vs_pad} |{mfu} {c['n']} |"
        )
    return "\n".join(lines)


def _default_precisions(device: str) -> list[str]:
    from ftrecipes.training.precision import precision_supported

    return ["fp32", "bf16"] if precision_supported("bf16", device) else ["fp32"]


def main(argv: list[str] | None = None) -> int:
    from ftrecipes.config.errors import ArgumentParser, ConfigError

    parser = ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=None,
        choices=["fp32", "bf16"],
        help="Precisions to measure (default: fp32, and bf16 where the device runs it natively).",
    )
    parser.add_argument("--steps", type=int, default=20, help="Timed optimizer steps per measurement.")
    parser.add_argument(
        "--warmup_steps", type=int, default=3, help="Untimed steps first (allocator, caches, oneDNN kernels)."
    )
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved repetitions; cells are medians.")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument(
        "--max_length",
        type=int,
        default=128,
        help="Truncation length of every configuration and pad128's padded length.",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads in every worker (default: torch's)."
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="Shorthand for --precisions bf16.")
    parser.add_argument(
        "--peak_tflops",
        type=float,
        default=None,
        help="Peak dense FLOP/s of the device in TFLOP/s for the MFU estimate (H100 SXM bf16: 989).",
    )
    parser.add_argument("--tiny", action="store_true", help="A tiny config-built BERT instead of MiniLM (smoke tests).")
    parser.add_argument("--output", default=None, help="Write every measurement and the table as JSON here.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    try:
        opts = parser.parse_args(argv)
    except ConfigError as err:
        print(f"benchmark.py: error: {err}", file=sys.stderr)
        return 2
    if opts.worker:
        print("BENCH " + json.dumps(worker(opts)), flush=True)
        return 0
    for name in ("steps", "warmup_steps", "repeats", "batch_size", "max_length"):
        if getattr(opts, name) < 1:
            print(f"benchmark.py: error: --{name}={getattr(opts, name)}: must be a positive integer", file=sys.stderr)
            return 2
    if opts.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                "benchmark.py: error: --device cuda: no CUDA device is available here; run on a GPU machine or use "
                "--device cpu",
                file=sys.stderr,
            )
            return 2
    if opts.bf16 and opts.precisions and opts.precisions != ["bf16"]:
        print(
            f"benchmark.py: error: --bf16 with --precisions {' '.join(opts.precisions)}: they disagree; give one of "
            "them",
            file=sys.stderr,
        )
        return 2
    precisions = ["bf16"] if opts.bf16 else (opts.precisions or _default_precisions(opts.device))
    if "bf16" in precisions:
        from ftrecipes.training.precision import precision_supported

        if not precision_supported("bf16", opts.device):
            print(
                f"benchmark.py: error: --precisions bf16: this {opts.device} has no native bf16 (emulated bf16 is "
                "slower than fp32); measure --precisions fp32",
                file=sys.stderr,
            )
            return 2

    passthrough = [
        "--steps",
        str(opts.steps),
        "--warmup_steps",
        str(opts.warmup_steps),
        "--batch_size",
        str(opts.batch_size),
        "--max_length",
        str(opts.max_length),
        "--device",
        opts.device,
    ]
    passthrough += (["--threads", str(opts.threads)] if opts.threads else []) + (["--tiny"] if opts.tiny else [])
    passthrough += ["--peak_tflops", str(opts.peak_tflops)] if opts.peak_tflops else []
    results = []
    started = time.time()
    for rep in range(opts.repeats):
        for ds in opts.datasets:
            for prec in precisions:
                for cfg in opts.configs:
                    cmd = [
                        sys.executable,
                        os.path.abspath(__file__),
                        "--worker",
                        "1",
                        "--dataset",
                        ds,
                        "--config",
                        cfg,
                        "--precision",
                        prec,
                        *passthrough,
                    ]
                    proc = subprocess.run(
                        cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
                    )
                    line = next((out for out in proc.stdout.splitlines() if out.startswith("BENCH ")), None)
                    if proc.returncode != 0 or line is None:
                        print(
                            f"benchmark.py: worker {cfg} {prec} on {ds} failed (exit "
                            f"{proc.returncode}):\n{proc.stderr[-3000:]}",
                            file=sys.stderr,
                        )
                        return 1
                    r = json.loads(line[6:]) | {"repeat": rep}
                    results.append(r)
                    print(
                        f"[rep {rep + 1}/{opts.repeats}] {ds:>15} {prec} {cfg:>8}: {r['samples_per_s']:.2f} samples/s, "
                        f"peak RSS {r['peak_rss_mb']:.0f} MB",
                        flush=True,
                    )
    table = median_table(results, opts.device)
    command = "python scripts/benchmarks/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print()
    print(table)
    print(
        f"\n{command}  (medians of {opts.repeats}; {opts.steps} timed steps after {opts.warmup_steps} warm-up, batch "
        f"{opts.batch_size}, threads {results[0]['threads']}, {opts.device}, {'/'.join(precisions)}; "
        f"{time.time() - started:.0f} s)"
    )
    if opts.output:
        Path(opts.output).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.output).write_text(json.dumps({"command": command, "table": table, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
