import json

import pytest

from wild_demo import summary as summ
from wild_demo.checks import CHECKS, Comparison, check_table3
from wild_demo.settings import check_settings, parse_args

from .helpers import load_script

SEPARABLE, FOOLED = CHECKS["separable"], CHECKS["fooled"]
T_2 = 2.919986  # t_{0.95, 2}
T_4 = 2.131847  # t_{0.95, 4}


def settings(seed, **changed):
    """A run's settings as run_demo.py's results.json records them (its arguments)."""
    return {"output_dir": f"output/demo_s{seed}", "stage": None, "quick": False, "seed": seed, "num_labeled": 200,
            "num_pool": 2000, "num_val": 300, "pos_fraction": 0.25, "known_classes": "0,1,2,3,4",
            "pretrain_iters": 2400, "teacher_iters": 500, "teacher_lr": 0.04, "pu_iters": 100,
            "rows": "baseline,sd,pu_0.5,teacher_2x,sd_2x", "device": "cpu", "jobs": 2, "student_iters": 500,
            "student_lr": 0.04, **changed}


def check(text, measured, value, verdict):
    return {"check": text, "measured": measured, "value": value, "verdict": verdict}


ITERATIONS = {"baseline": 500, "sd": 500, "pu_0.5": 1000, "teacher_2x": 1000, "sd_2x": 1000}


def results(seed, ap, checks, minutes, per_iter, **changed):
    """A small results.json of a fold: ``ap`` of labeled only, SD, U^P at 0.5 and the two controls at equal
    compute, in that order, as the report writes them."""
    return {"settings": settings(seed, **changed), "checks": checks, "ap": dict(zip(ITERATIONS, ap)),
            "iterations": ITERATIONS,
            "time": {"teacher seconds/iteration": per_iter, "stages": {}, "total": 60 * minutes,
                     "total in teacher iterations": 60 * minutes / per_iter, "untimed steps": []}}


