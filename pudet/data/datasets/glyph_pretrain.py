"""The built-in benchmark's own "ImageNet pretraining".

The paper's detectors start from an ImageNet-pretrained backbone; nothing can be downloaded here, so the
benchmark pretrains its backbone itself, on a classification task it builds: crops of every glyph class
(all ten digits, printed letters and symbols, shapes; :func:`pudet.data.datasets.glyphs.render_glyph_crops`),
as ImageNet holds COCO's classes and many others. The detector's bottom-up ResNet (the config's
``MODEL.RESNETS``) under a global average pool and a linear classifier is trained with AdamW; its weights are
saved as ``backbone.bottom_up.*``, the keys of the detector's FPN backbone, so that ``MODEL.WEIGHTS`` loads
them as it loads ImageNet weights.

Built once and cached beside the benchmark (``WILD_DIGITS.ROOT``), in a folder named by a hash of the
pretraining spec and the backbone's architecture: every benchmark seed and every run reuse it.
"""
import copy
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np
import torch
from detectron2.layers import ShapeSpec
from torch import nn
from torch.nn import functional as F

from ...modeling.backbone import build_basic_resnet_backbone
from .glyphs import GlyphBank, render_glyph_crops
from .wild_digits import default_root

__all__ = ["GlyphPretrainSpec", "pretrained_backbone", "resolve_pretrained_weights"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_ARCH_KEYS = ("DEPTH", "STEM_OUT_CHANNELS", "RES2_OUT_CHANNELS", "NORM")


@dataclasses.dataclass(frozen=True)
class GlyphPretrainSpec:
    """Everything that determines the pretrained weights, besides the backbone's architecture."""

    seed: int = 0
    num_images: int = 20000
    crop_size: int = 32
    iters: int = 2400
    batch_size: int = 64
    base_lr: float = 0.002
    weight_decay: float = 1e-4

    @classmethod
    def from_config(cls, cfg) -> "GlyphPretrainSpec":
        p = cfg.WILD_DIGITS.PRETRAIN
        return cls(seed=p.SEED, num_images=p.NUM_IMAGES, crop_size=p.CROP_SIZE, iters=p.ITERS,
                   batch_size=p.BATCH_SIZE, base_lr=p.BASE_LR, weight_decay=p.WEIGHT_DECAY)


def _architecture(cfg) -> dict:
    arch = {k: cfg.MODEL.RESNETS[k] for k in _ARCH_KEYS}
    arch.update(PIXEL_MEAN=list(cfg.MODEL.PIXEL_MEAN), PIXEL_STD=list(cfg.MODEL.PIXEL_STD))
    return arch


class _GlyphClassifier(nn.Module):
    """The detector's bottom-up ResNet, global average pooling, a linear layer over the glyph classes."""

    def __init__(self, cfg, num_classes):
        super().__init__()
        cfg = copy.deepcopy(cfg)
        cfg.defrost()
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
        cfg.MODEL.BACKBONE.FREEZE_AT = 0
        self.bottom_up = build_basic_resnet_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        self.linear = nn.Linear(self.bottom_up.output_shape()["res5"].channels, num_classes)
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(1, -1, 1, 1), False)

    def forward(self, images):
        """images: (N, H, W, 3) uint8, BGR, on any device -> logits (N, K)."""
        x = (images.to(self.pixel_mean.device).permute(0, 3, 1, 2).float() - self.pixel_mean) / self.pixel_std
        return self.linear(self.bottom_up(x)["res5"].mean(dim=(2, 3)))


def _accuracy(model, images, labels, batch_size=256) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum(
            (model(images[i: i + batch_size]).argmax(1).cpu() == labels[i: i + batch_size]).sum().item()
            for i in range(0, len(images), batch_size)
        )
    model.train()
    return correct / len(images)


