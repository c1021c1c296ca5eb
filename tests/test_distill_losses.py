"""The self-distillation losses against values computed by hand on tiny tensors."""
import math

import pytest
import torch
from detectron2.structures import Boxes

from pudet.modeling.distill_losses import (
    hint_loss,
    imitation_masks,
    kd_cls_loss,
    kd_reg_bounded_loss,
    kd_reg_loss,
    teacher_correct,
)


def test_hint_loss_by_hand():
    # two levels, N=1, C=2; level 1 is 1x2 with one masked location, level 2 is 1x1 masked
    s1 = torch.tensor([[[[1.0, 5.0]], [[2.0, 7.0]]]])  # (1, 2, 1, 2)
    t1 = torch.tensor([[[[0.0, 0.0]], [[0.0, 0.0]]]])
    m1 = torch.tensor([[[1, 0]]])
    s2 = torch.tensor([[[[3.0]], [[1.0]]]])  # (1, 2, 1, 1)
    t2 = torch.tensor([[[[1.0]], [[1.0]]]])
    m2 = torch.tensor([[[1]]])
    # masked squared errors: level 1 (1 + 4), level 2 (4 + 0) = 9; N_I = C * 2 masked = 4 -> 9 / 8
    assert hint_loss([s1, s2], [t1, t2], [m1, m2]).item() == pytest.approx(9 / 8)


def test_hint_loss_zero_with_gradient_path_when_nothing_is_masked():
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = hint_loss([s], [torch.randn(2, 3, 4, 4)], [torch.zeros(2, 4, 4)])
    assert loss.item() == 0.0
    loss.backward()
    assert s.grad is not None and s.grad.abs().sum() == 0


def test_hint_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mask"):
        hint_loss([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 2, 2)])
    with pytest.raises(ValueError, match="differ"):
        hint_loss([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 4, 3, 3)], [torch.zeros(1, 3, 3)])


