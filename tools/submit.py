#!/usr/bin/env python
"""Submits a pudet tool to a SLURM cluster through submitit: one task per node, each running the tool, whose
detectron2 ``launch`` starts one process per GPU; ``--num-gpus``, ``--num-machines``, ``--machine-rank`` and
``--dist-url`` are filled in on each node from SLURM's environment (the node's rank, the job's first host and
a port derived from the job id). On preemption or timeout the job is requeued and the tool resumes: the
training tools always run with ``--resume`` (the last checkpoint), ``select``/``label`` skip their finished
chunks.

  tools/submit.py --nodes 2 --gpus-per-node 8 --partition P -- tools/train_net.py \\
      --config-file configs/COCO/faster_rcnn_R_50_FPN_1x_teacher.yaml
  tools/submit.py --nodes 4 --partition P -- tools/purify_net.py select \\
      --config-file configs/PU/pu_R50_coco_imagenet.yaml --topk 118287
  tools/submit.py --nodes 2 --partition P --dry-run -- tools/train_net.py ...   # print the sbatch script only

Logs and submitit's files go to --log-dir (one folder per job id).
"""
import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import zlib
from typing import List, Sequence

import submitit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH_FLAGS = ("--num-gpus", "--num-machines", "--machine-rank", "--dist-url")


def resumes_by_checkpoint(tool_argv: Sequence[str]) -> bool:
    """Whether the tool trains (and so needs ``--resume`` to continue after a requeue)."""
    name = os.path.basename(tool_argv[0])
    return name == "train_net.py" or (name == "purify_net.py" and list(tool_argv[1:2]) == ["train"])


def dist_port(job_id: str) -> int:
    """A port in [20000, 40000) that every node of the job derives alike from the job id."""
    return 20000 + zlib.crc32(job_id.encode()) % 20000


def node_command(tool_argv: Sequence[str], *, python: str, gpus_per_node: int, num_nodes: int, node_rank: int,
                 main_host: str, job_id: str) -> List[str]:
    """The command a node runs: the tool (then its sub-command, for purify_net) with detectron2's launch flags
    for this node, and ``--resume`` for training, before the tool's own options."""
    head = 2 if os.path.basename(tool_argv[0]) == "purify_net.py" else 1
    flags = ["--num-gpus", str(gpus_per_node), "--num-machines", str(num_nodes), "--machine-rank", str(node_rank),
             "--dist-url", f"tcp://{main_host}:{dist_port(job_id)}"]
    if resumes_by_checkpoint(tool_argv) and "--resume" not in tool_argv:
        flags.append("--resume")
    return [python, *tool_argv[:head], *flags, *tool_argv[head:]]


class ToolJob(submitit.helpers.Checkpointable):
    """What each task runs (submitit pickles it): the tool, as one machine of detectron2's ``launch`` per task (one
    task per node on SLURM; several tasks on one host only without GPUs, e.g. submitit's local executor). On
    preemption or timeout submitit calls ``checkpoint``, which resubmits this same job: the tool then resumes
    (see the module docstring)."""

    def __init__(self, tool_argv: Sequence[str], gpus_per_node: int, python: str = sys.executable):
        self.tool_argv, self.gpus_per_node, self.python = list(tool_argv), gpus_per_node, python

    def command(self, env: submitit.JobEnvironment) -> List[str]:
        if env.num_tasks != env.num_nodes and os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
            raise RuntimeError(f"one task per node expected (its processes take every GPU of the node), got "
                               f"{env.num_tasks} tasks on {env.num_nodes} nodes")
        return node_command(self.tool_argv, python=self.python, gpus_per_node=self.gpus_per_node,
                            num_nodes=env.num_tasks, node_rank=env.global_rank, main_host=env.hostnames[0],
                            job_id=env.job_id)

    def __call__(self) -> int:
        command = self.command(submitit.JobEnvironment())
        print("running:", shlex.join(command), flush=True)
        # in a process group of its own, ended whole when this task ends first (requeued, or stopped by a signal):
        # the processes that the tool's launch started would otherwise outlive it
        tool = subprocess.Popen(command, cwd=REPO, start_new_session=True)
        try:
            returncode = tool.wait()
        finally:
            if tool.poll() is None:
                os.killpg(tool.pid, signal.SIGKILL)
                tool.wait()
        if returncode:
            raise subprocess.CalledProcessError(returncode, command)
        return returncode


