#!/usr/bin/env python
"""`make demo`: Algorithm 1 and the student trainings on the built-in wild-digits benchmark, through the
real tools (tools/train_net.py, tools/purify_net.py train/select/label/gallery), then a table shaped like
the paper's Table 1.

Stages (run in order; --stage runs one, reading what the earlier ones wrote; each is rerun-safe: a
finished stage is skipped, an interrupted training resumes from its last checkpoint):
  teacher    the teacher D_t on L (COCO AP on val)
  pu         the PU classifiers on L and the pool U, nnPU with the prior estimated: the paper's image-level
             N_pu (the teacher's backbone + a pooled linear head) and the region head (the teacher's regions
             at scales 1 and 0.5 scored one by one; an image scores as its best region; BBE prior)
  select     both score every pool image; U^P = the region head's top K = n_l (its summary compares it with
             uPU, naive PN, the teacher's own confidence and a true-label oracle on the same features)
  label      D_t pseudo-labels the whole pool (for the confidence-based selection and the teacher's
             false alarms), U^P (with each box's region PU score: box-level purification is reported), a
             random U^R of K images, and U^C = the K images whose best box scores highest (the selection a
             practitioner tries first: purify_net.py select --by teacher-confidence)
  students   the rows: labeled only (the teacher trained on as long again, plain detectron2); + self-
             distillation on L; + U^R, U^P at tau 0.5 and 0.9; + U^C at 0.5 (self-distillation on L + U^x);
             students start from the teacher's weights
  report     results.json, results.md, gallery.png (random vs PU-selected, Figure 3), the table; it reads
             only what the stages wrote (eval_results.json, the selections' summaries, prior.json,
             diagnostics.json)

Prints the table; its last lines say where everything is.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings

from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
# detectron2 0.6 calls torch.jit.script at import, which torch deprecates: keep the demo's console to its table
warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")

TOOLS = os.path.join(REPO, "tools")
TEACHER_YAML = os.path.join(REPO, "configs", "WildDigits", "faster_rcnn_R18_FPN_teacher.yaml")
STUDENT_YAML = os.path.join(REPO, "configs", "WildDigits", "student_R18_FPN_sd.yaml")
PU_YAML = os.path.join(REPO, "configs", "WildDigits", "pu_R18_nnpu.yaml")
PU_REGION_YAML = os.path.join(REPO, "configs", "WildDigits", "pu_R18_region.yaml")
# (row key, label, training data: None = L only, or (selection, tau); self-distillation?)
ROWS = (
    ("baseline", "Labeled only (baseline)", None, False),
    ("sd", "+ Self-distillation", None, True),
    ("random_0.5", "+ Randomly selected (U^R)", ("random", 0.5), True),
    ("random_0.9", "+ Randomly selected (U^R)", ("random", 0.9), True),
    ("pu_0.5", "+ PU selected (U^P)", ("pu", 0.5), True),
    ("pu_0.9", "+ PU selected (U^P)", ("pu", 0.9), True),
    ("confidence_0.5", "+ Teacher-confidence selected (U^C)", ("confidence", 0.5), True),
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output-dir", default="output/demo", help="where every stage writes (default: %(default)s)")
    p.add_argument("--stage", choices=list(STAGES), default=None, help="run this stage only (default: all, in order)")
    p.add_argument("--seed", type=int, default=0,
                   help="benchmark seed, also of U^R and training (default: %(default)s)")
    p.add_argument("--num-labeled", type=int, default=200, help="labeled scenes in L (default: %(default)s)")
    p.add_argument("--num-pool", type=int, default=2000, help="scenes in the pool U (default: %(default)s)")
    p.add_argument("--num-val", type=int, default=300, help="validation scenes (default: %(default)s)")
    p.add_argument("--pos-fraction", type=float, default=0.25, help="positive fraction of U (default: %(default)s)")
    p.add_argument("--teacher-iters", type=int, default=500, help="teacher iterations (default: %(default)s)")
    p.add_argument("--pu-iters", type=int, default=100, help="PU classifier iterations (default: %(default)s)")
    p.add_argument("--rows", default=",".join(r[0] for r in ROWS),
                   help="comma-separated student rows the students stage trains, e.g. to train rows in parallel "
                        "processes on a GPU machine (default: all: %(default)s)")
    p.add_argument("--device", default="cpu", help="MODEL.DEVICE of every tool: cpu or cuda (default: %(default)s)")
    p.add_argument("--student-iters", type=int, default=40, help="iterations of each student (default: %(default)s)")
    args = p.parse_args(argv)
    unknown = set(args.rows.split(",")) - {r[0] for r in ROWS}
    if unknown:
        p.error(f"--rows: unknown rows {sorted(unknown)}; rows are {[r[0] for r in ROWS]}")
    return args


def benchmark_opts(args):
    return [
        "WILD_DIGITS.SEED", str(args.seed), "WILD_DIGITS.NUM_LABELED", str(args.num_labeled),
        "WILD_DIGITS.NUM_POOL", str(args.num_pool), "WILD_DIGITS.NUM_VAL", str(args.num_val),
        "WILD_DIGITS.POS_FRACTION", str(args.pos_fraction), "SEED", str(args.seed), "MODEL.DEVICE", args.device,
    ]


def schedule(iters, lr):
    return ["SOLVER.MAX_ITER", str(iters), "SOLVER.BASE_LR", str(lr),
            "SOLVER.STEPS", f"({int(iters * 0.8)},)", "SOLVER.CHECKPOINT_PERIOD", str(max(1, iters // 3)),
            "SOLVER.WARMUP_ITERS", str(min(100, iters // 5))]


def run(cmd, log_path):
    """Runs a tool; its output goes to ``log_path`` (the last lines are shown if it fails)."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        with open(log_path) as f:
            sys.stderr.write("".join(f.readlines()[-30:]))
        raise SystemExit(f"failed ({proc.returncode}): see {log_path}")
    print(f"  done in {time.time() - start:.0f}s (log: {log_path})", flush=True)


