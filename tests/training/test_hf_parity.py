"""Parity with the libraries themselves: every ``transformers.SchedulerType`` through the finetune path
(recipe -> plan -> ScheduleLR) against ``transformers.get_scheduler``, torch's schedulers against their
documented ftrecipes settings, and exact resume for every option. Pure schedule math: no model, no data."""

import copy
import json
import math
import pickle
import random

import pytest
import torch
from transformers import SchedulerType, get_scheduler

from ftrecipes import Recipe, ScheduleLR
from ftrecipes.config.errors import ConfigError
from ftrecipes.config.schedule_builders import HF_TYPES
from ftrecipes.config.schedule_types import SCHEDULE_TYPES

pytestmark = pytest.mark.filterwarnings("ignore:Both num_training_steps and num_stable_steps:UserWarning")

PEAK = 1e-3
SHAPES = [(5, 37), (0, 11), (1, 10), (3, 13)]  # (warmup, total): odd totals, no warmup, warmup of one step

# Hugging Face kwargs exercised per type (several per type where the type has options).
HF_KWARGS = {
    "linear": [{}],
    "cosine": [{}, {"num_cycles": 1.0}, {"num_cycles": 0.3}],
    "cosine_with_restarts": [{}, {"num_cycles": 3}, {"num_cycles": 2.5}],
    "polynomial": [{"lr_end": 1e-7}, {"lr_end": 1e-5, "power": 2.0}, {"lr_end": 0.0, "power": 0.5}],
    "constant": [{}],
    "constant_with_warmup": [{}],
    "inverse_sqrt": [{}, {"timescale": 7}],
    "cosine_with_min_lr": [{"min_lr_rate": 0.1}, {"min_lr": 1e-5, "num_cycles": 0.75}],
    "cosine_warmup_with_min_lr": [
        {"min_lr_rate": 0.05},
        {"min_lr": 1e-5, "warmup_lr_rate": 0.1},
        {"min_lr_rate": 0.0, "num_cycles": 1.0},
    ],
    "warmup_stable_decay": [
        {"num_decay_steps": 4},
        {"num_decay_steps": 5, "warmup_type": "cosine", "decay_type": "1-sqrt", "min_lr_ratio": 0.1},
        {"num_decay_steps": 3, "num_stable_steps": 2, "warmup_type": "1-sqrt", "decay_type": "linear"},
        {"num_decay_steps": 6, "num_cycles": 1.0, "min_lr_ratio": 0.02},
    ],
}
METRIC_TYPES = ("reduce_lr_on_plateau", "greedy")


def sgd(lr=PEAK, **kwargs):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, **kwargs)


def lrs_of(optimizer, scheduler, steps, metrics=None, every=None, torch_style=False):
    """LR of every optimizer step; with ``metrics``, one is fed after every ``every`` steps (the Trainer
    steps ReduceLROnPlateau/GreedyLR only at evaluation; ours is stepped per step and observes metrics)."""
    out, metrics = [], list(metrics or [])
    for step in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if not torch_style:
            scheduler.step()
        if metrics and every and (step + 1) % every == 0:
            metric = metrics.pop(0)
            scheduler.step(metric) if torch_style else scheduler.observe(metric, step=step + 1)
    return out


def hf_lrs(name, warmup, total, kwargs, metrics=None, every=None):
    opt = sgd()
    sched = get_scheduler(
        name, opt, num_warmup_steps=warmup, num_training_steps=total, scheduler_specific_kwargs=dict(kwargs)
    )
    return lrs_of(opt, sched, total, metrics, every, torch_style=name in METRIC_TYPES)


def recipe_for(name, warmup, total, kwargs, **fields):
    fields = {"warmup_offset": 0, "min_lr_rate": 0.0, "eval_strategy": "steps", "eval_steps": 5, **fields}
    return Recipe(
        lr_scheduler_type=name,
        lr_scheduler_kwargs=dict(kwargs),
        warmup=warmup,
        max_steps=total,
        learning_rate=PEAK,
        **fields,
    )


