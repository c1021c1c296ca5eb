"""Multi-process runs on a machine without GPUs (``--num-gpus N`` with ``MODEL.DEVICE cpu``), on every build.

* detectron2 main's ``launch`` starts its processes on the gloo backend when CUDA is unavailable; v0.6's
  asserts CUDA in every process. :func:`install_gloo_worker` gives v0.6 main's CPU path; on GPUs v0.6's
  worker runs as it is, after main's check that ``--num-gpus`` is at most the GPUs there (v0.6 checks it
  only after every process has joined the group).
* Both builds' ``create_ddp_model`` (called by ``DefaultTrainer.__init__``) pass ``device_ids=[local_rank]``,
  which ``DistributedDataParallel`` refuses for a module on the CPU. :func:`create_ddp_model` passes none
  there; for a module on a GPU it is detectron2's.

:func:`pudet.compat.apply` installs both.
"""
import importlib
import inspect
import logging
from datetime import timedelta

import torch
import torch.distributed as dist
from detectron2.utils import comm

__all__ = ["create_ddp_model", "install_cpu_ddp", "install_gloo_worker"]

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


def _gloo_worker(local_rank, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args,
                 timeout=timedelta(minutes=30)):
    """detectron2 v0.6's ``_distributed_worker`` with main's CPU path: without CUDA, the processes join a gloo
    process group; with CUDA, v0.6's own worker runs, once main's first check passed."""
    if torch.cuda.is_available():
        assert num_gpus_per_machine <= torch.cuda.device_count()  # detectron2 main's check, before any work
        return _DETECTRON2["worker"](local_rank, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url,
                                     args, timeout)
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    try:
        dist.init_process_group(backend="GLOO", init_method=dist_url, world_size=world_size, rank=global_rank,
                                timeout=timeout)
    except Exception:
        logger.error(f"Process group URL: {dist_url}")
        raise
    # the group of this machine's processes, as v0.6's worker makes it (comm.get_local_rank reads it)
    assert comm._LOCAL_PROCESS_GROUP is None
    for i in range(world_size // num_gpus_per_machine):
        group = dist.new_group(list(range(i * num_gpus_per_machine, (i + 1) * num_gpus_per_machine)))
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    main_func(*args)


def install_gloo_worker() -> bool:
    """Gives ``detectron2.engine.launch`` the gloo path where its worker asserts CUDA (v0.6). Idempotent.
    Returns whether the worker is :func:`_gloo_worker`."""
    launch = _launch_module()
    worker = launch._distributed_worker
    if worker is _gloo_worker:
        return True
    if not _needs_cuda(worker):
        return False
    _DETECTRON2["worker"] = worker
    launch._distributed_worker = _gloo_worker
    logger.debug("detectron2's launch asserts CUDA: installed pudet.compat's gloo worker for CPU-only machines")
    return True


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
