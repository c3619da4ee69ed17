"""Shipped evaluate metric modules: offline loading, values worked by hand, Trainer compute_metrics."""

import math
import os
import shutil
import stat

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

import evaluate  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ftrecipes.config.errors import ConfigError  # noqa: E402
from ftrecipes.data import metrics  # noqa: E402

# ------------------------------------------------------------------ loading


def test_shipped_metrics():
    assert metrics.list_metrics() == ["classification", "ner", "perplexity", "regression"]


@pytest.mark.parametrize("name", ["classification", "ner", "perplexity"])
def test_load_twice_offline(name):
    first = metrics.load_metric(name)
    second = metrics.load_metric(name)  # the modules cache already holds the copy
    assert isinstance(first, evaluate.Metric) and type(first).__name__ == type(second).__name__


def test_evaluate_load_from_read_only_copy(tmp_path):
    # A read-only install: evaluate only reads the module file and copies it to its own cache.
    copy = tmp_path / "site" / "classification"
    shutil.copytree(metrics.metric_path("classification"), copy)
    for path in (copy / "classification.py", copy):
        path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        for _ in range(2):
            metric = evaluate.load(str(copy), keep_in_memory=True)
            assert metric.compute(predictions=[1, 0], references=[1, 1])["accuracy"] == 0.5
    finally:
        copy.chmod(stat.S_IRWXU)


def test_falls_back_to_direct_import_when_cache_is_not_writable(monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only modules cache")

    monkeypatch.setattr(evaluate, "load", refuse)
    metric = metrics.load_metric("perplexity")
    assert metric.compute(nll_sums=[3.0], token_counts=[3])["perplexity"] == pytest.approx(math.e)


def test_unknown_metric():
    with pytest.raises(ConfigError, match="^--metric='acuracy'"):
        metrics.load_metric("acuracy")


# ------------------------------------------------------------------ classification

REFS = [0, 0, 0, 1, 1, 2]
PREDS = [0, 0, 1, 1, 2, 2]
# Worked by hand:
#   class 0: TP 2, predicted 2, actual 3 -> P 1,   R 2/3, F1 0.8
#   class 1: TP 1, predicted 2, actual 2 -> P 1/2, R 1/2, F1 1/2
#   class 2: TP 1, predicted 2, actual 1 -> P 1/2, R 1,   F1 2/3
HAND = {
    "accuracy": 4 / 6,
    "precision": (1 + 0.5 + 0.5) / 3,
    "recall": (2 / 3 + 0.5 + 1) / 3,
    "f1": (0.8 + 0.5 + 2 / 3) / 3,
}


def test_classification_hand_computed():
    scores = metrics.load_metric("classification").compute(predictions=PREDS, references=REFS)
    assert scores == pytest.approx(HAND)


def test_classification_matches_sklearn_with_absent_class():
    from sklearn.metrics import f1_score, precision_score, recall_score

    refs = [0, 1, 1, 3, 3, 3, 0]
    preds = [0, 1, 2, 3, 1, 3, 3]  # class 2 predicted but never true: precision 0 for it
    scores = metrics.load_metric("classification").compute(predictions=preds, references=refs)
    assert scores["f1"] == pytest.approx(f1_score(refs, preds, average="macro", zero_division=0))
    assert scores["precision"] == pytest.approx(precision_score(refs, preds, average="macro", zero_division=0))
    assert scores["recall"] == pytest.approx(recall_score(refs, preds, average="macro", zero_division=0))


# ------------------------------------------------------------------ NER

NER_REFS = [["B-per", "I-per", "O", "B-loc"], ["O", "B-loc", "I-loc", "O"]]
NER_PREDS = [["B-per", "I-per", "O", "B-org"], ["B-per", "B-loc", "O", "O"]]
# Worked by hand:
#   reference entities: per(s1 0-1), loc(s1 3), loc(s2 1-2)                 -> 3
#   predicted entities: per(s1 0-1), org(s1 3), per(s2 0), loc(s2 1-1)      -> 4
#   exact matches (type and both boundaries): per(s1 0-1) only             -> 1
#   P = 1/4, R = 1/3, F1 = 2PR/(P+R) = 2/7; tokens right: 3/4 + 2/4 -> 5/8


def test_ner_entity_scores_hand_computed():
    scores = metrics.load_metric("ner").compute(predictions=NER_PREDS, references=NER_REFS)
    assert scores["overall_precision"] == pytest.approx(1 / 4)
    assert scores["overall_recall"] == pytest.approx(1 / 3)
    assert scores["overall_f1"] == pytest.approx(2 / 7)
    assert scores["overall_accuracy"] == pytest.approx(5 / 8)
    assert scores["per"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "number": 1})
    assert scores["loc"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 2})
    assert scores["org"]["number"] == 0