def _grid_anchors(h, w, stride, size):
    """One square anchor of side ``size`` centred on each cell, in detectron2's location-major order."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    cx, cy = (xs.flatten() + 0.5) * stride, (ys.flatten() + 0.5) * stride
    return Boxes(torch.stack([cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2], dim=1).float())


def test_imitation_mask_by_hand_and_inside_the_box_neighbourhood():
    anchors = _grid_anchors(4, 4, stride=8, size=8)  # cells of 8 px, anchors equal to cells
    box = Boxes(torch.tensor([[8.0, 8.0, 24.0, 16.0]]))  # covers cells (1,1) and (1,2) exactly
    (mask,) = imitation_masks([anchors], [box], [(4, 4)], psi=0.5)
    # IoU of each covered cell = 64 / 128 = 0.5 (the max); neighbours overlap 0 -> only the two cells
    expected = torch.zeros(1, 4, 4, dtype=torch.bool)
    expected[0, 1, 1] = expected[0, 1, 2] = True
    assert torch.equal(mask, expected)


def test_imitation_mask_threshold():
    fine = _grid_anchors(8, 8, stride=4, size=8)  # overlapping 8 px anchors every 4 px
    box = Boxes(torch.tensor([[10.0, 10.0, 18.0, 18.0]]))
    (mask,) = imitation_masks([fine], [box], [(8, 8)], psi=0.5)
    # the anchor centred at (14, 14) has IoU 1 -> cell (3, 3); psi * 1 = 0.5 keeps only IoU > 0.5:
    # a shift of 4 px gives IoU 32 / 96 = 1/3, so the single cell remains
    assert mask.sum() == 1 and mask[0, 3, 3]
    # psi = 0.3 admits the IoU-1/3 neighbours: the 4-neighbourhood of (3, 3); diagonals (IoU 1/7) stay out
    (low,) = imitation_masks([fine], [box], [(8, 8)], psi=0.3)
    assert low.sum() == 5 and low[0, 2:5, 3].all() and low[0, 3, 2:5].all()


def test_imitation_mask_levels_have_their_own_maximum():
    fine = _grid_anchors(8, 8, stride=4, size=8)
    coarse = _grid_anchors(2, 2, stride=16, size=16)
    box = Boxes(torch.tensor([[12.0, 12.0, 20.0, 20.0]]))  # centred on the corner shared by 4 coarse cells
    m_fine, m_coarse = imitation_masks([fine, coarse], [box], [(8, 8), (2, 2)], psi=0.5)
    # fine: the 4 anchors centred at 14 or 18 reach the max IoU 36 / 92; the next ones 12 / 116 < half of it
    assert m_fine.sum() == 4 and m_fine[0, 3:5, 3:5].all()
    # coarse: every cell has IoU 16 / 304, small but the level's maximum: all 4 cells are kept
    assert m_coarse.sum() == 4


def test_imitation_mask_empty_without_boxes():
    anchors = _grid_anchors(4, 4, stride=8, size=8)
    masks = imitation_masks([anchors], [Boxes(torch.zeros(0, 4)), Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]]))],
                            [(4, 4)])
    assert masks[0].shape == (2, 4, 4)
    assert masks[0][0].sum() == 0 and masks[0][1].sum() == 1


def test_kd_cls_loss_by_hand():
    t = 2.0
    student = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 4.0], [1.0, 1.0, 1.0]])
    teacher = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    gt = torch.tensor([1, 2, 1])  # teacher right on rows 0 and 1, wrong on row 2 (q = 0)

    def kl(zt, zs):
        pt = torch.softmax(torch.tensor(zt) / t, 0)
        ps = torch.softmax(torch.tensor(zs) / t, 0)
        return float((pt * (pt.log() - ps.log())).sum())

    expected = t * t * (kl([0.0, 2.0, 0.0], [2.0, 0.0, 0.0]) + kl([0.0, 0.0, 2.0], [0.0, 0.0, 4.0])) / 2
    assert kd_cls_loss(student, teacher, gt, temperature=t).item() == pytest.approx(expected, rel=1e-6)
    # row 0 in closed form: p_t = (1, e, 1) / (e + 2), p_s = (e, 1, 1) / (e + 2), so
    # KL = sum p_t log(p_t / p_s) = (1 * (-1) + e * 1 + 1 * 0) / (e + 2) = (e - 1) / (e + 2)
    row0 = (math.e - 1) / (math.e + 2)
    assert kl([0.0, 2.0, 0.0], [2.0, 0.0, 0.0]) == pytest.approx(row0, rel=1e-6)


def test_kd_cls_loss_zero_when_equal_or_teacher_always_wrong():
    logits = torch.randn(6, 4, requires_grad=True)
    gt = logits.detach().argmax(1)
    assert kd_cls_loss(logits, logits.detach().clone(), gt).item() == pytest.approx(0.0, abs=1e-7)
    wrong = (gt + 1) % 4
    loss = kd_cls_loss(logits, torch.nn.functional.one_hot(gt, 4).float() * 5.0, wrong)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None


def test_kd_reg_loss_by_hand():
    student = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    gt = torch.tensor([[0.0, 3.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    fg = torch.tensor([True, True, False])
    # row 0: |s - t| = 1, |s - gt| = 3 -> 1; row 1: |s - t| = 4, |s - gt| = 0.5 -> 0.5; row 2 background
    assert kd_reg_loss(student, teacher, gt, fg).item() == pytest.approx((1 + 0.5) / 2)


def test_kd_reg_loss_smooth_l1_by_hand():
    student = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    teacher = torch.tensor([[0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    gt = torch.tensor([[0.0, 2.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    fg = torch.tensor([True, True])
    # beta 1: row 0: to teacher 0.5 * 0.5^2 = 0.125, to gt 2 - 0.5 = 1.5 -> 0.125; row 1: to gt 0 -> 0
    assert kd_reg_loss(student, teacher, gt, fg, beta=1.0).item() == pytest.approx(0.125 / 2)
    # beta 0 is the paper's L1: 0.5 and 0
    assert kd_reg_loss(student, teacher, gt, fg, beta=0.0).item() == pytest.approx(0.5 / 2)


def test_kd_reg_loss_gradient_where_student_agrees_with_teacher():
    """A student that agrees with the teacher up to rounding (1e-6): the L1's gradient is still 1 per coordinate
    and proposal (over the foreground count), which kicks the student off the teacher at every step; the smooth
    L1's is 1e-6 / beta of that."""
    teacher = torch.randn(6, 4)
    gt = teacher + 3.0
    fg = torch.ones(6, dtype=torch.bool)
    grads = {}
    for beta in (0.0, 1.0):
        s = (teacher + 1e-6).requires_grad_()
        kd_reg_loss(s, teacher, gt, fg, beta=beta).backward()
        grads[beta] = s.grad
    assert torch.allclose(grads[0.0], torch.full((6, 4), 1 / 6))
    assert grads[1.0].abs().max().item() < 1e-6


