"""HARMO rewards as TRL reward functions (`GRPOTrainer(reward_funcs=...)`); needs no TRL install.

`trl_reward_func(cfg, component)` returns `f(prompts, completions, **kwargs) -> list[float]`, called
the way GRPOTrainer calls reward functions. kwargs carry the dataset columns: `answer` (or the
column named by `answer_key`; required), and optionally `task_type` (else `default_task_type`),
`reference`, `choices` and `group_id`. Completions and prompts may be plain strings or TRL's
conversational lists of messages. Lengths come from TRL's `completion_ids`, else the whitespace
word count stands in for the token count (the length penalty only uses ratios of lengths within a
group). `trl_reward_funcs(cfg)` gives the three components as separate functions (TRL logs each)
plus the matching `reward_weights`; they share one scorer, so a batch is scored once.

Groups (the length penalty compares the responses to one prompt): an explicit `group_id` column,
else blocks of `num_generations` consecutive completions, which is how GRPOTrainer lays them out.
num_generations is passed in, or read from the trainer: HarmoGRPOTrainer binds its reward functions
(`func.bind_trainer(trainer)`), also switching to `num_generations_eval` in evaluation. Prompt text
never decides a group (two rows with the same prompt may be different groups).

Several processes: GRPOTrainer calls the reward functions on each process with that process's
completions, which are positions [rank * n, (rank + 1) * n) of the batch it gathers across
processes (grpo_trainer's `process_slice`), and it does not require n to be a multiple of
num_generations, so a prompt's generations can be split across processes. The block ids are
therefore global (`(rank * n + i) // num_generations`). When a block is split, each process
verifies its own completions and the (group, length, accuracy) triples are exchanged with
`torch.distributed.all_gather_object`, so every response's length penalty is computed over its
whole group, as in one process. Explicit `group_id` columns are taken as they are (per process).

An answer that cannot be scored (unreadable gold, verifier timeout or error, and no model reward
to fall back on) scores 0, and its reason is logged once per reason (logger
`harmo_fast.integrations.trl_rewards`).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from harmo_fast.integrations.samples import gold_answer, message_text
from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.length import length_reward
from harmo_fast.rewards.pool import VerifierPool
from harmo_fast.rewards.types import RewardResult, RewardSample, Verdict

logger = logging.getLogger(__name__)

COMPONENTS = ("total", "hybrid", "length", "format")


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a call's completions sit: this process's rank among `world` processes, each holding
    the same number of consecutive completions of the gathered batch."""

    rank: int = 0
    world: int = 1


def _distributed_placement() -> Placement:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Placement(dist.get_rank(), dist.get_world_size())
    return Placement()


def _unscorable(v: Verdict) -> bool:
    return not v.confident and v.scored_by != "model"


class _Scorer:
    """One HybridReward (with its worker pool, started on first use), the grouping settings and
    the last batch's result, so several reward functions over the same batch score it once."""

    def __init__(self, cfg: RewardConfig, use_pool: bool, num_generations: int | None) -> None:
        if num_generations is not None and (isinstance(num_generations, bool) or num_generations < 1):
            raise ValueError(f"num_generations must be a positive int or None, got {num_generations!r}")
        self.cfg = cfg
        self.use_pool = use_pool
        self.num_generations = num_generations
        self.trainer: Any = None
        self._hybrid: HybridReward | None = None
        self._last: tuple[tuple, RewardResult] | None = None
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def bind_trainer(self, trainer: Any) -> None:
        """Take num_generations (num_generations_eval in evaluation) and the process placement
        from a TRL GRPOTrainer."""
        self.trainer = trainer

    def group_size(self) -> int | None:
        t = self.trainer
        if t is None:
            return self.num_generations
        return t.num_generations if t.model.training else t.num_generations_eval

    def placement(self) -> Placement:
        if self.trainer is not None:
            return Placement(self.trainer.accelerator.process_index, self.trainer.accelerator.num_processes)
        return _distributed_placement()

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

    def score(self, samples: list[RewardSample], exchange: Placement | None) -> RewardResult:
        """Score a batch; with `exchange`, groups are split across processes and the length
        penalty is computed over the groups gathered from all of them."""
        key = tuple(
            (s.prompt, s.completion, str(s.answer), s.task_type, s.group_id, s.length, s.reference) for s in samples
        )
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
            hybrid = self._get_hybrid()
            result = hybrid.score(samples)
            if any(_unscorable(v) for v in result.verdicts):
                result = hybrid.compose(samples, self._zero_unscorable(result.verdicts), result.timings)
            if exchange is not None:
                result = self._with_global_length(samples, result, exchange)
            self._last = (key, result)
            return result

    def _zero_unscorable(self, verdicts: Sequence[Verdict]) -> list[Verdict]:
        out = []
        for v in verdicts:
            if _unscorable(v):
                if v.reason not in self._logged:
                    self._logged.add(v.reason)
                    logger.warning(
                        "HARMO reward: an answer could not be scored (reason %r%s); it scores 0",
                        v.reason,
                        f": {v.detail}" if v.detail else "",
                    )
                v = dataclasses.replace(v, score=0.0, correct=False)
            out.append(v)
        return out

    def _with_global_length(self, samples: list[RewardSample], result: RewardResult, where: Placement) -> RewardResult:
        import torch.distributed as dist

        mine = [(s.group_id, s.length, h) for s, h in zip(samples, result.components["hybrid"])]
        parts: list[Any] = [None] * where.world
        dist.all_gather_object(parts, mine)
        rows = [row for part in parts for row in part]
        lengths = length_reward([r[1] for r in rows], [r[2] for r in rows], [r[0] for r in rows], self.cfg.length)
        start = sum(len(p) for p in parts[: where.rank])
        length = lengths[start : start + len(samples)]
        cfg = self.cfg
        hyb, fmt = result.components["hybrid"], result.components["format"]
        total = [cfg.w_hybrid * h + cfg.w_length * ln + cfg.w_format * f for h, ln, f in zip(hyb, length, fmt)]
        return RewardResult(total, {**result.components, "length": length}, result.verdicts, result.timings)


