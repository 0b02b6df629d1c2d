"""Rollout engines by name (`rollout.engine`). Each entry names its class by import path, so an
engine's optional dependency (vLLM) is imported only when that engine is chosen, and
`ENGINE_OPTIONS` says which run settings each engine takes."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from harmo_fast.trainer.config import Config
from harmo_fast.trainer.rollout import RolloutEngine

# name -> "module:class" of the engine
ENGINES: dict[str, str] = {
    "hf": "harmo_fast.trainer.rollout:HFRolloutEngine",
    "vllm": "harmo_fast.trainer.rollout_vllm:VLLMRolloutEngine",
}


def _sampling_options(cfg: Config) -> dict[str, Any]:
    r = cfg.rollout
    return {"temperature": r.temperature, "top_p": r.top_p, "top_k": r.top_k}


def _vllm_options(cfg: Config) -> dict[str, Any]:
    r = cfg.rollout
    return {
        **_sampling_options(cfg),
        "gpu_memory_utilization": r.vllm_gpu_memory_utilization,
        "dtype": r.vllm_dtype,
        "enforce_eager": r.vllm_enforce_eager,
        "sleep": r.vllm_sleep,
        "max_model_len": r.vllm_max_model_len,
        "seed": cfg.trainer.seed,
    }


# name -> the engine's constructor arguments taken from the run's settings
ENGINE_OPTIONS: dict[str, Callable[[Config], dict[str, Any]]] = {"hf": _sampling_options, "vllm": _vllm_options}


def engine_class(name: str) -> type[RolloutEngine]:
    """The class registered as `name` (its module imported now)."""
    if name not in ENGINES:
        raise ValueError(f"rollout.engine: unknown engine {name!r}; available: {', '.join(ENGINES)}")
    module, cls = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def build_engine(cfg: Config, **kwargs: Any) -> RolloutEngine:
    """The engine `cfg.rollout.engine` with its settings from `cfg` and the policy-side arguments
    `kwargs` (model, encoder, device, ...; `max_new_tokens` defaults to `rollout.max_new_tokens`)."""
    name = cfg.rollout.engine
    cls = engine_class(name)
    kwargs.setdefault("max_new_tokens", cfg.rollout.max_new_tokens)
    return cls(**ENGINE_OPTIONS[name](cfg), **kwargs)
