"""Checkpoints of a multi-process run (`trainer.parallel` ddp / fsdp) through
`torch.distributed.checkpoint`: the model and optimizer state as each rank holds it (whole under
ddp, shards under fsdp) in dcp/, which DCP re-shards on load, so a run resumes with the same or
another world size (another world size is not bit-exact: the reductions' order changes). Rank 0
adds the gathered weights as weights.safetensors (so a checkpoint stays a model path for `harmo
eval` and model.name), the schedule and RNG states, state.json and the config.

Layout: <run>/checkpoints/step-000012/{dcp/, weights.safetensors, trainer.pt, state.json, config.yaml},
written under a temporary name and renamed by rank 0 once every rank has written its part."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from harmo_fast.trainer.checkpoint import PREFIX, checkpoint_dirs, rng_state, set_rng_state
from harmo_fast.trainer.config import Config, dump_config
from harmo_fast.trainer.distributed import Dist

DCP_DIR = "dcp"


def is_dist_checkpoint(ckpt: str | Path) -> bool:
    return (Path(ckpt) / DCP_DIR).is_dir()


def full_weights(model: Any) -> dict[str, torch.Tensor]:
    """The whole model's weights on CPU (a collective under fsdp), one name per tied tensor (the
    first in sorted order, as safetensors' save_model keeps)."""
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    names: dict[int, list[str]] = defaultdict(list)
    for name, p in model.named_parameters(remove_duplicate=False):
        names[id(p)].append(name)
    tied = {n for group in names.values() for n in sorted(group)[1:]}
    return {k: v.contiguous() for k, v in full.items() if k not in tied}


def save_dist_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    config: Config,
    dist: Dist,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step` from every rank (collective) and prune all but the newest `keep_last`."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{PREFIX}{step:06d}"
    if dist.is_main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    dist.barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp / DCP_DIR)
    weights = full_weights(model)
    if dist.is_main:
        save_file(weights, str(tmp / "weights.safetensors"))
        torch.save(
            {
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            tmp / "trainer.pt",
        )
        (tmp / "state.json").write_text(
            json.dumps({**state, "step": step, "rng": rng_state(), "world_size": dist.world, "parallel": dist.mode})
        )
        dump_config(config, tmp / "config.yaml")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in checkpoint_dirs(run_dir)[: -max(1, keep_last)]:
            shutil.rmtree(old)
    dist.barrier()
    return final


def load_dist_checkpoint(
    ckpt: str | Path, *, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    """Restore a checkpoint of `save_dist_checkpoint` into this rank's (wrapped) model and
    optimizer, re-sharded for the current world size; returns state.json."""
    ckpt = Path(ckpt)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    target = {"model": model_sd, "optim": optim_sd}
    dcp.load(target, checkpoint_id=ckpt / DCP_DIR)
    set_state_dict(model, optimizer, model_state_dict=target["model"], optim_state_dict=target["optim"])
    blob = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=True)
    scheduler.load_state_dict(blob["scheduler"])
    state = json.loads((ckpt / "state.json").read_text())
    set_rng_state(state["rng"], blob)
    return state
