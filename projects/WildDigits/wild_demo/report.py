"""The report: ``results.json`` and ``results.md`` from what the stages wrote (``eval_results.json``,
``metrics.json``, the selections measured against the pool's truth, ``prior.json``, ``diagnostics.json``,
``negative_scenes.json``, each step's ``logs/<step>.time.json``), and nothing else; Table 3's from its teachers'
and students' ``eval_results.json`` and ``metrics.json`` and the step times."""
import glob
import json
import os
import statistics

from tabulate import tabulate

from .checks import SPLIT, TABLE3_STEPS, VERDICTS, check_miniature, check_table3, margin_of
from .rows import ROWS, TABLE3_ROWS, VAL, row_folder, row_schedule
from .settings import STAGE_NAMES, read_json


def read_optional(path):
    """The JSON at ``path``, or None where that step has not run (an older run, or a row left out)."""
    return read_json(path) if os.path.isfile(path) else None


def bbox_metrics(results):
    """The val bbox metrics of an eval_results.json (one test dataset: detectron2 drops its name)."""
    return results.get("bbox") or results[VAL]["bbox"]


def seconds_per_iteration(metrics_json):
    """The median ``time`` (seconds per iteration) of a detectron2 ``metrics.json`` (one JSON object per
    line), or None where there is none."""
    if not os.path.isfile(metrics_json):
        return None
    with open(metrics_json) as f:
        times = [entry["time"] for entry in map(json.loads, filter(str.strip, f)) if "time" in entry]
    return statistics.median(times) if times else None


def stage_times(logs):
    """``{stage: seconds}`` in run order: the wall time its steps took, each from the run that finished it
    (``logs/*.time.json``; a resumed training counts from its resumption): the length of the union of their
    intervals, so that steps run side by side count once (a time kept without its interval, by an older run,
    adds its seconds)."""
    intervals, seconds = {}, {}
    for path in glob.glob(os.path.join(logs, "*.time.json")):
        t = read_json(path)
        if "start" in t:
            intervals.setdefault(t["stage"], []).append((t["start"], t["end"]))
        else:
            seconds[t["stage"]] = seconds.get(t["stage"], 0.0) + t["seconds"]
    for stage, spans in intervals.items():
        covered, reach = 0.0, float("-inf")
        for start, end in sorted(spans):
            covered += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        seconds[stage] = seconds.get(stage, 0.0) + covered
    return {s: seconds[s] for s in STAGE_NAMES if s in seconds}


def untimed_steps(logs):
    """The tool steps with a log but no time (finished by a run from before the times were kept)."""
    return sorted(os.path.basename(path)[:-len(".log")] for path in glob.glob(os.path.join(logs, "*.log"))
                  if not os.path.isfile(path[:-len(".log")] + ".time.json"))


def ap_section(args, paths):
    """The Table-1-shaped table: the teacher and every trained row, each with its iterations; ``ap`` is
    ``{row key: AP}`` and ``iterations`` ``{row key: iterations}`` of the trained rows."""
    headers = ["training data", "n_u", "thr", "# boxes", "iters", "AP", "AP50", "AP75", "APs", "APm"]
    metrics = ("AP", "AP50", "AP75", "APs", "APm")
    teacher = bbox_metrics(read_json(os.path.join(paths.teacher, "eval_results.json")))
    rows = [["Teacher D_t (L)", "-", "-", "-", args.teacher_iters, *(teacher[m] for m in metrics)]]
    ap, iterations = {}, {}
    for row in ROWS:
        path = os.path.join(row_folder(args, paths, row), "eval_results.json")
        if not os.path.isfile(path):
            print(f"row '{row.key}' has no results yet ({path}): run the students stage for it")
            continue
        student = bbox_metrics(read_json(path))
        ap[row.key], iterations[row.key] = student["AP"], row_schedule(args, row).max_iter
        n_u, thr, boxes = "-", "-", "-"
        if row.selection is not None:
            diag = read_json(os.path.join(paths.labels, row.selection, "diagnostics.json"))
            n_u, thr = diag["taus"][0]["images"], row.tau
            boxes = next(r["boxes"] for r in diag["taus"] if r["tau"] == thr)
        label = row.label + (" = the teacher" if row_folder(args, paths, row) == paths.teacher else "")
        rows.append([label, n_u, thr, boxes, iterations[row.key], *(student[m] for m in metrics)])
    text = [tabulate(rows, headers=headers, tablefmt="github", floatfmt=".1f"),
            "iters: the schedule rule (pudet.data.schedule, the authors' code): the teacher's epochs, an epoch of L "
            "and K pool images being 2 * max(n_l, K) images; the rows marked \"at the pool rows' iterations\" train "
            "L alone that long (equal compute)"]
    return {"headers": headers, "rows": rows, "ap": ap, "iterations": iterations, "teacher": teacher,
            "text": text}