def step(p, log, done, name, *tool_args):
    """Runs ``tools/<name> tool_args`` (log: ``logs/<log>.log``) unless its output ``done`` exists: a rerun
    skips the finished steps."""
    if not os.path.isfile(done):
        run([sys.executable, os.path.join(TOOLS, name), *tool_args], os.path.join(p["logs"], f"{log}.log"))


def paths(args):
    o = args.output_dir
    return {
        "teacher": os.path.join(o, "teacher"), "pu": os.path.join(o, "pu"),
        "select": os.path.join(o, "pu", "select"), "labels": os.path.join(o, "labels"),
        "pu_region": os.path.join(o, "pu_region"), "select_region": os.path.join(o, "pu_region", "select"),
        "select_confidence": os.path.join(o, "labels", "select_confidence"),
        "students": os.path.join(o, "students"), "logs": os.path.join(o, "logs"),
    }


def read_json(path):
    with open(path) as f:
        return json.load(f)


def stage_teacher(args, p):
    step(p, "teacher", os.path.join(p["teacher"], "eval_results.json"), "train_net.py",
         "--resume", "--config-file", TEACHER_YAML, *benchmark_opts(args), *schedule(args.teacher_iters, 0.04),
         "DATASETS.TEST", "('wild_digits_val',)", "OUTPUT_DIR", p["teacher"])


def stage_pu(args, p):
    teacher = os.path.join(p["teacher"], "model_final.pth")
    step(p, "pu", os.path.join(p["pu"], "eval_results.json"), "purify_net.py",
         "train", "--resume", "--config-file", PU_YAML, *benchmark_opts(args), *schedule(args.pu_iters, 0.01),
         "PU.INIT_FROM_DETECTOR", teacher, "OUTPUT_DIR", p["pu"])
    step(p, "pu_region", os.path.join(p["pu_region"], "eval_results.json"), "purify_net.py",
         "train", "--config-file", PU_REGION_YAML, *benchmark_opts(args), "PU.INIT_FROM_DETECTOR", teacher,
         "OUTPUT_DIR", p["pu_region"])


def stage_select(args, p):
    step(p, "select", os.path.join(p["select"], "selected.json"), "purify_net.py",
         "select", "--config-file", PU_YAML, *benchmark_opts(args),
         "PU.PRIOR", str(read_json(os.path.join(p["pu"], "prior.json"))["prior"]), "OUTPUT_DIR", p["pu"])
    step(p, "select_region", os.path.join(p["select_region"], "selected.json"), "purify_net.py",
         "select", "--config-file", PU_REGION_YAML, *benchmark_opts(args),
         "PU.INIT_FROM_DETECTOR", os.path.join(p["teacher"], "model_final.pth"), "OUTPUT_DIR", p["pu_region"])


def _label(args, p, name, *source):
    out = os.path.join(p["labels"], name)
    step(p, f"label_{name}", os.path.join(out, "diagnostics.json"), "purify_net.py",
         "label", "--config-file", TEACHER_YAML, "--weights", os.path.join(p["teacher"], "model_final.pth"),
         "--output-dir", out, *source, *benchmark_opts(args))


