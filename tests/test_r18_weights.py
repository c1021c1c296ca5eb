"""Table 3's R-18 weights: torchvision's ResNet-18 converted (tools/convert_torchvision_resnet.py) loads strictly
into the bottom-up of the COCO R18-FPN configs and, with their RGB input and torchvision's normalisation, computes
what torchvision computes; a student reading RGB gives its BGR teacher the images in the teacher's order."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_backbone, build_model

from pudet.config import get_pudet_cfg
from pudet.modeling.checkpoint import convert_torchvision_resnet
from pudet.modeling.self_distill import SelfDistillRCNN

from .helpers import REPO, load_script

R18_YAML = os.path.join(REPO, "configs", "COCO", "faster_rcnn_R_18_FPN_1x_baseline.yaml")


@pytest.fixture(scope="module")
def resnet18():
    """A randomly initialised torchvision ResNet-18 with random batch-norm statistics, in eval mode."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _cfg(*opts):
    return get_pudet_cfg(R18_YAML, ["MODEL.DEVICE", "cpu", *opts])


def test_converted_weights_load_strictly_into_the_r18_fpn_bottom_up(resnet18):
    bottom_up = build_backbone(_cfg()).bottom_up
    result = bottom_up.load_state_dict(convert_torchvision_resnet(resnet18.state_dict()), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(bottom_up.state_dict()) == len(convert_torchvision_resnet(resnet18.state_dict())) == 100


def test_the_tool_writes_what_model_weights_loads_and_torchvision_computes(resnet18, tmp_path, capsys):
    source, converted = str(tmp_path / "resnet18.pth"), str(tmp_path / "R-18.pkl")
    torch.save(resnet18.state_dict(), source)
    load_script("tools", "convert_torchvision_resnet.py").main([source, converted])
    assert "100 tensors of the ResNet bottom-up" in capsys.readouterr().out
    cfg = _cfg("MODEL.WEIGHTS", converted)
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    expected = convert_torchvision_resnet(resnet18.state_dict())
    loaded = model.backbone.bottom_up.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())
    # an RGB image as detectron2 feeds it (0-255, normalised by the config) vs as torchvision does (0-1, its stats)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 64, 96)).astype(np.float32))
    assert cfg.INPUT.FORMAT == "RGB"
    ours = model.backbone.bottom_up(((image - model.pixel_mean) / model.pixel_std)[None])["res5"]
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    trunk = torch.nn.Sequential(*list(resnet18.children())[:-2])
    with torch.no_grad():
        theirs = trunk(((image / 255 - mean) / std)[None])
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_a_teacher_of_the_other_channel_order_gets_its_order():
    image = torch.arange(3 * 2 * 2, dtype=torch.float32).view(3, 2, 2)
    inputs = [{"image": image, "height": 2, "width": 2}]
    rgb_student = SimpleNamespace(input_format="RGB", teacher=SimpleNamespace(input_format="BGR"))
    flipped = SelfDistillRCNN._teacher_inputs(rgb_student, inputs)
    assert torch.equal(flipped[0]["image"], image[[2, 1, 0]]) and flipped[0]["height"] == 2
    same = SimpleNamespace(input_format="BGR", teacher=SimpleNamespace(input_format="BGR"))
    assert SelfDistillRCNN._teacher_inputs(same, inputs) is inputs
