"""Several demo runs side by side (the folds: benchmark seeds 0-4), from the ``results.json`` each run's report
wrote: a column per run, labelled by the settings that differ between the runs; every row's AP with its mean and
standard deviation over the folds; each verdict's paired margin on every fold, its mean and its one-sided 95%
lower bound from the t distribution (:func:`margin_statistics`, :func:`verdict`; reusable with other rows and
comparisons); the miniature's checks on each run and over all of them; each run's time. Folds of Table 3
(``--table 3``) get its rows and its steps, judged the same way."""
import json
import math
import os
import statistics

from scipy.stats import t as student_t
from tabulate import tabulate

from .checks import SPLIT, TABLE3_STEPS, VERDICTS, margin_of
from .rows import TABLES
from .settings import SETTINGS, SETTINGS_BEFORE, parse_args

# settings that say how or where a run ran, not what it measured: never a column label
NOT_COMPARED = ("output_dir", "stage", "rows", "jobs", "dry_run")
# shorter names of settings in the column labels
SETTING_NAMES = {"known_classes": "known"}
RUN_DEMO = ".venv/bin/python projects/WildDigits/run_demo.py"
CONFIDENCE = 0.95  # of the one-sided bounds


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The ``confidence`` quantile of Student's t distribution with ``df`` degrees of freedom (scipy, which
    scikit-learn brings): 2.920 for df 2, 2.132 for df 4."""
    return float(student_t.ppf(confidence, df))


def margin_statistics(margins, confidence: float = CONFIDENCE) -> dict:
    """Paired margins over folds (None: not measured on that fold, left out): ``{"n", "mean", "std", "lower",
    "upper"}``, ``std`` the sample standard deviation s, ``lower`` the one-sided ``confidence`` lower bound of the
    mean margin, mean - t_{confidence, n-1} * s / sqrt(n), and ``upper`` its mirror, the lower bound of the
    opposite margin negated. With fewer than 2 folds there is no bound (None)."""
    found = [m for m in margins if m is not None]
    n = len(found)
    mean = statistics.mean(found) if found else None
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "lower": None, "upper": None}
    std = statistics.stdev(found)
    half = t_quantile(n - 1, confidence) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "lower": mean - half, "upper": mean + half}


def verdict(stats: dict) -> str:
    """``"holds"`` where the lower bound of the margin is above 0, ``"reversed"`` where the opposite margin's is
    (the upper bound is below 0), ``"undecided"`` otherwise; ``"needs 2 folds"`` without a bound."""
    if stats["lower"] is None:
        return "needs 2 folds"
    return "holds" if stats["lower"] > 0 else "reversed" if stats["upper"] < 0 else "undecided"


def judge(comparisons, aps) -> list:
    """Each of ``comparisons`` (:class:`wild_demo.checks.Comparison`) over the folds' ``aps`` (``[{row key:
    AP}]``, one per fold): ``[{"comparison", "margins" (one per fold, None where a row is missing), **margin
    statistics, "verdict"}]``, comparisons no fold measures left out."""
    judged = []
    for c in comparisons:
        margins = [margin_of(c, ap) for ap in aps]
        if any(m is not None for m in margins):
            stats = margin_statistics(margins)
            judged.append({"comparison": c.name, "margins": margins, **stats, "verdict": verdict(stats)})
    return judged


def row_statistics(aps, keys) -> list:
    """Each row of ``keys`` over the folds' ``aps``: ``[{"row", "AP" (one per fold), "mean", "std"}]`` (std:
    the sample standard deviation, None with one fold)."""
    found = []
    for key in keys:
        values = [ap.get(key) for ap in aps]
        present = [v for v in values if v is not None]
        found.append({"row": key, "AP": values, "mean": statistics.mean(present),
                      "std": statistics.stdev(present) if len(present) > 1 else None})
    return found


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


def _fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def _pm(mean, std):
    return _fmt(mean) + ("" if std is None else f" ± {std:.1f}")


def run_aps(runs):
    """Each run's ``{row key: AP}``; runs of other rows, and runs whose report predates the row keys, stop it."""
    aps = []
    for folder, results in runs:
        if "ap" not in results:
            raise SystemExit(f"{folder}'s results.json comes from an older report: rerun its report "
                             f"(`{RUN_DEMO} --output-dir {folder} --stage report` with its settings)")
        aps.append(results["ap"])
    for (folder, _), ap in zip(runs[1:], aps[1:]):
        extra, missing = sorted(set(ap) - set(aps[0])), sorted(set(aps[0]) - set(ap))
        if extra or missing:
            raise SystemExit(f"the runs' rows differ: {folder} " + ", and ".join(
                ([f"has {', '.join(extra)}, which {runs[0][0]} lacks"] if extra else [])
                + ([f"lacks {', '.join(missing)}, which {runs[0][0]} has"] if missing else []))
                + " (--rows); summarize runs of the same rows")
    return aps


