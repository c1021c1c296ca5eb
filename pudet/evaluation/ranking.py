"""How well a score ranks a pool against its hidden truth (AUC, precision@K, recall@K)."""
from typing import Dict

import numpy as np

__all__ = ["ranking_metrics"]


def ranking_metrics(scores, positive, k: int) -> Dict[str, float]:
    """AUC, precision@k and recall@k of ``scores`` against the binary truth ``positive``.

    Ties at the k-th score are broken by position (stable sort on descending score), as in selection.
    """
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if scores.shape != positive.shape or scores.ndim != 1:
        raise ValueError(f"scores and truth must be 1-D of one length, got {scores.shape} and {positive.shape}")
    k = int(min(max(k, 0), len(scores)))
    order = np.argsort(-scores, kind="stable")
    hits = int(positive[order[:k]].sum())
    n_pos = int(positive.sum())
    both = 0 < n_pos < len(scores)
    return {
        "AUC": float(roc_auc_score(positive, scores)) if both else float("nan"),
        "precision@K": hits / k if k else float("nan"),
        "recall@K": hits / n_pos if n_pos else float("nan"),
        "K": k,
    }
