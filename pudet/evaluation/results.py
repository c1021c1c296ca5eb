"""Results as files and as the tables the tools print: detectron2-style results, a selection's summary, a
pseudo-label file's boxes per threshold."""
import json

from tabulate import tabulate

from ..utils import atomic_write

__all__ = ["label_table", "results_table", "save_results", "selection_table"]


def save_results(results, path: str) -> None:
    """Writes results as json atomically (a crash never leaves a half-written file under ``path``)."""
    atomic_write(path, lambda f: json.dump(results, f, indent=2))


def _metric_groups(results, prefix=""):
    """Yields (name, {metric: number}) for every innermost dict of a nested results dict."""
    for key, value in results.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict) and value and isinstance(next(iter(value.values())), dict):
            yield from _metric_groups(value, name)
        elif isinstance(value, dict):
            yield name, value


def results_table(results) -> str:
    """Plain-text tables (one per set of metric names) of detectron2-style results, e.g.
    ``{"bbox": {"AP": ...}}`` or ``{dataset: {"bbox": {...}}}``."""
    blocks = {}
    for name, metrics in _metric_groups(results):
        blocks.setdefault(tuple(metrics), []).append([name] + list(metrics.values()))
    tables = [tabulate(rows, headers=["", *keys], tablefmt="github", floatfmt=".2f") for keys, rows in blocks.items()]
    return "\n\n".join(tables) if tables else "(no results)"


def selection_table(summary: dict) -> str:
    """A selection's summary (``selected.json``'s), and the region head's comparison with what the same region
    features allow where it has one."""
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in summary.items() if k != "comparison"]
    text = tabulate(rows, tablefmt="github", headers=["selection", ""])
    if "comparison" in summary:
        text += (f"\n\nThe same pool ranked by what the same region features allow (K = {summary['K']}):\n"
                 + tabulate([list(r.values()) for r in summary["comparison"]], tablefmt="github", floatfmt=".1f",
                            headers=list(summary["comparison"][0])))
    return text


def label_table(rows) -> str:
    """Per tau of a pseudo-label file's diagnostics: images, boxes, boxes per image, and the boxes' precision and
    recall where the pool has a hidden truth."""
    truth = "precision" in rows[0]
    headers = ["tau", "images", "images with boxes", "boxes", "boxes/img"] + (
        ["box precision", "box recall"] if truth else [])
    table = [[r["tau"], r["images"], r["images with boxes"], r["boxes"], f"{r['boxes/img']:.2f}"]
             + ([f"{r['precision']:.3f}", f"{r['recall']:.3f}"] if truth else []) for r in rows]
    return tabulate(table, headers=headers, tablefmt="github")
