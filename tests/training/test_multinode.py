"""Past one process, under real launchers (torchrun + gloo on CPU), with the layer-wise recipe so that
every parameter group's LR is checked, not only the head's:

a job on two nodes simulated on this machine (two ``torchrun --nnodes 2 --node_rank 0/1`` agents
meeting on 127.0.0.1), signalled with SIGTERM mid-run (both launchers and their workers, as a cluster
does), finishes its step, checkpoints, writes ``preempted.json`` and exits 143; the same commands
resume it; every group's LR at every optimizer step, before and after the preemption, equals a
one-process run with the same global batch, and its peak x the recipe's schedule; and the job ends
with the weights of an uninterrupted two-process run.

The LR trace of two Trainer processes (test_finetune's trace identity) is the one proven here. The
launches are few because each process imports torch and transformers.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import FINETUNE, PYTHON, free_port
from safetensors.torch import load_file
from test_layerwise import check_every_group_follows_the_schedule, layerwise_argv

from ftrecipes.config.outputs import CHECKPOINT_PLAN_FILE, PREEMPTION_FILE
from ftrecipes.job.run import main

ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
EPOCHS = 2  # 96 examples at global batch 8: 24 optimizer steps


def torchrun(*args, nnodes=1, node_rank=0, nproc=2, port):
    return [
        PYTHON,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nnodes),
        "--node_rank",
        str(node_rank),
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        FINETUNE,
        *args,
    ]


def group_lrs(output_dir) -> dict[int, dict[str, float]]:
    """``{step: {"learning_rate": head, "learning_rate/layer_1": ..., ...}}`` from the run's log history."""
    history = json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: {k: v for k, v in e.items() if k.startswith("learning_rate")} for e in history if "loss" in e}


def assert_same_lrs(trace, reference, steps):
    for step in steps:
        assert trace[step].keys() == reference[step].keys() and len(trace[step]) == 4, step
        for key, lr in reference[step].items():
            assert trace[step][key] == pytest.approx(lr, rel=1e-12), (step, key)


def _single_reference(tiny_base, cls_files, tmp_path, extra):
    """One process x batch 8, in-process: every group's LR at every step, checked against the recipe."""
    assert (
        main(layerwise_argv(tiny_base, cls_files, tmp_path / "single", *extra, "--per_device_train_batch_size", "8"))
        == 0
    )
    single = group_lrs(tmp_path / "single")
    assert sorted(single) == list(range(1, len(single) + 1)) and len(single) == 24
    check_every_group_follows_the_schedule(tmp_path / "single", processes=1, batch=8, epochs=EPOCHS)
    return single


def _launch(commands, **popen):
    return [
        subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)
        for command in commands
    ]


def _finish(jobs, timeout=300):
    outputs = [job.communicate(timeout=timeout)[0] for job in jobs]
    for job, output in zip(jobs, outputs):
        assert job.returncode == 0, output[-3000:]
    return outputs


def _preempt(commands, out, total):
    """Start ``commands`` (one launcher each), SIGTERM every launcher's process group once rank 0 has
    logged optimizer step 3, and check what the job left behind; returns the step it stopped after."""
    jobs = _launch(commands, start_new_session=True)
    seen, lines = 0, []
    for line in jobs[0].stdout:  # PrinterCallback prints one dict per logged optimizer step (rank 0)
        lines.append(line)
        seen += "'learning_rate'" in line
        if seen == 3:
            for job in jobs:
                os.killpg(job.pid, signal.SIGTERM)  # the launcher and its workers
            break
    outputs = [job.communicate(timeout=120)[0] for job in jobs]
    output = "".join(lines) + outputs[0]
    # torchrun forwards the signal, waits for its workers (up to 30 s, then SIGKILL) and exits non-zero.
    assert all(job.returncode != 0 for job in jobs) and not any("SIGKILL" in o for o in outputs), output[-3000:]
    report = json.loads((out / PREEMPTION_FILE).read_text())
    stopped = report["global_step"]
    assert report["signal"] == "SIGTERM" and report["exit_code"] == 143 and 3 <= stopped < total, report
    assert f"finetune.py: stopped by SIGTERM after optimizer step {stopped} of {total}" in output
    checkpoint = out / f"checkpoint-{stopped}"
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt", "scheduler.pt", CHECKPOINT_PLAN_FILE} <= {
        p.name for p in checkpoint.iterdir()
    }
    assert not (out / "model.safetensors").exists()  # nothing pretends the run finished
    before = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in before if "loss" in e] == list(range(1, stopped + 1))
    return stopped


@pytest.mark.multiprocess
def test_two_nodes_follow_one_process_and_a_preempted_job_ends_with_the_uninterrupted_weights(
    tiny_base, cls_files, tmp_path
):
    """1. one process x batch 8 (in-process): the reference trace of every group;
    2. one node x 2 processes x batch 4, uninterrupted: the reference weights;
    3. two simulated nodes (2 agents x 1 process x batch 4), SIGTERM mid-run: the step finishes, a
       checkpoint with both ranks' RNG states and preempted.json are written;
    4. the same two commands again: the job resumes and ends; steps 1..N (from the checkpoint and from
       the resumed run) trained every group at the one-process LR, and at its peak x the schedule; and it
       ends with the weights of the uninterrupted run (the same 2 ranks on the same data, RNG states restored).

    One preempted job carries both guarantees: each launch starts two interpreters that import torch and
    transformers, and the interruption is the same whether the ranks share a node or not.
    """
    extra = ("--num_train_epochs", str(EPOCHS), "--plots", "false")
    single = _single_reference(tiny_base, cls_files, tmp_path, extra)
    total = len(single)

    # Two processes on this one machine would each take every core: one thread each.
    extra += ("--per_device_train_batch_size", "4", "--cpu_threads", "1")
    reference = tmp_path / "uninterrupted"
    _finish(_launch([torchrun(*layerwise_argv(tiny_base, cls_files, reference, *extra), port=free_port())]))
    assert_same_lrs(group_lrs(reference), single, range(1, total + 1))

    out, port = tmp_path / "nodes", free_port()
    commands = [
        torchrun(*layerwise_argv(tiny_base, cls_files, out, *extra), nnodes=2, node_rank=rank, nproc=1, port=port)
        for rank in (0, 1)
    ]
    _preempt(commands, out, total)

    _finish(_launch(commands))  # the same commands
    plan = json.loads((out / "plan.json").read_text())
    assert (plan["num_processes"], plan["global_batch_size"], plan["total_steps"]) == (2, 8, total)
    resumed = group_lrs(out)  # steps 1..stopped come from the checkpoint, the rest from the resumed run
    assert sorted(resumed) == list(range(1, total + 1))
    assert_same_lrs(resumed, single, range(1, total + 1))
    check_every_group_follows_the_schedule(out, processes=2, batch=4, epochs=EPOCHS)
    losses = [
        sum(e["loss"] for e in json.loads((Path(d) / "trainer_state.json").read_text())["log_history"] if "loss" in e)
        for d in (tmp_path / "single", out)
    ]
    assert 0.9 < losses[1] / losses[0] < 1.1  # one loss scale on 1 and 2 processes (transformers#47688)
    final, weights = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
    assert final.keys() == weights.keys()
    for name, tensor in final.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-5, atol=1e-7)
