"""Scoring a pool in resumable chunks, and choosing U^P."""
import json
import os

import numpy as np
import pytest

from pudet.data import chunked
from pudet.data.build import build_batched_inference_loader
from pudet.data.chunked import ChunkedInference
from pudet.data.mappers import PUDatasetMapper
from pudet.evaluation.plotting import plot_score_histogram
from pudet.evaluation.ranking import ranking_metrics
from pudet.pu.selection import select_top
from pudet.purification import image_head as sel
from pudet.purification import selection_files

from .helpers import Crash, CrashAfter, pu_cfg


def run(model, dicts, out, chunk_size=4):
    return sel.score_pool(model, dicts, ChunkedInference(str(out), kind="pu-scores", mapper=PUDatasetMapper(
        pu_cfg(), False), batch_size=2, chunk_size=chunk_size, num_workers=0))


def test_kill_and_resume_gives_identical_result(model, pool, tmp_path):
    run(model, pool, tmp_path / "straight")
    ids, scores, bad = sel.merge_chunks(str(tmp_path / "straight"), len(pool), 4)

    with pytest.raises(Crash):
        run(CrashAfter(model, 3), pool, tmp_path / "killed")  # dies inside the second chunk
    finished = sorted(os.listdir(tmp_path / "killed" / "chunks"))
    assert finished == ["chunk_000000.npz", "manifest.json"]
    with pytest.raises(FileNotFoundError, match="chunk 1 is missing"):
        sel.merge_chunks(str(tmp_path / "killed"), len(pool), 4)
    # a half-written chunk left by a kill never counts as finished
    with open(tmp_path / "killed" / "chunks" / ".chunk_000001.npz.tmp123", "wb") as f:
        f.write(b"partial")
    rescored = run(model, pool, tmp_path / "killed")
    assert rescored == len(pool) - 4  # the first chunk was skipped
    ids2, scores2, bad2 = sel.merge_chunks(str(tmp_path / "killed"), len(pool), 4)
    assert (ids == ids2).all() and (scores == scores2).all() and bad == bad2
    assert run(model, pool, tmp_path / "killed") == 0  # everything done: nothing rescored


def test_unreadable_images_listed_with_reasons(model, pool, tmp_path):
    run(model, pool, tmp_path)
    ids, scores, bad = sel.merge_chunks(str(tmp_path), len(pool), 4)
    assert sorted(ids.tolist()) == [100 + i for i in range(13) if i not in (4, 9)]
    reasons = {b.image_id: b.reason for b in bad}
    assert set(reasons) == {104, 109} and bad[0].file_name == pool[4]["file_name"]
    assert reasons[104].endswith("empty file") and "not an image" in reasons[109]
    assert np.isfinite(scores).all()


def test_resume_with_other_arguments_is_refused(model, pool, tmp_path):
    run(model, pool, tmp_path)
    with pytest.raises(ValueError, match="results of another job"):
        run(model, pool, tmp_path, chunk_size=5)


def test_sharded_ranks_cover_the_pool_once(model, pool, tmp_path, monkeypatch):
    """Each rank of ``detectron2.utils.comm`` scores its chunks (c % world_size == rank)."""
    run(model, pool, tmp_path / "one")
    monkeypatch.setattr(chunked.comm, "get_world_size", lambda: 3)
    monkeypatch.setattr(chunked.comm, "synchronize", lambda: None)
    for rank in range(3):
        monkeypatch.setattr(chunked.comm, "get_rank", lambda rank=rank: rank)
        run(model, pool, tmp_path / "three")
    assert sorted(os.listdir(tmp_path / "three" / "chunks")) == [f"chunk_{c:06d}.npz" for c in range(4)] + [
        "manifest.json"]
    a = sel.merge_chunks(str(tmp_path / "one"), len(pool), 4)
    b = sel.merge_chunks(str(tmp_path / "three"), len(pool), 4)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_one_loader_for_every_chunk_never_batching_across_two(model, pool, tmp_path, monkeypatch):
    """A run builds one loader for all its chunks (its workers start once); no batch spans two chunks, so each
    chunk is batched as it would be alone: 13 images in chunks of 5 at batch 2 go 2 + 2 + 1, 2 + 2 + 1, 2 + 1."""
    dicts = [{"image_id": i} for i in range(13)]
    batches = list(build_batched_inference_loader(dicts, lambda d: d["image_id"], 2, 0, chunk_size=5))
    assert batches == [[0, 1], [2, 3], [4], [5, 6], [7, 8], [9], [10, 11], [12]]
    assert list(build_batched_inference_loader(dicts, lambda d: d["image_id"], 5, 0)) == [
        [0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12]]

    built = []

    def counted(*args, **kwargs):
        built.append(len(args[0]))
        return build_batched_inference_loader(*args, **kwargs)

    monkeypatch.setattr(chunked, "build_batched_inference_loader", counted)
    run(model, pool, tmp_path)
    assert built == [len(pool)]  # 4 chunks, one loader
    (tmp_path / "chunks" / "chunk_000001.npz").unlink()
    (tmp_path / "chunks" / "chunk_000003.npz").unlink()
    assert run(model, pool, tmp_path) == 4 + 1  # a resume loads only the missing chunks' images, in one loader
    assert built == [len(pool), 5]


