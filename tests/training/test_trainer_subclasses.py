"""The recipe inside the Trainer subclasses people train with: TRL's SFTTrainer and sentence-transformers'
SentenceTransformerTrainer (real libraries, tiny config-built models), and stock trainers given
``apply_recipe``'s arguments.

What each test starts from is what a user's script has: the library's own arguments class
(``SFTConfig``, ``SentenceTransformerTrainingArguments``) with its own defaults, a model object or a
path, TRL's ``peft_config``, sentence-transformers' losses and ``learning_rate_mapping``.
"""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import on_tiny
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from ftrecipes import ConfigError, get_recipe
from ftrecipes.testing import tiny_causal_lm, tiny_classifier, tiny_wordpiece_tokenizer
from ftrecipes.training.arguments import apply_recipe, recipe_record
from ftrecipes.training.flags import given_training_arguments
from ftrecipes.training.hf_schedule import transformers_spelling
from ftrecipes.training.stock import expected_lr, log_history_lrs, recipe_optimizers
from ftrecipes.training.trainer import RecipeTrainer

trl = pytest.importorskip("trl")
st = pytest.importorskip("sentence_transformers")
from sentence_transformers import (  # noqa: E402
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
    losses,
    models,
)
from trl import SFTConfig, SFTTrainer  # noqa: E402


class RecipeSFTTrainer(RecipeTrainer, SFTTrainer):
    pass


class RecipeSentenceTransformerTrainer(RecipeTrainer, SentenceTransformerTrainer):
    pass


class GroupLRs(TrainerCallback):
    """Every param group's LR at every optimizer step (read before the step uses it)."""

    def __init__(self):
        self.steps: list[list[float]] = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.steps.append([g["lr"] for g in optimizer.param_groups])


@pytest.fixture(autouse=True)
def _ftrecipes_logger_level():
    # ftrecipes' logger follows transformers' verbosity when a trainer is built; keep tests independent.
    package = logging.getLogger("ftrecipes")
    level = package.level
    yield
    package.setLevel(level)


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_wordpiece_tokenizer()
    tok.eos_token, tok.bos_token = tok.sep_token, tok.cls_token
    return tok


@pytest.fixture(scope="module")
def texts():
    return Dataset.from_dict({"text": [f"the market rose {i} points and the team won game {i % 7}" for i in range(48)]})


@pytest.fixture(scope="module")
def clm_path(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("tiny-clm")
    tiny_causal_lm(tokenizer=tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def sft_config(tmp_path, **fields):
    base = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        max_length=24,
        use_cpu=True,
        bf16=False,
        dataloader_num_workers=0,
    )
    return SFTConfig(**{**base, **fields})


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def assert_trace_is_the_recipes(trainer):
    lrs = log_history_lrs(trainer.state.log_history)
    assert len(lrs) == trainer.state.global_step
    for step, lr in lrs.items():
        assert lr == pytest.approx(
            expected_lr(trainer.args.learning_rate, trainer.schedule, step), rel=1e-12, abs=1e-18
        )


# ------------------------------------------------------------------------------------------------
# TRL SFTTrainer


def test_sft_full_fine_tuning_trains_at_the_recipes_peak_not_sftconfigs_default(tmp_path, tokenizer, texts, caplog):
    recipe = get_recipe("clm", per_device_train_batch_size=4, reference_global_batch_size=4)
    model = tiny_causal_lm(tokenizer=tokenizer)
    before = trainable(model)
    with caplog.at_level(logging.INFO, logger="ftrecipes"):
        trainer = RecipeSFTTrainer(
            model=model,
            args=sft_config(tmp_path),
            train_dataset=texts,
            processing_class=tokenizer,
            recipe=recipe,
            argv=[],
        )
    assert isinstance(trainer.args, SFTConfig)
    assert trainer.args.learning_rate == recipe.learning_rate != SFTConfig.__dataclass_fields__["learning_rate"].default
    assert any("learning_rate" in m and "replaces SFTConfig's default 2e-05" in m for m in caplog.messages)
    trainer.train()
    assert_trace_is_the_recipes(trainer)
    group = trainer.optimizer.param_groups[0]
    assert group["betas"] == (recipe.adam_beta1, recipe.adam_beta2) and group["eps"] == recipe.adam_epsilon
    decayed = {
        id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] == recipe.weight_decay for p in g["params"]
    }
    assert decayed  # the Trainer's split: weight matrices decay
    after = dict(trainer.model.named_parameters())
    assert all(not torch.equal(before[n], after[n].detach()) for n in before), "a trainable parameter never changed"


