"""Class-prior estimation: the fraction pi_p of positives in the unlabeled pool.

Two estimators, both reading scores of a classifier trained to tell labeled (positive) samples from
unlabeled ones, on samples it was not trained on:

* BBE, best bin estimation (Garg et al., NeurIPS 2021, "Mixture proportion estimation and PU learning: a
  modern approach"), the default (``PU.PRIOR_ESTIMATOR: bbe``): needs only the scores' order. With q_p(c) and
  q_u(c) the fractions of held-out positive and unlabeled scores at or above c, q_u(c) = pi_p q_p(c) +
  (1 - pi_p) q_n(c) >= pi_p q_p(c), with equality on a "top bin" where no negative scores; BBE takes the c
  minimising an upper confidence bound of q_u(c) / q_p(c) and returns pi_p = q_u(c) / q_p(c). Its assumption
  (some top bin holds almost only positives) is much weaker than Elkan-Noto's. The paper bounds both fractions
  with one Dvoretzky-Kiefer-Wolfowitz term, sqrt(log(4 / delta) / 2n), the same at every c; that term is the
  spread of a fraction near 1/2 and much wider than that of the small fractions of a top bin, so with a few
  hundred held-out positives it outweighs the ratio and makes BBE prefer large bins, which hold negatives, and
  overestimate small priors. pudet bounds each count by its exact binomial (Clopper-Pearson) limit at the
  paper's delta / 4 per side (:func:`bbe_prior`), which is as wide as the data make it at each c.
* Elkan-Noto (below; ``elkan-noto``): needs calibrated probabilities.

Both are points; :func:`bootstrap_draws` gives an interval from resamples of the held-out scores.

Elkan & Noto (KDD 2008), estimator e1, for the case-control PU setting (L and U sampled
separately). A "non-traditional" classifier h(x) = P(s = 1 | x) is fitted to tell labeled samples
(s = 1, n_l of them) from unlabeled ones (s = 0, n_u). With p(x | s=1) = p_p(x) and
p(x | s=0) = pi_p p_p(x) + (1 - pi_p) p_n(x), at any x where p_n(x) = 0

    h(x) = n_l p_p / (n_l p_p + n_u pi_p p_p) = n_l / (n_l + n_u pi_p) =: c,

so c is estimated as the mean of h over held-out labeled samples (out-of-fold predictions), and

    pi_p = n_l (1 - c) / (n_u c).

Assumption: positives and negatives barely overlap in feature space; where they do, h is lower on
those positives, c is underestimated and pi_p overestimated. pudet fits h as a logistic regression on
the PU classifier's pooled backbone features (the teacher's backbone), before PU training, or (region head)
as a region head trained labeled-vs-unlabeled, and reads both estimators from its out-of-fold probabilities.
"""
import numpy as np

__all__ = ["bbe_prior", "bootstrap_draws", "elkan_noto_prior", "estimate_prior"]


def bbe_prior(positive_scores, unlabeled_scores, *, delta: float = 0.1) -> float:
    """Best bin estimation of pi_p from held-out scores of positive (labeled) and unlabeled samples (higher =
    more positive-like). A bin's bound is the upper Clopper-Pearson limit of q_u(c) over the lower one of
    q_p(c), each at level ``delta`` / 4 (Garg et al.'s confidence parameter). Clipped to [1e-3, 1 - 1e-3]."""
    from scipy.stats import beta

    p = np.sort(np.asarray(positive_scores, dtype=np.float64))[::-1]
    u = np.sort(np.asarray(unlabeled_scores, dtype=np.float64))[::-1]
    if p.size == 0 or u.size == 0:
        raise ValueError("BBE needs held-out positive and unlabeled scores")
    # candidate thresholds: every positive score; k_p, k_u = the counts of scores >= c
    k_p = np.arange(1, p.size + 1)
    k_u = np.searchsorted(-u, -p, side="right")
    upper_u = np.where(k_u < u.size, beta.ppf(1 - delta / 4, k_u + 1, u.size - k_u), 1.0)
    lower_p = beta.ppf(delta / 4, k_p, p.size - k_p + 1)
    best = int(np.argmin(upper_u / np.maximum(lower_p, 1e-12)))
    return float(np.clip(k_u[best] / u.size * p.size / k_p[best], 1e-3, 1.0 - 1e-3))


def bootstrap_draws(estimator, positive_scores, unlabeled_scores, *, resamples: int = 200, seed: int = 0) -> np.ndarray:
    """``estimator(positive, unlabeled)`` on ``resamples`` bootstrap resamples of the held-out scores (each side
    drawn with replacement from a generator of ``seed``): (resamples,) estimates, whose central quantiles are
    an interval of the estimate."""
    p = np.asarray(positive_scores, dtype=np.float64)
    u = np.asarray(unlabeled_scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return np.asarray([estimator(p[rng.integers(p.size, size=p.size)], u[rng.integers(u.size, size=u.size)])
                       for _ in range(resamples)])


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


def estimate_prior(labeled_features, unlabeled_features, *, folds: int = 5, seed: int = 0) -> dict:
    """Estimates of pi_p from (N_l, D) and (N_u, D) feature arrays, both read from out-of-fold probabilities
    P(labeled | x) of a logistic regression telling labeled from unlabeled samples.

    Returns:
        ``{"bbe": ..., "elkan-noto": ..., "c": the estimated P(s=1 | x, y=+1)}``.
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
    return {"bbe": bbe_prior(oof[: len(xl)], oof[len(xl):]),
            "elkan-noto": elkan_noto_prior(oof[: len(xl)], len(xl), len(xu)), "c": float(oof[: len(xl)].mean())}