def test_kd_reg_loss_zero_when_student_equals_teacher_or_no_foreground():
    s = torch.randn(5, 4, requires_grad=True)
    assert kd_reg_loss(s, s.detach().clone(), torch.randn(5, 4), torch.ones(5, dtype=torch.bool)).item() == 0.0
    loss = kd_reg_loss(s, torch.randn(5, 4), torch.randn(5, 4), torch.zeros(5, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert s.grad is not None


def test_kd_reg_bounded_loss_by_hand():
    student = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    teacher = torch.tensor([[0.0, 2.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    gt = torch.tensor([[0.0, 3.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.5], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    fg = torch.tensor([True, True, True, False])
    # row 0: the student is 3 from the ground truth, the teacher 0.5: |s - gt| = 3 (Eq. 15's min takes |s - t| =
    # 2.5 instead); row 1: student 0.5, teacher 3.5: better, 0 (min: 0.5); row 2: student 2, teacher 1: 2; row 3
    # background. Over the 3 foreground proposals
    assert kd_reg_bounded_loss(student, teacher, gt, fg).item() == pytest.approx((3 + 2) / 3)
    assert kd_reg_loss(student, teacher, gt, fg).item() == pytest.approx((2.5 + 0.5 + 2) / 3)
    # margin 3: row 1 (0.5 + 3 > 3.5 is false) stays 0; margin 3.5 adds its 0.5
    assert kd_reg_bounded_loss(student, teacher, gt, fg, margin=3.0).item() == pytest.approx((3 + 2) / 3)
    assert kd_reg_bounded_loss(student, teacher, gt, fg, margin=3.5).item() == pytest.approx((3 + 0.5 + 2) / 3)


def test_kd_reg_bounded_loss_never_pulls_towards_a_wrong_teacher():
    """A student a step past a wrong teacher towards the ground truth: Eq. 15's min pulls it back onto the
    teacher's box (against L_det's own regression); the bound lets it go. A student worse than the teacher is
    pulled towards the ground truth alone."""
    teacher = torch.randn(6, 4)
    gt = teacher - 3.0
    fg = torch.ones(6, dtype=torch.bool)
    past = (teacher - 0.5).requires_grad_()
    kd_reg_loss(past, teacher, gt, fg).backward()
    assert torch.allclose(past.grad, torch.full((6, 4), -1 / 6))  # descent moves it up, back to the teacher
    past = (teacher - 0.5).requires_grad_()
    loss = kd_reg_bounded_loss(past, teacher, gt, fg)
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(past.grad) == 0
    worse = (teacher + 0.5).requires_grad_()
    kd_reg_bounded_loss(worse, teacher, gt, fg).backward()
    assert torch.allclose(worse.grad, torch.full((6, 4), 1 / 6))  # descent moves it down, towards the gt


def test_kd_reg_bounded_loss_zero_without_foreground():
    s = torch.randn(5, 4, requires_grad=True)
    loss = kd_reg_bounded_loss(s, torch.randn(5, 4), torch.randn(5, 4), torch.zeros(5, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert s.grad is not None


def test_teacher_correct_is_q_i():
    # argmax classes 1, 2 (background), 0 against ground truth 1, 0, 0
    logits = torch.tensor([[0.0, 3.0, 1.0], [0.5, 0.0, 2.0], [4.0, 1.0, 1.0]])
    assert teacher_correct(logits, torch.tensor([1, 0, 0])).tolist() == [True, False, True]
