"""tools/gpu_check.sh on a machine without a GPU: a report saying so, exit 0, nothing run; and its memory part,
``tools/benchmark.py gpu-memory``, runs its passes (no memory figure off a GPU) at toy sizes."""
import os
import subprocess
import sys

import pytest

from .helpers import REPO


def test_gpu_check_without_a_gpu_writes_its_report_and_exits_0(tmp_path):
    report = tmp_path / "gpu" / "report.md"
    run = subprocess.run([os.path.join(REPO, "tools", "gpu_check.sh"), str(report)], capture_output=True, text=True,
                         env={**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "gpu_check: no CUDA device" in run.stdout and f"wrote {report}" in run.stdout
    assert "no CUDA device: torch sees no GPU" in report.read_text() and "nothing was measured" in report.read_text()
    assert os.listdir(tmp_path / "gpu") == ["report.md"]


@pytest.mark.slow
def test_gpu_memory_passes_run_at_toy_sizes_on_the_cpu():
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "benchmark.py"), "gpu-memory", "--device", "cpu", "--gpus", "16",
         "--image-size", "96", "128", "--select-batch", "2", "--label-batch", "2", "--steps", "1",
         "PU.INPUT_SIZE", "64", "MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64",
         "MODEL.ROI_BOX_HEAD.FC_DIM", "64"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for row in ("teacher training step, R50-FPN, 2 images", "distilled training step", "select: PU classifier",
                "label: teacher R50-FPN inference, 2 images"):
        assert row in run.stdout
    assert run.stdout.count("n/a (not a GPU)") == 4
