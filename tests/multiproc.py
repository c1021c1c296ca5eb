"""Running the tools with several processes on the CPU (gloo, localhost), as a user would, for the distributed
tests: each run in its own process group, killed whole when it outlives its timeout (a hang fails the test
instead of blocking the suite).

* :func:`run_tool`: one launch of a tool (``--num-gpus N`` on one "machine");
* :func:`run_machines`: several launches at once, one per machine (``--num-machines M --machine-rank r``);
* probes installed in every process that detectron2's ``launch`` starts, before the tool's ``main``:
  ``kill`` (SIGKILL at the ``nth`` call of a function on one rank, as :mod:`tests.faults` does in one process)
  and ``record`` (each ``SelfDistillRCNN`` training step's per-rank facts and losses, one JSON line each).

``python -m tests.multiproc [--kill TARGET NTH RANK] [--record DIR] SCRIPT [ARGS...]`` is the child's entry point.
"""
import contextlib
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time

from .helpers import REPO

__all__ = ["free_port", "run_tool", "run_machines", "run_to_failure", "ToolFailed", "tool_env"]

# every run's limit: the tiny runs take well under a minute on 2 busy cores; a hang is killed at this
TIMEOUT = 420


class ToolFailed(AssertionError):
    """A tool run exited non-zero, or outlived its timeout (then killed with all its processes)."""


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool_env(threads: int = 1) -> dict:
    """The tests' environment for the tool, this checkout first on the path, ``threads`` threads per process."""
    path = os.pathsep.join([REPO] + [p for p in [os.getenv("PYTHONPATH")] if p])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def _command(script, args, kill=None, record=None):
    probes = []
    if kill:
        target, nth, rank = kill
        probes += ["--kill", target, str(nth), str(rank)]
    if record:
        probes += ["--record", str(record)]
    head = [sys.executable, "-m", "tests.multiproc", *probes] if probes else [sys.executable]
    return [*head, os.path.join(REPO, script), *map(str, args)]


def _start(command, log_path):
    log = open(log_path, "w")
    return subprocess.Popen(command, cwd=REPO, env=tool_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True), log


def _finish(procs, timeout, logs, expect_ok):
    """Waits for every process (killing every group at ``timeout``); returns their exit codes."""
    deadline = time.monotonic() + timeout
    codes, timed_out = [], False
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(deadline - time.monotonic(), 0.1)))
        except subprocess.TimeoutExpired:
            timed_out = True
            codes.append(None)
    for proc in procs:  # a tool's workers outlive it when it is killed: end every group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for log in logs:
        log.close()
    if timed_out or (expect_ok and any(codes)):
        tails = "\n".join(f"--- {log.name} (exit {code}):\n{open(log.name).read()[-4000:]}"
                          for log, code in zip(logs, codes))
        raise ToolFailed(("timed out after %ds" % timeout if timed_out else "failed") + f"\n{tails}")
    return codes


def run_tool(script, args, *, log, timeout=TIMEOUT, kill=None, record=None, expect_ok=True) -> str:
    """Runs ``script`` (relative to the repository) with ``args``; stdout and stderr go to the file ``log``.
    ``kill``: ``(target, nth, rank)``; ``record``: a folder. Returns the output; raises :class:`ToolFailed`
    when the run fails (unless not ``expect_ok``) or outlives ``timeout``."""
    proc, f = _start(_command(script, args, kill, record), log)
    _finish([proc], timeout, [f], expect_ok)
    with open(log) as out:
        return out.read()


def _launch_machines(script, args, machines, log_prefix, command, processes, timeout, record, expect_ok):
    url = f"tcp://127.0.0.1:{free_port()}"
    started = [_start(_command(script, [*command, "--num-gpus", processes, "--num-machines", machines,
                                        "--machine-rank", r, "--dist-url", url, *args], record=record),
                      f"{log_prefix}{r}.log")
               for r in range(machines)]
    codes = _finish([p for p, _ in started], timeout, [f for _, f in started], expect_ok)
    outputs = []
    for _, f in started:
        with open(f.name) as out:
            outputs.append(out.read())
    return codes, outputs


