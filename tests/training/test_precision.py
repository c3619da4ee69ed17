"""Precision policy: CPU bf16 detection, auto resolution per device, the TrainingArguments wiring
(bf16 autocast really engages on CPU inside Trainer's step), the LR range test following it, and the
one-line exit 2 for a precision the machine cannot run."""

from __future__ import annotations

import json
import os

import pytest
import torch

from ftrecipes import ConfigError, get_recipe
from ftrecipes.testing import synthetic_batches, tiny_classifier
from ftrecipes.training import precision
from ftrecipes.training.precision import (
    args_precision,
    check_precision,
    parse_cpuinfo,
    precision_supported,
    resolve_precision,
    training_args_precision,
)

X86_FLAGS = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SPR_FLAGS = "flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8 avx512_bf16\n"
OLD_X86 = "flags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
ARM_V9 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes sve i8mm bf16 svebf16\nCPU implementer\t: 0x41\n"
ARM_V8 = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Pretend the CPU does (True) or does not (False) run bf16 natively."""

    def set_(value: bool):
        monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: value)

    return set_


@pytest.mark.parametrize(
    "text, expected",
    [
        (X86_FLAGS, ("avx512_bf16",)),
        (SPR_FLAGS, ("amx_bf16", "avx512_bf16")),
        (OLD_X86, ()),
        (ARM_V9, ("bf16",)),
        (ARM_V8, ()),
        ("", ()),
    ],
)
def test_parse_cpuinfo(text, expected):
    assert parse_cpuinfo(text) == expected


def test_detection_agrees_with_the_os():
    # torch's cpuinfo-based answer and the kernel's flags must name the same features here.
    features = precision.cpu_bf16_features()
    if os.path.exists("/proc/cpuinfo"):
        assert bool(features) == bool(precision._proc_cpuinfo_flags())
    assert precision.cpu_supports_bf16() == bool(features)


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_cpu_follows_native_bf16(cpu_bf16, native, expected):
    cpu_bf16(native)
    assert resolve_precision("auto", "cpu") == expected
    assert check_precision("auto", "cpu") == expected
    for explicit in ("bf16", "fp16", "fp32"):
        assert resolve_precision(explicit, "cpu") == explicit


def test_auto_elsewhere_is_fp32():
    assert resolve_precision("auto", "mps") == "fp32"
    assert precision_supported("fp32", "cpu") and precision_supported("fp32", "mps")


def test_auto_on_this_machine_matches_its_device():
    device = precision.training_device()
    expected = (
        ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
        if device == "cuda"
        else ("bf16" if device == "cpu" and precision.cpu_supports_bf16() else "fp32")
    )
    assert resolve_precision("auto") == expected


def test_unsupported_precisions_name_the_field_and_a_fix(cpu_bf16):
    cpu_bf16(False)
    assert not precision_supported("bf16", "cpu")
    with pytest.raises(ConfigError, match=r"^precision='bf16': this CPU has no native bf16 .*; use --precision fp32"):
        check_precision("bf16", "cpu")
    with pytest.raises(ConfigError, match=r"^precision='fp16': fp16 mixed precision needs a GPU"):
        check_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match=r"^--bf16=True: this CPU has no native bf16"):
        training_args_precision("fp32", {"bf16": True, "use_cpu": True})
    with pytest.raises(ConfigError, match=r"^precision='half': is not a precision"):
        check_precision("half", "cpu")


def test_training_args_wiring_on_cpu(cpu_bf16):
    cpu_bf16(True)
    assert training_args_precision("auto", {"use_cpu": True}) == {"bf16": True, "fp16": False, "use_cpu": True}
    assert training_args_precision("fp32", {"use_cpu": True}) == {"bf16": False, "fp16": False}
    assert training_args_precision("fp32", {"bf16": True, "use_cpu": True})["bf16"]  # the explicit flag wins
    with pytest.raises(ConfigError, match="together with --fp16"):
        training_args_precision("auto", {"bf16": True, "fp16": True})


def _forward_dtypes(model) -> list[tuple[bool, torch.dtype]]:
    seen: list[tuple[bool, torch.dtype]] = []
    model.bert.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, inputs, output: seen.append((torch.is_grad_enabled(), output.dtype))
    )
    return seen


@pytest.mark.parametrize("policy, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_trainer_step_runs_under_the_recipes_precision(cpu_bf16, tmp_path, policy, dtype):
    # What the job builds (recipe_training_args -> RecipeTrainer) must really autocast on CPU: the
    # matmul outputs inside the training step are bf16, the master weights stay fp32.
    from ftrecipes.training.arguments import recipe_training_args
    from ftrecipes.training.trainer import RecipeTrainer

    cpu_bf16(True)
    recipe = get_recipe("cls", precision=policy, per_device_train_batch_size=8, max_steps=2)
    args = recipe_training_args(
        recipe,
        str(tmp_path),
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
        disable_tqdm=True,
    )
    assert args_precision(args) == policy
    model = tiny_classifier()
    seen = _forward_dtypes(model)
    rows = [
        {k: v[i] for k, v in batch.items()}
        for batch in synthetic_batches(num_batches=2, batch_size=8)
        for i in range(8)
    ]
    trainer = RecipeTrainer(model=model, args=args, recipe=recipe, train_dataset=rows)
    trainer.train()
    assert [d for grad, d in seen if grad] == [dtype, dtype]
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_lr_range_test_follows_the_precision(cpu_bf16):
    from ftrecipes.tuning.range_test import find_lr

    cpu_bf16(True)
    model = tiny_classifier()
    seen = _forward_dtypes(model)
    result = find_lr(
        model,
        synthetic_batches(num_batches=2),
        recipe=get_recipe("cls", precision="bf16"),
        min_lr=1e-6,
        max_lr=1e-4,
        num_steps=5,
        show_progress=False,
    )
    assert result.precision == "bf16" and {d for _, d in seen} == {torch.bfloat16}
    cpu_bf16(False)  # the model's device cannot run bf16: the test runs in fp32 and says so
    result = find_lr(
        tiny_classifier(),
        synthetic_batches(num_batches=2),
        recipe=get_recipe("cls", precision="bf16"),
        min_lr=1e-6,
        max_lr=1e-4,
        num_steps=5,
        show_progress=False,
    )
    assert result.precision == "fp32"


def test_finetune_bf16_flag_without_native_bf16_exits_2(cpu_bf16, tmp_path, capsys):
    from ftrecipes.job.run import main

    cpu_bf16(False)
    out = tmp_path / "run"
    code = main(["--recipe", "cls", "--bf16", "--output_dir", str(out), "--use_cpu", "true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("finetune.py: error: --bf16=True: this CPU has no native bf16") and "drop --bf16" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("policy, attention", [("bf16", "eager"), ("fp32", "sdpa")])
def test_job_loads_the_attention_kernel_for_its_precision(cpu_bf16, tiny_base, cls_files, tmp_path, policy, attention):
    # bf16 on CPU trains with eager attention (torch's CPU flash-attention backward is slow in bf16).
    from ftrecipes.job.parse import parse_args
    from ftrecipes.job.run import build_training_components

    cpu_bf16(True)
    config = parse_args(
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
            str(tmp_path / "run"),
            "--max_seq_length",
            "32",
            "--precision",
            policy,
            "--use_cpu",
            "true",
        ]
    )
    components = build_training_components(config)
    assert args_precision(components.args) == policy
    assert components.model.config._attn_implementation == attention


def test_trained_precision_reads_what_the_run_set_in_its_plan(tmp_path):
    from ftrecipes.training.precision import trained_precision

    assert trained_precision(tmp_path) == ""  # no plan.json: not known
    for bf16, fp16, expected in [(True, False, "bf16"), (False, True, "fp16"), (False, False, "fp32")]:
        sources = {"bf16": {"value": bf16, "source": "recipe"}, "fp16": {"value": fp16, "source": "recipe"}}
        (tmp_path / "plan.json").write_text(json.dumps({"sources": sources}))
        assert trained_precision(tmp_path) == expected
