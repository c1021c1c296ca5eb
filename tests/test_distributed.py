"""Several processes on the CPU (gloo, localhost), as a user runs them with ``--num-gpus 2`` or
``--num-machines 2``: detectron2's launch and DDP on both builds, and the evaluators gathering
across ranks. The tools' trainings and inference with processes: tests/test_distributed_tools.py."""
import importlib
import json
import os

import pytest
import torch
import torch.distributed as dist

from pudet.compat import distributed

from .multiproc import run_tool


def test_processes_join_a_gloo_group_and_ddp_averages_gradients(tmp_path):
    run_tool("tests/dist_jobs.py", ["--job", "ddp", "--out", tmp_path, "--num-gpus", "2", "--dist-url", "auto"],
             log=tmp_path / "log.txt")
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, s in enumerate(seen):
        assert (s["backend"], s["rank"], s["world"], s["local rank"], s["local size"]) == ("gloo", rank, 2, rank, 2)
        # the trainer's create_ddp_model gives a CPU module no device ids; inputs 1 and 2: gradients average 1.5
        assert s["ddp"] == "DistributedDataParallel" and s["device_ids"] is None
        assert s["grad"] == [[1.5, 1.5, 1.5]]


def test_more_gpus_than_there_are_is_an_error_before_the_group_forms(monkeypatch):
    launch = importlib.import_module("detectron2.engine.launch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    ran = []
    with pytest.raises(AssertionError):
        # process 0 of --num-gpus 2 on a machine with 1 GPU (the rendezvous address is never contacted)
        launch._distributed_worker(0, ran.append, 2, 2, 0, "tcp://127.0.0.1:9", ("main",))
    assert ran == [] and not dist.is_initialized()


def test_cpu_ddp_is_installed_where_the_trainer_looks_it_up():
    from detectron2.engine import defaults

    assert defaults.create_ddp_model is distributed.create_ddp_model
    model = torch.nn.Linear(2, 1)
    assert distributed.create_ddp_model(model) is model  # one process: the model itself, as detectron2's


def test_evaluators_gather_across_ranks_to_the_numbers_of_one_process(tiny_benchmark, tiny_root, tmp_path):
    """COCO on val, the pool's hidden-truth evaluator and the PU evaluator, on the same (noisy, far from 0 and
    100) predictions: 2 processes, each evaluating its shard, report exactly what one process reports."""
    results = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        run_tool("tests/dist_jobs.py", ["--job", "evaluate", "--out", out, "--tiny-root", tiny_root, "--num-gpus", n,
                                        "--dist-url", "auto"], log=tmp_path / f"p{n}.txt")
        results[n] = json.loads((out / "results.json").read_text())
    assert json.dumps(results[2]) == json.dumps(results[1])
    one = results[1]
    assert 10 < one["wild_digits_val"]["bbox"]["AP"] < 90
    pool = one["wild_digits_pool"]["pool"]
    assert (pool["images neg"], pool["images pos"]) == (12, 8) and 10 < pool["AP"] < 90
    pu = one["pu_holdout"]["pu"]
    assert (pu["labeled"], pu["unlabeled"], pu["unreadable"]) == (6, 10, 0) and 50 < pu["AUC"] < 100
    assert os.path.isfile(tmp_path / "p2" / "inference" / "wild_digits_val" / "coco_instances_results.json")
