"""Multi-process training on torch.distributed: the process group (gloo on CPU, NCCL on GPU), the
rank helpers, the collectives the trainer needs, and the wrapping of the policy for
`trainer.parallel`:

- ddp: every rank holds the whole model; after a minibatch's micro-batches the gradients are summed
  across ranks in one coalesced all-reduce per bucket. This is what torch's DistributedDataParallel
  does under `no_sync` accumulation; the wrapper itself is not used because the fused log-prob path
  runs the model's base and head outside the wrapped forward, and because ranks skip different
  numbers of zero-advantage micro-batches.
- fsdp: FSDP2 (`torch.distributed.fsdp.fully_shard`) on each transformer block and on the whole
  model; gradients are reduce-scattered as sums. Every forward gathers parameters collectively,
  so ranks run their forward passes in lockstep (`Dist.lockstep`).

Each rank owns whole prompt groups; the loss is normalised by the global token count, so the
summed gradient equals the single-process gradient of the global batch."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

from harmo_fast.trainer.policy import vision_tower

PARALLEL_MODES = ("none", "ddp", "fsdp")
# Gradient elements per all-reduce in ddp mode (bounds the flat buffer's extra memory).
BUCKET_ELEMENTS = 25_000_000


class DistributedError(RuntimeError):
    """A collective failed: another rank died or stopped answering within the timeout."""


@dataclass
class Dist:
    """This process's place in the run. The single-process default makes every helper the identity."""

    mode: str = "none"
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    timeout_s: float = 0.0
    comm_seconds: float = 0.0  # time in this module's collectives (waiting for slower ranks included)

    @property
    def active(self) -> bool:
        """Whether a process group is in use (parallel ddp / fsdp, any world size)."""
        return self.mode != "none"

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run's files and prints."""
        return self.rank == 0

    @property
    def lockstep(self) -> bool:
        """Forward passes contain collectives (FSDP gathers), so every rank must run the same number."""
        return self.mode == "fsdp" and self.world > 1

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        if not self.active:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=_comm_device())
        _collective(self, dist.all_reduce, t)
        return t.tolist()

    def max(self, value: int) -> int:
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=_comm_device())
        _collective(self, dist.all_reduce, t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (picklable objects)."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        _collective(self, dist.all_gather_object, out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        _collective(self, dist.broadcast_object_list, box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            _collective(self, dist.barrier)

    def reduce_gradients(self, params: list[torch.Tensor]) -> None:
        """ddp: sum every gradient over ranks (fsdp reduces inside backward; none has nothing to do)."""
        if self.mode != "ddp" or self.world == 1:
            return
        grads = [p.grad for p in params if p.grad is not None]
        for bucket in _buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            _collective(self, dist.all_reduce, flat)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()


def _comm_device() -> torch.device:
    backend = dist.get_backend()
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def _buckets(grads: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Consecutive gradients of one dtype and device, at most BUCKET_ELEMENTS each (a larger one alone)."""
    out: list[list[torch.Tensor]] = []
    size = 0
    for g in grads:
        last = out[-1] if out else None
        if last is None or size + g.numel() > BUCKET_ELEMENTS or (g.dtype, g.device) != (last[0].dtype, last[0].device):
            out.append([g])
            size = g.numel()
        else:
            last.append(g)
            size += g.numel()
    return out


def _collective(d: Dist, fn: Any, *args: Any, **kwargs: Any) -> None:
    t0 = time.perf_counter()
    try:
        fn(*args, **kwargs)
        d.comm_seconds += time.perf_counter() - t0
    except (RuntimeError, dist.DistError) as exc:
        raise DistributedError(
            f"rank {d.rank}/{d.world}: a collective failed (another rank died or did not answer within "
            f"trainer.dist_timeout={d.timeout_s:g}s): {exc}"
        ) from exc


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(mode: str, device: torch.device, timeout_s: float) -> Dist:
    """Join the process group for `trainer.parallel = mode` (rank, world size and rendezvous from
    torchrun's environment; without it, a group of one). `none` under a multi-process launch is an
    error: every rank would train alone on the same data."""
    if mode not in PARALLEL_MODES:
        raise ValueError(f"trainer.parallel: expected one of {', '.join(PARALLEL_MODES)}, got {mode!r}")
    world = env_world_size()
    if mode == "none":
        if world > 1:
            raise ValueError(
                f"launched with WORLD_SIZE={world} but trainer.parallel=none: set trainer.parallel=ddp or fsdp"
            )
        return Dist()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        timeout = timedelta(seconds=timeout_s)
        if "MASTER_ADDR" in os.environ:
            dist.init_process_group(backend, timeout=timeout, rank=rank, world_size=world)
        else:  # a group of one without a launcher
            dist.init_process_group(backend, timeout=timeout, rank=0, world_size=1, store=dist.HashStore())
    return Dist(mode, dist.get_rank(), dist.get_world_size(), local_rank, local_world, timeout_s)


def teardown(d: Dist) -> None:
    """Leave the process group (after a failure too, so the process can exit)."""
    if d.active and dist.is_initialized():
        dist.destroy_process_group()


def is_sharded(model: Any) -> bool:
    """Whether `model`'s parameters are sharded across ranks (FSDP2 DTensors)."""
    return any(isinstance(p, DTensor) for p in model.parameters())


def full_value(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind a DTensor (a collective); a plain tensor as is."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def wrap_model(model: Any, d: Dist) -> Any:
    """Prepare `model` (in place) for `d.mode`: ddp starts every rank from rank 0's weights; fsdp
    shards each transformer block (the model's `_no_split_modules` classes), the vision tower (its
    own unit: vision-language models call it outside the top-level forward) and the rest."""
    if d.mode == "ddp" and d.world > 1:
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                _collective(d, dist.broadcast, t, src=0)
    elif d.mode == "fsdp":
        blocks = set(getattr(model, "_no_split_modules", None) or ())
        for module in list(model.modules())[1:]:
            if type(module).__name__ in blocks:
                fully_shard(module)
        tower = vision_tower(model)
        if tower is not None:
            fully_shard(tower)
        fully_shard(model)
        # FSDP initialises its root at the first top-level forward; generate of a vision-language
        # model runs the tower before that, so initialise now.
        model._get_fsdp_state()._lazy_init()
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(1.0)  # sums: the loss is already normalised globally
                module.set_force_sum_reduction_for_comms(True)  # plain SUM (gloo has no pre-multiplied sum)
    return model
