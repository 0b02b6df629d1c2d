"""The GRPO loss of one micro-batch, scaled so that gradient accumulation over a minibatch's
micro-batches equals one pass over the whole minibatch."""

from __future__ import annotations

import torch

import harmo_fast as harmo
from harmo_fast.trainer.config import AlgorithmConfig


def normalizer(agg: str, tokens_mb: float, max_new_tokens: int, rows: int) -> float:
    """The micro-batch loss's divisor. token_mean divides by the minibatch's token count (exact
    under gradient accumulation); the per-response means by every row of the micro-batch (the
    caller weights them by the micro-batch's share), seq_mean_token_sum_norm (Dr. GRPO) times the
    constant completion budget."""
    if agg == "token_mean":
        return tokens_mb
    return rows * max_new_tokens if agg == "seq_mean_token_sum_norm" else rows


def _grpo_options(a: AlgorithmConfig, tokens_mb: float, max_new_tokens: int, rows: int) -> dict:
    return dict(
        eps_low=a.eps_low,
        eps_high=a.eps_high,
        delta=a.delta,
        beta=a.beta,
        kl_estimator=a.kl_estimator,
        ratio_level=a.ratio_level,
        loss_agg=a.loss_agg,
        normalizer=normalizer(a.loss_agg, tokens_mb, max_new_tokens, max(rows, 1)),
    )


def micro_batch_loss(
    a: AlgorithmConfig,
    logp: torch.Tensor,
    old: torch.Tensor | None,
    ref: torch.Tensor | None,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    tokens_mb: float,
    share: float,
    max_new_tokens: int,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`harmo.grpo_loss` of the micro-batch; `share` is its fraction of the minibatch's responses,
    the weight of a per-response mean (token_mean is already normalized by the minibatch's tokens)."""
    options = _grpo_options(a, tokens_mb, max_new_tokens, logp.shape[0])
    loss, metrics = harmo.grpo_loss(logp, old, adv, mask, ref_logp=ref, **options)
    return (loss if a.loss_agg == "token_mean" else loss * share), metrics


def micro_batch_loss_from_hidden(
    a: AlgorithmConfig,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    ids: torch.Tensor,
    old: torch.Tensor | None,
    ref: torch.Tensor | None,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    tokens_mb: float,
    share: float,
    max_new_tokens: int,
    temperature: float,
    entropy: bool,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """micro_batch_loss with the log-probs folded in: `harmo.linear_grpo_loss` of the hidden states
    and the LM head (the (tokens, vocab) logits never exist); metrics gain entropy_mean with `entropy`."""
    options = _grpo_options(a, tokens_mb, max_new_tokens, hidden.shape[0])
    loss, metrics = harmo.linear_grpo_loss(
        hidden, weight, ids, old, adv, mask, ref, temperature=temperature, entropy_metric=entropy, **options
    )
    return (loss if a.loss_agg == "token_mean" else loss * share), metrics
