"""The region-level PU head: BBE, bags, MIL training, the crop views, extraction and the train workflow."""
import json
import os

import numpy as np
import pytest
import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Boxes, BoxMode
from scipy.stats import beta

from pudet.config import check_choices, get_pudet_cfg
from pudet.data import register_datasets
from pudet.data.mappers import ObjectCropMapper
from pudet.evaluation.pool_truth import load_pool_truth, positive_images
from pudet.evaluation.purifier import purifier_comparison, teacher_confidence
from pudet.modeling.region_pu import (
    Bags,
    HeadSchedule,
    RegionPUHead,
    cross_fit_scores,
    load_region_head,
    masked_max,
    save_region_head,
    score_bags,
    train_region_head,
)
from pudet.pu.prior import bbe_prior, bootstrap_draws
from pudet.purification.prior import estimate_region_prior
from pudet.purification.region_head import build_region_extractor, score_pool_regions, train_region_pu

from .helpers import TINY, WD_CONFIGS, load_script, tiny_opts


def test_masked_max_by_hand():
    scores = torch.tensor([[1.0, 5.0, -2.0], [3.0, 9.0, 0.5], [7.0, 8.0, 9.0]])
    valid = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    out = masked_max(scores, valid)
    assert out[:2].tolist() == [5.0, 3.0]
    assert out[2] < -1e3  # no valid region: never above any real score


def _mixture(prior, n_u, n_p, seed):
    """Scores of positives ~ Beta(6, 2), of negatives ~ Beta(2, 6); the unlabeled sample mixes them at ``prior``.
    Returns (positive scores, unlabeled scores)."""
    rng = np.random.default_rng(seed)
    n_pos = round(prior * n_u)
    unlabeled = np.concatenate([rng.beta(6, 2, n_pos), rng.beta(2, 6, n_u - n_pos)])
    return rng.beta(6, 2, n_p), unlabeled


@pytest.mark.parametrize("prior", [0.1, 0.25, 0.5])
def test_bbe_recovers_known_mixture_proportions(prior):
    """BBE's estimate lies within 0.03 of the truth on 3 draws each of 2000 positive and 5000 unlabeled
    scores."""
    for seed in range(3):
        estimate = bbe_prior(*_mixture(prior, 5000, 2000, seed))
        assert abs(estimate - prior) < 0.03, (seed, estimate)


@pytest.mark.parametrize("prior", [0.02, 0.05])
def test_bbe_at_small_priors_with_few_positives(prior):
    """With 400 positive and 2000 unlabeled scores (the benchmark's held-out counts), small priors are found
    within 0.025 on 3 draws each: the exact binomial bounds let BBE choose a small top bin, where the paper's
    one DKW term for every bin made it choose bins that hold negatives."""
    for seed in range(3):
        estimate = bbe_prior(*_mixture(prior, 2000, 400, seed))
        assert abs(estimate - prior) < 0.025, (seed, estimate)


