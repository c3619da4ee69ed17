"""Monitoring callbacks on a tiny BERT with a real Trainer: logged fields and their values, TensorBoard,
spike attribution, the divergence guard (stop and skip) and its exit code."""

from __future__ import annotations

import glob
import json
import math
import os

import pytest
import torch
from monitor_helpers import make_trainer, tiny_model
from transformers import BertForSequenceClassification
from transformers.trainer_callback import DefaultFlowCallback, PrinterCallback

from ftrecipes import get_recipe
from ftrecipes.config.built_schedule import Transition
from ftrecipes.training.callbacks import (
    DivergenceGuard,
    RobustWindow,
    ScheduleLogger,
    SpikeMonitor,
    add_monitoring,
    align,
    suggested_overrides,
)
from ftrecipes.training.weight_decay import parameter_groups

# ------------------------------------------------------------------------------------------------
# Logged fields: one one-cycle run (it cycles beta1) with a head at 10x the body's LR, evaluating
# every 4 steps, logging every 2, reporting to TensorBoard.

PEAK, HEAD_PEAK, STEPS = 1e-3, 1e-2, 12


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("logged")
    recipe = get_recipe("one-cycle").replace(learning_rate=PEAK, warmup=4)
    model = tiny_model()
    body = [p for n, p in model.named_parameters() if not n.startswith("classifier")]
    head = [p for n, p in model.named_parameters() if n.startswith("classifier")]
    optimizer = torch.optim.AdamW([{"params": body, "lr": PEAK}, {"params": head, "lr": HEAD_PEAK}], betas=(0.9, 0.999))
    trainer = make_trainer(
        out,
        recipe,
        model=model,
        optimizer=optimizer,
        max_steps=STEPS,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=4,
        report_to=["tensorboard"],
        max_grad_norm=1e-3,
    )
    monitoring = add_monitoring(trainer)
    trainer.train()
    trainer.save_state()
    return out, trainer, monitoring


def _train_logs(history):
    return [e for e in history if "loss" in e]


def test_callbacks_are_added_in_trainers_order_after_default_flow(logged_run):
    """add_callback appends: Trainer's own order stays (DefaultFlowCallback first, reporters, printer),
    and the guard runs after DefaultFlowCallback, so its should_save=False is the last word."""
    _, trainer, monitoring = logged_run
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    assert names[0] == DefaultFlowCallback.__name__
    assert names[-3:] == ["ScheduleLogger", "SpikeMonitor", "DivergenceGuard"]
    assert names.index("TensorBoardCallback") < names.index("ScheduleLogger")
    assert PrinterCallback.__name__ in names  # disable_tqdm=True; otherwise ProgressCallback


def test_extra_keys_go_in_through_trainer_log_not_by_editing_log_history(logged_run):
    """The stored history entry and the dict every callback's on_log received are the same values:
    RecipeTrainer.log merged the keys before Trainer.log stored and dispatched them."""
    out, trainer, _ = logged_run
    stored = [e for e in trainer.state.log_history if "loss" in e]
    assert all("learning_rate/group_1" in e and "momentum" in e for e in stored)
    import ftrecipes.training.callbacks as callbacks

    assert not hasattr(callbacks, "_add_to_logs")


def test_plain_trainer_is_told_once_that_extra_keys_need_recipe_trainer(tmp_path, caplog):
    from transformers import Trainer

    base = make_trainer(tmp_path, get_recipe("cls").replace(learning_rate=1e-3, warmup=2), max_steps=4)
    plain = Trainer(
        model=base.model,
        args=base.args,
        train_dataset=base.train_dataset,
        optimizers=(parameter_groups_optimizer(base.model), None),
    )
    with caplog.at_level("WARNING", logger="ftrecipes.training.callbacks"):
        add_monitoring(plain)
    assert len([r for r in caplog.records if "RecipeTrainer" in r.getMessage()]) == 1


def parameter_groups_optimizer(model):
    return torch.optim.AdamW(parameter_groups(model, 0.0), lr=1e-3)


