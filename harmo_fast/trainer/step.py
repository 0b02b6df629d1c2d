"""THE GRPO step (docs/SPEC.md §2), top to bottom in `grpo_step`: rollout -> rewards (scored in the
background while the old/reference log-prob passes run) -> mean-only group advantages ->
`num_iterations` epochs of `num_minibatches` optimizer steps, each accumulating the gradient of
its micro-batches (log-probs -> `harmo.grpo_loss` -> backward), then clip -> AdamW -> lr schedule.
A non-finite loss or gradient norm skips that optimizer step, warns and is counted.

Under `trainer.parallel` each rank holds its own prompt groups: the loss's token count, the loss
and the stats are summed over ranks (trainer/distributed.py), so the update equals the
single-process update of the global batch."""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from harmo_fast.data.jsonl import Sample
from harmo_fast.rewards.types import RewardResult
from harmo_fast.trainer.advantages import PendingAdvantages, trained_fraction
from harmo_fast.trainer.config import Config
from harmo_fast.trainer.distributed import Dist, full_value
from harmo_fast.trainer.logprobs import (
    Inputs,
    completion_hidden,
    completion_logprobs,
    shares_prompts,
    supports_fused_loss,
)
from harmo_fast.trainer.loss import micro_batch_loss, micro_batch_loss_from_hidden
from harmo_fast.trainer.policy import Policy, autocast
from harmo_fast.trainer.rollout import RolloutBatch, RolloutEngine, reward_samples

# Loss-side metrics averaged over the trained tokens (grpo_loss's names; kl_mean is logged as kl).
TOKEN_STATS = ("kl_mean", "clip_low_frac", "clip_high_frac", "ratio_mean")


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
    dist: Dist = field(default_factory=Dist)
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


def grpo_step(st: TrainState, samples: list[Sample]) -> StepOutput:
    """One generation batch (len(samples) prompts x G responses) and its policy updates."""
    a = st.cfg.algorithm
    with st.timer("generation"):
        batch = st.engine.generate(samples, a.group_size)
    future = st.rewards.submit(reward_samples(batch))  # scored in the background ...
    pending = PendingAdvantages(future, a, st.policy.device, st.timer)
    with st.timer("logprobs"):  # ... while the frozen passes (and the first forward of update) run
        old = batch_logprobs(st, st.policy.model, batch) if needs_old_logprobs(st.cfg) else None
        ref = batch_logprobs(st, st.ref_model, batch) if a.beta > 0 else None
    t0 = time.perf_counter()
    stats = update(st, batch, pending, old, ref)
    # update's own time, without the reward wait and advantage math that happened inside it
    st.timings["update"] += time.perf_counter() - t0 - st.timings["rewards_wait"] - st.timings["advantages"]
    return StepOutput(batch, pending.result, pending.adv, stats)


def update(
    st: TrainState, batch: RolloutBatch, pending: PendingAdvantages, old: torch.Tensor | None, ref: torch.Tensor | None
) -> dict[str, float]:
    """`num_iterations` epochs of `num_minibatches` optimizer steps over the batch; their stats."""
    a = st.cfg.algorithm
    # The optimizer's parameters: under FSDP the module may show its gathered copies between passes.
    params = [p for group in st.optimizer.param_groups for p in group["params"]]
    stats = UpdateStats()
    for _ in range(a.num_iterations):
        for mb in _minibatches(batch.size, a.num_minibatches):
            # zeros, not None: a minibatch whose rows are all skipped still takes the same AdamW step
            for p in params:
                p.grad = torch.zeros_like(p) if p.grad is None else p.grad.zero_()
            loss = accumulate_gradients(st, batch, mb, pending, old, ref, stats)
            if loss is not None:
                st.dist.reduce_gradients(params)
            grad_norm = clip_gradients(params, st.cfg.trainer.max_grad_norm) if loss is not None else None
            if grad_norm is None:
                _skip_step(st, "loss" if loss is None else "gradient norm")
                continue
            st.optimizer.step()
            st.scheduler.step()
            st.engine.sync_weights()
            stats.add_step(loss, grad_norm)
    for p in params:
        p.grad = None
    stats.all_reduce(st.dist)
    adv = pending.get()
    trained, rows = st.dist.sum([round(trained_fraction(adv, a.beta) * adv.numel()), adv.numel()])
    return stats.summary(trained / rows)


