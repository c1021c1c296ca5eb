"""Self-distillation on expanded data (paper Section 3.2): a student Faster R-CNN FPN trained with its usual
losses plus hints and ground-truth-bounded distillation from a frozen teacher.

    L = L_det + gamma * L_hint + lambda * (L_kdc + L_kdr)                                          (Eq. 8)

The student *is* the meta-architecture: :class:`SelfDistillRCNN` subclasses ``GeneralizedRCNN``, so its
``backbone``/``proposal_generator``/``roi_heads`` keep detectron2's names and ``MODEL.WEIGHTS`` (e.g. an
ImageNet-pretrained backbone, or a plain detector checkpoint) initialises the student exactly as it would a
``GeneralizedRCNN``. The adaptation layers phi_i (3x3 convs, student FPN channels -> teacher FPN channels) live
under ``adapters``; where the channel counts match they start as the identity.

The teacher, a ``GeneralizedRCNN`` built from ``MODEL.PUDET.TEACHER_CONFIG`` with weights
``MODEL.PUDET.TEACHER_WEIGHTS``, is held *outside* the module tree: it is in no ``state_dict`` (checkpoints
hold the student and adapters only; ``MODEL.WEIGHTS`` and ``--resume`` can never overwrite it, even through
detectron2's suffix-matching of Caffe2 checkpoints), in no ``parameters()`` (never in the optimizer, nor in
DDP's gradient reduction), and ``model.train()`` does not reach it, so it stays in eval mode; its parameters
have ``requires_grad=False`` and it runs under ``no_grad``. Device moves (``model.to``) do reach it.
"""
import logging
from typing import Dict, List, NamedTuple

import torch
from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, StandardROIHeads
from detectron2.structures import Boxes
from detectron2.utils.events import get_event_storage
from fvcore.nn import smooth_l1_loss, weight_init
from torch import nn

from .distill_losses import hint_loss, imitation_masks, kd_cls_loss, kd_reg_bounded_loss, kd_reg_loss, teacher_correct
from .frozen import build_frozen_detector

__all__ = ["SelfDistillRCNN", "build_teacher"]

logger = logging.getLogger(__name__)

# MODEL.PUDET.KDR_MODE: "min", Eq. 15 as written (the nearer of the teacher's and the ground truth's deltas is
# the target); "bounded", the ground truth is the target wherever the student is not better than the teacher
KDR_MODES = ("min", "bounded")
# MODEL.PUDET.KDR_NORMALIZER: what L_kdr is averaged over
KDR_NORMALIZERS = ("foreground", "sampled")


class _TeacherTargets(NamedTuple):
    """What one training step's box distillation knows of each of the teacher's sampled proposals, (R,) each."""

    gt_classes: torch.Tensor  # its ground-truth class, K = background
    fg: torch.Tensor  # bool: in the foreground (a known class)
    q: torch.Tensor  # bool: q_i of Eq. 13, the teacher's argmax class is gt_classes


def build_teacher(cfg) -> GeneralizedRCNN:
    """The student's frozen teacher, described by ``cfg``'s ``MODEL.PUDET.TEACHER_CONFIG`` (default: the
    student's own config) and ``TEACHER_WEIGHTS``."""
    return build_frozen_detector(cfg, cfg.MODEL.PUDET.TEACHER_CONFIG, cfg.MODEL.PUDET.TEACHER_WEIGHTS,
                                 keys=("MODEL.PUDET.TEACHER_CONFIG", "MODEL.PUDET.TEACHER_WEIGHTS"))