def _train(cfg, spec: GlyphPretrainSpec, bank: GlyphBank):
    """Returns (the trained classifier, a summary dict)."""
    start, cpu = time.time(), time.process_time()
    images, labels = render_glyph_crops(spec.seed, spec.num_images, spec.crop_size, bank)
    # held-out crops of another seed, a tenth as many (at most 2000), to report the task's accuracy
    test_images, test_labels = render_glyph_crops(spec.seed + 1000, min(2000, max(1, spec.num_images // 10)),
                                                  spec.crop_size, bank)
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    test_images, test_labels = torch.from_numpy(test_images), torch.from_numpy(test_labels)
    render_s, render_cpu = time.time() - start, time.process_time() - cpu

    torch.manual_seed(spec.seed)
    model = _GlyphClassifier(cfg, len(GlyphBank.classes())).to(cfg.MODEL.DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.base_lr, weight_decay=spec.weight_decay)
    warmup = max(1, spec.iters // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: min(1.0, (it + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * it / spec.iters))
    )
    order = np.random.default_rng([spec.seed, 9])
    perm, cursor = order.permutation(len(images)), 0
    start, cpu = time.time(), time.process_time()
    for it in range(spec.iters):
        if cursor + spec.batch_size > len(perm):
            perm, cursor = order.permutation(len(images)), 0
        idx = torch.from_numpy(perm[cursor: cursor + spec.batch_size])
        cursor += spec.batch_size
        loss = F.cross_entropy(model(images[idx]), labels[idx].to(cfg.MODEL.DEVICE))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if (it + 1) % 200 == 0 or it + 1 == spec.iters:
            logger.info(f"glyph pretraining: iteration {it + 1}/{spec.iters}, loss {loss.item():.3f}")
    train_s, train_cpu = time.time() - start, time.process_time() - cpu
    summary = {
        "classes": len(GlyphBank.classes()),
        "train accuracy": _accuracy(model, images[:2000], labels[:2000]),
        "test accuracy": _accuracy(model, test_images, test_labels),
        # wall-clock and CPU seconds (all threads) of drawing the crops and of training
        "render seconds": round(render_s, 1),
        "render cpu seconds": round(render_cpu, 1),
        "train seconds": round(train_s, 1),
        "train cpu seconds": round(train_cpu, 1),
    }
    return model, summary


def _folder(cfg, root: str = None):
    """(the cache folder of ``cfg``'s pretraining, what names it)."""
    spec = GlyphPretrainSpec.from_config(cfg)
    blob = {"spec": dataclasses.asdict(spec), "architecture": _architecture(cfg), "format": _FORMAT_VERSION}
    digest = hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:10]
    return os.path.join(root or cfg.WILD_DIGITS.ROOT or default_root(), f"pretrain-{digest}"), blob


def pretrained_backbone(cfg, root: str = None) -> str:
    """The path of the glyph-pretrained bottom-up for ``cfg``'s backbone (``cfg.WILD_DIGITS.PRETRAIN``'s
    spec), pretraining it first if no complete build is cached under ``root`` (default: the benchmark's)."""
    final, blob = _folder(cfg, root)
    root = os.path.dirname(final)
    path = os.path.join(final, "model_final.pth")
    if os.path.isfile(os.path.join(final, "spec.json")):
        return path
    os.makedirs(root, exist_ok=True)
    logger.info(f"Pretraining the benchmark's backbone on glyph classification in {final} ...")
    tmp = tempfile.mkdtemp(prefix=".pretraining-", dir=root)
    try:
        model, summary = _train(cfg, GlyphPretrainSpec.from_config(cfg), GlyphBank())
        weights = {f"backbone.bottom_up.{k}": v.cpu() for k, v in model.bottom_up.state_dict().items()}
        torch.save({"model": weights}, os.path.join(tmp, "model_final.pth"))
        with open(os.path.join(tmp, "spec.json"), "w") as f:
            json.dump({**blob, "summary": summary}, f, indent=1)
        try:
            os.rename(tmp, final)
        except OSError:
            # another process finished the same pretraining first: keep its files
            if not os.path.isfile(os.path.join(final, "spec.json")):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    logger.info(f"Glyph pretraining done: {summary}")
    return path


def resolve_pretrained_weights(cfg) -> None:
    """With ``WILD_DIGITS.PRETRAIN.ENABLED`` and no ``MODEL.WEIGHTS``, sets ``MODEL.WEIGHTS`` (of the
    unfrozen ``cfg``) to :func:`pretrained_backbone`: the detector then starts from it, as the paper's
    starts from ImageNet weights. Explicit weights (a checkpoint to evaluate or fine-tune) win."""
    if cfg.WILD_DIGITS.PRETRAIN.ENABLED and not cfg.MODEL.WEIGHTS:
        cfg.MODEL.WEIGHTS = pretrained_backbone(cfg)
