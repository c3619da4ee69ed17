"""Task preprocessing, collators, label checks and the tiny test models."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value  # noqa: E402
from transformers import BertConfig  # noqa: E402

from ftrecipes import testing  # noqa: E402
from ftrecipes.config.errors import ConfigError  # noqa: E402
from ftrecipes.data import loading as data
from ftrecipes.data import tasks
from ftrecipes.data.tasks import IGNORE_INDEX  # noqa: E402
from ftrecipes.data.tasks.causal_lm import preprocess_causal_lm  # noqa: E402
from ftrecipes.data.tasks.sequence_classification import preprocess_sequence_classification  # noqa: E402
from ftrecipes.data.tasks.token_classification import preprocess_token_classification  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer():
    return testing.tiny_tokenizer()


def _dd(**splits):
    return DatasetDict({name: Dataset.from_dict(cols) for name, cols in splits.items()})


# ------------------------------------------------------------------ sequence classification


def test_cls_bundled_single_text(tokenizer):
    raw = data.load_raw_datasets("bbc_news", max_train_samples=32, max_eval_samples=8)
    prepared = tasks.prepare_task("cls", raw, tokenizer, max_seq_length=48)
    assert prepared.label_list == ["business", "entertainment", "politics", "sports", "tech"]
    assert prepared.id2label[3] == "sports" and prepared.label2id["tech"] == 4
    train = prepared.datasets["train"]
    assert set(train.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert list(train["labels"]) == list(raw["train"]["label"])  # ClassLabel ids pass through in order
    lengths = [len(ids) for ids in train["input_ids"]]
    assert max(lengths) == 48  # news articles are long: truncated to max_seq_length
    batch = prepared.data_collator([train[i] for i in range(4)])
    assert batch["input_ids"].shape == (4, 48) and batch["labels"].shape == (4,)


def test_cls_pairs_and_string_labels(tokenizer):
    raw = _dd(
        train={
            "premise": ["a cat", "a dog sat", "hi"],
            "hypothesis": ["an animal", "x", "hello there"],
            "gold": ["yes", "no", "yes"],
        },
        validation={"premise": ["a"], "hypothesis": ["b"], "gold": ["no"]},
    )
    prepared = preprocess_sequence_classification(
        raw, tokenizer, text_column_name="premise", text_pair_column_name="hypothesis", label_column_name="gold"
    )
    assert prepared.label_list == ["no", "yes"]
    assert list(prepared.datasets["train"]["labels"]) == [1, 0, 1]
    row = prepared.datasets["train"][0]
    assert tokenizer.convert_ids_to_tokens(row["input_ids"]) == ["[CLS]", "a", "cat", "[SEP]", "an", "animal", "[SEP]"]
    assert row["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    # Dynamic padding: a batch pads to its own longest row, not to max_seq_length.
    batch = prepared.data_collator([prepared.datasets["train"][i] for i in range(3)])
    assert batch["input_ids"].shape == (3, 7)  # rows are 7, 7 and 6 tokens long
    assert batch["attention_mask"][2].tolist() == [1] * 6 + [0]


def test_cls_integer_labels_sorted_numerically(tokenizer):
    raw = _dd(train={"text": ["a", "b", "c", "d"], "label": [10, 2, 2, 10]}, validation={"text": ["e"], "label": [2]})
    prepared = preprocess_sequence_classification(raw, tokenizer)
    assert prepared.label_list == ["2", "10"]
    assert list(prepared.datasets["train"]["labels"]) == [1, 0, 0, 1]
    assert list(prepared.datasets["validation"]["labels"]) == [0]


def test_cls_unlabeled_test_split(tokenizer):
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    raw = DatasetDict(
        {
            "train": Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}, features=features),
            "validation": Dataset.from_dict({"text": ["fine"], "label": [1]}, features=features),
            # GLUE-style test split: ClassLabel -1 means "no label".
            "test": Dataset.from_dict({"text": ["?", "!"], "label": [-1, 0]}, features=features),
            "predict": Dataset.from_dict({"text": ["no label column"]}),
        }
    )
    prepared = preprocess_sequence_classification(raw, tokenizer)
    assert list(prepared.datasets["test"]["labels"]) == [IGNORE_INDEX, 0]
    assert "labels" not in prepared.datasets["predict"].column_names


def test_cls_unseen_validation_label(tokenizer):
    raw = _dd(train={"text": ["a", "b"], "label": ["pos", "neg"]}, validation={"text": ["c"], "label": ["neutral"]})
    with pytest.raises(ConfigError) as excinfo:
        preprocess_sequence_classification(raw, tokenizer)
    assert str(excinfo.value).startswith("--label_column_name='label'") and "neutral" in str(excinfo.value)


def test_cls_single_class_and_float_labels(tokenizer):
    with pytest.raises(ConfigError, match="^--label_column_name.*at least 2"):
        preprocess_sequence_classification(_dd(train={"text": ["a", "b"], "label": ["x", "x"]}), tokenizer)
    with pytest.raises(ConfigError, match="^--label_column_name.*regression"):
        preprocess_sequence_classification(_dd(train={"text": ["a", "b"], "label": [0.5, 1.5]}), tokenizer)


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"text_column_name": "sentence"}, "--text_column_name"),
        ({"text_pair_column_name": "sentence2"}, "--text_pair_column_name"),
        ({"label_column_name": "labels"}, "--label_column_name"),
    ],
)
def test_cls_missing_column_lists_available(tokenizer, kwargs, flag):
    raw = _dd(train={"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(ConfigError) as excinfo:
        preprocess_sequence_classification(raw, tokenizer, **kwargs)
    message = str(excinfo.value)
    assert message.startswith(flag + "=")
    assert "columns: text, label" in message


def test_max_seq_length_must_be_positive(tokenizer):
    raw = _dd(train={"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(ConfigError, match="^--max_seq_length=0"):
        preprocess_sequence_classification(raw, tokenizer, max_seq_length=0)


# ------------------------------------------------------------------ token classification

WORDS = ["Empire", "State", "Building", "=", "ESB", "@paulwalk"]
TAGS = ["B-facility", "I-facility", "I-facility", "O", "B-facility", "O"]
# Worked by hand with the MiniLM WordPiece vocabulary:
#   [CLS] empire state building = es ##b @ paul ##walk [SEP]
#   word:  -    0     1      2    3  4   4  5   5     5     -
SUBTOKENS = ["[CLS]", "empire", "state", "building", "=", "es", "##b", "@", "paul", "##walk", "[SEP]"]


@pytest.mark.parametrize(
    "label_all_tokens, expected",
    [
        # label list is ["B-facility", "I-facility", "O"] (sorted strings): B=0, I=1, O=2
        (False, [-100, 0, 1, 1, 2, 0, -100, 2, -100, -100, -100]),
        # continuation sub-tokens copy the word's label, with B- turned into I- ("##b" -> I-facility)
        (True, [-100, 0, 1, 1, 2, 0, 1, 2, 2, 2, -100]),
    ],
)
def test_ner_subword_alignment_hand_checked(tokenizer, label_all_tokens, expected):
    raw = _dd(train={"tokens": [WORDS], "ner_tags": [TAGS]})
    prepared = preprocess_token_classification(raw, tokenizer, label_all_tokens=label_all_tokens)
    assert prepared.label_list == ["B-facility", "I-facility", "O"]
    row = prepared.datasets["train"][0]
    assert tokenizer.convert_ids_to_tokens(row["input_ids"]) == SUBTOKENS
    assert row["labels"] == expected


def test_ner_bundled_and_collator(tokenizer):
    raw = data.load_raw_datasets("wnut_ner", max_train_samples=40, max_eval_samples=10)
    prepared = tasks.prepare_task("ner", raw, tokenizer, max_seq_length=128)
    assert prepared.num_labels == 21 and prepared.label_list[0] == "O"
    train = prepared.datasets["train"]
    for words, tags, labels in zip(raw["train"]["tokens"], raw["train"]["ner_tags"], train["labels"]):
        kept = [label for label in labels if label != IGNORE_INDEX]
        # One label per word (first sub-token), in order, none lost (these tweets fit in 128 tokens).
        assert kept == list(tags), words
    batch = prepared.data_collator([train[i] for i in range(3)])
    longest = max(len(train[i]["input_ids"]) for i in range(3))
    assert batch["labels"].shape == (3, longest)
    shortest = min(range(3), key=lambda i: len(train[i]["input_ids"]))
    assert batch["labels"][shortest, -1].item() == IGNORE_INDEX  # label padding is -100, not 0


def test_ner_truncation(tokenizer):
    raw = _dd(train={"tokens": [WORDS * 10], "ner_tags": [TAGS * 10]})
    prepared = preprocess_token_classification(raw, tokenizer, max_seq_length=16)
    assert len(prepared.datasets["train"][0]["labels"]) == 16


def test_ner_errors(tokenizer):
    raw = _dd(train={"tokens": [WORDS], "ner_tags": [TAGS[:-1]]})
    with pytest.raises(ConfigError, match="^--label_column_name='ner_tags'.*6 tokens but 5 tags"):
        preprocess_token_classification(raw, tokenizer)
    with pytest.raises(ConfigError, match="^--text_column_name='words'.*columns: tokens, ner_tags"):
        preprocess_token_classification(
            _dd(train={"tokens": [WORDS], "ner_tags": [TAGS]}), tokenizer, text_column_name="words"
        )

    class SlowTokenizer:
        is_fast = False
        name_or_path = "slow-model"

    with pytest.raises(ConfigError, match="^--model_name_or_path='slow-model'.*fast tokenizer"):
        preprocess_token_classification(_dd(train={"tokens": [WORDS], "ner_tags": [TAGS]}), SlowTokenizer())


# ------------------------------------------------------------------ causal LM


def test_clm_blocks_hand_checked(tokenizer):
    raw = _dd(train={"text": ["a b c", "", "d e"]})
    prepared = preprocess_causal_lm(raw, tokenizer, block_size=4)
    train = prepared.datasets["train"]
    # "[CLS] a b c [SEP]" + "[CLS] d e [SEP]" = 9 tokens -> 2 blocks of 4, the last token dropped;
    # the empty line is skipped rather than adding "[CLS] [SEP]".
    assert [tokenizer.convert_ids_to_tokens(ids) for ids in train["input_ids"]] == [
        ["[CLS]", "a", "b", "c"],
        ["[SEP]", "[CLS]", "d", "e"],
    ]
    assert list(train["labels"]) == list(train["input_ids"])
    assert set(train.column_names) == {"input_ids", "attention_mask", "labels"}


def test_clm_bundled_block_shapes(tokenizer):
    raw = data.load_raw_datasets("bbc_news", max_train_samples=20, max_eval_samples=5)
    prepared = tasks.prepare_task("clm", raw, tokenizer, block_size=64)
    for split in ("train", "validation"):
        ds = prepared.datasets[split]
        assert len(ds) > 5
        assert all(len(ids) == 64 for ids in ds["input_ids"])
        total = sum(len(tokenizer(t)["input_ids"]) for t in raw[split]["text"])
        assert len(ds) == total // 64  # fewer than 1,000 rows: one concatenation, one dropped tail
    batch = prepared.data_collator([prepared.datasets["train"][i] for i in range(4)])
    assert batch["input_ids"].shape == (4, 64)
    assert torch.equal(batch["labels"], batch["input_ids"])


def test_clm_block_larger_than_data(tokenizer):
    raw = _dd(train={"text": ["tiny text"]})
    with pytest.raises(ConfigError, match="^--block_size=256: the 'train' split has 4 tokens"):
        preprocess_causal_lm(raw, tokenizer, block_size=256)


def test_clm_block_size_clamped_to_tokenizer(tokenizer):
    raw = _dd(train={"text": ["word " * 1200]})
    prepared = preprocess_causal_lm(raw, tokenizer, block_size=4096)
    assert len(prepared.datasets["train"][0]["input_ids"]) == tokenizer.model_max_length == 512


# ------------------------------------------------------------------ regression


def test_regression_keeps_float_targets_and_pads_them_as_floats(tokenizer):
    raw = _dd(
        train={
            "sentence1": ["a cat", "a dog", "two birds"],
            "sentence2": ["the cat", "one dog", "birds"],
            "label": [4.5, 2, 0.25],
        },
        test={"sentence1": ["x", "y"], "sentence2": ["x", "z"], "label": [-1.0, -1.0]},
    )
    prepared = tasks.prepare_task("regression", raw, tokenizer, max_seq_length=16)
    assert prepared.task == "regression" and prepared.label_list is None
    assert prepared.datasets["train"]["labels"] == [4.5, 2.0, 0.25]
    # GLUE-style test split: one constant marker value is not a target, so the split is not scored.
    assert "labels" not in prepared.datasets["test"].column_names
    first = prepared.datasets["train"][0]
    assert tokenizer.decode(first["input_ids"]).count("[SEP]") == 2  # sentence1/sentence2 become a pair
    batch = prepared.data_collator([prepared.datasets["train"][i] for i in range(3)])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [4.5, 2.0, 0.25]
    fields = tasks.get_task("regression").config_overrides(prepared)
    assert fields["num_labels"] == 1 and fields["problem_type"] == "regression"


def test_regression_bad_targets_name_the_column(tokenizer):
    with pytest.raises(ConfigError, match=r"^--label_column_name='label': the 'train' split holds 'pos'.*--recipe cls"):
        tasks.prepare_task("regression", _dd(train={"text": ["a", "b"], "label": ["pos", "neg"]}), tokenizer)
    with pytest.raises(ConfigError, match=r"^--label_column_name='label': has missing targets in the 'validation'"):
        tasks.prepare_task(
            "regression",
            _dd(train={"text": ["a", "b"], "label": [1.0, 2.0]}, validation={"text": ["c"], "label": [None]}),
            tokenizer,
        )
    with pytest.raises(ConfigError, match=r"^--label_column_name='label': has a single value"):
        tasks.prepare_task("regression", _dd(train={"text": ["a", "b"], "label": [1.0, 1.0]}), tokenizer)


def test_tiny_regression_model_trains_with_mse():
    model = testing.tiny_model("regression")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"
    ids = torch.randint(1, 100, (4, 6))
    labels = torch.tensor([0.0, 1.0, 2.0, 3.0])
    out = model(input_ids=ids, labels=labels)
    assert out.logits.shape == (4, 1)
    assert out.loss.item() == pytest.approx(
        torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels).item(), rel=1e-6
    )


# ------------------------------------------------------------------ the registry


def test_registry_is_the_one_list_of_tasks():
    from ftrecipes.config.recipe import TASKS

    assert TASKS == tasks.task_names() == tuple(tasks.REGISTRY)
    assert set(TASKS) == {
        "sequence-classification",
        "token-classification",
        "causal-lm",
        "image-classification",
        "regression",
    }
    for spec in tasks.REGISTRY.values():
        assert tasks.get_task(spec.short) is spec and tasks.get_task(spec.name.replace("-", "_")) is spec
        assert spec.metric_for_best_model in spec.metric_names  # the default is a metric the task reports
        assert hasattr(__import__("transformers"), spec.auto_model)
    assert tasks.normalize_task("text-classification") == "cls" and tasks.normalize_task("text-generation") == "clm"


def test_flags_of_each_task_exist_as_finetune_flags():
    import dataclasses
    import inspect

    from ftrecipes.config.recipe import Recipe
    from ftrecipes.job.parse import ScriptArguments

    known = {f.name for f in dataclasses.fields(ScriptArguments)} | {f.name for f in dataclasses.fields(Recipe)}
    for spec in tasks.REGISTRY.values():
        assert set(spec.flags) <= known, spec
        assert set(spec.flags.values()) <= set(inspect.signature(spec.preprocess).parameters), spec


# ------------------------------------------------------------------ dispatcher and label checks


def test_prepare_task_errors(tokenizer):
    raw = _dd(train={"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(ConfigError, match="^--task='clasify'.*did you mean"):
        tasks.prepare_task("clasify", raw, tokenizer)
    with pytest.raises(ConfigError, match="^--block_size=128: does not apply to task 'cls'"):
        tasks.prepare_task("cls", raw, tokenizer, block_size=128)
    # Unset (None) and off (False) flags of other tasks pass through silently.
    prepared = tasks.prepare_task("text-classification", raw, tokenizer, block_size=None, label_all_tokens=False)
    assert prepared.task == "cls"


def test_check_label_count():
    labels = ["a", "b", "c", "d", "e"]
    tasks.check_label_count(labels, BertConfig(**tasks.label_config_kwargs(labels)))
    with pytest.raises(
        ConfigError, match="^--model_name_or_path='my-model': has a head with num_labels=2 but the data has 5"
    ):
        tasks.check_label_count(labels, BertConfig(num_labels=2), model_name_or_path="my-model")
    # A fine-tuned head of another size would be replaced or fail to load: error, naming the fix.
    finetuned = BertConfig(num_labels=7, architectures=["BertForSequenceClassification"])
    with pytest.raises(ConfigError, match="ignore_mismatched_sizes"):
        tasks.check_label_count(labels, finetuned, model_name_or_path="ckpt")
    tasks.check_label_count(labels, BertConfig(num_labels=7, architectures=["BertModel"]))  # base: no head to clash


# ------------------------------------------------------------------ tiny models


def test_tiny_models_are_tiny_and_deterministic(tokenizer):
    rng_before = torch.get_rng_state()
    a = testing.tiny_model("cls", label_list=["x", "y", "z"], seed=1)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is untouched
    b = testing.tiny_model("cls", label_list=["x", "y", "z"], seed=1)
    c = testing.tiny_model("cls", label_list=["x", "y", "z"], seed=2)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    cfg = a.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (32, 2, 4, 64)
    assert cfg.id2label == {0: "x", 1: "y", 2: "z"} and cfg.num_labels == 3
    assert sum(p.numel() for p in a.parameters()) < 1_100_000  # almost all of it the 30,522 x 32 embeddings


@pytest.mark.parametrize("task", ["cls", "ner", "clm"])
def test_tiny_models_train_step(tokenizer, task):
    if task == "clm":
        raw = _dd(train={"text": ["the cat sat on the mat " * 8]})
        prepared = tasks.prepare_task(task, raw, tokenizer, block_size=16)
    elif task == "ner":
        prepared = tasks.prepare_task(
            task, _dd(train={"tokens": [WORDS, WORDS[:3]], "ner_tags": [TAGS, TAGS[:3]]}), tokenizer
        )
    else:
        prepared = tasks.prepare_task(
            task, _dd(train={"text": ["good movie", "bad film here"], "label": ["pos", "neg"]}), tokenizer
        )
    model = testing.tiny_model(task, label_list=prepared.label_list)
    model.train()
    batch = prepared.data_collator([prepared.datasets["train"][i] for i in range(2)])
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    # The gradient reaches the bottom of the network (labels and inputs are wired correctly).
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0


def test_save_tiny_pretrained_round_trip(tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    path = testing.save_tiny_pretrained(tmp_path / "tiny", "ner", label_list=["O", "B-x", "I-x"])
    model = AutoModelForTokenClassification.from_pretrained(path)
    assert model.config.id2label == {0: "O", 1: "B-x", 2: "I-x"}
    assert AutoTokenizer.from_pretrained(path).is_fast
