"""The model-based reward models behind one interface, and the registry that builds the configured
one (`ModelRMConfig.kind`).

Every model RM has `score(answers, contexts) -> list[float]` with rewards in [0, 1], and a
`context` attribute naming what the second argument holds: "reference" (the reference answer,
e.g. EmbeddingRM) or "prompt" (the question, e.g. a preference head or a Hugging Face RM). The
hybrid router reads `context` to pass the right field of each sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from harmo_fast.rewards.config import ModelRMConfig
from harmo_fast.rewards.embedding_rm import EmbeddingRM
from harmo_fast.rewards.hf_rm import HFSequenceRM


class ModelRM(Protocol):
    context: Literal["reference", "prompt"]

    def score(self, answers: list[str], contexts: list[str]) -> list[float]: ...


def _embedding(cfg: ModelRMConfig) -> ModelRM:
    return EmbeddingRM(cfg.path, rescale=cfg.rescale, batch_size=cfg.batch_size, device=cfg.device)


def _head(cfg: ModelRMConfig) -> ModelRM:
    # preference_head imports torch; importing the reward layer stays torch-free (verifier workers,
    # a verl reward process) until a head is actually configured.
    from harmo_fast.rewards.preference_head import PreferenceHeadRM

    if cfg.path is None:
        raise ValueError("ModelRMConfig.path must name the directory written by `harmo rm train` when kind='head'")
    return PreferenceHeadRM.load(cfg.path, batch_size=cfg.batch_size, device=cfg.device)


def _hf(cfg: ModelRMConfig) -> ModelRM:
    if cfg.path is None:
        raise ValueError("ModelRMConfig.path must name a Hugging Face sequence-classification model when kind='hf'")
    return HFSequenceRM(cfg.path, batch_size=cfg.batch_size, device=cfg.device)


# kind -> constructor; None means "no model RM" (open-ended samples then score 0, flagged).
MODEL_RMS: dict[str, Callable[[ModelRMConfig], ModelRM | None]] = {
    "embedding": _embedding,
    "head": _head,
    "hf": _hf,
    "none": lambda cfg: None,
}


def build_model_rm(cfg: ModelRMConfig) -> ModelRM | None:
    """The model RM `cfg` describes (None for kind "none"). Heavy models load on first score()."""
    builder = MODEL_RMS.get(cfg.kind)
    if builder is None:
        raise ValueError(f"ModelRMConfig.kind must be one of {sorted(MODEL_RMS)}, got {cfg.kind!r}")
    return builder(cfg)
