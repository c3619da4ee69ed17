"""``ftrecipes configs``: the launch configs shipped as package data, listed and copied out (as
torchtune's ``tune ls`` / ``tune cp``); a bad name or a file in the way is one line and exit 2."""

import fnmatch
import json

import pytest
import tomllib
import yaml
from conftest import REPO

from ftrecipes import cli
from ftrecipes.config.launch_configs import copy_launch_config, launch_configs

LAUNCH = REPO / "recipes" / "launch"


def test_every_launch_file_is_package_data_and_listed():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["ftrecipes"]
    for path in LAUNCH.iterdir():
        assert any(fnmatch.fnmatch(f"recipes/launch/{path.name}", pattern) for pattern in data), path.name
    assert sorted(c.file_name for c in launch_configs()) == sorted(p.name for p in LAUNCH.iterdir())


def test_configs_lists_name_and_purpose(capsys):
    assert cli.main(["configs"]) == 0
    listed = capsys.readouterr().out
    assert cli.main(["configs", "ls"]) == 0 and capsys.readouterr().out == listed
    for config in launch_configs():
        assert config.purpose and any(
            line.split()[:1] == [config.name] and config.purpose in line for line in listed.splitlines()
        )
    assert "cpu" in listed and "ftrecipes configs cp NAME [DEST]" in listed and "-m ftrecipes.train" in listed


def test_cp_writes_the_shipped_file_into_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["configs", "cp", "cpu"]) == 0  # DEST defaults to the current folder
    assert (tmp_path / "cpu.yaml").read_text() == (LAUNCH / "cpu.yaml").read_text()
    out = capsys.readouterr().out
    assert "wrote cpu.yaml" in out and "accelerate launch --config_file cpu.yaml -m ftrecipes.train" in out
    (tmp_path / "mine").mkdir()
    assert cli.main(["configs", "cp", "ddp.yaml", "mine"]) == 0 and (tmp_path / "mine" / "ddp.yaml").is_file()
    assert cli.main(["configs", "cp", "fsdp2", "mine/big.yaml"]) == 0
    assert yaml.safe_load((tmp_path / "mine" / "big.yaml").read_text())["distributed_type"] == "FSDP"


def test_a_deepspeed_config_comes_with_its_json_and_names_the_copy(tmp_path, monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg").mkdir()
    lines = copy_launch_config("deepspeed-zero2", "cfg")
    assert lines[0] == "wrote cfg/deepspeed-zero2.yaml"
    assert lines[1].startswith(
        "wrote cfg/deepspeed-zero2.json; deepspeed-zero2.yaml names it as deepspeed_config_file: "
        "cfg/deepspeed-zero2.json (relative to the folder you launch from)"
    )
    config = load_config_from_file("cfg/deepspeed-zero2.yaml")
    assert config.deepspeed_config["deepspeed_config_file"] == "cfg/deepspeed-zero2.json"
    assert json.loads((tmp_path / "cfg" / "deepspeed-zero2.json").read_text()) == json.loads(
        (LAUNCH / "deepspeed-zero2.json").read_text()
    )


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["configs", "cp", "cpuu"],
            "ftrecipes configs: error: NAME='cpuu': is not a shipped launch config; did you mean 'cpu'?",
        ),
        (
            ["configs", "cp", "cpu", "no/such/folder/"],
            "ftrecipes configs: error: DEST='no/such/folder/': is in a folder that does not exist",
        ),
        (
            ["configs", "cp", "cpu", "cpu.txt"],
            "ftrecipes configs: error: DEST='cpu.txt': is neither a folder nor a .yaml or .yml file name",
        ),
        (["configs", "cp"], "ftrecipes configs: error: NAME: is required"),
        (["configs", "rm", "cpu"], "ftrecipes configs: error: ACTION: invalid choice: 'rm'"),
    ],
)
def test_bad_names_are_one_line_and_exit_2(argv, line, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(line), err
    assert not list(tmp_path.iterdir())


def test_an_existing_destination_is_kept_unless_forced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cpu.yaml").write_text("mine\n")
    assert cli.main(["configs", "cp", "cpu", "."]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "ftrecipes configs: error: DEST='cpu.yaml': already exists; choose another DEST, or pass --force to replace it"
    )
    assert (tmp_path / "cpu.yaml").read_text() == "mine\n"
    # a DeepSpeed config whose JSON would overwrite a file: nothing is written at all
    (tmp_path / "deepspeed-zero3.json").write_text("{}")
    assert cli.main(["configs", "cp", "deepspeed-zero3"]) == 2 and not (tmp_path / "deepspeed-zero3.yaml").exists()
    capsys.readouterr()
    assert cli.main(["configs", "cp", "cpu", ".", "--force"]) == 0
    assert "wrote cpu.yaml (replaced the file that was there)" in capsys.readouterr().out
    assert (tmp_path / "cpu.yaml").read_text() == (LAUNCH / "cpu.yaml").read_text()
