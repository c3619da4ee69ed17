"""Past one process, under real launchers (torchrun + gloo on CPU):

* two nodes simulated on this machine (two ``torchrun --nnodes 2 --node_rank 0/1`` agents meeting on
  127.0.0.1): the LR at every optimizer step equals a one-process run with the same global batch;
* a two-process job signalled with SIGTERM mid-run finishes its step, checkpoints, writes
  ``preempted.json`` and exits 143; the same command resumes it, with the LR at every later step and
  the final weights equal to an uninterrupted run.
"""

import json
import os
import signal
import socket
import subprocess

import pytest
import torch
from safetensors.torch import load_file

from conftest import FINETUNE, PYTHON
from ftrecipes.pipeline import main
from ftrecipes.preemption import PLAN_FILE, PREEMPTION_FILE
from test_finetune import base_args, logged_lrs

ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, nnodes=1, node_rank=0, nproc=2, port):
    return [PYTHON, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--node_rank", str(node_rank), "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(port), FINETUNE, *args]


@pytest.mark.multiprocess
def test_two_nodes_follow_one_process_and_a_sigterm_job_resumes_exactly(tiny_base, cls_files, tmp_path):
    """Two torchrun launches and one two-agent launch, kept few because they are CPU-heavy here:

    1. two simulated nodes (2 agents x 1 process x batch 4) log the LR of one process x batch 8 at every
       optimizer step; their weights are the uninterrupted reference for 2-3 (same 2 ranks, same data);
    2. one node x 2 processes, signalled with SIGTERM mid-run (launcher and workers, as a cluster does):
       it finishes the step, checkpoints, writes preempted.json and stops;
    3. the same command again resumes: the LR at every later step and the final weights equal run 1.
    """
    extra = ("--per_device_train_batch_size", "4", "--max_steps", "30", "--save_strategy", "no", "--plots", "false")
    assert main(base_args(tiny_base, cls_files, tmp_path / "single", *extra[2:], "--per_device_train_batch_size", "8")) == 0
    port = free_port()
    nodes = tmp_path / "nodes"
    agents = [subprocess.Popen(torchrun(*base_args(tiny_base, cls_files, nodes, *extra), nnodes=2, node_rank=rank, nproc=1, port=port),
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    outputs = [agent.communicate(timeout=300)[0] for agent in agents]
    for agent, output in zip(agents, outputs):
        assert agent.returncode == 0, output[-3000:]
    plan = json.loads((nodes / "plan.json").read_text())
    assert (plan["num_processes"], plan["global_batch_size"], plan["total_steps"]) == (2, 8, 30)
    single, reference = logged_lrs(tmp_path / "single"), logged_lrs(nodes)
    assert sorted(reference) == sorted(single) == list(range(1, 31))
    for step, lr in single.items():
        assert reference[step] == pytest.approx(lr, rel=1e-12), step

    out = tmp_path / "preempted"
    command = torchrun(*base_args(tiny_base, cls_files, out, *extra), port=free_port())
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
    assert report["signal"] == "SIGTERM" and report["exit_code"] == 143 and 3 <= stopped < 30, report
    assert f"finetune.py: stopped by SIGTERM after optimizer step {stopped} of 30" in output
    checkpoint = out / f"checkpoint-{stopped}"
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt", "scheduler.pt", PLAN_FILE} <= {p.name for p in checkpoint.iterdir()}
    assert not (out / "model.safetensors").exists()  # nothing pretends the run finished

    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)  # the same command
    assert result.returncode == 0, result.stderr[-3000:]
    lrs = logged_lrs(out)
    assert sorted(s for s in lrs if s > stopped) == list(range(stopped + 1, 31))
    for step in range(stopped + 1, 31):
        assert lrs[step] == pytest.approx(reference[step], rel=1e-12), step
    final, resumed = load_file(nodes / "model.safetensors"), load_file(out / "model.safetensors")
    for name, tensor in final.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-7)
