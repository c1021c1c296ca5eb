#!/usr/bin/env python
"""`make demo`: Algorithm 1 and the student trainings on the built-in wild-digits benchmark, through pudet's
tools (tools/train_net.py, purify_net.py train/select/label, evaluate_pool_truth.py, the gallery), then a table
shaped like the paper's Table 1, this fold's margin of each verdict, and the checks that make the miniature a
valid test of the method. The work is done by the package beside this file (wild_demo/).

Stages (run in order; --stage runs one, reading what the earlier ones wrote; each is rerun-safe: a
finished step is skipped, an interrupted training resumes from its last checkpoint; --dry-run lists the
commands of the steps still to run):
  teacher    the teacher D_t on L, from the benchmark's glyph-pretrained bottom-up (its "ImageNet",
             --pretrain-iters; built once and cached beside the benchmark), as the paper's teacher starts from
             ImageNet weights
  pu         the PU classifiers on L and the pool U, nnPU with the prior estimated: the paper's image-level
             N_pu (the teacher's backbone + a pooled linear head) and the region head (the teacher's regions
             at scales 1 and 0.5 scored one by one; an image scores as its best region; BBE prior)
  select     both score every pool image; U^P = the region head's top K = n_l. Then each selection against the
             pool's hidden truth (evaluate_pool_truth.py selection), the region head's beside uPU, naive PN, the
             teacher's own confidence and a true-label oracle on the same features
  label      D_t pseudo-labels the whole pool, U^P (each box with its region PU score: box-level purification),
             a random U^R of K images and U^C (the K images whose best box scores highest: the selection a
             practitioner tries first). Then, against the pool's hidden truth (evaluate_pool_truth.py, the only
             reader of it): U^C's ranking, the teacher's boxes above 0.5 on the negative scenes, and the oracle's
             pseudo-labels (K truly positive pool scenes with their TRUE boxes: a perfect purifier and a perfect
             teacher) with its selection of those scenes, which the teacher labels too
  students   the rows, each trained the schedule rule's iterations (pudet.data.schedule: the teacher's epochs, an
             epoch of L and K pool images being 2 * max(n_l, K) images): labeled only (the teacher); +
             self-distillation on L; + U^R, U^P at tau 0.5 and 0.9; + U^C at 0.5; + the oracle's scenes labelled by
             the teacher; + the oracle's true pool boxes (self-distillation on L + U^x); and the controls at equal
             compute, labeled only and self-distillation at the pool rows' iterations (--student-start and
             --student-iters say how every student trains)
  report     results.json, results.md, gallery.png (random vs PU-selected, the paper's Figure 3), the tables

The report: the table, each row with its iterations; this fold's margin of each verdict (the paper's claims under
its protocol: SD > labeled only, U^P > SD, U^P > U^R; then U^P > SD and > labeled only at equal iterations, U^P >
U^C, the oracle above every pseudo-labelled row and above SD at equal iterations) and the split of U^P's loss
against the oracle into selection and labels: a verdict needs the folds (`make demo-seeds`, summarize_runs.py);
the selections against the hidden truth; the priors; box-level purification; the teacher's false alarms on
negative pool scenes; the device, the teacher's seconds per iteration (the machine's yardstick) and each stage's
time; the miniature's validity checks: the pool is separable, the teacher is fooled by the pool, the oracle
ceiling. --quick runs every stage and every row at toy sizes into output/demo_quick: a smoke test of the pipeline
(its numbers mean nothing).

--table 3 makes the paper's Table 3 instead (self-distillation's terms one by one, on L alone; into
output/demo_table3): the stages teacher (the benchmark's, which is also the student alone), large_teacher (a
larger detector, configs/WildDigits/faster_rcnn_R34_FPN_teacher.yaml, from its own glyph-pretrained bottom-up),
students ((i) from the larger teacher and (ii) from the benchmark's: + hint, + hint + L_kdc, + hint + L_kdc +
L_kdr, and the three terms with L_kdr as Eq. 15 reads) and report (the table, each step's margin on this fold, the
larger teacher's seconds per iteration against the benchmark teacher's, and the check that it is clearly stronger).

Prints the tables; its last lines say where everything is.
"""
import os
import time

from wild_demo.report import done_line
from wild_demo.runner import Runner
from wild_demo.settings import Paths, check_settings, parse_args
from wild_demo.stages import STAGES


def main(argv=None):
    args = parse_args(argv, description=__doc__)
    check_settings(args)
    paths = Paths.of(args.output_dir)
    if not args.dry_run:
        os.makedirs(paths.logs, exist_ok=True)
    runner = Runner(paths.logs, jobs=args.jobs, dry_run=args.dry_run)
    start = time.time()
    stages = [args.stage] if args.stage else list(STAGES[args.table])
    for name in stages:
        print(f"== stage {name}", flush=True)
        STAGES[args.table][name](args, paths, runner.for_stage(name))
    print(done_line(args, stages, time.time() - start))


if __name__ == "__main__":
    main()