def test_every_training_log_holds_lr_groups_momentum_loss_and_grad_norm(logged_run):
    out, trainer, _ = logged_run
    schedule = trainer.lr_scheduler.built_schedule
    logs = _train_logs(json.load(open(out / "trainer_state.json"))["log_history"])
    assert [e["step"] for e in logs] == [2, 4, 6, 8, 10, 12]
    for entry in logs:
        s = entry["step"]
        # Trainer logs the LR used by optimizer step s: the multiplier at schedule index s - 1.
        assert entry["learning_rate"] == pytest.approx(PEAK * schedule.lr(s - 1), rel=1e-9)
        assert entry["learning_rate/group_1"] == pytest.approx(HEAD_PEAK * schedule.lr(s - 1), rel=1e-9)
        assert entry["momentum"] == pytest.approx(schedule.momentum(s - 1), rel=1e-9)
        assert math.isfinite(entry["loss"])
        # grad_norm is taken before clipping: far above max_grad_norm=1e-3, which clipped every step.
        assert entry["grad_norm"] > 1e-2


def test_validation_metric_logged_at_eval_steps(logged_run):
    out, _, _ = logged_run
    history = json.load(open(out / "trainer_state.json"))["log_history"]
    assert [e["step"] for e in history if "eval_accuracy" in e] == [4, 8, 12]


def test_equal_group_lrs_add_no_group_keys(tmp_path):
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2)
    trainer = make_trainer(tmp_path, recipe, max_steps=4)
    add_monitoring(trainer)
    trainer.train()
    logs = _train_logs(trainer.state.log_history)
    assert len(logs) == 4 and not any(k.startswith("learning_rate/") or k == "momentum" for e in logs for k in e)


def test_tensorboard_event_files_hold_the_lr_series(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, trainer, _ = logged_run
    schedule = trainer.lr_scheduler.built_schedule
    event_files = glob.glob(str(out / "runs" / "*" / "events.out.tfevents.*"))
    assert event_files
    accumulator = EventAccumulator(os.path.dirname(event_files[0]))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    for tag in (
        "train/learning_rate",
        "train/learning_rate/group_1",
        "train/momentum",
        "train/loss",
        "train/grad_norm",
        "eval/accuracy",
    ):
        assert tag in tags
    lr = accumulator.Scalars("train/learning_rate")
    assert [e.step for e in lr] == [2, 4, 6, 8, 10, 12]
    for event in lr:  # float32 in the event file
        assert event.value == pytest.approx(PEAK * schedule.lr(event.step - 1), rel=1e-6)
    head = accumulator.Scalars("train/learning_rate/group_1")
    assert [e.value for e in head] == pytest.approx([HEAD_PEAK * schedule.lr(e.step - 1) for e in head], rel=1e-6)


def test_schedule_json_holds_transitions_and_the_planned_trace(logged_run):
    out, trainer, _ = logged_run
    payload = json.load(open(out / "schedule.json"))
    assert payload["transitions"] == [{"step": 4, "kind": "warmup_end", "label": "LR peak, end of the rise (step 4)"}]
    assert payload["peak_lrs"] == pytest.approx([PEAK, HEAD_PEAK])
    logged = {e["step"]: e["learning_rate"] for e in _train_logs(trainer.state.log_history)}
    planned = dict(zip(payload["planned_steps"], payload["planned_lr"]))
    assert planned.keys() == set(range(1, STEPS + 1))
    for step, lr in logged.items():
        assert planned[step] == pytest.approx(lr, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# Spike attribution


def test_spike_right_after_warmup_is_attributed_to_warmup_end(tmp_path, capsys):
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=12)
    # x5 on step 14 (two steps into the peak) and on step 30 (mid-decay, far from any transition).
    trainer = make_trainer(tmp_path, recipe, model=tiny_model({14: 5.0, 30: 5.0}), max_steps=34)
    monitoring = add_monitoring(trainer)
    trainer.train()

    spikes = monitoring.spikes.spikes
    assert [s.step for s in spikes] == [14, 30]
    first, second = spikes
    assert first.transition["kind"] == "warmup_end" and first.transition["step"] == 12
    assert first.steps_after_transition == 1  # step 14 used schedule index 13
    # Warmup is already 12/34 = 35% of this short run, so only the lower peak is suggested.
    assert first.overrides == ["--learning_rate 0.0005"]
    assert second.transition is None
    assert not monitoring.guard.diverged  # a x5 spike is not a divergence

    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "loss spike" in line]
    assert len(lines) == 2
    assert (
        "step 14" in lines[0]
        and "end of warmup (step 12)" in lines[0]
        and "lengthen warmup or lower the peak" in lines[0]
    )

    report = json.load(open(tmp_path / "spikes.json"))
    assert [s["step"] for s in report["spikes"]] == [14, 30]
    assert report["spikes"][0]["transition"]["kind"] == "warmup_end"


