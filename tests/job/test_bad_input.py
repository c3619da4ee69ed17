"""The bad-input catalogue: every mistake docs/bad-input.md promises to catch, run
through the real entry points (``ftrecipes.job.run.main`` = ``scripts/finetune.py``, ``ftrecipes
lr-find``, ``scripts/reproduce.py``).

Each case must give exit code 2, exactly one line on stderr that starts by naming the flag or field,
a fix that is not the value given, no traceback, and a pre-existing ``--output_dir`` byte-identical
afterwards. Most cases fail in the pre-load checks (milliseconds); the rest load only the tiny
checkpoint's tokenizer and a 96-row CSV. One case runs as a real process to prove the exit code and
that an offline Hub id costs no Hub retries.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from bad_input_cases import Case, assert_one_line, snapshot
from conftest import FINETUNE, PYTHON, REPO

from ftrecipes import cli
from ftrecipes.config.errors import ConfigError
from ftrecipes.job import run as pipeline
from ftrecipes.job.parse import parse_args


def base_args(tiny_base, cls_files, output_dir) -> list[str]:
    return [
        "--recipe",
        "cls",
        "--model_name_or_path",
        tiny_base,
        "--train_file",
        cls_files["train"],
        "--validation_file",
        cls_files["validation"],
        "--output_dir",
        str(output_dir),
        "--num_train_epochs",
        "2",
        "--warmup",
        "20%",
        "--eval_strategy",
        "no",
        "--max_seq_length",
        "32",
        "--per_device_train_batch_size",
        "8",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
    ]


CASE_NAMES = [
    # the six rows of the issue that found them, and its wrong-fix message
    "model path that does not exist",
    "Hub id offline",
    "output dir that cannot be created",
    "negative seed",
    "bf16 where unsupported",
    "epoch interval TrainingArguments cannot take",
    "warmup longer than a 1-step run",
    # the twelve the docs promised first
    "unknown recipe",
    "mistyped flag",
    "wrong type (recipe)",
    "wrong type (TrainingArguments)",
    "missing data file",
    "missing text column",
    "missing label column",
    "empty split",
    "head too small",
    "warmup longer than training",
    "floor above peak",
    "bad dict option",
    # pre-load checks
    "output dir is a file",
    "output dir holds a trained model",
    "missing checkpoint to resume",
    "folder without weights",
    "unreadable config.json",
    "truncated weights file",
    "tokenizer name is a file",
    "missing config folder",
    "data seed out of range",
    "split seed out of range",
    "fp16 where unsupported",
    "TrainingArguments validation",
    "unknown report_to",
    "WORLD_SIZE without a launcher",
    "RANK beyond WORLD_SIZE",
    "cpu threads 0",
    "unsupported data file",
    # the task registry's checks
    "flag of another task",
    "metric the task does not report",
    "prior upside down",
    # --streaming (data of unknown length)
    "streaming without max_steps",
    "streaming with an epoch warmup",
    "streaming a task read in memory",
    # the peak-LR rule, LoRA+ and LR groups
    "rule field of the wrong type",
    "rule field out of range",
    "depth exponent out of range",
    "LoRA reference alpha not positive",
    "width rule with SGD",
    "LoRA+ ratio not positive",
    "LoRA+ without LoRA",
    "LR-group pattern that matches nothing",
    "LR-group entry without a multiplier",
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-input")


def catalogue(tiny_base, cls_files, scratch: Path) -> dict[str, Case]:
    from ftrecipes.testing import save_tiny_pretrained

    empty = scratch / "empty.csv"
    empty.write_text("text,label\n")
    sheet = scratch / "train.xlsx"
    sheet.write_text("not a spreadsheet")
    two_label_head = scratch / "two-label-head"
    if not two_label_head.exists():
        save_tiny_pretrained(two_label_head, "cls", num_labels=2)
    no_weights = scratch / "no-weights"
    no_weights.mkdir(exist_ok=True)
    shutil.copy(Path(tiny_base) / "config.json", no_weights / "config.json")
    bad_config = scratch / "bad-config"
    bad_config.mkdir(exist_ok=True)
    (bad_config / "config.json").write_text("{not json")
    shutil.copy(Path(tiny_base) / "model.safetensors", bad_config / "model.safetensors")
    (bad_config / "tokenizer.json").write_text("{}")
    bad_weights = scratch / "bad-weights"
    if not bad_weights.exists():
        shutil.copytree(tiny_base, bad_weights)
        (bad_weights / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{trunc")
    a_file = scratch / "a-file"
    a_file.write_text("x")
    trained = scratch / "trained"
    trained.mkdir(exist_ok=True)
    (trained / "model.safetensors").write_bytes(b"weights")
    launcher = {"RANK": None, "LOCAL_RANK": None, "MASTER_ADDR": None, "MASTER_PORT": None, "LOCAL_WORLD_SIZE": None}
    return {
        "model path that does not exist": Case(
            ["--model_name_or_path", "/no/such/dir"],
            "--model_name_or_path",
            r"does not exist \(looked for .*config\.json.*model\.safetensors",
        ),
        "Hub id offline": Case(
            ["--model_name_or_path", "bert-base-cased"],
            "--model_name_or_path",
            r"not in the local Hugging Face cache .*offline.*local folder.*'minilm'.*go online",
        ),
        "output dir that cannot be created": Case(
            ["--output_dir", "/proc/forbidden/out"], "--output_dir", r"cannot be created"
        ),
        "negative seed": Case(
            ["--seed", "-1"], "--seed", r"not a valid seed; use an integer in \[0, 4294967295\]", given="-1"
        ),
        "bf16 where unsupported": Case(
            ["--bf16"], "--bf16", r"no native bf16.*drop --bf16", unsupported_precision=True
        ),
        # If epoch intervals become valid for eval_steps, this row moves to the working inputs.
        "epoch interval TrainingArguments cannot take": Case(
            ["--eval_strategy", "steps", "--eval_steps", "1ep"],
            "eval_steps",
            r"cannot be given in epochs; use --eval_strategy epoch",
            given="1ep",
        ),
        "warmup longer than a 1-step run": Case(
            ["--max_steps", "1", "--warmup", "5%"],
            "warmup",
            r"resolves to 1 optimizer steps but training has only 1; set warmup 0 \(no warmup\) or train at least 2",
            given="'5%'",
        ),
        "unknown recipe": Case(["--recipe", "clss"], "--recipe", r"is not a known recipe; did you mean 'cls'"),
        "mistyped flag": Case(
            ["--learnig_rate", "1e-4"], "--learnig_rate", r"is not a finetune.py flag; did you mean '--learning_rate'"
        ),
        "wrong type (recipe)": Case(["--learning_rate", "fast"], "learning_rate", r"must be a number"),
        "wrong type (TrainingArguments)": Case(["--logging_steps", "often"], "--logging_steps", r"is not a duration"),
        "missing data file": Case(
            ["--train_file", str(scratch / "nowhere.csv")], "--train_file", r"nowhere.csv.*does not exist"
        ),
        "missing text column": Case(["--text_column_name", "body"], "--text_column_name", r"'body'"),
        "missing label column": Case(["--label_column_name", "topic"], "--label_column_name", r"'topic'"),
        "empty split": Case(["--validation_file", str(empty)], "--validation_file", r"empty"),
        "head too small": Case(
            ["--model_name_or_path", str(two_label_head)], "--model_name_or_path", r"num_labels=2.*3 labels"
        ),
        "warmup longer than training": Case(
            ["--warmup", "1000"], "warmup", r"resolves to 1000 optimizer steps but training has only 24", given="1000"
        ),
        "floor above peak": Case(["--min_lr", "1e-3"], "min_lr", r"the floor must lie in"),
        "bad dict option": Case(
            ["--lr_scheduler_kwargs", '{"gama": 0.5}', "--lr_scheduler_type", "step"],
            "lr_scheduler_kwargs.gama",
            r"did you mean 'gamma'",
        ),
        "output dir is a file": Case(["--output_dir", str(a_file)], "--output_dir", r"exists and is a file"),
        "output dir holds a trained model": Case(
            ["--output_dir", str(trained)], "--output_dir", r"already holds a trained model"
        ),
        "missing checkpoint to resume": Case(
            ["--resume_from_checkpoint", str(scratch / "checkpoint-9")],
            "--resume_from_checkpoint",
            r"is not a checkpoint folder",
        ),
        "folder without weights": Case(
            ["--model_name_or_path", str(no_weights)],
            "--model_name_or_path",
            r"holds no weights \(looked for weights: model\.safetensors or .*pytorch_model\.bin",
        ),
        "unreadable config.json": Case(
            ["--model_name_or_path", str(bad_config)],
            "--model_name_or_path",
            r"config\.json that transformers cannot read",
        ),
        "truncated weights file": Case(
            ["--model_name_or_path", str(bad_weights)],
            "--model_name_or_path",
            r"has a model\.safetensors that cannot be read",
        ),
        "tokenizer name is a file": Case(
            ["--tokenizer_name", str(a_file)], "--tokenizer_name", r"is a file, not a model folder; .*tokenizer\.json"
        ),
        "missing config folder": Case(
            ["--config_name", str(scratch / "no-config")],
            "--config_name",
            r"does not exist \(looked for a folder holding config: config\.json",
        ),
        "data seed out of range": Case(["--data_seed", "-5"], "--data_seed", r"not a valid seed"),
        "split seed out of range": Case(["--split_seed", str(2**32)], "--split_seed", r"not a valid seed"),
        "fp16 where unsupported": Case(["--fp16"], "--fp16", r"needs a GPU; drop --fp16", unsupported_precision=True),
        "TrainingArguments validation": Case(
            ["--dataloader_prefetch_factor", "2"], "--dataloader_prefetch_factor", r"rejected by TrainingArguments"
        ),
        "unknown report_to": Case(["--report_to", "tensorbord"], "--report_to", r"did you mean 'tensorboard'"),
        "WORLD_SIZE without a launcher": Case(
            [],
            "WORLD_SIZE",
            r"asks for 2 processes but RANK, MASTER_ADDR, MASTER_PORT is not set; launch with `torchrun",
            env={"WORLD_SIZE": "2", **launcher},
        ),
        "RANK beyond WORLD_SIZE": Case(
            [],
            "RANK",
            r"must be below WORLD_SIZE=2",
            env={**launcher, "WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29599"},
        ),
        "cpu threads 0": Case(["--cpu_threads", "0"], "--cpu_threads", r"must be at least 1", given="0"),
        "unsupported data file": Case(
            ["--train_file", str(sheet)], "--train_file", r"unsupported file extension '\.xlsx'"
        ),
        "flag of another task": Case(
            ["--image_column_name", "img"],
            "--image_column_name",
            r"does not apply to task 'sequence-classification'.*--text_column_name",
        ),
        "metric the task does not report": Case(
            ["--metric_for_best_model", "pearson", "--eval_strategy", "epoch"],
            "metric_for_best_model",
            r"is not a metric of task 'sequence-classification'; use one of loss, accuracy",
        ),
        "prior upside down": Case(
            ["--lr_prior", "5e-5,1e-5"], "lr_prior", r"must be \[low, high\]", given="[5e-05, 1e-05]"
        ),
        "streaming without max_steps": Case(
            ["--streaming", "true"], "--max_steps", r"data of unknown length .* has no epochs to count; set --max_steps"
        ),
        "streaming with an epoch warmup": Case(
            ["--streaming", "true", "--max_steps", "4", "--warmup", "1ep"],
            "warmup",
            r"is in epochs, but data of unknown length .*; give optimizer steps or a fraction of --max_steps=4",
            given="1ep",
        ),
        "streaming a task read in memory": Case(
            ["--recipe", "cnn-step", "--streaming", "true", "--max_steps", "4"],
            "--streaming",
            r"task 'image-classification' reads its data in memory; drop --streaming",
        ),
        "rule field of the wrong type": Case(
            ["--lr_rule_reference_width", "wide"], "lr_rule_reference_width", r"must be an integer", given="wide"
        ),
        "rule field out of range": Case(
            ["--lr_rule_width_exponent", "7"], "lr_rule_width_exponent", r"must lie in \[0, 3\]", given="7.0"
        ),
        "depth exponent out of range": Case(
            ["--lr_rule_depth_exponent", "-1"], "lr_rule_depth_exponent", r"must lie in \[0, 3\]", given="-1.0"
        ),
        "LoRA reference alpha not positive": Case(
            ["--recipe", "lora-cls", "--lr_rule_lora_reference_alpha", "0"],
            "lr_rule_lora_reference_alpha",
            r"must be a positive finite number",
            given="0.0",
        ),
        "width rule with SGD": Case(
            ["--optimizer", "sgd"], "lr_rule", r"the width rule is for AdamW .* optimizer is 'sgd'; set lr_rule none"
        ),
        "LoRA+ ratio not positive": Case(
            ["--recipe", "lora-cls", "--loraplus_lr_ratio", "0"],
            "loraplus_lr_ratio",
            r"must be a positive finite number",
            given="0.0",
        ),
        "LoRA+ without LoRA": Case(
            ["--loraplus_lr_ratio", "16"],
            "loraplus_lr_ratio",
            r"scales LoRA's B matrices but peft is 'none'",
            given="16.0",
        ),
        "LR-group pattern that matches nothing": Case(
            ["--lr_groups", "[{pattern: decoder, multiplier: 2}]"],
            "lr_groups",
            r"matches no parameter name; trainable parameters are e.g. 'bert\.embeddings\.",
            given="decoder",
        ),
        "LR-group entry without a multiplier": Case(
            ["--lr_groups", "[{pattern: classifier}]"],
            "lr_groups",
            r"each entry needs exactly the keys pattern and multiplier",
        ),
    }


@pytest.fixture()
def existing_output(tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    return out


@pytest.fixture()
def quiet_progress():
    """datasets' map and transformers' weight-loading progress bars write to stderr; the one-line promise
    is about the error."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    yield
    datasets.enable_progress_bars()
    hf_logging.enable_progress_bar()


