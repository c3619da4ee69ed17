"""Data of unknown length: a streamed local file trains for max_steps with every duration resolved
against it; epoch durations and a missing max_steps are one line each (ftrecipes.data.streaming)."""

import pytest
from conftest import WORDS, on_tiny

from ftrecipes import get_recipe
from ftrecipes.config.errors import ConfigError
from ftrecipes.data.streaming import check_unknown_length, has_length, plan_unknown_length
from ftrecipes.training.arguments import recipe_training_args
from ftrecipes.training.stock import expected_lr, log_history_lrs
from ftrecipes.training.trainer import RecipeTrainer


def test_durations_resolve_against_max_steps():
    plan = plan_unknown_length(get_recipe("cls", warmup="10%"), 40, per_device_train_batch_size=4, num_processes=2)
    assert (plan.total_steps, plan.warmup_steps, plan.timeline.global_batch_size) == (40, 4, 8)
    assert plan_unknown_length(get_recipe("cls", warmup=7), 40).warmup_steps == 7
    assert plan_unknown_length(get_recipe("cls", warmup=0.25), 40).warmup_steps == 10


def test_epochs_and_a_missing_max_steps_are_one_line_each():
    with pytest.raises(
        ConfigError, match=r"^--max_steps=-1: data of unknown length .* has no epochs to count; set --max_steps"
    ):
        plan_unknown_length(get_recipe("cls"), -1)
    with pytest.raises(
        ConfigError,
        match=(
            r"^warmup='1ep': is in epochs, but data of unknown length .*; give optimizer steps or a fraction of "
            r"--max_steps=40"
        ),
    ):
        plan_unknown_length(get_recipe("cls", warmup="1ep"), 40)
    with pytest.raises(ConfigError, match=r"^lr_scheduler_kwargs.step_size='2ep'"):
        plan_unknown_length(
            get_recipe("cls", lr_scheduler_type="step", lr_scheduler_kwargs={"step_size": "2ep"}, warmup=0), 40
        )


def test_a_streamed_local_file_follows_the_plan(cls_files, tmp_path):
    from datasets import load_dataset

    from ftrecipes.testing import tiny_model, tiny_tokenizer

    labels = sorted(WORDS)
    tokenizer = tiny_tokenizer()
    stream = load_dataset("csv", data_files=cls_files["train"], streaming=True)["train"]
    stream = stream.map(
        lambda row: {
            **tokenizer(row["text"], truncation=True, max_length=16, padding="max_length"),
            "labels": labels.index(row["label"]),
        },
        remove_columns=["text", "label"],
    )
    assert not has_length(stream)
    recipe = get_recipe("cls", warmup="50%", eval_strategy="no")
    args = recipe_training_args(
        recipe,
        str(tmp_path),
        max_steps=6,
        per_device_train_batch_size=8,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        save_strategy="no",
    )
    plan = check_unknown_length(
        on_tiny(recipe), args, stream
    )  # RecipeTrainer applies the width rule for the tiny model
    assert (plan.total_steps, plan.warmup_steps) == (6, 3)
    trainer = RecipeTrainer(
        model=tiny_model("cls", num_labels=len(labels)), args=args, recipe=recipe, train_dataset=stream
    )
    trainer.train()
    lrs = log_history_lrs(trainer.state.log_history)
    assert sorted(lrs) == list(range(1, 7))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(plan.learning_rate, plan.schedule, step), rel=1e-9), step
    args.max_steps = -1
    with pytest.raises(ConfigError, match=r"^--max_steps=-1"):
        check_unknown_length(recipe, args, stream)


# ------------------------------------------------------------------------------------------------
# The main job: finetune.py --streaming (ftrecipes.job.run.main in-process)


def streaming_args(tiny_base, train_file, output_dir, *extra):
    return [
        "--recipe",
        "cls",
        "--model_name_or_path",
        tiny_base,
        "--train_file",
        train_file,
        "--output_dir",
        str(output_dir),
        "--streaming",
        "true",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--max_seq_length",
        "32",
        "--precision",
        "fp32",
        "--per_device_train_batch_size",
        "8",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        *extra,
    ]


