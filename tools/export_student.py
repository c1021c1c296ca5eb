#!/usr/bin/env python
"""Converts any self-distillation training checkpoint (SelfDistillRCNN: student + adaptation layers) into a
plain detectron2 checkpoint of the student, which a GeneralizedRCNN or DefaultPredictor loads without pudet.

  tools/export_student.py output/wild_digits/student_sd/model_0000999.pth student.pth

(tools/train_net.py already writes OUTPUT_DIR/model_final_student.pth at the end of training.)
"""
import argparse

from pudet.modeling.export import export_student


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a SelfDistillRCNN training checkpoint (.pth)")
    p.add_argument("output", help="where the plain student checkpoint goes")
    args = p.parse_args(argv)
    n = export_student(args.checkpoint, args.output)
    print(f"Wrote {args.output}: the student's {n} tensors (adaptation layers dropped)")


if __name__ == "__main__":
    main()
