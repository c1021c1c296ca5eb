"""Several demo runs side by side (e.g. seeds 0, 1 and 2), from the ``results.json`` each run's report wrote: a
column per run, labelled by the settings that differ between the runs; the AP of every row and its mean; each
run's noise; each of the paper's claims on each run and on how many it holds; the miniature's checks on each run
and over all of them; each run's time."""
import json
import os
import re
import statistics

from tabulate import tabulate

from .settings import SETTINGS, SETTINGS_BEFORE, parse_args

# settings that say how or where a run ran, not what it measured: never a column label
NOT_COMPARED = ("output_dir", "stage", "rows", "jobs", "dry_run")
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


def ap_section(labels, runs):
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


def noise_section(labels, runs):
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


def _every_claim(claims, runs):
    """The row "every claim": on each run how many claims hold, and whether every claim holds on every run (only
    where every run measured its noise)."""
    m = len(runs)
    held = [sum(c["runs"][i] is not None and c["runs"][i]["verdict"] == "holds" for c in claims) for i in range(m)]
    every_run = [c for c in claims if c["holds in"] == m]
    all_hold = sum(h == len(claims) for h in held) if claims else 0
    measured = all(results.get("noise", {}).get("spread") is not None for _, results in runs)
    verdict = ("not measured" if not claims else
               "holds" if measured and len(every_run) == len(claims) else "does not hold")
    return {"runs": held, "all runs": f"{len(every_run)} of {len(claims)} claims hold on every run; "
                                      f"all {len(claims)} hold on {all_hold} of {m} runs", "verdict": verdict}


def claims_section(labels, runs):
    per_run = [{c["claim"]: c for c in results.get("claims", [])} for _, results in runs]
    names = list(dict.fromkeys(name for claims in per_run for name in claims))
    claims = []
    for name in names:
        verdicts = [claims.get(name) for claims in per_run]
        claims.append({"claim": name, "runs": verdicts,
                       "holds in": sum(c is not None and c["verdict"] == "holds" for c in verdicts)})
    every = _every_claim(claims, runs)
    m = len(runs)
    table = [[c["claim"], *map(_claim_cell, c["runs"]), f"holds in {c['holds in']} of {m}"] for c in claims]
    table.append(["every claim", *(f"{h} of {len(claims)} hold" for h in every["runs"]),
                  f"{every['all runs']}: {every['verdict']}"])
    return {"claims": claims, "every claim": every,
            "text": [tabulate(table, headers=["the paper's claim (margin > noise spread)", *labels, "all runs"],
                              tablefmt="github")]}


def checks_section(labels, runs):
    """The miniature's checks on each run; over all runs, a check with a pass mark holds where it holds on every
    run, and a reported one gives its range."""
    per_run = [{c["check"]: c for c in results.get("checks", [])} for _, results in runs]
    names = list(dict.fromkeys(name for checks in per_run for name in checks))
    m = len(runs)
    checks = []
    for name in names:
        cells = [checks.get(name) for checks in per_run]
        verdicts = [None if c is None else c["verdict"] for c in cells]
        values = [c["value"] for c in cells if c is not None and c["value"] is not None]
        if not values:
            overall, verdict = "not measured", "not measured"
        elif "reported" in verdicts:
            overall, verdict = f"{min(values):.1f} to {max(values):.1f}", "reported"
        else:
            holds = verdicts.count("holds")
            overall, verdict = f"holds in {holds} of {m} runs", "holds" if holds == m else "does not hold"
        checks.append({"check": name, "runs": cells, "all runs": overall, "verdict": verdict})
    table = [[c["check"], *("-" if r is None else f"{r['verdict']} ({r['measured']})" for r in c["runs"]),
              c["all runs"], c["verdict"]] for c in checks]
    return {"checks": checks,
            "text": [tabulate(table, headers=["what makes the miniature a valid test", *labels, "all runs", ""],
                              tablefmt="github")]}


def time_section(labels, runs):
    times = [results.get("time", {}) for _, results in runs]
    total = [None if t.get("total") is None else t["total"] / 60 for t in times]
    per_iter = [t.get("teacher seconds/iteration") for t in times]
    table = [["time of every step (min)", *map(_fmt, total)],
             ["the teacher's seconds per iteration (the machine's yardstick)", *(_fmt(s, ".3f") for s in per_iter)]]
    return {"time": [{"minutes": a, "teacher seconds/iteration": b} for a, b in zip(total, per_iter)],
            "text": [tabulate(table, headers=["time", *labels], tablefmt="github", disable_numparse=True)]}


def summarize(runs):
    """The summary of ``runs`` (``[(name, results)]``, ``results`` as a run's ``results.json``): a dict of the
    runs' labels and shared settings, the tables' data (``ap``, ``noise``, ``claims``, ``every claim``,
    ``checks``, ``time``) and ``text`` (the lines to print). Runs whose rows differ stop it, naming the rows."""
    labels, shared = run_labels([results["settings"] for _, results in runs])
    summary = {"runs": [{"folder": name, "label": label} for (name, _), label in zip(runs, labels)],
               "shared settings": shared}
    sections = [ap_section(labels, runs), noise_section(labels, runs), claims_section(labels, runs),
                checks_section(labels, runs), time_section(labels, runs)]
    runs_line = "runs: " + "; ".join(f"{label}: {name}" for (name, _), label in zip(runs, labels))
    shared_line = "settings of every run: " + ", ".join(_setting_text(n, v) for n, v in shared.items())
    summary["text"] = [runs_line, shared_line] + [line for s in sections for line in s["text"]]
    for section in sections:
        summary.update({k: v for k, v in section.items() if k != "text"})
    return summary
