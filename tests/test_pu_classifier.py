import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from pudet import add_pudet_config
from pudet.modeling.pu_classifier import PUClassifier, load_detector_backbone

from .helpers import REPO, pu_cfg


def batch(labels, size=32):
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.randint(0, 255, (3, size, size), generator=g).to(torch.uint8), "pu_label": lab,
             "image_id": i} for i, lab in enumerate(labels)]


@pytest.mark.parametrize("risk", ["nnpu", "upu", "pn"])
def test_forward_backward_tiny_images(risk):
    cfg = pu_cfg()
    cfg.PU.RISK = risk
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model, PUClassifier)
    model.train()
    with EventStorage() as storage:
        losses = model(batch([1, 1, 0, 0, 0]))
        assert list(losses) == [f"loss_{risk}"]
        losses[f"loss_{risk}"].backward()
        logged = {k: v.latest() for k, v in storage.histories().items()}
    assert set(logged) == {"pu/risk", "pu/positive_part", "pu/negative_part"}
    if risk == "nnpu":
        expected = logged["pu/positive_part"] + max(logged["pu/negative_part"], 0.0)
        assert logged["pu/risk"] == pytest.approx(expected, rel=1e-5)
    elif risk == "upu":
        assert logged["pu/risk"] == pytest.approx(logged["pu/positive_part"] + logged["pu/negative_part"], rel=1e-5)
    assert model.head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())


def test_training_needs_a_prior_and_both_sides():
    cfg = pu_cfg()
    cfg.PU.PRIOR = -1.0
    model = build_model(cfg)
    model.train()
    with EventStorage(), pytest.raises(ValueError, match="PU.PRIOR"):
        model(batch([1, 0]))
    cfg.PU.PRIOR = 0.3
    model = build_model(cfg)
    model.train()
    with EventStorage(), pytest.raises(ValueError, match="unlabeled batch is empty"):
        model(batch([1, 1]))


def test_inference_scores_and_unreadable_passthrough():
    model = build_model(pu_cfg())
    model.eval()
    inputs = batch([0, 0, 0])
    inputs.insert(1, {"image_id": 9, "file_name": "x.jpg", "unreadable": "empty file"})
    with torch.no_grad():
        out = model(inputs)
        alone = model([inputs[2]])
    assert [list(o) for o in out] == [["pu_score"], ["unreadable"], ["pu_score"], ["pu_score"]]
    assert out[1]["unreadable"] == "empty file"
    assert out[2]["pu_score"].item() == pytest.approx(alone[0]["pu_score"].item(), abs=1e-5)  # batching changes nothing


def saved_detector(tmp_path):
    """A randomly initialised benchmark detector saved as a detectron2 checkpoint: (its state dict, path)."""
    det_cfg = get_cfg()
    add_pudet_config(det_cfg)
    det_cfg.merge_from_file(os.path.join(REPO, "configs", "WildDigits", "faster_rcnn_R18_FPN_teacher.yaml"))
    torch.manual_seed(1)
    det_state = build_model(det_cfg).state_dict()
    path = str(tmp_path / "det.pth")
    torch.save({"model": det_state, "iteration": 3}, path)
    return det_state, path


def test_init_from_detector_maps_bottom_up_keys(tmp_path):
    det_state, path = saved_detector(tmp_path)
    torch.manual_seed(2)
    model = build_model(pu_cfg())
    load_detector_backbone(model, path)
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, det_state["backbone.bottom_up." + k]), k
    with pytest.raises(ValueError, match="no backbone weights"):
        torch.save({"model": {"head.weight": torch.zeros(1)}}, str(tmp_path / "bad.pth"))
        load_detector_backbone(model, str(tmp_path / "bad.pth"))


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_pooling_of_the_feature_map(pooling):
    cfg = pu_cfg()
    cfg.PU.POOLING = pooling
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = batch([0, 0])
    with torch.no_grad():
        fmap = model.backbone(model.preprocess_image(inputs).tensor)[cfg.PU.IN_FEATURES[0]]  # (N, C, H, W)
        expected = fmap.mean(dim=(2, 3)) if pooling == "avg" else fmap.flatten(2).max(dim=2).values
        assert torch.allclose(model.features(inputs), expected, atol=1e-6)


def fpn_pu_cfg():
    cfg = pu_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_basic_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.PU.IN_FEATURES = ["p3", "p4"]
    cfg.PU.POOLING = "score-max"
    return cfg


def test_score_max_is_the_best_location_of_any_level():
    cfg = fpn_pu_cfg()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = batch([0, 0])
    with torch.no_grad():
        feats = model.backbone(model.preprocess_image(inputs).tensor)
        w, b = model.head.weight[0], model.head.bias[0]
        # by hand: w . f(x, y) + b at every location of p3 and p4, then the maximum per image
        expected = [max(float(torch.einsum("c,chw->hw", w, feats[f][i]).max() + b) for f in ("p3", "p4"))
                    for i in range(2)]
        got = model(inputs)
        # the pooled features for the prior: each level max-pooled, then averaged over levels
        pooled = (feats["p3"].amax(dim=(2, 3)) + feats["p4"].amax(dim=(2, 3))) / 2
        assert torch.allclose(model.features(inputs), pooled, atol=1e-6)
    assert [o["pu_score"].item() for o in got] == pytest.approx(expected, abs=1e-5)
    assert feats["p3"].shape[-1] == 2 * feats["p4"].shape[-1]


def test_fpn_classifier_takes_the_detectors_whole_backbone(tmp_path):
    det_state, path = saved_detector(tmp_path)
    torch.manual_seed(2)
    model = build_model(fpn_pu_cfg())
    load_detector_backbone(model, path)
    own = model.backbone.state_dict()
    assert any(k.startswith("fpn_lateral") for k in own)
    for k, v in own.items():
        assert torch.equal(v, det_state["backbone." + k]), k


def test_in_features_must_exist_and_share_channels():
    cfg = fpn_pu_cfg()
    cfg.PU.IN_FEATURES = ["p3", "res9"]
    with pytest.raises(ValueError, match="res9"):
        build_model(cfg)
    cfg = pu_cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4", "res5"]
    cfg.PU.IN_FEATURES = ["res4", "res5"]
    with pytest.raises(ValueError, match="different channel counts"):
        build_model(cfg)


def test_unknown_pooling_is_an_error():
    cfg = pu_cfg()
    cfg.PU.POOLING = "median"
    with pytest.raises(ValueError, match="PU.POOLING"):
        build_model(cfg)
