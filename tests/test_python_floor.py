"""The Python floor that setup.py and INSTALL.md state holds: every source file parses with that version's
grammar, and what a newer Python adds (``hashlib.file_digest``, 3.11) has a fallback that gives the same digest."""
import ast
import glob
import hashlib
import os
import re

import pytest

from pudet.utils import file_sha256

from .helpers import REPO


def _floor():
    with open(os.path.join(REPO, "setup.py")) as f:
        found = re.search(r'python_requires=">=(\d+)\.(\d+)"', f.read())
    return int(found.group(1)), int(found.group(2))


def test_install_md_states_setup_py_floor():
    major, minor = _floor()
    with open(os.path.join(REPO, "INSTALL.md")) as f:
        assert f"Python >= {major}.{minor}" in f.read()


def test_every_source_parses_at_the_floor():
    files = [p for pattern in ("pudet/**/*.py", "tools/*.py", "projects/**/*.py", "tests/*.py")
             for p in glob.glob(os.path.join(REPO, pattern), recursive=True)]
    assert len(files) > 50
    for path in files:
        with open(path) as f:
            ast.parse(f.read(), path, feature_version=_floor())


@pytest.mark.parametrize("has_file_digest", [True, False])
def test_file_sha256_with_and_without_file_digest(tmp_path, monkeypatch, has_file_digest):
    data = os.urandom(3000)
    path = tmp_path / "weights.pth"
    path.write_bytes(data)
    if not has_file_digest:
        monkeypatch.delattr(hashlib, "file_digest", raising=False)
    assert hasattr(hashlib, "file_digest") == has_file_digest
    assert file_sha256(str(path), chunk_size=1024) == hashlib.sha256(data).hexdigest()
