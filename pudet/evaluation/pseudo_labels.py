"""Diagnostics of pseudo-label files (``purify_net.py label``): what each threshold tau keeps (the "# boxes"
of the paper's Table 1), per-class counts beside the labeled set's, the boxes' precision and recall against
a hidden truth where one exists (the benchmark), and a gallery in the spirit of the paper's Figure 3."""
import os
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .plotting import png_figure
from .pool_truth import load_pool_truth
from .results import save_results

__all__ = [
    "label_diagnostics",
    "purify_boxes",
    "pseudo_label_stats",
    "box_precision_recall",
    "plot_class_counts",
    "plot_gallery",
]


def _kept(coco, tau):
    return [a for a in coco["annotations"] if a["score"] >= tau]


def pseudo_label_stats(coco: dict, taus: Sequence[float]) -> List[Dict]:
    """Per tau: ``images`` (in the file), ``images with boxes``, ``boxes``, ``boxes/img`` (over all images)
    and ``per class`` (category name -> boxes)."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    n_images = len(coco["images"])
    rows = []
    for tau in taus:
        kept = _kept(coco, tau)
        per_class = Counter(names[a["category_id"]] for a in kept)
        rows.append({
            "tau": tau, "images": n_images, "images with boxes": len({a["image_id"] for a in kept}),
            "boxes": len(kept), "boxes/img": len(kept) / n_images if n_images else float("nan"),
            "per class": {n: per_class.get(n, 0) for n in names.values()},
        })
    return rows


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of XYWH boxes."""
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_precision_recall(coco: dict, truth: dict, tau: float, iou_thresh: float = 0.5) -> Dict:
    """Precision and recall of the pseudo-boxes scoring >= ``tau`` against the hidden truth (a COCO dict with
    the same image ids and category ids), over the images of the pseudo-label file. A pseudo-box is a true
    positive when it matches, greedily by descending score, a not yet matched hidden box of its category with
    IoU >= ``iou_thresh``; recall counts the hidden boxes of those images that were matched."""
    image_ids = {im["id"] for im in coco["images"]}
    hidden = defaultdict(list)
    for a in truth["annotations"]:
        if a["image_id"] in image_ids:
            hidden[(a["image_id"], a["category_id"])].append(a["bbox"])
    pseudo = defaultdict(list)
    for a in _kept(coco, tau):
        pseudo[(a["image_id"], a["category_id"])].append((a["score"], a["bbox"]))
    tp = 0
    for key, dets in pseudo.items():
        gts = np.asarray(hidden.get(key, []), dtype=np.float64).reshape(-1, 4)
        if not len(gts):
            continue
        dets = sorted(dets, key=lambda d: -d[0])
        iou = _iou_matrix(np.asarray([d[1] for d in dets], dtype=np.float64), gts)  # (D, G)
        free = np.ones(len(gts), dtype=bool)
        for row in iou:
            candidates = np.where(free & (row >= iou_thresh))[0]
            if len(candidates):
                free[candidates[np.argmax(row[candidates])]] = False
                tp += 1
    n_pseudo = sum(len(v) for v in pseudo.values())
    n_hidden = sum(len(v) for v in hidden.values())
    return {"tau": tau, "pseudo boxes": n_pseudo, "hidden boxes": n_hidden, "true positives": tp,
            "precision": tp / n_pseudo if n_pseudo else float("nan"),
            "recall": tp / n_hidden if n_hidden else float("nan")}


def plot_class_counts(path: str, rows: List[Dict], labeled_counts: Optional[Dict[str, int]] = None,
                      title: str = "pseudo-boxes per class") -> None:
    """A grouped bar chart PNG: per class, the labeled set's boxes and the pseudo-boxes at each tau."""
    names = list(rows[0]["per class"]) if rows else []
    series = ([("labeled set", [labeled_counts.get(n, 0) for n in names])] if labeled_counts else []) + [
        (f"pseudo, tau={r['tau']:g}", [r["per class"][n] for n in names]) for r in rows
    ]
    with png_figure(path, figsize=(max(6, 0.6 * len(names) * max(1, len(series)) / 2), 4)) as (fig, ax):
        width = 0.8 / max(1, len(series))
        x = np.arange(len(names))
        for i, (label, counts) in enumerate(series):
            ax.bar(x + (i - (len(series) - 1) / 2) * width, counts, width, label=label)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=45 if len(names) > 10 else 0, ha="right" if len(names) > 10 else "center")
        ax.set_ylabel("boxes")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()


