"""Fault injection shared by the reliability tests: stop a run at a chosen point, corrupt a file.

* :func:`kill_at` (in this process): the ``nth`` call of a function raises instead of running; the default
  :class:`Killed` is not an ``Exception``, so no ``except Exception`` handler swallows it (``finally`` blocks
  still run, unlike a real kill: use :func:`run_killed` for that).
* :func:`run_killed`: runs a tool in a child process that kills itself with SIGKILL at the ``nth`` call of a
  function (nothing runs after it: no ``finally``, no flush), optionally after writing half of what a
  ``torch.save``-shaped call would have written (a kill in the middle of writing a file).
* :func:`corrupt`: truncates, empties or overwrites a file.

``python -m tests.faults TARGET NTH [--torn] SCRIPT [ARGS...]`` is the child's entry point.
"""
import contextlib
import importlib
import io
import os
import runpy
import signal
import subprocess
import sys

from .helpers import REPO

__all__ = ["Killed", "kill_at", "run_killed", "corrupt"]


class Killed(BaseException):
    """Raised by :func:`kill_at`: stands for a process killed at that point."""


def _resolve(target: str):
    """``"pkg.module.attr"`` or ``"pkg.module.Class.attr"`` -> (owner object, attribute name)."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise ValueError(f"cannot resolve {target}")


def _torn_write(obj, f):
    """Writes the first half of ``torch.save(obj)``'s bytes to ``f`` (an open file or a path)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()[: len(buf.getvalue()) // 2]
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            out.write(data)
    else:
        f.write(data)
        f.flush()


def _patch(target: str, nth: int, on_call):
    owner, name = _resolve(target)
    original = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            on_call(*args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)
    return owner, name, original


@contextlib.contextmanager
def kill_at(target: str, nth: int = 1, exc: BaseException = Killed):
    """Within the block, the ``nth`` call of ``target`` (a dotted path, e.g. ``"torch.save"``) raises ``exc``
    instead of running. Patch the name where the caller looks it up."""

    def die(*args, **kwargs):
        raise exc(f"{target}: call {nth}")

    owner, name, original = _patch(target, nth, die)
    try:
        yield
    finally:
        setattr(owner, name, original)


def run_killed(script: str, args, target: str, nth: int = 1, torn: bool = False, timeout: float = 300):
    """Runs ``script`` (relative to the repository) with ``args`` in a child process that SIGKILLs itself at
    the ``nth`` call of ``target`` (after a torn write of its ``(obj, f)`` arguments when ``torn``). Returns
    the ``subprocess.CompletedProcess`` (``returncode`` is ``-9`` when the kill happened)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO] + [p for p in [os.getenv("PYTHONPATH")] if p])}
    cmd = [sys.executable, "-m", "tests.faults", target, str(nth)] + (["--torn"] if torn else []) + [
        os.path.join(REPO, script), *map(str, args)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def corrupt(path: str, how: str = "truncate") -> None:
    """``"truncate"``: keep the first half of the bytes; ``"empty"``: 0 bytes; ``"garbage"``: as many bytes of
    noise as the file had."""
    size = os.path.getsize(path)
    if how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif how == "empty":
        open(path, "wb").close()
    elif how == "garbage":
        with open(path, "wb") as f:
            f.write(bytes((i * 97 + 13) % 256 for i in range(size)))
    else:
        raise ValueError(f"unknown corruption '{how}'")


def _main(argv):
    target, nth, rest = argv[0], int(argv[1]), argv[2:]
    torn = rest[0] == "--torn"
    script, *args = rest[1:] if torn else rest

    def die(*a, **k):
        if torn:
            _torn_write(*a[:2])
        os.kill(os.getpid(), signal.SIGKILL)

    sys.path.insert(0, os.path.dirname(script))
    _patch(target, nth, die)
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    _main(sys.argv[1:])
