#!/usr/bin/env python
"""Keeps pudet's patches harmless: runs detectron2's own tests (from a source snapshot) once in a plain process
and once in a process that imported pudet first, and fails when a test passes without pudet and fails with it.

  tools/check_detectron2_tests.py ../shared/detectron2/detectron2-main.tar.gz --output output/ci/detectron2_tests.md

The tests run with this interpreter (its installed detectron2 and pudet), from a temporary folder that holds only
the tests: inside a source tree, the uncompiled source package would shadow the installed one. The report lists
every test whose outcome differs, and every test that fails either way with its reason (downloads, the
environment). Exit status: 1 when a test passes without pudet and fails with it, else 0.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter

# the tests of what pudet's patches touch: models, data, structures, layers, the trainer, checkpoints, solver
TESTS = ("tests/__init__.py", "tests/modeling", "tests/data", "tests/structures", "tests/layers",
         "tests/test_engine.py", "tests/test_checkpoint.py", "tests/test_solver.py")
# the pytest run, in a process that imports pudet first or not
RUN = "import sys; {first}import pytest; sys.exit(pytest.main(sys.argv[1:]))"


def copy_tests(source: str, dest: str) -> str:
    """Copies :data:`TESTS` of ``source`` (a detectron2 source folder or a .tar.gz of one) into ``dest``.
    Returns ``dest/tests``."""
    if os.path.isdir(source):
        for rel in TESTS:
            src, dst = os.path.join(source, rel), os.path.join(dest, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            (shutil.copytree if os.path.isdir(src) else shutil.copyfile)(src, dst)
        return os.path.join(dest, "tests")
    with tarfile.open(source) as tar:
        members = tar.getmembers()
        top = os.path.commonpath([m.name for m in members])
        wanted = [m for m in members if m.isfile() and any(
            os.path.relpath(m.name, top) == rel or os.path.relpath(m.name, top).startswith(rel + "/") for rel in TESTS)]
        for m in wanted:
            m.name = os.path.relpath(m.name, top)
        tar.extractall(dest, members=wanted, filter="data")
    return os.path.join(dest, "tests")


def start_tests(folder: str, junit: str, with_pudet: bool) -> subprocess.Popen:
    """Starts pytest on ``folder/tests`` in a new process (``cwd`` = ``folder``), its results written to ``junit``."""
    code = RUN.format(first="import pudet; " if with_pudet else "")
    return subprocess.Popen([sys.executable, "-c", code, "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                             "--rootdir", folder, f"--junitxml={junit}", "tests"], cwd=folder)


def outcomes(junit: str) -> dict:
    """``{test id: (outcome, reason)}`` from a junit file: passed, failed, error or skipped, and the first line of
    the failure, error or skip message."""
    results = {}
    for case in ET.parse(junit).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        outcome, reason = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                reason = (node.get("message") or node.text or "").strip().splitlines()[0][:200] if (
                    node.get("message") or node.text) else ""
                break
        results[test] = (outcome, reason)
    return results


def compare(plain: dict, with_pudet: dict):
    """``(broken, differ, failing)``: the tests that pass without pudet and fail (or are missing) with it, every
    other test whose outcome differs, and those that fail either way (with pudet's reason)."""
    bad = ("failed", "error")
    broken = sorted(t for t, (o, _) in plain.items() if o == "passed" and with_pudet.get(t, ("missing",))[0] != "passed"
                    and with_pudet.get(t, ("missing",))[0] != "skipped")
    differ = sorted(t for t in set(plain) | set(with_pudet) if t not in broken
                    and plain.get(t, ("missing",))[0] != with_pudet.get(t, ("missing",))[0])
    failing = sorted(t for t, (o, _) in with_pudet.items() if o in bad and plain.get(t, ("missing",))[0] in bad)
    return broken, differ, failing


def report(plain: dict, with_pudet: dict) -> str:
    broken, differ, failing = compare(plain, with_pudet)

    def counts(results):
        c = Counter(o for o, _ in results.values())
        return ", ".join(f"{c[k]} {k}" for k in ("passed", "failed", "error", "skipped") if c[k])

    lines = ["# detectron2's tests without and with `import pudet`", "",
             f"- without pudet: {counts(plain)}", f"- with pudet: {counts(with_pudet)}", "",
             f"## Passing without pudet, failing with it: {len(broken)}", ""]
    lines += [f"- `{t}`: {with_pudet.get(t, ('missing', 'not run'))[1]}" for t in broken]
    lines += ["", f"## Other tests whose outcome differs: {len(differ)}", ""]
    lines += [f"- `{t}`: {plain.get(t, ('missing',))[0]} without pudet, {with_pudet.get(t, ('missing',))[0]} with it"
              for t in differ]
    lines += ["", f"## Failing either way: {len(failing)}", ""]
    lines += [f"- `{t}` ({with_pudet[t][0]}): {with_pudet[t][1]}" for t in failing]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="detectron2's source: a folder, or a .tar.gz of one")
    parser.add_argument("--output", required=True, help="the report (markdown)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per run (default: %(default)s)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="d2tests_") as work:
        # the two runs side by side, each in its own copy of the tests (a test may write beside itself)
        junits, procs = {}, {}
        for with_pudet in (False, True):
            folder = os.path.join(work, f"run_{int(with_pudet)}")
            copy_tests(args.source, folder)
            junits[with_pudet] = os.path.join(work, f"junit_{int(with_pudet)}.xml")
            procs[with_pudet] = start_tests(folder, junits[with_pudet], with_pudet)
        deadline = time.monotonic() + args.timeout  # both run at once: one deadline bounds each run
        try:
            for proc in procs.values():
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        finally:
            for proc in procs.values():
                proc.kill()
        runs = {with_pudet: outcomes(junit) for with_pudet, junit in junits.items()}
    text = report(runs[False], runs[True])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text)
    print(text)
    broken = compare(runs[False], runs[True])[0]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
