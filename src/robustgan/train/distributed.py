"""Multi-process training with torch.distributed (``torchrun --nproc_per_node N -m robustgan train``).

Every process holds the full G and D, draws its own noise and its own shard of each epoch, and
the gradients are averaged across processes after each backward pass, before the optimiser step,
which is what DistributedDataParallel does. The averaging is done here rather than by wrapping the
networks in ``DistributedDataParallel`` because the regularisers call ``D.features`` directly and
the gradient penalty needs a double backward, neither of which DDP's reducer supports. Weights
start equal (broadcast from rank 0) and stay equal; batch-norm statistics are averaged before each
checkpoint. Rank 0 alone writes logs, samples and checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls) -> "DistContext":
        """Single-process unless launched by torchrun (WORLD_SIZE > 1); initialises the process group."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            backend = os.environ.get("ROBUSTGAN_DIST_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
            dist.init_process_group(backend=backend)
        rank = dist.get_rank()
        if torch.cuda.is_available() and dist.get_backend() == "nccl":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        return cls(rank=rank, world=dist.get_world_size(), device=device)

    def broadcast_module(self, module: nn.Module) -> None:
        if not self.enabled:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def average_gradients(self, module: nn.Module) -> None:
        """All-reduce the gradients of ``module`` (one flat buffer) and divide by the world size."""
        if not self.enabled:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def sync_buffers(self, module: nn.Module) -> None:
        """Average floating-point buffers (batch-norm statistics) across processes."""
        if not self.enabled:
            return
        with torch.no_grad():
            for b in module.buffers():
                if b.is_floating_point():
                    dist.all_reduce(b)
                    b /= self.world

    def gather_objects(self, obj) -> list:
        """[obj of rank 0, obj of rank 1, ...] on every process (a one-element list when alone)."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            # Every process must be done with its collectives before the group is torn down;
            # gloo aborts a process whose peer destroyed the group first.
            dist.barrier()
            dist.destroy_process_group()