def test_finetune_streams_a_local_csv_with_the_plan_for_max_steps(tiny_base, cls_files, tmp_path):
    """The stream's first 24 rows at batch 8 are 3 steps a pass: 8 steps read it three times over, and
    the LR at every optimizer step is the recipe's plan for max_steps=8 (warmup 25% = 2 steps)."""
    import json

    from ftrecipes.job.run import main

    out = tmp_path / "stream"
    assert (
        main(
            streaming_args(
                tiny_base,
                cls_files["train"],
                out,
                "--validation_file",
                cls_files["validation"],
                "--max_train_samples",
                "24",
                "--max_steps",
                "8",
                "--warmup",
                "25%",
            )
        )
        == 0
    )
    plan = plan_unknown_length(on_tiny(get_recipe("cls", warmup="25%")), 8, per_device_train_batch_size=8)
    assert (plan.total_steps, plan.warmup_steps) == (8, 2)
    state = json.loads((out / "trainer_state.json").read_text())
    lrs = log_history_lrs(state["log_history"])
    assert sorted(lrs) == list(range(1, 9))
    for step, lr in lrs.items():
        assert lr == pytest.approx(expected_lr(plan.learning_rate, plan.schedule, step), rel=1e-9), step
    assert state["epoch"] > 2  # Trainer counts passes over the stream: the third had begun
    recorded = json.loads((out / "plan.json").read_text())
    assert (recorded["total_steps"], recorded["warmup_steps"]) == (8, 2) and "streamed" in recorded["train_data"]
    assert "train_samples" not in json.loads((out / "train_results.json").read_text())  # a stream is never counted
    assert json.loads((out / "eval_results.json").read_text())["eval_samples"] == 24  # validation stays in memory


def test_finetune_streams_a_text_file_for_causal_lm(tmp_path):
    from ftrecipes.job.run import main
    from ftrecipes.testing import save_tiny_pretrained

    model = save_tiny_pretrained(tmp_path / "tiny-lm", "clm")
    text = tmp_path / "train.txt"
    text.write_text("\n".join(f"the {w} market rose as the team won the cup and the chip shipped" for w in range(60)))
    out = tmp_path / "clm"
    assert (
        main(
            [
                "--recipe",
                "clm",
                "--model_name_or_path",
                model,
                "--train_file",
                str(text),
                "--output_dir",
                str(out),
                "--streaming",
                "true",
                "--max_steps",
                "3",
                "--warmup",
                "1",
                "--eval_strategy",
                "no",
                "--max_seq_length",
                "32",
                "--per_device_train_batch_size",
                "4",
                "--logging_steps",
                "1",
                "--precision",
                "fp32",
                "--report_to",
                "none",
                "--disable_tqdm",
                "true",
            ]
        )
        == 0
    )
    import json

    assert sorted(log_history_lrs(json.loads((out / "trainer_state.json").read_text())["log_history"])) == [1, 2, 3]


def test_no_label_source_and_no_validation_split_are_one_line_before_loading(tiny_base, cls_files, tmp_path, capsys):
    from bad_input_cases import Case, assert_one_line, snapshot

    from ftrecipes.job.run import main

    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    before = snapshot(out)
    capsys.readouterr()
    assert main(streaming_args(tiny_base, cls_files["train"], out, "--max_steps", "4")) == 2
    assert_one_line(
        capsys.readouterr().err,
        "finetune.py",
        Case([], "--label_list", r"cannot be scanned for its classes.*; pass every class in id order"),
    )
    # nothing is carved from a stream for evaluation either
    assert (
        main(
            streaming_args(
                tiny_base,
                cls_files["train"],
                out,
                "--max_steps",
                "4",
                "--label_list",
                "a",
                "b",
                "--eval_strategy",
                "epoch",
            )
        )
        == 2
    )
    assert_one_line(
        capsys.readouterr().err,
        "finetune.py",
        Case(
            [],
            "--validation_file",
            r"no length to carve a validation split from; pass --validation_file PATH, or --eval_strategy no",
        ),
    )
    assert snapshot(out) == before


