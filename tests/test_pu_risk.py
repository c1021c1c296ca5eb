"""PU risks against values computed by hand (see each test's comments)."""
import math

import pytest
import torch

from pudet.pu.risk import nnpu_risk, pn_risk, pu_risk_parts, upu_risk


def sig(x):
    return 1 / (1 + math.exp(-x))


def t(*v):
    return torch.tensor(v, dtype=torch.float64, requires_grad=True)


def test_parts_sigmoid_by_hand():
    # R_p^+ = mean(sig(-0), sig(-2)); R_p^- = mean(sig(0), sig(2)); R_u^- = mean(sig(-1), sig(1)) = 0.5
    pos, neg = pu_risk_parts(t(0.0, 2.0), t(-1.0, 1.0), 0.5, "sigmoid")
    r_p_plus = (sig(0) + sig(-2)) / 2
    r_p_minus = (sig(0) + sig(2)) / 2
    assert pos.item() == pytest.approx(0.5 * r_p_plus) == pytest.approx(0.15480075, abs=1e-7)
    assert neg.item() == pytest.approx(0.5 - 0.5 * r_p_minus)


def test_nnpu_regular_branch_equals_upu():
    pos, unl = t(0.0, 2.0), t(-1.0, 1.0)
    objective, risk = nnpu_risk(pos, unl, 0.5)
    u_objective, u_risk = upu_risk(pos, unl, 0.5)
    assert risk.item() == pytest.approx(0.3096015, abs=1e-7)
    assert objective.item() == pytest.approx(risk.item()) == pytest.approx(u_risk.item())


def test_negative_branch_nnpu_stays_non_negative_where_upu_goes_negative():
    # pi=0.5, pos=[3], unl=[-4]: positive part 0.5*sig(-3) = 0.0237129,
    # negative part sig(-4) - 0.5*sig(3) = 0.0179862 - 0.4762871 = -0.4583009
    pos, unl = t(3.0), t(-4.0)
    _, u_risk = upu_risk(pos, unl, 0.5)
    objective, risk = nnpu_risk(pos, unl, 0.5, gamma=1.0)
    assert u_risk.item() == pytest.approx(0.0237129 - 0.4583009, abs=1e-6) and u_risk.item() < 0
    assert risk.item() == pytest.approx(0.0237129, abs=1e-6) and risk.item() >= 0
    assert objective.item() == pytest.approx(0.4583009, abs=1e-6)  # -gamma * negative part
    _, risk2 = nnpu_risk(pos, unl, 0.5, gamma=3.0)
    objective3, _ = nnpu_risk(pos, unl, 0.5, gamma=3.0)
    assert objective3.item() == pytest.approx(3 * 0.4583009, abs=1e-6)


def test_negative_branch_gradient_pushes_negative_part_up():
    pos, unl = t(3.0), t(-4.0)
    objective, _ = nnpu_risk(pos, unl, 0.5)
    objective.backward()
    # a descent step (x - lr * grad) raises the unlabeled score and lowers the positive one,
    # which raises R_u^- - pi R_p^- back towards 0
    assert unl.grad.item() < 0 and pos.grad.item() > 0
    assert unl.grad.item() == pytest.approx(-sig(-4) * (1 - sig(-4)))
    assert pos.grad.item() == pytest.approx(0.5 * sig(3) * (1 - sig(3)))
    with torch.no_grad():
        _, before = pu_risk_parts(pos, unl, 0.5)
        _, after = pu_risk_parts(pos - 0.5 * pos.grad, unl - 0.5 * unl.grad, 0.5)
    assert after.item() > before.item()


def test_beta_tolerates_small_negative_parts():
    pos, unl = t(3.0), t(-4.0)  # negative part -0.4583
    objective, risk = nnpu_risk(pos, unl, 0.5, beta=0.5)
    assert objective.item() == pytest.approx(0.0237129 - 0.4583009, abs=1e-6)
    assert risk.item() == pytest.approx(0.0237129, abs=1e-6)


def test_logistic_loss_by_hand():
    # all scores 0: l = log 2 everywhere; pi = 0.3
    pos, neg = pu_risk_parts(t(0.0), t(0.0, 0.0), 0.3, "logistic")
    assert pos.item() == pytest.approx(0.3 * math.log(2))
    assert neg.item() == pytest.approx(0.7 * math.log(2))
    # softplus(-2) for a positive scored 2: log(1 + e^-2)
    _, risk = upu_risk(t(2.0), t(0.0), 0.3, loss="logistic")
    expected = 0.3 * math.log(1 + math.exp(-2)) + math.log(2) - 0.3 * math.log(1 + math.exp(2))
    assert risk.item() == pytest.approx(expected)


def test_pn_baseline_by_hand():
    _, risk = pn_risk(t(0.0, 2.0), t(-1.0, 1.0), 0.5)
    assert risk.item() == pytest.approx(0.5 * (sig(0) + sig(-2)) / 2 + 0.5 * 0.5)


@pytest.mark.parametrize("prior", [0.0, 1.0, -0.1, 1.5])
def test_prior_outside_open_interval(prior):
    with pytest.raises(ValueError, match="prior"):
        nnpu_risk(t(1.0), t(1.0), prior)


def test_invalid_batches():
    with pytest.raises(ValueError, match="positive batch is empty"):
        nnpu_risk(torch.zeros(0), t(1.0), 0.3)
    with pytest.raises(ValueError, match="unlabeled batch is empty"):
        upu_risk(t(1.0), torch.zeros(0), 0.3)
    with pytest.raises(ValueError, match="1-D"):
        nnpu_risk(torch.zeros(2, 1), t(1.0), 0.3)
    with pytest.raises(ValueError, match="unknown PU surrogate loss"):
        nnpu_risk(t(1.0), t(1.0), 0.3, loss="hinge")
    with pytest.raises(ValueError, match="beta"):
        nnpu_risk(t(1.0), t(1.0), 0.3, beta=-1)
