"""The PU classifier N_pu (paper Section 3.1): a detectron2 backbone (the detector's ResNet bottom-up, or its
whole FPN), pooling and a linear head giving one raw score g(x) per image.

Two ways to pool (PU.POOLING):

* ``"avg"`` / ``"max"``: the feature maps are pooled globally into one vector (averaged over the
  PU.IN_FEATURES levels), then the linear head scores it: an image classifier's head;
* ``"score-max"``: the linear head scores every location of every level (a 1x1 convolution) and g(x) is
  the highest score: an image holds a known object if any location does (multiple-instance learning).
  On an FPN the levels share one channel space, as the detector's heads assume, so one head serves all.
"""
import logging
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone
from detectron2.structures import ImageList
from detectron2.utils.events import get_event_storage
from torch import nn

from ..pu.risk import RISKS, pu_risk_parts
from .checkpoint import load_checkpoint

__all__ = ["PUClassifier", "load_detector_backbone"]

logger = logging.getLogger(__name__)

POOLINGS = ("avg", "max", "score-max")


@META_ARCH_REGISTRY.register()
class PUClassifier(nn.Module):
    """Training input: a batch of dicts with ``image`` (C, H, W) and ``pu_label`` (1 = labeled/positive,
    0 = unlabeled); returns ``{"loss_<risk>": objective}`` and logs the risk and its parts.
    Inference: returns ``[{"pu_score": g(x)}]``, one per input (see :meth:`inference`)."""

    @configurable
    def __init__(self, *, backbone: nn.Module, in_features: Sequence[str], pixel_mean, pixel_std, risk: str,
                 prior: float, loss: str, risk_kwargs: Optional[Dict] = None, pooling: str = "avg"):
        """
        Args:
            risk: a key of ``RISKS``; ``risk_kwargs`` are passed to it (nnPU's ``beta`` and ``gamma``).
            prior: the class prior pi_p; loss: the surrogate loss of the risk ("sigmoid", "logistic").
        """
        super().__init__()
        if risk not in RISKS:
            raise ValueError(f"unknown PU risk '{risk}'; expected one of {sorted(RISKS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"PU.POOLING must be one of {POOLINGS}, got '{pooling}'")
        shapes = backbone.output_shape()
        unknown = [f for f in in_features if f not in shapes]
        if not in_features or unknown:
            raise ValueError(f"PU.IN_FEATURES {list(in_features)}: the backbone's features are {sorted(shapes)}")
        channels = {shapes[f].channels for f in in_features}
        if len(channels) != 1:
            raise ValueError(f"PU.IN_FEATURES {list(in_features)} have different channel counts {sorted(channels)}")
        self.pooling = pooling
        self.backbone = backbone
        self.in_features = tuple(in_features)
        self.head = nn.Linear(channels.pop(), 1)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)
        self.risk = risk
        self.prior = prior
        self.loss = loss
        self.risk_kwargs = dict(risk_kwargs or {})
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        return {
            "backbone": build_backbone(cfg),
            "in_features": cfg.PU.IN_FEATURES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "risk": cfg.PU.RISK,
            "prior": cfg.PU.PRIOR,
            "loss": cfg.PU.LOSS,
            "risk_kwargs": {"beta": cfg.PU.BETA, "gamma": cfg.PU.GAMMA} if cfg.PU.RISK == "nnpu" else {},
            "pooling": cfg.PU.POOLING,
        }

    @property
    def device(self):
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs) -> ImageList:
        """Normalizes and batches the input images, as ``GeneralizedRCNN.preprocess_image`` does."""
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def feature_maps(self, batched_inputs) -> List[torch.Tensor]:
        """The PU.IN_FEATURES maps, each (N, C, H_l, W_l)."""
        features = self.backbone(self.preprocess_image(batched_inputs).tensor)
        return [features[f] for f in self.in_features]

    def features(self, batched_inputs) -> torch.Tensor:
        """Globally pooled features, (N, C): averaged ("avg") or max-pooled ("max", "score-max") over each
        map, then averaged over the levels. The class-prior estimate reads these."""
        maps = self.feature_maps(batched_inputs)
        pooled = [m.mean(dim=(2, 3)) if self.pooling == "avg" else m.amax(dim=(2, 3)) for m in maps]
        return torch.stack(pooled).mean(dim=0)

    def scores(self, batched_inputs) -> torch.Tensor:
        """Raw scores g(x), (N,)."""
        if self.pooling != "score-max":
            return self.head(self.features(batched_inputs)).squeeze(1)
        # (N, C, H, W) -> (N, H*W, C) -> head -> (N, H*W); the best location of any level
        per_location = [self.head(m.flatten(2).transpose(1, 2)).squeeze(2) for m in self.feature_maps(batched_inputs)]
        return torch.cat(per_location, dim=1).amax(dim=1)

    def forward(self, batched_inputs):
        if not self.training:
            return self.inference(batched_inputs)
        scores = self.scores(batched_inputs)  # (N,)
        if not 0.0 < self.prior < 1.0:
            raise ValueError(f"PU.PRIOR must be set to a class prior in (0, 1) for training, got {self.prior}")
        labels = torch.tensor([int(x["pu_label"]) for x in batched_inputs], device=scores.device)
        pos, unl = scores[labels == 1], scores[labels == 0]
        objective, risk = RISKS[self.risk](pos, unl, self.prior, loss=self.loss, **self.risk_kwargs)
        with torch.no_grad():
            positive_part, negative_part = pu_risk_parts(pos, unl, self.prior, self.loss)
        storage = get_event_storage()
        storage.put_scalar("pu/risk", risk.item())
        storage.put_scalar("pu/positive_part", positive_part.item())
        storage.put_scalar("pu/negative_part", negative_part.item())
        return {f"loss_{self.risk}": objective}

    def inference(self, batched_inputs):
        """``[{"pu_score": scalar tensor}]``; an input the mapper could not read (``"unreadable"``) gets
        ``{"unreadable": reason}`` instead."""
        readable = [x for x in batched_inputs if "unreadable" not in x]
        scores = iter(self.scores(readable)) if readable else iter(())
        return [{"unreadable": x["unreadable"]} if "unreadable" in x else {"pu_score": next(scores)}
                for x in batched_inputs]


