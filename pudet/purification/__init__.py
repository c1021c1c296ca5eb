"""The purification workflow (Algorithm 1's steps 2 and 3), one module per concept: the image head
(:mod:`.image_head`) and the region head (:mod:`.region_head`, its bags in :mod:`.bags`), trained and scoring a
pool; the class prior with its one caching rule (:mod:`.prior`); the selection's files (:mod:`.selection_files`);
and the steps ``tools/purify_net.py`` runs (:mod:`.workflow`). ``pudet.pu`` holds the maths, ``pudet.modeling``
the heads; a selection is measured against a pool's hidden truth afterwards, by ``tools/evaluate_pool_truth.py``."""
from .workflow import select_pool, train_purifier

__all__ = ["select_pool", "train_purifier"]