def our_lrs(recipe, total, metrics=None, every=None):
    # What RecipeTrainer.create_scheduler does with the Trainer's step count.
    opt = sgd()
    return lrs_of(opt, ScheduleLR(opt, recipe.build_schedule(total)), total, metrics, every)


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-18), f"step {step}: ftrecipes {a!r} vs reference {b!r}"


# ---------------------------------------------------------------------------------------------
# Hugging Face


def test_every_installed_scheduler_type_is_a_schedule_type():
    assert {t.value for t in SchedulerType} <= set(SCHEDULE_TYPES)
    assert set(HF_KWARGS) | set(METRIC_TYPES) == {t.value for t in SchedulerType}


CASES = [
    (name, kw, w, t)
    for name, variants in HF_KWARGS.items()
    for kw in variants
    for w, t in SHAPES
    if not (name == "constant" and w)
]


@pytest.mark.parametrize(
    ("name", "kwargs", "warmup", "total"), CASES, ids=[f"{n}-{json.dumps(k)}-W{w}-T{t}" for n, k, w, t in CASES]
)
def test_trace_equals_get_scheduler(name, kwargs, warmup, total):
    """warmup_offset 0 and no floor: the shared names equal Hugging Face's; its own names always do."""
    assert_same(our_lrs(recipe_for(name, warmup, total, kwargs), total), hf_lrs(name, warmup, total, kwargs))


@pytest.mark.parametrize("name", sorted(set(HF_KWARGS) & set(HF_TYPES)))
def test_hf_names_keep_hf_warmup_and_floor_whatever_the_recipe_defaults(name):
    """Hugging Face's own names count warmup as it does even under the recipe's offset-1 default and floor."""
    kwargs = HF_KWARGS[name][-1]
    recipe = recipe_for(name, 5, 37, kwargs, warmup_offset=1, min_lr_rate=0.1)
    assert_same(our_lrs(recipe, 37), hf_lrs(name, 5, 37, kwargs))


def test_trainer_command_line_flags_run_unchanged():
    """finetune.py's parser: --lr_scheduler_type / --lr_scheduler_kwargs as a Trainer user types them."""
    from ftrecipes.job.parse import parse_args

    kwargs = {"num_decay_steps": 6, "warmup_type": "1-sqrt", "decay_type": "cosine", "min_lr_ratio": 0.1}
    config = parse_args(
        [
            "--output_dir",
            "unused",
            "--lr_scheduler_type",
            "warmup_stable_decay",
            "--lr_scheduler_kwargs",
            json.dumps(kwargs),
            "--warmup_steps",
            "4",
            "--max_steps",
            "23",
            "--learning_rate",
            str(PEAK),
        ]
    )
    assert_same(our_lrs(config.recipe, 23), hf_lrs("warmup_stable_decay", 4, 23, kwargs))


def scripted_metrics(seed, n, negative=False):
    """A validation curve with improvements, plateaus and regressions (fixed seed)."""
    rng, value, out = random.Random(seed), 1.0, []
    for _ in range(n):
        value += rng.choice([-0.05, -0.01, 0.0, 0.0, 0.02, -1e-6])
        out.append(value - 2.0 if negative else value)
    return out


PLATEAU_CASES = [
    {"mode": "min", "patience": 1},
    {"mode": "min", "patience": 0, "factor": 0.5, "cooldown": 1, "min_lr": 2e-4},
    {"mode": "max", "patience": 1, "threshold": 0.01, "threshold_mode": "abs"},
    {"mode": "min", "patience": 2, "threshold": 0.05},  # torch's relative rule on negative metrics (below)
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES)
@pytest.mark.parametrize("negative", [False, True])
def test_reduce_lr_on_plateau_equals_hf_with_scripted_metrics(kwargs, negative):
    metrics = scripted_metrics(1, 12, negative)
    theirs = hf_lrs("reduce_lr_on_plateau", 0, 60, kwargs, metrics, every=5)
    # metric_for_best_model "loss" is what Trainer picks for these types; its mode is torch's default "min"
    ours = our_lrs(
        recipe_for("reduce_lr_on_plateau", 0, 60, kwargs, greater_is_better=False, metric_for_best_model="loss"),
        60,
        metrics,
        every=5,
    )
    assert_same(ours, theirs)
    if not negative:
        assert (
            min(theirs) < PEAK
        )  # the script really reduces (torch's relative rule on this falling negative curve never does)


