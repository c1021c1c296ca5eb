"""Self-distillation losses (paper Section 3.2, Eqs. 11-15) as pure functions, and the imitation masks.

Notation: R proposals (the teacher's, fed to both box heads), K classes, background index K, FPN levels
i = 1..5 with feature maps (N, C, H_i, W_i).
"""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.structures import Boxes, pairwise_iou
from fvcore.nn import smooth_l1_loss

__all__ = ["hint_loss", "imitation_masks", "teacher_correct", "kd_cls_loss", "kd_reg_loss", "kd_reg_bounded_loss"]


def hint_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
              masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Masked multi-level hint loss (Eq. 11).

    ``L = 1 / (2 N_I) * sum_i sum_{h,w,c} I^(i)_{h,w} (phi_i(S^(i)) - T^(i))^2`` with
    ``N_I = C * sum_i sum_{h,w} I^(i)_{h,w}`` (summed over the batch's images too).

    Args:
        student_feats: per level, (N, C, H_i, W_i) student features already passed through the
            adaptation layers phi_i.
        teacher_feats: per level, (N, C, H_i, W_i) teacher features.
        masks: per level, (N, H_i, W_i) imitation masks in {0, 1}.
    Returns:
        scalar loss; zero, still connected to ``student_feats``, when no location is masked.
    """
    if not (len(student_feats) == len(teacher_feats) == len(masks)) or not student_feats:
        raise ValueError("hint_loss needs one student feature, teacher feature and mask per level")
    total, masked = 0.0, 0.0
    channels = student_feats[0].shape[1]
    for s, t, m in zip(student_feats, teacher_feats, masks):
        if s.shape != t.shape or s.shape[1] != channels:
            raise ValueError(f"student {tuple(s.shape)} and teacher {tuple(t.shape)} features differ")
        if m.shape != (s.shape[0], s.shape[2], s.shape[3]):
            raise ValueError(f"mask {tuple(m.shape)} does not match features {tuple(s.shape)}")
        m = m.to(s.dtype)
        total = total + (m[:, None] * (s - t) ** 2).sum()  # (N, C, H, W) -> scalar
        masked = masked + m.sum()
    n_i = channels * torch.clamp(torch.as_tensor(masked, dtype=student_feats[0].dtype), min=1.0)
    return total / (2.0 * n_i)


def imitation_masks(anchors: Sequence[Boxes], gt_boxes: Sequence[Boxes], feature_shapes: Sequence[tuple],
                    psi: float = 0.5) -> List[torch.Tensor]:
    """Fine-grained imitation regions (Wang et al., CVPR 2019), one per FPN level ("on each layer").

    Levels are handled independently: on level i, for each ground-truth box b, the IoUs between b and
    every anchor of that level are computed, M_b^(i) is their maximum, and the anchors with
    IoU > psi * M_b^(i) (and IoU > 0) are kept; a location (h, w) is in the mask when any of its A anchors
    is kept for any box. So every box marks a neighbourhood of its own location on every level, the
    tightest where the level's anchors fit the box best. An image without boxes has an empty mask.

    Args:
        anchors: per level, the :class:`Boxes` of detectron2's anchor generator, (H_i * W_i * A, 4) in
            its order (location-major, then the A cell anchors).
        gt_boxes: per image, the ground-truth :class:`Boxes` (G_n, 4).
        feature_shapes: per level, (H_i, W_i).
        psi: the imitation threshold factor (0.5 in the paper).
    Returns:
        per level, an (N, H_i, W_i) bool tensor.
    """
    masks = []
    for level_anchors, (h, w) in zip(anchors, feature_shapes):
        num_cell = len(level_anchors) // (h * w)
        if num_cell * h * w != len(level_anchors):
            raise ValueError(f"{len(level_anchors)} anchors do not tile a {h}x{w} feature map")
        # every image's boxes at once: G = all the batch's boxes, image[g] = the image of box g
        device = level_anchors.device
        boxes = Boxes.cat([b.to(device) for b in gt_boxes])
        image = torch.repeat_interleave(torch.arange(len(gt_boxes), device=device),
                                        torch.tensor([len(b) for b in gt_boxes], device=device, dtype=torch.long))
        iou = pairwise_iou(boxes, level_anchors)  # (G, H*W*A)
        best = iou.max(dim=1, keepdim=True).values  # (G, 1)
        keep = ((iou > psi * best) & (iou > 0)).to(torch.int32)  # (G, H*W*A)
        hits = torch.zeros(len(gt_boxes), len(level_anchors), dtype=torch.int32, device=device)
        hits.index_add_(0, image, keep)
        masks.append((hits > 0).view(len(gt_boxes), h, w, num_cell).any(dim=3))  # (N, H, W)
    return masks


def teacher_correct(teacher_logits: torch.Tensor, gt_classes: torch.Tensor) -> torch.Tensor:
    """q_i of Eq. 13: whether the teacher's argmax class is the proposal's ground-truth class.

    Args:
        teacher_logits: (R, K+1) the teacher's logits z^t.
        gt_classes: (R,) ground-truth class of each proposal in [0, K] (K = background).
    Returns:
        (R,) bool.
    """
    return teacher_logits.argmax(dim=1) == gt_classes


def kd_cls_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, gt_classes: torch.Tensor,
                temperature: float = 2.0) -> torch.Tensor:
    """Ground-truth-bounded distillation of the classification branch (Eqs. 12-14).

    ``q_i = 1`` where the teacher's argmax class equals the proposal's ground-truth class (background
    included). The loss is ``T^2 * KL(p_teacher || p_student)`` at temperature T, averaged over the
    proposals with ``q_i = 1``. The paper writes a plain sum over proposals (Eq. 14); the mean keeps the
    loss's scale independent of the number of sampled proposals (as L_det's own cross-entropy is a mean),
    so that lambda = 1 balances it against L_det.

    Args:
        student_logits: (R, K+1) the student's box-head logits z' on the teacher's proposals.
        teacher_logits: (R, K+1) the teacher's logits z^t on the same proposals.
        gt_classes: (R,) ground-truth class of each proposal in [0, K] (K = background).
        temperature: T (2 in the paper).
    Returns:
        scalar loss; zero, still connected to ``student_logits``, when no proposal has q_i = 1.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"logits must be (R, K+1) of one shape, got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    if gt_classes.shape != student_logits.shape[:1]:
        raise ValueError(f"gt_classes {tuple(gt_classes.shape)} does not match {student_logits.shape[0]} proposals")
    teacher_logits = teacher_logits.detach()
    q = teacher_correct(teacher_logits, gt_classes).to(student_logits.dtype)  # (R,)
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)  # (R, K+1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)  # (R, K+1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)  # (R,)
    return temperature ** 2 * (q * kl).sum() / torch.clamp(q.sum(), min=1.0)