def test_default_inference_workers_none_for_a_cpu_model_on_two_cores(monkeypatch):
    cfg = pu_cfg()
    cfg.DATALOADER.NUM_WORKERS = 4
    for cores, device, workers in ((2, "cpu", 0), (1, "cpu", 0), (16, "cpu", 4), (2, "cuda", 4), (2, "cuda:1", 4)):
        monkeypatch.setattr(chunked.os, "cpu_count", lambda: cores)
        cfg.MODEL.DEVICE = device
        assert chunked.default_inference_workers(cfg) == workers, (cores, device)


def test_select_top_and_threshold_deterministic_ties():
    ids = np.array([5, 3, 9, 1])
    scores = np.array([0.5, 0.9, 0.5, 0.1], dtype=np.float32)
    assert select_top(ids, scores, topk=2).tolist() == [1, 0]  # 0.9, then the 0.5 tie by lower id (5 < 9)
    assert select_top(ids, scores, topk=10).tolist() == [1, 0, 2, 3]
    assert select_top(ids, scores, threshold=0.5).tolist() == [1, 0, 2]
    with pytest.raises(ValueError):
        select_top(ids, scores, topk=1, threshold=0.2)


def test_ranking_metrics_by_hand():
    # positives scored 0.9 and 0.7; negatives 0.8 and 0.1. Pairs ordered right: 3 of 4 -> AUC 0.75.
    m = ranking_metrics([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0], k=2)
    assert m == {"AUC": 0.75, "precision@K": 0.5, "recall@K": 0.5, "K": 2}


def test_outputs_written_atomically(tmp_path):
    ids = np.array([2, 1])
    scores = np.array([0.25, 0.75], dtype=np.float32)
    names = {1: "b.jpg", 2: "a.jpg"}
    selection_files.write_scores(str(tmp_path / "scores.tsv"), ids, scores, names, {1: True, 2: False})
    assert (tmp_path / "scores.tsv").read_text().splitlines() == [
        "image_id\tscore\tfile_name\tpositive", "2\t0.25\ta.jpg\t0", "1\t0.75\tb.jpg\t1"]
    read_ids, read_scores, read_names = selection_files.read_scores(str(tmp_path / "scores.tsv"))
    assert read_ids.tolist() == [2, 1] and read_scores.tolist() == [0.25, 0.75] and read_names == names
    chosen = select_top(ids, scores, topk=1)
    selection_files.write_selection(str(tmp_path / "sel.json"), ids, scores, chosen, names, {"rule": "top-1"})
    data = json.loads((tmp_path / "sel.json").read_text())
    assert data["images"] == [{"file_name": "b.jpg", "image_id": 1, "score": 0.75}]
    plot_score_histogram(str(tmp_path / "h.png"), scores, [False, True])
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["h.png", "scores.tsv", "sel.json"]  # no temporary left


def test_mapper_input_of_input_size_equals_detectron2_resize(tmp_path):
    """An image already of PU.INPUT_SIZE skips the resize: the tensor is detectron2's Resize output exactly."""
    from detectron2.data import transforms as T
    from PIL import Image

    rng = np.random.default_rng(0)
    mapper = PUDatasetMapper(pu_cfg(), False)
    for size in ((32, 32), (32, 48)):
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        path = str(tmp_path / f"{size[1]}.png")
        Image.fromarray(rgb).save(path)
        out = mapper({"file_name": path, "image_id": 1})["image"]
        expected = T.Resize((32, 32)).get_transform(rgb).apply_image(np.ascontiguousarray(rgb[:, :, ::-1]))
        assert out.shape == (3, 32, 32)
        assert (out.numpy() == expected.transpose(2, 0, 1)).all()
    assert (out.numpy() != rgb[:, :32, ::-1].transpose(2, 0, 1)).any()  # the 48-wide one was resized