def stage_label(args, p):
    _label(args, p, "pool", "--dataset", "wild_digits_pool")
    _label(args, p, "pu", "--selection", os.path.join(p["select_region"], "selected.json"),
           "--pu-weights", os.path.join(p["pu_region"], "model_final.pth"))
    _label(args, p, "random", "--dataset", "wild_digits_pool", "--random", str(args.num_labeled),
           "--seed", str(args.seed))
    step(p, "select_confidence", os.path.join(p["select_confidence"], "selected.json"), "purify_net.py",
         "select", "--by", "teacher-confidence",
         "--pseudo-labels", os.path.join(p["labels"], "pool", "pseudo_labels.json"),
         "--output-dir", p["select_confidence"], "--config-file", PU_YAML, *benchmark_opts(args))
    _label(args, p, "confidence", "--selection", os.path.join(p["select_confidence"], "selected.json"))


def stage_students(args, p):
    teacher = os.path.join(p["teacher"], "model_final.pth")
    chosen = set(args.rows.split(","))
    for key, _, data, distill in ROWS:
        if key not in chosen:
            continue
        out = os.path.join(p["students"], key)
        extra = ["MODEL.PUDET.TEACHER_WEIGHTS", teacher] if distill else []
        if data is not None:
            selection, tau = data
            extra += ["DATASETS.TRAIN_PSEUDO", f"('{os.path.join(p['labels'], selection, 'pseudo_labels.json')}',)",
                      "DATASETS.PSEUDO_SCORE_THRESH", str(tau)]
        step(p, f"student_{key}", os.path.join(out, "eval_results.json"), "train_net.py",
             "--resume", "--config-file", STUDENT_YAML if distill else TEACHER_YAML, *benchmark_opts(args),
             *schedule(args.student_iters, 0.004), "MODEL.WEIGHTS", teacher, *extra,
             "DATASETS.TEST", "('wild_digits_val',)", "OUTPUT_DIR", out)


def _ap(results):
    """The val bbox metrics of an eval_results.json (one test dataset: detectron2 drops its name)."""
    return results.get("bbox") or results["wild_digits_val"]["bbox"]


def check_claims(ap):
    """The paper's claims on this run's AP (rows missing from ``ap`` are left out):
    ``[{"claim", "verdict": "holds" | "does not hold", "evidence"}]``."""
    pairs = [("self-distillation beats the baseline", "sd", "baseline")]
    for tau in (0.5, 0.9):
        pairs.append((f"PU-selected beats randomly selected at tau {tau}", f"pu_{tau}", f"random_{tau}"))
        pairs.append((f"PU-selected at tau {tau} beats the baseline", f"pu_{tau}", "baseline"))
    return [{"claim": claim, "verdict": "holds" if ap[a] > ap[b] else "does not hold",
             "evidence": f"AP {ap[a]:.1f} vs {ap[b]:.1f}"} for claim, a, b in pairs if a in ap and b in ap]


def _selection_row(name, summary):
    return [name, 100 * summary["AUC"], 100 * summary["precision@K"], 100 * summary["recall@K"]]


