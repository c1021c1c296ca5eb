import json

import pytest

from wild_demo import summary as summ
from wild_demo.checks import CHECKS
from wild_demo.settings import check_settings, parse_args

from .helpers import load_script

SD, PU_RU = "self-distillation beats the baseline", "PU-selected beats randomly selected at tau 0.5"
SEPARABLE, FOOLED = CHECKS["separable"], CHECKS["fooled"]


def settings(seed, **changed):
    """A run's settings as run_demo.py's results.json records them (its arguments)."""
    return {"output_dir": f"output/demo_s{seed}", "stage": None, "quick": False, "seed": seed, "num_labeled": 200,
            "num_pool": 2000, "num_val": 300, "pos_fraction": 0.25, "known_classes": "0,1,2,3,4",
            "pretrain_iters": 2400, "teacher_iters": 500, "teacher_lr": 0.04, "pu_iters": 100,
            "rows": "baseline,baseline_seed+1,pu_0.5,pu_0.9", "device": "cpu", "jobs": 2, "student_iters": 200,
            "student_lr": 0.02, **changed}


def claim(name, margin, spread):
    return {"claim": name, "verdict": "holds" if margin > spread else "does not hold", "margin": margin,
            "spread": spread, "evidence": f"margin {margin:+.1f}, noise spread {spread:.1f}"}


def check(text, measured, value, verdict):
    return {"check": text, "measured": measured, "value": value, "verdict": verdict}


def results(seed, ap, claims, checks, minutes, per_iter, spread, **changed):
    """A small results.json of a run of ``seed``: the labeled-only row, its training SEED + 1, U^P at tau 0.5 and
    0.9 (``ap``: their APs in that order), as the report writes them."""
    names = [("Labeled only (baseline)", "-", "-", "-"), (f"Labeled only, training SEED {seed + 1} (noise)", "-", "-",
                                                           "-"),
             ("+ PU selected (U^P)", 200, 0.5, 310), ("+ PU selected (U^P)", 200, 0.9, 150)]
    return {"settings": settings(seed, **changed), "checks": checks,
            "headers": ["training data", "n_u", "thr", "# boxes", "AP", "AP50", "AP75", "APs", "APm"],
            "rows": [[*row, a, 70.0, 40.0, 35.0, 30.0] for row, a in zip(names, ap)],
            "noise": {"labeled-only AP": [ap[0], ap[1], ap[0] + spread], "spread": spread}, "claims": claims,
            "time": {"teacher seconds/iteration": per_iter, "stages": {}, "total": 60 * minutes,
                     "untimed steps": []}}