def _no_precision(monkeypatch):
    import ftrecipes.training.precision

    monkeypatch.setattr(
        ftrecipes.training.precision, "precision_supported", lambda precision, device=None: precision == "fp32"
    )


def test_catalogue_lists_every_case(tiny_base, cls_files, scratch):
    assert sorted(catalogue(tiny_base, cls_files, scratch)) == sorted(CASE_NAMES)
    page = (REPO / "docs" / "bad-input.md").read_text()
    assert Path(__file__).resolve().relative_to(REPO.resolve()).as_posix() in page  # the page names this catalogue


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_line_exit_2_and_leaves_output_dir_alone(
    name, tiny_base, cls_files, scratch, existing_output, quiet_progress, monkeypatch, capsys
):
    case = catalogue(tiny_base, cls_files, scratch)[name]
    for key, value in case.env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    if case.unsupported_precision:
        _no_precision(monkeypatch)
    watched = [existing_output] + [Path(case.argv[i + 1]) for i, a in enumerate(case.argv) if a == "--output_dir"]
    before = [snapshot(p) for p in watched]
    capsys.readouterr()
    code = pipeline.main(base_args(tiny_base, cls_files, existing_output) + case.argv)
    captured = capsys.readouterr()
    assert code == 2, (name, captured.err[-2000:])
    assert_one_line(captured.err, "finetune.py", case)
    assert [snapshot(p) for p in watched] == before, name