def test_label_rule_classlabel_then_validation_then_label_list(cls_files, tmp_path):
    """A streamed split's classes: its ClassLabel feature (a Hub set declares one; here a parquet folder
    read through --dataset_name's path), else the validation split's labels, else one line."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from ftrecipes.data import tasks
    from ftrecipes.data.loading import load_streamed_datasets

    common = tasks._common  # the label helpers the task modules share

    names = ["sport", "tech", "money"]  # declared order, not sorted: the ids follow the declaration
    folder = tmp_path / "hub-like"
    folder.mkdir()
    Dataset.from_dict(
        {"text": ["a b", "c d"], "label": [2, 0]},
        features=Features({"text": Value("string"), "label": ClassLabel(names=names)}),
    ).to_parquet(str(folder / "train.parquet"))
    raw = load_streamed_datasets(dataset_name=str(folder), shuffle_buffer_size=0)
    assert not has_length(raw["train"]) and "validation" not in raw
    assert common.class_label_list(raw, "label", "--label_column_name", sequence=False) == names

    csv = load_streamed_datasets(
        train_file=cls_files["train"], validation_file=cls_files["validation"], max_train_samples=5
    )
    assert has_length(csv["validation"]) and sum(1 for _ in csv["train"]) == 5
    assert common.class_label_list(csv, "label", "--label_column_name", sequence=False) == sorted(WORDS)
    with pytest.raises(ConfigError, match=r"^--label_list: the streamed train split cannot be scanned"):
        common.class_label_list(DatasetDict({"train": csv["train"]}), "label", "--label_column_name", sequence=False)
    with pytest.raises(
        ConfigError,
        match=(
            r"^--label_column_name='label': the streamed 'train' split has label 'tech', which is not in the label set"
        ),
    ):
        common.label_ids(
            ["sport", "tech"],
            {"sport": 0, "money": 1},
            flag="--label_column_name",
            column="label",
            split="train",
            streamed=True,
        )
    with pytest.raises(ConfigError, match=r"^--label_list=\['a', 'b', 'a'\]: names a more than once"):
        common.given_label_list(["a", "b", "a"])


def test_several_processes_read_the_stream_themselves():
    """Dispatching an iterable data set's batches from the main process concatenates the processes'
    batches, which dynamic padding makes unequal (accelerate#348): each process reads instead, and a
    split by files whose passes end at different steps cannot evaluate or save per pass."""
    from types import SimpleNamespace

    from transformers import TrainingArguments

    from ftrecipes.data.streaming import check_stream_sharding, read_per_process

    args = TrainingArguments(output_dir="unused", report_to="none")
    read_per_process(args)
    assert args.accelerator_config.dispatch_batches is False
    kept = TrainingArguments(output_dir="unused", report_to="none", accelerator_config={"dispatch_batches": True})
    read_per_process(kept)
    assert kept.accelerator_config.dispatch_batches is True

    def launch(world_size, eval_strategy="epoch", save_strategy="steps"):
        return SimpleNamespace(
            world_size=world_size,
            eval_strategy=eval_strategy,
            save_strategy=save_strategy,
            accelerator_config=args.accelerator_config,
        )

    by_files = SimpleNamespace(num_shards=4)
    with pytest.raises(
        ConfigError, match=r"^--eval_strategy='epoch': with --streaming on 2 processes each process reads its own files"
    ):
        check_stream_sharding(launch(2), by_files)
    check_stream_sharding(launch(2, "steps"), by_files)  # steps are counted alike on every process
    check_stream_sharding(launch(2), SimpleNamespace(num_shards=1))  # one file: every process reads it, passes agree
    check_stream_sharding(launch(1), by_files)
