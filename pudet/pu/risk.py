"""PU risks on a classifier's raw scores g(x) (paper Eqs. 4-6; Kiryo et al., NeurIPS 2017).

Notation: positives x^p ~ p_p (the labeled set L), unlabeled x^u ~ pi_p p_p + (1 - pi_p) p_n (the pool U),
a surrogate loss l(z, y), and

    R_p^+ = mean_p l(g(x^p), +1)      R_p^- = mean_p l(g(x^p), -1)      R_u^- = mean_u l(g(x^u), -1)

* uPU (Eq. 5): R = pi_p R_p^+ + (R_u^- - pi_p R_p^-); the bracket estimates pi_n R_n^- and can go negative,
  which is how a flexible model overfits.
* nnPU (Eq. 6): R = pi_p R_p^+ + max(0, R_u^- - pi_p R_p^-).
* PN with U taken as negative (the naive baseline): R = pi_p R_p^+ + (1 - pi_p) R_u^-.

Each function returns ``(objective, risk)``: ``risk`` is the estimate to log, ``objective`` the tensor to
call backward on. For nnPU (Kiryo et al., Algorithm 1): when the negative part ``R_u^- - pi_p R_p^-``
falls below ``-beta`` the objective is ``-gamma * (R_u^- - pi_p R_p^-)``, a step that pushes the negative
part back up (a defitting step); otherwise it is the risk itself.
"""
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ["surrogate_loss", "pu_risk_parts", "nnpu_risk", "upu_risk", "pn_risk", "LOSSES", "RISKS"]

LOSSES = ("sigmoid", "logistic")


def surrogate_loss(scores: torch.Tensor, label: int, loss: str = "sigmoid") -> torch.Tensor:
    """l(z, y) elementwise: ``sigmoid`` = sigmoid(-y z), ``logistic`` = softplus(-y z) = log(1 + exp(-y z))."""
    if loss == "sigmoid":
        return torch.sigmoid(-label * scores)
    if loss == "logistic":
        return F.softplus(-label * scores)
    raise ValueError(f"unknown PU surrogate loss '{loss}'; expected one of {LOSSES}")


def _check(pos_scores, unl_scores, prior):
    if not 0.0 < float(prior) < 1.0:
        raise ValueError(f"class prior pi_p must lie in (0, 1), got {prior}")
    for name, s in (("positive", pos_scores), ("unlabeled", unl_scores)):
        if not isinstance(s, torch.Tensor) or s.dim() != 1:
            shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"{name} scores must be a 1-D tensor of raw scores g(x), got {shape}")
        if s.numel() == 0:
            raise ValueError(f"the {name} batch is empty: PU risks need positive and unlabeled samples")


def pu_risk_parts(pos_scores: torch.Tensor, unl_scores: torch.Tensor, prior: float,
                  loss: str = "sigmoid") -> Tuple[torch.Tensor, torch.Tensor]:
    """The two parts of the PU risk.

    Args:
        pos_scores: (P,) raw scores g(x) of positive (labeled) samples.
        unl_scores: (U,) raw scores of unlabeled samples.
        prior: pi_p in (0, 1).
        loss: "sigmoid" or "logistic".
    Returns:
        positive_part: scalar, pi_p * R_p^+.
        negative_part: scalar, R_u^- - pi_p * R_p^- (the estimate of pi_n R_n^-; may be negative).
    """
    _check(pos_scores, unl_scores, prior)
    positive_part = prior * surrogate_loss(pos_scores, +1, loss).mean()
    negative_part = surrogate_loss(unl_scores, -1, loss).mean() - prior * surrogate_loss(pos_scores, -1, loss).mean()
    return positive_part, negative_part


def nnpu_risk(pos_scores: torch.Tensor, unl_scores: torch.Tensor, prior: float, *, beta: float = 0.0,
              gamma: float = 1.0, loss: str = "sigmoid") -> Tuple[torch.Tensor, torch.Tensor]:
    """Non-negative PU risk (Eq. 6) with Kiryo et al.'s training rule.

    Args:
        pos_scores: (P,) raw scores of positive samples.
        unl_scores: (U,) raw scores of unlabeled samples.
        prior: pi_p in (0, 1).
        beta: tolerance: the defitting step triggers when the negative part is below -beta (>= 0).
        gamma: step scale of the defitting step (> 0).
        loss: "sigmoid" or "logistic".
    Returns:
        objective: scalar to call backward on.
        risk: scalar, pi_p R_p^+ + max(0, R_u^- - pi_p R_p^-).
    """
    if beta < 0 or gamma <= 0:
        raise ValueError(f"nnPU needs beta >= 0 and gamma > 0, got beta={beta}, gamma={gamma}")
    positive_part, negative_part = pu_risk_parts(pos_scores, unl_scores, prior, loss)
    risk = positive_part + torch.clamp(negative_part, min=0.0)
    if negative_part.item() < -beta:
        objective = -gamma * negative_part
    else:
        objective = positive_part + negative_part
    return objective, risk


def upu_risk(pos_scores: torch.Tensor, unl_scores: torch.Tensor, prior: float, *,
             loss: str = "sigmoid") -> Tuple[torch.Tensor, torch.Tensor]:
    """Unbiased PU risk (Eq. 5); ``objective`` and ``risk`` are the same tensor (shapes as in nnpu_risk)."""
    positive_part, negative_part = pu_risk_parts(pos_scores, unl_scores, prior, loss)
    risk = positive_part + negative_part
    return risk, risk


def pn_risk(pos_scores: torch.Tensor, unl_scores: torch.Tensor, prior: float, *,
            loss: str = "sigmoid") -> Tuple[torch.Tensor, torch.Tensor]:
    """PN risk (Eq. 4) with the unlabeled samples taken as negatives: the naive baseline."""
    _check(pos_scores, unl_scores, prior)
    risk = (prior * surrogate_loss(pos_scores, +1, loss).mean()
            + (1 - prior) * surrogate_loss(unl_scores, -1, loss).mean())
    return risk, risk


# the risks by their config name (PU.RISK)
RISKS = {"nnpu": nnpu_risk, "upu": upu_risk, "pn": pn_risk}
