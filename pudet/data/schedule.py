"""The schedule rule of every student on L and a pool U^x (U^P, U^R, U^C, or none).

The rule is the authors' code's (DeFeat.pytorch, ``mmdet/datasets/mix_coco_imagenet.py``): an epoch of L and U^x
is ``2 * max(|L|, |U^x|)`` images, the even indices from L and the odd ones from U^x, the smaller set tiled; the
runner trains ``max_epochs * len(loader)`` iterations. So 1x is the teacher's number of epochs of such epochs,
with the lr steps at the teacher's epochs. With no pool (self-distillation on L alone) an epoch is |L| images, the
teacher's own. |U^x| is the number of pool images the student is given (the selection's K; the authors count
the images with at least one pseudo-box in the file, before tau).

For COCO (|L| = 118,287, batch 32, 12 epochs, steps at 8 and 11): U^P 118k trains 88,716 iterations (2x the
teacher's 44,364), 236k 177,000 (4x) and all of ImageNet (1,281,167) 960,876 (21.7x).

``python -m pudet.data.schedule --num-labeled N --num-pool M --ims-per-batch B [--epochs E --step-epochs ...]``
prints the schedule as config overrides (``SOLVER.MAX_ITER ... SOLVER.STEPS (...) SOLVER.CHECKPOINT_PERIOD ...``).
"""
import argparse
import math
from typing import NamedTuple, Sequence, Tuple

__all__ = ["Schedule", "epoch_images", "iterations_per_epoch", "student_schedule", "schedule_overrides"]


class Schedule(NamedTuple):
    """A training's length in iterations: ``max_iter``, the lr ``steps``, and ``iterations_per_epoch`` (its
    checkpoint period)."""

    max_iter: int
    steps: Tuple[int, ...]
    iterations_per_epoch: int


def epoch_images(num_labeled: int, num_pool: int = 0) -> int:
    """The images of one epoch of a student on ``num_labeled`` labeled and ``num_pool`` pool images:
    ``2 * max(num_labeled, num_pool)``, or ``num_labeled`` without a pool."""
    if num_labeled < 1 or num_pool < 0:
        raise ValueError(f"an epoch needs labeled images and a pool of >= 0 images, got {num_labeled}, {num_pool}")
    return 2 * max(num_labeled, num_pool) if num_pool else num_labeled


def iterations_per_epoch(num_labeled: int, num_pool: int, ims_per_batch: int) -> int:
    """``ceil(epoch_images / ims_per_batch)``: an epoch's last batch counts whole, as the authors' loader's."""
    return math.ceil(epoch_images(num_labeled, num_pool) / ims_per_batch)


def student_schedule(*, num_labeled: int, num_pool: int, ims_per_batch: int, epochs: float,
                     step_epochs: Sequence[float]) -> Schedule:
    """The schedule of ``epochs`` epochs (the teacher's number; it may be fractional, e.g. a teacher of 500
    iterations of batch 8 on 200 images trains 20) with the lr steps after ``step_epochs`` epochs, for a student
    on ``num_labeled`` labeled and ``num_pool`` pool images at ``ims_per_batch`` images per iteration.

    Example: 118,287 + 118,287 images at batch 32 are 7,393 iterations an epoch; 12 epochs with steps at 8 and 11
    are ``Schedule(88716, (59144, 81323), 7393)``.
    """
    per_epoch = iterations_per_epoch(num_labeled, num_pool, ims_per_batch)
    return Schedule(round(epochs * per_epoch), tuple(round(e * per_epoch) for e in step_epochs), per_epoch)


def _tuple(values) -> str:
    """A tuple as a config value, without spaces (one shell word): ``(1,)``, ``(1,2)``."""
    return f"({','.join(map(str, values))}{',' if len(values) == 1 else ''})"


def schedule_overrides(schedule: Schedule) -> list:
    """``schedule`` as detectron2 config overrides (``KEY VALUE`` words), one checkpoint an epoch."""
    return ["SOLVER.MAX_ITER", str(schedule.max_iter), "SOLVER.STEPS", _tuple(schedule.steps),
            "SOLVER.CHECKPOINT_PERIOD", str(schedule.iterations_per_epoch)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pudet.data.schedule", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-labeled", type=int, required=True, help="labeled images |L|")
    parser.add_argument("--num-pool", type=int, default=0, help="pool images |U^x| (default: 0, L alone)")
    parser.add_argument("--ims-per-batch", type=int, required=True, help="SOLVER.IMS_PER_BATCH")
    parser.add_argument("--epochs", type=float, default=12, help="the teacher's epochs (default: 12, the 1x)")
    parser.add_argument("--step-epochs", type=float, nargs="*", default=[8, 11],
                        help="the teacher's lr steps, in epochs (default: 8 11)")
    args = parser.parse_args(argv)
    schedule = student_schedule(num_labeled=args.num_labeled, num_pool=args.num_pool,
                                ims_per_batch=args.ims_per_batch, epochs=args.epochs, step_epochs=args.step_epochs)
    print(" ".join(schedule_overrides(schedule)))


if __name__ == "__main__":
    main()
