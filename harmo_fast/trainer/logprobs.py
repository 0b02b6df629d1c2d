"""Per-token log-probs (and entropy) of the completion tokens under a model.

The fused path runs the model's base (no LM head), keeps the hidden states of the completion
tokens only, and calls `harmo.linear_log_probs` so the (tokens, vocab) logits never exist. Models
whose head is not a plain linear layer (logit soft-capping, logit scaling) take the logits path:
the full forward, then `harmo.selective_log_softmax`.

Both paths take either the inputs of one forward over prompt + completion per row, or
`SharedPromptInputs`: each distinct prompt is forwarded once, its KV cache is indexed out to its
rows, and the completion columns are forwarded on that cache (the gradient flows through the
cache into the prompt forward)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributed.tensor import DTensor

import harmo_fast as harmo
from harmo_fast.trainer.distributed import is_sharded

# Config attributes that mean "the logits are not just hidden @ W.T + b".
_NONLINEAR_HEAD_ATTRS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


@dataclass
class SharedPromptInputs:
    """A micro-batch's forward inputs with each distinct prompt once.

    prompt_ids / prompt_mask: (P, Lp) left-padded distinct prompts; index: (N,) the prompt of each row;
    completion_ids / completion_mask: (N, T) the rows' completion columns.
    """

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    index: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor


Inputs = dict[str, torch.Tensor] | SharedPromptInputs


def shares_prompts(model: Any, prompt: dict[str, torch.Tensor]) -> bool:
    """Whether `model`'s forwards of these prompt tensors can take each distinct prompt once, its KV
    cache reused by the rows that share it: text-only prompts (vision inputs do not split into a
    cache), whole weights (a sharded model gathers them per forward) and no gradient checkpointing
    under autograd (it drops the cache)."""
    return (
        set(prompt) == {"input_ids", "attention_mask"}
        and not (torch.is_grad_enabled() and getattr(model, "is_activation_checkpointing", False))
        and not is_sharded(model)
    )


@functools.cache
def cache_key() -> str:
    """transformers' name for the KV cache, as a model kwarg and an output field: `cache` since 5.24,
    `past_key_values` before (the verl and vLLM integrations pin older releases)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    return "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"


def prompt_positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions of left-padded prompt tokens counting the real tokens only (padding takes none), as
    `generate` counts them."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0)


def _shared_forward(
    run: Callable[..., tuple[torch.Tensor, Any]], inputs: SharedPromptInputs, **completion_kw: Any
) -> torch.Tensor:
    """(N, T, D) outputs of `run` at the positions that predict the T completion tokens: the prompt's
    last token for token 0, completion token t - 1 for token t > 0.

    run(**model kwargs) -> (outputs, cache). Positions count real tokens (left padding takes none),
    as generate counts them; the full forward counts the padding too, which with rotary embeddings
    changes nothing (only relative positions matter). The completion's last column predicts nothing
    and is not forwarded."""
    mask = inputs.prompt_mask
    positions = prompt_positions(mask)
    out, cache = run(input_ids=inputs.prompt_ids, attention_mask=mask, position_ids=positions, use_cache=True)
    first = out[:, -1:][inputs.index]
    width = inputs.completion_ids.shape[1]
    if width == 1:
        return first
    cache.batch_select_indices(inputs.index)
    ids = inputs.completion_ids[:, :-1]
    rest_mask = torch.cat([mask[inputs.index], inputs.completion_mask[:, :-1].to(mask.dtype)], dim=1)
    rest_positions = positions[inputs.index, -1:] + 1 + torch.arange(width - 1, device=ids.device)
    rest, _ = run(
        input_ids=ids,
        attention_mask=rest_mask,
        position_ids=rest_positions,
        use_cache=True,
        **{cache_key(): cache},
        **completion_kw,
    )
    return torch.cat([first, rest], dim=1)


def _hidden(model: Any, inputs: Inputs, width: int) -> torch.Tensor:
    """(N, width, H) final hidden states that predict the `width` completion columns."""
    if isinstance(inputs, SharedPromptInputs):

        def run(**kw: Any) -> tuple[torch.Tensor, Any]:
            out = model.base_model(**kw)
            return out.last_hidden_state, getattr(out, cache_key())

        return _shared_forward(run, inputs)
    # The token at column t is predicted by the hidden state one column earlier.
    return model.base_model(**inputs, use_cache=False).last_hidden_state[:, -width - 1 : -1]


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


def completion_hidden(model: Any, inputs: Inputs, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden (N, width, H) that predict the last `width` columns, the LM head's weight in their dtype)."""
    hidden = _hidden(model, inputs, width)
    weight = model.get_output_embeddings().weight
    return hidden, weight if weight.dtype == hidden.dtype else weight.to(hidden.dtype)


def completion_logprobs(
    model: Any,
    inputs: Inputs,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    entropy: bool = False,
    path: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp (N, T) fp32, entropy (N, T) fp32 or None), zero where `completion_mask` is False.

    inputs: the forward-pass inputs over prompt + completion (the completion is the last T columns),
    or the shared-prompt inputs of the same rows.
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
    inputs: Inputs,
    ids: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    hidden = _hidden(model, inputs, ids.shape[1])
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
    inputs: Inputs,
    ids: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(inputs, SharedPromptInputs):

        def run(logits_to_keep: int = 1, **kw: Any) -> tuple[torch.Tensor, Any]:
            out = model(**kw, logits_to_keep=logits_to_keep)
            return out.logits, getattr(out, cache_key())

        logits = _shared_forward(run, inputs, logits_to_keep=0)
    else:
        logits = model(**inputs, use_cache=False, logits_to_keep=ids.shape[1] + 1).logits[:, :-1]
    out = harmo.selective_log_softmax(logits, ids, temperature=temperature, return_entropy=entropy)
    m = mask.to(torch.float32)
    if entropy:
        logp, ent = out
        return logp * m, ent.detach() * m
    return out * m, None
