"""linear_log_probs: per-token log-probabilities (and entropy) straight from the last hidden states
and the LM head, without ever holding the (N, V) logits.

    logits = hidden @ weight.T + bias;  logp = logits[y]/tau - logsumexp(logits/tau)

The fused backends never hold more than one tile of logits (_logprob_tiles): up to TILE_ROWS
tokens by as many vocabulary entries as fit CHUNK_BYTES, each produced by one matmul into a reused
buffer. The forward reduces each tile with the selective_log_softmax kernels and merges the
vocabulary blocks of a row online (logsumexp, the target's logit, the entropy). With the logsumexp
saved, the backward recomputes the same tiles, turns each into d(logits) in place with the same
kernels and feeds it to two matmuls. Looping vocabulary blocks outside token chunks makes each
block's d(weight) one matmul over the tile's tokens, written straight into the gradient (BLAS
accumulates in fp32; several token chunks are summed in fp32 and cast at the end), while d(hidden)
accumulates across blocks in fp32. Peak extra memory is one tile plus the gradients themselves: it
does not grow with N x V.
"""

from __future__ import annotations

import torch

from harmo_fast import _checks, _dispatch
from harmo_fast.ops import _logprob_tiles as tiles
from harmo_fast.ops import selective_log_softmax as sls

OP = "linear_log_probs"


def linear_log_probs_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    index: torch.Tensor,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    return_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The definition of correct: full logits in the parameters' dtype, then the fp32 reference
    selective log-softmax (plain autograd; holds the whole (N, V) logits)."""
    logits = torch.nn.functional.linear(hidden, weight, bias)
    return sls.selective_log_softmax_reference(logits, index, temperature, return_entropy)


def _check_arguments(hidden, weight, index, bias, temperature, chunk_size) -> torch.device:
    _checks.check_tensor(OP, "hidden", hidden, dtypes=_checks.FLOAT_DTYPES)
    _checks.check_tensor(OP, "weight", weight, ndim=2, dtypes=_checks.FLOAT_DTYPES)
    _checks.check_tensor(OP, "index", index, dtypes=_checks.INDEX_DTYPES)
    if hidden.dim() < 1:
        raise ValueError(f"{OP}: hidden must have a last (hidden-size) dimension, got a 0-D tensor")
    if weight.shape[0] < 1:
        raise ValueError(f"{OP}: weight must have at least one row (vocabulary entry), got shape {tuple(weight.shape)}")
    if weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"{OP}: weight must have shape (V, {hidden.shape[-1]}) to match hidden's last dimension, "
            f"got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype:
        raise TypeError(f"{OP}: weight dtype {weight.dtype} must match hidden dtype {hidden.dtype}")
    if bias is not None:
        _checks.check_tensor(OP, "bias", bias, ndim=1, dtypes=(hidden.dtype,))
        _checks.check_shape(OP, "bias", bias, (weight.shape[0],))
    _checks.check_shape(OP, "index", index, hidden.shape[:-1])
    _checks.check_positive_float(OP, "temperature", temperature)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"{OP}: chunk_size must be None or an int >= 1, got {chunk_size!r}")
    return _checks.check_same_device(OP, hidden=hidden, weight=weight, index=index, bias=bias)


# --------------------------------------------------------------------------------------------
# Custom ops and autograd
# --------------------------------------------------------------------------------------------
def _forward_rows(
    h: torch.Tensor,
    y: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    cols: int,
    buf: torch.Tensor,
    temperature: float,
    return_entropy: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(logp, lse, entropy or None) of the rows h, one vocabulary block of `cols` columns at a time,
    merged online."""
    vocab = weight.shape[0]
    if cols >= vocab:
        z = tiles.tile_logits(h, weight, bias, buf[: h.shape[0], :vocab])
        return sls.forward_rows(z, y, temperature, return_entropy, backend)
    merged = tiles.OnlineLogSoftmax(return_entropy)
    for vs, ve in tiles.spans(vocab, cols):
        z = tiles.tile_logits(h, weight[vs:ve], tiles.rows_of(bias, vs, ve), buf[: h.shape[0], : ve - vs])
        inside = (y >= vs) & (y < ve)
        merged.add(*sls.forward_rows(z, torch.where(inside, y - vs, 0), temperature, return_entropy, backend), inside)
    return merged.result()


