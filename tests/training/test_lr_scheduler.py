"""ScheduleLR: per-group peaks, momentum cycling, pickling and exact resume from state_dict."""

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ftrecipes import Recipe, ScheduleLR, Timeline
from ftrecipes.config.built_schedule import Sizes
from ftrecipes.config.schedule_types import build_schedule


def make_optimizer(kind="adamw", lrs=(1e-3, 5e-4)):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    return torch.optim.AdamW(groups, lr=lrs[0])


def plan(kind, total=120, warmup=12, **kwargs):
    return build_schedule(kind, Sizes(total_steps=total, warmup_steps=warmup, steps_per_epoch=30, floor=0.1), kwargs)


def flat(rows):
    return [x for row in rows for x in row]


def run(scheduler, steps):
    lrs = []
    for _ in range(steps):
        lrs.append([g["lr"] for g in scheduler.optimizer.param_groups])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


def test_each_group_keeps_its_own_peak():
    built = plan("cosine")
    sched = ScheduleLR(make_optimizer(lrs=(1e-3, 5e-4)), built)
    lrs = run(sched, 120)
    for step, (a, b) in enumerate(lrs):
        assert a == pytest.approx(1e-3 * built.lr(step))
        assert b == pytest.approx(5e-4 * built.lr(step))


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_one_cycle_drives_momentum_or_beta1(kind):
    built = plan("one_cycle", warmup=36)  # warmup_offset 1: the LR peaks (momentum bottoms) at step 35
    opt = make_optimizer(kind)
    sched = ScheduleLR(opt, built)
    seen = []
    for step in range(120):
        group = opt.param_groups[0]
        seen.append(group["betas"][0] if kind == "adamw" else group["momentum"])
        assert sched.current_momentum() == pytest.approx(built.momentum(step))
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(0.95) and seen[35] == pytest.approx(0.85) and seen[-1] > 0.94
    if kind == "adamw":
        assert opt.param_groups[0]["betas"][1] == 0.999  # beta2 untouched


def test_scheduler_pickles_with_its_optimizer():
    opt = make_optimizer()
    sched = ScheduleLR(opt, plan("sgdr", period="1ep", period_mult=2.0))
    run(sched, 10)
    clone = pickle.loads(pickle.dumps(sched))
    assert clone.get_last_lr() == sched.get_last_lr()


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(
        [
            "cosine",
            "linear",
            "step",
            "sgdr",
            "one_cycle",
            "inverse_sqrt",
            "wsd",
            "exponential",
            "constant",
            "polynomial",
            "constant_with_warmup",
            "cosine_with_restarts",
            "cosine_with_min_lr",
            "cosine_warmup_with_min_lr",
            "warmup_stable_decay",
        ]
    ),
    stop=st.integers(0, 119),
)
def test_resume_from_state_dict_gives_identical_later_lrs(kind, stop):
    """Stop at any step (mid-warmup, boundary, mid-cycle), rebuild from scratch, load state: same trace."""
    kwargs = {
        "step": {"milestones": ["30%", "60%"]},
        "warmup_stable_decay": {"num_decay_steps": "25%", "warmup_type": "cosine"},
    }.get(kind, {})
    warmup = 36 if kind == "one_cycle" else 12
    reference = run(ScheduleLR(make_optimizer(), plan(kind, warmup=warmup, **kwargs)), 120)

    opt = make_optimizer()
    sched = ScheduleLR(opt, plan(kind, warmup=warmup, **kwargs))
    run(sched, stop)
    opt_state, sched_state = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())

    opt2 = make_optimizer()
    sched2 = ScheduleLR(opt2, plan(kind, warmup=warmup, **kwargs))
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert flat(run(sched2, 120 - stop)) == pytest.approx(flat(reference[stop:]), rel=1e-12)


def test_plateau_resume_keeps_its_reductions():
    recipe = Recipe(
        lr_scheduler_type="plateau",
        lr_scheduler_kwargs={"factor": 0.5, "patience": 0},
        warmup=4,
        max_steps=40,
        learning_rate=1e-3,
    )
    built = recipe.plan(Timeline(100, 10, max_steps=40)).schedule
    opt = make_optimizer(lrs=(1e-3,))
    sched = ScheduleLR(opt, built)
    run(sched, 10)
    sched.observe(0.9)
    assert sched.observe(0.8)  # worse → halved at once
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    state = copy.deepcopy(sched.state_dict())
    later = run(sched, 5)

    opt2 = make_optimizer(lrs=(1e-3,))
    sched2 = ScheduleLR(opt2, recipe.plan(Timeline(100, 10, max_steps=40)).schedule)
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = state["_last_lr"][0]
    assert flat(run(sched2, 5)) == pytest.approx(flat(later))