GREEDY_CASES = [
    {"patience": 1, "min_lr": 1e-5, "max_lr": 1e-2, "factor": 0.8},
    {"patience": 0, "min_lr": 5e-4, "factor": 0.5, "reset_start": 2, "cooldown": 1, "warmup": 1},
    {
        "patience": 1,
        "min_lr": 1e-5,
        "smooth": True,
        "window_size": 3,
        "mode": "max",
        "threshold_mode": "rel",
        "threshold": 1e-3,
    },
    {},  # Hugging Face's defaults (min_lr 1e-3 above this peak: reductions never bite)
]


@pytest.mark.parametrize("kwargs", GREEDY_CASES)
def test_greedy_equals_hf_with_scripted_metrics(kwargs):
    metrics = scripted_metrics(7, 16)
    theirs = hf_lrs("greedy", 0, 80, kwargs, metrics, every=5)
    ours = our_lrs(
        recipe_for("greedy", 0, 80, kwargs, greater_is_better=False, metric_for_best_model="loss"), 80, metrics, every=5
    )
    assert_same(ours, theirs)


def test_metric_driven_hf_names_warm_up_and_default_mode_to_greater_is_better():
    recipe = recipe_for("reduce_lr_on_plateau", 4, 20, {"patience": 0})
    sched = ScheduleLR(sgd(), recipe.build_schedule(20))
    assert sched.lr_schedule(0) == 0.0 and sched.lr_schedule(2) == 0.5 and sched.lr_schedule(4) == 1.0
    assert sched.lr_schedule.mode == "max"  # accuracy: torch's default "min" would reduce on every gain
    assert recipe.replace(greater_is_better=False, metric_for_best_model="loss").build_schedule(20).lr.mode == "min"
    with pytest.raises(ConfigError, match=r"^lr_scheduler_type='greedy'.*needs validation metrics"):
        Recipe(lr_scheduler_type="greedy", eval_strategy="no")


def test_plateau_sign_aware_rule_differs_from_torch_only_for_negative_metrics():
    """Documented difference: torch's relative threshold counts a worse negative value as an improvement."""
    common = {"patience": 0, "threshold": 0.1}
    metrics = [-10.0, -9.5, -9.5]  # a loss that got worse, then stalled
    torch_rule = our_lrs(
        recipe_for("reduce_lr_on_plateau", 0, 15, {**common, "mode": "min"}, greater_is_better=False),
        15,
        metrics,
        every=5,
    )
    sign_aware = our_lrs(
        recipe_for("plateau", 0, 15, {**common, "factor": 0.1}, greater_is_better=False), 15, metrics, every=5
    )
    assert torch_rule[10] == PEAK and sign_aware[10] == pytest.approx(0.1 * PEAK)
    positive = [10.0, 10.5, 10.5]
    torch_rule = our_lrs(
        recipe_for("reduce_lr_on_plateau", 0, 15, {**common, "mode": "min"}, greater_is_better=False),
        15,
        positive,
        every=5,
    )
    sign_aware = our_lrs(
        recipe_for("plateau", 0, 15, {**common, "factor": 0.1}, greater_is_better=False), 15, positive, every=5
    )
    assert_same(sign_aware, torch_rule)


# ---------------------------------------------------------------------------------------------
# torch


def torch_lrs(optimizer, scheduler, steps, metrics=None, every=None):
    return lrs_of(
        optimizer,
        scheduler,
        steps,
        metrics,
        every,
        torch_style=isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau),
    )


