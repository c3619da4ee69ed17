"""LR range test: suggestion inside the falling region, exact restore, outputs, priors and the rule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ftrecipes import ConfigError, get_recipe
from ftrecipes.testing import synthetic_batches, tiny_classifier
from ftrecipes.training.optim import create_optimizer
from ftrecipes.training.precision import resolve_precision
from ftrecipes.tuning.range_test import (
    LRFinderResult,
    LRPrior,
    choose_learning_rate,
    ema_smooth,
    find_lr,
    prior_for_recipe,
    prior_warning,
    recipe_prior,
    smooth_curve,
    suggest_lr,
    write_outputs,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run():
    """One range test on a tiny model, wide enough to see the fall and the blow-up."""
    model = tiny_classifier()
    with torch.random.fork_rng():
        torch.manual_seed(0)  # dropout draws: the same curve whatever ran before
        result = find_lr(
            model,
            synthetic_batches(),
            recipe=get_recipe("cls"),
            min_lr=1e-5,
            max_lr=100.0,
            num_steps=50,
            show_progress=False,
        )
    return model, result


def _falling_region(result):
    """LRs between the start of the search and the minimum of the smoothed loss."""
    s = np.asarray(result.smoothed)
    i_min = int(np.argmin(s))
    return result.lrs[0], result.lrs[i_min], s


def test_suggestion_lies_where_the_smoothed_loss_falls(run):
    _, result = run
    assert result.suggestion is not None
    low, high, s = _falling_region(result)
    assert low <= result.suggestion <= high
    # The loss really falls across the curve and the test stopped on divergence, not on the step budget.
    assert s.min() < 0.7 * s[0]
    assert result.stopped_early and "smoothed loss" in result.stop_reason
    # Around the suggestion the smoothed loss is going down.
    i = int(np.argmin(np.abs(np.log(result.lrs) - math.log(result.suggestion))))
    assert s[min(i + 3, len(s) - 1)] < s[max(i - 3, 0)]


def test_minimum_over_ten_rule_is_a_tenth_of_the_minimum(run):
    _, result = run
    lr, reason, _ = suggest_lr(result.lrs, result.losses, result.smoothed, rule="minimum/10", beta=result.beta)
    skip = max(2, len(result.smoothed) // 20)
    i_min = skip + int(np.argmin(result.smoothed[skip:]))
    assert lr == pytest.approx(result.lrs[i_min] / 10)
    assert "tenth" in reason


def test_fine_tuning_suggestion_outside_prior_is_bounded_and_explained(run):
    _, result = run
    # A randomly initialised tiny model learns at LRs far above fine-tuning's 2e-5..2e-4: exactly the
    # overshoot of transformers#16013, which must be bounded and explained.
    assert result.prior.regime == "recipe 'cls'" and (result.prior.low, result.prior.high) == (2e-5, 2e-4)
    assert result.suggestion > result.prior.high
    assert result.recommended == result.prior.high
    assert "transformers#16013" in result.warning
    assert f"{result.prior.high:.3g}" in result.warning  # what to try
    assert "\n" not in result.warning


def _snapshot(model, optimizer):
    return ({k: v.clone() for k, v in model.state_dict().items()}, _clone_state(optimizer.state_dict()))


def _clone_state(obj):
    if torch.is_tensor(obj):
        return obj.clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_state(v) for v in obj)
    return obj


def _assert_identical(a, b):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_identical(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_identical(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("warm_optimizer", [False, True], ids=["fresh-optimizer", "optimizer-with-state"])
def test_weights_and_optimizer_state_are_bit_identical_afterwards(warm_optimizer):
    model = tiny_classifier(seed=1)
    recipe = get_recipe("cls")
    optimizer = create_optimizer(recipe, model)
    batches = synthetic_batches(num_batches=4, seed=1)
    if warm_optimizer:  # a run in progress: Adam moments and step counts exist
        model.train()
        model(**batches[0]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    before_model, before_opt = _snapshot(model, optimizer)
    rng = torch.get_rng_state()

    result = find_lr(
        model,
        batches,
        optimizer,
        recipe=recipe,
        min_lr=1e-6,
        max_lr=1.0,
        num_steps=12,
        accumulation_steps=2,
        show_progress=False,
    )
    assert len(result.lrs) > 0

    after_model, after_opt = _snapshot(model, optimizer)
    for key in before_model:
        assert torch.equal(before_model[key], after_model[key]), key
    _assert_identical(before_opt, after_opt)
    assert not model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())  # dropout draws of the test do not leak


@pytest.mark.parametrize("requested", ["bf16", "fp16", "auto"])
def test_ramp_runs_on_the_given_device_and_precision(requested):
    from ftrecipes.training.precision import precision_supported

    # As the run would train on this CPU: bf16 autocast where it is native, fp16 never (a GPU tool).
    ran = {
        "bf16": "bf16" if precision_supported("bf16", "cpu") else "fp32",
        "fp16": "fp32",
        "auto": resolve_precision("auto", "cpu"),
    }[requested]
    model = tiny_classifier()
    result = find_lr(
        model,
        synthetic_batches(num_batches=2, batch_size=4),
        recipe=get_recipe("cls"),
        num_steps=5,
        device="cpu",
        precision=requested,
        show_progress=False,
    )
    assert result.precision == ran and result.device == "cpu" and len(result.lrs) == 5
    assert next(model.parameters()).device.type == "cpu"


def test_accumulation_averages_micro_batches_and_loss_follows_updates():
    # lr is tiny: the weights barely move, so every recorded loss is close to the initial loss, and the
    # record holds one loss per optimizer step (not per micro-batch).
    model = tiny_classifier()
    result = find_lr(
        model,
        synthetic_batches(num_batches=3),
        recipe=get_recipe("cls"),
        min_lr=1e-9,
        max_lr=1e-8,
        num_steps=6,
        accumulation_steps=3,
        show_progress=False,
    )
    assert len(result.lrs) == len(result.losses) == 6
    assert result.accumulation_steps == 3 and result.global_batch_size == 48
    assert result.lrs[0] == pytest.approx(1e-9) and result.lrs[-1] == pytest.approx(1e-8)
    assert all(abs(loss - result.initial_loss) < 0.05 for loss in result.losses)
    # The 3 batches cycle with accumulation 3: each step sees the same 3 batches, so losses agree closely.
    assert np.std(result.losses) < 1e-3
    assert result.precision == resolve_precision("auto", "cpu")  # the recipe's policy on this CPU


def test_json_and_png_outputs(run, tmp_path):
    _, result = run
    paths = write_outputs(result, tmp_path / "out", title="tiny")
    png = paths["png"].read_bytes()
    assert png[:8] == PNG_MAGIC
    import matplotlib.image

    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    data = json.loads(paths["json"].read_text())
    for key in (
        "lrs",
        "losses",
        "smoothed",
        "suggestion",
        "recommended",
        "prior",
        "warning",
        "rule",
        "reason",
        "stop_reason",
        "global_batch_size",
        "suggestion_in_prior",
    ):
        assert key in data, key
    assert data["suggestion"] == result.suggestion
    assert data["prior"]["low"] == pytest.approx(2e-5) and data["prior"]["high"] == pytest.approx(2e-4)
    assert data["suggestion_in_prior"] is False
    assert len(data["lrs"]) == len(data["losses"]) == len(data["smoothed"])
    assert LRFinderResult.from_json(paths["json"]).to_dict() == result.to_dict()


def test_choose_learning_rate_returns_the_recommendation(tmp_path):
    model = tiny_classifier()
    lr, result = choose_learning_rate(
        get_recipe("cls"),
        model,
        synthetic_batches(num_batches=4),
        output_dir=tmp_path,
        num_steps=8,
        show_progress=False,
    )
    assert lr == result.recommended
    assert (tmp_path / "lr_finder.json").is_file() and (tmp_path / "lr_finder.png").is_file()


def test_smoothing_is_bias_corrected_and_zero_phase():
    assert ema_smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0
    assert smooth_curve([2.0] * 5, 0.9) == pytest.approx([2.0] * 5)
    # A symmetric bump stays centred (a causal EMA would peak later); the cap clips the tail.
    bump = [0.0] * 20 + [1.0] + [0.0] * 20
    assert int(np.argmax(smooth_curve(bump, 0.8))) == 20
    centre = lambda v: float(np.dot(np.arange(len(v)), v) / np.sum(v))  # noqa: E731
    assert centre(smooth_curve(bump, 0.8)) == pytest.approx(20.0, abs=0.3)  # bias correction at the edges only
    assert centre(ema_smooth(bump, 0.8)) > 23  # the causal EMA trails by ~beta/(1-beta) = 4 steps
    assert max(smooth_curve([1.0, 1.0, 50.0], 0.5, cap=1.0)) == pytest.approx(1.0)


def test_rule_on_a_synthetic_curve_is_robust_to_noise():
    # loss = 1 - 0.5 * sigmoid(3 (log10 lr + 3)) + a blow-up beyond 1e-1, plus noise: the steepest
    # point of the clean curve is 1e-3.
    n = 100
    lrs = np.logspace(-6, 0, n)
    x = np.log10(lrs)
    clean = 1 - 0.5 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, 5 * (x + 1) ** 2, 0)
    for seed in range(5):
        losses = list(clean + np.random.default_rng(seed).normal(0, 0.02, n))
        smoothed = smooth_curve(losses, 0.9, cap=max(losses[:6]))
        lr, _, _ = suggest_lr(list(lrs), losses, smoothed, beta=0.9)
        assert 10**-3.4 < lr < 10**-2.6, seed  # within 0.4 decade of the true steepest point
    # A causal EMA reads the same curve several ramp steps too high: the overshoot direction.
    lagged, _, _ = suggest_lr(list(lrs), losses, ema_smooth(losses, 0.9), beta=0.9)
    assert lagged > 1.5 * lr


def test_flat_curve_gives_no_suggestion_and_says_so():
    n, rng = 60, np.random.default_rng(1)
    lrs = list(np.logspace(-7, -5, n))
    losses = list(1.0 + rng.normal(0, 0.01, n))
    lr, reason, _ = suggest_lr(lrs, losses, smooth_curve(losses, 0.9))
    assert lr is None and "did not fall" in reason
    warning = prior_warning(None, recipe_prior(get_recipe("cls")))
    assert "no suggestion" in warning


def test_priors_per_recipe_and_batch_scaling():
    # The prior is the recipe's own lr_prior field: a new recipe brings its own, no table to edit.
    assert get_recipe("cls").lr_prior == [2e-5, 2e-4] and get_recipe("cnn-step").lr_prior == [1e-2, 1e-1]
    own = prior_for_recipe(get_recipe("cls", lr_prior="1e-5,3e-5", learning_rate=2e-5))
    assert (own.low, own.high) == (1e-5, 3e-5) and "lr_prior" in own.source
    for bad in ("5e-5,2e-5", "0,1e-5", "1e-5", "fast"):
        with pytest.raises(ConfigError, match="^lr_prior="):
            get_recipe("cls", lr_prior=bad)
    cls = prior_for_recipe(get_recipe("cls"))
    assert (cls.low, cls.high) == (2e-5, 2e-4)
    sgd = prior_for_recipe(get_recipe("cnn-step"))
    assert (sgd.low, sgd.high) == (1e-2, 1e-1)
    pre = prior_for_recipe(get_recipe("pretrain"))
    assert (pre.low, pre.high) == (1e-4, 1e-3)
    # one-cycle documents its own 1e-4 peak: the prior widens to include it, and says so.
    one = prior_for_recipe(get_recipe("one-cycle"))
    assert one.high == 1e-4 and "widened" in one.source
    # At 4x the reference batch, cls (sqrt rule) moves its prior by 2x; cnn-step (linear) by 4x.
    assert prior_for_recipe(get_recipe("cls"), 64).high == pytest.approx(4e-4)
    assert prior_for_recipe(get_recipe("cnn-step"), 512).high == pytest.approx(0.4)


def test_prior_warning_below_and_inside():
    prior = LRPrior(2e-5, 5e-5, "fine-tuning", "test")
    assert prior_warning(3e-5, prior) is None
    below = prior_warning(5e-6, prior)
    assert "below" in below and "2e-05" in below


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_steps=2), "num_steps"),
        (dict(min_lr=1e-2, max_lr=1e-3), "min_lr"),
        (dict(rule="valley"), "rule"),
        (dict(accumulation_steps=0), "accumulation_steps"),
        (dict(prior="abc"), "prior"),
    ],
)
def test_bad_settings_are_one_line_config_errors(kwargs, field):
    with pytest.raises(ConfigError) as err:
        find_lr(tiny_classifier(), synthetic_batches(num_batches=1), show_progress=False, **kwargs)
    assert err.value.field == field and "\n" not in str(err.value)


def test_batches_without_labels_and_empty_loaders_are_reported():
    batches = [{k: v for k, v in b.items() if k != "labels"} for b in synthetic_batches(num_batches=1)]
    with pytest.raises(ConfigError, match="labels"):
        find_lr(tiny_classifier(), batches, num_steps=5, show_progress=False)
    with pytest.raises(ConfigError, match="no batches"):
        find_lr(tiny_classifier(), [], num_steps=5, show_progress=False)
