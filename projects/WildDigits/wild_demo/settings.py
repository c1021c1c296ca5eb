"""The demo's command line, the sizes of the miniature and of ``--quick``, the output dir's layout, and the guard
that keeps one output dir to one set of settings."""
import argparse
import json
import os
from dataclasses import dataclass

import torch

from .rows import TABLES

# the stages of each table (--table) in the order they run (pudet's tools do the work of each: wild_demo.stages):
# Table 1 the whole pipeline, Table 3 the two teachers and the distilled students on L alone
TABLE_STAGES = {1: ("teacher", "pu", "select", "label", "students", "report"),
                3: ("teacher", "large_teacher", "students", "report")}
STAGE_NAMES = ("teacher", "large_teacher", "pu", "select", "label", "students", "report")
# the sizes and schedules of the real miniature, and of --quick (a smoke test of every stage; from scratch at
# lr 0.04 a teacher needs the 100-iteration warmup that only 500+ iterations give it, so the toy teacher
# trains at a lower lr)
# trainings (the students train the teacher's schedule unless --student-iters / --student-lr say otherwise)
DEFAULTS = {"num_labeled": 200, "num_pool": 2000, "num_val": 300, "pretrain_iters": 2400, "teacher_iters": 500,
            "teacher_lr": 0.04, "pu_iters": 100}
QUICK = {"num_labeled": 40, "num_pool": 160, "num_val": 20, "pretrain_iters": 20, "teacher_iters": 60,
         "teacher_lr": 0.01, "pu_iters": 10}
# what determines a run's outputs: an output dir made with other values is refused (a rerun skips finished
# steps, so it would mix two runs)
SETTINGS = ("seed", "num_labeled", "num_pool", "num_val", "pos_fraction", "pretrain_iters", "teacher_iters",
            "teacher_lr", "pu_iters", "student_iters", "student_lr", "student_start", "known_classes", "quick",
            "schedule_rule", "table")
# how the rows' iterations are set (not an option): a run of another rule holds rows of other lengths
SCHEDULE_RULE = "the teacher's epochs of 2 * max(n_l, K) images"
# the value a setting had in runs made before it existed (their settings.json lacks it)
SETTINGS_BEFORE = {"pretrain_iters": 0, "student_start": "teacher", "schedule_rule": "the teacher's iterations",
                   "table": 1}
# the default output dirs of each table, and with --quick
OUTPUT_DIRS = {1: ("output/demo", "output/demo_quick"), 3: ("output/demo_table3", "output/demo_table3_quick")}


