"""Reward layer of HARMO: verifiers, format and length rewards, model-based RMs, the hybrid router
and the async pipeline.

Everything but `verify` is imported on first use (module `__getattr__`), so
`import harmo_fast.rewards` in a verifier worker process does not import torch or
sentence-transformers. `verify` is bound at import: the function shares its name with its module,
and the import system would replace a lazy binding with the module as soon as anything imports
`harmo_fast.rewards.verify`.
"""

from __future__ import annotations

import importlib
from typing import Any

from harmo_fast.rewards.verify import verify as verify

_LAZY = {
    "extract_answer": "harmo_fast.rewards.extract",
    "VerifierPool": "harmo_fast.rewards.pool",
    "Verdict": "harmo_fast.rewards.types",
    "RewardSample": "harmo_fast.rewards.types",
    "RewardResult": "harmo_fast.rewards.types",
    "TASK_TYPES": "harmo_fast.rewards.types",
    "RewardConfig": "harmo_fast.rewards.config",
    "LengthPenaltyConfig": "harmo_fast.rewards.config",
    "FormatConfig": "harmo_fast.rewards.config",
    "ModelRMConfig": "harmo_fast.rewards.config",
    "format_reward": "harmo_fast.rewards.format",
    "follows_format": "harmo_fast.rewards.format",
    "length_reward": "harmo_fast.rewards.length",
    "EmbeddingRM": "harmo_fast.rewards.embedding_rm",
    "PreferenceHeadRM": "harmo_fast.rewards.preference_head",
    "HFSequenceRM": "harmo_fast.rewards.hf_rm",
    "build_model_rm": "harmo_fast.rewards.model_rm",
    "HybridReward": "harmo_fast.rewards.hybrid",
    "RewardPipeline": "harmo_fast.rewards.pipeline",
    "compute_score": "harmo_fast.integrations.verl_score",
    "trl_reward_func": "harmo_fast.integrations.trl_rewards",
    "trl_reward_funcs": "harmo_fast.integrations.trl_rewards",
}

__all__ = sorted([*_LAZY, "verify"])  # noqa: PLE0605 (built from the table above, not repeated)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harmo_fast.rewards' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
