#!/usr/bin/env python
"""Pseudo-labelled images of several pseudo-label files side by side, a column per file (the paper's Figure 3),
as detectron2's tools/visualize_json_results.py draws predictions:

  tools/visualize_pseudo_labels.py output/wild_digits/teacher/pseudo_random/pseudo_labels.json \\
      output/wild_digits/teacher/pseudo_labels/pseudo_labels.json --titles random PU-selected --output gallery.png
"""
import argparse
import json
import os

from pudet.evaluation.pseudo_labels import plot_gallery


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="pseudo-label files written by purify_net.py label (a column each)")
    parser.add_argument("--titles", nargs="+", default=None, help="column titles (default: the files' folders)")
    parser.add_argument("--output", default="gallery.png", help="PNG to write (default: %(default)s)")
    parser.add_argument("--tau", type=float, default=0.5,
                        help="draw boxes scoring at least this (default: %(default)s)")
    parser.add_argument("--num-images", type=int, default=6, help="images per column (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="which images are drawn (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.titles and len(args.titles) != len(args.files):
        parser.error("give one title per file")
    return args


def main(args):
    panels = []
    for path, title in zip(args.files, args.titles or [os.path.basename(os.path.dirname(p)) for p in args.files]):
        with open(path) as f:
            panels.append((title, json.load(f)))
    plot_gallery(args.output, panels, tau=args.tau, num_images=args.num_images, seed=args.seed)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main(parse_args())
