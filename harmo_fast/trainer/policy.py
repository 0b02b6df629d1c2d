"""The policy (and, only when beta > 0, a frozen reference copy): any Hugging Face causal LM or
vision-language model by hub id or local path, a GGUF file (dequantised by transformers), a
built-in tiny model, or a `harmo train` checkpoint directory."""

from __future__ import annotations

import contextlib
import copy
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harmo_fast.trainer.checkpoint import load_weights
from harmo_fast.trainer.config import ModelConfig, load_config
from harmo_fast.trainer.gguf import drop_gguf_quantization, gguf_source
from harmo_fast.trainer.vision_dedup import dedup_repeated_images

# name -> (module, builder function, is a vision-language model); builders take seed= and return (model, processor).
BUILTIN_MODELS = {
    "tiny-vlm": ("harmo_fast.trainer.tiny_policy", "build_tiny_vlm", True),
    "tiny-lm": ("harmo_fast.trainer.tiny_policy", "build_tiny_lm", False),
}

# Attribute names of the vision encoder, on the model or its inner `.model`.
VISION_TOWER_ATTRS = ("visual", "vision_tower", "vision_model")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Policy:
    model: Any
    processor: Any  # a processor for vision-language models, a tokenizer otherwise
    is_vlm: bool
    device: torch.device
    name: str

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def is_checkpoint_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "weights.safetensors").is_file() and (p / "config.yaml").is_file()


def _load_hf(model_cfg: ModelConfig) -> tuple[Any, Any, bool]:
    from transformers import AutoConfig

    source, gguf_file = gguf_source(model_cfg.name, model_cfg.gguf_file)
    common: dict[str, Any] = {"trust_remote_code": model_cfg.trust_remote_code}
    if gguf_file is not None:
        common["gguf_file"] = gguf_file
    hf_config = AutoConfig.from_pretrained(source, **common)
    is_vlm = getattr(hf_config, "vision_config", None) is not None
    if is_vlm and gguf_file is not None:
        raise ValueError(f"model {model_cfg.name!r}: GGUF vision-language models are not supported")
    kwargs: dict[str, Any] = {"dtype": DTYPES[model_cfg.dtype], **common}
    if model_cfg.attn_implementation:
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    if is_vlm:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(model_cfg.name, **kwargs)
        pixels = {
            k: v
            for k, v in (("min_pixels", model_cfg.min_pixels), ("max_pixels", model_cfg.max_pixels))
            if v is not None
        }
        processor = AutoProcessor.from_pretrained(
            model_cfg.name, trust_remote_code=model_cfg.trust_remote_code, **pixels
        )
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        processor = AutoTokenizer.from_pretrained(source, **common)
        if gguf_file is not None:
            drop_gguf_quantization(model)
    return model, processor, is_vlm


def _load_builtin(name: str, seed: int, overrides: dict[str, int]) -> tuple[Any, Any, bool]:
    module, func, is_vlm = BUILTIN_MODELS[name]
    model, processor = getattr(importlib.import_module(module), func)(seed=seed, **overrides)
    return model, processor, is_vlm


def _load_checkpoint(path: str, seed: int) -> tuple[Any, Any, bool]:
    cfg = load_config(Path(path) / "config.yaml")
    model, processor, is_vlm = _load_any(cfg.model, seed)
    load_weights(model, Path(path))
    return model, processor, is_vlm


def _load_any(model_cfg: ModelConfig, seed: int) -> tuple[Any, Any, bool]:
    if model_cfg.name in BUILTIN_MODELS:
        return _load_builtin(model_cfg.name, seed, model_cfg.builtin_overrides)
    if is_checkpoint_dir(model_cfg.name):
        return _load_checkpoint(model_cfg.name, seed)
    return _load_hf(model_cfg)


def vision_tower(model: Any) -> torch.nn.Module | None:
    """The vision encoder of a vision-language model (Qwen-VL `visual`, LLaVA-style `vision_tower`), else None."""
    for owner in (model, getattr(model, "model", None)):
        for name in VISION_TOWER_ATTRS:
            tower = getattr(owner, name, None)
            if isinstance(tower, torch.nn.Module):
                return tower
    return None


def load_policy(model_cfg: ModelConfig, device: torch.device | str = "cpu", seed: int = 0) -> Policy:
    """Load the trainable policy onto `device` (gradient checkpointing on CUDA when enabled; the
    vision tower frozen when `model_cfg.freeze_vision`, and encoding each of a batch's G image copies
    once where it is a Qwen-VL tower)."""
    device = torch.device(device)
    model, processor, is_vlm = _load_any(model_cfg, seed)
    model = model.to(device=device, dtype=DTYPES[model_cfg.dtype])
    tower = vision_tower(model)
    if model_cfg.freeze_vision:
        if tower is None:
            raise ValueError(
                f"model.freeze_vision: {model_cfg.name!r} has no vision tower (one of {', '.join(VISION_TOWER_ATTRS)})"
            )
        tower.requires_grad_(False)
    dedup_repeated_images(tower)
    if (
        device.type == "cuda"
        and model_cfg.gradient_checkpointing
        and getattr(model, "supports_gradient_checkpointing", False)
    ):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return Policy(model, processor, is_vlm, device, model_cfg.name)


def reference_model(policy: Policy) -> Any:
    """A frozen copy of the policy's current weights (build it only when beta > 0)."""
    ref = copy.deepcopy(policy.model)
    ref.eval()
    ref.requires_grad_(False)
    return ref


def autocast(model_cfg: ModelConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for fp32 weights: on CUDA when `model.bf16_autocast` is "cuda", on any device when it
    is "always"; nothing otherwise."""
    wanted = model_cfg.bf16_autocast == "always" or (model_cfg.bf16_autocast == "cuda" and device.type == "cuda")
    if wanted and model_cfg.dtype == "float32":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
