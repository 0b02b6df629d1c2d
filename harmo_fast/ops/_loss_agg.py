"""Loss aggregation modes of grpo_loss (docs/SPEC.md §2 table): how the masked per-token losses of
a micro-batch become one scalar, under our names, verl's and TRL's.

Every mode is a numerator divided by a divisor. The numerator is sum_b S_b (S_b = sum_t m L, the
row's token sum) or, for the token-mean-per-row modes, sum_b S_b / max(n_b, 1) (n_b = sum_t m).
`normalizer`, when given, is the divisor (TRL's dr_grpo excepted: there it is TRL's
max_completion_length, as TRL names it). Without it each mode has its default divisor; the
seq-mean modes of ours and verl's count the non-empty rows (n_b > 0), TRL's count every row.

Each mode has two faces: `reference`, the readable formula the torch backend uses, and `plan`,
the same aggregation as per-row weights that the fused kernels apply
(csrc/grpo_loss/grpo_loss_math.h, AggPlan). Tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AggPlan:
    """alpha_b = 1 / (base * [max(n_b, 1)] * [max(n, 1)] * [max(rows, 1)]), each bracket present when
    its flag is set: per_row_count (n_b), total_count (n = sum m), nonempty_rows (rows = the
    number of rows with n_b > 0)."""

    base: float
    per_row_count: bool
    total_count: bool
    nonempty_rows: bool


@dataclass(frozen=True)
class LossAgg:
    """One aggregation mode.

    reference(masked_loss (N,T), mask (N,T) float, normalizer) -> 0-dim loss;
    plan(N, T, normalizer) -> the kernels' AggPlan; required_normalizer: what the caller must pass
    as normalizer, for a mode without a default (its divisor is something only the caller knows)."""

    name: str
    reference: Callable[[torch.Tensor, torch.Tensor, float | None], torch.Tensor]
    plan: Callable[[int, int, float | None], AggPlan]
    required_normalizer: str | None = None


def _nonempty_rows(m: torch.Tensor) -> torch.Tensor:
    return (m.sum(-1) > 0).sum().clamp(min=1).to(m.dtype)


def _row_means(lm: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return lm.sum(-1) / m.sum(-1).clamp(min=1.0)


def _token_mean_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return lm.sum() / (m.sum().clamp(min=1.0) if z is None else z)


def _token_sum_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return lm.sum() / (1.0 if z is None else z)


def _seq_mean_token_mean_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return _row_means(lm, m).sum() / (_nonempty_rows(m) if z is None else z)


def _seq_mean_token_sum_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return lm.sum(-1).sum() / (_nonempty_rows(m) if z is None else z)


def _seq_mean_token_sum_norm_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return lm.sum(-1).sum() / (_nonempty_rows(m) * max(lm.shape[1], 1) if z is None else z)


def _trl_grpo_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return _row_means(lm, m).sum() / (max(lm.shape[0], 1) if z is None else z)


def _trl_dr_grpo_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return lm.sum() / (max(lm.shape[0], 1) * z)


def _trl_luspo_ref(lm: torch.Tensor, m: torch.Tensor, z: float | None) -> torch.Tensor:
    return lm.sum(-1).sum() / (max(lm.shape[0], 1) if z is None else z)


def _plan(base: float, per_row: bool = False, total: bool = False, rows: bool = False) -> AggPlan:
    return AggPlan(float(base), per_row, total, rows)


AGGREGATIONS: dict[str, LossAgg] = {
    agg.name: agg
    for agg in (
        # ours (verl's semantics): default divisors count tokens or non-empty rows
        LossAgg(
            "token_mean",
            _token_mean_ref,
            lambda n, t, z: _plan(1.0, total=True) if z is None else _plan(z),
        ),
        LossAgg("token_sum", _token_sum_ref, lambda n, t, z: _plan(1.0 if z is None else z)),
        LossAgg(
            "seq_mean_token_mean",
            _seq_mean_token_mean_ref,
            lambda n, t, z: _plan(1.0, per_row=True, rows=True) if z is None else _plan(z, per_row=True),
        ),
        LossAgg(
            "seq_mean_token_sum",
            _seq_mean_token_sum_ref,
            lambda n, t, z: _plan(1.0, rows=True) if z is None else _plan(z),
        ),
        LossAgg(
            "seq_mean_token_sum_norm",
            _seq_mean_token_sum_norm_ref,
            # Default divisor: non-empty rows times T (verl's loss_scale_factor default, the padded
            # length); max(T, 1) keeps an empty batch finite.
            lambda n, t, z: _plan(max(t, 1), rows=True) if z is None else _plan(z),
        ),
        # TRL's names whose meaning differs from ours: their seq-means count every row.
        LossAgg(
            "grpo",
            _trl_grpo_ref,
            lambda n, t, z: _plan(max(n, 1) if z is None else z, per_row=True),
        ),
        LossAgg(
            "dr_grpo",
            _trl_dr_grpo_ref,
            lambda n, t, z: _plan(max(n, 1) * z),
            required_normalizer="max_completion_length (the divisor is rows * normalizer)",
        ),
        LossAgg("luspo", _trl_luspo_ref, lambda n, t, z: _plan(max(n, 1) if z is None else z)),
        # TRL's dapo divides by num_items_in_batch / num_processes, which only the caller knows;
        # without it the name would silently mean bnpo.
        LossAgg(
            "dapo",
            _token_mean_ref,
            lambda n, t, z: _plan(z),
            required_normalizer="num_items_in_batch / num_processes",
        ),
    )
}

# Names with exactly the meaning of one of the modes above.
ALIASES: dict[str, str] = {
    "token-mean": "token_mean",
    "bnpo": "token_mean",
    "token-sum": "token_sum",
    "seq-mean-token-mean": "seq_mean_token_mean",
    "seq-mean-token-sum": "seq_mean_token_sum",
    "seq-mean-token-sum-norm": "seq_mean_token_sum_norm",
}


def resolve_loss_agg(op: str, name: str, normalizer: float | None) -> LossAgg:
    """The aggregation mode called `name` (a mode or an alias); raises naming loss_agg, or
    normalizer where the mode needs one."""
    agg = AGGREGATIONS.get(ALIASES.get(name, name)) if isinstance(name, str) else None
    if agg is None:
        known = ", ".join(repr(n) for n in (*AGGREGATIONS, *ALIASES))
        raise ValueError(f"{op}: unknown loss_agg {name!r}; expected one of {known}")
    if agg.required_normalizer and normalizer is None:
        raise ValueError(f"{op}: loss_agg={name!r} needs normalizer={agg.required_normalizer}")
    return agg