# The cases answered before torch, transformers or datasets is imported (ftrecipes.job.parse parses light
# first, then ftrecipes.job.check.check_early): the rest need the data, the model files, TrainingArguments
# itself or the machine's precision.
EARLY_CASES = [
    "unknown recipe",
    "mistyped flag",
    "wrong type (recipe)",
    "wrong type (TrainingArguments)",
    "negative seed",
    "data seed out of range",
    "split seed out of range",
    "output dir that cannot be created",
    "output dir is a file",
    "missing data file",
    "unsupported data file",
    "missing checkpoint to resume",
    "cpu threads 0",
    "epoch interval TrainingArguments cannot take",
    "floor above peak",
    "bad dict option",
    "prior upside down",
    "flag of another task",
    "metric the task does not report",
    "WORLD_SIZE without a launcher",
    "RANK beyond WORLD_SIZE",
    "rule field of the wrong type",
    "rule field out of range",
    "depth exponent out of range",
    "LoRA reference alpha not positive",
    "width rule with SGD",
    "LoRA+ ratio not positive",
    "LoRA+ without LoRA",
    "LR-group entry without a multiplier",
]

EARLY_PROBE = """
import contextlib, io, json, os, sys
from ftrecipes.job.run import main
HEAVY = ("torch", "transformers", "datasets", "accelerate")
results = []
for name, argv, env in json.loads(sys.stdin.read()):
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if v is not None})
    for k in [k for k, v in env.items() if v is None]:
        os.environ.pop(k, None)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    os.environ.clear()
    os.environ.update(saved)
    results.append([name, code, err.getvalue(), [m for m in HEAVY if m in sys.modules]])
print(json.dumps(results))
"""