@META_ARCH_REGISTRY.register()
class SelfDistillRCNN(GeneralizedRCNN):
    """Student ``GeneralizedRCNN`` + frozen teacher + adaptation layers (see the module docstring).

    Training returns the student's detectron2 losses and, each already weighted, ``loss_hint``
    (gamma * L_hint), ``loss_kdc`` (lambda * L_kdc) and ``loss_kdr`` (lambda * L_kdr) for the parts that are
    on. Diagnostics go to the event storage: ``distill/mask_fraction_<level>`` (share of masked locations),
    ``distill/q_fraction`` (share of teacher proposals the teacher classifies correctly),
    ``distill/kdr_teacher_nearer`` and ``distill/kdr_student_worse`` (which target L_kdr has). Inference is the
    student's. With detectron2's ``StandardROIHeads``, the student's box head runs once per step, on its own
    sampled proposals and the teacher's together (the same losses as two passes, for the cost of one).
    """

    @configurable
    def __init__(self, *, teacher: GeneralizedRCNN, hint_features: List[str], hint_weight: float,
                 kd_weight: float, temperature: float, imitation_psi: float, hint_on: bool, kdc_on: bool,
                 kdr_on: bool, kdr_beta: float, kdr_mode: str, kdr_margin: float, kdr_normalizer: str, **kwargs):
        super().__init__(**kwargs)
        self._teacher = (teacher,)  # a tuple: outside the module tree (state_dict, parameters, train())
        formats = {teacher.input_format, self.input_format}
        if len(formats) > 1 and formats != {"RGB", "BGR"}:
            raise ValueError(f"the student reads {self.input_format} images and its teacher {teacher.input_format}: "
                             "distillation converts between RGB and BGR only (INPUT.FORMAT)")
        self.hint_features = list(hint_features)
        self.hint_weight = hint_weight
        self.kd_weight = kd_weight
        self.temperature = temperature
        self.kdr_beta = kdr_beta
        self.kdr_mode, self.kdr_margin, self.kdr_normalizer = kdr_mode, kdr_margin, kdr_normalizer
        self.imitation_psi = imitation_psi
        self.hint_on, self.kdc_on, self.kdr_on = hint_on, kdc_on, kdr_on
        self.adapters = None
        if hint_on:
            s_shape, t_shape = self.backbone.output_shape(), teacher.backbone.output_shape()
            missing = [f for f in self.hint_features if f not in s_shape or f not in t_shape]
            if missing:
                raise ValueError(f"hint levels {missing} are not features of both student and teacher backbones")
            self.adapters = nn.ModuleDict()
            for f in self.hint_features:
                conv = nn.Conv2d(s_shape[f].channels, t_shape[f].channels, kernel_size=3, padding=1)
                if conv.in_channels == conv.out_channels:
                    # the identity: a student that starts from the teacher's weights starts with L_hint = 0,
                    # instead of random adapters whose hint gradients first scramble its features
                    nn.init.dirac_(conv.weight)
                    nn.init.zeros_(conv.bias)
                else:
                    weight_init.c2_msra_fill(conv)
                self.adapters[f] = conv

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        p = cfg.MODEL.PUDET
        if p.KDR_MODE not in KDR_MODES:
            raise ValueError(f"MODEL.PUDET.KDR_MODE must be one of {sorted(KDR_MODES)}, got '{p.KDR_MODE}'")
        if p.KDR_NORMALIZER not in KDR_NORMALIZERS:
            raise ValueError(f"MODEL.PUDET.KDR_NORMALIZER must be one of {sorted(KDR_NORMALIZERS)}, got "
                             f"'{p.KDR_NORMALIZER}'")
        ret.update(
            teacher=build_teacher(cfg),
            # the hint levels are the RPN's: their anchors define the imitation masks
            hint_features=cfg.MODEL.RPN.IN_FEATURES,
            hint_weight=p.HINT_WEIGHT,
            kd_weight=p.KD_WEIGHT,
            temperature=p.TEMPERATURE,
            imitation_psi=p.IMITATION_PSI,
            hint_on=p.HINT_ON,
            kdc_on=p.KDC_ON,
            kdr_on=p.KDR_ON,
            kdr_beta=p.KDR_BETA,
            kdr_mode=p.KDR_MODE,
            kdr_margin=p.KDR_MARGIN,
            kdr_normalizer=p.KDR_NORMALIZER,
        )
        return ret

    @property
    def teacher(self) -> GeneralizedRCNN:
        return self._teacher[0]

    def _apply(self, fn, *args, **kwargs):
        # device and dtype moves reach the teacher too, although it is not a submodule
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def forward(self, batched_inputs: List[Dict[str, torch.Tensor]]):
        if not self.training:
            return self.inference(batched_inputs)
        if "instances" not in batched_inputs[0]:
            raise ValueError("SelfDistillRCNN trains on images with (pseudo-)labels: 'instances' is missing")
        images = self.preprocess_image(batched_inputs)
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        box_distillation = self.kdc_on or self.kdr_on
        one_pass = box_distillation and self._one_box_head_pass()
        if one_pass:
            # the ROI heads' training forward, its box head run below on these and the teacher's proposals at once
            sampled = self.roi_heads.label_and_sample_proposals(proposals, gt_instances)
        else:
            _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)

        teacher = self.teacher
        with torch.no_grad():
            t_images = images if self._same_preprocessing() else teacher.preprocess_image(
                self._teacher_inputs(batched_inputs))
            t_features = teacher.backbone(t_images.tensor)
        losses = {}
        if self.hint_on:
            losses["loss_hint"] = self.hint_weight * self._hint_loss(features, t_features, gt_instances)
        if box_distillation:
            t_sampled, t_predictions = self._teacher_boxes(t_images, t_features, gt_instances)
            targets = self._teacher_targets(t_sampled, t_predictions[0])
            used = self._used_teacher_proposals(targets)
            t_boxes = [p.proposal_boxes[u] for p, u in zip(t_sampled, used.split([len(p) for p in t_sampled]))]
            if one_pass:
                own, s_predictions = self._student_box_predictions(features, [[p.proposal_boxes for p in sampled],
                                                                              t_boxes])
                detector_losses = self._detector_losses(features, sampled, own)
            else:
                (s_predictions,) = self._student_box_predictions(features, [t_boxes])
            kdc, kdr = self._box_distillation(s_predictions, t_sampled, t_predictions, targets, used)
            if self.kdc_on:
                losses["loss_kdc"] = self.kd_weight * kdc
            if self.kdr_on:
                losses["loss_kdr"] = self.kd_weight * kdr
        return {**detector_losses, **proposal_losses, **losses}

    def _same_preprocessing(self) -> bool:
        """Whether the teacher's ``preprocess_image`` would give the student's images (same normalisation and
        padding): the teacher then reuses them."""
        t = self.teacher
        return (t.input_format == self.input_format and torch.equal(t.pixel_mean, self.pixel_mean)
                and torch.equal(t.pixel_std, self.pixel_std)
                and t.backbone.size_divisibility == self.backbone.size_divisibility
                and getattr(t.backbone, "padding_constraints", None)
                == getattr(self.backbone, "padding_constraints", None))

    def _teacher_inputs(self, batched_inputs):
        """The inputs with their images in the teacher's channel order (``INPUT.FORMAT``): a student reading RGB
        (torchvision's weights) and a teacher trained on BGR (detectron2's) see the same picture."""
        if self.teacher.input_format == self.input_format:
            return batched_inputs
        return [{**x, "image": x["image"].flip(0)} for x in batched_inputs]

    def _hint_loss(self, features, t_features, gt_instances):
        """L_hint (Eq. 11) on the RPN's levels, masked by the imitation regions of the ground-truth boxes."""
        rpn_features = self.proposal_generator.in_features
        anchors = self.proposal_generator.anchor_generator([features[f] for f in rpn_features])
        level_anchors = dict(zip(rpn_features, anchors))
        for f in self.hint_features:
            if features[f].shape[-2:] != t_features[f].shape[-2:]:
                raise ValueError(f"student and teacher '{f}' maps differ ({tuple(features[f].shape)} vs "
                                 f"{tuple(t_features[f].shape)}): they need the same input size and size divisibility")
        masks = imitation_masks(
            [level_anchors[f] for f in self.hint_features], [x.gt_boxes for x in gt_instances],
            [tuple(features[f].shape[-2:]) for f in self.hint_features], psi=self.imitation_psi,
        )
        storage = get_event_storage()
        for f, m in zip(self.hint_features, masks):
            storage.put_scalar(f"distill/mask_fraction_{f}", m.float().mean().item())
        student = [self.adapters[f](features[f]) for f in self.hint_features]
        return hint_loss(student, [t_features[f] for f in self.hint_features], masks)

    def _teacher_boxes(self, t_images, t_features, gt_instances):
        """The teacher's proposals, matched to the ground truth and sampled as the student's ROI heads sample
        their own (``Instances`` per image), and the teacher's box predictions on them: ((R, K+1) logits,
        (R, K*4) or (R, 4) deltas)."""
        heads, t_heads = self.roi_heads, self.teacher.roi_heads
        with torch.no_grad():
            t_proposals, _ = self.teacher.proposal_generator(t_images, t_features, None)
            with get_event_storage().name_scope("distill"):
                sampled = heads.label_and_sample_proposals(t_proposals, gt_instances)
            predictions = t_heads.box_predictor(t_heads.box_head(t_heads.box_pooler(
                [t_features[f] for f in t_heads.box_in_features], [p.proposal_boxes for p in sampled])))
        return sampled, predictions

    def _teacher_targets(self, t_sampled, t_logits) -> _TeacherTargets:
        """The ground-truth class, foreground mask and q_i of the teacher's sampled proposals (``Instances``
        per image), given the teacher's (R, K+1) logits on them."""
        gt_classes = cat([p.gt_classes for p in t_sampled])  # (R,), K = background
        fg = (gt_classes >= 0) & (gt_classes < self.roi_heads.num_classes)
        return _TeacherTargets(gt_classes, fg, teacher_correct(t_logits, gt_classes))

    def _used_teacher_proposals(self, targets: _TeacherTargets) -> torch.Tensor:
        """(R,) bool: the teacher proposals that enter a loss, those with q_i = 1 (L_kdc) or in the foreground
        (L_kdr). The student's box head runs on those alone, which changes no loss (each proposal's box
        features are its own; not so with a batch norm in the box head, which then sees them all)."""
        q, fg = targets.q, targets.fg
        if self._box_head_mixes_proposals():
            return torch.ones_like(q)
        return (q if self.kdc_on else torch.zeros_like(q)) | (fg if self.kdr_on else torch.zeros_like(fg))

    def _student_box_predictions(self, features, box_sets):
        """The student's box predictions ((logits, deltas)) on each of several sets of per-image boxes, from ONE
        pass of its box pooler, head and predictor over all of them (each box's output is its own, so this
        equals one pass per set, at the cost of one)."""
        heads = self.roi_heads
        num_images = len(box_sets[0])
        boxes = [Boxes.cat([s[i] for s in box_sets]) for i in range(num_images)]
        logits, deltas = heads.box_predictor(heads.box_head(heads.box_pooler(
            [features[f] for f in heads.box_in_features], boxes)))
        # the rows come image by image, each image's boxes set by set: regroup them set by set
        sizes = [len(s[i]) for i in range(num_images) for s in box_sets]
        logits, deltas = logits.split(sizes), deltas.split(sizes)
        n = len(box_sets)
        return [(cat(logits[k::n]), cat(deltas[k::n])) for k in range(n)]

    def _detector_losses(self, features, sampled, predictions):
        """The losses of ``StandardROIHeads.forward`` in training, given its box predictions on its sampled
        proposals (its box head having run elsewhere)."""
        heads = self.roi_heads
        losses = heads.box_predictor.losses(predictions, sampled)
        losses.update(heads._forward_mask(features, sampled))
        losses.update(heads._forward_keypoint(features, sampled))
        return losses

    def _box_distillation(self, s_predictions, t_sampled, t_predictions, targets: _TeacherTargets, used):
        """(L_kdc, L_kdr) (Eqs. 12-15) on the ``used`` ones of the teacher's sampled proposals, from the
        student's box predictions on those and the teacher's on all of them."""
        (s_logits, s_deltas), (t_logits, t_deltas) = s_predictions, t_predictions
        gt_classes, fg, q = targets
        num_classes = self.roi_heads.num_classes
        transform = self.roi_heads.box_predictor.box2box_transform
        gt_deltas = cat([
            transform.get_deltas(p.proposal_boxes.tensor, p.gt_boxes.tensor) if p.has("gt_boxes")
            else torch.zeros(len(p), 4, device=self.device)
            for p in t_sampled
        ])  # (R, 4)
        classes = gt_classes.clamp(0, num_classes - 1)[used]
        get_event_storage().put_scalar("distill/q_fraction", q.float().mean().item() if len(q) else 0.0)
        kdc = kd_cls_loss(s_logits, t_logits[used], gt_classes[used], self.temperature)
        deltas = (_class_deltas(s_deltas, classes), _class_deltas(t_deltas[used], classes), gt_deltas[used], fg[used])
        _put_kdr_targets(*deltas, beta=self.kdr_beta)
        normalizer = len(fg) if self.kdr_normalizer == "sampled" else None
        if self.kdr_mode == "bounded":
            kdr = kd_reg_bounded_loss(*deltas, beta=self.kdr_beta, margin=self.kdr_margin, normalizer=normalizer)
        else:
            kdr = kd_reg_loss(*deltas, beta=self.kdr_beta, normalizer=normalizer)
        return kdc, kdr

    def _one_box_head_pass(self) -> bool:
        """Whether the student's box head can run once on its own and the teacher's proposals together: its
        ROI heads are detectron2's ``StandardROIHeads`` training forward as is (replayed by ``forward``
        around the shared pass) and each proposal's box-head output is its own."""
        heads = self.roi_heads
        return (isinstance(heads, StandardROIHeads) and type(heads).forward is StandardROIHeads.forward
                and type(heads)._forward_box is StandardROIHeads._forward_box and not heads.train_on_pred_boxes
                and not self._box_head_mixes_proposals())

    def _box_head_mixes_proposals(self) -> bool:
        """Whether a proposal's box-head output depends on the other proposals (a batch norm in training)."""
        return self.training and any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
                                     for m in self.roi_heads.box_head.modules())


