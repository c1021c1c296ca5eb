"""ResNet-18/34 backbones of any width, for the built-in benchmark's CPU budget.

detectron2's ``build_resnet_backbone`` insists on RES2_OUT_CHANNELS = 64 for BasicBlock ResNets; these
builders honour MODEL.RESNETS.STEM_OUT_CHANNELS and RES2_OUT_CHANNELS (a half-width ResNet-18 has 4x
fewer convolution FLOPs), and are otherwise the same network: detectron2's BasicStem, BasicBlock and
ResNet, its FPN with a LastLevelMaxPool top block.
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import FPN, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem

__all__ = ["build_basic_resnet_backbone", "build_basic_resnet_fpn_backbone"]

_BLOCKS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}


@BACKBONE_REGISTRY.register()
def build_basic_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """A ResNet-18 or -34 (MODEL.RESNETS.DEPTH) whose stage widths start at MODEL.RESNETS.RES2_OUT_CHANNELS
    and double per stage."""
    r = cfg.MODEL.RESNETS
    if r.DEPTH not in _BLOCKS:
        raise ValueError("build_basic_resnet_backbone builds ResNet-18/34 (BasicBlock); "
                         f"MODEL.RESNETS.DEPTH is {r.DEPTH}")
    stem = BasicStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=r.NORM)
    stages, in_channels, out_channels = [], r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    for idx, num_blocks in enumerate(_BLOCKS[r.DEPTH]):
        stages.append(ResNet.make_stage(
            block_class=BasicBlock, num_blocks=num_blocks,
            stride_per_block=[1 if idx == 0 else 2] + [1] * (num_blocks - 1),
            in_channels=in_channels, out_channels=out_channels, norm=r.NORM,
        ))
        in_channels, out_channels = out_channels, out_channels * 2
    return ResNet(stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_basic_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:func:`build_basic_resnet_backbone` under detectron2's FPN (P2-P6), as ``build_resnet_fpn_backbone``."""
    return FPN(
        bottom_up=build_basic_resnet_backbone(cfg, input_shape), in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS, norm=cfg.MODEL.FPN.NORM, top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
