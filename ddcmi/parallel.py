"""Class-parallel distillation over processes (``torchrun``, or ``ddcmi distill --nproc N``).

Each process (rank) computes the matching loss and the CMI term of its own block of classes; before
every step of the optimiser the pixel gradients are combined (each rank keeps only the rows of its own
classes, then one all-reduce sums them), so every rank takes the same step on the same full set and
holds the same pixels, optimiser and method state throughout. Only rank 0 reads and writes the run
folder (checkpoints, snapshots, the result); it hands a resumed state to the others. History terms are
combined as the single-process run forms them (per-update sums and counts over all ranks).

The draws of class c depend only on (seed, iteration, class, purpose) (``ddcmi.rng``) and CMI passes
whole classes in the same groups as a full run (``CMIRegularizer._class_chunks``), so the result
equals the single-process run at the same per-process thread count: bitwise where the summed
gradient rows are exact (every row is one rank's value plus zeros), which the tests check for DM+CMI,
DSA+CMI and IDM+CMI. MTT trains one student on the whole set and refuses to be split.

gloo on CPU, NCCL on CUDA (each rank on ``cuda:<LOCAL_RANK>``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import ConfigError


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def class_blocks(num_classes: int, world: int) -> list[list[int]]:
    """Contiguous, balanced blocks of classes, one per rank (contiguous: CMI's groups of whole classes
    then straddle as few ranks as possible)."""
    if world > num_classes:
        raise ConfigError(f"{world} processes for {num_classes} classes: each process needs at least one class; "
                          f"use --nproc {num_classes} or fewer")
    q, r = divmod(num_classes, world)
    out, start = [], 0
    for rank in range(world):
        n = q + (rank < r)
        out.append(list(range(start, start + n)))
        start += n
    return out


@dataclass
class ClassParallel:
    rank: int
    world: int
    device: torch.device

    @property
    def writes(self) -> bool:
        """Only rank 0 touches the run folder."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str | None = None) -> "ClassParallel | None":
        """Join the process group torchrun set up (None when this is not a multi-process run)."""
        import torch.distributed as dist
        world = world_size_from_env()
        if world <= 1:
            return None
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
        use_cuda = torch.cuda.is_available() and (device in (None, "auto") or str(device).startswith("cuda"))
        dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        return cls(rank, world, dev)

    def classes(self, num_classes: int) -> list[int]:
        return class_blocks(num_classes, self.world)[self.rank]

    def row_mask(self, labels: torch.Tensor, classes) -> torch.Tensor:
        """Rows of the stored set this rank owns (IDC's storage labels, one per storage image)."""
        return torch.isin(labels, torch.tensor(list(classes), device=labels.device))

    def combine_grad_(self, grad: torch.Tensor, mask: torch.Tensor) -> None:
        """Keep this rank's rows, sum over ranks: every rank then holds the full-run gradient."""
        import torch.distributed as dist
        shape = (-1,) + (1,) * (grad.dim() - 1)
        grad.mul_(mask.view(shape).to(grad.dtype))
        dist.all_reduce(grad)

    def combine_terms(self, updates: list[dict | None]) -> dict:
        """The iteration's terms as one process records them. Every rank makes the same updates in the
        same order (None where it had no work in one: another rank's class); an update's terms are the
        sum of the ranks' shares (each rank's matching loss and CMI cover its own classes), and the
        iteration's are their mean over the updates in which any rank worked."""
        import torch.distributed as dist
        gathered = [None] * self.world
        dist.all_gather_object(gathered, list(updates))
        merged = []
        for parts in zip(*gathered):
            parts = [p for p in parts if p is not None]
            if parts:
                keys = dict.fromkeys(k for p in parts for k in p)
                merged.append({k: sum(p.get(k, 0.0) for p in parts) for k in keys})
        keys = dict.fromkeys(k for t in merged for k in t)
        return {k: sum(t[k] for t in merged if k in t) / sum(k in t for t in merged) for k in keys}

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (a resumed state, a finished result)."""
        import torch.distributed as dist
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist
        dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()
