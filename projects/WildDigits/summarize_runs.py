#!/usr/bin/env python
"""Several `make demo` runs side by side (e.g. seeds 0, 1 and 2: issue 15 asks that the paper's claims hold on 3 of
3 seeds), from the ``results.json`` each run's report wrote:

    .venv/bin/python projects/WildDigits/summarize_runs.py output/demo output/demo_s1 output/demo_s2 \
        [--output output/seeds.md]

A column per run, labelled by the settings that differ between the runs (``seed 1``; ``seed 0, known 5,6,7,8,9``);
the settings every run shares are printed once above the tables. The tables: the AP of every row and its mean
over the runs; the labeled-only noise of each run; each of the paper's claims on each run (its margin against
that run's noise) and on how many runs it holds; issue 15's targets 1-5 on each run and over all of them (met only
where met on every run; target 5 only where every claim holds on every run); each run's time and the teacher's
seconds per iteration (the machine's yardstick). ``--output F`` also writes the text as markdown to F and the
summary as data beside it (F's name with ``.json``). Runs whose rows differ, and folders without a finished
report, are refused.
"""
import argparse
import json
import os
import re
import statistics
import sys

from tabulate import tabulate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_demo import SETTINGS, SETTINGS_BEFORE, parse_args  # noqa: E402  (run_demo.py beside this file)

# settings that say how or where a run ran, not what it measured: never a column label
NOT_COMPARED = ("output_dir", "stage", "rows", "jobs")
# shorter names of settings in the column labels
SETTING_NAMES = {"known_classes": "known"}
RUN_DEMO = ".venv/bin/python projects/WildDigits/run_demo.py"


def resume_command(folder):
    """The command that finishes the run in ``folder``: run_demo.py with the options its ``settings.json``
    records that differ from the defaults (an output dir refuses a run with other settings)."""
    with open(os.path.join(folder, "settings.json")) as f:
        settings = {**SETTINGS_BEFORE, **json.load(f)}
    defaults = vars(parse_args(["--quick"] if settings.get("quick") else []))
    flags = []
    for name in SETTINGS:
        if name in settings and settings[name] != defaults[name]:
            flags.append("--quick" if name == "quick" else f"--{name.replace('_', '-')} {settings[name]}")
    return " ".join([RUN_DEMO, "--output-dir", folder, *flags])


def load_runs(folders):
    """``[(folder, results)]``: each folder's ``results.json``. A folder without one (an unfinished run, or not a
    demo folder) stops the summary with what to run."""
    runs, problems = [], []
    for folder in folders:
        path = os.path.join(folder, "results.json")
        if os.path.isfile(path):
            with open(path) as f:
                runs.append((folder, json.load(f)))
        elif os.path.isfile(os.path.join(folder, "settings.json")):
            problems.append(f"{folder} has no results.json: its run is unfinished; `{resume_command(folder)}` "
                            "finishes it (finished steps are skipped)")
        else:
            problems.append(f"{folder} has no results.json and no settings.json: not a demo output folder "
                            f"(`{RUN_DEMO} --output-dir {folder}` makes one)")
    if problems:
        raise SystemExit("\n".join(problems))
    return runs


def _setting_text(name, value):
    return f"{SETTING_NAMES.get(name, name.replace('_', ' '))} {value}"


def run_labels(settings):
    """``(labels, shared)``: a label per run from the settings that differ between the runs (``seed 1``), and the
    settings all of them share (``{name: value}``). Runs whose settings do not tell them apart get ``run N``."""
    settings = [{**SETTINGS_BEFORE, **s} for s in settings]
    names = [n for n in settings[0] if n not in NOT_COMPARED]
    names += [n for s in settings[1:] for n in s if n not in NOT_COMPARED and n not in names]
    differ = [n for n in names if len({json.dumps(s.get(n)) for s in settings}) > 1]
    labels = [", ".join(_setting_text(n, s.get(n, "-")) for n in differ) for s in settings]
    if len(set(labels)) < len(labels) or not all(labels):
        labels = [f"run {i + 1}" + (f" ({label})" if label else "") for i, label in enumerate(labels)]
    shared = {n: settings[0][n] for n in names if n not in differ}
    return labels, shared


