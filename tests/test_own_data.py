"""A user's own COCO-format dataset and folder of unlabeled images through every tool, as GETTING_STARTED's
"Your own data" tells them: ``DATASETS.COCO_FORMAT`` in their yamls, the teacher (2 processes), the PU
classifier on their set and folder, ``select``, ``label``, the student on L + U^P, ``--eval-only`` of the exported
student. And the bad files refused before any training: a missing annotation file or image folder, an image
folder that does not match the file, a pseudo-label file of other categories, a name already taken.

The data: 64x64 scenes of coloured rectangles ("box", COCO id 3) and ellipses ("disc", id 7) on noise, drawn here."""
import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import default_argument_parser
from PIL import Image, ImageDraw

from pudet.config import get_pudet_cfg
from pudet.data.build import build_expanded_train_loader
from pudet.data.datasets import (
    check_coco_format,
    coco_format_entries,
    pseudo_dataset_name,
    register_coco_format,
    register_pseudo_labeled,
)
from pudet.engine import setup_cfg

from .helpers import WD_CONFIGS, tiny_opts
from .multiproc import run_tool

CATEGORIES = [{"id": 3, "name": "box"}, {"id": 7, "name": "disc"}]
SIZE = 64


def _scene(rng, shapes: bool):
    """A noisy scene and, when ``shapes``, 1-2 shapes on it with their COCO annotations (bbox, category)."""
    image = Image.fromarray(rng.integers(60, 120, size=(SIZE, SIZE, 3), dtype=np.uint8))
    draw, annos = ImageDraw.Draw(image), []
    for _ in range(rng.integers(1, 3) if shapes else 0):
        w, h = rng.integers(14, 28, size=2)
        x, y = rng.integers(0, SIZE - w), rng.integers(0, SIZE - h)
        colour = tuple(int(c) for c in rng.integers(150, 256, size=3))
        category = CATEGORIES[int(rng.integers(2))]["id"]
        (draw.rectangle if category == 3 else draw.ellipse)([x, y, x + w, y + h], fill=colour)
        annos.append({"bbox": [float(x), float(y), float(w), float(h)], "category_id": category})
    return image, annos


def make_own_data(root, n_train=8, n_val=4, n_pool=8, seed=0):
    """``root``/images/*.png with ``annotations/{train,val}.json`` (COCO format, file names relative to
    images/), and ``root``/unlabeled/ (half of it with shapes, in two subfolders). Returns their paths."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "annotations"))
    files, next_image, next_anno = {}, 1, 1
    for split, n in (("train", n_train), ("val", n_val)):
        coco = {"images": [], "annotations": [], "categories": CATEGORIES}
        for i in range(n):
            image, annos = _scene(rng, shapes=True)
            name = f"{split}_{i:03d}.png"
            image.save(os.path.join(root, "images", name))
            coco["images"].append({"id": next_image, "file_name": name, "height": SIZE, "width": SIZE})
            for a in annos:
                coco["annotations"].append({**a, "id": next_anno, "image_id": next_image, "iscrowd": 0,
                                            "area": a["bbox"][2] * a["bbox"][3]})
                next_anno += 1
            next_image += 1
        files[split] = os.path.join(root, "annotations", f"{split}.json")
        with open(files[split], "w") as f:
            json.dump(coco, f)
    for i in range(n_pool):
        folder = os.path.join(root, "unlabeled", "a" if i % 2 else "b")
        os.makedirs(folder, exist_ok=True)
        _scene(rng, shapes=i % 2 == 0)[0].save(os.path.join(folder, f"{i:03d}.jpg"))
    return files["train"], files["val"], os.path.join(root, "images"), os.path.join(root, "unlabeled")


def _coco_format(train_json, val_json, images):
    return [["shapes_train", train_json, images], ["shapes_val", val_json, images]]


def _yaml(path, base, body: dict):
    """A user's yaml: ``_BASE_`` then ``body`` (nested dicts of keys), as JSON flow values yaml reads."""
    lines = [f'_BASE_: "{base}"']

    def emit(node, indent):
        for key, value in node.items():
            if isinstance(value, dict):
                lines.append(" " * indent + f"{key}:")
                emit(value, indent + 2)
            else:
                lines.append(" " * indent + f"{key}: {json.dumps(value)}")

    emit(body, 0)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


# refused before any training ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    return make_own_data(str(tmp_path_factory.mktemp("own_data")))


def _cfg(entries, *opts):
    """A config naming ``entries`` in DATASETS.COCO_FORMAT, those registered (as register_datasets does)."""
    cfg = get_pudet_cfg(os.path.join(WD_CONFIGS, "faster_rcnn_R18_FPN_teacher.yaml"),
                        ["DATASETS.COCO_FORMAT", repr(entries), "DATASETS.TRAIN", "('shapes_train',)",
                         "DATASETS.TEST", "('shapes_val',)", "MODEL.ROI_HEADS.NUM_CLASSES", "2", *opts])
    for entry in coco_format_entries(cfg):
        register_coco_format(*entry)
    return cfg


