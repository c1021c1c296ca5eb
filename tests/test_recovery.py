"""Failure and recovery: images in the wild never stop training, a rerun never reuses another job's results,
no broken file under a final name, bad values refused before training."""
import json
import logging
import os
import shutil
import types

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.samplers import TrainingSampler
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model
from PIL import Image

from pudet.compat.trainer import AtomicCheckpointer
from pudet.config import check_config
from pudet.data.build import build_skipping_train_loader
from pudet.data.chunked import ChunkedInference, describe_job
from pudet.data.datasets import list_pool_images, load_image_pool, pseudo_dataset_name, register_pseudo_labeled
from pudet.data.mappers import InferenceMapper, PseudoLabelMapper, PUDatasetMapper
from pudet.engine import DetectionTrainer
from pudet.engine.pseudo_label import label_images, merge_pseudo_labels, random_subset, write_pseudo_labels
from pudet.engine.trainers import ExportStudent
from pudet.modeling.pu_classifier import PUClassifier
from pudet.pu.selection import select_top
from pudet.purification import image_head as sel

from . import faults
from .helpers import REPO, TEACHER_YAML, TINY, load_script, pu_cfg, teacher_cfg, tiny_opts


@pytest.fixture
def pudet_log(caplog):
    """caplog, receiving the ``pudet`` logger's records even after a tool's ``setup_logger`` stopped them from
    propagating to the root logger."""
    logger = logging.getLogger("pudet")
    logger.addHandler(caplog.handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def wild(tmp_path_factory):
    """Images in the wild: a 8200x8200 JPEG (67 MP, above read_image_safely's 64 MP limit), a 16-bit PNG, a
    truncated JPEG and an empty file."""
    d = tmp_path_factory.mktemp("wild_images")
    paths = {k: str(d / k) for k in ("huge.jpg", "gray16.png", "truncated.jpg", "empty.jpg")}
    huge = np.zeros((8200, 8200, 3), np.uint8)
    huge[:, :, 0] = np.linspace(0, 255, 8200, dtype=np.uint8)[None, :]
    huge[2000:6000, 3000:5000] = (40, 200, 90)
    Image.fromarray(huge).save(paths["huge.jpg"], quality=70)
    del huge
    Image.fromarray((np.arange(60 * 80, dtype=np.uint16).reshape(60, 80) * 13)).save(paths["gray16.png"])
    small = str(d / "small.jpg")
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(small)
    data = open(small, "rb").read()
    with open(paths["truncated.jpg"], "wb") as f:
        f.write(data[: len(data) // 2])
    open(paths["empty.jpg"], "wb").close()
    return paths


# 1. unreadable images never stop training ------------------------------------------------------------------

def test_training_loader_skips_unreadable_images(tiny_benchmark, tiny_root, wild):
    teacher_cfg(tiny_root)
    good = [{"file_name": d["file_name"], "image_id": d["image_id"]}
            for d in DatasetCatalog.get("wild_digits_pool")[:3]]
    bad = [{"file_name": wild[k], "image_id": 100 + i} for i, k in enumerate(("truncated.jpg", "empty.jpg"))]
    huge = {"file_name": wild["huge.jpg"], "image_id": 200}
    dicts = good[:1] + bad[:1] + good[1:2] + bad[1:] + [huge] + good[2:]
    mapper = PUDatasetMapper(pu_cfg(), True)

    def batches(n):
        loader = build_skipping_train_loader(dicts, mapper, TrainingSampler(len(dicts), seed=0), total_batch_size=4,
                                             aspect_ratio_grouping=False, num_workers=0)
        it = iter(loader)
        return [[x["file_name"] for x in next(it)] for _ in range(n)]

    seen = batches(6)
    assert all(len(b) == 4 for b in seen)
    drawn = {f for b in seen for f in b}
    assert drawn == {d["file_name"] for d in good} | {huge["file_name"]}  # the huge JPEG is decoded and used
    assert batches(6) == seen  # skipping is deterministic for a seed
    only_bad = build_skipping_train_loader(bad, mapper, TrainingSampler(2, seed=0), total_batch_size=1,
                                           aspect_ratio_grouping=False, num_workers=0)
    with pytest.raises(RuntimeError, match="every one of the 2 images"):
        next(iter(only_bad))


# 3. what label decodes is what training decodes --------------------------------------------------------------

def test_pseudo_label_mapper_decodes_as_label_did(tiny_benchmark, tiny_root, wild):
    cfg = teacher_cfg(tiny_root, "INPUT.RANDOM_FLIP", "none", "INPUT.PSEUDO_COLOR_JITTER", "0.0",
                       "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MIN_SIZE_TEST", "96")
    for name in ("huge.jpg", "gray16.png"):
        labelled = InferenceMapper(cfg)({"file_name": wild[name], "image_id": 0})
        d = {"file_name": wild[name], "image_id": 0, "height": labelled["height"], "width": labelled["width"],
             "annotations": []}
        trained = PseudoLabelMapper(cfg, True)(d)
        assert torch.equal(trained["image"], labelled["image"]), name
    assert (labelled["height"], labelled["width"]) == (60, 80)


def test_huge_image_pseudo_labelled_then_trained(tiny_benchmark, tiny_root, wild, tmp_path):
    cfg = teacher_cfg(tiny_root)
    torch.manual_seed(0)
    teacher = build_model(cfg).eval()
    dicts = [{"file_name": wild["huge.jpg"], "image_id": 7}, DatasetCatalog.get("wild_digits_pool")[0]]
    label_images(teacher, dicts, ChunkedInference(str(tmp_path / "label"), kind="pseudo-labels",
                                                  mapper=InferenceMapper(cfg), batch_size=2, chunk_size=8,
                                                  num_workers=0), category_ids=[1, 2, 3, 4, 5])
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(TINY.thing_classes)]
    coco, bad = merge_pseudo_labels(str(tmp_path / "label"), 2, 8, categories, {})
    assert bad == [] and coco["images"][0]["width"] == 1025  # decoded at 1/8 scale, recorded as decoded
    path = str(tmp_path / "pseudo.json")
    write_pseudo_labels(path, coco)
    cfg = teacher_cfg(tiny_root, "DATASETS.TRAIN_PSEUDO", (path,), "DATASETS.PSEUDO_KEEP_EMPTY", "True",
                       "MODEL.PUDET.PSEUDO_SCORE_THRESH", "0.05", "DATASETS.TEST", "()", "SOLVER.IMS_PER_BATCH", "2",
                       "SOLVER.MAX_ITER", "1", "SOLVER.BASE_LR", "0.001", "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
                       "OUTPUT_DIR", str(tmp_path / "student"))
    trainer = DetectionTrainer(cfg)
    # batches alternate, the pseudo-labelled one first: its 2 images are the file's 2 (the huge one included)
    pseudo = DatasetCatalog.get(pseudo_dataset_name(path, 0.05))
    assert len(pseudo) == 2 and {d["file_name"]: d["width"] for d in pseudo}[wild["huge.jpg"]] == 1025
    trainer.train()
    assert torch.load(str(tmp_path / "student" / "model_final.pth"), weights_only=False)["iteration"] == 0


# 2. a rerun never returns another job's results ------------------------------------------------------------

def _score(model, dicts, out, batch_size=2, **kw):  # noqa: F811  (model: an argument, not the fixture)
    return sel.score_pool(model, dicts, ChunkedInference(str(out), kind="pu-scores", mapper=PUDatasetMapper(
        pu_cfg(), False), batch_size=batch_size, chunk_size=4, num_workers=0, **kw))


def test_rerun_of_another_job_is_refused(model, pool, tmp_path):  # noqa: F811
    weights = tmp_path / "a.pth"
    torch.save({"model": model.state_dict()}, weights)
    job = describe_job(pu_cfg(), str(weights))
    out = tmp_path / "select"
    _score(model, pool, out, job=job)
    ids, scores, _ = sel.merge_chunks(str(out), len(pool), 4)
    # the same weights under another path, and another worker count, are the same job: resumed, nothing rescored
    shutil.copy(weights, tmp_path / "copy.pth")
    cfg = pu_cfg()
    cfg.DATALOADER.NUM_WORKERS = 7
    assert _score(model, pool, out, job=describe_job(cfg, str(tmp_path / "copy.pth"))) == 0
    # other weights, another image list of the same size, another config value: refused, naming the difference
    torch.manual_seed(1)
    model2 = PUClassifier(pu_cfg()).eval()
    torch.save({"model": model2.state_dict()}, tmp_path / "b.pth")
    with pytest.raises(ValueError, match=r"differs in: weights \("):
        _score(model2, pool, out, job=describe_job(pu_cfg(), str(tmp_path / "b.pth")))
    with pytest.raises(ValueError, match="image list"):
        _score(model, pool[1:] + pool[:1], out, job=job)
    cfg = pu_cfg()
    cfg.PU.INPUT_SIZE = 48
    with pytest.raises(ValueError, match=r"config PU.INPUT_SIZE \(32 there, 48 now\)"):
        _score(model, pool, out, job=describe_job(cfg, str(weights)))
    with pytest.raises(ValueError, match="batch_size"):
        _score(model, pool, out, batch_size=3, job=job)
    # --overwrite starts again: the other weights' scores, not the old ones
    assert _score(model2, pool, out, job=describe_job(pu_cfg(), str(tmp_path / "b.pth")), overwrite=True) == len(pool)
    ids2, scores2, _ = sel.merge_chunks(str(out), len(pool), 4)
    assert (ids2 == ids).all() and not np.allclose(scores2, scores)


def test_label_rerun_with_another_seed_or_min_score_is_refused(tiny_benchmark, tiny_root, tmp_path):
    cfg = teacher_cfg(tiny_root)
    torch.manual_seed(0)
    teacher = build_model(cfg).eval()
    pool_dicts = DatasetCatalog.get("wild_digits_pool")

    def label(dicts, cfg):
        return label_images(teacher, dicts, ChunkedInference(
            str(tmp_path), kind="pseudo-labels", mapper=InferenceMapper(cfg), batch_size=2, chunk_size=8,
            num_workers=0, job=describe_job(cfg)), category_ids=[1, 2, 3, 4, 5])

    label(random_subset(pool_dicts, 4, 0), cfg)
    with pytest.raises(ValueError, match="image list"):
        label(random_subset(pool_dicts, 4, 1), cfg)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.3
    with pytest.raises(ValueError, match=r"SCORE_THRESH_TEST \(0.05 there, 0.3 now\)"):
        label(random_subset(pool_dicts, 4, 0), cfg)


# 4. no broken file under a final name ------------------------------------------------------------------------

def _train_opts(tiny_root, out, *extra):
    return ["--config-file", TEACHER_YAML, *extra, *tiny_opts(tiny_root), "SOLVER.IMS_PER_BATCH", "2",
            "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()", "SOLVER.BASE_LR", "0.001", "SOLVER.MAX_ITER", "4",
            "SOLVER.CHECKPOINT_PERIOD", "2", "DATASETS.TEST", "()", "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
            "OUTPUT_DIR", out]


@pytest.mark.slow
def test_kill_while_writing_the_final_checkpoint_then_resume(tiny_benchmark, tiny_root, tmp_path):
    out = str(tmp_path / "teacher")
    # torch.save calls: model_0000001 (1), model_0000003 (2), model_final (3): killed half-way through the 3rd
    proc = faults.run_killed("tools/train_net.py", _train_opts(tiny_root, out), "torch.save", nth=3, torn=True)
    assert proc.returncode == -9, proc.stderr[-3000:]
    names = sorted(n for n in os.listdir(out) if n.endswith(".pth"))
    assert names == ["model_0000001.pth", "model_0000003.pth"]  # no torn model_final.pth
    tool = load_script("tools", "train_net.py")
    tool.main(default_argument_parser().parse_args(_train_opts(tiny_root, out, "--resume")))
    final = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)
    assert final["iteration"] == 3
    assert all(torch.equal(final["model"][k], v) for k, v in
               torch.load(os.path.join(out, "model_0000003.pth"), weights_only=False)["model"].items())


def test_resume_skips_an_unreadable_checkpoint(tmp_path, pudet_log):
    checkpointer = AtomicCheckpointer(torch.nn.Linear(2, 1), str(tmp_path))
    checkpointer.save("model_0000001", iteration=1)
    checkpointer.save("model_0000003", iteration=3)
    assert open(tmp_path / "last_checkpoint").read() == "model_0000003.pth"
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth", "model_0000003.pth"]
    faults.corrupt(str(tmp_path / "model_0000003.pth"), "truncate")
    assert checkpointer.resume_or_load("", resume=True)["iteration"] == 1
    assert "model_0000003.pth is unreadable" in pudet_log.text
    faults.corrupt(str(tmp_path / "model_0000001.pth"), "empty")
    assert not checkpointer.has_checkpoint()


def test_kill_while_saving_leaves_the_previous_checkpoint(tmp_path):
    checkpointer = AtomicCheckpointer(torch.nn.Linear(2, 1), str(tmp_path))
    checkpointer.save("model_0000001", iteration=1)
    with pytest.raises(faults.Killed), faults.kill_at("os.replace"):
        checkpointer.save("model_0000003", iteration=3)
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".")) == ["last_checkpoint", "model_0000001.pth"]
    assert checkpointer.get_checkpoint_file().endswith("model_0000001.pth")


