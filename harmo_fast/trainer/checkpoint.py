"""Checkpoints of a run: safetensors weights, optimizer and scheduler state, RNG states (python,
numpy, torch, CUDA), data position, counters and the config. Written to a temporary directory and
renamed into place, so a crash never leaves a half-written checkpoint; the last k are kept.

Layout: <run>/checkpoints/step-000012/{weights.safetensors, optim.pt, state.json, config.yaml}."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from harmo_fast.trainer.config import Config, dump_config

PREFIX = "step-"


def rng_state() -> dict[str, Any]:
    """Python and numpy RNG states as JSON-able values (torch's go in optim.pt)."""
    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(state: dict[str, Any], torch_state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch_state["torch_rng"])
    if torch.cuda.is_available() and torch_state.get("cuda_rng"):
        torch.cuda.set_rng_state_all(torch_state["cuda_rng"])


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Completed checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    config: Config,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step` atomically and prune all but the newest `keep_last`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{PREFIX}{step:06d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "weights.safetensors"))
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        tmp / "optim.pt",
    )
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "rng": rng_state()}))
    dump_config(config, tmp / "config.yaml")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in checkpoint_dirs(run_dir)[: -max(1, keep_last)]:
        shutil.rmtree(old)
    return final


def load_weights(model: Any, ckpt: str | Path) -> None:
    missing, unexpected = load_model(model, str(Path(ckpt) / "weights.safetensors"), strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"{ckpt}: checkpoint weights do not match the model "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )


def load_checkpoint(
    ckpt: str | Path, *, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, Any]:
    """Restore everything saved by `save_checkpoint`, RNG states included; returns state.json."""
    ckpt = Path(ckpt)
    load_weights(model, ckpt)
    blob = torch.load(ckpt / "optim.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    state = json.loads((ckpt / "state.json").read_text())
    set_rng_state(state["rng"], blob)
    return state