def test_sft_user_values_win_over_the_recipe(tmp_path, tokenizer, texts):
    args = sft_config(tmp_path, learning_rate=3e-4, weight_decay=0.05)  # set in code: differs from SFTConfig's defaults
    trainer = RecipeSFTTrainer(
        model=tiny_causal_lm(tokenizer=tokenizer),
        args=args,
        train_dataset=texts,
        processing_class=tokenizer,
        recipe=get_recipe("clm"),
        argv=[],
    )
    assert trainer.args.learning_rate == 3e-4 and trainer.args.weight_decay == 0.05
    assert recipe_record(trainer.args)["sources"]["learning_rate"]["source"] == "script"


@pytest.mark.parametrize("how", ["recipe-object", "recipe-path", "peft_config"])
def test_sft_lora_one_adapter_every_b_matrix_trains(tmp_path, tokenizer, texts, clm_path, how, caplog):
    from peft import LoraConfig

    recipe = get_recipe("lora-clm", per_device_train_batch_size=4)
    kwargs = {}
    model = clm_path if how == "recipe-path" else tiny_causal_lm(tokenizer=tokenizer)
    if how == "peft_config":
        kwargs["peft_config"] = LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
        )
    with caplog.at_level(logging.INFO, logger="ftrecipes"):
        trainer = RecipeSFTTrainer(
            model=model,
            args=sft_config(tmp_path),
            train_dataset=texts,
            processing_class=tokenizer,
            recipe=recipe,
            argv=[],
            **kwargs,
        )
    adapters = trainer.model.peft_config
    assert list(adapters) == ["default"]  # one adapter, never an adapter on an adapter
    if how == "peft_config":
        assert adapters["default"].r == 4
        assert any("the trainer's peft_config (r=4" in m and "are not applied" in m for m in caplog.messages)
    else:
        assert adapters["default"].r == recipe.lora_r
        assert any("passed to SFTTrainer as its peft_config" in m for m in caplog.messages)
    before = trainable(trainer.model)
    assert any("lora_B" in n for n in before) and all(("lora_" in n) for n in before)
    trainer.train()
    assert_trace_is_the_recipes(trainer)
    assert trainer.args.learning_rate == pytest.approx(
        recipe.learning_rate * (4 / recipe.reference_global_batch_size) ** 0.5
    )
    after = dict(trainer.model.named_parameters())
    assert all(not torch.equal(before[n], after[n].detach()) for n in before), "an adapter matrix stayed at its init"


def test_sft_given_plain_training_arguments_keeps_the_recipe_record_and_saves(tmp_path, tokenizer, texts):
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
    )
    trainer = RecipeSFTTrainer(
        model=tiny_causal_lm(tokenizer=tokenizer),
        args=args,
        train_dataset=texts,
        processing_class=tokenizer,
        recipe=get_recipe("clm", per_device_train_batch_size=4),
        argv=[],
    )
    assert isinstance(trainer.args, SFTConfig)  # TRL rebuilt them as its own class
    assert recipe_record(trainer.args)["recipe"] == "clm"
    trainer.train()
    trainer.save_model()
    assert (tmp_path / "out" / "plan.json").is_file() and (tmp_path / "out" / "recipe.yaml").is_file()


def test_sft_resume_continues_the_lr_trace_exactly(tmp_path, tokenizer, texts):
    recipe = get_recipe("clm", per_device_train_batch_size=4)

    def run(max_steps, resume=None):
        args = sft_config(tmp_path, max_steps=8, save_strategy="steps", save_steps=3, seed=7)
        trainer = RecipeSFTTrainer(
            model=tiny_causal_lm(tokenizer=tokenizer, seed=1),
            args=args,
            train_dataset=texts,
            processing_class=tokenizer,
            recipe=recipe,
            argv=[],
        )
        trainer.train(resume_from_checkpoint=resume)
        return log_history_lrs(trainer.state.log_history)

    full = run(8)
    resumed = run(8, resume=str(tmp_path / "out" / "checkpoint-3"))
    assert resumed.keys() == full.keys()
    assert all(resumed[s] == full[s] for s in full)


