"""Small helpers shared across pudet."""
import os
import platform

import torch

__all__ = ["atomic_write", "machine_summary"]


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


def machine_summary() -> str:
    """The processor, its cores, torch's version and threads: what a measured speed is read against."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")
