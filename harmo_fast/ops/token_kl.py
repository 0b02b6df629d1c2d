"""token_kl: per-token KL estimators between the policy and a frozen reference (docs/SPEC.md §2).

With d = ref_logp - logp: k1 = -d, k2 = d^2 / 2, k3 = exp(d) - d - 1 (default), abs = |d|; and
verl's straight-through variants "k1+", "k2+", "k3+", "abs+": the base's value, k2's gradient
(logp - ref, from the unclamped d: verl's `kl_penalty` with a "+" suffix). Optional clamps:
`clamp_log_ratio=c` clamps d to [-c, c] before the estimator (verl uses 20), `clamp_value=v`
clamps the result to [-v, v] (verl and OpenRLHF use 10). Gradients follow torch.clamp (zero where a
clamp is active). Without clamps nothing is clamped, as in TRL: k3 overflows to inf once d > ~88.
The output is float32 for every input dtype; the gradient has logp's dtype.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harmo_fast import _checks, _dispatch, _native

OP = "token_kl"


@dataclass(frozen=True)
class KlEstimator:
    """One estimator: its code in csrc/token_kl/token_kl_math.h, its value as a function of d, and
    whether it is a straight-through variant (that value, k2's gradient)."""

    code: int
    value: Callable[[torch.Tensor], torch.Tensor]
    straight_through: bool = False


_BASE_ESTIMATORS: dict[str, KlEstimator] = {
    "k1": KlEstimator(0, lambda d: -d),
    "k2": KlEstimator(1, lambda d: 0.5 * d * d),
    "k3": KlEstimator(2, lambda d: torch.exp(d) - d - 1.0),
    "abs": KlEstimator(3, torch.abs),
}
# verl's "+" suffix: the base's value with k2's gradient (its code: the base's plus this offset).
STRAIGHT_THROUGH_OFFSET = len(_BASE_ESTIMATORS)
KL_ESTIMATORS: dict[str, KlEstimator] = {
    **_BASE_ESTIMATORS,
    **{
        f"{name}+": KlEstimator(est.code + STRAIGHT_THROUGH_OFFSET, est.value, straight_through=True)
        for name, est in _BASE_ESTIMATORS.items()
    },
}
# The Triton kernels choose their estimator by name, so they hold no copy of the codes.
KL_ESTIMATOR_NAMES = {est.code: name for name, est in KL_ESTIMATORS.items()}
# verl's kl_penalty names for the same estimators (verl's low_var_kl also clamps: pass 20 and 10).
KL_ALIASES: dict[str, str] = {
    alias + plus: name + plus
    for alias, name in {"kl": "k1", "mse": "k2", "low_var_kl": "k3"}.items()
    for plus in ("", "+")
}


def resolve_kl_estimator(op: str, name: str, arg: str = "estimator") -> KlEstimator:
    """The estimator called `name` (k1/k2/k3 or a verl alias); raises naming the argument."""
    est = KL_ESTIMATORS.get(KL_ALIASES.get(name, name)) if isinstance(name, str) else None
    if est is None:
        known = ", ".join(repr(n) for n in (*KL_ESTIMATORS, *KL_ALIASES))
        raise ValueError(f"{op}: unknown {arg} {name!r}; expected one of {known}")
    return est


def kl_estimate(
    d: torch.Tensor, estimator: str, clamp_log_ratio: float | None = None, clamp_value: float | None = None
) -> torch.Tensor:
    """The estimator `estimator` of d = ref_logp - logp (any dtype), with the optional clamps: the
    readable math both token_kl's and grpo_loss's references use."""
    est = resolve_kl_estimator(OP, estimator)
    dc = d if clamp_log_ratio is None else d.clamp(-clamp_log_ratio, clamp_log_ratio)
    kl = est.value(dc)
    if clamp_value is not None:
        kl = kl.clamp(-clamp_value, clamp_value)
    if est.straight_through:  # verl's form: k2 (of the unclamped d) carries the gradient
        k2 = 0.5 * d * d
        kl = kl.detach() + (k2 - k2.detach())
    return kl


def token_kl_reference(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    estimator: str = "k3",
    clamp_log_ratio: float | None = None,
    clamp_value: float | None = None,
) -> torch.Tensor:
    """The definition of correct: plain torch, differentiable by autograd, fp32 math (float64 stays
    float64, for gradcheck)."""
    acc = torch.float64 if logp.dtype == torch.float64 else torch.float32
    return kl_estimate(ref_logp.to(acc) - logp.to(acc), estimator, clamp_log_ratio, clamp_value)


def clamp_bound(op: str, name: str, value: float | None) -> float:
    """A positive clamp bound, or +inf for "no clamp" (what the kernels take); raises naming `name`."""
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{op}: {name} must be a positive number or None, got {value!r}")
    return float(value)


def _validate(logp: object, ref_logp: object) -> torch.device:
    _checks.check_tensor(OP, "logp", logp, dtypes=_checks.FLOAT_DTYPES)
    _checks.check_tensor(OP, "ref_logp", ref_logp, dtypes=_checks.FLOAT_DTYPES)
    _checks.check_shape(OP, "ref_logp", ref_logp, logp.shape)
    return _checks.check_same_device(OP, logp=logp, ref_logp=ref_logp)


# --- per-backend launchers: forward(logp, ref, code, cd, cv) -> fp32 kl; backward(grad, logp, ref, code, cd, cv)


def _native_kernel(backend: str, name: str, t: torch.Tensor, **kwargs) -> None:
    """Calls the compiled function `name` of `backend` by keyword (CUDA: on t's current stream)."""
    if backend == "cuda":
        getattr(_native.cuda_module(), name)(**kwargs, stream=_native.stream_of(t))
    else:
        getattr(_native.cpu_module(), name)(**kwargs)


def _native_forward(
    backend: str, logp: torch.Tensor, ref: torch.Tensor, code: int, cd: float, cv: float
) -> torch.Tensor:
    logp, ref = logp.contiguous(), ref.contiguous()
    out = torch.empty(logp.shape, dtype=torch.float32, device=logp.device)
    _native_kernel(
        backend,
        "token_kl_fwd",
        logp,
        logp=logp.data_ptr(),
        logp_dtype=_native.dtype_code(logp),
        ref=ref.data_ptr(),
        ref_dtype=_native.dtype_code(ref),
        out=out.data_ptr(),
        n=logp.numel(),
        estimator=code,
        clamp_d=cd,
        clamp_v=cv,
    )
    return out


def _native_backward(
    backend: str, grad: torch.Tensor, logp: torch.Tensor, ref: torch.Tensor, code: int, cd: float, cv: float
) -> torch.Tensor:
    grad, logp, ref = grad.float().contiguous(), logp.contiguous(), ref.contiguous()
    out = torch.empty(logp.shape, dtype=logp.dtype, device=logp.device)
    _native_kernel(
        backend,
        "token_kl_bwd",
        logp,
        grad_out=grad.data_ptr(),
        logp=logp.data_ptr(),
        logp_dtype=_native.dtype_code(logp),
        ref=ref.data_ptr(),
        ref_dtype=_native.dtype_code(ref),
        grad=out.data_ptr(),
        n=logp.numel(),
        estimator=code,
        clamp_d=cd,
        clamp_v=cv,
    )
    return out


def _triton_forward(logp: torch.Tensor, ref: torch.Tensor, code: int, cd: float, cv: float) -> torch.Tensor:
    from harmo_fast.triton_kernels import token_kl as tk

    return tk.forward(logp.contiguous(), ref.contiguous(), KL_ESTIMATOR_NAMES[code], cd, cv)


def _triton_backward(
    grad: torch.Tensor, logp: torch.Tensor, ref: torch.Tensor, code: int, cd: float, cv: float
) -> torch.Tensor:
    from harmo_fast.triton_kernels import token_kl as tk

    return tk.backward(grad.float().contiguous(), logp.contiguous(), ref.contiguous(), KL_ESTIMATOR_NAMES[code], cd, cv)


_LAUNCHERS = {
    "cpu": (functools.partial(_native_forward, "cpu"), functools.partial(_native_backward, "cpu")),
    "cuda": (functools.partial(_native_forward, "cuda"), functools.partial(_native_backward, "cuda")),
    "triton": (_triton_forward, _triton_backward),
}


# --- the custom ops: one path, eager and under torch.compile. The forward keeps nothing but its
# inputs; the backward recomputes the local derivative from them.


@torch.library.custom_op("harmo_fast::token_kl", mutates_args=())
def _token_kl_op(
    logp: torch.Tensor, ref_logp: torch.Tensor, code: int, clamp_d: float, clamp_v: float, backend: str
) -> torch.Tensor:
    return _LAUNCHERS[backend][0](logp, ref_logp, code, clamp_d, clamp_v)


@_token_kl_op.register_fake
def _token_kl_fake(logp, ref_logp, code, clamp_d, clamp_v, backend):
    return torch.empty(logp.shape, dtype=torch.float32, device=logp.device)


@torch.library.custom_op("harmo_fast::token_kl_backward", mutates_args=())
def _token_kl_backward_op(
    grad: torch.Tensor,
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    code: int,
    clamp_d: float,
    clamp_v: float,
    backend: str,
) -> torch.Tensor:
    return _LAUNCHERS[backend][1](grad, logp, ref_logp, code, clamp_d, clamp_v)


@_token_kl_backward_op.register_fake
def _token_kl_backward_fake(grad, logp, ref_logp, code, clamp_d, clamp_v, backend):
    return torch.empty(logp.shape, dtype=logp.dtype, device=logp.device)


def _op_setup(ctx, inputs, output) -> None:
    logp, ref_logp, code, clamp_d, clamp_v, backend = inputs
    ctx.save_for_backward(logp, ref_logp)
    ctx.args = (code, clamp_d, clamp_v, backend)


def _op_backward(ctx, grad):
    logp, ref_logp = ctx.saved_tensors
    # A gradient for logp; none for ref_logp and the settings.
    return _token_kl_backward_op(grad, logp, ref_logp, *ctx.args), None, *(None for _ in ctx.args)


_token_kl_op.register_autograd(_op_backward, setup_context=_op_setup)


def token_kl(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    estimator: str = "k3",
    clamp_log_ratio: float | None = None,
    clamp_value: float | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Per-token KL estimate of logp against ref_logp (any matching shapes), float32, differentiable
    w.r.t. logp. estimator: "k1", "k2", "k3", "abs" or a straight-through "k1+" ... "abs+" (verl
    aliases "kl", "mse", "low_var_kl", with or without "+")."""
    device = _validate(logp, ref_logp)
    est = resolve_kl_estimator(OP, estimator)
    cd = clamp_bound(OP, "clamp_log_ratio", clamp_log_ratio)
    cv = clamp_bound(OP, "clamp_value", clamp_value)
    backend = _dispatch.resolve_backend(backend, device, OP)
    if backend == "torch":
        return token_kl_reference(logp, ref_logp, estimator, clamp_log_ratio, clamp_value)
    return _token_kl_op(logp, ref_logp, est.code, cd, cv, backend)