def _check_deltas(student_deltas, teacher_deltas, gt_deltas, fg_mask):
    if not (student_deltas.shape == teacher_deltas.shape == gt_deltas.shape) or student_deltas.dim() != 2:
        raise ValueError("student, teacher and ground-truth deltas must be (R, 4) of one shape")
    if fg_mask.shape != student_deltas.shape[:1]:
        raise ValueError(f"fg_mask {tuple(fg_mask.shape)} does not match {student_deltas.shape[0]} proposals")


def _mean(per_proposal: torch.Tensor, fg_mask: torch.Tensor, normalizer: Optional[float]) -> torch.Tensor:
    """The foreground proposals' sum of ``per_proposal`` over ``normalizer`` (None: the foreground count)."""
    count = fg_mask.sum().to(per_proposal.dtype) if normalizer is None else torch.as_tensor(
        float(normalizer), dtype=per_proposal.dtype)
    return (fg_mask.to(per_proposal.dtype) * per_proposal).sum() / torch.clamp(count, min=1.0)


def kd_reg_loss(student_deltas: torch.Tensor, teacher_deltas: torch.Tensor, gt_deltas: torch.Tensor,
                fg_mask: torch.Tensor, beta: float = 0.0, normalizer: Optional[float] = None) -> torch.Tensor:
    """Ground-truth-bounded distillation of the box regression branch (Eq. 15).

    ``L = 1 / sum_i q_i * sum_i q_i min(|t'_i - t^t_i|_1, |t'_i - t*_i|_1)``, q = foreground proposals; with
    ``beta`` > 0 each distance is a smooth L1 (fvcore's, summed over the 4 coordinates) instead: quadratic within
    ``beta`` of its target, so that its gradient vanishes where the student agrees with the teacher.

    Args:
        student_deltas: (R, 4) the student's deltas t' for each proposal's ground-truth class.
        teacher_deltas: (R, 4) the teacher's deltas t^t for the same class.
        gt_deltas: (R, 4) the ground-truth deltas t* of each proposal.
        fg_mask: (R,) bool, the foreground proposals.
        beta: the smooth L1's beta (0: the paper's L1).
        normalizer: what the sum is divided by; None = ``sum_i q_i`` (Eq. 15), e.g. the number of sampled
            proposals for the scale of detectron2's own box loss.
    Returns:
        scalar loss; zero, still connected to ``student_deltas``, without foreground proposals.
    """
    _check_deltas(student_deltas, teacher_deltas, gt_deltas, fg_mask)
    to_teacher = smooth_l1_loss(student_deltas, teacher_deltas.detach(), beta, reduction="none").sum(dim=1)  # (R,)
    to_gt = smooth_l1_loss(student_deltas, gt_deltas, beta, reduction="none").sum(dim=1)  # (R,)
    return _mean(torch.minimum(to_teacher, to_gt), fg_mask, normalizer)


