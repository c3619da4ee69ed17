"""Baseline cards: schema of every shipped card, the pass/fail rule, unreachable (Hub) cards, reproduce.py."""

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch
import yaml
from conftest import PYTHON, REPO

from ftrecipes import ConfigError
from ftrecipes.baselines.cards import baselines_dir, card_from_dict, list_cards, load_card
from ftrecipes.baselines.hub import unreachable_reason
from ftrecipes.baselines.runs import record_expected
from ftrecipes.baselines.studies import STUDY_ARMS, study_markdown, summarize_study
from ftrecipes.baselines.verdict import judge

torch.set_num_threads(1)  # tiny models: one thread is fastest on the shared cores
OFFLINE_CARDS = {
    "bbc-minilm",
    "tweets-minilm",
    "ner-minilm",
    "digits-cnn",
    "bbc-minilm-llrd",
    "bbc-minilm-lora",
    "tweets-minilm-llrd",
    "tweets-minilm-lora",
}


def _script(name):
    spec = importlib.util.spec_from_file_location(
        f"ftrecipes_script_{name.replace('/', '_')}", REPO / "scripts" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reproduce = _script("reproduce")
study = _script("benchmarks/recipe_study")


def good_card(**changes):
    data = {
        "description": "tiny",
        "task": "image-classification",
        "model": "small-cnn",
        "data": "digits",
        "recipe": "cnn-step",
        "overrides": {
            "max_steps": 10,
            "split_seed": 42,
            "save_strategy": "no",
            "eval_strategy": "no",
            "plots": False,
            "max_eval_samples": 40,
        },
        "metric": "eval_accuracy",
        "expected": 0.5,
        "tolerance": 0.5,
        "seeds": 2,
        "needs_hub": False,
        "source": {"kind": "recorded", "command": "python scripts/reproduce.py --card tiny"},
    }
    data.update(changes)
    return data


def write_card(folder: Path, name="tiny", **changes) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text("# a test card\n" + yaml.safe_dump(good_card(**changes), sort_keys=False))
    return path


# ---------------------------------------------------------------------------------------------
# Schema


def test_offline_and_publication_cards_are_shipped():
    names = set(list_cards())
    assert OFFLINE_CARDS <= names
    assert any(load_card(n).source["kind"] == "publication" for n in names)


@pytest.mark.parametrize("name", list_cards())
def test_every_card_loads_and_validates(name):
    text = (baselines_dir() / f"{name}.yaml").read_text()
    assert text.startswith("#") and f"--card {name}" in text  # headed by its reproduce command
    card = load_card(name)
    assert card.name == name and card.seeds >= 1 and card.tolerance >= 0
    assert card.metric.startswith("eval_")
    if name in OFFLINE_CARDS:
        assert card.hub_names() == [] and not card.needs_hub
        assert card.source["kind"] == "recorded" and card.source["command"].startswith(
            f"ftrecipes reproduce --card {name} "
        )
        assert card.overrides.get("split_seed") is not None  # one split for every training seed
    else:
        assert card.needs_hub and card.hub_names() and card.expected is not None
        assert card.source["kind"] == "publication" and card.source["settings"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"epochs": 3}, "epochs"),  # unknown key
        ({"metric": None}, "metric"),
        ({"expected": "high"}, "expected"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"seeds": 0}, "seeds"),
        ({"check": "about"}, "check"),
        ({"task": "sequence-classification"}, "task"),  # differs from the recipe's task
        ({"recipe": "cnn-stepp"}, "recipe"),
        ({"metric": "accuracy"}, "metric"),
        ({"overrides": {"learnig_rate": 0.1}}, "overrides.learnig_rate"),
        ({"overrides": {"seed": 3}}, "overrides.seed"),
        ({"source": {"kind": "recorded"}}, "source.command"),
        ({"source": {"kind": "publication", "citation": "x"}}, "source.settings"),
        ({"source": {"kind": "blog"}}, "source.kind"),
    ],
)
def test_bad_cards_name_the_field(changes, field):
    with pytest.raises(ConfigError) as err:
        card_from_dict(good_card(**changes))
    assert err.value.field == field, str(err.value)


@pytest.mark.parametrize("missing", ["description", "expected", "tolerance", "seeds", "source", "metric"])
def test_missing_field_is_named(missing):
    data = good_card()
    del data[missing]
    with pytest.raises(ConfigError) as err:
        card_from_dict(data)
    assert err.value.field == missing and "missing" in str(err.value)


