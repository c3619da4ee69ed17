"""Causal language modelling (``clm``): texts concatenated and cut into fixed-size blocks.

Model: ``AutoModelForCausalLM``; metrics: exact token-weighted perplexity and mean NLL (the shipped
``perplexity`` module, fed per-sequence [summed NLL, tokens] by the logits hook, so the ``(N, T,
vocab)`` logits are never kept); ``eval_perplexity`` falls back to ``exp(eval_loss)``. Best model by
perplexity (lower is better). ``--max_seq_length`` is the block size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping

from ftrecipes.config.errors import ConfigError
from ftrecipes.data.tasks._common import (
    _clamp_length,
    _first_present,
    check_columns,
    is_streamed,
    map_split,
    split_columns,
)
from ftrecipes.data.tasks.base import PreparedTask, Task

if TYPE_CHECKING:  # pragma: no cover
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase


def group_texts(examples: Mapping[str, list[list[int]]], block_size: int) -> dict[str, list[list[int]]]:
    """Concatenate tokenized rows and cut them into ``block_size`` blocks; ``labels = input_ids``.

    The tail shorter than one block is dropped (padding it would waste compute on pad tokens).
    The model shifts labels internally, so labels are a plain copy.
    """
    concatenated = {k: [t for row in examples[k] for t in row] for k in examples}
    total = (len(concatenated["input_ids"]) // block_size) * block_size
    blocks = {k: [v[i : i + block_size] for i in range(0, total, block_size)] for k, v in concatenated.items()}
    blocks["labels"] = [list(b) for b in blocks["input_ids"]]
    return blocks


def preprocess_causal_lm(
    raw: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    *,
    text_column_name: str | None = None,
    block_size: int | None = None,
    pad_to_multiple_of: int | None = None,
) -> PreparedTask:
    """Tokenize texts, concatenate them and chunk into ``block_size`` blocks for causal LM.

    ``block_size`` defaults to ``min(1024, tokenizer.model_max_length)``. Concatenation runs per
    ``map`` batch (1,000 rows), so at most one partial block per batch is dropped. Empty lines are
    skipped. A tokenizer without a pad token gets its EOS token as pad (the collator needs one;
    blocks are all full length, so nothing is actually padded).
    """
    from datasets import DatasetDict
    from transformers import DataCollatorForLanguageModeling

    if text_column_name is None:
        text_column_name = _first_present(raw, ("text", "content", "sentence")) or "text"
    check_columns(raw, {"--text_column_name": text_column_name})
    block_size = _clamp_length(tokenizer, block_size, "--block_size", 1024)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(
                "--model_name_or_path",
                getattr(tokenizer, "name_or_path", None),
                "tokenizer has neither a pad nor an EOS token",
                "use a tokenizer with an EOS token",
            )
        tokenizer.pad_token = tokenizer.eos_token

    def tokenize(batch):
        texts = [t for t in batch[text_column_name] if t is not None and str(t).strip()]
        encoded = tokenizer(texts)
        # token_type_ids mean nothing to a decoder (GPT-2 would even embed them as tokens).
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}

    tokenized = DatasetDict()
    for split, ds in raw.items():
        tokens = map_split(ds, tokenize, batched=True, remove_columns=split_columns(ds), desc=f"Tokenizing {split}")
        blocks = map_split(
            tokens,
            group_texts,
            batched=True,
            fn_kwargs={"block_size": block_size},
            desc=f"Grouping {split} into blocks of {block_size}",
        )
        if not is_streamed(blocks) and len(blocks) == 0:  # a stream is never counted; it yields what it holds
            n_tokens = sum(len(ids) for ids in tokens["input_ids"])
            raise ConfigError(
                "--block_size",
                block_size,
                f"the {split!r} split has {n_tokens} tokens, fewer than one block",
                "lower --block_size or give more text",
            )
        tokenized[split] = blocks
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False, pad_to_multiple_of=pad_to_multiple_of)
    return PreparedTask(TASK.short, tokenized, collator, None)


class CausalLM(Task):
    name = "causal-lm"
    short = "clm"
    aliases = ("text-generation",)
    auto_model = "AutoModelForCausalLM"
    flags = {"text_column_name": "text_column_name", "max_seq_length": "block_size"}
    metric_names = ("perplexity", "mean_nll")
    metric_for_best_model = "perplexity"
    greater_is_better = False
    supports_streaming = True

    preprocess = staticmethod(preprocess_causal_lm)

    def compute_metrics(self, prepared=None, **metric_kwargs):
        from ftrecipes.data.metrics import perplexity_metrics

        return perplexity_metrics()

    def preprocess_logits_for_metrics(self):
        from ftrecipes.data.metrics import preprocess_logits_for_metrics_clm

        return preprocess_logits_for_metrics_clm

    def final_metrics(self, metrics, prefix="eval"):
        loss = metrics.get(f"{prefix}_loss")
        if loss is not None:
            metrics.setdefault(f"{prefix}_perplexity", _safe_exp(loss))
        return metrics


def _safe_exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return float("inf")


TASK = CausalLM()