def _margin_rows(comparisons, ap):
    found = []
    for c in comparisons:
        m = margin_of(c, ap)
        if m is not None:
            worse = max((k for k in c.worse if k in ap), key=ap.get)
            found.append({"comparison": c.name, "rows": f"{c.better} {ap[c.better]:.1f} vs {worse} {ap[worse]:.1f}",
                          "margin": m})
    return found


def margins_section(ap):
    """Each verdict's margin on this fold, and the split of U^P's loss against the oracle (rows not trained are
    left out): one fold decides nothing, the folds do (``make demo-seeds``, ``summarize_runs.py``)."""
    margins, split = _margin_rows(VERDICTS, ap), _margin_rows(SPLIT, ap)
    text = ["the margins of this fold (AP of the first row minus the second's): a verdict needs the folds. "
            "`make demo-seeds` runs 5 folds (benchmark seeds 0-4) and gives each verdict its mean margin and a "
            "one-sided 95% bound over them"]
    for title, found in (("verdict (the paper's claims, then at equal compute)", margins),
                         ("U^P's loss against the oracle, split", split)):
        if found:
            text.append(tabulate([[m["comparison"], m["rows"], m["margin"]] for m in found],
                                 headers=[title, "AP on this fold", "margin"], tablefmt="github", floatfmt="+.1f"))
    return {"margins": margins, "split": split, "text": text}


def _selection_row(name, summary):
    return [name, 100 * summary["AUC"], 100 * summary["precision@K"], 100 * summary["recall@K"]]


def truth_section(paths):
    """What the stages measured against the pool's hidden truth: the selections (the paper's image head, the
    region head beside what its features allow: uPU, naive PN, the teacher's confidence, a true-label oracle;
    U^C), the priors, U^P's pseudo-boxes with and without box-level purification, the teacher's boxes on the
    negative scenes. A run without the pu, select or label stage (e.g. only the teacher and some student rows)
    gets a line saying so instead."""
    selections = [os.path.join(paths.pool_truth, name, "selection.json")
                  for name in ("select", "select_region", "select_confidence")]
    labels = os.path.join(paths.labels, "pu", "diagnostics.json")
    missing = [path for path in selections + [labels] if not os.path.isfile(path)]
    if missing:
        return {"pu_selection": None, "negative_scenes": None,
                "text": [f"selections, priors and pseudo-boxes against the pool's truth: not measured ({missing[0]} "
                         "is missing: run the pu, select and label stages)"]}
    image, summary, confidence = map(read_json, selections)
    sel_headers = ["selection of K = n_l pool images", "AUC", "precision@K", "recall@K"]
    sel_rows = [_selection_row("image head N_pu, nnPU (the paper's)", image)]
    sel_rows += [[r["selection"], r["AUC"], r["precision@K"], r["recall@K"]] for r in summary["comparison"][:-1]]
    sel_rows += [_selection_row("teacher's best box score (U^C)", confidence), list(summary["comparison"][-1].values())]
    prior = read_json(os.path.join(paths.pu_region, "prior.json"))
    image_prior = read_json(os.path.join(paths.pu, "prior.json"))
    purified = read_json(labels)
    box_headers = ["pseudo-boxes of U^P", "tau", "boxes", "precision", "recall"]
    box_purified = f"box-purified (region PU score >= {purified['box purified']['pu_score_thresh']:g})"
    box_rows = [[name, r["tau"], r["boxes"], r["precision"], r["recall"]]
                for name, rows in (("as labelled", purified["taus"]), (box_purified, purified["box purified"]["taus"]))
                for r in rows if r["tau"] in (0.5, 0.9)]
    interval = ""
    if "interval" in prior:
        interval = (f", {100 * prior['interval_level']:g}% interval [{prior['interval'][0]:.3f}, "
                    f"{prior['interval'][1]:.3f}]")
    # BBE and Elkan-Noto bound pi_p from above, tightly only where the scores tell positives from negatives,
    # which the image head's pooled features barely do: its value is printed as the prior it trained with
    prior_line = (f"class prior pi_p: true {summary['pool positive fraction']:.3f}; estimated {prior['prior']:.3f}"
                  f"{interval} ({prior['estimator']} on the region head's out-of-fold scores; Elkan-Noto there "
                  f"{prior['elkan-noto']:.3f}). The image head trained with {image_prior['prior']:.3f} "
                  f"({image_prior['estimator']} on its pooled features, whose head ranks the pool at AUC "
                  f"{100 * image['AUC']:.1f}): an upper bound on pi_p, not an estimate of it")
    negative = read_optional(os.path.join(paths.pool_truth, "negative_scenes.json"))
    negative_line = "teacher's false alarms on negative pool scenes: not measured (run the label stage)"
    if negative is not None:
        per_class = ", ".join(f"{name} {v:.2f}" for name, v in negative["per class"].items())
        negative_line = (f"the teacher on the pool's {negative['negative images']} negative scenes: "
                         f"{negative['boxes/img']:.2f} boxes/img above {negative['score_thresh']:g} ({per_class}); "
                         f"{100 * negative['fired']:.1f}% of them hold at least one")
    return {
        "selection_headers": sel_headers, "selection_rows": sel_rows, "prior": prior, "image_prior": image_prior,
        "pu_selection": summary, "image_selection": image, "confidence_selection": confidence,
        "box_purification": box_rows, "negative_scenes": negative,
        "text": [tabulate(sel_rows, headers=sel_headers, tablefmt="github", floatfmt=".1f"), prior_line,
                 tabulate(box_rows, headers=box_headers, tablefmt="github", floatfmt=".3f"), negative_line],
    }