def test_align_windows():
    transitions = [Transition(10, "warmup_end", "w"), Transition(50, "restart", "r")]
    assert align((11, 11), transitions).kind == "warmup_end"  # global step 11 = index 10
    assert align((10, 10), transitions).kind == "warmup_end"  # one step before, allowed
    assert align((9, 9), transitions) is None
    assert align((21, 21), transitions, after=10).kind == "warmup_end"
    assert align((22, 22), transitions, after=10) is None
    assert align((45, 60), transitions).kind == "restart"  # a logging window spanning the restart


def test_robust_window_ignores_the_outlier():
    window = RobustWindow(5)
    for value in (1.0, 1.1, 0.9, 100.0, 1.0, float("nan")):
        window.add(value)
    assert len(window) == 5 and window.median() == 1.0
    assert window.sigma() == pytest.approx(1.4826 * 0.1)


# ------------------------------------------------------------------------------------------------
# Divergence guard


def test_nan_stops_the_run_keeps_the_last_checkpoint_and_exits_nonzero(tmp_path, capsys):
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2)
    trainer = make_trainer(
        tmp_path, recipe, model=tiny_model({10: float("nan")}), max_steps=20, save_strategy="steps", save_steps=4
    )
    monitoring = add_monitoring(trainer)
    trainer.train()

    guard = monitoring.guard
    assert guard.diverged and monitoring.exit_code == 1 and trainer.state.global_step == 10
    assert sorted(os.listdir(tmp_path / "checkpoint-8")) and not (tmp_path / "checkpoint-12").exists()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-8"]

    report = json.load(open(tmp_path / "divergence.json"))
    assert report["step"] == 10 and report["last_checkpoint"].endswith("checkpoint-8")
    assert "--learning_rate 0.0005" in report["suggested_overrides"]
    message = [line for line in capsys.readouterr().err.splitlines() if "diverged" in line]
    assert (
        len(message) == 1
        and "step 10" in message[0]
        and "checkpoint-8" in message[0]
        and "--learning_rate 0.0005" in message[0]
    )

    restored = BertForSequenceClassification.from_pretrained(tmp_path / "checkpoint-8")
    assert all(torch.isfinite(p).all() for p in restored.parameters())
    # The bad update was skipped, so the weights in memory are still finite as well.
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_skip_mode_skips_and_counts_nonfinite_batches(tmp_path):
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2)
    trainer = make_trainer(tmp_path, recipe, model=tiny_model({5: float("nan"), 7: float("inf")}), max_steps=12)
    monitoring = add_monitoring(trainer, on_divergence="skip")
    trainer.train()

    assert not monitoring.guard.diverged and monitoring.exit_code == 0 and trainer.state.global_step == 12
    assert monitoring.guard.skipped_steps == 2
    counts = {e["step"]: e.get("skipped_steps", 0) for e in _train_logs(trainer.state.log_history)}
    assert counts[4] == 0 and counts[5] == 1 and counts[7] == 2 and counts[12] == 2
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert not (tmp_path / "divergence.json").exists()


def test_exploding_loss_stops_before_the_checkpoint_of_that_step(tmp_path):
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2)
    trainer = make_trainer(
        tmp_path, recipe, model=tiny_model({15: 100.0}), max_steps=20, save_strategy="steps", save_steps=5
    )
    monitoring = add_monitoring(trainer)
    trainer.train()

    assert monitoring.guard.diverged and trainer.state.global_step == 15
    assert "exploded" in monitoring.guard.report["reason"]
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-5"]


