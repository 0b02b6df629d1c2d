"""HARMO rewards as a verl reward function (`reward.custom_reward_function`).

`compute_score(data_source, solution_str, ground_truth, extra_info=None, cfg=None)` scores one
response and returns `{"score", "acc", "hybrid", "format"}`: score = w_hybrid * R_hyb + w_format *
R_fmt, acc = 1.0 when the hybrid score reaches `cfg.length.correct_threshold` else 0.0 (verl logs
it as accuracy), hybrid and format unweighted. verl calls a reward function once per response, so
the group length penalty is not part of it; the "harmo" reward manager and advantage estimator
(`harmo_fast.integrations.verl`) apply it.

The task type is `extra_info["task_type"]` when given, else the one
`harmo_fast.integrations.samples.DATA_SOURCE_TASK_TYPES` gives `data_source` (e.g. "openai/gsm8k"
-> math, "cais/mmlu" -> multiple_choice), else "math". `extra_info` may also carry `reference`,
`choices` and `prompt`. cfg: a RewardConfig or a mapping of its fields (verl's
`reward.custom_reward_function.reward_kwargs.cfg`, see `verl_config`). Importing this module does
not import verl.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from harmo_fast.integrations.samples import gold_answer, message_text, task_type_from_data_source
from harmo_fast.integrations.verl_config import reward_config
from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.types import RewardSample

_SCORERS: dict[str, HybridReward] = {}
_LOCK = threading.Lock()


def verl_sample(
    data_source: str, solution_str: Any, ground_truth: Any, extra_info: Mapping[str, Any] | None, length: int = 0
) -> RewardSample:
    """One verl response as a RewardSample of its own group (group_id 0)."""
    info = extra_info or {}
    return RewardSample(
        completion=message_text(solution_str),
        answer=gold_answer(ground_truth),
        task_type=str(info.get("task_type") or task_type_from_data_source(data_source)),
        group_id=0,
        length=int(length),
        prompt=message_text(info.get("prompt") or ""),
        reference=info.get("reference") or None,
        choices=list(info["choices"]) if info.get("choices") is not None else None,
    )


def _scorer(cfg: RewardConfig) -> HybridReward:
    key = repr(cfg)
    with _LOCK:
        hybrid = _SCORERS.get(key)
        if hybrid is None:
            hybrid = _SCORERS[key] = HybridReward(cfg)  # heavy cases run in the shared pool
    return hybrid


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    *,
    cfg: RewardConfig | Mapping[str, Any] | None = None,
    **_: Any,
) -> dict[str, float]:
    """verl's reward-function signature (see the module docstring). Extra keyword arguments verl
    passes are ignored."""
    config = reward_config(cfg, "cfg")
    result = _scorer(config).score([verl_sample(data_source, solution_str, ground_truth, extra_info)])
    hybrid = float(result.components["hybrid"][0])
    fmt = float(result.components["format"][0])
    return {
        "score": config.w_hybrid * hybrid + config.w_format * fmt,
        "acc": float(hybrid >= config.length.correct_threshold),
        "hybrid": hybrid,
        "format": fmt,
    }
