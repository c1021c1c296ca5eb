"""The benchmark's own "ImageNet pretraining": a glyph classifier's bottom-up, loaded as detector weights."""
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg

import pudet
from pudet.data.datasets import pretrained_backbone, resolve_pretrained_weights
from pudet.data.datasets.glyph_pretrain import _folder
from pudet.engine import DetectionTrainer

from .helpers import REPO


def _cfg(root, *opts):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "WildDigits", "faster_rcnn_R18_FPN_teacher.yaml"))
    cfg.merge_from_list([
        "WILD_DIGITS.ROOT", root, "WILD_DIGITS.PRETRAIN.NUM_IMAGES", "32", "WILD_DIGITS.PRETRAIN.CROP_SIZE", "32",
        "WILD_DIGITS.PRETRAIN.ITERS", "3", "WILD_DIGITS.PRETRAIN.BATCH_SIZE", "8", *opts,
    ])
    return cfg


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("pretrain"))
    cfg = _cfg(root)
    return cfg, root, pretrained_backbone(cfg)


def test_weights_load_into_the_detectors_bottom_up(pretrained):
    cfg, _, path = pretrained
    weights = torch.load(path, map_location="cpu")["model"]
    detector = DetectionTrainer.build_model(cfg)
    expected = {f"backbone.bottom_up.{k}": v.shape for k, v in detector.backbone.bottom_up.state_dict().items()}
    assert {k: v.shape for k, v in weights.items()} == expected
    DetectionCheckpointer(detector).load(path)
    loaded = detector.backbone.bottom_up.stem.conv1.weight
    assert torch.equal(loaded, weights["backbone.bottom_up.stem.conv1.weight"])


def test_built_once_deterministic_and_keyed_by_spec_and_architecture(pretrained, tmp_path):
    cfg, root, path = pretrained
    mtime = os.path.getmtime(path)
    assert pretrained_backbone(cfg) == path and os.path.getmtime(path) == mtime
    again = pretrained_backbone(_cfg(str(tmp_path)))
    assert os.path.basename(os.path.dirname(again)) == os.path.basename(os.path.dirname(path))
    a, b = torch.load(path)["model"], torch.load(again)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    for opts in (["WILD_DIGITS.PRETRAIN.SEED", "1"], ["MODEL.PIXEL_STD", "[32.0, 32.0, 32.0]"]):
        assert _folder(_cfg(root, *opts))[0] != os.path.dirname(path)


def test_resolve_sets_weights_only_when_enabled_and_unset(pretrained):
    cfg, root, path = pretrained
    for enabled, weights, expected in ((False, "", ""), (True, "", path), (True, "teacher.pth", "teacher.pth")):
        c = _cfg(root, "WILD_DIGITS.PRETRAIN.ENABLED", str(enabled), "MODEL.WEIGHTS", weights)
        resolve_pretrained_weights(c)
        assert c.MODEL.WEIGHTS == expected