def stage_report(args, p):
    teacher = _ap(read_json(os.path.join(p["teacher"], "eval_results.json")))
    headers = ["training data", "n_u", "thr", "# boxes", "AP", "AP50", "AP75", "APs", "APm"]
    metrics = ("AP", "AP50", "AP75", "APs", "APm")
    rows = [["Teacher D_t (L)", "-", "-", "-", *(teacher[m] for m in metrics)]]
    student_ap = {}
    for key, label, data, _ in ROWS:
        path = os.path.join(p["students"], key, "eval_results.json")
        if not os.path.isfile(path):
            print(f"row '{key}' has no results yet ({path}): run the students stage for it")
            continue
        ap = _ap(read_json(path))
        student_ap[key] = ap["AP"]
        n_u, thr, boxes = "-", "-", "-"
        if data is not None:
            diag = read_json(os.path.join(p["labels"], data[0], "diagnostics.json"))
            n_u, thr = diag["taus"][0]["images"], data[1]
            boxes = next(r["boxes"] for r in diag["taus"] if r["tau"] == thr)
        rows.append([label, n_u, thr, boxes, *(ap[m] for m in metrics)])

    # the selections against the hidden truth (in their summaries): the paper's image head, the region head beside
    # what its features allow (uPU, naive PN, the teacher's confidence, a true-label oracle), U^C
    image = read_json(os.path.join(p["select"], "selected.json"))["summary"]
    summary = read_json(os.path.join(p["select_region"], "selected.json"))["summary"]
    confidence = read_json(os.path.join(p["select_confidence"], "selected.json"))["summary"]
    sel_headers = ["selection of K = n_l pool images", "AUC", "precision@K", "recall@K"]
    sel_rows = [_selection_row("image head N_pu, nnPU (the paper's)", image)]
    sel_rows += [[r["selection"], r["AUC"], r["precision@K"], r["recall@K"]] for r in summary["comparison"][:-1]]
    sel_rows += [_selection_row("teacher's best box score (U^C)", confidence), list(summary["comparison"][-1].values())]
    prior = read_json(os.path.join(p["pu_region"], "prior.json"))
    image_prior = read_json(os.path.join(p["pu"], "prior.json"))
    purified = read_json(os.path.join(p["labels"], "pu", "diagnostics.json"))
    box_headers = ["pseudo-boxes of U^P", "tau", "boxes", "precision", "recall"]
    box_purified = f"box-purified (region PU score >= {purified['box purified']['pu_score_thresh']:g})"
    box_rows = [[name, r["tau"], r["boxes"], r["precision"], r["recall"]]
                for name, rows in (("as labelled", purified["taus"]), (box_purified, purified["box purified"]["taus"]))
                for r in rows if r["tau"] in (0.5, 0.9)]

    run([sys.executable, os.path.join(TOOLS, "purify_net.py"), "gallery",
         os.path.join(p["labels"], "random", "pseudo_labels.json"),
         os.path.join(p["labels"], "pu", "pseudo_labels.json"),
         "--titles", "random (U^R)", "PU-selected (U^P)", "--output", os.path.join(args.output_dir, "gallery.png"),
         "--seed", str(args.seed)], os.path.join(p["logs"], "gallery.log"))
    shutil.copyfile(os.path.join(p["select_region"], "score_histogram.png"),
                    os.path.join(args.output_dir, "score_histogram.png"))

    table = tabulate(rows, headers=headers, tablefmt="github", floatfmt=".1f")
    claims = check_claims(student_ap)
    sel_table = tabulate(sel_rows, headers=sel_headers, tablefmt="github", floatfmt=".1f")
    box_table = tabulate(box_rows, headers=box_headers, tablefmt="github", floatfmt=".3f")
    prior_line = (f"class prior pi_p: true {summary['pool positive fraction']:.3f}; estimated {prior['prior']:.3f} "
                  f"({prior['estimator']} on the region head's out-of-fold scores; Elkan-Noto there "
                  f"{prior['elkan-noto']:.3f}); {image_prior['prior']:.3f} ({image_prior['estimator']} on the image "
                  f"head's pooled features)")
    results = {
        "settings": vars(args), "headers": headers, "rows": rows, "selection_headers": sel_headers,
        "selection_rows": sel_rows, "prior": prior, "image_prior": image_prior, "pu_selection": summary,
        "image_selection": image, "confidence_selection": confidence, "box_purification": box_rows, "claims": claims,
    }
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.output_dir, "results.md"), "w") as f:
        f.write(f"# wild-digits benchmark, seed {args.seed}\n\n{table}\n\n{sel_table}\n\n{prior_line}\n\n"
                f"{box_table}\n\n"
                + "".join(f"- {c['claim']}: {c['verdict']} ({c['evidence']})\n" for c in claims))
    print(f"\n{table}\n\n{sel_table}\n\n{prior_line}\n\n{box_table}\n")
    for c in claims:
        print(f"{c['claim']}: {c['verdict']} ({c['evidence']})")


# the stages in the order they run
STAGES = {
    "teacher": stage_teacher,
    "pu": stage_pu,
    "select": stage_select,
    "label": stage_label,
    "students": stage_students,
    "report": stage_report,
}


def main(argv=None):
    args = parse_args(argv)
    p = paths(args)
    os.makedirs(p["logs"], exist_ok=True)
    start = time.time()
    stages = [args.stage] if args.stage else STAGES
    for name in stages:
        print(f"== stage {name}", flush=True)
        STAGES[name](args, p)
    print(f"Done in {(time.time() - start) / 60:.1f} min. Results: {os.path.join(args.output_dir, 'results.md')} "
          f"and results.json; gallery.png and score_histogram.png beside them; every stage's output and log under "
          f"{args.output_dir}")


if __name__ == "__main__":
    main()
