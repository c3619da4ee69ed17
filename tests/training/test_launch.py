"""Launch configurations and launch checks (ftrecipes.training.launch): cheap, environment-driven.

The shipped Accelerate configs load through accelerate's own config classes and use only keys
`accelerate launch` knows; the DeepSpeed JSONs leave optimizer and schedule to the recipe. Each way a
launch silently goes wrong (DeepSpeed owning the schedule, FSDP/DeepSpeed on CPU, N processes seen as
1, a prebuilt optimizer under FSDP) is one line and exit 2.
"""

import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import FINETUNE, PYTHON, REPO, free_port

from ftrecipes.config.errors import ConfigError
from ftrecipes.training.launch import (
    check_deepspeed_config,
    check_launch,
    check_optimizers_path,
    check_world_size,
    cpu_threads_for,
    is_local_main_process,
    read_launch,
    refuse,
)

LAUNCH = REPO / "recipes" / "launch"
YAMLS = sorted(LAUNCH.glob("*.yaml"))
JSONS = sorted(LAUNCH.glob("*.json"))


def test_the_launch_folder_ships_every_config():
    names = {p.name for p in YAMLS + JSONS}
    assert {
        "cpu.yaml",
        "ddp.yaml",
        "multinode.yaml",
        "fsdp2.yaml",
        "deepspeed-zero2.yaml",
        "deepspeed-zero3.yaml",
        "deepspeed-zero2.json",
        "deepspeed-zero3.json",
    } <= names


