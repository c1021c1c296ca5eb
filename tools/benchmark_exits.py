#!/usr/bin/env python
"""``tools/benchmark.py exits``: do 2-process runs that finish their work exit 0, every time?

Runs each job ``--runs`` times in a row, each time a fresh launch of detectron2's ``launch`` with
``--num-gpus 2`` (gloo on the CPU), and counts the exit codes:

* ``ddp``: the suite's DDP job (tests/dist_jobs.py: a process group, a ``DistributedDataParallel`` step);
* ``teacher``: ``tools/train_net.py``, the benchmark's teacher for 2 iterations;
* ``select``: ``tools/purify_net.py select`` with an image-head PU classifier;
* ``label``: ``tools/purify_net.py label`` with the teacher;
* ``fail``: the suite's job whose last rank cannot read a file while the other waits for it in a barrier. It
  must exit non-zero; its column is the wall seconds from start to exit (the process group's timeout is 1800 s).

Data: a tiny wild-digits benchmark built in a temporary folder; the teacher and the PU classifier that
``select`` and ``label`` use are trained once first (one process, 2 iterations). A run that exits non-zero
(or, for ``fail``, exits 0) keeps its log, whose last lines are printed.

  tools/benchmark.py exits [--runs 20] [--jobs ddp teacher select label fail] [--keep DIR]
"""
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WD = os.path.join(REPO, "configs", "WildDigits")
JOBS = ("ddp", "teacher", "select", "label", "fail")
TWO = ["--num-gpus", "2", "--dist-url", "auto"]
# a run that outlives this is killed and counted as a hang
HANG = 600


def add_parser(sub):
    """Adds the ``exits`` sub-command to ``tools/benchmark.py``'s sub-parsers."""
    p = sub.add_parser("exits", help="exit codes of repeated 2-process runs (the DDP job, teacher, select, label)")
    p.add_argument("--runs", type=int, default=20, help="launches of each job (default: %(default)s)")
    p.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS), help="(default: %(default)s)")
    p.add_argument("--keep", default="", help="work folder to keep (default: a temporary one, removed)")


def _tiny_opts(root):
    return ["WILD_DIGITS.ROOT", root, "WILD_DIGITS.PRETRAIN.ENABLED", "False", "WILD_DIGITS.SEED", "3",
            "WILD_DIGITS.NUM_LABELED", "12", "WILD_DIGITS.NUM_POOL", "20", "WILD_DIGITS.NUM_VAL", "6",
            "DATALOADER.NUM_WORKERS", "0", "SEED", "0"]


def _teacher_args(root, out):
    return ["--config-file", os.path.join(WD, "faster_rcnn_R18_FPN_teacher.yaml"), *_tiny_opts(root),
            "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()",
            "SOLVER.BASE_LR", "0.01", "DATASETS.TEST", "()", "OUTPUT_DIR", out]


def _pu_args(root, teacher, out):
    return ["--config-file", os.path.join(WD, "pu_R18_nnpu.yaml"), *_tiny_opts(root), "PU.INIT_FROM_DETECTOR", teacher,
            "PU.INPUT_SIZE", "32", "PU.PRIOR", "0.3", "PU.HOLDOUT_FRACTION", "0.25", "SOLVER.IMS_PER_BATCH", "4",
            "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()", "OUTPUT_DIR", out]


def _commands(work, root):
    """Each job's command line, as a function of its output folder."""
    teacher = os.path.join(work, "teacher", "model_final.pth")
    pu = os.path.join(work, "pu")
    py = sys.executable
    return {
        "ddp": lambda out: [py, "tests/dist_jobs.py", "--job", "ddp", "--out", out, *TWO],
        "teacher": lambda out: [py, "tools/train_net.py", *TWO, *_teacher_args(root, out)],
        "select": lambda out: [py, "tools/purify_net.py", "select", *TWO, "--weights",
                               os.path.join(pu, "model_final.pth"), "--output-dir", out, "--topk", "5",
                               "--chunk-size", "4", "--batch-size", "2", "--num-workers", "0",
                               *_pu_args(root, teacher, pu)],
        "label": lambda out: [py, "tools/purify_net.py", "label", *TWO,
                              "--config-file", os.path.join(WD, "faster_rcnn_R18_FPN_teacher.yaml"),
                              "--weights", teacher, "--output-dir", out, "--chunk-size", "4", "--batch-size", "2",
                              "--num-workers", "0", "--min-score", "0.0", *_tiny_opts(root)],
        "fail": lambda out: [py, "tests/dist_jobs.py", "--job", "fail", "--out", out, *TWO],
    }


def _run(command, log_path):
    """Runs ``command`` in its own process group (killed whole after :data:`HANG` s); returns (exit code or
    "hang", seconds)."""
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            code = "hang"
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # workers left behind by a killed or aborted launch
        except ProcessLookupError:
            pass
        proc.wait()
    return code, time.monotonic() - start


def _describe(code):
    if code == "hang":
        return f"killed after {HANG} s"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit {code}"


def _prepare(work, root):
    from pudet.data.datasets import WildDigitsSpec, build_wild_digits

    build_wild_digits(WildDigitsSpec(seed=3, num_labeled=12, num_pool=20, num_val=6), root)
    py = sys.executable
    for name, command in (("teacher", [py, "tools/train_net.py", *_teacher_args(root, os.path.join(work, "teacher"))]),
                          ("pu", [py, "tools/purify_net.py", "train", *_pu_args(
                              root, os.path.join(work, "teacher", "model_final.pth"), os.path.join(work, "pu"))])):
        code, _ = _run(command, os.path.join(work, f"prepare_{name}.log"))
        if code != 0:
            raise SystemExit(f"preparing the {name} failed ({_describe(code)}): see {work}/prepare_{name}.log")


def bench_exits(args):
    from pudet.compat import detectron2_variant

    work = args.keep or tempfile.mkdtemp(prefix="pudet_exits_")
    os.makedirs(work, exist_ok=True)
    root = os.path.join(work, "wild_digits")
    try:
        _prepare(work, root)
        commands = _commands(work, root)
        rows, problems = [], []
        for job in args.jobs:
            outcomes, seconds, good = collections.Counter(), [], 0
            for i in range(args.runs):
                out = os.path.join(work, "runs", f"{job}_{i:03d}")
                os.makedirs(out, exist_ok=True)
                code, wall = _run(commands[job](out), out + ".log")
                seconds.append(wall)
                outcomes[_describe(code)] += 1
                expected = (code != "hang" and code > 0) if job == "fail" else code == 0
                good += expected
                if expected:
                    shutil.rmtree(out, ignore_errors=True)
                    os.remove(out + ".log")
                else:
                    with open(out + ".log") as f:
                        problems.append((f"{job} run {i}: {_describe(code)}", f.read()[-1500:]))
                print(f"{job} {i + 1}/{args.runs}: {_describe(code)} in {wall:.1f} s", flush=True)
            rows.append([job, args.runs, good, ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())),
                         f"{min(seconds):.1f} / {sorted(seconds)[len(seconds) // 2]:.1f} / {max(seconds):.1f}"])
        for title, tail in problems:
            print(f"\n--- {title}\n{tail}")
        print(f"\ndetectron2: {detectron2_variant()}; 2 processes (gloo) per run")
        print(tabulate(rows, headers=["job", "runs", "as expected (exit 0; fail: an exit > 0)", "outcomes",
                                      "wall s min / median / max"], tablefmt="github"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
