"""The students' schedule rule (pudet.data.schedule) against numbers computed by hand, and the COCO recipe's
student config and row scripts derived from it."""
import os
import subprocess
import sys

import pytest
from detectron2.config import get_cfg

from pudet.config import add_pudet_config
from pudet.data.schedule import Schedule, epoch_images, schedule_overrides, student_schedule

from .helpers import REPO

COCO = 118287


def coco(num_pool, ims_per_batch=32):
    return student_schedule(num_labeled=COCO, num_pool=num_pool, ims_per_batch=ims_per_batch, epochs=12,
                            step_epochs=(8, 11))


def test_an_epoch_is_twice_the_larger_set():
    assert epoch_images(200) == 200  # L alone: the teacher's epoch
    assert epoch_images(200, 200) == 400
    assert epoch_images(200, 50) == 400  # the smaller set tiled
    assert epoch_images(100, 300) == 600
    with pytest.raises(ValueError):
        epoch_images(0, 10)


def test_the_coco_rows_by_hand():
    teacher = 12 * 3697  # ceil(118287 / 32) = 3697
    assert coco(0) == Schedule(teacher, (8 * 3697, 11 * 3697), 3697) == Schedule(44364, (29576, 40667), 3697)
    # U^P / U^R 118k: 236,574 images an epoch, ceil(/ 32) = 7393 (not 12 * 7394 = 88,728)
    assert coco(COCO) == Schedule(88716, (59144, 81323), 7393)
    # 236k: 472,000 images, 14,750 an epoch: 4x the teacher (L + U^x epochs would give 3x)
    assert coco(236000) == Schedule(177000, (118000, 162250), 14750)
    assert round(177000 / teacher, 2) == 3.99
    # all of ImageNet: 2,562,334 images, 80,073 an epoch: 21.7x
    assert coco(1281167).max_iter == 960876 and round(960876 / teacher, 1) == 21.7
    # at batch 16: ceil(236,574 / 16) = 14,786 an epoch
    assert coco(COCO, ims_per_batch=16) == Schedule(177432, (118288, 162646), 14786)


def test_the_miniature_in_epochs():
    # a teacher of 500 iterations of batch 8 on 200 images trains 20 epochs, its step after 400 iterations (16)
    sd = student_schedule(num_labeled=200, num_pool=0, ims_per_batch=8, epochs=20, step_epochs=(16,))
    pool = student_schedule(num_labeled=200, num_pool=200, ims_per_batch=8, epochs=20, step_epochs=(16,))
    assert (sd, pool) == (Schedule(500, (400,), 25), Schedule(1000, (800,), 50))
    assert schedule_overrides(pool) == ["SOLVER.MAX_ITER", "1000", "SOLVER.STEPS", "(800,)",
                                        "SOLVER.CHECKPOINT_PERIOD", "50"]


def test_the_coco_student_config_and_row_scripts_follow_the_rule():
    cfg = get_cfg()
    add_pudet_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "COCO", "faster_rcnn_R_50_FPN_1x_self_distill_pseudo.yaml"))
    assert cfg.SOLVER.IMS_PER_BATCH == 32
    assert (cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS), cfg.SOLVER.CHECKPOINT_PERIOD) == coco(COCO)
    # common.sh's student() passes the rule's overrides for each n_u (train() only echoes here)
    script = ("source projects/COCO-ImageNet/common.sh MODEL.DEVICE cpu; train() { echo \"$@\"; }; "
              "student pu_236k 0.9 236000")
    out = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHON": sys.executable}).stdout
    assert "DATASETS.PSEUDO_SCORE_THRESH 0.9 SOLVER.MAX_ITER 177000 SOLVER.STEPS (118000,162250) " \
           "SOLVER.CHECKPOINT_PERIOD 14750" in out