def test_own_dataset_registers_with_its_categories(own_data):
    train_json, val_json, images, _ = own_data
    _cfg(_coco_format(train_json, val_json, images))
    dicts = DatasetCatalog.get("shapes_train")
    assert len(dicts) == 8 and all(os.path.isfile(d["file_name"]) for d in dicts)
    meta = MetadataCatalog.get("shapes_train")
    assert meta.thing_classes == ["box", "disc"] and meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1}
    assert meta.evaluator_type == "coco"


def test_missing_annotation_file_is_refused_at_setup(own_data, tiny_root, tmp_path):
    _, val_json, images, _ = own_data
    gone = str(tmp_path / "gone.json")
    args = default_argument_parser().parse_args([
        "--config-file", os.path.join(WD_CONFIGS, "faster_rcnn_R18_FPN_teacher.yaml"), *tiny_opts(tiny_root),
        "DATASETS.COCO_FORMAT", repr([["gone_train", gone, images]]), "DATASETS.TRAIN", "('gone_train',)",
        "DATASETS.TEST", "()", "OUTPUT_DIR", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError, match=f"dataset 'gone_train'.*annotation file {gone} not found"):
        setup_cfg(args, "")
    assert not any(n.startswith("model_") for n in os.listdir(tmp_path / "out"))


def test_missing_image_folder_is_refused(own_data, tmp_path):
    train_json, _, _, _ = own_data
    cfg = _cfg([["nofolder_train", train_json, str(tmp_path / "nowhere")]], "DATASETS.TRAIN", "('nofolder_train',)",
               "DATASETS.TEST", "()")
    with pytest.raises(FileNotFoundError, match="image folder .*nowhere not found"):
        check_coco_format(coco_format_entries(cfg))


def test_image_folder_that_does_not_match_the_file_is_refused_when_loaded(own_data):
    train_json, _, _, unlabeled = own_data
    _cfg([["wrongroot_train", train_json, unlabeled]], "DATASETS.TRAIN", "('wrongroot_train',)", "DATASETS.TEST", "()")
    with pytest.raises(FileNotFoundError, match="none of the 8 images checked is in the image folder"):
        DatasetCatalog.get("wrongroot_train")


def test_name_of_another_dataset_is_refused(own_data):
    train_json, _, images, _ = own_data
    with pytest.raises(ValueError, match="'coco_2017_train', a dataset already registered with other files"):
        _cfg([["coco_2017_train", train_json, images]])


def test_malformed_entry_is_refused(own_data):
    train_json, _, _, _ = own_data
    with pytest.raises(ValueError, match=r"give \(name, json_file, image_root\)"):
        _cfg([["shapes_train", train_json]])


def test_pseudo_labels_of_other_categories_are_refused_before_training(own_data, tmp_path):
    train_json, val_json, images, _ = own_data
    pseudo = str(tmp_path / "pseudo_labels.json")
    with open(pseudo, "w") as f:  # labelled by a teacher of another dataset: "disc" missing
        json.dump({"images": [{"id": 1, "file_name": os.path.join(images, "train_000.png"), "height": SIZE,
                               "width": SIZE}],
                   "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 1, 9, 9], "category_id": 3, "score": 0.9,
                                    "area": 81, "iscrowd": 0}],
                   "categories": CATEGORIES[:1]}, f)
    cfg = _cfg(_coco_format(train_json, val_json, images), "DATASETS.TRAIN_PSEUDO", f"('{pseudo}',)",
               "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0")
    register_pseudo_labeled(pseudo_dataset_name(pseudo, 0.5), pseudo, "", 0.5)
    with pytest.raises(ValueError, match=r"categories of pseudo@0.5:.*\['box'\].*differ from those of the labeled "
                                         r"dataset shapes_train \(\['box', 'disc'\]"):
        build_expanded_train_loader(cfg)


# the whole workflow ----------------------------------------------------------------------------------------

TINY_DETECTOR = [
    "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "64", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "2", "SOLVER.STEPS", "()",
    "SOLVER.BASE_LR", "0.01", "SOLVER.MAX_ITER", "3", "SOLVER.CHECKPOINT_PERIOD", "100",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "DATALOADER.NUM_WORKERS", "0", "SEED", "0",
]