def _put_kdr_targets(student, teacher, gt, fg, beta: float) -> None:
    """Which target each foreground proposal's L_kdr has, to the event storage: ``distill/kdr_teacher_nearer``,
    the share where the student is nearer the teacher's deltas than the ground truth's (Eq. 15's min takes the
    teacher's there), and ``distill/kdr_student_worse``, the share where the student is farther from the ground
    truth than the teacher is (the bounded reading penalises those); distances as L_kdr measures them."""
    if not fg.any():
        return
    with torch.no_grad():
        s, t, g = student[fg], teacher[fg], gt[fg]

        def distance(a, b):
            return smooth_l1_loss(a, b, beta, reduction="none").sum(dim=1)  # (F,)

        to_gt = distance(s, g)
        storage = get_event_storage()
        storage.put_scalar("distill/kdr_teacher_nearer", (distance(s, t) < to_gt).float().mean().item())
        storage.put_scalar("distill/kdr_student_worse", (to_gt > distance(t, g)).float().mean().item())


def _class_deltas(deltas: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(R, 4) deltas of each proposal's class from (R, K*4) class-specific or (R, 4) agnostic deltas."""
    if deltas.shape[1] == 4:
        return deltas
    per_class = deltas.view(deltas.shape[0], deltas.shape[1] // 4, 4)  # (R, K, 4), R = 0 included
    return per_class[torch.arange(len(deltas), device=deltas.device), classes]