def time_section(args, paths):
    """The device, the teacher's seconds per iteration (the machine's yardstick) and each stage's time."""
    per_iter = seconds_per_iteration(os.path.join(paths.teacher, "metrics.json"))
    times, untimed = stage_times(paths.logs), untimed_steps(paths.logs)
    total = sum(times.values())
    time_rows = [[stage, s, 100 * s / total] for stage, s in times.items()] + [["total", total, 100.0]]
    yardstick = (f"device: {args.device}; the teacher's seconds per iteration (median of its metrics.json; the "
                 "machine's yardstick): " + ("not recorded" if per_iter is None else f"{per_iter:.3f}")
                 + f"; time of every step: {total / 60:.1f} min"
                 + ("" if not per_iter else f" = {total / per_iter:.0f} teacher iterations (machines differ about 2x "
                                            "in speed: this is the time in the machine's own units)")
                 + (f"; not timed, so left out (finished by an older run): {', '.join(untimed)}" if untimed else ""))
    return {"time": {"teacher seconds/iteration": per_iter, "stages": times, "total": total,
                     "total in teacher iterations": total / per_iter if per_iter else None, "untimed steps": untimed},
            "text": [yardstick, tabulate(time_rows, headers=["stage (wall time of its steps)", "seconds", "%"],
                                         tablefmt="github", floatfmt=".0f")]}


def checks_section(table, truth):
    """The miniature's validity checks (not the paper's claims)."""
    oracle = None
    if truth["pu_selection"] is not None:
        oracle = next((r["AUC"] for r in truth["pu_selection"]["comparison"] if r["selection"].startswith("oracle")),
                      None)
    checks = check_miniature(region_oracle_auc=oracle, negative=truth["negative_scenes"], ap=table["ap"])
    return {"checks": checks,
            "text": [tabulate([[c["check"], c["measured"], c["verdict"]] for c in checks],
                              headers=["what makes the miniature a valid test", "measured", ""], tablefmt="github")]}


def write_report(args, paths):
    """Writes ``results.json`` and ``results.md`` to the output dir; returns the report's text."""
    table = ap_section(args, paths)
    margins = margins_section(table["ap"])
    truth = truth_section(paths)
    timing = time_section(args, paths)
    checks = checks_section(table, truth)
    return write_sections(args, "wild-digits benchmark", (table, margins, truth, timing, checks))


def write_sections(args, title, sections):
    """Writes the report's sections to ``results.json`` (their values) and ``results.md`` (their text) in the
    output dir; returns the text."""
    text = "\n\n".join(line for s in sections for line in s["text"])
    results = {"settings": vars(args)}
    for section in sections:
        results.update({k: v for k, v in section.items() if k not in ("text", "teacher")})
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.output_dir, "results.md"), "w") as f:
        f.write(f"# {title}, seed {args.seed}{' (--quick: toy sizes)' if args.quick else ''}\n\n{text}\n")
    return text