def accumulate_gradients(
    st: TrainState,
    batch: RolloutBatch,
    mb: list[int],
    pending: PendingAdvantages,
    old: torch.Tensor | None,
    ref: torch.Tensor | None,
    stats: UpdateStats,
) -> float | None:
    """Backward of every micro-batch of minibatch `mb` into the parameters' gradients; the loss
    summed over micro-batches (and ranks), or None when a micro-batch loss is not finite (the
    optimizer step is then skipped; a single process stops at the first one, ranks in lockstep
    still run every backward)."""
    a, cfg = st.cfg.algorithm, st.cfg
    mask = batch.completion_mask.to(torch.float32)
    tokens_mb, rows_mb = st.dist.sum([float(mask[mb].sum()), len(mb)])
    tokens_mb = max(tokens_mb, 1.0)
    total = 0.0
    fused = uses_fused_loss(st)
    for rows, (x, y, width) in _micro_batch_forwards(st, batch, mb, pending, fused):
        if not rows:  # lockstep padding: the collectives of a forward and backward, no gradient
            (x.sum() * 0.0).backward()
            continue
        m_rows = mask[rows, :width]
        adv = pending.get()
        old_rows = None if old is None else old[rows, :width]
        ref_rows = None if ref is None else ref[rows, :width]
        kw = dict(tokens_mb=tokens_mb, share=len(rows) / rows_mb, max_new_tokens=cfg.rollout.max_new_tokens)
        with st.timer("loss"):
            if fused:  # x, y: the hidden states and the LM head's weight
                ids = batch.completion_ids[rows, :width]
                opts = dict(temperature=cfg.rollout.temperature, entropy=cfg.logging.entropy)
                loss, metrics = micro_batch_loss_from_hidden(
                    a, x, y, ids, old_rows, ref_rows, adv[rows], m_rows, **kw, **opts
                )
                y = None
            else:  # x, y: the log-probs and their entropy
                loss, metrics = micro_batch_loss(a, x, old_rows, ref_rows, adv[rows], m_rows, **kw)
        if not torch.isfinite(loss):
            total = math.nan
            if not st.dist.lockstep:
                break
            loss.backward()
            continue
        loss.backward()
        total += float(loss.detach())
        stats.add_micro_batch(metrics, m_rows, y)
    (total,) = st.dist.sum([total])
    return total if math.isfinite(total) else None


def uses_fused_loss(st: TrainState) -> bool:
    """The policy loss straight from the hidden states (harmo.linear_grpo_loss, gradients of the LM
    head computed in its forward): for one policy update per generation batch, on a model whose
    head allows it, unless the logits path is asked for."""
    return st.cfg.model.logprobs != "logits" and not needs_old_logprobs(st.cfg) and supports_fused_loss(st.policy.model)


def _micro_batch_forwards(
    st: TrainState, batch: RolloutBatch, mb: list[int], pending: PendingAdvantages, fused: bool
) -> Iterator[tuple[list[int], tuple[torch.Tensor, torch.Tensor | None, int]]]:
    """(rows, forward) of each micro-batch of `mb` that needs a backward: (hidden, LM head weight,
    width) when `fused`, else (logp, entropy, width).

    While the rewards are pending, the first micro-batch (all its rows) is forwarded before the
    advantages are read, so the reward computation overlaps it; always, not only when the rewards
    happen to be late, so that the computation does not depend on timing (reproducible runs).
    With beta = 0 a response whose advantage is exactly 0 (every response of a zero-spread group)
    contributes exactly zero gradient, so the other micro-batches leave it out; loss-side metrics
    (ratio, clip fractions, entropy) are then over the trained responses' tokens. Those
    micro-batches take the rows in order of completion length (less padding), group by group where
    each distinct prompt is forwarded once per micro-batch (see `_trained_order`).
    Ranks in lockstep (FSDP) agree on the number of micro-batches first; a rank with fewer pads
    with empty `rows` whose forward is of one row, for the collectives only."""
    cfg = st.cfg
    size, entropy = cfg.trainer.micro_batch_size, cfg.logging.entropy

    def forward(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor | None, int]:
        return _forward_hidden(st, batch, rows) if fused else _forward(st, st.policy.model, batch, rows, entropy)

    rest, done = mb, 0
    if not pending.ready:
        head = _chunks(mb, size)[0]
        rest, done = mb[len(head) :], 1
        yield head, forward(head)
    nonzero = (pending.get() != 0).tolist()
    trained = [i for i in rest if cfg.algorithm.beta > 0 or nonzero[i]]
    trained = _trained_order(batch, trained, by_group=shares_prompts(st.policy.model, batch.prompt))
    chunks = _chunks(trained, size)
    padding = st.dist.max(done + len(chunks)) - done - len(chunks) if st.dist.lockstep else 0
    for rows in chunks:
        yield rows, forward(rows)
    for _ in range(padding):
        yield [], forward(mb[:1])


def clip_gradients(params: list[torch.Tensor], max_norm: float) -> float | None:
    """Clip the gradients to `max_norm`; their norm before clipping, None when it is not finite."""
    grad_norm = full_value(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(grad_norm) if torch.isfinite(grad_norm) else None


def _skip_step(st: TrainState, what: str) -> None:
    st.nan_skipped += 1
    warnings.warn(f"non-finite {what}: optimizer step skipped ({st.nan_skipped} so far)", RuntimeWarning, stacklevel=3)


class UpdateStats:
    """Sums over an update: token-weighted loss-side metrics per micro-batch, loss and gradient
    norm per optimizer step taken."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.tokens = 0.0
        self.steps = 0

    def add_micro_batch(self, metrics: dict[str, torch.Tensor], mask: torch.Tensor, ent: torch.Tensor | None) -> None:
        tok = float(mask.sum())
        self.tokens += tok
        for k in TOKEN_STATS:
            self.sums[k] += float(metrics[k]) * tok
        if ent is not None:
            self.sums["entropy"] += float((ent * mask).sum())
        elif "entropy_mean" in metrics:  # the fused loss's masked mean
            self.sums["entropy"] += float(metrics["entropy_mean"]) * tok

    def add_step(self, loss: float, grad_norm: float) -> None:
        self.sums["loss"] += loss
        self.sums["grad_norm"] += grad_norm
        self.steps += 1

    def all_reduce(self, d: Dist) -> None:
        """Token-weighted sums over all ranks (the loss is already summed per step, the gradient
        norm is global)."""
        keys = [*TOKEN_STATS, "entropy"]
        self.tokens, *sums = d.sum([self.tokens, *(self.sums[k] for k in keys)])
        self.sums.update(zip(keys, sums))

    def summary(self, trained_frac: float) -> dict[str, float]:
        """Means (nan where nothing was trained or no step was taken)."""
        out = {k: self.sums[k] / self.tokens if self.tokens else float("nan") for k in (*TOKEN_STATS, "entropy")}
        out["kl"] = out.pop("kl_mean")
        for k in ("loss", "grad_norm"):
            out[k] = self.sums[k] / self.steps if self.steps else float("nan")
        out["trained_frac"] = trained_frac
        return out


def needs_old_logprobs(cfg: Config) -> bool:
    """Old log-probs differ from logp.detach() only once the policy moved within this batch."""
    return cfg.algorithm.num_iterations > 1 or cfg.algorithm.num_minibatches > 1


def batch_logprobs(st: TrainState, model: Any, batch: RolloutBatch) -> torch.Tensor:
    """Log-probs of all completions under `model`, no gradient (old policy or reference)."""
    out = torch.zeros(batch.completion_ids.shape, dtype=torch.float32, device=batch.completion_ids.device)
    with torch.no_grad():
        for rows in _chunks(list(range(batch.size)), st.cfg.trainer.micro_batch_size):
            logp, _, width = _forward(st, model, batch, rows)
            out[rows, :width] = logp
    return out


def _forward(
    st: TrainState, model: Any, batch: RolloutBatch, rows: list[int], entropy: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """(logp, entropy, width) of `rows`, over their first `width` = longest completion columns."""
    width = int(batch.lengths[rows].max())
    inputs = _inputs(model, batch, rows, width)
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


def _forward_hidden(st: TrainState, batch: RolloutBatch, rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(hidden states, LM head weight, width) of `rows` for the fused loss, width as in _forward."""
    width = int(batch.lengths[rows].max())
    inputs = _inputs(st.policy.model, batch, rows, width)
    with autocast(st.cfg.model, st.policy.device):
        hidden, weight = completion_hidden(st.policy.model, inputs, width)
    return hidden, weight, width


def _inputs(model: Any, batch: RolloutBatch, rows: list[int], width: int) -> Inputs:
    """The forward inputs of `rows`: each distinct prompt once where rows share one and
    `shares_prompts` allows it, else one prompt + completion sequence per row."""
    shared = len(set(batch.group_ids[rows].tolist())) < len(rows) and shares_prompts(model, batch.prompt)
    return batch.shared_inputs(rows, width) if shared else batch.model_inputs(rows, width)


def _trained_order(batch: RolloutBatch, rows: list[int], by_group: bool) -> list[int]:
    """`rows` in order of completion length, so that rows of similar length share a micro-batch (each
    forward is as wide as its longest completion); `by_group`: group by group first, so that a
    micro-batch holds few distinct prompts to forward."""
    lengths, groups = batch.lengths.tolist(), batch.group_ids.tolist()
    return sorted(rows, key=(lambda i: (groups[i], lengths[i])) if by_group else (lambda i: lengths[i]))


def _chunks(rows: list[int], size: int | None) -> list[list[int]]:
    size = size or max(1, len(rows))
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _minibatches(n: int, parts: int) -> list[list[int]]:
    return _chunks(list(range(n)), -(-n // max(1, parts)))