def row_key(row, seed):
    """A row of a run's AP table as ``(name, thr)``, its training SEED said relative to the run's seed
    (``Labeled only, training SEED +1 (noise)``), so that the rows of runs of other seeds match."""
    name = re.sub(r"training SEED (\d+)", lambda m: f"training SEED +{int(m.group(1)) - seed}", row[0])
    return name, row[2]


def _fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def _rows_said(keys):
    return "; ".join(name + ("" if thr == "-" else f" (thr {thr})") for name, thr in sorted(keys, key=str))


def _ap_section(labels, runs):
    keys = [[row_key(row, results["settings"]["seed"]) for row in results["rows"]] for _, results in runs]
    for (folder, _), run_keys in zip(runs[1:], keys[1:]):
        extra, missing = set(run_keys) - set(keys[0]), set(keys[0]) - set(run_keys)
        if extra or missing:
            raise SystemExit(f"the runs' rows differ: {folder} " + ", and ".join(
                ([f"has {_rows_said(extra)}, which {runs[0][0]} lacks"] if extra else [])
                + ([f"lacks {_rows_said(missing)}, which {runs[0][0]} has"] if missing else []))
                + " (--rows); summarize runs of the same rows")
    ap = [{key: row[4] for key, row in zip(run_keys, results["rows"])} for run_keys, (_, results) in zip(keys, runs)]
    rows = [{"row": name, "thr": thr, "AP": [a[(name, thr)] for a in ap],
             "mean": statistics.mean(a[(name, thr)] for a in ap)} for name, thr in keys[0]]
    table = tabulate([[r["row"], r["thr"], *r["AP"], r["mean"]] for r in rows],
                     headers=["training data", "thr", *(f"AP {label}" for label in labels), "mean"],
                     tablefmt="github", floatfmt=".1f")
    return {"ap": rows, "text": [table]}


def _noise_section(labels, runs):
    noise = [results.get("noise", {}) for _, results in runs]
    aps = [n.get("labeled-only AP") or [None] * 3 for n in noise]
    spreads = [n.get("spread") for n in noise]
    table = [[f"labeled-only AP, training SEED +{i}", *(_fmt(a[i]) for a in aps)] for i in range(3)]
    table.append(["spread (max - min): each claim's margin must exceed it", *map(_fmt, spreads)])
    return {"noise": [{"labeled-only AP": a, "spread": s} for a, s in zip(aps, spreads)],
            "text": [tabulate(table, headers=["noise (same data)", *labels], tablefmt="github",
                              disable_numparse=True)]}


def _claim_cell(claim):
    if claim is None:
        return "-"
    if claim["verdict"] != "holds":
        return f"no ({claim['margin']:+.1f})"
    spread = claim["spread"]
    return f"holds ({claim['margin']:+.1f} > {spread or 0.0:.1f}{', noise not measured' if spread is None else ''})"


def _claims_section(labels, runs):
    per_run = [{c["claim"]: c for c in results.get("claims", [])} for _, results in runs]
    names = list(dict.fromkeys(name for claims in per_run for name in claims))
    claims = []
    for name in names:
        verdicts = [claims.get(name) for claims in per_run]
        claims.append({"claim": name, "runs": verdicts,
                       "holds in": sum(c is not None and c["verdict"] == "holds" for c in verdicts)})
    m = len(runs)
    table = [[c["claim"], *map(_claim_cell, c["runs"]), f"holds in {c['holds in']} of {m}"] for c in claims]
    return {"claims": claims,
            "text": [tabulate(table, headers=["the paper's claim (margin > noise spread)", *labels, "all runs"],
                              tablefmt="github")]}


def _target_number(target):
    match = re.match(r"(\d+)\.", target)
    return match.group(1) if match else target


