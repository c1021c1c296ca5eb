import os

import pytest

import pudet  # noqa: F401  (applies pudet.compat)
from pudet.data.datasets import WildDigitsSpec, build_wild_digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# one tiny benchmark for the whole session: every test that needs scenes reads these files
TINY = WildDigitsSpec(seed=3, num_labeled=12, num_pool=20, num_val=6, pos_fraction=0.4)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("wild_digits"))


@pytest.fixture(scope="session")
def tiny_benchmark(tiny_root):
    """(spec, folder) of the session's tiny wild-digits benchmark."""
    return TINY, build_wild_digits(TINY, tiny_root)
