"""Schedules: exact values at the boundaries, worked examples, and properties."""

import math
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftrecipes.config import schedules as S
from ftrecipes.config.built_schedule import Sizes

# ---------------------------------------------------------------------------------------------
from ftrecipes.config.schedule_types import SCHEDULE_TYPES, build_schedule

# The common fine-tuning schedule written two ways: as an absolute LR and as a LambdaLR multiplier.

TOTAL, WARMUP, PEAK, LR_MIN, LR_MIN_RATIO = 100_000, 2_000, 1e-3, 1e-5, 1e-2


def reference_lr_at_step(step):
    """Written as an absolute LR in plain PyTorch."""
    if step < WARMUP:
        return PEAK * (step + 1) / WARMUP
    t = step - WARMUP
    T = TOTAL - WARMUP
    cosine = 0.5 * (1 + math.cos(math.pi * t / T))
    return LR_MIN + (PEAK - LR_MIN) * cosine


def reference_lr_lambda(step):
    """Written as a LambdaLR multiplier."""
    if step < WARMUP:
        return (step + 1) / WARMUP
    t = step - WARMUP
    T = TOTAL - WARMUP
    cosine = 0.5 * (1 + math.cos(math.pi * t / T))
    return LR_MIN_RATIO + (1 - LR_MIN_RATIO) * cosine


def strategy_a(floor):
    return build_schedule("cosine", Sizes(total_steps=TOTAL, warmup_steps=WARMUP, steps_per_epoch=None, floor=floor)).lr


def test_strategy_a_pytorch_example_every_step():
    schedule = strategy_a(floor=LR_MIN / PEAK)
    for step in range(TOTAL):
        assert PEAK * schedule(step) == pytest.approx(reference_lr_at_step(step), rel=1e-12, abs=1e-18), step


def test_strategy_a_lambdalr_example_every_step():
    schedule = strategy_a(floor=LR_MIN_RATIO)
    for step in range(TOTAL):
        assert schedule(step) == pytest.approx(reference_lr_lambda(step), rel=1e-12, abs=1e-15), step


def test_strategy_a_recipe_matches_reference():
    """The same trace through the Recipe API (absolute floor via min_lr)."""
    from ftrecipes import Recipe, Timeline

    recipe = Recipe(learning_rate=PEAK, min_lr=LR_MIN, warmup=WARMUP, max_steps=TOTAL, lr_scaling="none")
    plan = recipe.plan(Timeline(num_examples=1000, per_device_train_batch_size=16, max_steps=TOTAL))
    for step in (0, 1, WARMUP - 1, WARMUP, WARMUP + 1, 51_000, TOTAL - 1):
        assert plan.lr_at(step) == pytest.approx(reference_lr_at_step(step), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Exact boundaries of every family.


def test_linear_warmup_boundaries():
    hf = S.linear_warmup(10)  # offset 0: HF convention
    assert [hf(0), hf(5), hf(10), hf(11)] == [0.0, 0.5, 1.0, 1.0]
    ref = S.linear_warmup(10, offset=1)
    assert [ref(0), ref(9), ref(10)] == [0.1, 1.0, 1.0]
    from_start = S.linear_warmup(10, start=0.2)
    assert from_start(0) == 0.2 and from_start(5) == pytest.approx(0.6) and from_start(10) == 1.0


def test_exponential_warmup_boundaries():
    w = S.exponential_warmup(10, start=0.01)
    assert w(0) == pytest.approx(0.01)
    assert w(5) == pytest.approx(0.1)  # geometric midpoint
    assert w(10) == 1.0 and w(20) == 1.0
    assert w(3) / w(2) == pytest.approx(w(8) / w(7))  # constant growth factor


@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_cosine_decay_boundaries(floor):
    d = S.cosine_decay(100, floor)
    assert d(0) == 1.0
    assert d(50) == pytest.approx(floor + (1 - floor) * 0.5)
    assert d(100) == pytest.approx(floor) and d(1000) == pytest.approx(floor)


def test_linear_polynomial_sqrt_decay_boundaries():
    assert [S.linear_decay(10)(s) for s in (0, 5, 10, 11)] == [1.0, 0.5, 0.0, 0.0]
    p = S.polynomial_decay(10, power=2.0, floor=0.1)
    assert p(0) == 1.0 and p(5) == pytest.approx(0.1 + 0.9 * 0.25) and p(10) == pytest.approx(0.1)
    q = S.sqrt_decay(100)
    assert q(0) == 1.0 and q(25) == pytest.approx(0.5) and q(100) == 0.0


def test_multistep_and_exponential_decay():
    m = S.multistep_decay([30, 60, 90], 0.1)
    assert [m(0), m(29), m(30), m(59), m(60), m(90), m(1000)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.001, 0.001])
    e = S.exponential_decay(0.5, floor=0.1)
    assert [e(0), e(1), e(2), e(3), e(4)] == pytest.approx([1, 0.5, 0.25, 0.125, 0.1])