def test_stock_sft_with_recipe_optimizers_and_peft_config_refuses_before_step_one(tmp_path, tokenizer, texts):
    from peft import LoraConfig

    recipe = get_recipe("clm", per_device_train_batch_size=4)
    args = apply_recipe(recipe, sft_config(tmp_path), argv=[])
    model = tiny_causal_lm(tokenizer=tokenizer)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=texts,
        processing_class=tokenizer,
        optimizers=recipe_optimizers(recipe, model, args, texts),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    lora_b = [p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n]
    with pytest.raises(ConfigError, match=r"trainable parameters are in no optimizer group.*lora_.*RecipeTrainer"):
        trainer.train()
    assert all(
        torch.equal(b, p.detach())
        for b, p in zip(lora_b, (p for n, p in trainer.model.named_parameters() if "lora_B" in n))
    )


# ------------------------------------------------------------------------------------------------
# sentence-transformers


@pytest.fixture()
def st_model(tmp_path):
    from ftrecipes.testing import save_tiny_base

    word = models.Transformer(save_tiny_base(tmp_path / "base"), max_seq_length=24)
    return SentenceTransformer(modules=[word, models.Pooling(word.get_word_embedding_dimension())], device="cpu")


def st_args(tmp_path, **fields):
    base = dict(
        output_dir=str(tmp_path / "st"),
        max_steps=6,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
    )
    return SentenceTransformerTrainingArguments(**{**base, **fields})


def pairs():
    return Dataset.from_dict(
        {"anchor": [f"the team won game {i}" for i in range(32)], "positive": [f"a win in game {i}" for i in range(32)]}
    )


def nli():
    return Dataset.from_dict(
        {
            "premise": [f"the market rose {i}" for i in range(32)],
            "hypothesis": [f"shares fell {i % 5}" for i in range(32)],
            "label": [i % 3 for i in range(32)],
        }
    )


def test_sentence_transformers_mnrl_trains_on_the_recipe(tmp_path, st_model):
    recipe = get_recipe("cls", per_device_train_batch_size=8)
    trainer = RecipeSentenceTransformerTrainer(
        model=st_model,
        args=st_args(tmp_path),
        train_dataset=pairs(),
        loss=losses.MultipleNegativesRankingLoss(st_model),
        recipe=recipe,
        argv=[],
    )
    trainer.train()
    assert_trace_is_the_recipes(trainer)
    # The cls peak-LR rule reads the embedding model's width (hidden 32) through sentence-transformers' modules.
    assert trainer.args.learning_rate == pytest.approx(on_tiny(recipe).learning_rate * (8 / 16) ** 0.5)
    assert trainer.run_info["peak_rule"]


def test_sentence_transformers_softmax_loss_classifier_trains_and_learning_rate_mapping_follows_the_schedule(
    tmp_path, st_model
):
    loss = losses.SoftmaxLoss(st_model, st_model.get_sentence_embedding_dimension(), num_labels=3)
    recipe = get_recipe("cls", per_device_train_batch_size=8)
    lrs = GroupLRs()
    trainer = RecipeSentenceTransformerTrainer(
        model=st_model,
        args=st_args(tmp_path, learning_rate_mapping={r"classifier": 1e-3}),
        train_dataset=nli(),
        loss=loss,
        recipe=recipe,
        argv=[],
        callbacks=[lrs],
    )
    classifier = [p.detach().clone() for p in loss.classifier.parameters()]
    trainer.train()
    assert all(not torch.equal(b, p.detach()) for b, p in zip(classifier, loss.classifier.parameters()))
    peaks = [g["initial_lr"] for g in trainer.optimizer.param_groups]
    in_mapping = [
        i
        for i, g in enumerate(trainer.optimizer.param_groups)
        if any(p is q for p in g["params"] for q in loss.classifier.parameters())
    ]
    assert in_mapping and all(peaks[i] == 1e-3 for i in in_mapping)
    assert all(peaks[i] == trainer.args.learning_rate for i in range(len(peaks)) if i not in in_mapping)
    for step, group_lrs in enumerate(lrs.steps):
        for peak, lr in zip(peaks, group_lrs):
            assert lr == pytest.approx(peak * trainer.schedule.lr(step), rel=1e-12)