def test_card_argv_is_a_finetune_command_line():
    card = card_from_dict(good_card(), name="tiny")
    argv = card.argv(43, "/tmp/out", {"learning_rate": 0.05})
    assert argv[:6] == ["--recipe", "cnn-step", "--model_name_or_path", "small-cnn", "--dataset_name", "digits"]
    assert argv[argv.index("--seed") + 1] == "43" and argv[argv.index("--learning_rate") + 1] == "0.05"
    assert argv[argv.index("--plots") + 1] == "false"
    assert card.seed_list == [42, 43]


# ---------------------------------------------------------------------------------------------
# Pass / fail


def test_judge_within_is_inclusive_at_the_tolerance():
    v = judge([0.90, 0.92, 0.94], expected=0.95, tolerance=0.03)
    assert v.mean == pytest.approx(0.92) and v.std == pytest.approx(0.02)  # sample std (ddof=1)
    assert v.passed and v.status == "PASS"
    assert not judge([0.90, 0.92, 0.94], expected=0.95, tolerance=0.0299).passed
    assert not judge([0.99], expected=0.95, tolerance=0.03).passed  # too good is a miss too: something changed
    assert judge([0.99], expected=0.95, tolerance=0.03).std == 0.0


def test_judge_at_least_accepts_beating_the_figure():
    assert judge([0.99], expected=0.9232, tolerance=0.01, check="at_least").passed
    assert judge([0.9132], expected=0.9232, tolerance=0.01, check="at_least").passed
    assert not judge([0.9131], expected=0.9232, tolerance=0.01, check="at_least").passed


def test_judge_unrecorded_and_diverged():
    assert judge([0.5, 0.6], expected=None, tolerance=0.1).status == "UNRECORDED"
    v = judge([0.9, float("nan")], expected=0.9, tolerance=1.0)
    assert v.passed is False and math.isnan(v.mean)
    line = judge([0.9, 0.91], 0.9, 0.02).line("eval_accuracy")
    assert "eval_accuracy 0.9050 ± 0.0071 (n=2) vs expected 0.9000 ± 0.0200: PASS" == line


# ---------------------------------------------------------------------------------------------
# Unreachable cards and reproduce.py


