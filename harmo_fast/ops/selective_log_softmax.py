"""selective_log_softmax: per-position log-probability (and entropy) of chosen tokens from logits.

    logp = z[y]/tau - logsumexp(z/tau)         H = logsumexp(z/tau) - sum softmax(z/tau) * z/tau

in fp32 for fp32, bf16 and fp16 logits. The fused backends (cpu, cuda, triton) keep only one fp32
per row (the logsumexp) for the backward, which recomputes the softmax and writes d(logits) in the
logits' dtype, optionally into the logits buffer itself (`inplace_backward=True`).
Same argument order as TRL's `selective_log_softmax(logits, index)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from harmo_fast import _checks, _dispatch, _native
from harmo_fast.ops._eager_route import direct_route
from harmo_fast.ops._logprob_tiles import gradient_like, kernel_input, row_layout

OP = "selective_log_softmax"


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------
def selective_log_softmax_reference(
    logits: torch.Tensor, index: torch.Tensor, temperature: float = 1.0, return_entropy: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The definition of correct: fp32 log_softmax + gather (and entropy), plain autograd.
    (float64 logits stay float64, so gradcheck can run on it.)"""
    x = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    log_z = torch.logsumexp(x, dim=-1)
    logp = x.gather(-1, index.long().unsqueeze(-1)).squeeze(-1) - log_z
    if not return_entropy:
        return logp
    # A -inf logit has p = 0 and contributes 0 to sum p*x (not 0 * -inf = NaN).
    x_finite = x.masked_fill(x == float("-inf"), 0.0)
    entropy = log_z - (torch.softmax(x, dim=-1) * x_finite).sum(-1)
    return logp, entropy


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _check_arguments(logits: torch.Tensor, index: torch.Tensor, temperature: float) -> torch.device:
    """Shape/dtype/device/temperature checks; returns the device."""
    _checks.check_tensor(OP, "logits", logits, dtypes=_checks.FLOAT_DTYPES)
    _checks.check_tensor(OP, "index", index, dtypes=_checks.INDEX_DTYPES)
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError(
            f"{OP}: logits must have a non-empty last (vocabulary) dimension, got shape {tuple(logits.shape)}"
        )
    _checks.check_shape(OP, "index", index, logits.shape[:-1])
    _checks.check_positive_float(OP, "temperature", temperature)
    return _checks.check_same_device(OP, logits=logits, index=index)


# --------------------------------------------------------------------------------------------
# Kernel launchers (linear_log_probs runs them on its tiles of logits)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Kernels:
    forward: Callable[..., None]
    backward: Callable[..., None]


def _cpu_forward(logits, layout, index, inv_tau, logp, lse, entropy) -> None:
    rows, vocab, inner, so, si = layout
    _native.cpu_module().selective_log_softmax_forward(
        logits=logits.data_ptr(),
        dtype=_native.dtype_code(logits),
        rows=rows,
        vocab=vocab,
        inner=inner,
        stride_outer=so,
        stride_inner=si,
        index=index.data_ptr(),
        inv_tau=inv_tau,
        logp=logp.data_ptr(),
        lse=lse.data_ptr(),
        entropy=entropy.data_ptr() if entropy is not None else 0,
    )


def _cpu_backward(logits, layout, index, inv_tau, grad_logp, grad_entropy, lse, entropy, grad, grad_layout) -> None:
    rows, vocab, inner, so, si = layout
    _, _, g_inner, g_so, g_si = grad_layout
    _native.cpu_module().selective_log_softmax_backward(
        logits=logits.data_ptr(),
        dtype=_native.dtype_code(logits),
        rows=rows,
        vocab=vocab,
        inner=inner,
        stride_outer=so,
        stride_inner=si,
        index=index.data_ptr(),
        inv_tau=inv_tau,
        grad_logp=_ptr(grad_logp),
        grad_entropy=_ptr(grad_entropy),
        lse=lse.data_ptr(),
        entropy=_ptr(entropy),
        grad=grad.data_ptr(),
        grad_inner=g_inner,
        grad_stride_outer=g_so,
        grad_stride_inner=g_si,
    )


