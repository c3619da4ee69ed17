"""Preemption (SIGTERM/SIGINT -> finish the step, checkpoint, exit 128+signal) and the plan kept with
each checkpoint (elastic resume). In-process here; the signalled two-process job is in test_multinode.py."""

import json
import os
import shutil
import signal
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from ftrecipes import Timeline, get_recipe
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.outputs import CHECKPOINT_PLAN_FILE, PREEMPTION_FILE
from ftrecipes.training.arguments import recipe_training_args
from ftrecipes.training.preemption import (
    PlanRecordCallback,
    PreemptionCallback,
    check_resume_plan,
    preempted_exit_code,
    write_preemption_report,
)
from ftrecipes.training.stock import log_history_lrs
from ftrecipes.training.trainer import RecipeTrainer


class SignalAt(TrainerCallback):
    """Sends ``signum`` to this process at the end of optimizer step ``step`` (as a cluster would)."""

    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def _dataset(n=48, length=8):
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        label = i % 2
        ids = torch.randint(1, 500, (length,), generator=g) + 499 * label
        rows.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor(label)})
    return rows


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_finishes_the_step_saves_and_reports(tmp_path, signum):
    from ftrecipes.testing import tiny_classifier

    recipe = get_recipe("cls", max_steps=8, warmup=2, eval_strategy="no")
    args = recipe_training_args(
        recipe,
        str(tmp_path),
        per_device_train_batch_size=8,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    preemption = PreemptionCallback()
    trainer = RecipeTrainer(
        model=tiny_classifier(),
        args=args,
        recipe=recipe,
        train_dataset=_dataset(),
        callbacks=[SignalAt(3, signum), preemption, PlanRecordCallback()],
    )
    before = signal.getsignal(signum)
    trainer.train()
    assert signal.getsignal(signum) is before  # the handler is Trainer-run scoped
    assert (preemption.received, preemption.stopped_at, trainer.state.global_step) == (signum, 3, 3)
    assert sorted(log_history_lrs(trainer.state.log_history)) == [1, 2, 3]  # stopped after step 3, not mid-step
    checkpoint = tmp_path / "checkpoint-3"
    assert {"model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json", CHECKPOINT_PLAN_FILE} <= {
        p.name for p in checkpoint.iterdir()
    }
    plan = json.loads((checkpoint / CHECKPOINT_PLAN_FILE).read_text())
    assert plan == {
        "total_steps": 8,
        "warmup_steps": 2,
        "learning_rate": args.learning_rate,
        "global_batch_size": 8,
        "per_device_train_batch_size": 8,
        "num_processes": 1,
        "gradient_accumulation_steps": 1,
    }
    report = write_preemption_report(str(tmp_path), preemption, trainer.state)
    assert report["exit_code"] == preempted_exit_code(signum) == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum]
    assert json.loads((tmp_path / PREEMPTION_FILE).read_text())["checkpoint"] == str(checkpoint)


def _checkpoint(tmp_path, **plan):
    folder = tmp_path / "checkpoint-6"
    folder.mkdir()
    saved = {
        "total_steps": 24,
        "warmup_steps": 5,
        "learning_rate": 3.5e-5,
        "global_batch_size": 8,
        "per_device_train_batch_size": 4,
        "num_processes": 2,
        "gradient_accumulation_steps": 1,
        **plan,
    }
    (folder / CHECKPOINT_PLAN_FILE).write_text(json.dumps(saved))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 6}))
    return str(folder)


def _args(per_device, processes, accumulation, lr=3.5e-5):
    return SimpleNamespace(
        per_device_train_batch_size=per_device,
        world_size=processes,
        gradient_accumulation_steps=accumulation,
        learning_rate=lr,
    )


def test_same_global_batch_through_another_factorisation_resumes(tmp_path):
    checkpoint = _checkpoint(tmp_path)
    assert check_resume_plan(checkpoint, _args(4, 1, 2), 24, 5) is None  # 2 x 4 -> 1 x 4 x accumulation 2
    assert check_resume_plan(checkpoint, _args(8, 1, 1), 24, 5) is None
    assert check_resume_plan(None, _args(4, 1, 1), 48, 10) is None  # a fresh run: nothing to compare


def test_another_global_batch_says_what_would_change_and_how_to_proceed(tmp_path):
    checkpoint = _checkpoint(tmp_path)
    with pytest.raises(ConfigError) as err:
        check_resume_plan(checkpoint, _args(4, 1, 1, lr=2.5e-5), 48, 10)
    message = str(err.value)
    assert message.startswith(
        f"--resume_from_checkpoint={checkpoint!r}: was planned for global batch 8, 24 optimizer steps, warmup 5, peak "
        "LR 3.5e-05; this launch (4 per device x 1 processes x 1 accumulation) would make it global batch 4, 48 "
        "optimizer steps, warmup 10, peak LR 2.5e-05"
    )
    assert "relaunch with a global batch of 8" in message and "--replan" in message and "step 6" in message
    replanned = check_resume_plan(checkpoint, _args(4, 1, 1, lr=2.5e-5), 48, 10, replan=True)
    assert (
        replanned["at_step"] == 6
        and replanned["previous"]["total_steps"] == 24
        and replanned["plan"]["total_steps"] == 48
    )
    # the same batch with another peak (an explicit --learning_rate) is a plan change too
    with pytest.raises(ConfigError, match=r"relaunch with the settings of the first launch"):
        check_resume_plan(checkpoint, _args(8, 1, 1, lr=1e-4), 24, 5)


