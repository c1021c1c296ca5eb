"""pudet's config keys, added to a detectron2 config by :func:`add_pudet_config`."""
from detectron2.config import CfgNode as CN

__all__ = ["add_pudet_config"]


def add_pudet_config(cfg):
    """Adds pudet's keys, with their defaults, to ``cfg`` (a detectron2 ``get_cfg()``). Idempotent."""
    _C = cfg
    if "WILD_DIGITS" in _C:
        return cfg

    # The built-in wild-digits benchmark (pudet.data.datasets.wild_digits): registered as
    # "wild_digits_train" (labeled set L), "wild_digits_pool" (unlabeled pool U, hidden truth kept
    # apart for evaluation) and "wild_digits_val" by every pudet tool. The same values give the same files.
    _C.WILD_DIGITS = CN()
    # folder holding the built benchmarks; "" = $DETECTRON2_DATASETS/wild_digits
    _C.WILD_DIGITS.ROOT = ""
    # seed of the whole benchmark (every image and the pool's positive/negative draw)
    _C.WILD_DIGITS.SEED = 0
    # side of the square scenes, in pixels
    _C.WILD_DIGITS.IMAGE_SIZE = 128
    # number of labeled scenes in L (all positive, every known digit boxed)
    _C.WILD_DIGITS.NUM_LABELED = 400
    # number of scenes in the unlabeled pool U
    _C.WILD_DIGITS.NUM_POOL = 4000
    # number of validation scenes (positive, drawn from handwriting that L and U never use)
    _C.WILD_DIGITS.NUM_VAL = 300
    # fraction pi_p of positive scenes (holding known digits) in U; the rest hold only unknown digits and clutter
    _C.WILD_DIGITS.POS_FRACTION = 0.25
    # the digit classes the detector is taught; the other digits appear only as unlabeled "things in the wild"
    _C.WILD_DIGITS.KNOWN_CLASSES = [0, 1, 2, 3, 4]
    return cfg