@torch.library.custom_op("harmo_fast::linear_log_probs", mutates_args=())
def _forward_op(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    index: torch.Tensor,
    temperature: float,
    return_entropy: bool,
    tile_rows: int,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logp, entropy or an empty tensor, lse), each fp32 of index's shape."""
    vocab, size = weight.shape
    _checks.check_index_range(OP, "index", index, vocab)
    h2 = hidden.reshape(-1, size)
    idx = index.reshape(-1).to(torch.int64)
    n = h2.shape[0]
    logp = torch.empty(n, dtype=torch.float32, device=hidden.device)
    lse = torch.empty_like(logp)
    entropy = torch.empty_like(logp) if return_entropy else logp.new_empty(0)
    rows, cols = tiles.tile_shape(n, vocab, weight.element_size(), tile_rows)
    buf = hidden.new_empty(rows, cols)
    for s, e in tiles.spans(n, rows):
        lp, ls, ent = _forward_rows(h2[s:e], idx[s:e], weight, bias, cols, buf, temperature, return_entropy, backend)
        logp[s:e], lse[s:e] = lp, ls
        if ent is not None:
            entropy[s:e] = ent
    shape = index.shape
    return logp.view(shape), entropy.view(shape) if return_entropy else entropy, lse.view(shape)


@_forward_op.register_fake
def _(hidden, weight, bias, index, temperature, return_entropy, tile_rows, backend):
    out = hidden.new_empty(index.shape, dtype=torch.float32)
    entropy = hidden.new_empty(index.shape if return_entropy else (0,), dtype=torch.float32)
    return out, entropy, torch.empty_like(out)