@pytest.mark.parametrize(
    ("total", "setting", "torch_kwargs"),
    [
        (100, {"warmup": "30%"}, {"pct_start": 0.3}),  # the default offset 1 puts the peak at torch's step pct*T - 1
        (37, {"lr_scheduler_kwargs": {"pct_start": 0.25}}, {"pct_start": 0.25}),  # a peak between steps
        (
            37,
            {"lr_scheduler_kwargs": {"pct_start": 0.2, "three_phase": True, "anneal_strategy": "linear"}},
            {"pct_start": 0.2, "three_phase": True, "anneal_strategy": "linear"},
        ),
        (
            50,
            {"warmup": 10, "lr_scheduler_kwargs": {"div_factor": 10.0, "final_div_factor": 100.0, "three_phase": True}},
            {"pct_start": 0.2, "div_factor": 10.0, "final_div_factor": 100.0, "three_phase": True},
        ),
    ],
)
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_one_cycle_equals_torch_one_cycle_lr(total, setting, torch_kwargs, optimizer):
    def make():
        param = [torch.nn.Parameter(torch.zeros(2))]
        return (
            torch.optim.SGD(param, lr=PEAK, momentum=0.9) if optimizer == "sgd" else torch.optim.AdamW(param, lr=PEAK)
        )

    def momentum(opt):
        group = opt.param_groups[0]
        return group["momentum"] if optimizer == "sgd" else group["betas"][0]

    reference_opt = make()
    reference = torch.optim.lr_scheduler.OneCycleLR(reference_opt, max_lr=PEAK, total_steps=total, **torch_kwargs)
    recipe = Recipe(
        lr_scheduler_type="one_cycle",
        max_steps=total,
        learning_rate=PEAK,
        optimizer="sgd",
        **{"warmup": "30%", **setting},
    )
    opt = make()
    ours = ScheduleLR(opt, recipe.build_schedule(total))
    for step in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(reference_opt.param_groups[0]["lr"], rel=1e-12), step
        assert momentum(opt) == pytest.approx(momentum(reference_opt), rel=1e-12), step
        for o in (opt, reference_opt):
            o.step()
        ours.step()
        if step < total - 1:
            reference.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(
        PEAK / torch_kwargs.get("div_factor", 25.0) / torch_kwargs.get("final_div_factor", 1e4)
    )


@pytest.mark.parametrize(("T_0", "T_mult"), [(7, 1), (5, 2), (3, 3)])
def test_sgdr_equals_cosine_annealing_warm_restarts(T_0, T_mult):
    reference_opt = sgd()
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        reference_opt, T_0=T_0, T_mult=T_mult, eta_min=1e-5
    )
    recipe = recipe_for("sgdr", 0, 60, {"period": T_0, "period_mult": T_mult}, min_lr=1e-5)
    assert_same(our_lrs(recipe, 60), torch_lrs(reference_opt, reference, 60))


def test_cosine_annealing_and_step_lr_equal_torch():
    reference_opt = sgd()
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(reference_opt, T_max=45, eta_min=2e-5)
    assert_same(our_lrs(recipe_for("cosine", 0, 45, {}, min_lr=2e-5), 45), torch_lrs(reference_opt, reference, 45))

    reference_opt = sgd()
    reference = torch.optim.lr_scheduler.StepLR(reference_opt, step_size=8, gamma=0.5)
    assert_same(
        our_lrs(recipe_for("step", 0, 30, {"milestones": [8, 16, 24], "gamma": 0.5}), 30),
        torch_lrs(reference_opt, reference, 30),
    )


def test_multistep_and_exponential_equal_torch():
    reference_opt = sgd()
    reference = torch.optim.lr_scheduler.MultiStepLR(reference_opt, milestones=[10, 20, 35], gamma=0.3)
    recipe = recipe_for("step", 0, 40, {"milestones": [10, 20, 35], "gamma": 0.3})
    assert_same(our_lrs(recipe, 40), torch_lrs(reference_opt, reference, 40))

    reference_opt = sgd()
    reference = torch.optim.lr_scheduler.ExponentialLR(reference_opt, gamma=0.9)
    assert_same(our_lrs(recipe_for("exponential", 0, 40, {"gamma": 0.9}), 40), torch_lrs(reference_opt, reference, 40))


