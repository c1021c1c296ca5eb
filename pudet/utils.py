"""Small helpers shared across pudet."""
import hashlib
import os
import platform

import torch

__all__ = ["atomic_write", "file_sha256", "machine_summary"]


def atomic_write(path: str, write_fn, mode: str = "w") -> None:
    """Calls ``write_fn(f)`` on a temporary file beside ``path``, then renames it to ``path``: a crash never
    leaves a half-written file under the final name."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    with open(tmp, mode) as f:
        write_fn(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of the file at ``path``, as hex, read in chunks of ``chunk_size`` bytes (``hashlib.file_digest``
    where Python has it, 3.11 and later; the same loop by hand before)."""
    with open(path, "rb") as f:
        if hasattr(hashlib, "file_digest"):
            return hashlib.file_digest(f, "sha256").hexdigest()
        h = hashlib.sha256()
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
        return h.hexdigest()


def machine_summary() -> str:
    """The processor, its cores, torch's version and threads: what a measured speed is read against."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")
