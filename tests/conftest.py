import numpy as np
import pytest
import torch
from PIL import Image

import pudet  # noqa: F401  (applies pudet.compat)
from pudet.data.datasets import build_wild_digits
from pudet.modeling.pu_classifier import PUClassifier

from .helpers import REPO, TINY, pu_cfg  # noqa: F401  (REPO and TINY are imported from here by older test modules)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("wild_digits"))


@pytest.fixture(scope="session")
def tiny_benchmark(tiny_root):
    """(spec, folder) of the session's tiny wild-digits benchmark."""
    return TINY, build_wild_digits(TINY, tiny_root)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """11 readable images and 2 unreadable ones, as pool dicts."""
    d = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    dicts = []
    for i in range(13):
        path = str(d / f"{i:03d}.png")
        if i == 4:
            open(path, "wb").close()
        elif i == 9:
            with open(path, "w") as f:
                f.write("not an image")
        else:
            Image.fromarray(rng.integers(0, 255, size=(24 + i, 30, 3), dtype=np.uint8)).save(path)
        dicts.append({"file_name": path, "image_id": 100 + i})
    return dicts


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = PUClassifier(pu_cfg())
    m.eval()
    return m
