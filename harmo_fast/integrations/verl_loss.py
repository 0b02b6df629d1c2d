"""verl policy loss "harmo": verl's clipped PPO/GRPO objective (`compute_policy_loss_vanilla` +
`agg_loss`) computed by the fused `grpo_loss`. Registered by importing
`harmo_fast.integrations.verl`; select it with `actor_rollout_ref.actor.policy_loss.loss_mode=harmo`.

What it honours of verl's actor config:
- `clip_ratio_low` / `clip_ratio_high` (each falling back to `clip_ratio`) -> eps_low / eps_high;
- `clip_ratio_c`, verl's dual clip for negative advantages -> grpo_loss's `delta` (the same objective
  once `clip_ratio_c >= 1 + clip_ratio_high`, which is required: verl applies the cap to negative
  advantages only, grpo_loss to every token, and the two agree only where the cap never binds a
  positive advantage);
- `loss_agg_mode`, each mode normalised as verl's `agg_loss` does, by `global_batch_info` (the
  whole mini-batch's `batch_num_tokens` / `global_batch_size` and `dp_size`, so that micro-batches
  add up to the mini-batch loss) and `loss_scale_factor`;
- `rollout_is_weights` (rollout-correction importance weights) -> grpo_loss's `is_weights`.

Like verl, the log-ratio is clamped to +-20 before the exponential (tokens past the clamp get no
gradient). The KL and entropy terms stay verl's (it adds them after the policy loss). Metrics are
verl's: `actor/pg_clipfrac`, `actor/ppo_kl`, `actor/pg_clipfrac_lower`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from harmo_fast.ops.grpo_loss import grpo_loss

LOG_RATIO_CLAMP = 20.0  # verl's bound on logp - old_logp before exp


def _setting(config: Any, name: str, default: Any = None) -> Any:
    value = config.get(name, default) if hasattr(config, "get") else getattr(config, name, default)
    return default if value is None else value


def _number(value: Any) -> float:
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def _nonempty_rows(mask: torch.Tensor) -> float:
    return float((mask.sum(-1) > 0).sum().item())


def _global_rows(mask: torch.Tensor, info: dict[str, Any], dp: float) -> float:
    """The mini-batch's sequence count per rank (verl: global_batch_size / dp_size), else this
    micro-batch's non-empty rows."""
    if info.get("global_batch_size") is None:
        if dp > 1:
            raise ValueError("harmo policy loss: global_batch_info.global_batch_size is required when dp_size > 1")
        return max(_nonempty_rows(mask), 1.0)
    return _number(info["global_batch_size"]) / dp


def _token_mean(mask: torch.Tensor, info: dict[str, Any], dp: float) -> tuple[str, float | None]:
    if info.get("batch_num_tokens") is None:
        if dp > 1:
            raise ValueError("harmo policy loss: global_batch_info.batch_num_tokens is required when dp_size > 1")
        return "token_mean", None
    return "token_mean", _number(info["batch_num_tokens"]) / dp


def _token_sum(mask: torch.Tensor, info: dict[str, Any], dp: float) -> tuple[str, float | None]:
    return "token_sum", 1.0 / dp


def _seq_mean_token_sum(mask: torch.Tensor, info: dict[str, Any], dp: float) -> tuple[str, float | None]:
    return "seq_mean_token_sum", _global_rows(mask, info, dp)


def _seq_mean_token_sum_norm(mask: torch.Tensor, info: dict[str, Any], dp: float) -> tuple[str, float | None]:
    factor = info.get("loss_scale_factor")
    horizon = float(mask.shape[-1]) if factor is None else _number(factor)
    return "seq_mean_token_sum_norm", _global_rows(mask, info, dp) * horizon


def _seq_mean_token_mean(mask: torch.Tensor, info: dict[str, Any], dp: float) -> tuple[str, float | None]:
    return "seq_mean_token_mean", _global_rows(mask, info, dp)


# verl's loss_agg_mode -> (mask, global_batch_info, dp_size) -> (grpo_loss loss_agg, normalizer)
AGGREGATIONS: dict[str, Callable[[torch.Tensor, dict[str, Any], float], tuple[str, float | None]]] = {
    "token-mean": _token_mean,
    "token-sum": _token_sum,
    "seq-mean-token-sum": _seq_mean_token_sum,
    "seq-mean-token-sum-norm": _seq_mean_token_sum_norm,
    "seq-mean-token-mean": _seq_mean_token_mean,
}


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """verl's masked_mean: values outside the mask (NaN included) do not count."""
    m = mask.to(x.dtype)
    return float((torch.where(m != 0, x * m, 0.0).sum() / (m.sum() + 1e-8)).item())


def harmo_policy_loss(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """verl's PolicyLossFn signature: (loss, metrics) of log_prob (N, T) against old_log_prob with
    advantages (N, T) over response_mask (see the module docstring)."""
    if config is None:
        raise ValueError("harmo policy loss: needs verl's actor config (clip ratios, global_batch_info)")
    agg = AGGREGATIONS.get(loss_agg_mode)
    if agg is None:
        raise ValueError(
            f"harmo policy loss: unknown loss_agg_mode {loss_agg_mode!r}; expected one of {list(AGGREGATIONS)}"
        )
    clip = _setting(config, "clip_ratio", 0.2)
    eps_low = float(_setting(config, "clip_ratio_low", clip))
    eps_high = float(_setting(config, "clip_ratio_high", clip))
    cap = float(_setting(config, "clip_ratio_c", 3.0))
    if not cap > 1.0:
        raise ValueError(f"harmo policy loss: clip_ratio_c must be > 1, got {cap}")
    if cap < 1.0 + eps_high:
        raise ValueError(
            f"harmo policy loss: clip_ratio_c ({cap}) must be >= 1 + clip_ratio_high ({1.0 + eps_high}); "
            "below that verl's dual clip differs from grpo_loss's delta on positive advantages"
        )
    info = dict(_setting(config, "global_batch_info", {}))  # verl's ppo_loss fills it per micro-batch
    dp = _number(info.get("dp_size") or 1)
    loss_agg, normalizer = agg(response_mask, info, dp)

    log_ratio = log_prob - old_log_prob
    beyond = log_ratio.abs() > LOG_RATIO_CLAMP
    # Only the clamped tokens are rebuilt from old + clamp(d): the others keep log_prob bit for bit.
    logp = torch.where(beyond, old_log_prob + log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP), log_prob)
    loss, stats = grpo_loss(
        logp,
        old_log_prob,
        advantages,
        response_mask,
        is_weights=rollout_is_weights,
        eps_low=eps_low,
        eps_high=eps_high,
        delta=cap,
        loss_agg=loss_agg,
        normalizer=normalizer,
    )
    with torch.no_grad():
        d = log_ratio.detach().float().clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
        capped = (torch.exp(d) > cap) & (advantages.detach() < 0)
        metrics = {
            "actor/pg_clipfrac": float((stats["clip_low_frac"] + stats["clip_high_frac"]).item()),
            "actor/ppo_kl": _masked_mean(-d, response_mask),
            "actor/pg_clipfrac_lower": _masked_mean(capped.float(), response_mask),
        }
    if not math.isfinite(metrics["actor/ppo_kl"]):
        raise ValueError("harmo policy loss: log_prob or old_log_prob contains NaN")
    return loss, metrics
