"""scripts/benchmarks/gpu_check.py where there is no GPU: its dry run plans and validates every check
(and fails on a broken launch config), a real run without CUDA is one line and exit 2, the FLOPs/MFU
count matches a hand computation, and the LR-trace and engine-evidence comparisons fail when they should."""

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import PYTHON, REPO

SCRIPT = REPO / "scripts" / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("ftrecipes_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _script(*argv, env=None):
    return subprocess.run(
        [PYTHON, str(SCRIPT), *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_dry_run_plans_every_check_and_writes_nothing(gpu_check, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # where the script's commands and launch configs are named from, as a user runs it
    work, output = tmp_path / "work", tmp_path / "out.json"
    code = gpu_check.main(
        ["--dry-run", "--work_dir", str(work), "--output", str(output), "--results_dir", str(tmp_path / "results")]
    )
    out = capsys.readouterr().out
    assert code == 0, out[-4000:]
    for name in ("mfu", "fsdp2", "deepspeed-zero2", "qlora"):
        assert f"\n[{name}] " in out, name
    assert "\n  error " not in out and "dry run: plan valid (4 checks, 0 errors" in out
    runs = [line.strip()[len("run") :].strip() for line in out.splitlines() if line.startswith("  run ")]
    assert len(runs) == 6, runs  # two MFU sides, two engine launches, the QLoRA job and its reload
    for config in ("fsdp2.yaml", "deepspeed-zero2.yaml"):
        assert any(
            r.startswith(f"accelerate launch --config_file recipes/launch/{config} --num_processes 1 ")
            and "scripts/finetune.py --recipe cls" in r
            and "--logging_steps 1" in r
            for r in runs
        ), config
    assert any(r.startswith("python scripts/finetune.py --recipe qlora-clm ") for r in runs)
    assert "BertForSequenceClassification" in out and "N = 85,650,437 non-embedding" in out
    assert not work.exists() and not output.exists() and not (tmp_path / "results").exists()


def test_dry_run_fails_on_a_launch_config_that_would_not_do_what_the_check_says(
    gpu_check, monkeypatch, tmp_path, capsys
):
    ds_json = tmp_path / "zero2.json"
    ds_json.write_text('{"zero_optimization": {"stage": 2}, "scheduler": {"type": "WarmupLR"}}')
    ds_yaml = tmp_path / "zero2.yaml"
    ds_yaml.write_text(
        f"compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\nnum_processes: 1\n"
        f"deepspeed_config:\n  deepspeed_config_file: {ds_json}\n  zero3_init_flag: false\nuse_cpu: false\n"
    )
    engines = {name: dict(spec) for name, spec in gpu_check.ENGINES.items()}
    engines["fsdp2"]["config"] = "recipes/launch/ddp.yaml"  # plain DDP where FSDP2 is promised
    engines["deepspeed-zero2"]["config"] = str(ds_yaml)  # a scheduler block would take the schedule from the recipe
    monkeypatch.setattr(gpu_check, "ENGINES", engines)
    code = gpu_check.main(["--dry-run", "--checks", "fsdp2", "deepspeed-zero2", "--work_dir", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert code == 1 and "dry run: plan INVALID" in out
    assert "error   config: ValueError: distributed_type is MULTI_GPU, expected FSDP" in out
    assert "error   config: ConfigError: deepspeed_config_file=" in out and '"scheduler" (WarmupLR)' in out


def test_a_real_run_without_cuda_is_one_line_and_exit_2(tmp_path):
    proc = _script(
        "--work_dir", str(tmp_path / "work"), "--output", str(tmp_path / "out.json"), env={"CUDA_VISIBLE_DEVICES": ""}
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "gpu_check.py: error: no CUDA device: run on a GPU machine or pass --dry-run"
    ]
    assert not (tmp_path / "work").exists() and not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--steps", "x"], "--steps"),
        (["--checks", "fsdp"], "--checks"),
        (["--steps", "0"], "--steps"),
        (["--engine_steps", "2"], "--engine_steps"),
        (["--peak_tflops", "-1"], "--peak_tflops"),
        (["--nope"], "--nope"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(gpu_check, argv, field, capsys):
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err
    assert (
        len(err.strip().splitlines()) == 1
        and err.startswith(f"gpu_check.py: error: {field}")
        and "Traceback" not in err
    ), err


def test_flops_and_mfu_match_a_hand_computation(gpu_check):
    # BERT-base, 5 labels, by hand: a layer is Q, K, V, O (4 x (768*768 + 768) = 2,362,368), the FFN
    # (768*3072 + 3072 + 3072*768 + 768 = 4,722,432) and two LayerNorms (2 x 1,536): 7,087,872; x 12 layers
    # = 85,054,464; plus the embeddings' LayerNorm (1,536), the pooler (590,592) and the head (768*5 + 5
    # = 3,845): N = 85,650,437. The token, position and type tables (23,835,648) are not counted.
    model = gpu_check._bert_base_on_meta()
    assert gpu_check.non_embedding_parameters(model) == 85_650_437
    assert sum(p.numel() for p in model.parameters()) == 85_650_437 + 23_835_648
    # 6 N = 513,902,622; 12 L d T = 12 * 12 * 768 * 128 = 14,155,776.
    flops = gpu_check.training_flops_per_token(85_650_437, 12, 768, 128)
    assert flops == 528_058_398
    # 100,000 tokens/s on a 989-TFLOPS device: 5.28058398e13 / 9.89e14.
    assert gpu_check.model_flops_utilization(flops, 100_000, 989) == pytest.approx(0.0533931646, rel=1e-9)


@pytest.mark.parametrize(
    "name, tflops",
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA GH200 480GB", 989),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA A100 80GB PCIe", 312),
        ("NVIDIA L4", 121),
        ("NVIDIA L40S", 362),
        ("NVIDIA A10G", 125),
        ("NVIDIA A10", 125),
        ("Tesla T4", None),
    ],
)
def test_peak_table_by_device_name(gpu_check, name, tflops):
    found, source = gpu_check.peak_bf16_tflops(name)
    assert found == tflops, (name, source)
    assert ("data sheet" in source) if tflops else ("--peak_tflops" in source)


def test_lr_trace_comparison_fails_on_any_difference_and_passes_on_the_plan(gpu_check, tmp_path):
    planned, plan = gpu_check.planned_lr_trace(gpu_check.engine_finetune_args(gpu_check.Paths(tmp_path), "fsdp2", 12))
    assert sorted(planned) == list(range(1, 13)) and plan.warmup_steps == 3
    assert gpu_check.compare_lr_trace(planned, dict(planned))[0]
    nudged = {**planned, 7: planned[7] * (1 + 1e-6)}
    shifted = {s: planned[min(s + 1, 12)] for s in planned}  # the scheduler one step ahead
    for name, trace in {
        "one value off": nudged,
        "one step ahead": shifted,
        "a step missing": {s: v for s, v in planned.items() if s != 12},
        "an extra step": {**planned, 13: planned[12]},
        "nothing logged": {},
    }.items():
        ok, message = gpu_check.compare_lr_trace(trace, planned)
        assert not ok, name
    assert not gpu_check.compare_lr_trace({}, {})[0]  # an empty plan never passes


def test_the_engine_job_on_cpu_matches_its_plan_but_shows_no_engine(gpu_check, tmp_path):
    """The engine check's finetune.py flags, run in-process on CPU without a launcher: the logged trace
    equals the planned one (the comparison passes on a real run), and the checkpoint has no FSDP
    files, so a run that trained without the engine cannot pass the engine check."""
    from ftrecipes.job.run import main
    from ftrecipes.testing import save_tiny_pretrained

    paths = gpu_check.Paths(tmp_path)
    save_tiny_pretrained(paths.tiny_bert, "cls", num_labels=gpu_check.BBC_CLASSES)
    argv = gpu_check.engine_finetune_args(paths, "fsdp2", 6)
    at = argv.index("--bf16")
    del argv[at : at + 2]  # CPU: the recipe's precision
    assert main(argv) == 0
    planned, _ = gpu_check.planned_lr_trace(argv)
    ok, message = gpu_check.compare_lr_trace(gpu_check.logged_lr_trace(paths.run("fsdp2")), planned)
    assert ok, message
    engaged, evidence = gpu_check._engine_evidence(paths.run("fsdp2"), "fsdp2", 6)
    assert not engaged and "holds no FSDP2 files" in evidence


def test_mfu_verdict_from_the_two_sides(gpu_check, monkeypatch, tmp_path):
    """check_mfu's arithmetic and its failures, with the two GPU workers' results given."""
    opts = gpu_check.build_parser().parse_args(["--work_dir", str(tmp_path)])

    def sides(device="NVIDIA H100 80GB HBM3", recipe_samples=300.0, trainer_samples=310.0, loss=1.6):
        base = dict(device=device, non_embedding_params=85_650_437, peak_memory_mb=4000.0, final_loss=loss)
        made = {
            "recipe": dict(base, samples_per_s=recipe_samples, tokens_per_s=recipe_samples * 128),
            "trainer": dict(base, samples_per_s=trainer_samples, tokens_per_s=trainer_samples * 128),
        }
        return lambda cmd, log, timeout: made[cmd[cmd.index("--side") + 1]]

    monkeypatch.setattr(gpu_check, "_worker_result", sides())
    result = gpu_check.check_mfu(opts, gpu_check.Paths(tmp_path), gpu_check.Budget(60))
    assert result.passed, result.figure
    mfu = 528_058_398 * 300 * 128 / 989e12
    assert result.details["recipe"]["mfu"] == pytest.approx(mfu) and f"MFU {100 * mfu:.1f}%" in result.figure
    assert result.details["ratio_recipe_over_trainer"] == pytest.approx(300 / 310)
    for broken, reason in [
        (dict(recipe_samples=200.0), "below --min_ratio"),
        (dict(device="Tesla T4"), "not in the peak table"),
        (dict(loss=float("nan")), "loss is not finite"),
        (dict(recipe_samples=1e6, trainer_samples=1e6), "outside (0, 1]"),
    ]:
        monkeypatch.setattr(gpu_check, "_worker_result", sides(**broken))
        result = gpu_check.check_mfu(opts, gpu_check.Paths(tmp_path), gpu_check.Budget(60))
        assert not result.passed and reason in result.figure, (broken, result.figure)

    def trainer_side_fails(cmd, log, timeout):
        if "trainer" in cmd:
            raise RuntimeError("worker exited 1: CUDA out of memory")
        return sides()(cmd, log, timeout)

    monkeypatch.setattr(gpu_check, "_worker_result", trainer_side_fails)
    result = gpu_check.check_mfu(opts, gpu_check.Paths(tmp_path), gpu_check.Budget(60))
    assert (
        not result.passed and "trainer side failed: RuntimeError: worker exited 1: CUDA out of memory" in result.figure
    )
    assert "recipe: 300.0 samples/s" in result.figure  # the side that ran keeps its figures