@pytest.mark.slow
def test_own_data_through_every_tool(tmp_path):
    train_json, val_json, images, unlabeled = make_own_data(str(tmp_path / "data"))
    out = tmp_path / "output"
    datasets = {"COCO_FORMAT": _coco_format(train_json, val_json, images), "TRAIN": ["shapes_train"],
                "TEST": ["shapes_val"]}
    teacher_yaml = _yaml(tmp_path / "my_teacher.yaml", os.path.join(WD_CONFIGS, "faster_rcnn_R18_FPN_teacher.yaml"), {
        "DATASETS": datasets, "MODEL": {"ROI_HEADS": {"NUM_CLASSES": 2}},
        "WILD_DIGITS": {"PRETRAIN": {"ENABLED": False}}, "OUTPUT_DIR": str(out / "teacher")})
    teacher = str(out / "teacher" / "model_final.pth")
    pu_yaml = _yaml(tmp_path / "my_pu.yaml", os.path.join(WD_CONFIGS, "pu_R18_nnpu.yaml"), {
        "DATASETS": {"COCO_FORMAT": datasets["COCO_FORMAT"]},
        "PU": {"LABELED_DATASETS": ["shapes_train"], "INIT_FROM_DETECTOR": teacher, "PRIOR": 0.5},
        "OUTPUT_DIR": str(out / "pu")})
    student_yaml = _yaml(tmp_path / "my_student.yaml", os.path.join(WD_CONFIGS, "student_R18_FPN_sd_pseudo.yaml"), {
        "DATASETS": {**datasets, "TRAIN_PSEUDO": [str(out / "labels" / "pseudo_labels.json")],
                     "PSEUDO_KEEP_EMPTY": True},
        "MODEL": {"ROI_HEADS": {"NUM_CLASSES": 2}, "PUDET": {"TEACHER_WEIGHTS": teacher}},
        "WILD_DIGITS": {"PRETRAIN": {"ENABLED": False}}, "OUTPUT_DIR": str(out / "student")})
    logs = tmp_path / "logs"
    logs.mkdir()

    # [1] the teacher, 2 processes
    printed = run_tool("tools/train_net.py", ["--num-gpus", "2", "--dist-url", "auto", "--config-file", teacher_yaml,
                                              *TINY_DETECTOR], log=logs / "teacher.txt")
    assert os.path.isfile(teacher)
    assert "Starting training from iteration 0" in open(out / "teacher" / "log.txt.rank1").read()  # both trained
    assert {"AP", "AP50", "AP-box", "AP-disc"} <= set(json.load(open(out / "teacher" / "eval_results.json"))["bbox"])
    assert "bbox" in printed
    # [2] the PU classifier: L = shapes_train, U = the folder
    pu_opts = ["PU.INPUT_SIZE", "32", "PU.HOLDOUT_FRACTION", "0.25", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER",
               "3", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()", "DATALOADER.NUM_WORKERS", "0"]
    run_tool("tools/purify_net.py", ["train", "--config-file", pu_yaml, "--pool", unlabeled, *pu_opts],
             log=logs / "pu.txt")
    assert os.path.isfile(out / "pu" / "model_final.pth")
    # [3] U^P: the best 4 of the folder's 8 images
    run_tool("tools/purify_net.py", ["select", "--config-file", pu_yaml, "--pool", unlabeled, "--topk", "4", *pu_opts],
             log=logs / "select.txt")
    selected = json.load(open(out / "pu" / "select" / "selected.json"))
    assert len(selected["images"]) == 4
    assert len(open(out / "pu" / "select" / "scores.tsv").read().splitlines()) == 1 + 8  # header + every image
    # [4] the teacher pseudo-labels U^P, 2 processes
    run_tool("tools/purify_net.py", ["label", "--num-gpus", "2", "--dist-url", "auto", "--config-file", teacher_yaml,
                                     "--selection", str(out / "pu" / "select" / "selected.json"),
                                     "--output-dir", str(out / "labels"), *TINY_DETECTOR], log=logs / "label.txt")
    pseudo = json.load(open(out / "labels" / "pseudo_labels.json"))
    assert len(pseudo["images"]) == 4 and pseudo["categories"] == CATEGORIES
    # [5] the student on L + U^P, self-distilled from the teacher
    run_tool("tools/train_net.py", ["--config-file", student_yaml, *TINY_DETECTOR], log=logs / "student.txt")
    student = out / "student" / "model_final_student.pth"
    assert os.path.isfile(student)
    assert "Training on 8 labeled and 4 pseudo-labelled images" in open(out / "student" / "log.txt").read()
    # [6] the exported student evaluated on the user's val set
    run_tool("tools/train_net.py", ["--eval-only", "--config-file", teacher_yaml, "MODEL.WEIGHTS", str(student),
                                    "OUTPUT_DIR", str(out / "student_eval"), *TINY_DETECTOR], log=logs / "eval.txt")
    results = json.load(open(out / "student_eval" / "eval_results.json"))["bbox"]
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-box", "AP-disc"} <= set(results)