def _targets_section(labels, runs, claims):
    per_run = [{_target_number(t["target"]): t for t in results.get("targets", [])} for _, results in runs]
    numbers = list(dict.fromkeys(n for targets in per_run for n in targets))
    m = len(runs)
    targets = []
    for number in numbers:
        cells = [targets.get(number) for targets in per_run]
        text = next(t["target"] for t in cells if t is not None)
        # a run's target 5 says "this seed": the summary's is over every run
        text = re.sub(r"\s*\(this seed[^)]*\)", "", text)
        verdicts = [None if t is None else t["verdict"] for t in cells]
        met = verdicts.count("met")
        measured = any(v not in (None, "not measured") for v in verdicts)
        if number == "5":
            every_run = [c for c in claims if c["holds in"] == m]
            all_hold = sum(all(c["runs"][i] is not None and c["runs"][i]["verdict"] == "holds" for c in claims)
                           for i in range(m)) if claims else 0
            overall = (f"{len(every_run)} of {len(claims)} claims hold on every run; "
                       f"all {len(claims)} hold on {all_hold} of {m} runs")
            complete = all(v not in (None, "not measured") for v in verdicts)
            verdict = "met" if claims and complete and len(every_run) == len(claims) else "not met"
        else:
            overall = f"met in {met} of {m} runs"
            verdict = "met" if met == m else "not met"
        targets.append({"target": text, "runs": cells, "all runs": overall,
                        "verdict": verdict if measured else "not measured"})
    table = [[t["target"], *("-" if c is None else f"{c['verdict']} ({c['measured']})" for c in t["runs"]),
              t["all runs"], t["verdict"]] for t in targets]
    return {"targets": targets,
            "text": [tabulate(table, headers=["issue 15's target", *labels, "all runs", ""], tablefmt="github")]}


def _time_section(labels, runs):
    times = [results.get("time", {}) for _, results in runs]
    total = [None if t.get("total") is None else t["total"] / 60 for t in times]
    per_iter = [t.get("teacher seconds/iteration") for t in times]
    table = [["time of every step (min)", *map(_fmt, total)],
             ["the teacher's seconds per iteration (the machine's yardstick)", *(_fmt(s, ".3f") for s in per_iter)]]
    return {"time": [{"minutes": a, "teacher seconds/iteration": b} for a, b in zip(total, per_iter)],
            "text": [tabulate(table, headers=["time", *labels], tablefmt="github", disable_numparse=True)]}


def summarize(runs):
    """The summary of ``runs`` (``[(name, results)]``, ``results`` as a run's ``results.json``): a dict of the
    runs' labels and shared settings, the tables' data (``ap``, ``noise``, ``claims``, ``targets``, ``time``) and
    ``text`` (the lines to print). Runs whose rows differ stop it, naming the rows."""
    labels, shared = run_labels([results["settings"] for _, results in runs])
    summary = {"runs": [{"folder": name, "label": label} for (name, _), label in zip(runs, labels)],
               "shared settings": shared}
    sections = [_ap_section(labels, runs), _noise_section(labels, runs)]
    sections.append(_claims_section(labels, runs))
    sections.append(_targets_section(labels, runs, sections[-1]["claims"]))
    sections.append(_time_section(labels, runs))
    runs_line = "runs: " + "; ".join(f"{label}: {name}" for (name, _), label in zip(runs, labels))
    shared_line = "settings of every run: " + ", ".join(_setting_text(n, v) for n, v in shared.items())
    summary["text"] = [runs_line, shared_line] + [line for s in sections for line in s["text"]]
    for section in sections:
        summary.update({k: v for k, v in section.items() if k != "text"})
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="the runs' output folders (run_demo.py --output-dir)")
    p.add_argument("--output", default=None,
                   help="also write the summary as markdown to this file, and as data to it with .json")
    args = p.parse_args(argv)
    if args.output and args.output.endswith(".json"):
        p.error(f"--output {args.output}: the markdown file's name (the data goes beside it, with .json)")
    summary = summarize(load_runs(args.folders))
    text = "\n\n".join(summary["text"])
    print(f"\n{text}\n")
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            f.write(f"# wild-digits benchmark: {len(args.folders)} runs of `make demo`\n\n{text}\n")
        data = os.path.splitext(args.output)[0] + ".json"
        with open(data, "w") as f:
            json.dump({k: v for k, v in summary.items() if k != "text"}, f, indent=2)
        print(f"Summary: {args.output} and {data}")


if __name__ == "__main__":
    main()