def _launch_dests() -> set[str]:
    from accelerate.commands.launch import launch_command_parser

    return {action.dest for action in launch_command_parser()._actions}


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_accelerate_config_loads_with_accelerates_own_classes(path, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    monkeypatch.chdir(REPO)  # the DeepSpeed JSON paths are relative to the project root, as documented
    config = load_config_from_file(str(path))  # raises on unknown top-level keys
    assert isinstance(config, ClusterConfig)
    assert config.num_processes >= 2
    # `accelerate launch` copies nested keys onto its own arguments (fsdp_config.x -> args.fsdp_x): a
    # key it has no argument for would be silently ignored, so every one must be a launch argument.
    dests = _launch_dests()
    for key in config.fsdp_config:
        assert (key if key.startswith("fsdp") else f"fsdp_{key}") in dests, key
    for key in config.deepspeed_config:
        assert key in dests, key
    kind = config.distributed_type.value
    header = [line for line in path.read_text().splitlines() if line.startswith("#")][:6]
    # the header shows the commands a pip user runs: copy the file out, launch the job's module with it
    assert any(f"ftrecipes configs cp {path.stem} ." in line for line in header), header
    commands = " ".join(line.lstrip("#").strip() for line in header)  # a command may go on after a backslash
    launch = rf"accelerate launch --config_file {re.escape(path.name)} [^(]*-m ftrecipes\.train --recipe"
    assert re.search(launch, commands), header
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_version"] == 2
    if kind == "DEEPSPEED":
        json_path = Path(config.deepspeed_config["deepspeed_config_file"])
        assert json_path.is_file()
        stage = int(re.search(r"zero(\d)", path.name).group(1))
        assert json.loads(json_path.read_text())["zero_optimization"]["stage"] == stage
    if path.name == "cpu.yaml":
        assert config.use_cpu and kind == "MULTI_GPU"  # MULTI_GPU: torchrun starts the processes (see its header)
    if path.name == "multinode.yaml":
        assert config.num_machines == 2 and config.main_process_port


@pytest.mark.parametrize("path", JSONS, ids=lambda p: p.name)
def test_deepspeed_json_leaves_optimizer_and_schedule_to_the_recipe(path):
    config = check_deepspeed_config(str(path))
    assert "optimizer" not in config and "scheduler" not in config
    # Trainer fills "auto" from TrainingArguments, i.e. from the recipe (transformers HfTrainerDeepSpeedConfig).
    for key in (
        "train_micro_batch_size_per_gpu",
        "train_batch_size",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert config[key] == "auto", key
    assert config["bf16"]["enabled"] == config["fp16"]["enabled"] == "auto"


def _write(tmp_path, payload, name="ds.json"):
    path = tmp_path / name
    path.write_text(json.dumps(payload))
    return str(path)


def test_deepspeed_scheduler_block_names_what_it_replaces_and_the_fix(tmp_path):
    path = _write(tmp_path, {"zero_optimization": {"stage": 2}, "scheduler": {"type": "WarmupDecayLR", "params": {}}})
    with pytest.raises(ConfigError) as err:
        check_deepspeed_config(path)
    message = str(err.value)
    assert message.startswith(
        f'--deepspeed={path!r}: has "scheduler" (WarmupDecayLR) would replace the recipe\'s LR schedule'
    )
    assert "DummyScheduler" in message and 'remove the "scheduler" block' in message and "\n" not in message


def test_deepspeed_optimizer_and_scheduler_blocks_are_both_named(tmp_path):
    path = _write(tmp_path, {"optimizer": {"type": "AdamW"}, "scheduler": {"type": "WarmupLR"}})
    with pytest.raises(
        ConfigError,
        match=r'"optimizer" \(AdamW\) would replace the recipe\'s optimizer and its weight-decay groups.*'
        r'"scheduler" \(WarmupLR\).*remove the "optimizer" and "scheduler" blocks',
    ):
        check_deepspeed_config(path)
    with pytest.raises(
        ConfigError, match=r"^--deepspeed: has \"optimizer\""
    ):  # a dict config (TrainingArguments takes dicts)
        check_deepspeed_config({"optimizer": {"type": "Adam"}})


@pytest.mark.parametrize(
    "given, pattern",
    [
        ("missing.json", r"is not a DeepSpeed config file"),
        ('{"zero_optimization": ', r"is not valid JSON"),
        ("[1, 2]", r"must hold a JSON object"),
    ],
)
def test_deepspeed_config_that_cannot_be_read(tmp_path, given, pattern):
    if given == "[1, 2]":
        given = _write(tmp_path, [1, 2])
    with pytest.raises(ConfigError, match=pattern):
        check_deepspeed_config(given)


def test_accelerate_deepspeed_config_file_is_checked_too(tmp_path):
    path = _write(tmp_path, {"scheduler": {"type": "WarmupLR"}})
    env = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_CONFIG_FILE": path, "WORLD_SIZE": "2"}
    with pytest.raises(ConfigError, match=r"^deepspeed_config_file=.*\"scheduler\" \(WarmupLR\) would replace"):
        check_launch({}, env, accelerator_available=True)  # even on GPUs: the schedule would not be the recipe's
    good = str(LAUNCH / "deepspeed-zero2.json")
    assert check_launch({}, {**env, "ACCELERATE_DEEPSPEED_CONFIG_FILE": good}, accelerator_available=True) == {}


# What `accelerate launch --config_file recipes/launch/fsdp2.yaml --num_processes 2` hands each process
# (recorded from accelerate 1.15 on this machine).
FSDP_ENV = {
    "ACCELERATE_USE_FSDP": "true",
    "FSDP_VERSION": "2",
    "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
    "WORLD_SIZE": "2",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "LOCAL_WORLD_SIZE": "2",
    "ACCELERATE_MIXED_PRECISION": "no",
}


def test_fsdp_on_a_machine_without_gpu_is_an_error_not_a_fallback():
    with pytest.raises(ConfigError) as err:
        check_launch({}, FSDP_ENV, accelerator_available=False)
    message = str(err.value)
    assert message.startswith("ACCELERATE_USE_FSDP='true': FSDP cannot engage on a machine without a GPU")
    assert "plain DDP" in message
    assert "`ftrecipes configs cp cpu .` then `accelerate launch --config_file cpu.yaml -m ftrecipes.train" in message
    with pytest.raises(ConfigError, match=r"FSDP cannot engage with use_cpu"):
        check_launch({}, {**FSDP_ENV, "ACCELERATE_USE_CPU": "true"}, accelerator_available=True)
    with pytest.raises(ConfigError, match=r"^--fsdp='full_shard auto_wrap': FSDP cannot engage"):
        check_launch({"fsdp": "full_shard auto_wrap"}, {}, accelerator_available=False)
    assert check_launch({}, FSDP_ENV, accelerator_available=True) == {}  # on GPUs it engages


def test_deepspeed_on_cpu_is_an_error(tmp_path):
    good = str(LAUNCH / "deepspeed-zero3.json")
    with pytest.raises(
        ConfigError, match=r"^--deepspeed=.*deepspeed-zero3.json'?: DeepSpeed cannot engage on a machine without a GPU"
    ):
        check_launch({"deepspeed": good}, {}, accelerator_available=False)


def test_n_processes_on_cpu_train_as_one_ddp_run():
    """accelerate launch with recipes/launch/cpu.yaml (MULTI_GPU + use_cpu) does not forward use_cpu:
    each process would build a one-process Trainer. With no GPU and no engine, use_cpu is turned on."""
    env = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert check_launch({"seed": 3}, env, accelerator_available=False) == {"seed": 3, "use_cpu": True}
    assert check_launch({}, {"WORLD_SIZE": "1"}, accelerator_available=False) == {}  # one process: nothing to do
    assert check_launch({}, env, accelerator_available=True) == {}  # GPUs: nccl, as launched
    assert check_launch({"use_cpu": False}, env, accelerator_available=False) == {"use_cpu": False}  # explicit: kept
    assert read_launch({"use_cpu": False}, env).use_cpu_given


def test_a_launch_trainer_sees_as_one_process_is_refused():
    env = {"WORLD_SIZE": "2"}
    with pytest.raises(ConfigError) as err:
        check_world_size(SimpleNamespace(world_size=1, use_cpu=False), env)
    assert str(err.value).startswith(
        "WORLD_SIZE='2': the launcher started 2 processes but Trainer sees 1, so each would train alone"
    )
    check_world_size(SimpleNamespace(world_size=2, use_cpu=True), env)
    check_world_size(SimpleNamespace(world_size=1, use_cpu=False), {})


def test_prebuilt_optimizers_under_fsdp_or_deepspeed_name_recipe_trainer():
    plain = SimpleNamespace(deepspeed=None, fsdp=[])
    check_optimizers_path(plain, {})
    with pytest.raises(ConfigError, match=r"cannot be used under FSDP; use ftrecipes.RecipeTrainer"):
        check_optimizers_path(plain, {"ACCELERATE_USE_FSDP": "true"})
    with pytest.raises(ConfigError, match=r"cannot be used under DeepSpeed; use ftrecipes.RecipeTrainer"):
        check_optimizers_path(SimpleNamespace(deepspeed="ds.json", fsdp=[]), {})
    with pytest.raises(ConfigError, match=r"under FSDP"):
        check_optimizers_path(SimpleNamespace(deepspeed=None, fsdp=["full_shard"]), {})


def test_finetune_refuses_bad_launches_before_anything_is_written(tiny_base, cls_files, tmp_path, monkeypatch, capsys):
    from ftrecipes.job.run import main

    out = tmp_path / "out"
    base = [
        "--recipe",
        "cls",
        "--model_name_or_path",
        tiny_base,
        "--train_file",
        cls_files["train"],
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
        "--report_to",
        "none",
    ]
    bad = _write(tmp_path, {"scheduler": {"type": "WarmupDecayLR"}})
    assert main(base + ["--deepspeed", bad]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith(f'finetune.py: error: --deepspeed={bad!r}: has "scheduler"')
    )
    monkeypatch.setattr("ftrecipes.training.launch.has_accelerator", lambda: False)
    for key, value in FSDP_ENV.items():
        if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):  # no process group in-process
            monkeypatch.setenv(key, value)
    assert main(base) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("finetune.py: error: ACCELERATE_USE_FSDP='true': FSDP cannot engage")
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "environ, requested, expected",
    [
        ({}, None, 8),  # python finetune.py: every core
        ({"OMP_NUM_THREADS": "1"}, None, None),  # set by the user outside a launcher: kept
        ({"OMP_NUM_THREADS": "1", "ACCELERATE_MIXED_PRECISION": "no"}, None, 8),  # accelerate launch's own default
        ({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}, None, 4),  # torchrun, 2 processes on this machine
        ({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "16"}, None, 1),
        ({"OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}, 3, 3),  # --cpu_threads wins
    ],
)
def test_cpu_threads_keep_the_users_omp_setting_but_not_a_launchers(environ, requested, expected):
    assert cpu_threads_for(requested, environ, cores=8) == expected


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, True),  # no launcher
        ({"LOCAL_RANK": "0", "RANK": "2"}, True),  # the first process of the second machine
        ({"LOCAL_RANK": "1", "RANK": "1"}, False),
        ({"LOCAL_RANK": "-1"}, True),  # torch's "not launched"
        ({"OMPI_COMM_WORLD_LOCAL_RANK": "3"}, False),  # mpirun
        ({"LOCAL_RANK": "one"}, True),  # unreadable: say why rather than stay silent
    ],
)
def test_the_first_process_on_each_machine_is_the_one_that_refuses_aloud(environ, expected):
    assert is_local_main_process(environ) is expected


