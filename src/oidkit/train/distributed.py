"""Data parallelism through torchrun: read the environment it sets, start gloo/nccl, launch it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "cpu") -> Dist:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if torch.device(device).type == "cuda":  # one GPU per process: "cuda" then means this process's own
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.device(device).type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def barrier(ctx: Dist) -> None:
    if ctx.world > 1:
        dist.barrier()


def gather(ctx: Dist, value: object) -> list:
    """``value`` from every process, in rank order (a one-element list without torchrun)."""
    if ctx.world == 1:
        return [value]
    out: list = [None] * ctx.world
    dist.all_gather_object(out, value)
    return out


def shutdown(ctx: Dist) -> None:
    if ctx.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, args: list[str]) -> int:
    """Run ``python -m oidkit.train ARGS`` in ``nproc`` processes with torchrun; returns its exit code."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "oidkit.train", *args]
    return subprocess.call(command)