def load_detector_backbone(model: PUClassifier, checkpoint_path: str) -> None:
    """Initialises the PU classifier's backbone from a detector checkpoint. A classifier on the bottom-up
    ResNet alone takes a ``GeneralizedRCNN`` FPN checkpoint's ``backbone.bottom_up.*`` keys as
    ``backbone.*``; a classifier on the whole FPN (or a checkpoint of a plain ResNet backbone) takes the
    ``backbone.*`` keys as they are. Logs the backbone keys the checkpoint lacks."""
    weights = load_checkpoint(checkpoint_path)["model"]
    fpn_prefix, plain_prefix = "backbone.bottom_up.", "backbone."
    own = model.state_dict()
    own_is_fpn = any(k.startswith(fpn_prefix) for k in own)
    if any(k.startswith(fpn_prefix) for k in weights) and not own_is_fpn:
        mapped = {"backbone." + k[len(fpn_prefix):]: v for k, v in weights.items() if k.startswith(fpn_prefix)}
    else:
        mapped = {k: v for k, v in weights.items() if k.startswith(plain_prefix)}
    if not mapped:
        raise ValueError(f"{checkpoint_path} holds no backbone weights "
                         "(no 'backbone.bottom_up.*' or 'backbone.*' keys)")
    mismatched = [k for k, v in mapped.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    if mismatched:
        raise ValueError(f"{checkpoint_path}: backbone shapes differ from the PU classifier's for {mismatched[:5]}")
    mapped = {k: v for k, v in mapped.items() if k in own}
    result = model.load_state_dict(mapped, strict=False)
    missing = [k for k in result.missing_keys if k.startswith("backbone.")]
    logger.info(f"PU classifier backbone initialised from detector {checkpoint_path}: {len(mapped)} tensors loaded"
                + (f"; missing from the checkpoint: {missing}" if missing else "; no backbone key missing"))
