"""Process-group helpers for training under ``torchrun`` (or any launcher that sets the env variables).

``torchrun --nproc_per_node N`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; `setup` then joins the process group (NCCL on CUDA, gloo on the CPU) and picks this
process's device. Without those variables training runs in a single process, no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ifc_sdk.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, on ``device``; ``owns_group`` when `setup`
    created the process group (and `cleanup` should destroy it)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _resolve_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r} was asked for, but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def setup(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group described by the environment (if any) and choose the device.

    An already initialised process group is used as it is. ``device`` "cuda" becomes ``cuda:LOCAL_RANK``.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        return DistInfo(rank, world, local_rank, _resolve_device(device, local_rank))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _resolve_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, dev)
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but torch.distributed is not available in this PyTorch build")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, dev, owns_group=True)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if `setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_max(values: list[int], info: DistInfo) -> list[int]:
    """Element-wise maximum of integer lists over all processes."""
    if not info.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.int64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [int(v) for v in t.tolist()]


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Mean of scalar logging values over all processes (same keys on every process)."""
    if not info.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def all_gather_object(obj, info: DistInfo) -> list:
    """``obj`` of every process, in rank order."""
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo, src: int = 0):
    """Rank ``src``'s ``obj`` on every process."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