def test_early_bad_input_imports_neither_torch_nor_transformers(tiny_base, cls_files, scratch, existing_output):
    """A fresh interpreter runs the main job on each early case in turn: each is refused as the catalogue
    says (one line, exit 2) with torch, transformers, datasets and accelerate still not imported."""
    cases = catalogue(tiny_base, cls_files, scratch)
    base = base_args(tiny_base, cls_files, existing_output)
    jobs = [[name, base + cases[name].argv, cases[name].env] for name in EARLY_CASES]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [PYTHON, "-c", EARLY_PROBE],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name, code, err, heavy in json.loads(proc.stdout):
        assert code == 2 and not heavy, (name, code, heavy, err)
        assert_one_line(err, "finetune.py", cases[name])


def test_warmup_fix_is_a_value_that_works():
    """The suggested warmup really plans, and so does the suggested longer run."""
    from ftrecipes import Timeline, get_recipe

    for warmup, max_steps in (("5%", 1), (1000, 12), ("100%", 12), ("99%", 50), ("1ep", 12)):
        recipe = get_recipe("cls", warmup=warmup, max_steps=max_steps)
        timeline = Timeline(96, 8, max_steps=max_steps)
        with pytest.raises(ConfigError) as err:
            recipe.plan(timeline)
        fix = err.value.fix
        if m := re.search(r"set warmup ('[^']*'|\d+)", fix):
            suggested = m.group(1).strip("'")
            suggested = int(suggested) if suggested.isdigit() else suggested
            assert suggested != warmup
            recipe.replace(warmup=suggested).plan(timeline)  # fits
        if m := re.search(r"train at least (\d+) optimizer steps", fix):
            longer = int(m.group(1))
            recipe.replace(max_steps=longer).plan(Timeline(96, 8, max_steps=longer))
            with pytest.raises(ConfigError):  # and it is the shortest
                recipe.replace(max_steps=longer - 1).plan(Timeline(96, 8, max_steps=longer - 1))
        assert "set warmup" in fix or "train at least" in fix, fix


