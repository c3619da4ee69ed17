"""Tiny config-built models for fast tests and smoke runs.

The models are built from a config (no download, no checkpoint). In-memory models and tokenizers
(:func:`tiny_tokenizer`) use the bundled MiniLM vocabulary, so that real text tokenizes exactly as in
the demo; the checkpoints that scripts load (:func:`save_tiny_base`, :func:`save_tiny_pretrained`) use
a ~140-piece WordPiece vocabulary (:func:`tiny_wordpiece_tokenizer`), which makes a whole main-job
smoke run several times cheaper (a 30,522-row embedding is 97% of the tiny BERT's parameters, and
``datasets`` fingerprints every ``map`` by pickling the tokenizer's vocabulary). Sizes: 2 layers, hidden 32, 4 heads,
intermediate 64 — a forward/backward pass on a small batch takes milliseconds on CPU. Weights are
a function of ``seed`` only: initialisation runs under a forked torch RNG, so building a model
neither depends on nor disturbs the caller's global random state.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ftrecipes.config.errors import ConfigError
from ftrecipes.data.tasks import get_task, label_config_kwargs
from ftrecipes.data.tasks.base import PreparedTask
from ftrecipes.data.topic_words import TOPIC_WORDS
from ftrecipes.models.names import default_model_path

TINY_SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
# Long enough for the tokenizer's model_max_length (512), so any --max_seq_length it allows fits.
TINY_MAX_POSITIONS = 512


def tiny_tokenizer() -> PreTrainedTokenizerBase:
    """A fresh copy of the bundled MiniLM (uncased WordPiece, 30,522 tokens) fast tokenizer."""
    return AutoTokenizer.from_pretrained(default_model_path())


def tiny_wordpiece_tokenizer() -> PreTrainedTokenizerBase:
    """An uncased BERT WordPiece tokenizer over ~140 pieces (139): the five special tokens, lowercase letters,
    digits and ASCII punctuation, their ``##`` continuations, and the :data:`TOPIC_WORDS`. Any text
    tokenizes without ``[UNK]`` for ASCII (a word outside the list becomes characters), like a real
    WordPiece vocabulary does for rare words."""
    import string

    from transformers import BertTokenizerFast

    characters = string.ascii_lowercase + string.digits
    pieces = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *characters,
        *string.punctuation,
        *(f"##{c}" for c in characters),
    ]
    pieces += sorted({word for words in TOPIC_WORDS.values() for word in words})
    return BertTokenizerFast(vocab={piece: i for i, piece in enumerate(pieces)}, model_max_length=TINY_MAX_POSITIONS)


def _labels_kwargs(num_labels: int, label_list: Sequence[str] | None) -> dict:
    if label_list is None:
        label_list = [f"LABEL_{i}" for i in range(num_labels)]
    return label_config_kwargs(list(label_list))


def tiny_bert_config(
    vocab_size: int = 30522, num_labels: int = 2, label_list: Sequence[str] | None = None, **overrides
) -> BertConfig:
    """A 2-layer BERT config with hidden size 32 (4 heads, intermediate 64); ``overrides`` win (e.g.
    ``num_labels=1, problem_type="regression"``)."""
    kwargs = dict(TINY_SIZES, vocab_size=vocab_size, max_position_embeddings=TINY_MAX_POSITIONS, pad_token_id=0)
    kwargs.update(_labels_kwargs(num_labels, label_list))
    kwargs.update(overrides)
    return BertConfig(**kwargs)


def tiny_decoder_config(tokenizer: PreTrainedTokenizerBase | None = None, **overrides) -> LlamaConfig:
    """A 2-layer Llama-style decoder config (hidden 32, 4 heads, intermediate 64) over the MiniLM vocabulary.

    Why Llama and not GPT-2: Trainer (transformers 5.x) recognises a causal-LM loss by the class name
    (``...ForCausalLM``). ``GPT2LMHeadModel`` does not match, so Trainer counts position 0 of every
    row as a target and divides the summed loss by ``T`` instead of ``T - 1`` tokens: with the short
    blocks of tests ``eval_loss`` (and the training loss scale) is off by ``(T - 1) / T``.
    The WordPiece tokenizer has no BOS/EOS, so ``[CLS]`` / ``[SEP]`` play those roles.
    """
    tokenizer = tokenizer or tiny_tokenizer()
    kwargs = dict(
        vocab_size=len(tokenizer),
        max_position_embeddings=TINY_MAX_POSITIONS,
        hidden_size=TINY_SIZES["hidden_size"],
        num_hidden_layers=TINY_SIZES["num_hidden_layers"],
        num_attention_heads=TINY_SIZES["num_attention_heads"],
        num_key_value_heads=TINY_SIZES["num_attention_heads"],
        intermediate_size=TINY_SIZES["intermediate_size"],
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def _build(model_cls, config, seed: int) -> PreTrainedModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.eval()  # like from_pretrained; Trainer switches to train mode itself
    return model


def tiny_model_for_sequence_classification(
    num_labels: int = 2, label_list: Sequence[str] | None = None, seed: int = 0, **overrides
) -> BertForSequenceClassification:
    """Tiny BERT with a sequence-classification head; ``label_list`` sets id2label/label2id."""
    return tiny_model("sequence-classification", num_labels, label_list, seed, **overrides)


def tiny_causal_lm(seed: int = 0, tokenizer: PreTrainedTokenizerBase | None = None, **overrides) -> LlamaForCausalLM:
    """Tiny decoder-only language model over the MiniLM vocabulary (see :func:`tiny_decoder_config`)."""
    return tiny_model("causal-lm", seed=seed, tokenizer=tokenizer, **overrides)


def tiny_model(
    task: str, num_labels: int = 2, label_list: Sequence[str] | None = None, seed: int = 0, **overrides
) -> PreTrainedModel:
    """The tiny model of any registered text task (name or alias): its ``AutoModelFor...`` class over
    the tiny decoder (causal LM) or the tiny BERT (every other head), with the task's config fields
    (labels, ``problem_type``) as :meth:`~ftrecipes.data.tasks.base.Task.config_overrides` sets them for
    ``label_list`` (or ``num_labels`` generic labels). ``overrides`` go to the config."""
    spec = get_task(task)
    if not spec.uses_tokenizer:
        raise ConfigError(
            "task",
            spec.name,
            "has no tiny text model",
            "build ftrecipes.models.cnn.SmallCNNForImageClassification for images",
        )
    if spec.auto_model == "AutoModelForCausalLM":
        config = tiny_decoder_config(overrides.pop("tokenizer", None), **overrides)
    else:
        labels = list(label_list) if label_list is not None else [f"LABEL_{i}" for i in range(num_labels)]
        fields = {
            **label_config_kwargs(labels),
            **spec.config_overrides(PreparedTask(spec.short, None, None, labels)),
            **overrides,
        }
        config = tiny_bert_config(num_labels=fields.pop("num_labels"), **fields)
    return _build(spec.auto_model_class().from_config, config, seed)


def tiny_classifier(seed: int = 0) -> BertForSequenceClassification:
    """The tiny two-class BERT over a 1,000-id vocabulary that :func:`synthetic_batches` feeds."""
    return tiny_model("sequence-classification", seed=seed, vocab_size=1000, max_position_embeddings=64)


def synthetic_batches(num_batches: int = 16, batch_size: int = 16, length: int = 16, seed: int = 0) -> list[dict]:
    """Dict batches of two classes whose token ids come from disjoint halves of ids 1..998 (a task a tiny
    classifier with ``vocab_size=1000`` learns in a few steps): what LR-finder and loop tests feed."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(num_batches):
        labels = torch.randint(0, 2, (batch_size,), generator=g)
        ids = torch.randint(1, 500, (batch_size, length), generator=g) + 499 * labels[:, None]
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels})
    return batches