def kd_reg_bounded_loss(student_deltas: torch.Tensor, teacher_deltas: torch.Tensor, gt_deltas: torch.Tensor,
                        fg_mask: torch.Tensor, beta: float = 0.0, margin: float = 0.0,
                        normalizer: Optional[float] = None) -> torch.Tensor:
    """Teacher-bounded regression (Chen et al., NeurIPS 2017), the bound that Eq. 15's text describes: the
    student regresses to the ground truth wherever it is not better than the teacher by ``margin``.

    ``L = 1 / sum_i q_i * sum_i q_i b_i |t'_i - t*_i|_1`` with ``b_i = 1`` where ``|t'_i - t*_i|_1 + margin >
    |t^t_i - t*_i|_1``, else 0; q = foreground proposals. The teacher's deltas only gate the loss: they are
    never a target, so a teacher box worse than the ground truth cannot pull the student towards it. With
    ``beta`` > 0 the distances are smooth L1s (fvcore's, summed over the 4 coordinates).

    Args:
        student_deltas: (R, 4) the student's deltas t' for each proposal's ground-truth class.
        teacher_deltas: (R, 4) the teacher's deltas t^t for the same class.
        gt_deltas: (R, 4) the ground-truth deltas t* of each proposal.
        fg_mask: (R,) bool, the foreground proposals.
        beta: the smooth L1's beta (0: L1).
        margin: m, how much better than the teacher the student must be to go unpenalised.
        normalizer: as :func:`kd_reg_loss`'s.
    Returns:
        scalar loss; zero, still connected to ``student_deltas``, without foreground proposals.
    """
    _check_deltas(student_deltas, teacher_deltas, gt_deltas, fg_mask)
    student = smooth_l1_loss(student_deltas, gt_deltas, beta, reduction="none").sum(dim=1)  # (R,)
    teacher = smooth_l1_loss(teacher_deltas.detach(), gt_deltas, beta, reduction="none").sum(dim=1)  # (R,)
    worse = (student.detach() + margin > teacher).to(student.dtype)  # (R,)
    return _mean(worse * student, fg_mask, normalizer)