def cells(text, first):
    """The cells after the first of the table row whose first cell starts with ``first``."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {first}"))
    return [c.strip() for c in row.strip("|").split("|")][1:]


def three_seeds():
    """Seeds 0, 1, 2 (seed 1 ran with --jobs 1): each claim holds on 2 of them, all claims only on seed 0;
    the pool separable (reported) on all three, the teacher fooled on two."""
    return [
        ("output/demo", results(0, [40.0, 40.5, 41.0, 42.0], [claim(SD, 1.2, 0.8), claim(PU_RU, 0.9, 0.8)],
                                [check(SEPARABLE, "AUC 96.0", 96.0, "reported"),
                                 check(FOOLED, "0.70 boxes/img", 0.7, "holds")], 10.0, 0.125, 0.8)),
        ("output/demo_s1", results(1, [38.0, 38.2, 41.5, 39.0], [claim(SD, 1.5, 0.3), claim(PU_RU, 0.3, 0.3)],
                                   [check(SEPARABLE, "AUC 95.5", 95.5, "reported"),
                                    check(FOOLED, "0.20 boxes/img", 0.2, "does not hold")], 12.0, 0.131, 0.3,
                                   jobs=1)),
        ("output/demo_s2", results(2, [39.0, 39.6, 40.0, 42.5], [claim(SD, 0.2, 0.6), claim(PU_RU, 1.0, 0.6)],
                                   [check(SEPARABLE, "AUC 97.1", 97.1, "reported"),
                                    check(FOOLED, "0.90 boxes/img", 0.9, "holds")], 11.0, 0.128, 0.6)),
    ]


def test_summary_of_three_seeds():
    s = summ.summarize(three_seeds())
    assert [r["label"] for r in s["runs"]] == ["seed 0", "seed 1", "seed 2"]
    # what every run shares is said once; where and how a run ran (output dir, --jobs, --rows) is not compared
    assert s["shared settings"]["known_classes"] == "0,1,2,3,4" and s["shared settings"]["num_labeled"] == 200
    assert not {"seed", "output_dir", "jobs", "rows", "stage"} & set(s["shared settings"])
    # rows match across seeds with their training SEED said relative to the run's seed
    ap = {(r["row"], r["thr"]): (r["AP"], r["mean"]) for r in s["ap"]}
    assert ap[("Labeled only (baseline)", "-")] == ([40.0, 38.0, 39.0], pytest.approx(39.0))
    assert ap[("Labeled only, training SEED +1 (noise)", "-")] == ([40.5, 38.2, 39.6], pytest.approx(39.4333, abs=1e-4))
    assert ap[("+ PU selected (U^P)", 0.9)] == ([42.0, 39.0, 42.5], pytest.approx(41.1667, abs=1e-4))
    assert [n["spread"] for n in s["noise"]] == [0.8, 0.3, 0.6]
    assert [(c["claim"], c["holds in"]) for c in s["claims"]] == [(SD, 2), (PU_RU, 2)]
    checks = {c["check"]: (c["all runs"], c["verdict"]) for c in s["checks"]}
    assert checks == {
        SEPARABLE: ("95.5 to 97.1", "reported"),  # no pass mark: its range
        FOOLED: ("holds in 2 of 3 runs", "does not hold"),  # holding on 2 of 3 seeds is not holding
    }
    assert (s["every claim"]["runs"], s["every claim"]["all runs"], s["every claim"]["verdict"]) == (
        [2, 1, 1], "0 of 2 claims hold on every run; all 2 hold on 1 of 3 runs", "does not hold")
    assert [t["minutes"] for t in s["time"]] == [10.0, 12.0, 11.0]
    text = "\n".join(s["text"])
    assert "runs: seed 0: output/demo; seed 1: output/demo_s1; seed 2: output/demo_s2" in text
    assert cells(text, SD) == ["holds (+1.2 > 0.8)", "holds (+1.5 > 0.3)", "no (+0.2)", "holds in 2 of 3"]
    assert cells(text, FOOLED) == ["holds (0.70 boxes/img)", "does not hold (0.20 boxes/img)",
                                   "holds (0.90 boxes/img)", "holds in 2 of 3 runs", "does not hold"]
    assert cells(text, "every claim") == ["2 of 2 hold", "1 of 2 hold", "1 of 2 hold",
                                          "0 of 2 claims hold on every run; all 2 hold on 1 of 3 runs: does not hold"]
    assert cells(text, "training data") == ["thr", "AP seed 0", "AP seed 1", "AP seed 2", "mean"]
    assert cells(text, "Labeled only, training SEED +1") == ["-", "40.5", "38.2", "39.6", "39.4"]
    assert cells(text, "the teacher's seconds per iteration") == ["0.125", "0.131", "0.128"]


def test_every_claim_holds_only_where_it_holds_on_every_run():
    runs = three_seeds()
    for _, r in runs:
        r["claims"] = [claim(SD, 1.0, 0.5), claim(PU_RU, 2.0, 0.5)]
    every = summ.summarize(runs)["every claim"]
    assert (every["all runs"], every["verdict"]) == ("2 of 2 claims hold on every run; all 2 hold on 3 of 3 runs",
                                                     "holds")
    runs[1][1]["claims"][1] = claim(PU_RU, 0.5, 0.5)  # a tie with the noise is not beyond it
    every = summ.summarize(runs)["every claim"]
    assert (every["all runs"], every["verdict"]) == (
        "1 of 2 claims hold on every run; all 2 hold on 2 of 3 runs", "does not hold")
    runs[1][1]["claims"][1] = claim(PU_RU, 2.0, 0.5)
    runs[1][1]["noise"]["spread"] = None  # a run whose noise was not measured cannot say "beyond the noise"
    assert summ.summarize(runs)["every claim"]["verdict"] == "does not hold"


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
    del runs[2][1]["rows"][3]
    with pytest.raises(SystemExit, match=r"output/demo_s2 lacks \+ PU selected \(U\^P\) \(thr 0.9\), which "
                                         r"output/demo has"):
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
    assert "holds in 2 of 3" in printed and f"Summary: {out} and {tmp_path / 'summary' / 'seeds.json'}" in printed
    markdown = out.read_text()
    assert markdown.startswith("# wild-digits benchmark: 3 runs of `make demo`\n\n")
    assert cells(markdown, "training data")[1] == "AP seed 0" and "0 of 2 claims hold on every run" in markdown
    data = json.loads((tmp_path / "summary" / "seeds.json").read_text())
    assert [c["verdict"] for c in data["checks"]] == ["reported", "does not hold"]
    assert data["every claim"]["verdict"] == "does not hold"
    assert [r["folder"] for r in data["runs"]] == folders and "text" not in data
