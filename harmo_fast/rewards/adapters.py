"""HARMO rewards behind the reward-function interface of TRL.

TRL (`GRPOTrainer(reward_funcs=...)`): `trl_reward_func(cfg, component)` returns
`f(prompts, completions, **kwargs) -> list[float | None]`. kwargs carry the dataset columns:
`answer` (or the column named by `answer_key`; required), and optionally `task_type` (else
`default_task_type`), `reference`, `choices` and `group_id`. Completions and prompts may be plain
strings or TRL's conversational lists of messages. Responses to identical prompts form one group
(TRL repeats each prompt once per generation) unless a `group_id` column is given. Lengths come
from TRL's `completion_ids`, else the whitespace word count stands in for the token count (the
length penalty only uses ratios of lengths within a group). `trl_reward_funcs(cfg)` gives the
three components as separate functions (TRL logs each) plus the matching `reward_weights`; they
share one scorer, so a batch is scored once.

verl: see `harmo_fast.integrations.verl` (reward manager, loss, advantage estimator) and
`harmo_fast.integrations.verl_score.compute_score` (reward function).
"""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from harmo_fast.integrations.samples import gold_answer, message_text
from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.pool import VerifierPool
from harmo_fast.rewards.types import RewardResult, RewardSample

COMPONENTS = ("total", "hybrid", "length", "format")


def _prompt_key(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)


class _Scorer:
    """One HybridReward (with its worker pool, started on first use) and the last batch's result,
    so several reward functions over the same batch score it once."""

    def __init__(self, cfg: RewardConfig, use_pool: bool) -> None:
        self.cfg = cfg
        self.use_pool = use_pool
        self._hybrid: HybridReward | None = None
        self._last: tuple[tuple, RewardResult] | None = None
        self._lock = threading.Lock()

    def _get_hybrid(self) -> HybridReward:
        if self._hybrid is None:
            pool = None
            if self.use_pool:
                pool = VerifierPool(num_workers=self.cfg.num_workers, timeout_s=self.cfg.timeout_s)
                atexit.register(pool.close)
            self._hybrid = HybridReward(self.cfg, pool=pool)
        return self._hybrid

    def close(self) -> None:
        """Stop the worker pool, if one was started (a later call starts a new one)."""
        with self._lock:
            if self._hybrid is not None and self._hybrid.pool is not None:
                self._hybrid.pool.close()
            self._hybrid = None
            self._last = None

    def score(self, samples: list[RewardSample]) -> RewardResult:
        key = tuple(
            (s.prompt, s.completion, str(s.answer), s.task_type, s.group_id, s.length, s.reference) for s in samples
        )
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
            result = self._get_hybrid().score(samples)
            self._last = (key, result)
            return result


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any] | None:
    values = kwargs.get(name)
    if values is None:
        return None
    values = list(values)
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} entries for {n} completions")
    return values


def _trl_samples(
    prompts: Sequence[Any], completions: Sequence[Any], kwargs: dict[str, Any], answer_key: str, default_task_type: str
) -> list[RewardSample]:
    n = len(completions)
    if len(prompts) != n:
        raise ValueError(f"prompts has {len(prompts)} entries, completions has {n}")
    answers = _column(kwargs, answer_key, n)
    if answers is None:
        raise KeyError(f"the dataset needs a {answer_key!r} column for HARMO rewards; got columns {sorted(kwargs)}")
    task_types = _column(kwargs, "task_type", n) or [default_task_type] * n
    references = _column(kwargs, "reference", n) or [None] * n
    choices = _column(kwargs, "choices", n) or [None] * n
    ids = _column(kwargs, "completion_ids", n)
    groups = _column(kwargs, "group_id", n)
    if groups is None:
        first: dict[str, int] = {}
        groups = [first.setdefault(_prompt_key(p), len(first)) for p in prompts]
    texts = [message_text(c) for c in completions]
    lengths = [len(i) for i in ids] if ids is not None else [len(t.split()) for t in texts]
    return [
        RewardSample(
            completion=texts[i],
            answer=gold_answer(answers[i]),
            task_type=str(task_types[i]),
            group_id=int(groups[i]),
            length=lengths[i],
            prompt=message_text(prompts[i]),
            reference=references[i] if references[i] else None,
            choices=list(choices[i]) if choices[i] is not None else None,
        )
        for i in range(n)
    ]


def _trl_func(
    scorer: _Scorer, component: str, answer_key: str, default_task_type: str
) -> Callable[..., list[float | None]]:
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        result = scorer.score(_trl_samples(prompts, completions, kwargs, answer_key, default_task_type))
        if component == "total":
            return list(result.total)
        values: list[float | None] = list(result.components[component])
        if component == "hybrid":
            # A verdict nobody could judge (unreadable gold, no model fallback) is None: TRL then
            # leaves this reward out for the sample instead of counting a fake 0.
            values = [
                None if (not v.confident and v.scored_by != "model") else x for v, x in zip(result.verdicts, values)
            ]
        return values

    reward.__name__ = f"harmo_{component}"
    reward.__qualname__ = reward.__name__
    reward.close = scorer.close  # type: ignore[attr-defined]
    return reward


def trl_reward_func(
    cfg: RewardConfig | None = None,
    component: str = "total",
    *,
    answer_key: str = "answer",
    default_task_type: str = "math",
    use_pool: bool = True,
) -> Callable[..., list[float | None]]:
    """A TRL reward function returning the weighted total (default) or one unweighted component
    ("hybrid", "length", "format"). use_pool: verify in `cfg.num_workers` worker processes with
    hard timeouts, started on the first call and stopped by `func.close()` or at exit (else
    in-process, heavy cases in the shared pool). cfg: None = the defaults."""
    return _trl_func(_Scorer(cfg or RewardConfig(), use_pool), component, answer_key, default_task_type)


def trl_reward_funcs(
    cfg: RewardConfig | None = None,
    *,
    answer_key: str = "answer",
    default_task_type: str = "math",
    use_pool: bool = True,
) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """([hybrid, length, format] reward functions sharing one scorer, their reward_weights):
    pass them as `GRPOTrainer(reward_funcs=funcs, args=GRPOConfig(reward_weights=weights))`.
    cfg: None = the defaults."""
    cfg = cfg or RewardConfig()
    scorer = _Scorer(cfg, use_pool)
    funcs = [_trl_func(scorer, c, answer_key, default_task_type) for c in ("hybrid", "length", "format")]
    return funcs, [cfg.w_hybrid, cfg.w_length, cfg.w_format]
