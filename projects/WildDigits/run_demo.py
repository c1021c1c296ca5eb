#!/usr/bin/env python
"""`make demo`: the main job on the built-in wild-digits benchmark, through the real tools.

Stages (each a tools/ command, rerun-safe: a stage resumes from its last checkpoint, and a finished
one is only re-evaluated):
  teacher   tools/train_net.py: the teacher D_t on the labeled set L, evaluated on the val set (COCO AP)
            and on the unlabeled pool against its hidden truth (how often it fires on negative scenes).

Prints a results table and writes results.json / results.md in --output-dir.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEACHER_CONFIG = os.path.join(REPO, "configs", "WildDigits", "faster_rcnn_R18_FPN_teacher.yaml")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default="output/demo", help="where every stage writes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="benchmark seed (default: %(default)s)")
    p.add_argument("--num-labeled", type=int, default=400, help="labeled scenes in L (default: %(default)s)")
    p.add_argument("--num-pool", type=int, default=4000, help="scenes in the pool U (default: %(default)s)")
    p.add_argument("--num-val", type=int, default=300, help="validation scenes (default: %(default)s)")
    p.add_argument("--pos-fraction", type=float, default=0.25, help="positive fraction of U (default: %(default)s)")
    p.add_argument("--teacher-iters", type=int, default=1500, help="teacher iterations (default: %(default)s)")
    return p.parse_args(argv)


def benchmark_opts(args):
    return [
        "WILD_DIGITS.SEED", str(args.seed), "WILD_DIGITS.NUM_LABELED", str(args.num_labeled),
        "WILD_DIGITS.NUM_POOL", str(args.num_pool), "WILD_DIGITS.NUM_VAL", str(args.num_val),
        "WILD_DIGITS.POS_FRACTION", str(args.pos_fraction),
    ]


def run(cmd):
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def stage_teacher(args):
    out = os.path.join(args.output_dir, "teacher")
    iters = args.teacher_iters
    run([
        sys.executable, os.path.join(REPO, "tools", "train_net.py"), "--resume",
        "--config-file", TEACHER_CONFIG, *benchmark_opts(args),
        "SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", f"({int(iters * 0.8)}, {int(iters * 0.93)})",
        "DATASETS.TEST", "('wild_digits_val', 'wild_digits_pool')", "OUTPUT_DIR", out,
    ])
    with open(os.path.join(out, "eval_results.json")) as f:
        return json.load(f)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    start = time.time()
    teacher = stage_teacher(args)
    val, pool = teacher["wild_digits_val"]["bbox"], teacher["wild_digits_pool"]["pool"]
    headers = ["model", "training data", "AP", "AP50", "AP75", "APs", "APm",
               "boxes/img>0.5 pool neg", "boxes/img>0.5 pool pos", "pool neg scenes fired on (%)"]
    rows = [[
        "teacher (R18-FPN, from scratch)", f"L ({args.num_labeled} images)",
        val["AP"], val["AP50"], val["AP75"], val["APs"], val["APm"],
        pool["boxes/img@0.5 neg"], pool["boxes/img@0.5 pos"], pool["fired@0.5 neg"],
    ]]
    summary = {
        "settings": vars(args),
        "rows": [dict(zip(headers, r)) for r in rows],
        "teacher": teacher,
        "minutes": (time.time() - start) / 60,
    }
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    table = tabulate(rows, headers=headers, tablefmt="github", floatfmt=".2f")
    with open(os.path.join(args.output_dir, "results.md"), "w") as f:
        f.write(f"# wild-digits benchmark, seed {args.seed}\n\n{table}\n")
    print("\n" + table + "\n")
    print(f"Done in {summary['minutes']:.1f} min. Results: {os.path.join(args.output_dir, 'results.md')} "
          f"and results.json; teacher model and logs: {os.path.join(args.output_dir, 'teacher')}")


if __name__ == "__main__":
    main()