def test_student_exported_only_after_the_last_iteration(tmp_path):
    hook = ExportStudent(str(tmp_path))
    hook.trainer = types.SimpleNamespace(iter=5, max_iter=10, model=torch.nn.Linear(2, 1))
    hook.after_train()  # a crash at iteration 5 of 10
    assert not os.path.exists(tmp_path / "model_final_student.pth")
    hook.trainer.iter = 10  # detectron2 sets iter = max_iter after the last step
    hook.after_train()
    assert torch.load(tmp_path / "model_final_student.pth", weights_only=False)["iteration"] == 10


# 6. bad values are refused before any training step --------------------------------------------------------

@pytest.mark.parametrize("prior", ["0.0", "-0.5", "1.5", "1.0"])
def test_bad_prior_is_an_error(tiny_root, prior):
    cfg = teacher_cfg(tiny_root, "PU.PRIOR", prior)
    with pytest.raises(ValueError, match=rf"PU.PRIOR = {float(prior)} \(config x.yaml\)"):
        check_config(cfg, "x.yaml")


def test_good_config_passes_and_unknown_dataset_is_an_error(tiny_root):
    check_config(teacher_cfg(tiny_root, "PU.PRIOR", "0.25"))
    check_config(teacher_cfg(tiny_root, "PU.PRIOR", "-1.0"))
    cfg = teacher_cfg(tiny_root, "DATASETS.TEST", "('wild_digits_vall',)")
    with pytest.raises(ValueError, match="DATASETS.TEST names 'wild_digits_vall'.*did you mean wild_digits_val"):
        check_config(cfg)