def test_another_process_waits_for_its_launcher_then_still_says_why(capsys):
    error = ConfigError("--recipe", "clss", "is not a known recipe", "did you mean 'cls'?")
    assert refuse("finetune.py", error, {"LOCAL_RANK": "0"}) == 2
    assert refuse("finetune.py", error, {"LOCAL_RANK": "1"}, wait_s=0.01) == 2  # not stopped by a launcher
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["finetune.py: error: --recipe='clss': is not a known recipe; did you mean 'cls'?"] * 2


@pytest.mark.multiprocess
@pytest.mark.parametrize(
    "entry, program",
    [
        ([FINETUNE], "finetune.py"),
        (["-m", "ftrecipes.train"], "ftrecipes train"),
    ],
    ids=["script", "module"],
)
def test_under_torchrun_a_refusal_is_printed_once(entry, program, tmp_path):
    """Two processes meet the same bad input: one line in all, and nothing written (the script and the
    module entry alike)."""
    out = tmp_path / "out"
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "true",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        *entry,
        "--recipe",
        "clss",
        "--output_dir",
        str(out),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode != 0
    refusals = [line for line in result.stderr.splitlines() if line.startswith(f"{program}: error:")]
    assert len(refusals) == 1, result.stderr[-3000:]
    assert refusals[0].startswith(f"{program}: error: --recipe='clss': is not a known recipe"), result.stderr[-3000:]
    assert not out.exists()