def test_ner_strict_mode_rejects_dangling_inside_tag():
    refs, preds = [["I-loc", "O"]], [["I-loc", "O"]]
    ner = metrics.load_metric("ner")
    assert ner.compute(predictions=preds, references=refs)["overall_f1"] == 1.0  # CoNLL: I- starts a span
    strict = ner.compute(predictions=[["B-loc", "O"]], references=[["B-loc", "I-loc"]], mode="strict", scheme="IOB2")
    assert strict["overall_f1"] == 0.0


def test_ner_hyphenated_types():
    scores = metrics.load_metric("ner").compute(
        predictions=[["B-geo-loc", "I-geo-loc"]], references=[["B-geo-loc", "I-geo-loc"]]
    )
    assert scores["geo-loc"]["f1"] == 1.0


# ------------------------------------------------------------------ perplexity


def test_perplexity_from_sums_and_mean_loss():
    ppl = metrics.load_metric("perplexity")
    scores = ppl.compute(nll_sums=[2.0, 4.0], token_counts=[2, 4])
    assert scores == pytest.approx({"perplexity": math.e, "mean_nll": 1.0, "num_tokens": 6})
    # Token-weighted, not a mean of per-row perplexities: (0 + 6) / (1 + 2) = 2 nats per token.
    assert ppl.compute(nll_sums=[0.0, 6.0], token_counts=[1, 2])["perplexity"] == pytest.approx(math.exp(2))
    assert ppl.compute(nll_sums=[2.5], token_counts=[1])["perplexity"] == pytest.approx(math.exp(2.5))
    assert ppl.compute(nll_sums=[1e4], token_counts=[1])["perplexity"] == float("inf")
    assert metrics.perplexity_from_loss(2.5) == pytest.approx(math.exp(2.5))


def test_regression_matches_scipy_with_ties_and_is_nan_when_undefined():
    stats = pytest.importorskip("scipy.stats")
    metric = metrics.load_metric("regression")
    rng = np.random.default_rng(0)
    refs = rng.normal(size=40).round(0)  # many ties
    preds = (refs + rng.normal(size=40)).round(1)
    scores = metric.compute(predictions=preds, references=refs)
    assert scores["pearson"] == pytest.approx(stats.pearsonr(preds, refs)[0], abs=1e-12)
    assert scores["spearmanr"] == pytest.approx(stats.spearmanr(preds, refs)[0], abs=1e-12)
    assert scores["mse"] == pytest.approx(float(np.mean((preds - refs) ** 2)))
    assert metric.compute(predictions=[1.0, 2.0, 4.0], references=[1.0, 2.0, 3.0])["spearmanr"] == 1.0
    assert math.isnan(metric.compute(predictions=[2.0, 2.0, 2.0], references=[1.0, 2.0, 3.0])["pearson"])


# ------------------------------------------------------------------ Trainer compute_metrics


def _one_hot_logits(ids, num_classes):
    return np.eye(num_classes, dtype=np.float32)[np.asarray(ids)] * 5.0


def test_compute_metrics_cls_drops_unlabeled_rows():
    compute = metrics.compute_metrics_for("cls")
    logits = _one_hot_logits(PREDS + [2], 3)
    labels = np.array(REFS + [-100])
    assert compute((logits, labels)) == pytest.approx(HAND)
    assert compute(((logits, np.zeros((7, 4))), labels)) == pytest.approx(HAND)  # tuple model outputs


def test_compute_metrics_ner_maps_ids_and_drops_ignored():
    id2label = {0: "O", 1: "B-per", 2: "I-per", 3: "B-loc", 4: "I-loc", 5: "B-org"}
    ids = {v: k for k, v in id2label.items()}
    # As Trainer hands them over: special tokens, continuation sub-tokens and padding labelled -100
    # (their predictions are arbitrary and must not count).
    labels = np.full((2, 7), -100)
    preds = np.full((2, 7), ids["B-org"])
    labels[0, 1:5] = [ids[t] for t in NER_REFS[0]]
    preds[0, 1:5] = [ids[t] for t in NER_PREDS[0]]
    labels[1, [1, 2, 4, 5]] = [ids[t] for t in NER_REFS[1]]  # position 3 is a "##" sub-token
    preds[1, [1, 2, 4, 5]] = [ids[t] for t in NER_PREDS[1]]
    compute = metrics.compute_metrics_for("ner", id2label)
    scores = compute((_one_hot_logits(preds, 6), labels))
    assert scores == pytest.approx({"precision": 1 / 4, "recall": 1 / 3, "f1": 2 / 7, "accuracy": 5 / 8})
    with pytest.raises(ConfigError, match="^id2label"):
        metrics.compute_metrics_for("ner")


