"""Runs pudet's tools for the stages: one step = one tool command, its log and its wall-clock interval kept under
``logs/``; a step whose output exists is skipped (a rerun resumes where a run stopped); steps that do not need
each other's outputs run ``--jobs`` at a time; a dry run prints the commands instead of running them."""
import concurrent.futures
import glob
import json
import os
import shlex
import subprocess
import sys
import time

from .rows import REPO

TOOLS = os.path.join(REPO, "tools")


def command_line(cmd, threads=None) -> str:
    """``cmd`` as a shell would take it, after the thread limits it runs with."""
    env = [] if threads is None else [f"OMP_NUM_THREADS={threads}", f"MKL_NUM_THREADS={threads}"]
    return shlex.join([*env, *cmd])


def run(cmd, log_path, threads=None):
    """Runs a tool (with ``threads`` CPU threads, or torch's default); its output goes to ``log_path`` (the last
    lines are shown if it fails). Returns its start and end times."""
    print("$ " + command_line(cmd, threads), flush=True)
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode:
        with open(log_path) as f:
            sys.stderr.write("".join(f.readlines()[-30:]))
        raise SystemExit(f"failed ({proc.returncode}): see {log_path}")
    end = time.time()
    print(f"  done in {end - start:.0f}s (log: {log_path})", flush=True)
    return start, end


def prune_checkpoints(out_dir):
    """Removes a finished training's intermediate checkpoints (``model_<iteration>.pth``, kept for resuming
    it): the demo's 13 trainings would otherwise leave about 1.5 GB. ``model_final.pth`` stays."""
    if os.path.isfile(os.path.join(out_dir, "model_final.pth")):
        for path in glob.glob(os.path.join(out_dir, "model_[0-9]*.pth")):
            os.remove(path)


class Runner:
    """Runs the tool steps of one stage (``stage``, as the times record it) with ``threads`` CPU threads each
    (None: torch's default), ``jobs`` side by side in :meth:`in_parallel`. With ``dry_run`` a step prints its
    command instead, and the outputs of the steps it printed count as written (:meth:`will_exist`)."""

    def __init__(self, logs, *, stage=None, jobs=1, dry_run=False, threads=None, _printed=None):
        self.logs, self.stage, self.jobs, self.dry_run, self.threads = logs, stage, jobs, dry_run, threads
        self._printed = set() if _printed is None else _printed  # folders the printed steps write to

    def _copy(self, **changes):
        kwargs = {"stage": self.stage, "jobs": self.jobs, "dry_run": self.dry_run, "threads": self.threads, **changes}
        return Runner(self.logs, _printed=self._printed, **kwargs)

    def for_stage(self, stage):
        return self._copy(stage=stage)

    def step(self, log, done, tool, *tool_args):
        """Runs ``tools/<tool> tool_args`` (log: ``logs/<log>.log``) unless its output ``done`` exists (None: a step
        that runs every time): a rerun skips the finished steps. A finished training keeps only its final
        checkpoint."""
        if done is not None and os.path.isfile(done):
            return
        cmd = [sys.executable, os.path.join(TOOLS, tool), *tool_args]
        if self.dry_run:
            print(command_line(cmd, self.threads), flush=True)
            if done is not None:
                self._printed.add(os.path.dirname(os.path.abspath(done)))
            return
        self.record_time(log, *run(cmd, os.path.join(self.logs, f"{log}.log"), threads=self.threads))
        if "OUTPUT_DIR" in tool_args:
            prune_checkpoints(tool_args[tool_args.index("OUTPUT_DIR") + 1])

    def will_exist(self, path) -> bool:
        """Whether ``path`` exists, or (in a dry run) is in the folder of a step printed before."""
        return os.path.isfile(path) or (self.dry_run and os.path.dirname(os.path.abspath(path)) in self._printed)

    def value_from(self, path, key):
        """``key`` of the JSON that an earlier step wrote at ``path``; in a dry run before that step, a placeholder
        naming it."""
        if self.dry_run and not os.path.isfile(path):
            return f"<{key} of {path}>"
        with open(path) as f:
            return json.load(f)[key]

    def record_time(self, log, start, end):
        """Keeps a step's wall-clock interval beside its log (``logs/<log>.time.json``) for the report."""
        with open(os.path.join(self.logs, f"{log}.time.json"), "w") as f:
            json.dump({"stage": self.stage, "seconds": end - start, "start": start, "end": end}, f)

    def in_parallel(self, *calls):
        """Runs ``calls`` (each ``fn(runner)``: steps that do not need each other's outputs) ``jobs`` at a time,
        each tool with an equal share of the CPU threads: on a 2-core machine two one-thread trainings side by
        side do 1.45x the work of one two-thread training. After a failure the calls not yet started are
        dropped, those running finish, and the failure is raised. A dry run lists them in order."""
        if self.jobs <= 1:
            for call in calls:
                call(self)
            return
        share = self._copy(threads=max(1, (os.cpu_count() or 1) // self.jobs))
        if self.dry_run:
            for call in calls:
                call(share)
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(call, share) for call in calls]
            concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in futures:
                future.cancel()
        for future in futures:
            if not future.cancelled():
                future.result()