def test_sentence_transformers_subclass_args_with_transformers4_fields(tmp_path, st_model):
    # SentenceTransformerTrainingArguments keeps `warmup_ratio`, which TrainingArguments 5 removed.
    assert "warmup_ratio" in SentenceTransformerTrainingArguments.__dataclass_fields__
    assert "warmup_ratio" not in TrainingArguments.__dataclass_fields__
    from transformers import HfArgumentParser

    argv = ["--output_dir", str(tmp_path), "--warmup_ratio", "0.1", "--use_cpu"]
    (args,) = HfArgumentParser(SentenceTransformerTrainingArguments).parse_args_into_dataclasses(argv)
    applied = apply_recipe(get_recipe("cls"), args, argv=argv)
    assert recipe_record(applied)["sources"]["warmup"] == {
        "value": 0.1,
        "source": "flag",
        "flag": "warmup_ratio",
        "detail": "recipe field 'warmup' set from --warmup_ratio",
    }
    assert apply_recipe(get_recipe("cls"), st_args(tmp_path), argv=[]).learning_rate == get_recipe("cls").learning_rate


# ------------------------------------------------------------------------------------------------
# The coverage check, and apply_recipe's args in a stock Trainer


def test_recipe_trainer_refuses_a_trainable_parameter_outside_every_group(tmp_path, monkeypatch):
    import ftrecipes.training.optim as optim

    real = optim.create_optimizer

    def drops_the_head(recipe, model, **kwargs):
        optimizer = real(recipe, model, **kwargs)
        head = {id(p) for p in model.classifier.parameters()}
        for group in optimizer.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in head]
        return optimizer

    monkeypatch.setattr(optim, "create_optimizer", drops_the_head)
    trainer = RecipeTrainer(
        model=tiny_classifier(),
        args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, max_steps=2),
        recipe=get_recipe("cls"),
        argv=[],
    )
    with pytest.raises(ConfigError, match=r"2 trainable parameters are in no optimizer group.*classifier\.weight"):
        trainer.create_optimizer()


HF_SPELLED = {
    "cosine, HF warmup": dict(warmup_offset=0),
    "cosine_with_min_lr": dict(lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={}),
    "linear to a floor": dict(lr_scheduler_type="linear", warmup_offset=0),
    "constant_with_warmup": dict(lr_scheduler_type="constant", warmup_offset=0),
    "warmup_stable_decay": dict(
        lr_scheduler_type="warmup_stable_decay",
        lr_scheduler_kwargs={"num_decay_steps": 4, "decay_type": "1-sqrt", "min_lr_ratio": 0.01},
    ),
    "inverse_sqrt": dict(lr_scheduler_type="inverse_sqrt", warmup_offset=0, warmup=3),
}