@torch.library.custom_op("harmo_fast::linear_log_probs_backward", mutates_args=())
def _backward_op(
    grad_logp: torch.Tensor | None,
    grad_entropy: torch.Tensor | None,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    index: torch.Tensor,
    lse: torch.Tensor,
    entropy: torch.Tensor | None,
    temperature: float,
    tile_rows: int,
    backend: str,
    need_hidden: bool,
    need_weight: bool,
    need_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(d hidden, d weight, d bias); a gradient that is not needed comes back as an empty tensor.

    Tiled over (vocabulary block, token chunk): with the forward's logsumexp saved, a tile's
    d(logits) needs only that tile's logits, so each vocabulary block's weight gradient is one
    matmul over (up to tile_rows) tokens written straight into its rows, and hidden's gradient is
    accumulated across the blocks in fp32."""
    vocab, size = weight.shape
    h2 = hidden.reshape(-1, size)
    idx = index.reshape(-1).to(torch.int64)
    n = h2.shape[0]
    f32, dev = torch.float32, hidden.device
    half = weight.dtype != f32
    flat = lambda t: None if t is None else t.reshape(-1)  # noqa: E731
    g_logp, g_ent, lse1, ent1 = flat(grad_logp), flat(grad_entropy), flat(lse), flat(entropy)
    grad_hidden = torch.zeros(n, size, dtype=f32, device=dev) if need_hidden else hidden.new_empty(0)
    grad_weight = weight.new_empty(weight.shape) if need_weight else hidden.new_empty(0)
    grad_bias = torch.zeros(vocab, dtype=f32, device=dev) if need_bias else hidden.new_empty(0)
    rows, cols = tiles.tile_shape(n, vocab, weight.element_size(), tile_rows)
    buf = hidden.new_empty(rows, cols)
    # Half-precision products (BLAS accumulates each in fp32 internally) are summed in fp32.
    partial_h = hidden.new_empty(rows, size) if need_hidden and half else None
    acc_w = torch.empty(cols, size, dtype=f32, device=dev) if need_weight and half and rows < n else None
    partial_w = weight.new_empty(cols, size) if acc_w is not None else None
    for vs, ve in tiles.spans(vocab, cols):
        w_b = weight[vs:ve]
        b_b = tiles.rows_of(bias, vs, ve)
        idx_b = idx - vs  # outside [0, ve - vs): no target term in this block
        for s, e in tiles.spans(n, rows):
            h = h2[s:e]
            z = tiles.tile_logits(h, w_b, b_b, buf[: e - s, : ve - vs])
            sls.backward_rows(
                tiles.rows_of(g_logp, s, e),
                tiles.rows_of(g_ent, s, e),
                z,
                idx_b[s:e],
                lse1[s:e],
                tiles.rows_of(ent1, s, e),
                temperature,
                backend,
                out=z,
            )
            if need_hidden:
                if half:
                    grad_hidden[s:e].add_(torch.mm(z, w_b, out=partial_h[: e - s]))
                else:
                    grad_hidden[s:e].addmm_(z, w_b)
            if need_weight:
                if acc_w is None:  # fp32, or a single token chunk: straight into the gradient
                    if s == 0:
                        torch.mm(z.t(), h, out=grad_weight[vs:ve])
                    else:
                        grad_weight[vs:ve].addmm_(z.t(), h)
                else:
                    product = torch.mm(z.t(), h, out=partial_w[: ve - vs])
                    acc_w[: ve - vs].copy_(product) if s == 0 else acc_w[: ve - vs].add_(product)
            if need_bias:
                grad_bias[vs:ve].add_(z.sum(0, dtype=f32))
        if acc_w is not None:
            grad_weight[vs:ve].copy_(acc_w[: ve - vs])
    del buf, partial_h, acc_w, partial_w  # freed before the casts below allocate
    if need_hidden:
        grad_hidden = grad_hidden.to(hidden.dtype).view(hidden.shape)
    if need_bias:
        grad_bias = grad_bias.to(bias.dtype)
    return grad_hidden, grad_weight, grad_bias


@_backward_op.register_fake
def _(
    grad_logp,
    grad_entropy,
    hidden,
    weight,
    bias,
    index,
    lse,
    entropy,
    temperature,
    tile_rows,
    backend,
    need_hidden,
    need_weight,
    need_bias,
):
    return (
        hidden.new_empty(hidden.shape) if need_hidden else hidden.new_empty(0),
        weight.new_empty(weight.shape) if need_weight else hidden.new_empty(0),
        bias.new_empty(bias.shape) if need_bias else hidden.new_empty(0),
    )


# register_autograd's backward returns one gradient per input of the op: hidden, weight and bias
# come first, the rest have none.
_NO_GRADIENTS = (None,) * len(torch.ops.harmo_fast.linear_log_probs.default._schema.arguments)


def _setup_context(ctx, inputs, output) -> None:
    hidden, weight, bias, index, temperature, return_entropy, tile_rows, backend = inputs
    _, entropy, lse = output
    ctx.save_for_backward(hidden, weight, bias, index, lse, entropy if return_entropy else None)
    ctx.temperature, ctx.return_entropy, ctx.tile_rows, ctx.backend = temperature, return_entropy, tile_rows, backend


def _backward(ctx, grad_logp, grad_entropy, grad_lse):
    hidden, weight, bias, index, lse, entropy = ctx.saved_tensors
    need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
    need_bias = need_bias and bias is not None
    if not (need_hidden or need_weight or need_bias):
        return _NO_GRADIENTS
    gh, gw, gb = torch.ops.harmo_fast.linear_log_probs_backward(
        grad_logp,
        grad_entropy if ctx.return_entropy else None,
        hidden,
        weight,
        bias,
        index,
        lse,
        entropy,
        ctx.temperature,
        ctx.tile_rows,
        ctx.backend,
        need_hidden,
        need_weight,
        need_bias,
    )
    grads = (gh if need_hidden else None, gw if need_weight else None, gb if need_bias else None)
    return grads + _NO_GRADIENTS[len(grads) :]


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def linear_log_probs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    index: torch.Tensor,
    bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    return_entropy: bool = False,
    chunk_size: int | None = None,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """fp32 log-probabilities of `index` under softmax((hidden @ weight.T + bias) / temperature).

    hidden (..., H), weight (V, H) and bias (V,) share one float dtype (fp32/bf16/fp16); index (...)
    int64 or int32 in [0, V). Differentiable w.r.t. hidden, weight and bias, through the log-probs
    and (with return_entropy) the entropy. chunk_size = tokens per tile of logits (None:
    TILE_ROWS); a tile spans as many vocabulary entries as fit 16 MiB. The torch backend is the
    unchunked reference.
    """
    device = _check_arguments(hidden, weight, index, bias, temperature, chunk_size)
    resolved = _dispatch.resolve_backend(backend, device, OP)
    if resolved == "torch":
        return linear_log_probs_reference(hidden, weight, index, bias, temperature, return_entropy)
    tile_rows = chunk_size if chunk_size is not None else tiles.TILE_ROWS
    logp, entropy, _ = torch.ops.harmo_fast.linear_log_probs(
        hidden, weight, bias, index, float(temperature), bool(return_entropy), int(tile_rows), resolved
    )
    return (logp, entropy) if return_entropy else logp
