"""THE GRPO step: rollout -> rewards (async, overlapped with the old/ref log-prob passes) ->
mean-only group advantages -> `num_iterations` epochs of minibatches (gradient accumulation over
micro-batches): log-probs -> `harmo.grpo_loss` -> backward -> clip -> AdamW -> lr schedule.
A non-finite loss or gradient norm skips that optimizer step, warns and is counted."""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

import harmo_fast as harmo
from harmo_fast.data.jsonl import Sample
from harmo_fast.rewards.types import RewardResult, RewardSample
from harmo_fast.trainer.config import Config
from harmo_fast.trainer.logprobs import completion_logprobs
from harmo_fast.trainer.policy import Policy, autocast
from harmo_fast.trainer.rollout import RolloutBatch, RolloutEngine


@dataclass
class TrainState:
    cfg: Config
    policy: Policy
    engine: RolloutEngine
    rewards: Any  # harmo_fast.rewards.RewardPipeline (or anything with .submit(samples) -> Future)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ref_model: Any | None = None
    nan_skipped: int = 0
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.timings[name] += time.perf_counter() - t0


@dataclass
class StepOutput:
    batch: RolloutBatch
    rewards: RewardResult
    advantages: torch.Tensor
    stats: dict[str, float]


def reward_samples(batch: RolloutBatch) -> list[RewardSample]:
    return [
        RewardSample(
            completion=text,
            answer=s.answer,
            task_type=s.task_type,
            group_id=int(g),
            length=int(n),
            prompt=s.prompt,
            reference=s.reference,
            choices=s.choices,
        )
        for s, text, g, n in zip(batch.samples, batch.texts, batch.group_ids.tolist(), batch.lengths.tolist())
    ]


def needs_old_logprobs(cfg: Config) -> bool:
    """Old log-probs differ from logp.detach() only once the policy moved within this batch."""
    return cfg.algorithm.num_iterations > 1 or cfg.algorithm.num_minibatches > 1


