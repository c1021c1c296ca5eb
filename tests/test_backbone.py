import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

import pudet


def _cfg(name, width, depth=18):
    cfg = get_cfg()
    pudet.add_pudet_config(cfg)
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = width
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = width
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    return cfg


@pytest.mark.parametrize("depth", [18, 34])
def test_full_width_is_detectron2s_resnet(depth):
    ours = build_backbone(_cfg("build_basic_resnet_backbone", 64, depth))
    theirs = build_backbone(_cfg("build_resnet_backbone", 64, depth))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 64, 64)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert all(torch.equal(ours(x)[k], theirs(x)[k]) for k in ("res2", "res5"))


def test_half_width_fpn_shapes():
    cfg = _cfg("build_basic_resnet_fpn_backbone", 32)
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    fpn = build_backbone(cfg)
    channels = {k: s.channels for k, s in fpn.bottom_up.output_shape().items()}
    assert channels == {"res2": 32, "res3": 64, "res4": 128, "res5": 256}
    out = fpn(torch.randn(2, 3, 128, 128))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "p2": (2, 32, 32, 32), "p3": (2, 32, 16, 16), "p4": (2, 32, 8, 8), "p5": (2, 32, 4, 4), "p6": (2, 32, 2, 2)}


def test_other_depths_are_an_error():
    with pytest.raises(ValueError, match="ResNet-18/34"):
        build_backbone(_cfg("build_basic_resnet_backbone", 32, 50), ShapeSpec(channels=3))
