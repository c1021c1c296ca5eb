"""Selection rules: which images of a scored pool make U^P (the ``topk`` best, or every image scoring at least a
threshold), and the score of the selection a practitioner tries first (each image's best pseudo-box)."""
import logging
from typing import Optional

import numpy as np

__all__ = ["max_score_per_image", "select_top"]

logger = logging.getLogger(__name__)


def select_top(ids: np.ndarray, scores: np.ndarray, *, topk: Optional[int] = None,
               threshold: Optional[float] = None) -> np.ndarray:
    """Indices into ``ids`` of U^P, best first: the ``topk`` highest scores, or every score >= ``threshold``
    (exactly one of the two). Ties are broken by ascending image id, so the choice is deterministic."""
    if (topk is None) == (threshold is None):
        raise ValueError("select with exactly one of topk or threshold")
    order = np.lexsort((ids, -scores.astype(np.float64)))
    if topk is not None:
        if topk < 0:
            raise ValueError(f"topk must be >= 0, got {topk}")
        if topk > len(ids):
            logger.warning(f"top-K = {topk} is more than the {len(ids)} scored images: every image is selected")
        return order[:topk]
    return order[scores[order] >= threshold]


def max_score_per_image(coco: dict):
    """Each image's best detection score in a pseudo-label COCO dict (0 where it has none): the score of the
    selection a practitioner tries first (the images on which the teacher is most confident). Returns
    (ids (N,), scores (N,) float32) in the file's image order."""
    best = {}
    for a in coco["annotations"]:
        best[a["image_id"]] = max(best.get(a["image_id"], 0.0), a["score"])
    ids = np.asarray([im["id"] for im in coco["images"]], dtype=np.int64)
    return ids, np.asarray([best.get(int(i), 0.0) for i in ids], dtype=np.float32)