def plot_gallery(path: str, panels: Sequence[tuple], tau: float, num_images: int = 6, seed: int = 0) -> None:
    """A gallery PNG (the paper's Figure 3): one column per ``(title, coco)`` panel, ``num_images`` images of
    each drawn at random with ``seed``, their pseudo-boxes >= ``tau`` drawn by detectron2's ``Visualizer``
    with class name and score."""
    from detectron2.data.detection_utils import read_image
    from detectron2.utils.visualizer import Visualizer

    rng = np.random.default_rng(seed)
    size = (3 * len(panels), 3 * num_images)
    with png_figure(path, num_images, len(panels), figsize=size, squeeze=False) as (fig, axes):
        for col, (title, coco) in enumerate(panels):
            names = {c["id"]: c["name"] for c in coco["categories"]}
            by_image = defaultdict(list)
            for a in _kept(coco, tau):
                by_image[a["image_id"]].append(a)
            images = coco["images"]
            chosen = rng.choice(len(images), size=min(num_images, len(images)), replace=False) if images else []
            for row in range(num_images):
                ax = axes[row][col]
                ax.axis("off")
                if row >= len(chosen):
                    continue
                im = images[chosen[row]]
                annos = by_image.get(im["id"], [])
                vis = Visualizer(read_image(im["file_name"], format="RGB"))
                boxes = np.asarray([a["bbox"] for a in annos], dtype=np.float64).reshape(-1, 4)
                boxes[:, 2:] += boxes[:, :2]
                labels = [f"{names[a['category_id']]} {a['score']:.2f}" for a in annos]
                ax.imshow(vis.overlay_instances(boxes=boxes, labels=labels).get_image())
                if row == 0:
                    ax.set_title(title)
        fig.suptitle(f"pseudo-labels at tau = {tau:g}")
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / num_images))  # room for the title above the column titles


def purify_boxes(coco: dict, pu_score_thresh: float) -> dict:
    """The pseudo-label dict with only the boxes whose region PU score is at least ``pu_score_thresh``
    (box-level purification; every image is kept)."""
    if any("pu_score" not in a for a in coco["annotations"]):
        raise ValueError("these pseudo-labels have no region PU scores (label with purify_net.py label --pu-weights)")
    return {**coco, "annotations": [a for a in coco["annotations"] if a["pu_score"] >= pu_score_thresh]}


def label_diagnostics(coco: dict, out_dir: str, *, taus: Sequence[float], labeled_datasets: Sequence[str],
                      pu_score_thresh: Optional[float] = None) -> Dict:
    """Diagnostics of a pseudo-label file written by ``purify_net.py label``: per tau, the boxes kept (per
    class, beside the labeled datasets' boxes) and, where the source pool (``coco["info"]["dataset"]``) has a
    hidden truth, the boxes' precision and recall. Writes ``diagnostics.json`` and ``class_counts.png`` to
    ``out_dir``; returns ``{"info", "unreadable", "labeled boxes per class", "taus": [row per tau]}`` (each
    row as :func:`pseudo_label_stats`, plus ``precision``, ``recall``, ``hidden boxes`` with a truth). With
    ``pu_score_thresh`` (a file labelled with region PU scores), ``"box purified"`` holds the same rows after
    :func:`purify_boxes`, recall still counted against every hidden box."""
    names = MetadataCatalog.get(labeled_datasets[0]).thing_classes
    labeled_counts = dict(Counter(names[a["category_id"]] for n in labeled_datasets for d in DatasetCatalog.get(n)
                                  for a in d.get("annotations", [])))
    truth = load_pool_truth(coco["info"]["dataset"])

    def stats(pseudo):
        rows = pseudo_label_stats(pseudo, taus)
        if truth is not None:
            for row in rows:
                row.update({k: v for k, v in box_precision_recall(pseudo, truth, row["tau"]).items()
                            if k in ("precision", "recall", "hidden boxes")})
        return rows

    rows = stats(coco)
    diagnostics = {"info": coco["info"], "unreadable": coco["info"]["unreadable"],
                   "labeled boxes per class": labeled_counts, "taus": rows}
    if pu_score_thresh is not None:
        diagnostics["box purified"] = {"pu_score_thresh": pu_score_thresh,
                                       "taus": stats(purify_boxes(coco, pu_score_thresh))}
    save_results(diagnostics, os.path.join(out_dir, "diagnostics.json"))
    plot_class_counts(os.path.join(out_dir, "class_counts.png"), rows, labeled_counts,
                      title=f"pseudo-boxes per class: {coco['info']['source']}")
    return diagnostics
