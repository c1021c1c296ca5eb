"""tools/submit.py end to end without SLURM: submitit's local executor runs a job of 2 tasks on this
host, each task one machine of the tool's launch (its flags derived from the job's environment, as on SLURM), on
CPU processes; the job trains the teacher and writes loadable checkpoints, and after a preemption (submitit's
signal, as SLURM sends it) it is requeued and resumes from the last checkpoint."""
import os
import signal
import time

import pytest
import submitit

from pudet.modeling import load_checkpoint

from .helpers import FEW_ITERATIONS, REPO, TEACHER_YAML, load_script, tiny_opts
from .multiproc import TIMEOUT, tool_env

pytestmark = pytest.mark.slow


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def _wait(job, until, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            job.cancel()  # the controller stops its tasks, each ending its tool's processes
            raise AssertionError("the local job timed out")
        time.sleep(0.05)


def test_two_task_job_trains_and_resumes_after_preemption(tiny_benchmark, tiny_root, tmp_path, monkeypatch):
    submit = load_script("tools", "submit.py")
    out = tmp_path / "teacher"
    opts = [*tiny_opts(tiny_root), *FEW_ITERATIONS, "SOLVER.MAX_ITER", "40", "SOLVER.CHECKPOINT_PERIOD", "10",
            "DATASETS.TEST", "()", "OUTPUT_DIR", str(out)]
    job = submit.ToolJob([os.path.join(REPO, "tools", "train_net.py"), "--config-file", TEACHER_YAML, *opts],
                         gpus_per_node=1)
    for key, value in tool_env().items():  # the tasks inherit it: this checkout, 1 thread per process
        monkeypatch.setenv(key, value)
    executor = submitit.LocalExecutor(folder=str(tmp_path / "logs"))
    # no GPU (CUDA_VISIBLE_DEVICES empty); an hour's allocation, so that the signal below is a preemption
    executor.update_parameters(tasks_per_node=2, gpus_per_node=0, timeout_min=60)
    submitted = executor.submit(job)
    # preempted once its first checkpoint is written: submitit's signal reaches both tasks, as SLURM's would; task 0
    # requeues the job (ending its tool), task 1's tool fails without its peer, and the controller starts both again
    _wait(submitted, lambda: (out / "model_0000009.pth").exists() or submitted.done())
    assert not submitted.done()
    for task in _children(submitted._process.pid):
        os.kill(task, signal.SIGUSR2)
    _wait(submitted, submitted.done)
    assert submitted.results() == [0, 0]
    stdout = submitted.stdout()
    assert "--num-gpus 1 --num-machines 2 --machine-rank 0 --dist-url tcp://" in stdout
    with open(out / "log.txt") as f:
        log = f.read()
    starts = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "Starting training from iteration" in line]
    assert starts[0] == 0 and len(starts) == 2 and starts[1] >= 10 and starts[1] % 10 == 0  # from a checkpoint
    assert load_checkpoint(str(out / "model_final.pth"))["iteration"] == 39
