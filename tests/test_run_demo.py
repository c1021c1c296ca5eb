import pytest

from .helpers import load_script


@pytest.fixture(scope="module")
def demo():
    return load_script("projects", "WildDigits", "run_demo.py")


def test_claims_are_checked_on_the_rows_ap(demo):
    ap = {"baseline": 40.0, "sd": 40.5, "random_0.5": 40.2, "pu_0.5": 40.1, "random_0.9": 39.0, "pu_0.9": 40.0}
    claims = {c["claim"]: (c["verdict"], c["evidence"]) for c in demo.check_claims(ap)}
    assert claims == {
        "self-distillation beats the baseline": ("holds", "AP 40.5 vs 40.0"),
        "PU-selected beats randomly selected at tau 0.5": ("does not hold", "AP 40.1 vs 40.2"),
        "PU-selected at tau 0.5 beats the baseline": ("holds", "AP 40.1 vs 40.0"),
        "PU-selected beats randomly selected at tau 0.9": ("holds", "AP 40.0 vs 39.0"),
        # a tie is not a win
        "PU-selected at tau 0.9 beats the baseline": ("does not hold", "AP 40.0 vs 40.0"),
    }
    # rows without results are left out
    claims = demo.check_claims({"baseline": 1.0, "sd": 2.0})
    assert [c["claim"] for c in claims] == ["self-distillation beats the baseline"]


def test_rows_option(demo, capsys):
    assert demo.parse_args([]).rows.split(",") == [r[0] for r in demo.ROWS]
    assert demo.parse_args(["--rows", "sd,pu_0.9"]).rows == "sd,pu_0.9"
    with pytest.raises(SystemExit):
        demo.parse_args(["--rows", "sd,pu_0.7"])
    assert "unknown rows ['pu_0.7']" in capsys.readouterr().err


@pytest.mark.slow
def test_report_reads_the_stages_summaries(demo, tiny_benchmark, tmp_path, capsys):
    """The report tabulates what the stages wrote (files made here by hand), and nothing else."""
    import json
    import os

    _, folder = tiny_benchmark
    args = demo.parse_args(["--output-dir", str(tmp_path), "--rows", "baseline,pu_0.5"])
    p = demo.paths(args)

    def write(path, obj):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(obj, f)

    bbox = {"AP": 40.0, "AP50": 60.0, "AP75": 42.0, "APs": 41.0, "APm": 30.0}
    write(os.path.join(p["teacher"], "eval_results.json"), {"bbox": bbox})
    write(os.path.join(p["students"], "baseline", "eval_results.json"), {"bbox": {**bbox, "AP": 41.0}})
    write(os.path.join(p["students"], "pu_0.5", "eval_results.json"), {"bbox": {**bbox, "AP": 42.5}})
    taus = [{"tau": t, "images": 400, "boxes": b, "precision": pr, "recall": r}
            for t, b, pr, r in ((0.5, 900, 0.3, 0.6), (0.7, 600, 0.4, 0.5), (0.9, 300, 0.6, 0.4))]
    purified = [{**r, "boxes": r["boxes"] // 2, "precision": r["precision"] + 0.2, "recall": r["recall"] - 0.1}
                for r in taus]
    write(os.path.join(p["labels"], "pu", "diagnostics.json"),
          {"taus": taus, "box purified": {"pu_score_thresh": 0.0, "taus": purified}})
    ranking = {"AUC": 0.8, "precision@K": 0.65, "recall@K": 0.52}
    write(os.path.join(p["select"], "selected.json"), {"summary": {**ranking, "AUC": 0.56}})
    comparison = [{"selection": name, "AUC": auc, "precision@K": 60.0, "recall@K": 48.0}
                  for name, auc in (("region head, nnpu (this selection)", 80.0), ("oracle", 84.0))]
    comparison.append({"selection": "random (expected)", "AUC": 50.0, "precision@K": 25.0, "recall@K": 20.0})
    write(os.path.join(p["select_region"], "selected.json"),
          {"summary": {**ranking, "pool positive fraction": 0.25, "comparison": comparison}})
    write(os.path.join(p["select_confidence"], "selected.json"), {"summary": {**ranking, "AUC": 0.7}})
    write(os.path.join(p["pu_region"], "prior.json"), {"prior": 0.248, "estimator": "bbe", "elkan-noto": 0.52})
    write(os.path.join(p["pu"], "prior.json"), {"prior": 0.6, "estimator": "bbe"})
    with open(os.path.join(folder, "pool_truth.json")) as f:
        pool = json.load(f)
    coco = {"images": pool["images"][:2], "annotations": [], "categories": pool["categories"]}
    for name in ("random", "pu"):
        coco["images"] = [{**im, "file_name": os.path.join(folder, "pool", os.path.basename(im["file_name"]))}
                          for im in pool["images"][:2]]
        write(os.path.join(p["labels"], name, "pseudo_labels.json"), coco)
    with open(os.path.join(p["select_region"], "score_histogram.png"), "wb") as f:
        f.write(b"png")
    os.makedirs(p["logs"], exist_ok=True)

    demo.stage_report(args, p)
    with open(os.path.join(str(tmp_path), "results.json")) as f:
        results = json.load(f)
    assert [r[0] for r in results["selection_rows"]] == [
        "image head N_pu, nnPU (the paper's)", "region head, nnpu (this selection)", "oracle",
        "teacher's best box score (U^C)", "random (expected)"]
    assert [r[1] for r in results["selection_rows"]] == pytest.approx([56.0, 80.0, 84.0, 70.0, 50.0])
    assert results["box_purification"] == [
        ["as labelled", 0.5, 900, 0.3, 0.6], ["as labelled", 0.9, 300, 0.6, 0.4],
        ["box-purified (region PU score >= 0)", 0.5, 450, 0.5, 0.5],
        ["box-purified (region PU score >= 0)", 0.9, 150, 0.8, pytest.approx(0.3)]]
    assert results["claims"] == [{"claim": "PU-selected at tau 0.5 beats the baseline", "verdict": "holds",
                                  "evidence": "AP 42.5 vs 41.0"}]
    out = capsys.readouterr().out
    assert "estimated 0.248 (bbe on the region head's out-of-fold scores; Elkan-Noto there 0.520)" in out
