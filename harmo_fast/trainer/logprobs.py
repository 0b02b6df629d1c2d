"""Per-token log-probs (and entropy) of the completion tokens under a model.

The fused path runs the model's base (no LM head), keeps the hidden states of the completion
tokens only, and calls `harmo.linear_log_probs` so the (tokens, vocab) logits never exist. Models
whose head is not a plain linear layer (logit soft-capping, logit scaling) take the logits path:
the full forward, then `harmo.selective_log_softmax`."""

from __future__ import annotations

from typing import Any

import torch
from torch.distributed.tensor import DTensor

import harmo_fast as harmo

# Config attributes that mean "the logits are not just hidden @ W.T + b".
_NONLINEAR_HEAD_ATTRS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def _sharded_head(head: Any) -> bool:
    """FSDP-sharded head weights are gathered only inside the model's own forward."""
    return isinstance(getattr(head, "weight", None), DTensor)


def supports_linear_path(model: Any) -> bool:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear) or getattr(model, "base_model", model) is model or _sharded_head(head):
        return False
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) or config
    return not any(
        getattr(c, a, None) not in (None, 1, 1.0) for c in (config, text_config) for a in _NONLINEAR_HEAD_ATTRS
    )


def supports_fused_loss(model: Any) -> bool:
    """The policy loss can run on the hidden states (harmo.linear_grpo_loss): a plain linear LM head
    without a bias."""
    return supports_linear_path(model) and model.get_output_embeddings().bias is None


def completion_hidden(model: Any, inputs: dict[str, torch.Tensor], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden (N, width, H) that predict the last `width` columns, the LM head's weight in their dtype)."""
    hidden = model.base_model(**inputs, use_cache=False).last_hidden_state[:, -width - 1 : -1]
    weight = model.get_output_embeddings().weight
    return hidden, weight if weight.dtype == hidden.dtype else weight.to(hidden.dtype)


def completion_logprobs(
    model: Any,
    inputs: dict[str, torch.Tensor],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    entropy: bool = False,
    path: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp (N, T) fp32, entropy (N, T) fp32 or None), zero where `completion_mask` is False.

    inputs: the forward-pass inputs over prompt + completion (the completion is the last T columns).
    """
    if path == "linear" and hasattr(model, "get_output_embeddings") and _sharded_head(model.get_output_embeddings()):
        raise ValueError("model.logprobs=linear needs unsharded weights; use auto or logits with trainer.parallel=fsdp")
    use_linear = path == "linear" or (path == "auto" and supports_linear_path(model))
    if use_linear:
        return _linear_path(model, inputs, completion_ids, completion_mask, temperature, entropy)
    return _logits_path(model, inputs, completion_ids, completion_mask, temperature, entropy)


def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.zeros(mask.shape, dtype=values.dtype, device=values.device).masked_scatter(mask, values)


def _linear_path(
    model: Any,
    inputs: dict[str, torch.Tensor],
    ids: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    T = ids.shape[1]
    hidden = model.base_model(**inputs, use_cache=False).last_hidden_state
    # The token at column t is predicted by the hidden state one column earlier.
    hidden = hidden[:, -T - 1 : -1]
    mask = mask.bool()
    h = hidden[mask]
    head = model.get_output_embeddings()
    weight = head.weight if head.weight.dtype == h.dtype else head.weight.to(h.dtype)
    bias = None if head.bias is None else head.bias.to(h.dtype)
    out = harmo.linear_log_probs(h, weight, ids[mask], bias=bias, temperature=temperature, return_entropy=entropy)
    if entropy:
        logp, ent = out
        return _scatter(logp, mask), _scatter(ent.detach(), mask)
    return _scatter(out, mask), None


def _logits_path(
    model: Any,
    inputs: dict[str, torch.Tensor],
    ids: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    T = ids.shape[1]
    logits = model(**inputs, use_cache=False, logits_to_keep=T + 1).logits[:, :-1]
    out = harmo.selective_log_softmax(logits, ids, temperature=temperature, return_entropy=entropy)
    m = mask.to(torch.float32)
    if entropy:
        logp, ent = out
        return logp * m, ent.detach() * m
    return out * m, None