def _cuda_forward(logits, layout, index, inv_tau, logp, lse, entropy) -> None:
    rows, vocab, inner, so, si = layout
    _native.cuda_module().selective_log_softmax_forward(
        logits=logits.data_ptr(),
        dtype=_native.dtype_code(logits),
        rows=rows,
        vocab=vocab,
        inner=inner,
        stride_outer=so,
        stride_inner=si,
        index=index.data_ptr(),
        inv_tau=inv_tau,
        logp=logp.data_ptr(),
        lse=lse.data_ptr(),
        entropy=_ptr(entropy),
        stream=_native.stream_of(logits),
    )


def _cuda_backward(logits, layout, index, inv_tau, grad_logp, grad_entropy, lse, entropy, grad, grad_layout) -> None:
    rows, vocab, inner, so, si = layout
    _, _, g_inner, g_so, g_si = grad_layout
    _native.cuda_module().selective_log_softmax_backward(
        logits=logits.data_ptr(),
        dtype=_native.dtype_code(logits),
        rows=rows,
        vocab=vocab,
        inner=inner,
        stride_outer=so,
        stride_inner=si,
        index=index.data_ptr(),
        inv_tau=inv_tau,
        grad_logp=_ptr(grad_logp),
        grad_entropy=_ptr(grad_entropy),
        lse=lse.data_ptr(),
        entropy=_ptr(entropy),
        grad=grad.data_ptr(),
        grad_inner=g_inner,
        grad_stride_outer=g_so,
        grad_stride_inner=g_si,
        stream=_native.stream_of(logits),
    )


def _triton_forward(*args) -> None:
    from harmo_fast.triton_kernels import selective_log_softmax as tk

    tk.forward(*args)


def _triton_backward(*args) -> None:
    from harmo_fast.triton_kernels import selective_log_softmax as tk

    tk.backward(*args)


def _ptr(t: torch.Tensor | None) -> int:
    return t.data_ptr() if t is not None else 0


KERNELS: dict[str, _Kernels] = {
    "cpu": _Kernels(_cpu_forward, _cpu_backward),
    "cuda": _Kernels(_cuda_forward, _cuda_backward),
    "triton": _Kernels(_triton_forward, _triton_backward),
}


