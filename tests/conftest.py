import pytest

import pudet  # noqa: F401  (applies pudet.compat)
from pudet.data.datasets import build_wild_digits

from .helpers import REPO, TINY  # noqa: F401  (REPO and TINY are imported from here by older test modules)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("wild_digits"))


@pytest.fixture(scope="session")
def tiny_benchmark(tiny_root):
    """(spec, folder) of the session's tiny wild-digits benchmark."""
    return TINY, build_wild_digits(TINY, tiny_root)