def save_tiny_pretrained(
    output_dir: str | os.PathLike,
    task: str,
    num_labels: int = 2,
    label_list: Sequence[str] | None = None,
    seed: int = 0,
) -> str:
    """Write a tiny model and its tokenizer to ``output_dir`` so scripts can take it as ``--model_name_or_path``.

    The saved config names a head architecture, so give it the data's labels (a later load with a
    different ``num_labels`` is a head-size mismatch, see :func:`ftrecipes.data.tasks.check_label_count`).
    """
    output_dir = os.fspath(output_dir)
    tokenizer = tiny_wordpiece_tokenizer()
    vocabulary = (
        {"tokenizer": tokenizer}
        if get_task(task).auto_model == "AutoModelForCausalLM"
        else {"vocab_size": len(tokenizer)}
    )
    tiny_model(task, num_labels, label_list, seed, **vocabulary).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def save_tiny_base(output_dir: str | os.PathLike, seed: int = 0) -> str:
    """Write a tiny *base* BERT (no task head) and its tokenizer: like a pretrained checkpoint, it
    takes a fresh head of any size for sequence or token classification."""
    from transformers import BertModel

    output_dir = os.fspath(output_dir)
    tokenizer = tiny_wordpiece_tokenizer()
    _build(BertModel, tiny_bert_config(vocab_size=len(tokenizer)), seed).save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def write_topic_csv(path: str | os.PathLike, n: int, seed: int = 0) -> str:
    """A labelled ``text,label`` CSV of ``n`` rows of :data:`TOPIC_WORDS` (five topics, learnable in a few steps)."""
    import csv
    import random

    rng = random.Random(seed)
    labels = sorted(TOPIC_WORDS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(n):
            label = labels[i % len(labels)]
            writer.writerow([" ".join(rng.choice(TOPIC_WORDS[label]) for _ in range(rng.randint(5, 12))), label])
    return os.fspath(path)


def smoke_job(folder: str | os.PathLike, max_steps: int = 2) -> list[str]:
    """Write a tiny base model and small train/validation CSVs into ``folder``; returns the main job's
    flags that train on them offline in seconds (``ftrecipes train *smoke_job("smoke")``), output in
    ``folder/run``. What CI runs on an installed wheel, and a check that an install can train at all."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    model = save_tiny_base(os.path.join(folder, "tiny-base"))
    train = write_topic_csv(os.path.join(folder, "train.csv"), 48, seed=1)
    validation = write_topic_csv(os.path.join(folder, "validation.csv"), 16, seed=2)
    return [
        "--recipe",
        "cls",
        "--model_name_or_path",
        model,
        "--train_file",
        train,
        "--validation_file",
        validation,
        "--output_dir",
        os.path.join(folder, "run"),
        "--max_steps",
        str(max_steps),
        "--per_device_train_batch_size",
        "8",
        "--max_seq_length",
        "32",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--plots",
        "false",
    ]