def run_machines(script, args, machines: int, *, log_prefix, command=(), processes=1, timeout=TIMEOUT,
                 record=None):
    """Runs ``script`` as ``machines`` machines of ``processes`` processes each on this host (one launch per
    machine, rendezvous on a free localhost port), with the launch flags after the sub-command ``command``
    (e.g. ``["select"]``). Returns each machine's output."""
    return _launch_machines(script, args, machines, log_prefix, command, processes, timeout, record, True)[1]


def run_to_failure(script, args, machines: int, *, log_prefix, processes=1, timeout=TIMEOUT):
    """Like :func:`run_machines`, for a run expected to fail: returns each machine's ``(exit code, output)``;
    raises :class:`ToolFailed` only when a machine outlives ``timeout`` (then every process is killed)."""
    return list(zip(*_launch_machines(script, args, machines, log_prefix, (), processes, timeout, None, False)))


# --- in the tool's processes ---------------------------------------------------------------------------------

class InEachProcess:
    """A ``main_func`` of detectron2's ``launch`` that installs probes (``probe(rank)`` each) in its process
    first. Picklable (it crosses the process boundary to the spawned workers)."""

    def __init__(self, main_func, probes):
        self.main_func, self.probes = main_func, probes

    def __call__(self, *args):
        from detectron2.utils import comm

        for probe in self.probes:
            probe(comm.get_rank())
        return self.main_func(*args)


class KillOnRank:
    """SIGKILLs the process of global rank ``rank`` at the ``nth`` call of ``target`` (see tests.faults)."""

    def __init__(self, target, nth, rank):
        self.target, self.nth, self.rank = target, nth, rank

    def __call__(self, rank):
        from . import faults

        if rank == self.rank:
            faults._patch(self.target, self.nth, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))


class RecordDistillSteps:
    """Appends one JSON line per ``SelfDistillRCNN`` training step to ``<folder>/rank<r>.jsonl``: the batch's
    ground-truth boxes per image, the teacher's foreground proposals (sampled, matched to a ground-truth box)
    and every loss."""

    def __init__(self, folder):
        self.folder = folder

    def __call__(self, rank):
        from pudet.modeling.self_distill import SelfDistillRCNN

        forward, targets = SelfDistillRCNN.forward, SelfDistillRCNN._teacher_targets
        path = os.path.join(self.folder, f"rank{rank}.jsonl")
        facts = {}

        def teacher_targets(model, *args):
            t = targets(model, *args)
            facts["teacher fg proposals"] = int(t.fg.sum())
            return t

        def recorded_forward(model, batched_inputs):
            out = forward(model, batched_inputs)
            if model.training:
                line = {"gt boxes": [len(x["instances"]) for x in batched_inputs], **facts,
                        **{k: float(v) for k, v in out.items()}}
                with open(path, "a") as f:
                    f.write(json.dumps(line) + "\n")
            return out

        SelfDistillRCNN.forward, SelfDistillRCNN._teacher_targets = recorded_forward, teacher_targets


def _main(argv):
    import pudet  # noqa: F401  (pudet.compat first, as the tools do)

    # isort: split
    import detectron2.engine

    from tests import multiproc  # the probes' classes by their importable name, not __main__'s

    probes = []
    while argv[0] in ("--kill", "--record"):
        if argv[0] == "--kill":
            probes.append(multiproc.KillOnRank(argv[1], int(argv[2]), int(argv[3])))
            argv = argv[4:]
        else:
            os.makedirs(argv[1], exist_ok=True)
            probes.append(multiproc.RecordDistillSteps(argv[1]))
            argv = argv[2:]
    script, args = argv[0], argv[1:]
    launch = detectron2.engine.launch

    def probed_launch(main_func, *a, **k):
        return launch(multiproc.InEachProcess(main_func, probes), *a, **k)

    detectron2.engine.launch = probed_launch  # the name the tools import
    sys.path.insert(0, os.path.dirname(script))
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    _main(sys.argv[1:])