def test_constant_and_join():
    j = S.join([S.constant(0.5), S.linear_decay(10)], [5])
    assert j(0) == 0.5 and j(4) == 0.5 and j(5) == 1.0 and j(10) == 0.5 and j(15) == 0.0
    with pytest.raises(ValueError):
        S.join([S.constant()], [5])


def test_sgdr_cycles_and_restarts():
    s = S.sgdr(10, period_mult=2.0, peak_decay=0.5, floor=0.0)
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.5)  # middle of the first cycle
    assert s(10) == pytest.approx(0.5)  # restart at the second cycle's lower peak
    assert s(30) == pytest.approx(0.25)  # third cycle starts at 10 + 20
    assert S.sgdr_restarts(10, 2.0, 100) == [10, 30, 70]
    assert S.sgdr_cycle(29, 10, 2.0) == (1, 19, 20)
    equal = S.sgdr(4)
    assert [equal(s) for s in (0, 4, 8)] == [1.0, 1.0, 1.0]


def test_one_cycle_lr_and_momentum():
    lr = S.one_cycle(100, 30, div_factor=25, final_div_factor=1e4)
    mom = S.one_cycle_momentum(100, 30, 0.85, 0.95)
    assert lr(0) == pytest.approx(1 / 25) and lr(30) == 1.0
    assert lr(100) == pytest.approx(1 / 25 / 1e4) and lr(500) == pytest.approx(1 / 25 / 1e4)
    assert mom(0) == pytest.approx(0.95) and mom(30) == pytest.approx(0.85) and mom(100) == pytest.approx(0.95)
    # inverse: where LR rises, momentum falls
    assert all((lr(t + 1) - lr(t)) * (mom(t + 1) - mom(t)) <= 0 for t in range(99))


def test_inverse_sqrt_equals_transformer_paper_form():
    d_model, warmup = 512, 4000
    relative = S.inverse_sqrt(warmup)
    peak = S.transformer_peak_lr(d_model, warmup)
    for step in (0, 1, 100, warmup - 2, warmup - 1, warmup, 10_000, 100_000):
        assert peak * relative(step) == pytest.approx(
            S.transformer_lr(step, d_model=d_model, warmup_steps=warmup), rel=1e-12
        )
    assert relative(warmup - 1) == 1.0
    assert relative(4 * warmup - 1) == pytest.approx(0.5)  # sqrt(W / 4W)


def test_plateau_schedule_reduces_and_round_trips():
    p = S.PlateauSchedule(warmup=S.linear_warmup(4), mode="max", factor=0.5, patience=1, floor=0.2)
    assert p(2) == 0.5 and p(10) == 1.0
    assert not p.observe(0.80)  # first value: best
    assert not p.observe(0.79)  # one bad evaluation: within patience
    assert p.observe(0.79, step=30)  # second bad one: drop
    assert p(10) == 0.5 and p.drops == [(30, 0.5)]
    p.observe(0.7)
    p.observe(0.7)
    p.observe(0.7)
    p.observe(0.7)
    assert p.scale == 0.2  # clamped at the floor
    clone = S.PlateauSchedule(warmup=S.linear_warmup(4), floor=0.2)
    clone.load_state_dict(pickle.loads(pickle.dumps(p.state_dict())))
    assert clone(10) == p(10) and clone.best == p.best and clone.drops == p.drops


def test_warmup_shapes_cycles_and_shift_boundaries():
    for shape, mid in (("linear", 0.5), ("cosine", 0.5), ("1-sqrt", 1 - math.sqrt(0.5))):
        w = S.shaped_warmup(10, start=0.2, shape=shape)
        assert w(0) == pytest.approx(0.2) and w(5) == pytest.approx(0.2 + 0.8 * mid) and w(10) == 1.0
    with pytest.raises(ValueError):
        S.shaped_warmup(10, shape="tanh")
    full = S.cosine_decay(100, floor=0.0, num_cycles=1.0)  # down and back up
    assert full(0) == 1.0 and full(50) == pytest.approx(0.0, abs=1e-15) and full(100) == pytest.approx(1.0)
    hard = S.cosine_hard_restarts(30, num_cycles=3, floor=0.1)
    assert hard(0) == 1.0 and hard(10) == 1.0 and hard(9) < 0.2 and hard(30) == 0.1
    assert S.hard_restart_steps(30, 3) == [10, 20] and S.hard_restart_steps(25, 2.5) == [10, 20]
    assert S.shift(S.linear_decay(10), 1)(0) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        S.inverse_sqrt_decay(0)