def forward_rows(
    logits: torch.Tensor, index: torch.Tensor, temperature: float, return_entropy: bool, backend: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run a fused forward kernel: (logp, lse, entropy or None), each fp32 of index's shape.
    `index` must already be range-checked."""
    logits_k, layout = kernel_input(logits)
    index_k = index.reshape(-1).to(torch.int64).contiguous()
    rows = layout[0]
    logp = torch.empty(rows, dtype=torch.float32, device=logits.device)
    lse = torch.empty_like(logp)
    entropy = torch.empty_like(logp) if return_entropy else None
    if rows:
        KERNELS[backend].forward(logits_k, layout, index_k, 1.0 / temperature, logp, lse, entropy)
    shape = index.shape
    return logp.view(shape), lse.view(shape), entropy.view(shape) if entropy is not None else None


def backward_rows(
    grad_logp: torch.Tensor | None,
    grad_entropy: torch.Tensor | None,
    logits: torch.Tensor,
    index: torch.Tensor,
    lse: torch.Tensor,
    entropy: torch.Tensor | None,
    temperature: float,
    backend: str,
    out: torch.Tensor | None,
) -> torch.Tensor:
    """Run a fused backward kernel; the gradient goes into `out` (may be `logits` itself, which
    must then be kernel-readable as is) or a new tensor when out is None. Returns it.

    `logits` may be a window of columns of the full rows whose `lse`/`entropy` are given: an
    `index` outside [0, window width) then adds no target term (linear_log_probs' vocabulary
    tiles rely on this)."""
    logits_k, layout = kernel_input(logits)
    if out is None:
        out = gradient_like(logits)
    grad_layout = row_layout(out)
    if grad_layout is None or (out.data_ptr() == logits.data_ptr() and logits_k is not logits):
        raise ValueError(f"{OP}: the in-place gradient buffer must have a layout the kernels can write")
    if layout[0]:
        flat = lambda t: None if t is None else t.reshape(-1).to(torch.float32).contiguous()  # noqa: E731
        KERNELS[backend].backward(
            logits_k,
            layout,
            index.reshape(-1).to(torch.int64).contiguous(),
            1.0 / temperature,
            flat(grad_logp),
            flat(grad_entropy),
            flat(lse),
            flat(entropy),
            out,
            grad_layout,
        )
    return out


# --------------------------------------------------------------------------------------------
# Custom ops (torch.compile, export, functorch, dispatch modes) and their autograd; plain eager
# calls take _SelectiveLogSoftmaxFunction below instead (ops/_eager_route.py)
# --------------------------------------------------------------------------------------------
@torch.library.custom_op("harmo_fast::selective_log_softmax", mutates_args=())
def _forward_op(
    logits: torch.Tensor,
    index: torch.Tensor,
    temperature: float,
    return_entropy: bool,
    inplace_backward: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logp, entropy or an empty tensor, lse); inplace_backward only matters to the backward."""
    _checks.check_index_range(OP, "index", index, logits.shape[-1])
    logp, lse, entropy = forward_rows(logits, index, temperature, return_entropy, backend)
    return logp, entropy if entropy is not None else logp.new_empty(0), lse


@_forward_op.register_fake
def _(logits, index, temperature, return_entropy, inplace_backward, backend):
    out = logits.new_empty(index.shape, dtype=torch.float32)
    entropy = logits.new_empty(index.shape if return_entropy else (0,), dtype=torch.float32)
    return out, entropy, torch.empty_like(out)


@torch.library.custom_op("harmo_fast::selective_log_softmax_backward", mutates_args=())
def _backward_op(
    grad_logp: torch.Tensor | None,
    grad_entropy: torch.Tensor | None,
    logits: torch.Tensor,
    index: torch.Tensor,
    lse: torch.Tensor,
    entropy: torch.Tensor | None,
    temperature: float,
    backend: str,
) -> torch.Tensor:
    """d loss / d logits as a new tensor in the logits' dtype."""
    return backward_rows(grad_logp, grad_entropy, logits, index, lse, entropy, temperature, backend, None)


@_backward_op.register_fake
def _(grad_logp, grad_entropy, logits, index, lse, entropy, temperature, backend):
    return gradient_like(logits)


@torch.library.custom_op("harmo_fast::selective_log_softmax_backward_", mutates_args=("logits",))
def _backward_inplace_op(
    grad_logp: torch.Tensor | None,
    grad_entropy: torch.Tensor | None,
    logits: torch.Tensor,
    index: torch.Tensor,
    lse: torch.Tensor,
    entropy: torch.Tensor | None,
    temperature: float,
    backend: str,
) -> None:
    """d loss / d logits written over the logits themselves."""
    _backward_over_logits(grad_logp, grad_entropy, logits, index, lse, entropy, temperature, backend)


def _backward_over_logits(grad_logp, grad_entropy, logits, index, lse, entropy, temperature, backend) -> None:
    """The in-place backward of both routes."""
    if row_layout(logits) is None:
        # A layout the kernels cannot address directly: compute out of place, then copy back.
        logits.copy_(backward_rows(grad_logp, grad_entropy, logits, index, lse, entropy, temperature, backend, None))
    else:
        backward_rows(grad_logp, grad_entropy, logits, index, lse, entropy, temperature, backend, logits)


@_backward_inplace_op.register_fake
def _(grad_logp, grad_entropy, logits, index, lse, entropy, temperature, backend):
    return None


# register_autograd's backward returns one gradient per input of the op; only logits has one.
_NO_GRADIENTS = (None,) * len(torch.ops.harmo_fast.selective_log_softmax.default._schema.arguments)


def _setup_context(ctx, inputs, output) -> None:
    logits, index, temperature, return_entropy, inplace_backward, backend = inputs
    _, entropy, lse = output
    ctx.save_for_backward(logits, index, lse, entropy if return_entropy else None)
    ctx.temperature, ctx.return_entropy, ctx.inplace, ctx.backend = (
        temperature,
        return_entropy,
        inplace_backward,
        backend,
    )


def _backward(ctx, grad_logp, grad_entropy, grad_lse):
    logits, index, lse, entropy = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return _NO_GRADIENTS
    grad_entropy = grad_entropy if ctx.return_entropy else None
    args = (grad_logp, grad_entropy, logits, index, lse, entropy, ctx.temperature, ctx.backend)
    if ctx.inplace:
        torch.ops.harmo_fast.selective_log_softmax_backward_(*args)
        grad = logits
    else:
        grad = torch.ops.harmo_fast.selective_log_softmax_backward(*args)
    return (grad, *_NO_GRADIENTS[1:])


_forward_op.register_autograd(_backward, setup_context=_setup_context)


class _SelectiveLogSoftmaxFunction(torch.autograd.Function):
    """The eager route (ops/_eager_route.py): the same kernels as the custom ops, without their
    dispatch. Returns logp, or (logp, entropy) with return_entropy."""

    @staticmethod
    def forward(ctx, logits, index, temperature: float, return_entropy: bool, inplace_backward: bool, backend: str):
        _checks.check_index_range(OP, "index", index, logits.shape[-1])
        logp, lse, entropy = forward_rows(logits, index, temperature, return_entropy, backend)
        ctx.save_for_backward(logits, index, lse, entropy)
        ctx.temperature, ctx.inplace, ctx.backend = temperature, inplace_backward, backend
        ctx.set_materialize_grads(False)
        return (logp, entropy) if return_entropy else logp

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy=None):
        logits, index, lse, entropy = ctx.saved_tensors
        if grad_logp is None and grad_entropy is None:
            return (None,) * 6
        args = (grad_logp, grad_entropy, logits, index, lse, entropy, ctx.temperature, ctx.backend)
        if ctx.inplace:
            _backward_over_logits(*args)
            # The kernel wrote through a raw pointer: bump the version so that autograd refuses
            # any other use of the overwritten logits, as the custom op's declared mutation does.
            torch.autograd.graph.increment_version(logits)
            grad = logits
        else:
            grad = backward_rows(*args, None)
        return grad, None, None, None, None, None