def ap_section(labels, runs, aps, rows):
    keys = [r.key for r in rows if r.key in aps[0]]
    by_key = {r.key: r for r in rows}
    stats = row_statistics(aps, keys)
    iterations = runs[0][1].get("iterations", {})
    table = [[by_key[s["row"]].label, _fmt(by_key[s["row"]].tau, "g") if by_key[s["row"]].tau else "-",
              iterations.get(s["row"], "-"), *map(_fmt, s["AP"]), _pm(s["mean"], s["std"])] for s in stats]
    return {"ap": stats, "text": [tabulate(table, headers=["training data", "thr", "iters",
                                                           *(f"AP {label}" for label in labels), "mean ± std"],
                                           tablefmt="github", disable_numparse=True)]}


def _judged_table(judged, labels, title):
    table = [[j["comparison"], *(_fmt(m, "+.1f") for m in j["margins"]), _fmt(j["mean"], "+.2f"),
              _fmt(j["std"], ".2f"), _fmt(j["lower"], "+.2f"), j["verdict"]] for j in judged]
    return tabulate(table, headers=[title, *labels, "mean", "s", "95% lower bound", ""], tablefmt="github",
                    disable_numparse=True)


def _rule(n):
    return (f"margin: AP of the first row minus the second's on each fold; the bound: mean - t_0.95,n-1 * s / "
            f"sqrt(n) over the n = {n} folds; holds: the bound is above 0; reversed: the opposite margin's "
            "bound is above 0; else undecided")


def verdicts_section(labels, aps):
    """Each verdict and each part of the split of U^P's loss against the oracle, over the folds."""
    verdicts, split = judge(VERDICTS, aps), judge(SPLIT, aps)
    return {"verdicts": verdicts, "split": split,
            "text": [_rule(len(aps)), _judged_table(verdicts, labels, "verdict (margin per fold)"),
                     _judged_table(split, labels, "U^P's loss against the oracle, split (margin per fold)")]}


def table3_steps_section(labels, aps):
    """Each step of Table 3 over the folds, judged as the verdicts are."""
    steps = judge(TABLE3_STEPS, aps)
    return {"verdicts": steps,
            "text": [_rule(len(aps)), _judged_table(steps, labels, "step of Table 3 (margin per fold)")]}


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
    iterations = [t.get("total in teacher iterations") for t in times]
    table = [["time of every step (min)", *map(_fmt, total)],
             ["the teacher's seconds per iteration (the machine's yardstick)", *(_fmt(s, ".3f") for s in per_iter)],
             ["time in teacher iterations (wall seconds / yardstick)", *(_fmt(i, ".0f") for i in iterations)]]
    larger = [t.get("larger teacher / teacher per iteration") for t in times]
    if any(r is not None for r in larger):  # Table 3's
        table.append(["the larger teacher's seconds per iteration / the teacher's", *(_fmt(r, ".2f") for r in larger)])
    return {"time": [{"minutes": a, "teacher seconds/iteration": b, "teacher iterations": c}
                     for a, b, c in zip(total, per_iter, iterations)],
            "text": [tabulate(table, headers=["time", *labels], tablefmt="github", disable_numparse=True)]}


def summarize(runs):
    """The summary of ``runs`` (``[(name, results)]``, ``results`` as a run's ``results.json``; one run a fold): a
    dict of the runs' labels and shared settings, the tables' data (``ap``: each row's mean ± std; ``verdicts``
    and ``split``: the margins with their statistics and verdict words; ``checks``; ``time``) and ``text`` (the
    lines to print). Runs whose rows differ stop it, naming the rows. Folds of Table 3 get its rows and, as
    ``verdicts``, its steps."""
    labels, shared = run_labels([results["settings"] for _, results in runs])
    aps = run_aps(runs)
    summary = {"runs": [{"folder": name, "label": label} for (name, _), label in zip(runs, labels)],
               "shared settings": shared}
    table = runs[0][1]["settings"].get("table", 1)
    judged = table3_steps_section(labels, aps) if table == 3 else verdicts_section(labels, aps)
    sections = [ap_section(labels, runs, aps, TABLES[table]), judged, checks_section(labels, runs),
                time_section(labels, runs)]
    runs_line = "runs: " + "; ".join(f"{label}: {name}" for (name, _), label in zip(runs, labels))
    shared_line = "settings of every run: " + ", ".join(_setting_text(n, v) for n, v in shared.items())
    summary["text"] = [runs_line, shared_line] + [line for s in sections for line in s["text"]]
    for section in sections:
        summary.update({k: v for k, v in section.items() if k != "text"})
    return summary