def _column(kwargs: dict[str, Any], name: str, n: int) -> list[Any] | None:
    values = kwargs.get(name)
    if values is None:
        return None
    values = list(values)
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} entries for {n} completions")
    return values


def _group_ids(
    kwargs: dict[str, Any], n: int, group_size: int | None, where: Placement
) -> tuple[list[int], Placement | None]:
    """(group id per completion, the placement when groups are split across processes)."""
    explicit = _column(kwargs, "group_id", n)
    if explicit is not None:
        return [int(g) for g in explicit], None
    if group_size is None:
        raise ValueError(
            "HARMO's TRL reward needs the group layout: pass num_generations= (GRPOConfig.num_generations), "
            "train with HarmoGRPOTrainer (which passes it), or give the dataset a 'group_id' column"
        )
    # n is the same on every process, so all of them agree on whether groups are split.
    split = n % group_size != 0
    if split and where.world == 1:
        raise ValueError(f"{n} completions do not form whole groups of num_generations={group_size}")
    offset = where.rank * n
    return [(offset + i) // group_size for i in range(n)], where if split else None


def _trl_samples(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    kwargs: dict[str, Any],
    answer_key: str,
    default_task_type: str,
    groups: list[int],
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
    texts = [message_text(c) for c in completions]
    lengths = [len(i) for i in ids] if ids is not None else [len(t.split()) for t in texts]
    return [
        RewardSample(
            completion=texts[i],
            answer=gold_answer(answers[i]),
            task_type=str(task_types[i]),
            group_id=groups[i],
            length=lengths[i],
            prompt=message_text(prompts[i]),
            reference=references[i] if references[i] else None,
            choices=list(choices[i]) if choices[i] is not None else None,
        )
        for i in range(n)
    ]


def _trl_func(scorer: _Scorer, component: str, answer_key: str, default_task_type: str) -> Callable[..., list[float]]:
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        groups, exchange = _group_ids(kwargs, len(completions), scorer.group_size(), scorer.placement())
        samples = _trl_samples(prompts, completions, kwargs, answer_key, default_task_type, groups)
        result = scorer.score(samples, exchange)
        return list(result.total) if component == "total" else list(result.components[component])

    reward.__name__ = f"harmo_{component}"
    reward.__qualname__ = reward.__name__
    reward.close = scorer.close  # type: ignore[attr-defined]
    reward.bind_trainer = scorer.bind_trainer  # type: ignore[attr-defined]
    return reward


def trl_reward_func(
    cfg: RewardConfig | None = None,
    component: str = "total",
    *,
    num_generations: int | None = None,
    answer_key: str = "answer",
    default_task_type: str = "math",
    use_pool: bool = True,
) -> Callable[..., list[float]]:
    """A TRL reward function returning the weighted total (default) or one unweighted component
    ("hybrid", "length", "format"). num_generations: GRPOConfig.num_generations (None: taken from
    HarmoGRPOTrainer, or a `group_id` column). use_pool: verify in `cfg.num_workers` worker
    processes with hard timeouts, started on the first call and stopped by `func.close()` or at
    exit (else in-process, heavy cases in the shared pool). cfg: None = the defaults."""
    scorer = _Scorer(cfg or RewardConfig(), use_pool, num_generations)
    return _trl_func(scorer, component, answer_key, default_task_type)


def trl_reward_funcs(
    cfg: RewardConfig | None = None,
    *,
    num_generations: int | None = None,
    answer_key: str = "answer",
    default_task_type: str = "math",
    use_pool: bool = True,
) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """([hybrid, length, format] reward functions sharing one scorer, their reward_weights):
    pass them as `GRPOTrainer(reward_funcs=funcs, args=GRPOConfig(reward_weights=weights))`.
    num_generations as in `trl_reward_func`; cfg: None = the defaults."""
    cfg = cfg or RewardConfig()
    scorer = _Scorer(cfg, use_pool, num_generations)
    funcs = [_trl_func(scorer, c, answer_key, default_task_type) for c in ("hybrid", "length", "format")]
    return funcs, [cfg.w_hybrid, cfg.w_length, cfg.w_format]
