#!/usr/bin/env python
"""Converts any self-distillation training checkpoint (SelfDistillRCNN: student + adaptation layers) into a
plain detectron2 checkpoint of the student, which a GeneralizedRCNN or DefaultPredictor loads without pudet.

  tools/export_student.py output/wild_digits/student_sd/model_0000249.pth student.pth
  tools/export_student.py --config-file configs/WildDigits/student_R18_FPN_sd.yaml \\
      output/wild_digits/student_sd/model_0000249.pth student.pth    # and check that it loads into that student

With --config-file (the student's training config, and KEY VALUE overrides), the exported checkpoint is loaded
strictly into the plain GeneralizedRCNN that config describes, as tools/train_net.py --eval-only builds it with
MODEL.META_ARCHITECTURE GeneralizedRCNN: a missing, unexpected or misshapen tensor is an error.
(tools/train_net.py already writes OUTPUT_DIR/model_final_student.pth at the end of training.)
"""
import argparse

import pudet  # noqa: F401  (applies pudet.compat before detectron2 is used)

# isort: split
from detectron2.modeling import build_model

from pudet.config import get_pudet_cfg
from pudet.modeling.checkpoint import load_weights_strictly
from pudet.modeling.export import export_student


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a SelfDistillRCNN training checkpoint (.pth)")
    p.add_argument("output", help="where the plain student checkpoint goes")
    p.add_argument("--config-file", default="", metavar="FILE", help="the student's config: check that the "
                   "exported checkpoint loads strictly into its GeneralizedRCNN")
    p.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides, KEY VALUE pairs")
    args = p.parse_args(argv)
    n = export_student(args.checkpoint, args.output)
    print(f"Wrote {args.output}: the student's {n} tensors (adaptation layers dropped)")
    if args.config_file:
        cfg = get_pudet_cfg(args.config_file, [*args.opts, "MODEL.META_ARCHITECTURE", "GeneralizedRCNN",
                                               "MODEL.WEIGHTS", ""])
        load_weights_strictly(build_model(cfg), args.output)
        print(f"It loads strictly into the GeneralizedRCNN of {args.config_file}")


if __name__ == "__main__":
    main()
