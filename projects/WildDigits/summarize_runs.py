#!/usr/bin/env python
"""The folds of `make demo` side by side (`make demo-seeds` runs benchmark seeds 0-4 and this), from the
``results.json`` each run's report wrote:

    .venv/bin/python projects/WildDigits/summarize_runs.py output/demo output/demo_s1 ... output/demo_s4 \
        [--output output/demo_seeds.md]

A column per run, labelled by the settings that differ between the runs (``seed 1``; ``seed 0, known 5,6,7,8,9``);
the settings every run shares are printed once above the tables. The tables: every row's iterations, its AP on
each fold and its mean ± std over the folds; each verdict (the paper's claims under its protocol, then the
comparisons at equal iterations and the oracle's) with its paired margin on each fold, the mean margin, its
standard deviation s and its one-sided 95% lower bound over the n folds, mean - t_{0.95,n-1} * s / sqrt(n):
"holds" where the bound is above 0, "reversed" where the opposite margin's bound is above 0, else "undecided";
the split of U^P's loss against the oracle into selection and labels, judged the same way; the miniature's checks
on each run and over all of them (one with a pass mark holds only where it holds on every run); each run's time,
the teacher's seconds per iteration (the machine's yardstick) and the time in teacher iterations. ``--output F``
also writes the text as markdown to F and the summary as data beside it (F's name with ``.json``). Runs whose rows
differ, and folders without a finished report, are refused. Folds of Table 3 (`run_demo.py --table 3`; `make
demo-table3-seeds` runs 5 and this) get its rows and each step of the table, judged the same way.
"""
import argparse
import json
import os

from wild_demo.summary import load_runs, summarize


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="the runs' output folders (run_demo.py --output-dir)")
    parser.add_argument("--output", default=None,
                        help="also write the summary as markdown to this file, and as data to it with .json")
    args = parser.parse_args(argv)
    if args.output and args.output.endswith(".json"):
        parser.error(f"--output {args.output}: the markdown file's name (the data goes beside it, with .json)")
    summary = summarize(load_runs(args.folders))
    text = "\n\n".join(summary["text"])
    print(f"\n{text}\n")
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            made = "make demo-table3" if summary["shared settings"].get("table") == 3 else "make demo"
            f.write(f"# wild-digits benchmark: {len(args.folders)} folds of `{made}`\n\n{text}\n")
        data = os.path.splitext(args.output)[0] + ".json"
        with open(data, "w") as f:
            json.dump({k: v for k, v in summary.items() if k != "text"}, f, indent=2)
        print(f"Summary: {args.output} and {data}")


if __name__ == "__main__":
    main()
