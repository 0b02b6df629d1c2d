"""HARMO rewards behind verl's reward-function interface (the TRL reward functions are in
`harmo_fast.integrations.trl_rewards`).

verl (`custom_reward_function`): `compute_score(data_source, solution_str, ground_truth,
extra_info=None)` returns `w_hybrid * R_hyb + w_format * R_fmt` for one response. verl scores one
response at a time, so the group length penalty does not apply here (it is 0; use the trainer or
`RewardPipeline` for it). The task type is `extra_info["task_type"]` when given, else inferred from
`data_source` by `harmo_fast.integrations.samples.DATA_SOURCE_TASK_TYPES` (case-insensitive, by
whole words or long prefixes; e.g. "openai/gsm8k" -> math, "cais/mmlu" -> multiple_choice), else "math".
`extra_info` may also carry `reference`, `choices` and `prompt`.
"""

from __future__ import annotations

import threading
from typing import Any

from harmo_fast.integrations.samples import gold_answer, message_text, task_type_from_data_source
from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.types import RewardSample

_VERL_SCORERS: dict[str, HybridReward] = {}
_VERL_LOCK = threading.Lock()


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    *,
    cfg: RewardConfig | None = None,
    component: str = "total",
    **_: Any,
) -> float:
    """verl's reward-function signature (see the module docstring). component: "total"
    (w_hybrid * R_hyb + w_format * R_fmt), "hybrid" or "format" (unweighted). Extra keyword
    arguments verl passes are ignored."""
    if component not in ("total", "hybrid", "format"):
        raise ValueError(f"component must be 'total', 'hybrid' or 'format', got {component!r}")
    cfg = cfg or RewardConfig()
    info = extra_info or {}
    key = repr(cfg)
    with _VERL_LOCK:
        hybrid = _VERL_SCORERS.get(key)
        if hybrid is None:
            hybrid = _VERL_SCORERS[key] = HybridReward(cfg)  # heavy cases run in the shared pool
    sample = RewardSample(
        completion=message_text(solution_str),
        answer=gold_answer(ground_truth),
        task_type=str(info.get("task_type") or task_type_from_data_source(data_source)),
        group_id=0,
        length=0,  # a group of one: no length penalty
        prompt=message_text(info.get("prompt") or ""),
        reference=info.get("reference") or None,
        choices=list(info["choices"]) if info.get("choices") is not None else None,
    )
    result = hybrid.score([sample])
    return float(result.total[0] if component == "total" else result.components[component][0])