@pytest.mark.parametrize("kwargs", PLATEAU_CASES[:3])
def test_reduce_on_plateau_equals_torch(kwargs):
    metrics = scripted_metrics(3, 12)
    reference_opt = sgd()
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(reference_opt, **kwargs)
    theirs = torch_lrs(reference_opt, reference, 60, metrics, every=5)
    assert_same(our_lrs(recipe_for("reduce_lr_on_plateau", 0, 60, kwargs), 60, metrics, every=5), theirs)
    # ftrecipes' own 'plateau' is the same rule for positive metrics (floor = min_lr_rate, mode = greater_is_better).
    own = {k: v for k, v in kwargs.items() if k in ("patience", "factor", "cooldown", "threshold", "threshold_mode")}
    own.setdefault("factor", 0.1)
    recipe = recipe_for(
        "plateau", 0, 60, own, greater_is_better=kwargs["mode"] == "max", min_lr_rate=kwargs.get("min_lr", 0.0) / PEAK
    )
    assert_same(our_lrs(recipe, 60, metrics, every=5), theirs)


# ---------------------------------------------------------------------------------------------
# Fractional restart periods


@pytest.mark.parametrize(("decay", "cycles"), [(32, 3), (30, 2.5), (10, 3), (9, 3), (100, 1)])
def test_hf_restarts_are_marked_where_the_lr_jumps(decay, cycles):
    built = recipe_for("cosine_with_restarts", 0, decay, {"num_cycles": cycles}).build_schedule(decay)
    jumps = [t for t in range(1, decay) if built.lr(t) > built.lr(t - 1)]
    assert [t.step for t in built.transitions if t.kind == "restart"] == jumps
    assert len(jumps) == math.ceil(cycles) - 1


def test_fractional_periods_and_real_period_mult():
    built = recipe_for("sgdr", 0, 40, {"period": 2.5, "period_mult": 1.5}).build_schedule(40)
    # cycles [0, 2.5), [2.5, 6.25), [6.25, 11.875), [11.875, 20.3125), ...: restarts on the first step of each
    assert [t.step for t in built.transitions if t.kind == "restart"] == [3, 7, 12, 21, 33]
    assert built.lr(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3.5 / 3.75)))
    assert built.lr(7) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75 / 5.625)))
    # num_cycles: Hugging Face's way of asking for fractional periods, on the ftrecipes family (with its floor)
    cycles = recipe_for("sgdr", 0, 10, {"num_cycles": 3}, min_lr_rate=0.1).build_schedule(10)
    assert [t.step for t in cycles.transitions if t.kind == "restart"] == [4, 7]
    assert cycles.lr(4) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (4 - 10 / 3) / (10 / 3))))


# ---------------------------------------------------------------------------------------------
# Resume is exact for every new option


RESUME_CASES = [
    ("one_cycle", {"three_phase": True, "anneal_strategy": "linear"}, {}),
    ("one_cycle", {"pct_start": 0.25}, {}),
    ("sgdr", {"period": 2.5, "period_mult": 1.5, "peak_decay": 0.8}, {}),
    ("sgdr", {"num_cycles": 2.5}, {}),
    ("inverse_sqrt", {"timescale": 7}, {"warmup_type": "exponential", "warmup_start": 0.05}),
    ("wsd", {"decay_shape": "cosine", "num_cycles": 0.75}, {"warmup_type": "1-sqrt"}),
    ("cosine", {"num_cycles": 1.0}, {"warmup_type": "cosine"}),
    ("polynomial", {"lr_end": 1e-6, "power": 2.0}, {}),
    ("plateau", {"threshold_mode": "abs", "threshold": 0.01, "patience": 0}, {}),
    ("reduce_lr_on_plateau", {"patience": 0, "cooldown": 1, "factor": 0.5}, {}),
    ("greedy", {"patience": 0, "smooth": True, "window_size": 2, "min_lr": 1e-5, "factor": 0.7}, {}),
] + [(name, kwargs[-1], {}) for name, kwargs in HF_KWARGS.items() if name in HF_TYPES]