def test_list_file_of_missing_paths_is_an_error(tmp_path, pudet_log):
    listing = tmp_path / "pool.txt"
    listing.write_text("a/1.jpg\na/2.jpg\n")
    with pytest.raises(FileNotFoundError, match=f"list file {listing}: none of its 2 paths exists"):
        load_image_pool(str(listing))
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a" / "2.jpg")
    assert len(load_image_pool(str(listing))) == 2
    assert "1 of 2 paths checked do not exist" in pudet_log.text


def test_topk_larger_than_the_pool_warns(pudet_log):
    ids, scores = np.array([3, 4]), np.array([0.2, 0.7], np.float32)
    assert select_top(ids, scores, topk=5).tolist() == [1, 0]
    assert "top-K = 5 is more than the 2 scored images" in pudet_log.text


def test_truncated_pseudo_label_file_names_the_file(tmp_path):
    path = tmp_path / "pseudo_labels.json"
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": []})[:20])
    register_pseudo_labeled("test_truncated_pseudo", str(path))
    with pytest.raises(ValueError, match=f"pseudo-label file {path} .*is not valid JSON"):
        DatasetCatalog.get("test_truncated_pseudo")


# 7. the listing cache notices a changed folder ---------------------------------------------------------------

def test_listing_cache_notices_added_files(tmp_path):
    root, cache = tmp_path / "pool", str(tmp_path / "cache")
    (root / "sub").mkdir(parents=True)
    old = 1_000_000_000_000_000_000
    for d in (root, root / "sub"):
        os.utime(d, ns=(old, old))  # as if listed long after the folders last changed
    assert list_pool_images(str(root), cache_dir=cache) == []
    (root / "sub" / "a.jpg").write_bytes(b"x")
    assert list_pool_images(str(root), cache_dir=cache) == [str(root / "sub" / "a.jpg")]
    os.utime(root / "sub", ns=(old, old))
    (root / "b.png").write_bytes(b"x")
    assert list_pool_images(str(root), cache_dir=cache) == [str(root / "b.png"), str(root / "sub" / "a.jpg")]


