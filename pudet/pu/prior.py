"""Class-prior estimation: the fraction pi_p of positives in the unlabeled pool.

Estimator: Elkan & Noto (KDD 2008), estimator e1, for the case-control PU setting (L and U sampled
separately). A "non-traditional" classifier h(x) = P(s = 1 | x) is fitted to tell labeled samples
(s = 1, n_l of them) from unlabeled ones (s = 0, n_u). With p(x | s=1) = p_p(x) and
p(x | s=0) = pi_p p_p(x) + (1 - pi_p) p_n(x), at any x where p_n(x) = 0

    h(x) = n_l p_p / (n_l p_p + n_u pi_p p_p) = n_l / (n_l + n_u pi_p) =: c,

so c is estimated as the mean of h over held-out labeled samples (out-of-fold predictions), and

    pi_p = n_l (1 - c) / (n_u c).

Assumption: positives and negatives barely overlap in feature space; where they do, h is lower on
those positives, c is underestimated and pi_p overestimated. pudet fits h as a logistic regression on
the PU classifier's pooled backbone features (the teacher's backbone), before PU training.
"""
import numpy as np

__all__ = ["elkan_noto_prior", "estimate_prior"]


def elkan_noto_prior(heldout_labeled_probs, n_labeled: int, n_unlabeled: int) -> float:
    """pi_p from out-of-fold P(s=1|x) on labeled samples, for a classifier fitted on n_labeled labeled and
    n_unlabeled unlabeled samples (no class weighting). Clipped to [1e-3, 1 - 1e-3]."""
    probs = np.asarray(heldout_labeled_probs, dtype=np.float64)
    if probs.size == 0 or n_labeled <= 0 or n_unlabeled <= 0:
        raise ValueError("prior estimation needs labeled probabilities and positive sample counts")
    c = float(probs.mean())
    if c <= 0.0:
        return 1.0 - 1e-3
    prior = n_labeled * (1.0 - c) / (n_unlabeled * c)
    return float(np.clip(prior, 1e-3, 1.0 - 1e-3))


def estimate_prior(labeled_features, unlabeled_features, *, folds: int = 5, seed: int = 0):
    """Elkan-Noto estimate of pi_p from (N_l, D) and (N_u, D) feature arrays.

    Returns:
        prior: the estimate of pi_p.
        c: the estimated P(s=1 | x, y=+1).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xl = np.asarray(labeled_features, dtype=np.float64)
    xu = np.asarray(unlabeled_features, dtype=np.float64)
    if xl.ndim != 2 or xu.ndim != 2 or xl.shape[1] != xu.shape[1]:
        raise ValueError(f"features must be (N, D) arrays of one D, got {xl.shape} and {xu.shape}")
    if len(xl) < folds or len(xu) < folds:
        raise ValueError(f"prior estimation needs at least {folds} labeled and unlabeled samples")
    x = np.concatenate([xl, xu])
    s = np.concatenate([np.ones(len(xl)), np.zeros(len(xu))])
    oof = np.zeros(len(x))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, s):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        clf.fit(x[train], s[train])
        oof[test] = clf.predict_proba(x[test])[:, 1]
    # each fold's classifier saw the full data's labeled:unlabeled ratio
    c = float(oof[: len(xl)].mean())
    return elkan_noto_prior(oof[: len(xl)], len(xl), len(xu)), c