def cells(text, first):
    """The cells after the first of the table row whose first cell starts with ``first``."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {first}"))
    return [c.strip() for c in row.strip("|").split("|")][1:]


def three_seeds():
    """Seeds 0, 1, 2 (seed 1 ran with --jobs 1). SD - labeled only: 1, 2, 3 (holds); U^P - SD: 1, 1, 0.5 (holds);
    U^P - SD at equal iterations: 0.5, 0, -1 (undecided); U^P - labeled only at equal iterations: -2, -2.5, -2
    (reversed). The pool separable (reported) on all three, the teacher fooled on two."""
    return [
        ("output/demo", results(0, [40.0, 41.0, 42.0, 44.0, 41.5],
                                [check(SEPARABLE, "AUC 96.0", 96.0, "reported"),
                                 check(FOOLED, "0.70 boxes/img", 0.7, "holds")], 10.0, 0.125)),
        ("output/demo_s1", results(1, [38.0, 40.0, 41.0, 43.5, 41.0],
                                   [check(SEPARABLE, "AUC 95.5", 95.5, "reported"),
                                    check(FOOLED, "0.20 boxes/img", 0.2, "does not hold")], 12.0, 0.131, jobs=1)),
        ("output/demo_s2", results(2, [39.0, 42.0, 42.5, 44.5, 43.5],
                                   [check(SEPARABLE, "AUC 97.1", 97.1, "reported"),
                                    check(FOOLED, "0.90 boxes/img", 0.9, "holds")], 11.0, 0.128)),
    ]


def test_t_quantiles_and_the_one_sided_bound():
    assert summ.t_quantile(2) == pytest.approx(T_2, abs=1e-6)
    assert summ.t_quantile(4) == pytest.approx(T_4, abs=1e-6)
    assert summ.t_quantile(1) == pytest.approx(6.313752, abs=1e-6)
    # margins 1, 2, 3: mean 2, s 1, bound 2 - 2.920 / sqrt(3)
    stats = summ.margin_statistics([1.0, 2.0, 3.0])
    assert stats == pytest.approx({"n": 3, "mean": 2.0, "std": 1.0, "lower": 2 - T_2 / 3 ** 0.5,
                                   "upper": 2 + T_2 / 3 ** 0.5})
    assert stats["lower"] == pytest.approx(0.31414, abs=1e-5) and summ.verdict(stats) == "holds"
    assert summ.verdict(summ.margin_statistics([-1.0, -2.0, -3.0])) == "reversed"
    assert summ.verdict(summ.margin_statistics([1.0, -1.0, 0.5])) == "undecided"
    # 5 folds of margins 0.5, 0.7, 0.9, 0.6, 0.8: mean 0.7, s = sqrt(0.1 / 4) = 0.158, bound 0.7 - 2.132 * 0.0707
    five = summ.margin_statistics([0.5, 0.7, 0.9, 0.6, 0.8])
    assert five["std"] == pytest.approx(0.158114, abs=1e-6)
    assert five["lower"] == pytest.approx(0.7 - T_4 * 0.158114 / 5 ** 0.5, abs=1e-5) == pytest.approx(0.54926, abs=1e-5)
    # a fold without the margin is left out; one fold has no bound
    assert summ.margin_statistics([None, 1.0, 3.0]) == pytest.approx(
        {"n": 2, "mean": 2.0, "std": 2 ** 0.5, "lower": 2 - 6.313752, "upper": 2 + 6.313752})
    one = summ.margin_statistics([1.5, None])
    assert one == {"n": 1, "mean": 1.5, "std": None, "lower": None, "upper": None}
    assert summ.verdict(one) == "needs 2 folds"
    # with no spread, the mean decides
    assert summ.verdict(summ.margin_statistics([0.5, 0.5])) == "holds"
    assert summ.verdict(summ.margin_statistics([0.0, 0.0])) == "undecided"


def test_judge_and_row_statistics_take_any_rows_and_comparisons():
    aps = [{"a": 10.0, "b": 9.0, "c": 9.5}, {"a": 11.0, "b": 9.0, "c": 8.0}, {"a": 12.0, "b": 9.0}]
    judged = summ.judge([Comparison("a > b", "a", ("b",)), Comparison("a > b and c", "a", ("b", "c")),
                         Comparison("d > a", "d", ("a",))], aps)
    assert [(j["comparison"], j["margins"], j["verdict"]) for j in judged] == [
        ("a > b", [1.0, 2.0, 3.0], "holds"), ("a > b and c", [0.5, 2.0, 3.0], "undecided")]  # d: never measured
    assert judged[1]["mean"] == pytest.approx(11 / 6)
    assert summ.row_statistics(aps, ["a", "c"]) == [
        {"row": "a", "AP": [10.0, 11.0, 12.0], "mean": 11.0, "std": 1.0},
        {"row": "c", "AP": [9.5, 8.0, None], "mean": 8.75, "std": pytest.approx(1.06066, abs=1e-5)}]


def test_summary_of_three_folds():
    s = summ.summarize(three_seeds())
    assert [r["label"] for r in s["runs"]] == ["seed 0", "seed 1", "seed 2"]
    # what every run shares is said once; where and how a run ran (output dir, --jobs, --rows) is not compared
    assert s["shared settings"]["known_classes"] == "0,1,2,3,4" and s["shared settings"]["num_labeled"] == 200
    assert not {"seed", "output_dir", "jobs", "rows", "stage"} & set(s["shared settings"])
    ap = {r["row"]: (r["AP"], r["mean"], r["std"]) for r in s["ap"]}
    assert ap["baseline"] == ([40.0, 38.0, 39.0], 39.0, 1.0)
    assert ap["pu_0.5"] == ([42.0, 41.0, 42.5], pytest.approx(41.8333, abs=1e-4), pytest.approx(0.763763, abs=1e-6))
    verdicts = {v["comparison"]: v for v in s["verdicts"]}
    assert list(verdicts) == ["SD > labeled only", "U^P > SD at tau 0.5", "U^P > SD at equal iterations, tau 0.5",
                              "U^P > labeled only at equal iterations, tau 0.5"]  # the rows these folds trained
    assert [(v["margins"], v["verdict"]) for v in verdicts.values()] == [
        ([1.0, 2.0, 3.0], "holds"), ([1.0, 1.0, 0.5], "holds"), ([0.5, 0.0, -1.0], "undecided"),
        ([-2.0, -2.5, -2.0], "reversed")]
    assert verdicts["U^P > SD at tau 0.5"]["lower"] == pytest.approx(5 / 6 - T_2 * 0.288675 / 3 ** 0.5, abs=1e-5)
    assert verdicts["U^P > labeled only at equal iterations, tau 0.5"]["upper"] == pytest.approx(
        -13 / 6 + T_2 * 0.288675 / 3 ** 0.5, abs=1e-5)
    assert s["split"] == []
    checks = {c["check"]: (c["all runs"], c["verdict"]) for c in s["checks"]}
    assert checks == {
        SEPARABLE: ("95.5 to 97.1", "reported"),  # no pass mark: its range
        FOOLED: ("holds in 2 of 3 runs", "does not hold"),  # holding on 2 of 3 seeds is not holding
    }
    assert [t["minutes"] for t in s["time"]] == [10.0, 12.0, 11.0]
    assert [round(t["teacher iterations"]) for t in s["time"]] == [4800, 5496, 5156]
    text = "\n".join(s["text"])
    assert "runs: seed 0: output/demo; seed 1: output/demo_s1; seed 2: output/demo_s2" in text
    assert cells(text, "training data") == ["thr", "iters", "AP seed 0", "AP seed 1", "AP seed 2", "mean ± std"]
    assert cells(text, "Labeled only (baseline)") == ["-", "500", "40.0", "38.0", "39.0", "39.0 ± 1.0"]
    assert cells(text, "+ PU selected (U^P)") == ["0.5", "1000", "42.0", "41.0", "42.5", "41.8 ± 0.8"]
    assert cells(text, "SD > labeled only") == ["+1.0", "+2.0", "+3.0", "+2.00", "1.00", "+0.31", "holds"]
    assert cells(text, "U^P > labeled only at equal") == ["-2.0", "-2.5", "-2.0", "-2.17", "0.29", "-2.65",
                                                          "reversed"]
    assert cells(text, FOOLED) == ["holds (0.70 boxes/img)", "does not hold (0.20 boxes/img)",
                                   "holds (0.90 boxes/img)", "holds in 2 of 3 runs", "does not hold"]
    assert cells(text, "the teacher's seconds per iteration") == ["0.125", "0.131", "0.128"]
    assert "n = 3 folds" in text


def test_run_labels_say_what_differs():
    labels, shared = summ.run_labels([settings(0), settings(1), settings(0, known_classes="5,6,7,8,9")])
    assert labels == ["seed 0, known 0,1,2,3,4", "seed 1, known 0,1,2,3,4", "seed 0, known 5,6,7,8,9"]
    assert "known_classes" not in shared and shared["teacher_iters"] == 500
    # runs of the same settings (e.g. the same seed twice) are numbered
    assert summ.run_labels([settings(0), settings(0, output_dir="output/again")])[0] == ["run 1", "run 2"]
    # a run from before --pretrain-iters existed trained its teachers from scratch
    old = {k: v for k, v in settings(0).items() if k != "pretrain_iters"}
    assert summ.run_labels([old, settings(0)])[0] == ["pretrain iters 0", "pretrain iters 2400"]


def test_runs_of_other_rows_are_refused():
    runs = three_seeds()
    del runs[2][1]["ap"]["sd_2x"]
    with pytest.raises(SystemExit, match=r"output/demo_s2 lacks sd_2x, which output/demo has"):
        summ.summarize(runs)
    del runs[2][1]["ap"]  # a report from before the rows had keys
    with pytest.raises(SystemExit, match=r"output/demo_s2's results.json comes from an older report"):
        summ.summarize(runs)


def test_folders_without_results_say_what_to_run(tmp_path):
    finished, unfinished, other = (str(tmp_path / name) for name in ("demo", "demo_s1", "elsewhere"))
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "results.json").write_text(json.dumps(three_seeds()[0][1]))
    check_settings(parse_args(["--output-dir", unfinished, "--seed", "1", "--num-labeled", "100"]))
    (tmp_path / "elsewhere").mkdir()
    assert summ.load_runs([finished])[0][1]["settings"]["seed"] == 0
    with pytest.raises(SystemExit) as error:
        summ.load_runs([finished, unfinished, other])
    assert str(error.value).splitlines() == [
        f"{unfinished} has no results.json: its run is unfinished; `.venv/bin/python projects/WildDigits/run_demo.py "
        f"--output-dir {unfinished} --seed 1 --num-labeled 100` finishes it (finished steps are skipped)",
        f"{other} has no results.json and no settings.json: not a demo output folder "
        f"(`.venv/bin/python projects/WildDigits/run_demo.py --output-dir {other}` makes one)",
    ]


def test_main_prints_and_writes_markdown_and_data(tmp_path, capsys):
    folders = []
    for name, r in three_seeds():
        folder = tmp_path / name.split("/")[-1]
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(r))
        folders.append(str(folder))
    out = tmp_path / "summary" / "seeds.md"
    load_script("projects", "WildDigits", "summarize_runs.py").main([*folders, "--output", str(out)])
    printed = capsys.readouterr().out
    assert "reversed" in printed and f"Summary: {out} and {tmp_path / 'summary' / 'seeds.json'}" in printed
    markdown = out.read_text()
    assert markdown.startswith("# wild-digits benchmark: 3 folds of `make demo`\n\n")
    assert cells(markdown, "training data")[2] == "AP seed 0"
    data = json.loads((tmp_path / "summary" / "seeds.json").read_text())
    assert [c["verdict"] for c in data["checks"]] == ["reported", "does not hold"]
    assert [v["verdict"] for v in data["verdicts"]] == ["holds", "holds", "undecided", "reversed"]
    assert [r["folder"] for r in data["runs"]] == folders and "text" not in data


def table3_folds():
    """Five folds of Table 3 (seeds 0-4) with some of its rows. (i) + hint - the student alone: 0.5, -0.5, 1, -1,
    0 (undecided); (ii) the default L_kdr - Eq. 15's: 1, 2, 3, 2, 2 (holds); (ii) all three terms - the teacher:
    -1, -2, -1.5, -1, -1.5 (reversed). The larger teacher is 4 above the student alone on every fold."""
    baseline = [40.0, 41.0, 39.0, 40.0, 42.0]
    rows = {"large_teacher": [b + 4 for b in baseline], "baseline": baseline,
            "large_hint": [b + m for b, m in zip(baseline, (0.5, -0.5, 1.0, -1.0, 0.0))],
            "same_all": [b + m for b, m in zip(baseline, (-1.0, -2.0, -1.5, -1.0, -1.5))]}
    rows["same_eq15"] = [a - m for a, m in zip(rows["same_all"], (1.0, 2.0, 3.0, 2.0, 2.0))]
    folds = []
    for seed in range(5):
        ap = {k: v[seed] for k, v in rows.items()}
        folds.append((f"output/demo_table3_s{seed}", {
            "settings": settings(seed, table=3, rows=",".join(rows), output_dir=f"output/demo_table3_s{seed}"),
            "ap": ap, "iterations": {k: 500 for k in rows}, "checks": check_table3(ap),
            "time": {"teacher seconds/iteration": 0.2, "stages": {}, "total": 6000.0,
                     "total in teacher iterations": 30000.0, "untimed steps": [],
                     "larger teacher seconds/iteration": 0.26, "larger teacher / teacher per iteration": 1.3}}))
    return folds


def test_summary_of_five_folds_of_table3():
    s = summ.summarize(table3_folds())
    assert s["shared settings"]["table"] == 3
    ap = {r["row"]: (r["mean"], r["std"]) for r in s["ap"]}
    assert list(ap) == ["large_teacher", "baseline", "large_hint", "same_all", "same_eq15"]
    assert ap["baseline"] == (pytest.approx(40.4), pytest.approx(1.140175, abs=1e-6))
    steps = {v["comparison"]: v for v in s["verdicts"]}
    assert list(steps) == ["(i) larger teacher: + hint > the student alone",
                           "(ii) the same size: the default L_kdr > Eq. 15's",
                           "(ii) the same size: all three terms > the teacher"]  # the steps these rows measure
    hint, kdr, three = steps.values()
    assert hint["margins"] == pytest.approx([0.5, -0.5, 1.0, -1.0, 0.0]) and hint["verdict"] == "undecided"
    assert (hint["mean"], hint["std"]) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.790569, abs=1e-6))
    assert kdr["lower"] == pytest.approx(2.0 - T_4 * 0.707107 / 5 ** 0.5, abs=1e-5) and kdr["verdict"] == "holds"
    assert three["upper"] == pytest.approx(-1.4 + T_4 * 0.418330 / 5 ** 0.5, abs=1e-5)
    assert three["verdict"] == "reversed"
    assert "split" not in s
    assert [(c["all runs"], c["verdict"]) for c in s["checks"]] == [("holds in 5 of 5 runs", "holds")]
    text = "\n".join(s["text"])
    assert cells(text, "(ii) R18h <- R18h (the same size): + hint + L_kdc + L_kdr as Eq. 15 reads") == [
        "-", "500", "38.0", "37.0", "34.5", "37.0", "38.5", "37.0 ± 1.5"]
    assert cells(text, "(ii) the same size: the default") == ["+1.0", "+2.0", "+3.0", "+2.0", "+2.0", "+2.00",
                                                              "0.71", "+1.33", "holds"]
    assert cells(text, "the larger teacher's seconds per iteration") == ["1.30"] * 5
    # folds of Table 1 and Table 3 are not one table
    with pytest.raises(SystemExit, match="the runs' rows differ"):
        summ.summarize([three_seeds()[0], *table3_folds()[1:]])