def test_bf16_where_supported_passes_the_checks(monkeypatch):
    """On a machine with bf16 (as this issue's CPU has), --bf16 is not bad input: the checks pass and
    TrainingArguments gets use_cpu=True, which it needs to autocast on the CPU."""
    import torch

    import ftrecipes.training.precision
    from ftrecipes.job.check import check_before_loading

    monkeypatch.setattr(ftrecipes.training.precision, "precision_supported", lambda precision, device=None: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = check_before_loading(parse_args(["--bf16", "--output_dir", "runs/unused", "--model_name_or_path", "minilm"]))
    assert args.bf16 and args.use_cpu


# ------------------------------------------------------------------------------------------------
# The same boundary in the other entry points


def test_lr_find_checks_before_loading(tmp_path, capsys):
    out = tmp_path / "lr"
    assert cli.main(["lr-find", "--output_dir", "/proc/forbidden/lr"]) == 2
    assert_one_line(capsys.readouterr().err, "ftrecipes lr-find", Case([], "--output_dir", r"cannot be created"))
    assert cli.main(["lr-find", "--model_name_or_path", "bert-base-cased", "--output_dir", str(out)]) == 2
    assert_one_line(
        capsys.readouterr().err,
        "ftrecipes lr-find",
        Case([], "--model_name_or_path", r"not in the local Hugging Face cache"),
    )
    assert not out.exists()


def test_reproduce_goes_through_the_same_checks(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("reproduce_script", REPO / "scripts" / "reproduce.py")
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    assert reproduce.main(["--card", "bbc-minilm", "--output_dir", "/proc/forbidden/rep"]) == 2
    assert_one_line(capsys.readouterr().err, "reproduce.py", Case([], "--output_dir", r"cannot be created"))
    assert reproduce.main(["--seeds", "many"]) == 2
    assert_one_line(capsys.readouterr().err, "reproduce.py", Case([], "--seeds", r"invalid int value"))


def test_a_real_process_offline_hub_id_one_line_no_retries(tiny_base, cls_files, existing_output):
    before = snapshot(existing_output)
    result = subprocess.run(
        [
            PYTHON,
            FINETUNE,
            *base_args(tiny_base, cls_files, existing_output),
            "--model_name_or_path",
            "bert-base-cased",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert_one_line(
        result.stderr, "finetune.py", Case([], "--model_name_or_path", r"not in the local Hugging Face cache")
    )
    assert snapshot(existing_output) == before


# ------------------------------------------------------------------------------------------------
# Online Hub answers (the request is faked: tests never reach the Hub)


@pytest.mark.parametrize(
    "answer, pattern",
    [
        ("missing", r"neither a local folder nor a model on the Hub .*hf auth login"),
        ("gated", r"is a gated model on the Hub; accept its terms"),
        ("unreachable", r"not in the local Hugging Face cache and the Hub cannot be reached"),
    ],
)
def test_online_hub_answers_are_one_line(answer, pattern, monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    from ftrecipes.models.source import check_model_source

    httpx = pytest.importorskip("httpx2")  # huggingface_hub's HTTP client: its errors carry a response
    calls = []

    def model_info(self, repo_id, **kwargs):
        calls.append(repo_id)
        response = httpx.Response(
            404 if answer == "missing" else 403, request=httpx.Request("GET", "https://huggingface.co")
        )
        if answer == "missing":
            raise errors.RepositoryNotFoundError("not found", response=response)
        if answer == "gated":
            raise errors.GatedRepoError("gated", response=response)
        raise errors.HTTPError("no route to host")

    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    with pytest.raises(ConfigError) as err:
        check_model_source("someone/no-such-model-h5")
    assert err.value.field == "--model_name_or_path" and re.search(pattern, str(err.value)), str(err.value)
    assert calls == ["someone/no-such-model-h5"]  # one request, no retries


def test_cached_hub_id_passes_offline(tmp_path, tiny_base):
    """A Hub id whose files are in the cache is fine offline (laid out as huggingface_hub caches it)."""
    from ftrecipes.models.source import check_model_source

    snap = tmp_path / "models--someone--tiny" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tiny_base) / name, snap / name)
    (tmp_path / "models--someone--tiny" / "refs").mkdir()
    (tmp_path / "models--someone--tiny" / "refs" / "main").write_text("a" * 40)
    assert (
        check_model_source("someone/tiny", parts=("config", "weights", "tokenizer"), cache_dir=str(tmp_path))
        == "someone/tiny"
    )
    assert json.loads((snap / "config.json").read_text())["model_type"] == "bert"


def test_a_bug_is_not_hidden_as_bad_input(monkeypatch, tiny_base, cls_files, existing_output):
    """Only user errors become one line: an exception from our own code keeps its traceback (exit 1)."""
    import ftrecipes.job.check

    def broken(config):
        raise KeyError("a bug in the checks")

    monkeypatch.setattr(ftrecipes.job.check, "check_before_loading", broken)
    with pytest.raises(KeyError, match="a bug in the checks"):
        pipeline.main(base_args(tiny_base, cls_files, existing_output))


def _script(name):
    spec = importlib.util.spec_from_file_location(
        f"ftrecipes_script_{name.replace('/', '_')}", REPO / "scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "entry, argv, field",
    [
        ("finetune", ["--recipe"], "--recipe"),  # the rest of finetune.py's flags: the catalogue above
        ("ftrecipes", ["show"], "NAME"),
        ("ftrecipes", ["plot", "cls", "--total_steps"], "--total_steps"),
        ("ftrecipes", ["list", "--nope"], "--nope"),
        ("sweep", ["--lr", "2e-5", "--n_trials", "many"], "--n_trials"),
        ("reproduce", ["--card", "digits-cnn", "--seeds", "x"], "--seeds"),
        ("benchmarks/recipe_study", ["--arms", "best"], "--arms"),
        ("benchmarks/adaptation_study", ["--seeds"], "--seeds"),
        ("benchmarks/throughput", ["--steps", "x"], "--steps"),
        ("benchmarks/lr_finder", ["--grid"], "--grid"),
        ("ftrecipes", ["plot-run"], "output_dir"),
    ],
)
def test_argparse_complaints_are_one_line_naming_the_flag(entry, argv, field, tmp_path, capsys):
    """What argparse itself rejects (a value of the wrong type, a choice not offered, a missing value or
    argument, an unknown flag) is reported like every other bad input: one line naming the flag, exit 2."""
    from ftrecipes.sweeps import study as sweep

    mains = {"finetune": pipeline.main, "ftrecipes": cli.main, "sweep": sweep.main}
    main = mains[entry] if entry in mains else _script(entry).main
    out = tmp_path / "out"
    code = main(["--output_dir", str(out), *argv] if entry in ("finetune", "sweep") else argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.match(rf"[\w. -]+: error: {re.escape(field)}\b", err), err
    assert "--help" in err and not out.exists()
