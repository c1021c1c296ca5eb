"""The one way pudet draws a PNG (matplotlib without a display, written atomically), and the figures drawn so
beside the tables."""
import contextlib

import numpy as np

from ..utils import atomic_write

__all__ = ["plot_score_histogram", "png_figure"]


@contextlib.contextmanager
def png_figure(path: str, nrows: int = 1, ncols: int = 1, **subplots_kwargs):
    """Yields ``(fig, axes)`` of ``plt.subplots(nrows, ncols, dpi=100, **subplots_kwargs)`` (Agg backend); on
    a normal exit the figure is written to ``path`` as PNG (never half-written), and it is always closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, dpi=100, **subplots_kwargs)
    try:
        yield fig, axes
        atomic_write(path, lambda f: fig.savefig(f, format="png"), mode="wb")
    finally:
        plt.close(fig)


def plot_score_histogram(path: str, scores, positive=None, title: str = "PU scores", xlabel: str = "PU score g(x)"):
    """A histogram PNG of the scores; split into hidden positives and negatives when ``positive`` is given."""
    scores = np.asarray(scores, dtype=np.float64)
    bins = np.linspace(scores.min(), scores.max() + 1e-9, 50) if len(scores) else 10
    with png_figure(path, figsize=(6, 4)) as (fig, ax):
        if positive is None:
            ax.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label=f"all ({len(scores)})")
        else:
            positive = np.asarray(positive, dtype=bool)
            ax.hist(scores[~positive], bins=bins, color="tab:red", alpha=0.6,
                    label=f"hidden negatives ({(~positive).sum()})")
            ax.hist(scores[positive], bins=bins, color="tab:green", alpha=0.6,
                    label=f"hidden positives ({positive.sum()})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("images")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