def test_compute_metrics_regression_flattens_the_single_output():
    compute = metrics.compute_metrics_for("regression")
    labels = np.array([0.5, 1.5, 3.0, 4.0], dtype=np.float32)
    scores = compute((labels[:, None] * 2, labels))  # (N, 1) logits, as the num_labels=1 head returns them
    assert scores["pearson"] == pytest.approx(1.0) and scores["spearmanr"] == pytest.approx(1.0)
    assert scores["mse"] == pytest.approx(float(np.mean(labels**2)))
    assert metrics.preprocess_logits_for_metrics_for("regression") is None


def test_compute_metrics_clm_hook_and_full_logits_agree():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    labels = torch.randint(0, 11, (3, 5))
    labels[2, 3:] = -100
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    compute = metrics.compute_metrics_for("clm")
    hook = metrics.preprocess_logits_for_metrics_for("clm")
    assert metrics.preprocess_logits_for_metrics_for("cls") is None
    pairs = hook(logits, labels)
    assert pairs.shape == (3, 2) and pairs[:, 1].tolist() == [4, 4, 2]
    from_pairs = compute((pairs.numpy(), labels.numpy()))
    from_logits = compute((logits.numpy(), labels.numpy()))
    assert from_pairs["mean_nll"] == pytest.approx(expected.item(), rel=1e-5)
    assert from_pairs["perplexity"] == pytest.approx(math.exp(expected.item()), rel=1e-5)
    assert from_logits == pytest.approx(from_pairs, rel=1e-6)


def test_trainer_evaluate_clm_perplexity_matches_eval_loss(tmp_path):
    from datasets import Dataset, DatasetDict
    from transformers import Trainer, TrainingArguments

    from ftrecipes import testing
    from ftrecipes.data.tasks.causal_lm import preprocess_causal_lm

    tokenizer = testing.tiny_tokenizer()
    raw = DatasetDict({"validation": Dataset.from_dict({"text": ["the quick brown fox jumps over the lazy dog " * 6]})})
    prepared = preprocess_causal_lm(raw, tokenizer, block_size=8)
    n = len(prepared.datasets["validation"]) // 4 * 4  # whole batches: eval_loss is then an exact token mean
    trainer = Trainer(
        model=testing.tiny_causal_lm(seed=0),
        args=TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to=[], use_cpu=True),
        eval_dataset=prepared.datasets["validation"].select(range(n)),
        data_collator=prepared.data_collator,
        compute_metrics=metrics.compute_metrics_for("clm"),
        preprocess_logits_for_metrics=metrics.preprocess_logits_for_metrics_for("clm"),
    )
    result = trainer.evaluate()
    assert result["eval_perplexity"] == pytest.approx(math.exp(result["eval_loss"]), rel=1e-4)
    assert result["eval_perplexity"] > 1000  # untrained over a 30k vocabulary: close to uniform


def test_trainer_evaluate_cls_reports_metrics(tmp_path):
    from transformers import Trainer, TrainingArguments

    from ftrecipes import testing
    from ftrecipes.data import loading as data
    from ftrecipes.data import tasks

    raw = data.load_raw_datasets("bbc_news", max_train_samples=8, max_eval_samples=12)
    prepared = tasks.prepare_task("cls", raw, testing.tiny_tokenizer(), max_seq_length=32)
    trainer = Trainer(
        model=testing.tiny_model("cls", label_list=prepared.label_list),
        args=TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=5, report_to=[], use_cpu=True),
        eval_dataset=prepared.datasets["validation"],
        data_collator=prepared.data_collator,
        compute_metrics=metrics.compute_metrics_for("cls"),
    )
    result = trainer.evaluate()
    predictions = trainer.predict(prepared.datasets["validation"])
    expected = np.mean(predictions.predictions.argmax(-1) == np.asarray(prepared.datasets["validation"]["labels"]))
    assert result["eval_accuracy"] == pytest.approx(expected)
    assert {"eval_f1", "eval_precision", "eval_recall"} <= set(result)
