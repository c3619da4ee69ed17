"""A tiny config-built classifier and a learnable synthetic task, shared by the lr-finder and CLI tests."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification


def tiny_classifier(seed: int = 0) -> BertForSequenceClassification:
    config = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BertForSequenceClassification(config)


def synthetic_batches(num_batches: int = 16, batch_size: int = 16, length: int = 16, seed: int = 0) -> list[dict]:
    """Dict batches of two classes drawn from disjoint halves of the vocabulary (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        labels = torch.randint(0, 2, (batch_size,), generator=g)
        ids = torch.randint(1, 500, (batch_size, length), generator=g) + 499 * labels[:, None]
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches
