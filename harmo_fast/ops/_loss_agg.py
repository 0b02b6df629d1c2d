"""Loss aggregation modes of grpo_loss (docs/SPEC.md §2 table): how the masked per-token losses of
a micro-batch become one scalar, with the TRL and verl names accepted as aliases.

Each mode has two faces: `reference`, the readable formula the torch backend uses, and `plan`,
the same aggregation as per-row weights alpha_b = 1 / (base * [max(n_b, 1)] * [max(n, 1)]) that
the fused kernels apply (csrc/grpo_loss/grpo_loss_math.h, AggPlan). Tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AggPlan:
    """alpha_b = 1 / (base * (max(n_b, 1) if per_row_count) * (max(n, 1) if total_count))."""

    base: float
    per_row_count: bool
    total_count: bool


@dataclass(frozen=True)
class LossAgg:
    """One aggregation mode.

    reference(masked_loss (N,T), mask (N,T) float, normalizer) -> 0-dim loss;
    plan(N, T, normalizer) -> the kernels' AggPlan."""

    name: str
    reference: Callable[[torch.Tensor, torch.Tensor, float | None], torch.Tensor]
    plan: Callable[[int, int, float | None], AggPlan]


def _token_mean_ref(lm: torch.Tensor, m: torch.Tensor, normalizer: float | None) -> torch.Tensor:
    denom = m.sum().clamp(min=1.0) if normalizer is None else normalizer
    return lm.sum() / denom


def _seq_mean_token_mean_ref(lm: torch.Tensor, m: torch.Tensor, normalizer: float | None) -> torch.Tensor:
    per_row = lm.sum(-1) / m.sum(-1).clamp(min=1.0)
    return per_row.sum() / max(lm.shape[0], 1)


def _seq_mean_token_sum_ref(lm: torch.Tensor, m: torch.Tensor, normalizer: float | None) -> torch.Tensor:
    return lm.sum(-1).sum() / max(lm.shape[0], 1)


def _seq_mean_token_sum_norm_ref(lm: torch.Tensor, m: torch.Tensor, normalizer: float | None) -> torch.Tensor:
    norm = max(lm.shape[1], 1) if normalizer is None else normalizer
    return lm.sum() / (max(lm.shape[0], 1) * norm)


AGGREGATIONS: dict[str, LossAgg] = {
    agg.name: agg
    for agg in (
        LossAgg(
            "token_mean",
            _token_mean_ref,
            lambda n, t, z: AggPlan(1.0, False, True) if z is None else AggPlan(float(z), False, False),
        ),
        LossAgg(
            "seq_mean_token_mean", _seq_mean_token_mean_ref, lambda n, t, z: AggPlan(float(max(n, 1)), True, False)
        ),
        LossAgg("seq_mean_token_sum", _seq_mean_token_sum_ref, lambda n, t, z: AggPlan(float(max(n, 1)), False, False)),
        LossAgg(
            "seq_mean_token_sum_norm",
            _seq_mean_token_sum_norm_ref,
            # Default normalizer T (verl's padded length); max(T, 1) keeps an empty batch finite.
            lambda n, t, z: AggPlan(float(max(n, 1)) * (float(max(t, 1)) if z is None else float(z)), False, False),
        ),
    )
}

ALIASES: dict[str, str] = {
    "token-mean": "token_mean",
    "bnpo": "token_mean",
    "dapo": "token_mean",
    "grpo": "seq_mean_token_mean",
    "seq-mean-token-mean": "seq_mean_token_mean",
    "seq-mean-token-sum": "seq_mean_token_sum",
    "dr_grpo": "seq_mean_token_sum_norm",
    "seq-mean-token-sum-norm": "seq_mean_token_sum_norm",
}

# TRL's dapo divides by num_items_in_batch / num_processes, which only the caller knows; without
# it the name would silently mean bnpo, so it must come with an explicit normalizer.
NEEDS_NORMALIZER = frozenset({"dapo"})


def resolve_loss_agg(op: str, name: str, normalizer: float | None) -> LossAgg:
    """The aggregation mode called `name` (canonical or alias); raises naming loss_agg."""
    agg = AGGREGATIONS.get(ALIASES.get(name, name)) if isinstance(name, str) else None
    if agg is None:
        known = ", ".join(repr(n) for n in (*AGGREGATIONS, *ALIASES))
        raise ValueError(f"{op}: unknown loss_agg {name!r}; expected one of {known}")
    if name in NEEDS_NORMALIZER and normalizer is None:
        raise ValueError(f"{op}: loss_agg={name!r} needs normalizer=num_items_in_batch / num_processes")
    return agg