def test_hub_card_exits_2_with_one_line_offline(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = reproduce.main(["--card", "sst2-bert-base-cased", "--output_dir", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "reproduce.py: card 'sst2-bert-base-cased' needs the Hugging Face Hub"
    )
    assert "bert-base-cased" in lines[0] and not (tmp_path / "out").exists()


def test_hub_card_unreachable_without_offline_flag(monkeypatch):
    import ftrecipes.baselines.hub as baselines_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(baselines_hub, "hub_reachable", lambda timeout=3.0: False)
    assert "not reachable" in unreachable_reason(load_card("rte-bert-base-cased"))
    assert unreachable_reason(load_card("digits-cnn")) is None


def test_hub_card_exits_2_from_the_command_line(tmp_path):
    result = subprocess.run(
        [
            PYTHON,
            str(REPO / "scripts" / "reproduce.py"),
            "--card",
            "rte-bert-base-cased",
            "--output_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_card_whose_override_is_not_a_flag_exits_2_before_any_run(tmp_path, capsys):
    """The Hub check comes first (it needs no transformers); the overrides are still checked before a run."""
    card = yaml.safe_load((REPO / "recipes" / "baselines" / "digits-cnn.yaml").read_text())
    card["overrides"] = {"learnig_rate": 0.1}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(card))
    assert reproduce.main(["--card", str(path), "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "overrides.learnig_rate" in err and "learning_rate" in err
    assert not (tmp_path / "out").exists()


def test_list_shows_every_card(capsys):
    assert reproduce.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in list_cards():
        assert f"| {name} |" in out
    assert "no (Hub)" in out and ("not recorded" in out or "±" in out)


def test_unknown_card_and_bad_flags_exit_2(capsys):
    assert reproduce.main(["--card", "bbc-minlm"]) == 2
    assert "did you mean 'bbc-minilm'" in capsys.readouterr().err
    assert reproduce.main(["--card", "digits-cnn", "--override", "max_steps"]) == 2


def test_reproduce_runs_seeds_and_judges(tmp_path, capsys):
    card = write_card(tmp_path)
    out = tmp_path / "runs"
    assert reproduce.main(["--card", str(card), "--output_dir", str(out)]) == 0  # accuracy lies in 0.5 ± 0.5
    stdout = capsys.readouterr().out
    assert "tiny: eval_accuracy" in stdout and ": PASS" in stdout
    result = json.loads((out / "tiny" / "result.json").read_text())
    assert [s["seed"] for s in result["seeds"]] == [42, 43] and result["status"] == "PASS"
    assert all(0 <= v <= 1 for v in result["values"]) and result["machine"]["torch_threads"] >= 1
    for seed in (42, 43):
        assert (out / "tiny" / f"seed-{seed}" / "eval_results.json").is_file()

    missing = write_card(tmp_path, "impossible", expected=2.0, tolerance=0.0, seeds=1)
    assert reproduce.main(["--card", str(missing), "--output_dir", str(out)]) == 1
    assert ": FAIL" in capsys.readouterr().out


def test_record_writes_expected_and_keeps_the_card_valid(tmp_path, capsys):
    card_file = write_card(tmp_path, expected=None, tolerance=0.001, seeds=2)
    assert reproduce.main(["--card", str(card_file), "--output_dir", str(tmp_path / "runs"), "--record"]) == 0
    text = card_file.read_text()
    assert text.startswith("# a test card")  # comments kept
    card = load_card(str(card_file))
    result = json.loads((tmp_path / "runs" / "tiny" / "result.json").read_text())
    assert card.expected == pytest.approx(result["mean"], abs=1e-4)
    assert card.tolerance >= max(0.001, 3 * result["std"] - 1e-4)
    assert card.recorded["values"] == pytest.approx(result["values"], abs=1e-6) and card.recorded["seeds"] == [42, 43]
    # the precision the seeds trained in, as their plan.json says (precision 'auto' differs between CPUs)
    plans = [json.loads((Path(r["output_dir"]) / "plan.json").read_text()) for r in result["seeds"]]
    trained = {"bf16" if p["sources"]["bf16"]["value"] else "fp32" for p in plans}
    assert (
        card.recorded["precision"] == ", ".join(sorted(trained))
        and {r["precision"] for r in result["seeds"]} == trained
    )
    # The recorded card now reproduces (same seeds, same machine).
    assert reproduce.main(["--card", str(card_file), "--output_dir", str(tmp_path / "again")]) == 0


def test_record_expected_replaces_lines_in_place(tmp_path):
    path = tmp_path / "c.yaml"
    shutil.copy(baselines_dir() / "bbc-minilm.yaml", path)
    # A floor below 3 std of the values recorded next, whatever the shipped card's tolerance is today.
    text = path.read_text()
    path.write_text(re.sub(r"(?m)^tolerance: [0-9.]+", "tolerance: 0.0100", text))
    card = load_card(str(path))
    record_expected(card, judge([0.95, 0.97, 0.96], None, 0.01), "cmd")
    again = load_card(str(path))
    assert again.expected == pytest.approx(0.96) and again.tolerance == pytest.approx(0.03)
    assert again.recorded["command"] == "cmd"
    assert "# filled in by the recording run" in path.read_text()  # the inline comment survived


# ---------------------------------------------------------------------------------------------
# Study


def test_study_summary_and_table():
    rows = [
        {
            "card": "c",
            "arm": a,
            "seed": s,
            "eval_accuracy": acc,
            "eval_f1": acc - 0.1,
            "wall_time_s": 10.0,
            "train_runtime": 8.0,
        }
        for a, accs in (("recipe", (0.9, 0.92)), ("constant", (0.8, 0.8)))
        for s, acc in zip((42, 43), accs)
    ]
    summary = summarize_study(rows)
    assert summary[0]["eval_accuracy"]["mean"] == pytest.approx(0.91) and summary[1]["eval_accuracy"]["std"] == 0
    table = study_markdown(summary)
    assert table.splitlines()[0].startswith("| card | arm | accuracy | macro-F1 |")
    assert "| c | recipe | 0.9100 ± 0.0141 | 0.8100 ± 0.0141 | 10 ± 0 | 8 ± 0 | 2 |" in table
    assert STUDY_ARMS["trainer-defaults"] == {
        "lr_scheduler_type": "linear",
        "warmup": 0,
        "min_lr_rate": 0,
        "weight_decay": 0,
        "learning_rate": 5e-5,
        "lr_scaling": "none",
    }


def test_study_smoke_on_a_tiny_model(tiny_base, tmp_path, capsys):
    card = tmp_path / "bbc-tiny.yaml"
    data = good_card(
        task="sequence-classification",
        recipe="cls",
        model=tiny_base,
        data="bbc_news",
        seeds=1,
        overrides={
            "max_train_samples": 32,
            "max_eval_samples": 16,
            "max_steps": 2,
            "max_seq_length": 32,
            "split_seed": 42,
            "save_strategy": "no",
            "eval_strategy": "no",
            "plots": False,
        },
    )
    card.write_text(yaml.safe_dump(data))
    assert study.main(["--cards", str(card), "--seeds", "1", "--output_dir", str(tmp_path / "study")]) == 0
    out = capsys.readouterr().out
    for arm in STUDY_ARMS:
        assert f"| bbc-tiny | {arm} |" in out
    record = json.loads((tmp_path / "study" / "study.json").read_text())
    assert len(record["runs"]) == 3
    lr = {
        r["arm"]: r["argv"][r["argv"].index("--lr_scheduler_type") + 1]
        for r in record["runs"]
        if "--lr_scheduler_type" in r["argv"]
    }
    assert lr == {"trainer-defaults": "linear", "constant": "constant"}


def test_adaptation_study_smoke_with_a_card_given_as_a_path(tiny_base, tmp_path, monkeypatch, capsys):
    """The whole study, its spawned per-run processes run in this one (each costs an interpreter start);
    each run reloads the card from its file, so a card outside recipes/baselines works too (by name it
    failed with 'is not a known card')."""
    card = tmp_path / "bbc-tiny.yaml"
    card.write_text(
        yaml.safe_dump(
            good_card(
                task="sequence-classification",
                recipe="cls",
                model=tiny_base,
                data="bbc_news",
                seeds=1,
                overrides={
                    "max_train_samples": 32,
                    "max_eval_samples": 16,
                    "max_steps": 2,
                    "max_seq_length": 32,
                    "split_seed": 42,
                    "eval_strategy": "no",
                    "plots": False,
                },
            )
        )
    )
    adaptation = _script("benchmarks/adaptation_study")

    class InProcessExecutor:  # what the study uses of concurrent.futures.ProcessPoolExecutor
        def __init__(self, max_workers, mp_context):
            assert max_workers == 1 and mp_context.get_start_method() == "spawn"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            future = Future()
            future.set_result(fn(*args))
            return future

    monkeypatch.setattr(adaptation, "ProcessPoolExecutor", InProcessExecutor)
    out = tmp_path / "study"
    import transformers

    verbosity = transformers.logging.get_verbosity()
    try:
        assert adaptation.main(["--cards", str(card), "--arms", "lora", "--seeds", "1", "--output_dir", str(out)]) == 0
    finally:
        transformers.logging.set_verbosity(verbosity)  # a spawned run silences transformers for its own process
    assert "| bbc-tiny | `lora-cls` |" in capsys.readouterr().out
    (row,) = json.loads((out / "adaptation_study.json").read_text())["runs"]
    assert (
        row["exit_code"] == 0 and row["steps"] == 2 and 0 < row["trainable_parameters"] < 10_000
    )  # the adapters and the head


@pytest.mark.parametrize("name", ["study", "adaptation_study"])
def test_studies_refuse_bad_cards_seeds_and_hub_cards_before_any_run(name, tmp_path, capsys):
    script = study if name == "study" else _script(f"benchmarks/{name}")
    out = tmp_path / "out"
    cases = {  # argv -> what the one line says
        ("--cards", "digits-cnn"): f"{name}.py: error: --cards='digits-cnn': has task 'image-classification'",
        ("--cards", "bbc-minilm", "--seeds", "0"): f"{name}.py: error: --seeds=0",
        ("--cards", "rte-bert-base-cased"): f"{name}.py: card 'rte-bert-base-cased' needs the Hugging Face Hub",
    }
    for argv, line in cases.items():
        assert script.main([*argv, "--output_dir", str(out)]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(line) and len(err.strip().splitlines()) == 1, (argv, err)
    assert not out.exists()
