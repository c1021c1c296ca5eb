"""Multi-process runs (``--num-gpus N``, ``--num-machines M``) on every build, with or without GPUs.

* Every process that detectron2's ``launch`` starts leaves its process group when its function returns or
  raises: neither build destroys the group, and a gloo group still alive at interpreter exit can abort the
  process (SIGABRT, "terminate called without an active exception") after its work is done. A function that
  raises keeps its traceback and its non-zero exit; the group it leaves closes its connections, so that ranks
  of other machines waiting on it in a collective fail instead of waiting for the group's timeout (the
  processes of one machine are ended by ``torch.multiprocessing`` as soon as one of them fails).
* detectron2 main's ``launch`` starts its processes on the gloo backend when CUDA is unavailable; v0.6's
  asserts CUDA in every process. On v0.6 without CUDA, the worker joins a gloo group as main's does; on GPUs
  v0.6's worker runs as it is, after main's check that ``--num-gpus`` is at most the GPUs there (v0.6 checks
  it only after every process has joined the group).
* Both builds' ``create_ddp_model`` (called by ``DefaultTrainer.__init__``) pass ``device_ids=[local_rank]``,
  which ``DistributedDataParallel`` refuses for a module on the CPU. :func:`create_ddp_model` passes none
  there; for a module on a GPU it is detectron2's.

:func:`pudet.compat.apply` installs both (:func:`install_worker`, :func:`install_cpu_ddp`).
"""
import importlib
import inspect
import logging
from datetime import timedelta

import torch
import torch.distributed as dist
from detectron2.utils import comm

__all__ = ["create_ddp_model", "install_cpu_ddp", "install_worker", "leave_process_group"]

logger = logging.getLogger(__name__)

# the functions of detectron2 that these replace (set when they are installed)
_DETECTRON2 = {}


def _launch_module():
    return importlib.import_module("detectron2.engine.launch")


def _needs_cuda(worker) -> bool:
    """Whether detectron2's process worker asserts CUDA (releases up to v0.6; main runs gloo without it)."""
    try:
        source = inspect.getsource(worker)
    except (OSError, TypeError):
        return False
    return "assert torch.cuda.is_available()" in source


def _join_gloo_group(local_rank, world_size, num_gpus_per_machine, machine_rank, dist_url, timeout):
    """What detectron2 main's worker does without CUDA: a gloo group, and the group of this machine's
    processes (``comm.get_local_rank`` reads it)."""
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    try:
        dist.init_process_group(backend="GLOO", init_method=dist_url, world_size=world_size, rank=global_rank,
                                timeout=timeout)
    except Exception:
        logger.error(f"Process group URL: {dist_url}")
        raise
    assert comm._LOCAL_PROCESS_GROUP is None
    for i in range(world_size // num_gpus_per_machine):
        group = dist.new_group(list(range(i * num_gpus_per_machine, (i + 1) * num_gpus_per_machine)))
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()


def leave_process_group(finished: bool) -> None:
    """Destroys this process's group (a no-op without one). When the process ``finished`` its function, it
    first waits for every rank to finish theirs, so that no rank closes connections a peer still reads; a
    process whose function raised leaves at once."""
    if not dist.is_available() or not dist.is_initialized():
        return
    try:
        if finished:
            comm.synchronize()
    finally:
        dist.destroy_process_group()
        comm._LOCAL_PROCESS_GROUP = None


def _worker(local_rank, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args,
            timeout=timedelta(minutes=30)):
    """detectron2's ``_distributed_worker`` (v0.6's with main's CPU path), leaving the process group when
    ``main_func`` returns or raises."""
    finished = False
    try:
        if _DETECTRON2["worker needs cuda"] and not torch.cuda.is_available():
            _join_gloo_group(local_rank, world_size, num_gpus_per_machine, machine_rank, dist_url, timeout)
            main_func(*args)
        else:
            if torch.cuda.is_available():
                assert num_gpus_per_machine <= torch.cuda.device_count()  # main's check, before any work (v0.6)
            _DETECTRON2["worker"](local_rank, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url,
                                  args, timeout)
        finished = True
    except Exception:
        # the other ranks fail too once this one leaves, and the launcher may report one of theirs first
        if dist.is_available() and dist.is_initialized():
            logger.exception(f"Rank {dist.get_rank()} of {dist.get_world_size()} stops on this error and leaves the "
                             "process group, so that the other ranks stop too")
        raise
    finally:
        leave_process_group(finished)


def install_worker() -> None:
    """Makes ``detectron2.engine.launch`` start its processes with :func:`_worker`. Idempotent."""
    launch = _launch_module()
    worker = launch._distributed_worker
    if worker is _worker:
        return
    _DETECTRON2["worker"] = worker
    _DETECTRON2["worker needs cuda"] = _needs_cuda(worker)
    launch._distributed_worker = _worker
    logger.debug("installed pudet.compat's process worker (leaves the process group; gloo without CUDA)")


def _on_cpu(model: torch.nn.Module) -> bool:
    params = list(model.parameters())
    return bool(params) and all(p.device.type == "cpu" for p in params)


def create_ddp_model(model, *, fp16_compression=False, **kwargs):
    """detectron2's ``create_ddp_model``, except that a module on the CPU gets no ``device_ids`` (DDP takes
    none for a CPU module; detectron2 passes ``[local_rank]``). The model itself where there is one process."""
    if "device_ids" not in kwargs and comm.get_world_size() > 1 and _on_cpu(model):
        kwargs["device_ids"] = None
    return _DETECTRON2["create_ddp_model"](model, fp16_compression=fp16_compression, **kwargs)


def install_cpu_ddp() -> None:
    """Makes ``DefaultTrainer`` (which looks ``create_ddp_model`` up in ``detectron2.engine.defaults``) and
    ``detectron2.engine.create_ddp_model`` use :func:`create_ddp_model`. Idempotent."""
    import detectron2.engine
    from detectron2.engine import defaults

    if defaults.create_ddp_model is not create_ddp_model:
        _DETECTRON2["create_ddp_model"] = defaults.create_ddp_model
        defaults.create_ddp_model = create_ddp_model
        detectron2.engine.create_ddp_model = create_ddp_model