def tool_argv(argv: Sequence[str]) -> List[str]:
    """The tool's path made absolute (``train_net.py`` alone names ``tools/train_net.py``), its arguments kept;
    launch flags are refused (the job sets them)."""
    if not argv:
        raise SystemExit("name the tool to run after '--', e.g. -- tools/train_net.py --config-file ...")
    taken = [a for a in argv[1:] if a.split("=")[0] in LAUNCH_FLAGS]
    if taken:
        raise SystemExit(f"{' '.join(taken)}: tools/submit.py sets {', '.join(LAUNCH_FLAGS)} on each node")
    path = argv[0]
    if not os.path.isfile(path) and os.path.isfile(os.path.join(REPO, "tools", path)):
        path = os.path.join(REPO, "tools", path)
    if not os.path.isfile(path):
        raise SystemExit(f"tool {argv[0]} not found")
    return [os.path.abspath(path), *argv[1:]]


def slurm_parameters(args) -> dict:
    """submitit ``SlurmExecutor`` parameters (sbatch's names): ``--nodes`` tasks, one per node, each with every
    GPU of its node; requeued on preemption, warned 120 s before the end of an allocation."""
    params = dict(
        job_name=args.job_name or "pudet-" + os.path.splitext(os.path.basename(args.tool[0]))[0],
        partition=args.partition, nodes=args.nodes, ntasks_per_node=1, gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task, time=args.time, signal_delay_s=120,
        additional_parameters={"requeue": True, **({"account": args.account} if args.account else {})},
    )
    params.update({k: v for k, v in (("mem", f"{args.mem_gb}GB" if args.mem_gb else None),
                                     ("qos", args.qos), ("constraint", args.constraint)) if v})
    return params


def parse_args(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="tools/submit.py", usage="%(prog)s [options] -- TOOL [TOOL OPTIONS ...]",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=1, help="machines (one task each; default: %(default)s)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="GPUs (processes) per machine (default: %(default)s)")
    p.add_argument("--partition", required=True, help="SLURM partition")
    p.add_argument("--time", type=int, default=72 * 60, help="minutes per allocation; the job is requeued "
                   "and resumes when it runs out (default: %(default)s)")
    p.add_argument("--cpus-per-task", type=int, default=0, help="CPUs per node, for data loading (default: 8 per GPU)")
    p.add_argument("--mem-gb", type=int, default=0, help="memory per node (default: the partition's)")
    p.add_argument("--account", default="", help="SLURM account")
    p.add_argument("--qos", default="", help="SLURM quality of service")
    p.add_argument("--constraint", default="", help="SLURM node constraint (e.g. a GPU type)")
    p.add_argument("--job-name", default="", help="(default: pudet-<tool>)")
    p.add_argument("--log-dir", default=os.path.join("output", "slurm"), help="(default: %(default)s)")
    p.add_argument("--max-requeues", type=int, default=20, help="requeues after timeouts; preemptions do not "
                   "count (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the sbatch script and node 0's command; submit nothing")
    args, unknown = p.parse_known_args(argv[:split])
    if split == len(argv) or unknown:
        p.error(f"give the tool and its arguments after '--' (got {' '.join(unknown) or 'no tool'})")
    args.tool = tool_argv(argv[split + 1:])
    if args.nodes < 1 or args.gpus_per_node < 1:
        p.error("--nodes and --gpus-per-node must be positive")
    args.cpus_per_task = args.cpus_per_task or 8 * args.gpus_per_node
    return args


def main(argv=None):
    args = parse_args(argv)
    job = ToolJob(args.tool, args.gpus_per_node)
    folder = os.path.join(args.log_dir, "%j")
    if args.dry_run:
        from submitit.slurm.slurm import _make_sbatch_string

        print(_make_sbatch_string(command="<python -m submitit.core._submit FOLDER>", folder=folder,
                                  **slurm_parameters(args)))
        print("\n# node 0 of the job runs (on HOST0, with the job's id for the port):")
        print(shlex.join(node_command(args.tool, python=sys.executable, gpus_per_node=args.gpus_per_node,
                                      num_nodes=args.nodes, node_rank=0, main_host="HOST0", job_id="JOBID")))
        return None
    if shutil.which("sbatch") is None:
        raise SystemExit("sbatch not found: submit from a SLURM login node (or look at the job with --dry-run)")
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=args.max_requeues)
    executor.update_parameters(**slurm_parameters(args))
    submitted = executor.submit(job)
    print(f"submitted job {submitted.job_id}: {args.nodes} node(s) x {args.gpus_per_node} GPU(s); logs in "
          f"{os.path.join(args.log_dir, str(submitted.job_id))}")
    return submitted


if __name__ == "__main__":
    main()
