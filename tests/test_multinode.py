"""Past one process, under real launchers (torchrun + gloo on CPU), with the layer-wise recipe so that
every parameter group's LR is checked, not only the head's:

* two nodes simulated on this machine (two ``torchrun --nnodes 2 --node_rank 0/1`` agents meeting on
  127.0.0.1): every group's LR at every optimizer step equals a one-process run with the same global
  batch, and equals its peak x the recipe's schedule;
* a two-process job (one node) signalled with SIGTERM mid-run finishes its step, checkpoints, writes
  ``preempted.json`` and exits 143; its steps so far trained at the one-process LRs; the same command
  resumes it, with the LR at every later step and the final weights equal to an uninterrupted run.

The LR trace of two Trainer processes (test_finetune's trace identity) is the one proven here; the
launches are few because each costs seconds of imports per process on this machine.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import FINETUNE, PYTHON, free_port
from ftrecipes.pipeline import main
from ftrecipes.preemption import PLAN_FILE, PREEMPTION_FILE
from test_layerwise import _args, _check_every_group_follows_the_schedule

ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
EPOCHS = 2  # 96 examples at global batch 8: 24 optimizer steps



def torchrun(*args, nnodes=1, node_rank=0, nproc=2, port):
    return [PYTHON, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--node_rank", str(node_rank), "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(port), FINETUNE, *args]


def group_lrs(output_dir) -> dict[int, dict[str, float]]:
    """``{step: {"learning_rate": head, "learning_rate/layer_1": ..., ...}}`` from the run's log history."""
    history = json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: {k: v for k, v in e.items() if k.startswith("learning_rate")} for e in history if "loss" in e}


def assert_same_lrs(trace, reference, steps):
    for step in steps:
        assert trace[step].keys() == reference[step].keys() and len(trace[step]) == 4, step
        for key, lr in reference[step].items():
            assert trace[step][key] == pytest.approx(lr, rel=1e-12), (step, key)


@pytest.mark.multiprocess
def test_two_nodes_follow_one_process_and_a_sigterm_job_resumes_exactly(tiny_base, cls_files, tmp_path):
    """1. one process x batch 8 (in-process): the reference trace of every group;
    2. two simulated nodes (2 agents x 1 process x batch 4): the same trace at every step; their weights
       are the uninterrupted reference for 3-4 (same 2 ranks, same data);
    3. one node x 2 processes, signalled with SIGTERM mid-run (launcher and workers, as a cluster does):
       it finishes the step, checkpoints, writes preempted.json and stops;
    4. the same command again resumes: the LR at every later step and the final weights equal run 2.
    """
    extra = ("--num_train_epochs", str(EPOCHS), "--plots", "false")
    assert main(_args(tiny_base, cls_files, tmp_path / "single", *extra, "--per_device_train_batch_size", "8")) == 0
    single = group_lrs(tmp_path / "single")
    total = len(single)
    assert sorted(single) == list(range(1, total + 1)) and total == 24
    _check_every_group_follows_the_schedule(tmp_path / "single", processes=1, batch=8, epochs=EPOCHS)

    extra += ("--per_device_train_batch_size", "4")
    port = free_port()
    nodes = tmp_path / "nodes"
    agents = [subprocess.Popen(torchrun(*_args(tiny_base, cls_files, nodes, *extra), nnodes=2, node_rank=rank, nproc=1, port=port),
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [agent.communicate(timeout=300)[0] for agent in agents]
    for agent, output in zip(agents, outputs):
        assert agent.returncode == 0, output[-3000:]
    plan = json.loads((nodes / "plan.json").read_text())
    assert (plan["num_processes"], plan["global_batch_size"], plan["total_steps"]) == (2, 8, total)
    reference = group_lrs(nodes)
    assert sorted(reference) == list(range(1, total + 1))
    assert_same_lrs(reference, single, range(1, total + 1))
    _check_every_group_follows_the_schedule(nodes, processes=2, batch=4, epochs=EPOCHS)
    losses = [sum(e["loss"] for e in json.loads((Path(d) / "trainer_state.json").read_text())["log_history"] if "loss" in e)
              for d in (tmp_path / "single", nodes)]
    assert 0.9 < losses[1] / losses[0] < 1.1  # one loss scale on 1 and 2 processes (transformers#47688)

    out = tmp_path / "preempted"
    command = torchrun(*_args(tiny_base, cls_files, out, *extra), port=free_port())
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, lines = 0, []
    for line in job.stdout:  # PrinterCallback prints one dict per logged optimizer step (main process)
        lines.append(line)
        seen += "'learning_rate'" in line
        if seen == 3:
            os.killpg(job.pid, signal.SIGTERM)  # the launcher and its workers
            break
    rest, _ = job.communicate(timeout=120)
    output = "".join(lines) + rest
    # torchrun forwards the signal, waits for its workers (up to 30 s, then SIGKILL) and exits non-zero.
    assert job.returncode != 0 and "SIGKILL" not in output, output[-3000:]
    report = json.loads((out / PREEMPTION_FILE).read_text())
    stopped = report["global_step"]
    assert report["signal"] == "SIGTERM" and report["exit_code"] == 143 and 3 <= stopped < total, report
    assert f"finetune.py: stopped by SIGTERM after optimizer step {stopped} of {total}" in output
    checkpoint = out / f"checkpoint-{stopped}"
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt", "scheduler.pt", PLAN_FILE} <= {p.name for p in checkpoint.iterdir()}
    assert not (out / "model.safetensors").exists()  # nothing pretends the run finished
    before = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    assert [e["step"] for e in before if "loss" in e] == list(range(1, stopped + 1))

    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)  # the same command
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = group_lrs(out)  # steps 1..stopped come from the checkpoint, the rest from the resumed run
    assert sorted(resumed) == list(range(1, total + 1))
    assert_same_lrs(resumed, reference, range(1, total + 1))
    final, weights = load_file(nodes / "model.safetensors"), load_file(out / "model.safetensors")
    for name, tensor in final.items():
        torch.testing.assert_close(weights[name], tensor, rtol=1e-5, atol=1e-7)