# --------------------------------------------------------------------------------------------
# Public function
# --------------------------------------------------------------------------------------------
def selective_log_softmax(
    logits: torch.Tensor,
    index: torch.Tensor,
    temperature: float = 1.0,
    return_entropy: bool = False,
    inplace_backward: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of token `index` under softmax(logits / temperature), fp32, shape of index.

    logits (..., V) fp32/bf16/fp16 of any strides: read in place when the last dimension is
    contiguous and the leading ones collapse to at most two strided dimensions (e.g. TRL's
    logits[:, :-1]), copied otherwise. index (...) int64 or int32 in [0, V) (IndexError otherwise).
    With return_entropy, also returns the softmax entropy per position (differentiable too).

    inplace_backward=True (fused backends): the backward writes d(logits) into the logits buffer
    and hands that buffer on as the gradient, so the backward allocates nothing of size (..., V).
    The logits' values are destroyed by the backward: use it only when nothing else needs them
    (e.g. logits straight out of the LM head). Autograd's version counter raises if another node
    saved them for its own backward; a leaf that requires grad is refused (its .grad would alias
    its data). The torch backend ignores the flag. Double backward is not supported by the fused
    backends.
    """
    device = _check_arguments(logits, index, temperature)
    resolved = _dispatch.resolve_backend(backend, device, OP)
    if resolved == "torch":
        return selective_log_softmax_reference(logits, index, temperature, return_entropy)
    if inplace_backward and logits.requires_grad and logits.is_leaf:
        raise ValueError(
            f"{OP}: inplace_backward=True would overwrite logits, a leaf tensor that requires grad "
            "(its .grad would alias its data); pass a non-leaf logits or inplace_backward=False"
        )
    if not direct_route():
        logp, entropy, _ = torch.ops.harmo_fast.selective_log_softmax(
            logits, index, float(temperature), bool(return_entropy), bool(inplace_backward), resolved
        )
        return (logp, entropy) if return_entropy else logp
    if logits.requires_grad and torch.is_grad_enabled():
        return _SelectiveLogSoftmaxFunction.apply(
            logits, index, float(temperature), bool(return_entropy), bool(inplace_backward), resolved
        )
    _checks.check_index_range(OP, "index", index, logits.shape[-1])
    logp, _, entropy = forward_rows(logits, index, float(temperature), bool(return_entropy), resolved)
    return (logp, entropy) if return_entropy else logp
