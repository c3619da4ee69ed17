"""Metrics as local ``evaluate`` modules, and Trainer ``compute_metrics`` functions built on them.

Each metric lives in ``ftrecipes/data/metrics/<name>/<name>.py`` and loads offline with
``evaluate.load(<that folder>)`` (``evaluate.load("accuracy")`` needs the Hub). :func:`list_metrics`
finds every folder; a task module builds its ``compute_metrics`` from its own. Among them:

* ``classification`` — accuracy, macro precision / recall / F1;
* ``ner`` — entity-level precision / recall / F1 (seqeval) and token accuracy;
* ``perplexity`` — ``exp(sum NLL / tokens)`` from summed losses and token counts.

For causal LM, :func:`compute_metrics_for` computes perplexity from per-sequence summed NLL. Pass
:func:`preprocess_logits_for_metrics_for` ``("clm")`` to the Trainer as
``preprocess_logits_for_metrics`` so that only two numbers per sequence (not the ``(N, T, vocab)``
logits) are kept in memory across the evaluation; without it the function still works from the full
logits. This is exact token-weighted perplexity; ``exp(eval_loss)`` (:func:`perplexity_from_loss`)
is the cheaper approximation, exact only when every batch scores the same number of tokens.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ftrecipes.config.errors import ConfigError, did_you_mean

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent
IGNORE_INDEX = -100


def list_metrics() -> list[str]:
    """Names of the shipped metric modules."""
    return sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def metric_path(name: str) -> str:
    """Folder of a shipped metric, the argument ``evaluate.load`` takes."""
    if name not in list_metrics():
        raise ConfigError(
            "--metric",
            name,
            "is not a shipped metric",
            f"{did_you_mean(name, list_metrics())} use one of {', '.join(list_metrics())}".strip(),
        )
    return str(METRICS_DIR / name)


def load_metric(name: str, **kwargs):
    """Load a shipped metric with ``evaluate.load`` (offline), ``keep_in_memory=True`` by default.

    ``keep_in_memory`` keeps evaluate from writing Arrow cache files and lock files, so nothing is
    written next to a read-only install or raced by parallel runs. evaluate copies the module file
    into ``HF_MODULES_CACHE`` (skipping the copy when its hash is already there, so loading twice is
    fine); if that cache cannot be written, the module is imported straight from the package.
    """
    import evaluate

    path = metric_path(name)
    kwargs.setdefault("keep_in_memory", True)
    try:
        return evaluate.load(path, **kwargs)
    except PermissionError as err:
        logger.warning("evaluate could not write its modules cache (%s); importing %s directly", err, path)
        return _import_metric(name, **kwargs)


def _import_metric(name: str, **kwargs):
    """Import a metric module from the package folder and instantiate its ``evaluate.Metric``."""
    import evaluate

    file = METRICS_DIR / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"ftrecipes_metric_{name}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, evaluate.Metric) and v is not evaluate.Metric
    ]
    kwargs.pop("module_type", None)
    return classes[0](**kwargs)


# -----------------------------------------------------------------------------------------------
# Trainer compute_metrics
# -----------------------------------------------------------------------------------------------


def unpack_eval_pred(eval_pred):
    """``(predictions, label_ids)`` from an ``EvalPrediction`` or a tuple; first item of tuple outputs."""
    if isinstance(eval_pred, tuple):
        predictions, labels = eval_pred[0], eval_pred[1]
    else:
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]  # models that also return hidden states / attentions
    return np.asarray(predictions), np.asarray(labels)


def _classification_fn(metric) -> Callable:
    def compute_metrics(eval_pred) -> dict[str, float]:
        logits, labels = unpack_eval_pred(eval_pred)
        predictions = logits.argmax(-1) if logits.ndim > 1 else logits
        keep = labels != IGNORE_INDEX  # unlabeled rows (e.g. a test split) do not count
        return metric.compute(predictions=predictions[keep], references=labels[keep])

    return compute_metrics


def _ner_fn(metric, id2label: Mapping[int, str], **metric_kwargs) -> Callable:
    id2label = {int(k): v for k, v in id2label.items()}

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits, labels = unpack_eval_pred(eval_pred)
        predictions = logits.argmax(-1) if logits.ndim == 3 else logits
        pred_tags, ref_tags = [], []
        for pred_row, label_row in zip(predictions, labels):
            # -100 marks special tokens, non-first sub-tokens and batch padding: not words.
            keep = label_row != IGNORE_INDEX
            pred_tags.append([id2label[int(p)] for p in pred_row[keep]])
            ref_tags.append([id2label[int(r)] for r in label_row[keep]])
        scores = metric.compute(predictions=pred_tags, references=ref_tags, **metric_kwargs)
        # Trainer logs flat scalars; per-type dicts are left out here (compute the metric directly for them).
        return {
            "precision": scores["overall_precision"],
            "recall": scores["overall_recall"],
            "f1": scores["overall_f1"],
            "accuracy": scores["overall_accuracy"],
        }

    return compute_metrics


def _nll_per_sequence(logits, labels):
    """Summed next-token NLL and scored-token count per sequence (labels shifted like HF causal LMs)."""
    import torch

    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels)
    shift_logits = logits[..., :-1, :].float()
    shift_labels = labels[..., 1:]
    nll = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(shift_labels.shape)
    mask = shift_labels != IGNORE_INDEX
    return torch.stack([(nll * mask).sum(-1).double(), mask.sum(-1).double()], dim=-1)


def preprocess_logits_for_metrics_clm(logits, labels):
    """Trainer hook: reduce ``(batch, T, vocab)`` logits to ``(batch, 2)`` = [summed NLL, tokens]."""
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    return _nll_per_sequence(logits, labels)


def _clm_fn(metric) -> Callable:
    def compute_metrics(eval_pred) -> dict[str, float]:
        predictions, labels = unpack_eval_pred(eval_pred)
        if predictions.ndim == 3:  # full logits: no preprocess_logits_for_metrics was given
            pairs = _nll_per_sequence(predictions, labels).numpy()
        else:
            pairs = predictions.reshape(-1, 2)
        scores = metric.compute(nll_sums=pairs[:, 0], token_counts=pairs[:, 1].round().astype(np.int64))
        return {"perplexity": scores["perplexity"], "mean_nll": scores["mean_nll"]}

    return compute_metrics


def classification_metrics() -> Callable:
    """``compute_metrics`` for one class per row: argmax of the logits; accuracy, f1, precision, recall
    (macro); rows labelled -100 skipped."""
    return _classification_fn(load_metric("classification"))


def ner_metrics(id2label: Mapping[int, str] | None, **metric_kwargs) -> Callable:
    """``compute_metrics`` for token classification: argmax per token, -100 positions dropped, ids
    mapped to tags with ``id2label`` (required); entity-level precision, recall, f1 and token accuracy.
    ``metric_kwargs`` (e.g. ``mode="strict", scheme="IOB2"``) go to the metric."""
    if not id2label:
        raise ConfigError(
            "id2label",
            id2label,
            "token classification metrics need the tag names",
            "pass id2label from the prepared task",
        )
    return _ner_fn(load_metric("ner"), id2label, **metric_kwargs)


def perplexity_metrics() -> Callable:
    """``compute_metrics`` for causal LM: perplexity and mean NLL per token, from the pairs made by
    :func:`preprocess_logits_for_metrics_clm` or from full logits."""
    return _clm_fn(load_metric("perplexity"))


def compute_metrics_for(task: str, id2label: Mapping[int, str] | None = None, **metric_kwargs) -> Callable | None:
    """The Trainer ``compute_metrics(eval_pred) -> dict`` of a registered task (any name or alias):
    what :meth:`ftrecipes.data.tasks.base.Task.compute_metrics` returns. ``id2label`` is needed by ``ner``."""
    from ftrecipes.data.tasks import get_task

    task = get_task(task)
    if id2label is not None:
        metric_kwargs["id2label"] = id2label
    return task.compute_metrics(None, **metric_kwargs)


def preprocess_logits_for_metrics_for(task: str) -> Callable | None:
    """The Trainer ``preprocess_logits_for_metrics`` hook that goes with :func:`compute_metrics_for`
    (``None`` where the logits are small enough to keep; for ``clm`` per-sequence [summed NLL, tokens])."""
    from ftrecipes.data.tasks import get_task

    return get_task(task).preprocess_logits_for_metrics()


def perplexity_from_loss(loss: float) -> float:
    """``exp(loss)`` for a mean token NLL (e.g. Trainer's ``eval_loss``), ``inf`` on overflow."""
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")
