"""The config layer stays light: recipes, durations, schedules and the inspection commands load
neither torch nor transformers (``ftrecipes list`` starts in well under a second)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIG_LAYER = [
    "ftrecipes",
    "ftrecipes.config.errors",
    "ftrecipes.config.durations",
    "ftrecipes.config.timeline",
    "ftrecipes.config.schedules",
    "ftrecipes.config.schedule_types",
    "ftrecipes.config.scaling",
    "ftrecipes.config.priors",
    "ftrecipes.config.peak_rule",
    "ftrecipes.config.recipe",
    "ftrecipes.data.tasks",
    "ftrecipes.config.registry",
    "ftrecipes.config.explain",
    "ftrecipes.report.plotting",
    "ftrecipes.config.outputs",
    "ftrecipes.report.curves",
    "ftrecipes.cli",
    "ftrecipes.config.bundled",
    "ftrecipes.baselines",
    # the main job's entry points and its early phase: bad input is answered before heavy imports
    "ftrecipes.train",
    "ftrecipes.job.run",
    "ftrecipes.job.parse",
    "ftrecipes.job.options",
    "ftrecipes.job.check",
    "ftrecipes.data.files",
    "ftrecipes.config.launch_configs",
]
HEAVY = ("torch", "transformers", "accelerate", "datasets")


def test_config_layer_and_inspection_commands_load_no_torch_or_transformers(tmp_path):
    # A fresh interpreter: the test session itself has long imported torch.
    script = textwrap.dedent(f"""
        import contextlib, importlib, io, sys
        HEAVY = {HEAVY!r}

        def loaded(where):
            found = [m for m in HEAVY if m in sys.modules]
            assert not found, f"{{where}} loaded {{found}}"

        for name in {CONFIG_LAYER!r}:
            importlib.import_module(name)
        loaded("importing the config layer")

        import ftrecipes
        recipe = ftrecipes.get_recipe("cls")
        plan = recipe.plan(ftrecipes.Timeline(1000, 16))
        assert plan.total_steps == 189 and isinstance(ftrecipes.ConfigError("x"), ValueError)
        loaded("planning a recipe through the lazy package namespace")

        from ftrecipes.cli import main
        for argv in (["list"], ["show", "cls", "--num_examples", "2000"],
                     ["validate", {str(REPO / "recipes" / "cls.yaml")!r}],
                     ["plot", "sgdr", "--output", {str(tmp_path / "sgdr.png")!r}], ["configs"],
                     ["configs", "cp", "deepspeed-zero2", {str(tmp_path)!r}]):
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(argv) == 0, argv
            loaded("ftrecipes " + " ".join(argv))

        sys.path.insert(0, {str(REPO / "scripts")!r})
        import reproduce
        with contextlib.redirect_stdout(io.StringIO()) as table:
            assert reproduce.main(["--list"]) == 0
        assert "| bbc-minilm |" in table.getvalue()
        loaded("reproduce.py --list")
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_lazy_namespace():
    import ftrecipes

    assert "Recipe" in dir(ftrecipes) and set(ftrecipes.__all__) <= set(dir(ftrecipes))
    assert ftrecipes.RecipeTrainer.__module__ == "ftrecipes.training.trainer"  # the Trainer side loads on demand
    try:
        ftrecipes.no_such_name
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("unknown names must raise AttributeError")