def table3_section(args, paths):
    """Table 3: the larger teacher, the student alone (the benchmark's teacher) and the distilled rows, each with
    its iterations; ``ap`` is ``{row key: AP}`` and ``iterations`` ``{row key: iterations}`` of the rows trained."""
    headers = ["row", "iters", "AP", "AP50", "AP75", "APs", "APm"]
    metrics = ("AP", "AP50", "AP75", "APs", "APm")
    rows, ap, iterations = [], {}, {}
    for row in TABLE3_ROWS:
        out = row_folder(args, paths, row)
        path = os.path.join(out, "eval_results.json")
        if not os.path.isfile(path):
            print(f"row '{row.key}' has no results yet ({path}): run the stage that trains it")
            continue
        found = bbox_metrics(read_json(path))
        teacher = out in (paths.teacher, paths.large_teacher)
        ap[row.key] = found["AP"]
        iterations[row.key] = args.teacher_iters if teacher else row_schedule(args, row).max_iter
        rows.append([row.label, iterations[row.key], *(found[m] for m in metrics)])
    text = [tabulate(rows, headers=headers, tablefmt="github", floatfmt=".1f"),
            "every row on L alone, every student from the glyph-pretrained bottom-up its teacher started from, the "
            "same weights in every row (L_hint's gamma, L_kdc's and L_kdr's lambda); the adaptation convs map the "
            "student's FPN channels to its teacher's"]
    return {"headers": headers, "rows": rows, "ap": ap, "iterations": iterations, "text": text}


def table3_margins_section(ap):
    """Each step of Table 3 on this fold (a verdict needs the folds)."""
    margins = _margin_rows(TABLE3_STEPS, ap)
    text = ["the steps of this fold (AP of the first row minus the second's): a verdict needs the folds "
            "(`make demo-table3-seeds`: 5 folds, each step's mean margin and its one-sided 95% bound)"]
    if margins:
        text.append(tabulate([[m["comparison"], m["rows"], m["margin"]] for m in margins],
                             headers=["step of Table 3", "AP on this fold", "margin"], tablefmt="github",
                             floatfmt="+.1f"))
    return {"margins": margins, "text": text}


def write_table3_report(args, paths):
    """Writes Table 3's ``results.json`` and ``results.md`` to the output dir; returns the report's text: the
    table, this fold's steps, the time (with the larger teacher's seconds per iteration against the benchmark
    teacher's) and the check that the larger teacher is clearly stronger."""
    table = table3_section(args, paths)
    margins = table3_margins_section(table["ap"])
    timing = time_section(args, paths)
    large = seconds_per_iteration(os.path.join(paths.large_teacher, "metrics.json"))
    per_iter = timing["time"]["teacher seconds/iteration"]
    ratio = large / per_iter if large and per_iter else None
    timing["time"].update({"larger teacher seconds/iteration": large, "larger teacher / teacher per iteration": ratio})
    timing["text"].insert(1, "the larger teacher's seconds per iteration: "
                          + ("not recorded" if large is None else f"{large:.3f}")
                          + ("" if ratio is None else f", {ratio:.2f}x the benchmark teacher's"))
    checks = check_table3(table["ap"])
    checks_text = tabulate([[c["check"], c["measured"], c["verdict"]] for c in checks],
                           headers=["what makes Table 3's (i) a distillation from a larger teacher", "measured", ""],
                           tablefmt="github")
    return write_sections(args, "wild-digits benchmark, Table 3",
                          (table, margins, timing, {"checks": checks, "text": [checks_text]}))


def done_line(args, stages, seconds):
    """The last line: what this run made and where (a run of some stages has no report yet)."""
    o = args.output_dir
    if args.dry_run:
        return f"Dry run: stage {', '.join(stages)} listed; nothing ran"
    if "report" not in stages:
        return (f"Done in {seconds / 60:.1f} min: stage {', '.join(stages)}; its outputs and logs are under {o} "
                f"(the report: --stage report)")
    made = [name for name in ("gallery.png", "score_histogram.png") if os.path.isfile(os.path.join(o, name))]
    return (f"Done in {seconds / 60:.1f} min. Results: {os.path.join(o, 'results.md')} and results.json"
            + (f"; {' and '.join(made)} beside them" if made else "") + f"; every stage's output and log under {o}")
