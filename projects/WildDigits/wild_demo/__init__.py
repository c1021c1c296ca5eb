"""The wild-digits demo (``run_demo.py``): Algorithm 1 and the paper's Table 1 rows on the built-in benchmark,
every step through pudet's tools. One module per job:

  settings  the command line, the sizes of the miniature and of ``--quick``, an output dir's settings guard
  rows      the experiment's rows and the tool options that each training and step is given
  runner    runs the tools (``--jobs`` at a time), skips finished steps, or lists them (``--dry-run``)
  stages    teacher, pu, select, label, students, report: the tool steps of each
  checks    the verdicts' comparisons (paired margins of two rows), the oracle split, the miniature's checks
  report    results.json and results.md from what the stages wrote
  summary   the folds side by side: rows mean ± std, each verdict's margin with its one-sided t bound
"""