# the tools: --pool, --overwrite, strict --weights, --help, logging, config checks, export_student -------------

def _pu_opts(tiny_root, out):
    return [*tiny_opts(tiny_root), "PU.INIT_FROM_DETECTOR", "", "PU.INPUT_SIZE", "32", "PU.HOLDOUT_FRACTION", "0.25",
            "PU.PRIOR", "0.3", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "3", "SOLVER.WARMUP_ITERS", "1",
            "SOLVER.STEPS", "()", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", out]


@pytest.mark.slow
def test_train_on_a_pool_of_wild_images_from_the_command_line(tiny_benchmark, tiny_root, wild, tmp_path):
    pool_files = [d["file_name"] for d in DatasetCatalog.get("wild_digits_pool")[:4]]
    listing = tmp_path / "pool.txt"
    listing.write_text("\n".join(pool_files + [wild["truncated.jpg"], wild["empty.jpg"], wild["huge.jpg"]]) + "\n")
    tool = load_script("tools", "purify_net.py")
    out = str(tmp_path / "pu")
    torch.manual_seed(0)
    results = tool.main(tool.parse_args(["train", "--pool", str(listing), *_pu_opts(tiny_root, out),
                                         "PU.SPLITS_PREFIX", "wild_pool", "DATASETS.TEST", "('wild_pool_holdout',)"]))
    # 7 pool images, 2 held out (round(0.25 * 7)); 3 iterations of 2 unlabeled images draw all 5 others
    assert results["pu"]["unlabeled"] + results["pu"]["unreadable"] == 2
    assert torch.load(os.path.join(out, "model_final.pth"), weights_only=False)["iteration"] == 2
    with open(os.path.join(out, "log.txt")) as f:
        log = f.read()
    assert "pudet.data.mappers WARNING: Skipping unreadable image" in log  # pudet's log lines reach log.txt


@pytest.fixture(scope="module")
def pu_weights(tmp_path_factory):
    """Two randomly initialised PU classifiers of pu_cfg() saved as checkpoints."""
    folder = tmp_path_factory.mktemp("pu_weights")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.save({"model": PUClassifier(pu_cfg()).state_dict()}, folder / f"pu{seed}.pth")
        paths.append(str(folder / f"pu{seed}.pth"))
    return paths


def test_select_rerun_with_other_weights_is_refused_unless_overwrite(tiny_benchmark, tiny_root, pu_weights,
                                                                      tmp_path):
    tool = load_script("tools", "purify_net.py")
    out = str(tmp_path / "select")

    def select(weights, *extra):
        return tool.main(tool.parse_args(["select", "--weights", weights, "--output-dir", out, "--topk", "3",
                                          "--num-workers", "0", *extra, *_pu_opts(tiny_root, str(tmp_path)),
                                          "PU.PRIOR", "-1.0"]))

    first = select(pu_weights[0])
    with pytest.raises(ValueError, match="differs in: weights"):
        select(pu_weights[1])
    again = select(pu_weights[1], "--overwrite")
    assert again["weights"] == pu_weights[1] and again["scored"] == first["scored"] == TINY.num_pool
    with open(os.path.join(out, "log.txt")) as f:
        assert "pudet.data.chunked" in f.read()  # "scoring: 20 images in ..."


def test_weights_of_another_model_are_refused_before_any_image_is_read(tiny_benchmark, tiny_root, pu_weights,
                                                                        tmp_path):
    tool = load_script("tools", "purify_net.py")
    teacher = str(tmp_path / "teacher.pth")
    torch.manual_seed(0)
    torch.save({"model": build_model(teacher_cfg(tiny_root)).state_dict()}, teacher)
    with faults.kill_at("pudet.data.mappers.read_image_safely"):  # any image read would stop the test
        with pytest.raises(ValueError, match=rf"the weights {teacher} do not fit the model PUClassifier.*missing"):
            tool.main(tool.parse_args(["select", "--weights", teacher, "--output-dir", str(tmp_path / "s"),
                                       *_pu_opts(tiny_root, str(tmp_path))]))
        with pytest.raises(ValueError, match=r"do not fit the model GeneralizedRCNN.*unexpected"):
            tool.main(tool.parse_args(["label", "--config-file", TEACHER_YAML, "--weights", pu_weights[0],
                                       "--output-dir", str(tmp_path / "l"), *tiny_opts(tiny_root)]))


def test_label_rerun_with_another_seed_is_refused(tiny_benchmark, tiny_root, tmp_path):
    tool = load_script("tools", "purify_net.py")
    teacher = str(tmp_path / "teacher.pth")
    torch.manual_seed(0)
    torch.save({"model": build_model(teacher_cfg(tiny_root)).state_dict()}, teacher)

    def label(*extra):
        return tool.main(tool.parse_args(["label", "--config-file", TEACHER_YAML, "--weights", teacher,
                                          "--output-dir", str(tmp_path / "l"), "--num-workers", "0", *extra,
                                          *tiny_opts(tiny_root), "DATALOADER.NUM_WORKERS", "0"]))

    label("--random", "3", "--seed", "0")
    with pytest.raises(ValueError, match="image list"):
        label("--random", "3", "--seed", "1")
    with pytest.raises(ValueError, match=r"SCORE_THRESH_TEST \(0.05 there, 0.2 now\)"):
        label("--random", "3", "--seed", "0", "--min-score", "0.2")


def test_bad_values_stop_the_tools_before_training(tiny_benchmark, tiny_root, tmp_path):
    tool = load_script("tools", "purify_net.py")
    for prior in ("0.0", "-0.5", "1.5"):
        with pytest.raises(ValueError, match=rf"PU.PRIOR = {float(prior)}"):
            tool.main(tool.parse_args(["train", *_pu_opts(tiny_root, str(tmp_path)), "PU.PRIOR", prior]))
    train_net = load_script("tools", "train_net.py")
    with pytest.raises(ValueError, match="DATASETS.TEST names 'wild_digits_vla'"):
        train_net.main(default_argument_parser().parse_args(
            [*tiny_opts(tiny_root), "DATASETS.TEST", "('wild_digits_vla',)", "OUTPUT_DIR", str(tmp_path)]))
    assert not os.path.exists(tmp_path / "last_checkpoint")


def test_purify_net_help_exits_0_without_torch_jit_warnings():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-W", "default", os.path.join(REPO, "tools", "purify_net.py"), "--help"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "purify_net.py train" in proc.stdout
    assert "torch.jit.script" not in proc.stderr


def test_export_student_refuses_a_pu_classifier_checkpoint(pu_weights, tmp_path):
    tool = load_script("tools", "export_student.py")
    with pytest.raises(ValueError, match="is not a detector's checkpoint"):
        tool.main([pu_weights[0], str(tmp_path / "student.pth")])
    assert not os.path.exists(tmp_path / "student.pth")


def test_prior_of_another_job_is_refused(tmp_path, monkeypatch):
    from pudet.purification import prior as prior_estimation

    cfg = pu_cfg()
    cfg.PU.PRIOR = -1.0
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.freeze()
    monkeypatch.setattr(prior_estimation, "estimate_prior_from_splits", lambda cfg_, built: {"prior": 0.2})
    monkeypatch.setattr(prior_estimation.PUTrainer, "build_model", classmethod(lambda cls, cfg_: None))
    assert prior_estimation.resolve_prior(cfg).PU.PRIOR == 0.2
    assert prior_estimation.resolve_prior(cfg).PU.PRIOR == 0.2  # the same job: prior.json reused
    other = cfg.clone()
    other.defrost()
    other.PU.UNLABELED_DATASETS = ("pool:/data/other",)
    with pytest.raises(ValueError, match=r"another job \(unlabeled \(\['wild_digits_pool'\] there, "
                                         r"\['pool:/data/other'\] now\)\)"):
        prior_estimation.resolve_prior(other)