def _chunks(rows: list[int], size: int | None) -> list[list[int]]:
    size = size or max(1, len(rows))
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _minibatches(n: int, parts: int) -> list[list[int]]:
    return _chunks(list(range(n)), -(-n // max(1, parts)))


def _forward(
    st: TrainState, model: Any, batch: RolloutBatch, rows: list[int], entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """(logp, entropy, width) of `rows`, over their first `width` = longest completion columns."""
    width = int(batch.lengths[rows].max())
    inputs = batch.model_inputs(rows, width)
    with autocast(st.cfg.model, st.policy.device):
        logp, ent = completion_logprobs(
            model,
            inputs,
            batch.completion_ids[rows, :width],
            batch.completion_mask[rows, :width],
            temperature=st.cfg.rollout.temperature,
            entropy=entropy,
            path=st.cfg.model.logprobs,
        )
    return logp, ent, width


def batch_logprobs(st: TrainState, model: Any, batch: RolloutBatch) -> torch.Tensor:
    """Log-probs of all completions under `model`, no gradient (old policy or reference)."""
    out = torch.zeros(batch.completion_ids.shape, dtype=torch.float32, device=batch.completion_ids.device)
    with torch.no_grad():
        for rows in _chunks(list(range(batch.size)), st.cfg.trainer.micro_batch_size):
            logp, _, width = _forward(st, model, batch, rows)
            out[rows, :width] = logp
    return out


class PendingAdvantages:
    """The advantages of a batch whose rewards are still being computed: `get()` waits for the
    reward future (timed as rewards_wait) and computes the group advantages once."""

    def __init__(self, st: TrainState, future: Any):
        self.st, self.future = st, future
        self.result: RewardResult | None = None
        self.adv: torch.Tensor | None = None

    def get(self) -> torch.Tensor:
        if self.adv is None:
            a, st = self.st.cfg.algorithm, self.st
            with st.timer("rewards_wait"):
                self.result = self.future.result()
            with st.timer("advantages"):
                rewards = torch.tensor(self.result.total, dtype=torch.float32, device=st.policy.device)
                self.adv = harmo.group_advantages(
                    rewards, group_size=a.group_size, scale=a.advantage_scale, eps=a.advantage_eps
                )
        return self.adv


def update(
    st: TrainState, batch: RolloutBatch, pending: PendingAdvantages, old: torch.Tensor | None, ref: torch.Tensor | None
) -> dict[str, float]:
    """`num_iterations` epochs of `num_minibatches` optimizer steps over the batch.

    With beta = 0 a response whose advantage is exactly 0 (every response of a zero-spread group)
    contributes exactly zero gradient, so its forward/backward is skipped; gradients start as
    zeros (not None) so the optimizer step is the same as if it had been computed. Loss-side
    metrics (ratio, clip fractions, entropy) are then over the trained responses' tokens.
    The first micro-batch of the first minibatch is always forwarded (all its rows) before the
    advantages are read, so the reward computation overlaps it; always, not only when the rewards
    happen to be late, so that the computation does not depend on timing (reproducible runs)."""
    a, cfg = st.cfg.algorithm, st.cfg
    mask = batch.completion_mask.to(torch.float32)
    params = [p for p in st.policy.model.parameters() if p.requires_grad]
    sums: dict[str, float] = defaultdict(float)
    n_tokens = n_steps = 0.0
    early = None
    for _ in range(a.num_iterations):
        for mb in _minibatches(batch.size, a.num_minibatches):
            for p in params:
                p.grad = torch.zeros_like(p) if p.grad is None else p.grad.zero_()
            tokens_mb = max(float(mask[mb].sum()), 1.0)
            finite, loss_mb = True, 0.0
            head: list[int] = []
            if pending.adv is None:  # overlap: forward the first micro-batch while rewards finish
                head = _chunks(mb, cfg.trainer.micro_batch_size)[0]
                early = _forward(st, st.policy.model, batch, head, entropy=cfg.logging.entropy)
            adv = pending.get()
            nonzero = (adv != 0).tolist()
            active = [i for i in mb[len(head) :] if a.beta > 0 or nonzero[i]]
            for rows in ([head] if head else []) + _chunks(active, cfg.trainer.micro_batch_size):
                logp, ent, w = (
                    early if rows is head else _forward(st, st.policy.model, batch, rows, entropy=cfg.logging.entropy)
                )
                early = None
                m_rows = mask[rows, :w]
                with st.timer("loss"):
                    loss, m = harmo.grpo_loss(
                        logp, None if old is None else old[rows, :w], adv[rows], m_rows, ref_logp=None if ref is None else ref[rows, :w],
                        eps_low=a.eps_low, eps_high=a.eps_high, delta=a.delta, beta=a.beta, kl_estimator=a.kl_estimator,
                        ratio_level=a.ratio_level, loss_agg=a.loss_agg, normalizer=_normalizer(a.loss_agg, tokens_mb, cfg.rollout.max_new_tokens),
                    )  # fmt: skip
                    if a.loss_agg != "token_mean":  # per-response means: weight by this chunk's share of the minibatch
                        loss = loss * (len(rows) / len(mb))
                if not torch.isfinite(loss):
                    finite = False
                    break
                loss.backward()
                loss_mb += float(loss.detach())
                tok = float(m_rows.sum())
                n_tokens += tok
                for k in ("kl_mean", "clip_low_frac", "clip_high_frac", "ratio_mean"):
                    sums[k] += float(m[k]) * tok
                if ent is not None:
                    sums["entropy"] += float((ent * m_rows).sum())
            grad_norm = (
                torch.nn.utils.clip_grad_norm_(params, cfg.trainer.max_grad_norm)
                if finite
                else torch.tensor(float("nan"))
            )
            if not finite or not torch.isfinite(grad_norm):
                st.nan_skipped += 1
                warnings.warn(
                    f"non-finite {'loss' if not finite else 'gradient norm'}: optimizer step skipped ({st.nan_skipped} so far)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            st.optimizer.step()
            st.scheduler.step()
            st.engine.sync_weights()
            sums["loss"] += loss_mb
            sums["grad_norm"] += float(grad_norm)
            n_steps += 1
    for p in params:
        p.grad = None
    nonzero = (pending.get() != 0).tolist()
    out = {
        k: sums[k] / n_tokens if n_tokens else float("nan")
        for k in ("kl_mean", "clip_low_frac", "clip_high_frac", "ratio_mean", "entropy")
    }
    out["kl"] = out.pop("kl_mean")
    out["loss"] = sums["loss"] / n_steps if n_steps else float("nan")
    out["grad_norm"] = sums["grad_norm"] / n_steps if n_steps else float("nan")
    out["trained_frac"] = sum(nonzero) / len(nonzero) if a.beta == 0 else 1.0
    return out


def _normalizer(agg: str, tokens_mb: float, max_new_tokens: int) -> float | None:
    """token_mean divides by the minibatch's token count (exact under gradient accumulation);
    seq_mean_token_sum_norm (Dr. GRPO) by the constant completion budget; the others need none."""
    if agg == "token_mean":
        return tokens_mb
    return max_new_tokens if agg == "seq_mean_token_sum_norm" else None


def grpo_step(st: TrainState, samples: list[Sample]) -> StepOutput:
    """One generation batch (len(samples) prompts x G responses) and its policy updates."""
    a = st.cfg.algorithm
    with st.timer("generation"):
        batch = st.engine.generate(samples, a.group_size)
    pending = PendingAdvantages(st, st.rewards.submit(reward_samples(batch)))  # scored in the background ...
    with st.timer("logprobs"):  # ... while the frozen passes (and the first forward of update) run
        old = batch_logprobs(st, st.policy.model, batch) if needs_old_logprobs(st.cfg) else None
        ref = batch_logprobs(st, st.ref_model, batch) if a.beta > 0 else None
    t0 = time.perf_counter()
    stats = update(st, batch, pending, old, ref)
    # update's own time, without the reward wait and advantage math that happened inside it
    st.timings["update"] += time.perf_counter() - t0 - st.timings["rewards_wait"] - st.timings["advantages"]
    return StepOutput(batch, pending.result, pending.adv, stats)