@pytest.mark.parametrize(
    ("name", "kwargs", "fields"), RESUME_CASES, ids=[f"{n}-{json.dumps(k)}" for n, k, _ in RESUME_CASES]
)
def test_resume_from_state_dict_is_exact(name, kwargs, fields):
    total, every = 40, 4
    recipe = recipe_for(name, 6, total, kwargs, warmup_offset=1, **fields)
    metrics = scripted_metrics(5, total // every)
    reference = our_lrs(recipe, total, metrics, every)
    for stop in (3, 6, 13, 29):  # mid-warmup, warmup boundary, mid-decay / after metric-driven changes
        opt = sgd()
        sched = ScheduleLR(opt, recipe.build_schedule(total))
        before = lrs_of(opt, sched, stop, metrics, every)
        opt_state, sched_state = (
            pickle.loads(pickle.dumps(opt.state_dict())),
            pickle.loads(pickle.dumps(copy.deepcopy(sched.state_dict()))),
        )
        opt2 = sgd()
        sched2 = ScheduleLR(opt2, recipe.build_schedule(total))
        opt2.load_state_dict(opt_state)
        sched2.load_state_dict(sched_state)
        later_metrics = metrics[stop // every :]
        after = []
        for step in range(stop, total):
            after.append(opt2.param_groups[0]["lr"])
            opt2.step()
            sched2.step()
            if (step + 1) % every == 0:
                sched2.observe(later_metrics.pop(0), step=step + 1)
        assert_same(before + after, reference)


# ---------------------------------------------------------------------------------------------
# Conventions made explicit


def test_inverse_sqrt_warmup_zero_uses_hf_timescale_and_honours_warmup_fields():
    built = recipe_for("inverse_sqrt", 0, 100, {}).build_schedule(100)
    assert built.lr(3) == pytest.approx(math.sqrt(10_000 / 10_003))  # not 1/sqrt(4) = 0.5
    shaped = recipe_for("inverse_sqrt", 10, 100, {"timescale": 40}, warmup_start=0.2).build_schedule(100)
    assert shaped.lr(0) == pytest.approx(0.2) and shaped.lr(5) == pytest.approx(0.6) and shaped.lr(10) == 1.0
    assert shaped.lr(50) == pytest.approx(math.sqrt(40 / 80))
    paper = recipe_for("inverse_sqrt", 10, 100, {}, warmup_offset=1).build_schedule(100)  # (t+1)/W, then sqrt(W/(t+1))
    assert paper.lr(0) == pytest.approx(0.1) and paper.lr(9) == 1.0 and paper.lr(39) == pytest.approx(0.5)


def test_one_cycle_reaches_final_lr_on_last_trained_step():
    built = recipe_for("one_cycle", "30%", 50, {}, warmup_offset=1).build_schedule(50)
    assert built.lr(14) == 1.0 and built.lr(49) == pytest.approx(1 / 25 / 1e4) and built.lr(48) > built.lr(49)


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("cosine_with_min_lr", "warmup_type", "exponential"),
        ("warmup_stable_decay", "warmup_start", 0.1),
        ("one_cycle", "warmup_type", "cosine"),
    ],
)
def test_families_with_their_own_warmup_refuse_the_recipe_warmup_shape(name, field, value):
    kwargs = {"num_decay_steps": 3} if name == "warmup_stable_decay" else {}
    with pytest.raises(ConfigError, match=rf"^{field}={value!r}: does not apply to '{name}'"):
        recipe_for(name, 5, 30, kwargs, **{field: value}).build_schedule(30)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("cosine_restarts", "sgdr"),
        ("onecycle", "one_cycle"),
        ("OneCycleLR", "one_cycle"),
        ("step_decay", "step"),
        ("noam", "inverse_sqrt"),
        ("warm_restarts", "sgdr"),
        ("ReduceLROnPlateau", "reduce_lr_on_plateau"),
        ("CosineAnnealingLR", "cosine"),
        ("MultiStepLR", "step"),
        ("trapezoidal", "wsd"),
        ("cosin", "cosine"),
    ],
)
def test_mistyped_names_suggest_by_meaning_and_spelling(typed, meant):
    with pytest.raises(
        ConfigError, match=rf"^lr_scheduler_type='{typed}': is not a known schedule; did you mean '{meant}'"
    ):
        Recipe(lr_scheduler_type=typed)
    Recipe(lr_scheduler_type="cosine_with_restarts")  # a Hugging Face name, valid itself


