import glob
import logging
import os

import pytest
from detectron2.config import get_cfg

from pudet import add_pudet_config
from pudet.config import pseudo_score_thresh

from .helpers import REPO

YAMLS = sorted(
    glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True)
    + glob.glob(os.path.join(REPO, "projects", "**", "*.yaml"), recursive=True)
)


def test_there_are_configs():
    assert any(p.endswith("faster_rcnn_R_50_FPN_1x_teacher.yaml") for p in YAMLS)
    assert any(p.endswith("faster_rcnn_R18_FPN_teacher.yaml") for p in YAMLS)


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: os.path.relpath(p, REPO))
def test_config_merges(path):
    cfg = get_cfg()
    add_pudet_config(cfg)
    cfg.merge_from_file(path)


def test_add_pudet_config_is_idempotent_and_keeps_values():
    cfg = get_cfg()
    add_pudet_config(cfg)
    cfg.WILD_DIGITS.SEED = 7
    add_pudet_config(cfg)
    assert cfg.WILD_DIGITS.SEED == 7


def test_coco_teacher_recipe_matches_paper():
    cfg = get_cfg()
    add_pudet_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "COCO", "faster_rcnn_R_50_FPN_1x_teacher.yaml"))
    iters_per_epoch = -(-118287 // 32)
    assert cfg.SOLVER.IMS_PER_BATCH == 32 and cfg.SOLVER.BASE_LR == 0.04
    assert cfg.SOLVER.MAX_ITER == 12 * iters_per_epoch
    assert tuple(cfg.SOLVER.STEPS) == (8 * iters_per_epoch, 11 * iters_per_epoch)
    assert cfg.SOLVER.MOMENTUM == 0.9 and cfg.SOLVER.WEIGHT_DECAY == 1e-4
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (800,) and cfg.INPUT.RANDOM_FLIP == "horizontal"
    assert cfg.MODEL.RESNETS.DEPTH == 50 and cfg.DATASETS.TEST == ("coco_2017_val",)


def test_pseudo_score_thresh_renamed_old_key_still_works(tmp_path, caplog):
    cfg = get_cfg()
    add_pudet_config(cfg)
    assert pseudo_score_thresh(cfg) == 0.5
    cfg.merge_from_list(["DATASETS.PSEUDO_SCORE_THRESH", "0.9"])
    assert pseudo_score_thresh(cfg) == 0.9
    # a config file of the old layout merges and its value wins, with a deprecation warning
    old = tmp_path / "old.yaml"
    old.write_text("MODEL:\n  PUDET:\n    PSEUDO_SCORE_THRESH: 0.7\n")
    cfg.merge_from_file(str(old))
    with caplog.at_level(logging.WARNING):
        assert pseudo_score_thresh(cfg) == 0.7
    assert "renamed to DATASETS.PSEUDO_SCORE_THRESH" in caplog.text