def batches(n=40):
    return [
        {
            "input_ids": torch.randint(5, 1000, (12,)),
            "attention_mask": torch.ones(12, dtype=torch.long),
            "labels": torch.tensor(i % 2),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("case", list(HF_SPELLED))
def test_apply_recipe_args_run_the_recipes_trace_in_a_stock_trainer(tmp_path, case):
    recipe = get_recipe("cls", per_device_train_batch_size=4, **HF_SPELLED[case])
    args = apply_recipe(
        recipe,
        TrainingArguments(
            output_dir=str(tmp_path), max_steps=13, logging_steps=1, report_to="none", save_strategy="no", use_cpu=True
        ),
        argv=[],
    )
    assert not {"schedule_by", "warmup_type", "transitions"} & set(args.lr_scheduler_kwargs)  # no private keys
    trainer = Trainer(model=tiny_classifier(), args=args, train_dataset=batches())
    trainer.train()
    plan_schedule = recipe.plan(
        __import__("ftrecipes").Timeline(num_examples=52, per_device_train_batch_size=4, max_steps=13)
    ).schedule
    lrs = log_history_lrs(trainer.state.log_history)
    for step, lr in lrs.items():
        assert lr == pytest.approx(args.learning_rate * plan_schedule.lr(step - 1), rel=1e-9), (case, step)


@pytest.mark.parametrize("name", ["cls", "one-cycle", "sgdr"])
def test_a_shape_transformers_cannot_spell_stops_a_stock_trainer_with_one_line_naming_recipe_trainer(tmp_path, name):
    recipe = get_recipe(name)
    assert transformers_spelling(recipe, recipe.learning_rate) is None
    args = apply_recipe(
        recipe, TrainingArguments(output_dir=str(tmp_path), max_steps=4, report_to="none", use_cpu=True), argv=[]
    )
    trainer = Trainer(model=tiny_classifier(), args=args, train_dataset=batches(16))
    with pytest.raises(ValueError, match=r"ftrecipes\.RecipeTrainer") as refused:
        trainer.train()
    assert "\n" not in str(refused.value) and "unexpected keyword" not in str(refused.value)


@pytest.mark.parametrize("schedule", ["plateau", "reduce_lr_on_plateau", "greedy"])
def test_metric_driven_schedules_fill_the_evaluation_fields_through_apply_recipe(tmp_path, schedule):
    recipe = get_recipe("plateau", lr_scheduler_type=schedule, lr_scheduler_kwargs={})
    args = apply_recipe(recipe, TrainingArguments(output_dir=str(tmp_path), use_cpu=True), argv=[])
    assert str(getattr(args.eval_strategy, "value", args.eval_strategy)) != "no"
    assert args.metric_for_best_model == recipe.metric_for_best_model
    assert recipe_record(args)["sources"]["metric_for_best_model"]["source"] == "recipe"


def test_argparse_prefix_abbreviations_count_as_given(tmp_path):
    assert "per_device_train_batch_size" in given_training_arguments(["run.py", "--per_device_train", "8"])
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True)
    applied = apply_recipe(
        get_recipe("cls"), args, argv=["run.py", "--per_device_train", "8", "--model_name_or_path", "x"]
    )
    assert applied.per_device_train_batch_size == 8
    assert recipe_record(applied)["sources"]["per_device_train_batch_size"]["source"] == "flag"


def test_provenance_reaches_a_script_that_configures_logging_after_apply_recipe(tmp_path):
    from transformers.utils import logging as hf_logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("ftrecipes").addHandler(handler)
    verbosity = hf_logging.get_verbosity()
    logging.getLogger("ftrecipes").setLevel(logging.NOTSET)
    try:
        hf_logging.set_verbosity_warning()
        args = apply_recipe(get_recipe("cls"), TrainingArguments(output_dir=str(tmp_path), use_cpu=True), argv=[])
        assert not [m for m in seen if m.startswith("recipe 'cls': learning_rate")]  # logging not set up yet
        hf_logging.set_verbosity_info()  # what run_classification.py does once it has parsed its arguments
        RecipeTrainer(model=tiny_classifier(), args=args, recipe=get_recipe("cls"))
        assert [m for m in seen if m.startswith("recipe 'cls': learning_rate")]
    finally:
        hf_logging.set_verbosity(verbosity)
        logging.getLogger("ftrecipes").removeHandler(handler)


def test_sft_peft_config_alpha_sets_the_rules_lora_peak(tmp_path, tokenizer, texts, caplog):
    """TRL takes the caller's peft_config as the adapter: the width rule's LoRA peak follows its lora_alpha (8, half
    the recipe's 16: twice the peak), not the recipe's, and says so."""
    from peft import LoraConfig

    recipe = get_recipe("lora-clm", per_device_train_batch_size=4, lr_rule="width")
    peaks = {}
    for alpha in (16, 8):
        config = LoraConfig(r=8, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        with caplog.at_level(logging.INFO, logger="ftrecipes"):
            trainer = RecipeSFTTrainer(
                model=tiny_causal_lm(tokenizer=tokenizer),
                args=sft_config(tmp_path / str(alpha)),
                train_dataset=texts,
                processing_class=tokenizer,
                recipe=recipe,
                argv=[],
                peft_config=config,
            )
        peaks[alpha] = trainer.args.learning_rate
        assert trainer.model.peft_config["default"].lora_alpha == alpha
    assert peaks[8] == pytest.approx(2 * peaks[16], rel=1e-12)
    assert any("reads the adapter that trains (r=8, lora_alpha=8)" in m for m in caplog.messages)