def test_hf_option_errors_are_one_line():
    with pytest.raises(ConfigError, match=r"^lr_scheduler_kwargs.num_decay_steps: is required"):
        recipe_for("warmup_stable_decay", 2, 20, {}).build_schedule(20)
    with pytest.raises(ConfigError, match=r"^lr_scheduler_kwargs.min_lr=1e-05: was given together with min_lr_rate"):
        recipe_for("cosine_with_min_lr", 2, 20, {"min_lr": 1e-5, "min_lr_rate": 0.1}).build_schedule(20)
    with pytest.raises(ConfigError, match=r"^lr_scheduler_kwargs.lr_end=0.01: must be below the peak"):
        recipe_for("polynomial", 2, 20, {"lr_end": 1e-2}).build_schedule(20)
    with pytest.raises(ConfigError, match=r"^lr_scheduler_kwargs.threshold_mode='absolute': is not one of"):
        Recipe(lr_scheduler_type="plateau", lr_scheduler_kwargs={"threshold_mode": "absolute"}).build_schedule(20)


@pytest.mark.parametrize("name", sorted(HF_TYPES))
def test_show_works_with_every_hf_name(name, tmp_path, capsys):
    from ftrecipes.cli import main

    kwargs = {"num_decay_steps": "20%"} if name == "warmup_stable_decay" else {}
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"lr_scheduler_type: {name}\nlr_scheduler_kwargs: {json.dumps(kwargs)}\nmax_steps: 200\nwarmup_offset: 0\n"
    )
    assert main(["show", str(path)]) == 0
    assert name in capsys.readouterr().out


def test_finetune_job_trains_with_hf_trace(tiny_base, cls_files, tmp_path):
    """End to end: a Trainer user's flags through scripts/finetune.py; the LR logged at every optimizer
    step equals transformers.get_scheduler's for the same warmup, total and kwargs."""
    from ftrecipes.job.run import main
    from ftrecipes.training.stock import log_history_lrs

    kwargs = {"num_decay_steps": 4, "warmup_type": "cosine", "decay_type": "1-sqrt", "min_lr_ratio": 0.05}
    out = tmp_path / "run"
    assert (
        main(
            [
                "--recipe",
                "cls",
                "--model_name_or_path",
                tiny_base,
                "--train_file",
                cls_files["train"],
                "--validation_file",
                cls_files["validation"],
                "--output_dir",
                str(out),
                "--max_steps",
                "10",
                "--per_device_train_batch_size",
                "2",
                "--max_train_samples",
                "20",
                "--max_eval_samples",
                "4",
                "--warmup_steps",
                "3",
                "--lr_scheduler_type",
                "warmup_stable_decay",
                "--lr_scheduler_kwargs",
                json.dumps(kwargs),
                "--logging_steps",
                "1",
                "--eval_strategy",
                "no",
                "--max_seq_length",
                "16",
                "--report_to",
                "none",
                "--disable_tqdm",
                "true",
                "--plots",
                "false",
                "--save_strategy",
                "no",
            ]
        )
        == 0
    )
    peak = json.loads((out / "plan.json").read_text())["learning_rate"]
    logged = log_history_lrs(json.loads((out / "trainer_state.json").read_text())["log_history"])
    opt = sgd(lr=peak)
    reference = lrs_of(
        opt,
        get_scheduler(
            "warmup_stable_decay", opt, num_warmup_steps=3, num_training_steps=10, scheduler_specific_kwargs=kwargs
        ),
        10,
    )
    assert sorted(logged) == list(range(1, 11))
    assert_same([logged[s] for s in range(1, 11)], reference)  # the LR logged at step s is the one step s used