def test_one_cycle_three_phase_and_linear_annealing():
    lr = S.one_cycle(100, 29.0, div_factor=10, final_div_factor=100, anneal_strategy="linear", three_phase=True)
    assert (
        lr(0) == pytest.approx(0.1) and lr(29) == 1.0 and lr(58) == pytest.approx(0.1) and lr(99) == pytest.approx(1e-3)
    )
    assert lr(14) == pytest.approx(0.1 + 0.9 * 14 / 29)  # linear, not cosine
    mom = S.one_cycle_momentum(100, 29.0, three_phase=True)
    assert mom(29) == pytest.approx(0.85) and mom(58) == pytest.approx(0.95) and mom(80) == pytest.approx(0.95)
    peak_at_zero = S.one_cycle(10, 0.0)
    assert peak_at_zero(0) == 1.0 and peak_at_zero(9) == pytest.approx(1 / 25 / 1e4)


def test_every_primitive_pickles():
    for schedule in (
        S.constant(),
        S.linear_warmup(5),
        S.exponential_warmup(5),
        S.cosine_decay(5),
        S.polynomial_decay(5),
        S.multistep_decay([1, 2]),
        S.exponential_decay(0.9),
        S.sgdr(5, 2.0),
        S.one_cycle(10, 3),
        S.inverse_sqrt(4),
        S.shaped_warmup(5, shape="1-sqrt"),
        S.cosine_hard_restarts(9, 2.5),
        S.shift(S.cosine_decay(5), 1),
        S.sgdr(2.5, 1.5),
        S.one_cycle(10, 2.5, anneal_strategy="linear", three_phase=True),
        S.GreedySchedule(warmup=S.linear_warmup(4)),
    ):
        assert pickle.loads(pickle.dumps(schedule))(3) == schedule(3)


# ---------------------------------------------------------------------------------------------
# Properties over every schedule type.

sizes_strategy = st.builds(
    lambda total, warm_frac, floor: Sizes(
        total_steps=total, warmup_steps=int(total * warm_frac), steps_per_epoch=max(1, total // 3), floor=floor
    ),
    st.integers(20, 3000),
    st.floats(0.0, 0.4),
    st.floats(0.0, 0.5),
)


@settings(max_examples=40, deadline=None)
@given(sizes=sizes_strategy, kind=st.sampled_from(["cosine", "linear", "polynomial", "exponential", "wsd", "constant"]))
def test_warmup_rises_then_decay_falls_to_floor(sizes, kind):
    """Monotone up to the peak, monotone down after it, never below the floor, 1.0 at the peak."""
    schedule = build_schedule(kind, sizes).lr
    trace = [schedule(s) for s in range(sizes.total_steps + 5)]
    W = sizes.warmup_steps
    assert all(a <= b + 1e-12 for a, b in zip(trace[:W], trace[1 : W + 1]))
    assert all(a >= b - 1e-12 for a, b in zip(trace[W:], trace[W + 1 :]))
    assert trace[W] == pytest.approx(1.0)
    floor = sizes.floor if kind != "exponential" else min(sizes.floor, 1.0)
    assert min(trace) >= min(floor, trace[0]) - 1e-12
    if kind != "constant":
        assert trace[-1] == pytest.approx(
            max(sizes.floor, 1e-3) if kind == "exponential" else sizes.floor, rel=1e-6, abs=1e-9
        )


@settings(max_examples=40, deadline=None)
@given(sizes=sizes_strategy, kind=st.sampled_from(["cosine", "linear", "wsd", "one_cycle", "inverse_sqrt"]))
def test_smooth_schedules_have_no_jumps(sizes, kind):
    """Continuous families move per step by no more than their steepest slope allows: 1/W in a
    linear warmup and (pi/2)/D in a cosine phase of D steps (1/D for linear)."""
    if kind == "one_cycle" and sizes.warmup_steps == 0:
        return
    kwargs = {"decay_shape": "cosine"} if kind == "wsd" else {}
    schedule = build_schedule(kind, sizes, kwargs).lr
    trace = [schedule(s) for s in range(sizes.total_steps + 3)]
    W = max(sizes.warmup_steps, 1)
    D = sizes.total_steps - sizes.warmup_steps
    if kind == "wsd":
        D = math.ceil(0.2 * sizes.total_steps)
    slopes = [1.0 / W, (math.pi / 2) / max(D, 1)]
    if kind == "one_cycle":  # the rise peaks at step W - 1 (offset 1, torch's OneCycleLR)
        slopes.append((math.pi / 2) / max(W - 1, 1))
    max_jump = max(abs(a - b) for a, b in zip(trace, trace[1:]))
    assert max_jump <= max(slopes) + 1e-9


@pytest.mark.parametrize("kind", sorted(SCHEDULE_TYPES))
def test_every_type_starts_low_or_at_peak_and_stays_in_range(kind):
    sizes = Sizes(total_steps=200, warmup_steps=20, steps_per_epoch=50, floor=0.05, peak_lr=1e-3)
    built = build_schedule(kind, sizes, {"num_decay_steps": "20%"} if kind == "warmup_stable_decay" else {})
    trace = built.trace()
    assert len(trace) == 200
    assert all(0.0 <= m <= 1.0 + 1e-12 for m in trace), kind
    assert max(trace) == pytest.approx(1.0)
    assert trace[0] < 1.0  # all have warmup here