def parse_args(argv=None, description=None):
    """The demo's arguments, the sizes not given filled in from ``DEFAULTS`` (or ``QUICK``), ``--device auto``
    resolved to the device that runs."""
    parser = argparse.ArgumentParser(prog="run_demo.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument

    def sized(flag, kind, help):
        name = flag[2:].replace("-", "_")
        add(flag, type=kind, default=None, help=f"{help} (default: {DEFAULTS[name]}; with --quick: {QUICK[name]})")

    add("--table", type=int, choices=sorted(TABLES), default=1,
        help="the paper's table to make: 1, Algorithm 1 and the data rows; 3, self-distillation's terms one by one "
             "on L alone, from a larger teacher and from one of the same size (default: %(default)s)")
    add("--output-dir", default=None,
        help="where every stage writes (default: output/demo, output/demo_table3 with --table 3; with --quick: "
             "output/demo_quick, output/demo_table3_quick)")
    add("--stage", choices=STAGE_NAMES, default=None,
        help="run this stage only (default: all, in order); Table 1's: " + ", ".join(TABLE_STAGES[1])
             + "; Table 3's: " + ", ".join(TABLE_STAGES[3]))
    add("--dry-run", action="store_true",
        help="print the tool commands the run would run, in order, and run nothing (finished steps are left out)")
    add("--quick", action="store_true",
        help="every stage at toy sizes, a smoke test of the pipeline (its numbers mean nothing)")
    add("--seed", type=int, default=0,
        help="benchmark seed, also of U^R, the oracle's scenes and training (default: %(default)s)")
    sized("--num-labeled", int, "labeled scenes in L")
    sized("--num-pool", int, "scenes in the pool U")
    sized("--num-val", int, "validation scenes")
    add("--pos-fraction", type=float, default=0.25, help="positive fraction of U (default: %(default)s)")
    add("--known-classes", default="0,1,2,3,4",
        help="the class split: the digits L labels, comma-separated; the others are unknown things "
             "(default: %(default)s)")
    sized("--pretrain-iters", int, "iterations of the glyph pretraining the teachers start from (0: from scratch)")
    sized("--teacher-iters", int, "teacher iterations")
    sized("--teacher-lr", float, "teacher lr")
    sized("--pu-iters", int, "PU classifier iterations")
    add("--rows", default=None,
        help="comma-separated rows the students stage trains, e.g. to train rows in parallel processes on a GPU "
             "machine (default: all the table's; Table 1's: " + ",".join(r.key for r in TABLES[1])
             + "; Table 3's: " + ",".join(r.key for r in TABLES[3]) + ")")
    add("--device", default="auto",
        help="MODEL.DEVICE of every tool: auto (cuda where torch sees a GPU, else cpu), cpu or cuda "
             "(default: %(default)s)")
    add("--jobs", type=int, default=2,
        help="trainings and labellings that do not need each other's outputs run this many at a time, sharing "
             "the CPU threads (default: %(default)s; 1: one after another)")
    add("--student-iters", type=int, default=None,
        help="iterations of a student on L alone, its 1x (default: the teacher's); a row on L and K pool images "
             "trains as many epochs of 2 * max(n_l, K) images (pudet.data.schedule)")
    add("--student-lr", type=float, default=None, help="lr of each student (default: the teacher's)")
    add("--student-start", choices=("pretrained", "teacher"), default="pretrained",
        help="what every student starts from: the glyph-pretrained bottom-up the teacher started from, as the "
             "paper's students start from ImageNet weights (the labeled-only row is then the teacher itself); or "
             "the teacher's weights, a fine-tuning that measures extra iterations more than the method "
             "(default: %(default)s)")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.student_iters = args.teacher_iters if args.student_iters is None else args.student_iters
    args.student_lr = args.teacher_lr if args.student_lr is None else args.student_lr
    args.schedule_rule = SCHEDULE_RULE
    if args.output_dir is None:
        args.output_dir = OUTPUT_DIRS[args.table][args.quick]
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    keys = [r.key for r in TABLES[args.table]]
    args.rows = ",".join(keys) if args.rows is None else args.rows
    unknown = set(args.rows.split(",")) - set(keys)
    if unknown:
        parser.error(f"--rows: unknown rows {sorted(unknown)}; Table {args.table}'s rows are {keys}")
    if args.stage is not None and args.stage not in TABLE_STAGES[args.table]:
        parser.error(f"--stage {args.stage}: Table {args.table}'s stages are {', '.join(TABLE_STAGES[args.table])}")
    if args.table == 3 and args.student_start != "pretrained":
        parser.error("--table 3 trains every student from where its teachers started (--student-start pretrained): "
                     "the larger teacher's weights do not fit the student")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def read_json(path):
    with open(path) as f:
        return json.load(f)


def check_settings(args):
    """Records the run's settings in a new output dir (not in a dry run), and refuses one made with other
    settings."""
    path = os.path.join(args.output_dir, "settings.json")
    settings = {k: getattr(args, k) for k in SETTINGS}
    if not os.path.isfile(path):
        if not args.dry_run:
            os.makedirs(args.output_dir, exist_ok=True)
            with open(path, "w") as f:
                json.dump(settings, f, indent=1)
        return
    recorded = {**SETTINGS_BEFORE, **read_json(path)}
    differ = {k: (v, settings[k]) for k, v in recorded.items() if k in settings and v != settings[k]}
    if differ:
        listed = ", ".join(f"{k} {a} there, {b} now" for k, (a, b) in differ.items())
        raise SystemExit(f"{args.output_dir} holds a run with other settings ({listed}): choose another --output-dir "
                         "(a rerun reuses the finished steps)")


@dataclass(frozen=True)
class Paths:
    """Where each step of a run writes, under its output dir."""

    output_dir: str
    teacher: str
    pu: str  # the image-level PU classifier N_pu (the paper's)
    select: str  # its selection
    pu_region: str  # the region head
    select_region: str  # its selection: U^P
    large_teacher: str  # Table 3's larger teacher
    labels: str  # one folder of pseudo-labels per selection (pool, pu, random, confidence, oracle, oracle_selection)
    select_confidence: str  # U^C
    pool_truth: str  # against the pool's hidden truth: the selections, the teacher's boxes on its negative scenes
    students: str  # one folder per row
    logs: str  # each step's log and time

    @classmethod
    def of(cls, output_dir: str) -> "Paths":
        def under(*names):
            return os.path.join(output_dir, *names)

        return cls(output_dir=output_dir, teacher=under("teacher"), large_teacher=under("large_teacher"),
                   pu=under("pu"),
                   select=under("pu", "select"), pu_region=under("pu_region"),
                   select_region=under("pu_region", "select"), labels=under("labels"),
                   select_confidence=under("labels", "select_confidence"), pool_truth=under("pool_truth"),
                   students=under("students"),
                   logs=under("logs"))
