"""The one way pudet draws a PNG: matplotlib without a display, written atomically."""
import contextlib

from ..utils import atomic_write

__all__ = ["png_figure"]


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