def test_bbe_by_hand_on_a_pure_top_bin():
    """Positives score 1..10; the unlabeled sample holds 3 positive-like scores (10, 9, 8) and 7 below every
    positive: 3/10 of it is positive. q_u(c) / q_p(c) is 1 for c in {10, 9, 8} and falls to 3/10 at c = 1."""
    p = np.arange(1, 11, dtype=float)  # 10 positives
    u = np.array([10.0, 9.0, 8.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    # at c = 1 (all positives), k_p = 10 and k_u = 3: the bound of the ratio, the upper Clopper-Pearson limit of
    # 3 / 10 over the lower one of 10 / 10, is the smallest there
    upper_u, lower_p = beta.ppf(1 - 0.5 / 4, 4, 7), beta.ppf(0.5 / 4, 10, 1)
    assert lower_p == pytest.approx(0.125 ** (1 / 10))  # the lower limit of k = n is (delta / 4) ** (1 / n)
    assert upper_u / lower_p < upper_u / beta.ppf(0.5 / 4, 9, 2)  # below its bound at c = 2 (k_p = 9, k_u = 3)
    assert bbe_prior(p, u, delta=0.5) == pytest.approx(0.3)


def test_bootstrap_interval_holds_the_truth():
    """The 90% bootstrap interval of BBE (200 resamples) holds the true prior 0.1 on at least 16 of 20 draws of
    400 positive and 2000 unlabeled scores, and is narrower with ten times as many."""
    widths, covered = [], 0
    for seed in range(20):
        p, u = _mixture(0.1, 2000, 400, seed)
        low, high = np.quantile(bootstrap_draws(bbe_prior, p, u, resamples=200, seed=seed), [0.05, 0.95])
        covered += low <= 0.1 <= high
        widths.append(high - low)
    assert covered >= 16
    p, u = _mixture(0.1, 20000, 4000, 0)
    low, high = np.quantile(bootstrap_draws(bbe_prior, p, u, resamples=50, seed=0), [0.05, 0.95])
    assert high - low < 0.75 * np.median(widths)


def test_bootstrap_draws_are_the_estimator_on_resamples():
    """With one score per side every resample is the sample itself; with a constant estimator, the draws are it."""
    draws = bootstrap_draws(lambda p, u: float(p.sum() - u.sum()), [3.0], [1.0], resamples=5, seed=0)
    np.testing.assert_array_equal(draws, [2.0] * 5)
    draws = bootstrap_draws(lambda p, u: float(p.mean()), [0.0, 1.0], [5.0], resamples=400, seed=1)
    assert set(draws) <= {0.0, 0.5, 1.0} and abs(draws.mean() - 0.5) < 0.05


def _synthetic_bags(n, positive_fraction, seed, dim=6, regions=4):
    """Bags of Gaussian regions; a positive bag has one region whose first feature is shifted by +4."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(n, regions, dim)).astype(np.float16)
    positive = rng.random(n) < positive_fraction
    x[positive, rng.integers(regions), 0] += 4.0
    boxes = np.tile(np.arange(4, dtype=np.float32), (n, regions, 1))
    valid = np.ones((n, regions), bool)
    return Bags(np.arange(n), x, boxes, valid), positive


def test_region_prior_has_an_interval_and_warns_when_wide(caplog):
    """On bags whose positive region stands out (a quarter of U positive), the estimate and its 90% interval
    hold the truth; a warning width below the interval's width logs the advice to set PU.PRIOR by hand, one
    above it does not."""
    positive, _ = _synthetic_bags(300, 1.0, seed=1)
    unlabeled, truth = _synthetic_bags(1200, 0.25, seed=2)
    kwargs = {"estimator": "bbe", "repeats": 2, "schedule": HeadSchedule(iters=150, batch_bags=64), "resamples": 40}
    with caplog.at_level("WARNING", logger="pudet.purification.prior"):
        estimate = estimate_region_prior(positive, unlabeled, warn_width=1.0, **kwargs)
    low, high = estimate["interval"]
    assert estimate["interval_level"] == 0.9 and len(estimate["bbe_repeats"]) == 2
    assert low <= estimate["prior"] <= high and low <= truth.mean() <= high
    assert abs(estimate["prior"] - truth.mean()) < 0.03
    assert "set PU.PRIOR" not in caplog.text
    with caplog.at_level("WARNING", logger="pudet.purification.prior"):
        estimate_region_prior(positive, unlabeled, warn_width=(high - low) / 2, **kwargs)
    assert "set PU.PRIOR to it" in caplog.text


@pytest.mark.parametrize("risk", ["nnpu", "upu", "pn"])
def test_mil_head_learns_the_positive_region(risk):
    labeled, _ = _synthetic_bags(200, 1.0, 0)
    pool, truth = _synthetic_bags(400, 0.3, 1)
    head = train_region_head(labeled, pool, risk=risk, prior=0.3, schedule=HeadSchedule(iters=150, lr=0.05))
    from sklearn.metrics import roc_auc_score

    scores, regions = score_bags(head, pool)
    assert roc_auc_score(truth, scores) > 0.97
    # the region that makes a positive bag positive is the shifted one
    shifted = np.argmax(pool.features[:, :, 0].astype(np.float32), axis=1)
    assert (np.argmax(regions, axis=1)[truth] == shifted[truth]).mean() > 0.95


def test_cross_fit_scores_every_bag_out_of_fold():
    labeled, _ = _synthetic_bags(100, 1.0, 0)
    pool, truth = _synthetic_bags(200, 0.5, 1)
    p, u = cross_fit_scores(labeled, pool, risk="pn", prior=0.5, schedule=HeadSchedule(iters=150, lr=0.05))
    assert p.shape == (100,) and u.shape == (200,)
    from sklearn.metrics import roc_auc_score

    # a labeled-vs-unlabeled head ranks the pool's positives first, on bags it never saw
    assert roc_auc_score(truth, u) > 0.95


def test_teacher_confidence_reads_the_known_class_probabilities():
    logp = np.log(np.array([[[0.1, 0.2, 0.7], [0.6, 0.1, 0.3]], [[0.05, 0.05, 0.9], [0.9, 0.05, 0.05]]]))
    features = np.concatenate([np.zeros((2, 2, 3)), logp], axis=2).astype(np.float16)
    valid = np.array([[True, True], [True, False]])
    bags = Bags(np.arange(2), features, np.zeros((2, 2, 4), np.float32), valid)
    # 2 known classes + background (last); the second bag's only valid region has best known prob 0.05
    np.testing.assert_allclose(teacher_confidence(bags, 2), [0.6, 0.05], atol=2e-3)


def test_head_save_load_round_trip_and_refusal(tmp_path):
    head = RegionPUHead(5, hidden_dim=3)
    head.set_normalization(torch.arange(5.0), torch.full((5,), 2.0))
    path = str(tmp_path / "head.pth")
    save_region_head(head, path, prior=0.3, scales=[1.0], topk=2)
    loaded, info = load_region_head(path)
    x = torch.randn(4, 5)
    assert torch.equal(loaded(x), head.eval()(x))
    assert info["prior"] == 0.3 and info["topk"] == 2
    torch.save({"model": {}}, str(tmp_path / "other.pth"))
    with pytest.raises(ValueError, match="not a region PU head"):
        load_region_head(str(tmp_path / "other.pth"))


def test_logprob_head_reads_only_the_last_columns_and_round_trips(tmp_path):
    # features = 3 box-head values + 2 log-probs; a head reading the log-probs ignores the first three
    labeled, _ = _synthetic_bags(200, 1.0, 0, dim=5)
    pool, truth = _synthetic_bags(400, 0.3, 1, dim=5)
    for bags in (labeled, pool):  # move the signal (first feature) into the last column
        bags.features[:, :, [0, 4]] = bags.features[:, :, [4, 0]]
    head = train_region_head(labeled, pool, risk="nnpu", prior=0.3,
                             schedule=HeadSchedule(iters=150, lr=0.05, last_columns=2))
    assert head.in_dim == 2 and head.scorer.weight.shape == (1, 2)
    from sklearn.metrics import roc_auc_score

    scores, _ = score_bags(head, pool)
    assert roc_auc_score(truth, scores) > 0.97
    noisy = pool.features.copy()
    noisy[:, :, :3] = 100.0  # what the head does not read cannot change its scores
    np.testing.assert_array_equal(score_bags(head, Bags(pool.ids, noisy, pool.boxes, pool.valid))[0], scores)
    path = str(tmp_path / "head.pth")
    save_region_head(head, path, prior=0.3, scales=[1.0], topk=4)
    loaded, _ = load_region_head(path)
    np.testing.assert_array_equal(score_bags(loaded, pool)[0], scores)
    with pytest.raises(ValueError, match="in_dim 2"):
        RegionPUHead(5, last_columns=2)


def test_object_crop_zooms_on_the_object(tmp_path):
    """A white 20x12 box on a black 128x128 image: the crop holds it at 45-80% of the view's side (the box's
    longer side), and the same dict gives the same view."""
    import cv2

    img = np.zeros((128, 128, 3), np.uint8)
    img[30:42, 60:80] = 255
    path = str(tmp_path / "a.png")
    cv2.imwrite(path, img)
    dicts = ObjectCropMapper.crop_dicts(
        [{"file_name": path, "image_id": 7, "annotations": [{"bbox": [60, 30, 20, 12], "bbox_mode": BoxMode.XYWH_ABS}]},
         {"file_name": path, "image_id": 8, "annotations": []}], views=2)
    assert [d["image_id"] for d in dicts] == [14, 15]  # image 8 has no object
    mapper = ObjectCropMapper(size=64)
    for d in dicts:
        out = mapper(d)
        view = out["image"].numpy().astype(np.float32).mean(axis=0)  # (64, 64)
        assert out["height"] == out["width"] == 64
        bright = view > (view.max() + view.min()) / 2
        ys, xs = np.nonzero(bright)
        extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / 64
        assert 0.4 <= extent <= 0.85, extent
        assert torch.equal(mapper(d)["image"], out["image"])


def _region_cfg(tiny_root, out, detector):
    cfg = get_pudet_cfg(os.path.join(WD_CONFIGS, "pu_R18_region.yaml"), [
        *tiny_opts(tiny_root), "PU.INIT_FROM_DETECTOR", detector, "PU.HOLDOUT_FRACTION", "0.25", "PU.REGION.TOPK", "4",
        "PU.REGION.ITERS", "20", "PU.REGION.BATCH_BAGS", "4", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", out,
    ])
    register_datasets(cfg)
    return cfg


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    cfg = get_pudet_cfg(os.path.join(WD_CONFIGS, "faster_rcnn_R18_FPN_teacher.yaml"))
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("det") / "model_final.pth")
    torch.save({"model": GeneralizedRCNN(cfg).state_dict()}, path)
    return path


def test_select_without_a_detector_names_the_key_that_sets_it(tiny_benchmark, tiny_root, tmp_path):
    """The region head reads a detector's regions: select without one says to set PU.INIT_FROM_DETECTOR (not
    the student's MODEL.PUDET.TEACHER_WEIGHTS)."""
    head = str(tmp_path / "pu" / "model_final.pth")
    os.makedirs(os.path.dirname(head))
    save_region_head(RegionPUHead(6), head, prior=0.3, scales=[1.0, 0.5], topk=4)
    tool = load_script("tools", "purify_net.py")
    for missing in ("", str(tmp_path / "gone" / "model_final.pth")):
        with pytest.raises(FileNotFoundError) as error:
            tool.main(tool.parse_args(["select", "--weights", head, "--config-file",
                                       os.path.join(WD_CONFIGS, "pu_R18_region.yaml"), *tiny_opts(tiny_root),
                                       "PU.INIT_FROM_DETECTOR", missing, "PU.REGION.TOPK", "4",
                                       "OUTPUT_DIR", str(tmp_path / "pu")]))
        assert f"detector weights '{missing}' not found (PU.INIT_FROM_DETECTOR)" in str(error.value)
        assert "TEACHER_WEIGHTS" not in str(error.value)


def test_extractor_bags_match_the_detector(tiny_benchmark, tiny_root, detector, tmp_path):
    cfg = _region_cfg(tiny_root, str(tmp_path), detector)
    extractor = build_region_extractor(cfg)
    det = extractor.detector
    assert extractor.feature_dim == cfg.MODEL.ROI_BOX_HEAD.FC_DIM + cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1
    image = torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = extractor([{"image": image, "height": 256, "width": 256}])[0]
    assert out["features"].shape == (8, extractor.feature_dim) and out["valid"].all()
    # scale 1: the detector's own top-4 proposals, features through its box head, boxes x2 (256 / 128)
    with torch.no_grad():
        images = det.preprocess_image([{"image": image}])
        feats = det.backbone(images.tensor)
        proposals, _ = det.proposal_generator(images, feats, None)
        top = proposals[0].proposal_boxes[:4]
        expected = extractor.box_features(feats, [top])
    torch.testing.assert_close(out["features"][:4], expected)
    torch.testing.assert_close(out["boxes"][:4], top.tensor * 2)
    # log-probabilities: each valid region's last K + 1 columns exponentiate to a distribution
    probs = out["features"][:, -(cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1):].exp().sum(dim=1)
    torch.testing.assert_close(probs, torch.ones(8))


@pytest.mark.slow
def test_train_select_and_rerun(tiny_benchmark, tiny_root, detector, tmp_path):
    cfg = _region_cfg(tiny_root, str(tmp_path), detector)
    results = train_region_pu(cfg)
    pu = results["pu"]
    n_pos = round(TINY.pos_fraction * TINY.num_pool)
    assert pu["labeled"] == round(0.25 * TINY.num_labeled) * 2  # held-out L images and their crops
    assert pu["unlabeled"] == round(0.25 * TINY.num_pool)
    assert 0.0 <= pu["AUC"] <= 100.0
    with open(os.path.join(str(tmp_path), "prior.json")) as f:
        prior = json.load(f)
    assert prior["estimator"] == "bbe" and prior["prior"] == pytest.approx(prior["bbe"])
    # the median of PU.REGION.PRIOR_REPEATS cross-fits (of other folds and head seeds)
    assert len(prior["bbe_repeats"]) == cfg.PU.REGION.PRIOR_REPEATS == 5
    assert prior["bbe"] == pytest.approx(float(np.median(prior["bbe_repeats"])))
    assert results["prior"] == prior
    features = os.path.join(str(tmp_path), "features")
    assert sorted(os.listdir(features)) == ["crops", "labeled", "wild_digits_pool"]
    stamps = {f: os.path.getmtime(os.path.join(features, "wild_digits_pool", "chunks", f))
              for f in os.listdir(os.path.join(features, "wild_digits_pool", "chunks"))}
    scored = score_pool_regions(cfg, os.path.join(str(tmp_path), "model_final.pth"), "wild_digits_pool",
                                features=features)
    # the pool's bags come from the cache, untouched
    assert {f: os.path.getmtime(os.path.join(features, "wild_digits_pool", "chunks", f)) for f in stamps} == stamps
    assert scored["scores"].shape == (TINY.num_pool,)
    np.testing.assert_allclose(scored["scores"], scored["regions"].max(axis=1))
    assert prior["job"]["features"] == "logprobs"
    # the image head's record of what a prior depends on (datasets, held-out part, estimator, detector), and more
    assert prior["job"]["unlabeled"] == ["wild_digits_pool"] and prior["job"]["detector"] == detector
    # a second training run reuses the estimated prior; another feature setting is another job: refused, as the
    # image head refuses one, until its prior.json is deleted
    again = train_region_pu(cfg)
    assert again["prior"] == prior
    other = cfg.clone()
    other.PU.REGION.FEATURES = "box+logprobs"
    with pytest.raises(ValueError, match=r"another job \(features \(logprobs there, box\+logprobs now\)\)"):
        train_region_pu(other)
    os.remove(os.path.join(str(tmp_path), "prior.json"))
    anew = train_region_pu(other)
    assert anew["prior"]["job"]["features"] == "box+logprobs"
    bad = cfg.clone()
    bad.PU.REGION.FEATURES = "boxes"
    with pytest.raises(ValueError, match="PU.REGION.FEATURES must be one of"):
        check_choices(bad)
    truth = positive_images(load_pool_truth("wild_digits_pool"))
    assert sum(truth.values()) == n_pos
    rows = purifier_comparison(scored["pool"], scored["pool"], truth, head_scores=scored["scores"],
                               head_name="head", prior=0.4, loss="logistic", schedule=HeadSchedule(iters=5),
                               num_classes=5, k=8)
    assert [r["selection"] for r in rows][0] == "head" and rows[-1]["AUC"] == 50.0
    assert rows[-1]["precision@K"] == pytest.approx(100 * n_pos / TINY.num_pool)


@pytest.mark.slow
def test_purify_net_train_and_select_with_the_region_head(tiny_benchmark, tiny_root, detector, tmp_path):
    tool = load_script("tools", "purify_net.py")
    out = str(tmp_path / "pu")
    opts = ["--config-file", os.path.join(WD_CONFIGS, "pu_R18_region.yaml"), *tiny_opts(tiny_root),
            "PU.INIT_FROM_DETECTOR", detector, "PU.HOLDOUT_FRACTION", "0.25", "PU.REGION.TOPK", "4",
            "PU.REGION.ITERS", "10", "PU.REGION.BATCH_BAGS", "4", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", out]
    results = tool.main(tool.parse_args(["train", *opts]))
    assert set(results) == {"pu", "prior"}
    with open(os.path.join(out, "eval_results.json")) as f:
        assert json.load(f)["pu"]["unlabeled"] == round(0.25 * TINY.num_pool)
    summary = tool.main(tool.parse_args(["select", "--topk", "5", *opts]))
    sel = os.path.join(out, "select")
    with open(os.path.join(sel, "selected.json")) as f:
        selected = json.load(f)
    assert len(selected["images"]) == 5 and selected["summary"]["rule"] == "top-5 by the region head"
    assert "AUC" not in summary and "comparison" not in summary  # select never reads the pool's truth
    # against the truth, afterwards: the head beside what the same region features allow
    evaluate = load_script("tools", "evaluate_pool_truth.py")
    measured = evaluate.main(evaluate.parse_args(["selection", "--selection", sel, "--output-dir",
                                                  str(tmp_path / "truth"), *opts]))
    assert measured["K"] == 5
    rows = {r["selection"]: r for r in measured["comparison"]}
    assert rows["region head, nnpu (this selection)"]["AUC"] == pytest.approx(100 * measured["AUC"])
    assert rows["random (expected)"]["precision@K"] == pytest.approx(100 * TINY.pos_fraction)
    with open(os.path.join(str(tmp_path / "truth"), "scores.tsv")) as f:
        assert f.readline() == "image_id\tscore\tfile_name\tpositive\n"
    with np.load(os.path.join(sel, "region_scores.npz")) as z:
        assert z["boxes"].shape == (TINY.num_pool, 5, 4) and z["scores"].shape == (TINY.num_pool, 5)
        # each image's best region's score is its image score
        best = dict(zip(z["ids"].tolist(), z["scores"][:, 0].tolist()))
    for im in selected["images"]:
        assert im["score"] == pytest.approx(best[im["image_id"]], rel=1e-5)
    # box-level purification: the teacher labels U^P and each box gets its region PU score
    label_out = str(tmp_path / "labels")
    diagnostics = tool.main(tool.parse_args([
        "label", "--weights", detector, "--selection", os.path.join(sel, "selected.json"), "--output-dir", label_out,
        "--pu-weights", os.path.join(out, "model_final.pth"), "--pu-thresh", "0.5", "--min-score", "0.0",
        *opts[2:], "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]))
    with open(os.path.join(label_out, "pseudo_labels.json")) as f:
        coco = json.load(f)
    assert coco["annotations"] and all("pu_score" in a for a in coco["annotations"])
    purified = diagnostics["box purified"]
    assert purified["pu_score_thresh"] == 0.5
    for plain, kept in zip(diagnostics["taus"], purified["taus"]):
        assert kept["boxes"] == sum(a["score"] >= plain["tau"] and a["pu_score"] >= 0.5 for a in coco["annotations"])
        assert kept["recall"] <= plain["recall"]


def test_box_pu_scorer_scores_each_detection_with_the_head(tiny_root, detector, tmp_path):
    from pudet.modeling.region_pu import BoxPUScorer

    cfg = _region_cfg(tiny_root, str(tmp_path), detector)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    extractor = build_region_extractor(cfg)
    det = extractor.detector
    torch.manual_seed(0)
    head = RegionPUHead(extractor.feature_dim, hidden_dim=4)
    scorer = BoxPUScorer(det, head)
    image = torch.randint(0, 255, (3, 128, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    inputs = [{"image": image, "height": 256, "width": 256}]
    out = scorer(inputs)[0]["instances"]
    plain = det(inputs)[0]["instances"]
    assert len(out) > 0
    torch.testing.assert_close(out.pred_boxes.tensor, plain.pred_boxes.tensor)  # the detector's own detections
    with torch.no_grad():
        feats = det.backbone(det.preprocess_image(inputs).tensor)
        expected = head(extractor.box_features(feats, [Boxes(out.pred_boxes.tensor / 2)]))
    torch.testing.assert_close(out.pu_scores, expected, rtol=1e-4, atol=1e-4)


def test_pseudo_boxes_dropped_by_region_pu_score(tmp_path):
    from detectron2.data import DatasetCatalog

    from pudet.data.datasets import pseudo_dataset_name, register_pseudo_labeled

    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10},
                       {"id": 2, "file_name": "b.jpg", "height": 10, "width": 10}],
            "annotations": [{"id": i + 1, "image_id": img, "bbox": [0, 0, 5, 5], "area": 25, "category_id": 1,
                             "score": s, "pu_score": p, "iscrowd": 0}
                            for i, (img, s, p) in enumerate([(1, 0.9, 1.5), (1, 0.8, -0.5), (2, 0.95, -2.0),
                                                             (2, 0.3, 3.0)])],
            "categories": [{"id": 1, "name": "digit 0"}]}
    path = str(tmp_path / "pseudo.json")
    with open(path, "w") as f:
        json.dump(coco, f)
    name = pseudo_dataset_name(path, 0.5, 0.0)
    register_pseudo_labeled(name, path, "", 0.5, False, 0.0)
    dicts = DatasetCatalog.get(name)
    # image 1 keeps its first box only; image 2's confident box is purified away and its other is below tau
    assert [(d["image_id"], [a["score"] for a in d["annotations"]]) for d in dicts] == [(1, [0.9])]
    plain = pseudo_dataset_name(path, 0.5)
    register_pseudo_labeled(plain, path, "", 0.5, False)
    assert sum(len(d["annotations"]) for d in DatasetCatalog.get(plain)) == 3
    del coco["annotations"][0]["pu_score"]
    with open(path, "w") as f:
        json.dump(coco, f)
    register_pseudo_labeled(pseudo_dataset_name(path, 0.5, 1.0), path, "", 0.5, False, 1.0)
    with pytest.raises(ValueError, match="no region PU scores"):
        DatasetCatalog.get(pseudo_dataset_name(path, 0.5, 1.0))