def test_suggested_overrides_follow_the_document():
    class Args:
        max_grad_norm = 0.0
        fp16 = True

    schedule = get_recipe("cls").replace(warmup="2%").build_schedule(1000)
    flags = suggested_overrides(Args(), 4e-5, schedule)
    assert flags == ["--learning_rate 2e-05", "--max_grad_norm 1.0", "--warmup 5%", "--precision bf16"]


def test_explicit_schedule_is_used_without_schedule_lr(tmp_path):
    # A plain torch scheduler: transitions come from the BuiltSchedule handed to the callbacks.
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=4)
    built = recipe.build_schedule(10)
    model = tiny_model()
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.0), lr=1e-3)
    lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, built.lr)
    from transformers import Trainer

    base = make_trainer(tmp_path, recipe, model=model, optimizer=optimizer, max_steps=10)
    trainer = Trainer(model=model, args=base.args, train_dataset=base.train_dataset, optimizers=(optimizer, lambda_lr))
    add_monitoring(trainer, built)
    trainer.train()
    payload = json.load(open(tmp_path / "schedule.json"))
    assert payload["transitions"][0]["kind"] == "warmup_end" and payload["total_steps"] == 10


def test_guard_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        DivergenceGuard(mode="ignore")
    with pytest.raises(ValueError, match="min_history"):
        SpikeMonitor(min_history=2)
    assert ScheduleLogger().schedule is None


def test_resume_seeds_the_spike_window_from_the_restored_log_history(tmp_path):
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2)
    first = make_trainer(tmp_path, recipe, max_steps=20, save_strategy="steps", save_steps=16)
    add_monitoring(first)
    first.train()
    # A new process resuming at step 16: its model's 2nd training forward is optimizer step 18.
    resumed = make_trainer(tmp_path, recipe, model=tiny_model({2: 5.0}), max_steps=20)
    monitoring = add_monitoring(resumed)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-16"))
    assert [s.step for s in monitoring.spikes.spikes] == [18]


def test_accumulation_counts_optimizer_steps(tmp_path):
    """Under accumulation 2, micro-batch 7 belongs to optimizer step 4: that is where the guard stops,
    and the logged LR follows the schedule in optimizer steps."""
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2)
    trainer = make_trainer(
        tmp_path, recipe, model=tiny_model({7: float("nan")}), max_steps=8, gradient_accumulation_steps=2
    )
    monitoring = add_monitoring(trainer)
    trainer.train()
    schedule = trainer.lr_scheduler.built_schedule
    assert monitoring.guard.diverged and monitoring.guard.report["step"] == 4 and trainer.state.global_step == 4
    for entry in _train_logs(trainer.state.log_history):
        assert entry["learning_rate"] == pytest.approx(1e-3 * schedule.lr(entry["step"] - 1))


def test_guard_reuses_the_trainers_gradient_norm(tmp_path):
    # Attached by add_monitoring, the guard reads the norm the Trainer computed for clipping: no pass
    # of its own over the gradients, and a NaN step is still caught before it is applied.
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2)
    trainer = make_trainer(tmp_path, recipe, model=tiny_model({6: float("nan")}), max_steps=10)
    monitoring = add_monitoring(trainer)
    trainer.train()
    guard = monitoring.guard
    assert guard.diverged and guard.report["step"] == 6 and guard.own_norm_passes == 0
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


@pytest.mark.parametrize("max_grad_norm", [1.0, 0.0])
def test_unattached_guard_computes_the_norm_itself(tmp_path, max_grad_norm):
    # Installed as a plain callback (no attach), the guard falls back to its own norm, with or without clipping.
    recipe = get_recipe("cls").replace(learning_rate=1e-3, warmup=2, max_grad_norm=max_grad_norm)
    guard = DivergenceGuard(verbose=False)
    trainer = make_trainer(tmp_path, recipe, model=tiny_model({4: float("inf")}), max_steps=8)
    trainer.add_callback(guard)
    trainer.train()
    assert guard.diverged and guard.report["step"] == 4 and guard.own_norm_passes == 4
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