def test_finetune_resumes_elastically_and_refuses_a_new_global_batch(tiny_base, cls_files, tmp_path, capsys):
    """Preempted at step 3 and resumed by the same command: the uninterrupted weights. 1 process x 8
    checkpointed at step 6 -> resumed as 1 x 4 x accumulation 2: the same plan, the
    same LR at every later step; resumed at batch 4 it is refused (exit 2, nothing written), and
    --replan continues under the new plan and records it."""
    from ftrecipes.job.run import main

    def argv(out, *extra):
        return [
            "--recipe",
            "cls",
            "--model_name_or_path",
            tiny_base,
            "--train_file",
            cls_files["train"],
            "--output_dir",
            str(out),
            "--num_train_epochs",
            "1",
            "--warmup",
            "20%",
            "--logging_steps",
            "1",
            "--eval_strategy",
            "no",
            "--max_seq_length",
            "32",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--plots",
            "false",
            "--save_strategy",
            "steps",
            "--save_steps",
            "6",
            *extra,
        ]

    full = tmp_path / "full"
    assert main(argv(full, "--per_device_train_batch_size", "8")) == 0
    reference = log_history_lrs(json.loads((full / "trainer_state.json").read_text())["log_history"])
    plan = json.loads((full / "checkpoint-6" / CHECKPOINT_PLAN_FILE).read_text())
    total = plan["total_steps"]
    assert plan["global_batch_size"] == 8 and total == max(reference) > 6

    # Preempted in-process at step 3 (a SIGTERM to this process): exit 143, then the same argv resumes
    # and ends with the uninterrupted run's weights.
    class SignalledAt3(PreemptionCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().on_step_end(args, state, control, **kwargs)

    preempted = tmp_path / "preempted"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ftrecipes.training.preemption.PreemptionCallback", SignalledAt3)
        capsys.readouterr()
        assert main(argv(preempted, "--per_device_train_batch_size", "8")) == 143
    assert f"finetune.py: stopped by SIGTERM after optimizer step 3 of {total}" in capsys.readouterr().err
    assert json.loads((preempted / PREEMPTION_FILE).read_text())["checkpoint"] == str(preempted / "checkpoint-3")
    assert main(argv(preempted, "--per_device_train_batch_size", "8")) == 0
    final = load_file(full / "model.safetensors")
    for name, weights in load_file(preempted / "model.safetensors").items():
        torch.testing.assert_close(weights, final[name], rtol=1e-4, atol=1e-6)

    elastic = tmp_path / "elastic"
    shutil.copytree(full / "checkpoint-6", elastic / "checkpoint-6")
    assert main(argv(elastic, "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2")) == 0
    lrs = log_history_lrs(json.loads((elastic / "trainer_state.json").read_text())["log_history"])
    assert sorted(s for s in lrs if s > 6) == list(range(7, total + 1))
    for step in range(7, total + 1):
        assert lrs[step] == pytest.approx(reference[step], rel=1e-12), step

    other = tmp_path / "other"
    shutil.copytree(full / "checkpoint-6", other / "checkpoint-6")
    before = sorted(p.relative_to(other) for p in other.rglob("*"))
    capsys.readouterr()
    assert main(argv(other, "--per_device_train_batch_size", "4")) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        line.startswith("finetune.py: error: --resume_from_checkpoint=")
        and f"was planned for global batch 8, {total} optimizer steps" in line
    )
    assert f"global batch 4, {2 * total} optimizer steps" in line and "--replan" in line
    assert sorted(p.relative_to(other) for p in other.rglob("*")) == before

    assert main(argv(other, "--per_device_train_batch_size", "4", "--replan", "true", "--max_steps", "9")) == 0
    # --replan: the schedule is re-sized for the new launch (9 steps at batch 4); the peak stays the one
    # trained so far (the restored optimizer and scheduler state carry it); step 7 still uses the LR the
    # optimizer was saved with, later steps follow the re-sized schedule.
    new_schedule = get_recipe("cls", warmup="20%", max_steps=9).plan(Timeline(100, 4, max_steps=9)).schedule
    replanned_lrs = log_history_lrs(json.loads((other / "trainer_state.json").read_text())["log_history"])
    assert replanned_lrs[7] == pytest.approx(reference[7], rel=1e-12)
    for step in (8, 9):
        assert replanned_lrs[step] == pytest.approx(plan["learning_rate"] * new_schedule.lr(step - 1), rel=1e-9), step
    record = json.loads((other / "checkpoint-9" / CHECKPOINT_PLAN_FILE).read_text())
    assert (
        record["global_batch_size"] == 4
        and record["total_steps"] == 9
        and record["learning_rate"] == pytest.approx(plan["learning_rate"])
    )
    assert record["replanned"]["at_step"] == 6 and record["replanned"]["previous"]["global_batch_size"] == 8
