"""grpo_loss: the clipped GRPO policy loss with optional per-token KL, its aggregation and metrics
(docs/SPEC.md §2), with a fused forward+backward.

Per token (ratio r = exp(logp - old), or at ratio_level="sequence" the GSPO ratio
exp(sum_t m (logp - old) / max(sum_t m, 1)) shared by the row):

    L = -min(min(r, delta) * A, clamp(r, 1 - eps_low, 1 + eps_high) * A) * is_weights
        + beta * kl(logp, ref_logp) * (r if kl_bias_corrected)

kl_bias_corrected follows TRL's `use_bias_correction_kl` (and verl's meaning): the KL term is
multiplied by the same ratio r as the policy term (token or sequence level), unclamped and NOT
detached, so its gradient is beta * r * (logp - ref) for k3. Masked-out tokens (mask == 0) are
inert: they contribute nothing to the loss, the metrics or the gradient, whatever values
logp/old/ref hold there. Non-zero mask values weight their token (bool masks are 0/1).
The KL term is token_kl's estimator, with its optional clamps (kl_clamp_log_ratio clamps
d = ref - logp, kl_clamp_value the value; verl's low_var_kl uses 20 and 10; None = off).
The policy log-ratio is not clamped (TRL semantics): in fp32, r overflows to inf once
logp - old > ~88 (or old = -inf). A token that passes no gradient to r (clipped, capped by
delta, or with A = 0) then still gets an exact zero gradient, a zero advantage a zero policy
loss (0 * inf is taken as 0, in every backend), and an A < 0 token without delta an infinite
loss and gradient, as the formula says.

The compiled backends make one pass over the token tensors that produces the row partial sums
AND the per-token gradient coefficient; the backward only scales it by grad_output and the row's
aggregation weight, in place. Extra memory: the gradient tensor itself plus O(N) floats.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from harmo_fast import _checks, _dispatch, _native
from harmo_fast.ops._eager_route import direct_route
from harmo_fast.ops._grpo_layout import METRIC_SLOTS, ROW_SLOTS, BadInput, RowSlot
from harmo_fast.ops._loss_agg import AggPlan, resolve_loss_agg
from harmo_fast.ops.token_kl import clamp_bound, kl_estimate, resolve_kl_estimator

OP = "grpo_loss"
METRICS = ("kl_mean", "clip_low_frac", "clip_high_frac", "ratio_mean")
RATIO_LEVELS = ("token", "sequence")
MASK_DTYPES = (torch.bool, torch.uint8, torch.int32, torch.int64, *_checks.FLOAT_DTYPES)


class _ExpZeroSafe(torch.autograd.Function):
    """exp(x) whose backward takes 0 * exp(x) as 0 when exp(x) overflows: a token that passes no
    gradient to its ratio (clipped, capped, A = 0) keeps a zero gradient, not NaN, as the kernels'
    mul_or_zero does."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        r = torch.exp(x)
        ctx.save_for_backward(r)
        return r

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (r,) = ctx.saved_tensors
        return torch.where(grad == 0, torch.zeros_like(grad), grad * r)


def grpo_loss_reference(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    is_weights: torch.Tensor | None = None,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    delta: float | None = None,
    beta: float = 0.0,
    kl_estimator: str = "k3",
    kl_clamp_log_ratio: float | None = None,
    kl_clamp_value: float | None = None,
    kl_bias_corrected: bool = False,
    ratio_level: str = "token",
    loss_agg: str = "token_mean",
    normalizer: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The definition of correct: plain torch ops in fp32 (float64 stays float64, for gradcheck),
    differentiated by autograd."""
    agg = resolve_loss_agg(OP, loss_agg, normalizer)
    resolve_kl_estimator(OP, kl_estimator, "kl_estimator")
    eps_high = eps_low if eps_high is None else eps_high
    n = logp.shape[0]
    acc = torch.float64 if logp.dtype == torch.float64 else torch.float32
    lp = logp.to(acc)
    old = lp.detach() if old_logp is None else old_logp.to(acc)
    m = mask.to(acc)
    on = m != 0
    zero = lp.new_zeros(())
    adv = advantages.to(acc).reshape(n, -1)

    diff = torch.where(on, lp - old, zero)
    if ratio_level == "sequence":
        log_ratio = (m * diff).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)
    else:
        log_ratio = diff
    r = _ExpZeroSafe.apply(log_ratio)
    r_capped = r if delta is None else r.clamp(max=delta)
    r_clipped = r.clamp(1.0 - eps_low, 1.0 + eps_high)
    per_token = -torch.min(torch.where(adv == 0, zero, r_capped * adv), r_clipped * adv)
    if is_weights is not None:
        per_token = per_token * is_weights.to(acc).reshape(n, -1)
    kl = None
    if ref_logp is not None:
        d = torch.where(on, ref_logp.to(acc) - lp, zero)
        kl = kl_estimate(d, kl_estimator, kl_clamp_log_ratio, kl_clamp_value)
        if kl_bias_corrected:
            kl = kl * r
        if beta > 0:
            per_token = per_token + beta * kl
    masked = torch.where(on, m * per_token, zero)
    loss = agg.reference(masked, m, normalizer)

    with torch.no_grad():
        total = m.sum().clamp(min=1.0)

        def masked_mean(x: torch.Tensor) -> torch.Tensor:
            return torch.where(on, m * x, zero).sum() / total

        metrics = {
            "kl_mean": masked_mean(kl) if kl is not None else zero.detach().clone(),
            "clip_low_frac": masked_mean(((r < 1.0 - eps_low) & (adv < 0)).to(acc)),
            "clip_high_frac": masked_mean(((r > 1.0 + eps_high) & (adv > 0)).to(acc)),
            "ratio_mean": masked_mean(r),
        }
    return loss, metrics


# --- validation


def _check_scalar(name: str, value: object, ok: bool, want: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok:
        raise ValueError(f"{OP}: {name} must be {want}, got {value!r}")


def _validate(
    logp, old_logp, advantages, mask, ref_logp, is_weights, eps_low, eps_high, delta, beta, normalizer, ratio_level
) -> torch.device:
    _checks.check_tensor(OP, "logp", logp, ndim=2, dtypes=_checks.FLOAT_DTYPES)
    shape = logp.shape
    n = shape[0]
    for name, t in (("old_logp", old_logp), ("ref_logp", ref_logp)):
        if t is not None:
            _checks.check_tensor(OP, name, t, dtypes=_checks.FLOAT_DTYPES)
            _checks.check_shape(OP, name, t, shape)
    _checks.check_tensor(OP, "mask", mask, dtypes=MASK_DTYPES)
    _checks.check_shape(OP, "mask", mask, shape)
    _checks.check_tensor(OP, "advantages", advantages, dtypes=_checks.FLOAT_DTYPES)
    if tuple(advantages.shape) not in ((n,), tuple(shape)):
        raise ValueError(f"{OP}: advantages must have shape ({n},) or {tuple(shape)}, got {tuple(advantages.shape)}")
    if is_weights is not None:
        _checks.check_tensor(OP, "is_weights", is_weights, dtypes=_checks.FLOAT_DTYPES)
        if tuple(is_weights.shape) not in ((n,), (n, 1), tuple(shape)):
            raise ValueError(
                f"{OP}: is_weights must have shape ({n},), ({n}, 1) or {tuple(shape)}, got {tuple(is_weights.shape)}"
            )
    _check_scalar("eps_low", eps_low, eps_low > 0 and math.isfinite(eps_low), "a positive number")
    if eps_high is not None:
        _check_scalar("eps_high", eps_high, eps_high > 0 and math.isfinite(eps_high), "a positive number or None")
    if delta is not None:
        _check_scalar("delta", delta, delta > 1, "a number > 1 or None")
    _check_scalar("beta", beta, beta >= 0 and math.isfinite(beta), "a finite number >= 0")
    if normalizer is not None:
        _check_scalar(
            "normalizer", normalizer, normalizer > 0 and math.isfinite(normalizer), "a positive number or None"
        )
    if beta > 0 and ref_logp is None:
        raise ValueError(f"{OP}: beta > 0 needs ref_logp (the reference model's per-token log-probs)")
    if ratio_level not in RATIO_LEVELS:
        raise ValueError(f"{OP}: unknown ratio_level {ratio_level!r}; expected one of {RATIO_LEVELS}")
    return _checks.check_same_device(
        OP, logp=logp, old_logp=old_logp, advantages=advantages, mask=mask, ref_logp=ref_logp, is_weights=is_weights
    )


def _check_finite_inputs(advantages: torch.Tensor, is_weights: torch.Tensor | None) -> None:
    _checks.check_finite(OP, "advantages", advantages)
    if is_weights is not None:
        _checks.check_finite(OP, "is_weights", is_weights)


def _raise_bad_flags(flags: int) -> None:
    """The CPU kernel counts non-finite advantages and importance weights as it reads them."""
    if flags & BadInput.ADVANTAGES:
        raise ValueError(f"{OP}: advantages contains NaN or inf")
    if flags & BadInput.IS_WEIGHTS:
        raise ValueError(f"{OP}: is_weights contains NaN or inf")


class GrpoSettings(NamedTuple):
    """The scalar settings of one fused call, named as the compiled core's keyword arguments."""

    clip_lo: float  # 1 - eps_low
    clip_hi: float  # 1 + eps_high
    delta: float  # dual-clip cap, +inf when off
    beta: float
    kl_estimator: int  # KlEstimator code
    kl_clamp_d: float  # clamp of the KL's d = ref - logp, +inf when off
    kl_clamp_v: float  # clamp of the KL value, +inf when off
    bias_corrected: bool
    sequence: bool  # GSPO sequence-level ratio
    agg_base: float  # the AggPlan, flattened
    agg_per_row_count: bool
    agg_total_count: bool
    agg_nonempty_rows: bool

    @property
    def plan(self) -> AggPlan:
        return AggPlan(self.agg_base, self.agg_per_row_count, self.agg_total_count, self.agg_nonempty_rows)

    def as_floats(self) -> list[float]:
        """The settings as the custom op carries them: one float list (a schema with few
        arguments keeps the op's eager dispatch cheap)."""
        return [float(v) for v in self]

    @classmethod
    def from_floats(cls, values: Sequence[float]) -> GrpoSettings:
        """Inverse of as_floats: each field back to its declared type."""
        return cls(*(kind(v) for kind, v in zip(_SETTING_TYPES, values, strict=True)))


_SETTING_TYPES = tuple(typing.get_type_hints(GrpoSettings).values())

OPTION_NAMES = (
    "eps_low",
    "eps_high",
    "delta",
    "beta",
    "kl_estimator",
    "kl_clamp_log_ratio",
    "kl_clamp_value",
    "kl_bias_corrected",
    "ratio_level",
    "loss_agg",
    "normalizer",
)
"""grpo_loss's keyword options, which every op built on it takes: what grpo_settings and
grpo_loss_reference read."""


def grpo_options(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The GRPO options among an op's arguments (its `locals()` on entry), by name."""
    return {name: arguments[name] for name in OPTION_NAMES}


@functools.lru_cache(maxsize=64)  # a training run calls with a few shapes and one set of options
def grpo_settings(
    op: str,
    n: int,
    t: int,
    *,
    eps_low: float,
    eps_high: float | None,
    delta: float | None,
    beta: float,
    kl_estimator: str,
    kl_clamp_log_ratio: float | None,
    kl_clamp_value: float | None,
    kl_bias_corrected: bool,
    ratio_level: str,
    loss_agg: str,
    normalizer: float | None,
) -> GrpoSettings:
    """The fused kernels' settings from grpo_loss's keyword options for an (n, t) token grid; an
    unknown aggregation or KL estimator, or a bad clamp, raises naming `op`."""
    agg = resolve_loss_agg(op, loss_agg, normalizer)
    est = resolve_kl_estimator(op, kl_estimator, "kl_estimator")
    clamp_d = clamp_bound(op, "kl_clamp_log_ratio", kl_clamp_log_ratio)
    clamp_v = clamp_bound(op, "kl_clamp_value", kl_clamp_value)
    plan = agg.plan(n, t, normalizer)
    return GrpoSettings(
        clip_lo=1.0 - eps_low,
        clip_hi=1.0 + (eps_low if eps_high is None else eps_high),
        delta=math.inf if delta is None else float(delta),
        beta=float(beta),
        kl_estimator=est.code,
        kl_clamp_d=clamp_d,
        kl_clamp_v=clamp_v,
        bias_corrected=bool(kl_bias_corrected),
        sequence=ratio_level == "sequence",
        agg_base=plan.base,
        agg_per_row_count=plan.per_row_count,
        agg_total_count=plan.total_count,
        agg_nonempty_rows=plan.nonempty_rows,
    )


def weights_input(is_weights: torch.Tensor | None, n: int, t: int) -> torch.Tensor | None:
    """is_weights as the kernels take them: fp32, contiguous, (N,) or (N, T); (N, 1) becomes (N,)."""
    if is_weights is None:
        return None
    w = is_weights.float().contiguous()
    return w.reshape(n) if w.dim() == 2 and w.shape[1] == 1 and t != 1 else w


# --- per-backend launchers
# forward(logp, old, adv, mask, ref, w, settings, need_grad) -> (loss, stats (4,), coef or None, row_scale (N,))
# scale_(coef, row_scale, grad_loss): coef *= grad_loss * row_scale[:, None], in place.
# The token tensors arrive contiguous and of one dtype, adv/w fp32 of shape (N,) or (N,T).


class _Launcher(NamedTuple):
    forward: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]]
    scale_: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


def _native_outputs(logp: torch.Tensor, need_grad: bool) -> dict[str, torch.Tensor | None]:
    n, t = logp.shape
    dev = logp.device
    return dict(
        coef=torch.empty((n, t), dtype=logp.dtype, device=dev) if need_grad else None,
        out_loss=torch.empty((), dtype=torch.float32, device=dev),
        out_stats=torch.empty(len(METRICS), dtype=torch.float32, device=dev),
        row_scale=torch.empty(n, dtype=torch.float32, device=dev),
    )


def _native_arguments(logp, old, adv, mask, ref, w, outs: dict, settings: GrpoSettings) -> dict:
    """The compiled grpo_loss_fwd's keyword arguments (both cores share them)."""
    n, t = logp.shape
    return dict(
        n=n,
        t=t,
        logp=logp.data_ptr(),
        old=old.data_ptr(),
        ref=_native.address(ref),
        mask=mask.data_ptr(),
        mask_dtype=_native.dtype_code(mask),
        adv=adv.data_ptr(),
        adv_per_token=adv.dim() == 2,
        w=_native.address(w),
        w_per_token=w is not None and w.dim() == 2,
        dtype=_native.dtype_code(logp),
        **{name: _native.address(x) for name, x in outs.items()},
        **settings._asdict(),
    )


def _cpu_forward(logp, old, adv, mask, ref, w, settings, need_grad):
    outs = _native_outputs(logp, need_grad)
    flags = _native.cpu_module().grpo_loss_fwd(**_native_arguments(logp, old, adv, mask, ref, w, outs, settings))
    if flags:
        _raise_bad_flags(flags)
    return outs["out_loss"], outs["out_stats"], outs["coef"], outs["row_scale"]


def _native_scale_(module, coef: torch.Tensor, row_scale: torch.Tensor, grad_loss: torch.Tensor, **extra) -> None:
    """The compiled grpo_loss_bwd of `module` (both cores share its arguments; extra: the CUDA stream)."""
    n, t = coef.shape
    g = grad_loss.float()  # kept alive through the call: the core reads it by address
    module.grpo_loss_bwd(
        coef=coef.data_ptr(),
        row_scale=row_scale.data_ptr(),
        grad_output=g.data_ptr(),
        n=n,
        t=t,
        dtype=_native.dtype_code(coef),
        **extra,
    )


def _cpu_scale_(coef: torch.Tensor, row_scale: torch.Tensor, grad_loss: torch.Tensor) -> None:
    _native_scale_(_native.cpu_module(), coef, row_scale, grad_loss)


def _cuda_forward(logp, old, adv, mask, ref, w, settings, need_grad):
    _check_finite_inputs(adv, w)
    outs = _native_outputs(logp, need_grad)
    partials = torch.empty((logp.shape[0], ROW_SLOTS), dtype=torch.float32, device=logp.device)
    _native.cuda_module().grpo_loss_fwd(
        **_native_arguments(logp, old, adv, mask, ref, w, outs, settings),
        partials=partials.data_ptr(),
        stream=_native.stream_of(logp),
    )
    return outs["out_loss"], outs["out_stats"], outs["coef"], outs["row_scale"]


def _cuda_scale_(coef: torch.Tensor, row_scale: torch.Tensor, grad_loss: torch.Tensor) -> None:
    _native_scale_(_native.cuda_module(), coef, row_scale, grad_loss, stream=_native.stream_of(coef))


def _finish_partials(partials: torch.Tensor, plan: AggPlan) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, stats, row_scale) from per-row partial sums (N, ROW_SLOTS) in RowSlot order."""
    p = partials.double()
    count = p[:, RowSlot.COUNT]
    total = count.sum().clamp(min=1.0)
    div = torch.full_like(count, plan.base)
    if plan.per_row_count:
        div = div * count.clamp(min=1.0)
    if plan.total_count:
        div = div * total
    if plan.nonempty_rows:
        div = div * (count > 0).sum().clamp(min=1)
    alpha = (1.0 / div).float()
    loss = (alpha.double() * p[:, RowSlot.LOSS]).sum().float()
    stats = (p[:, list(METRIC_SLOTS)].sum(0) / total).float()
    return loss, stats, alpha


def _triton_forward(logp, old, adv, mask, ref, w, settings, need_grad):
    from harmo_fast.triton_kernels import grpo_loss as tk

    _check_finite_inputs(adv, w)
    partials, coef = tk.forward(logp, old, adv, mask, ref, w, settings, need_grad)
    loss, stats, row_scale = _finish_partials(partials, settings.plan)
    return loss, stats, coef, row_scale


def _triton_scale_(coef: torch.Tensor, row_scale: torch.Tensor, grad_loss: torch.Tensor) -> None:
    from harmo_fast.triton_kernels import grpo_loss as tk

    tk.scale_rows_(coef, row_scale, grad_loss.float())


_LAUNCHERS = {
    "cpu": _Launcher(_cpu_forward, _cpu_scale_),
    "cuda": _Launcher(_cuda_forward, _cuda_scale_),
    "triton": _Launcher(_triton_forward, _triton_scale_),
}


# --- the custom op (torch.compile, export, functorch, dispatch modes; plain eager calls take
# _GrpoLossFunction below, see ops/_eager_route.py). The forward writes the per-token
# gradient coefficient (when logp needs a gradient; otherwise no buffer, an empty tensor in its
# place); the backward op scales that buffer in place and hands it to autograd as logp's gradient.


def _grpo_loss_impl(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None,
    is_weights: torch.Tensor | None,
    settings: list[float],
    backend: str,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    loss, stats, coef, row_scale = _LAUNCHERS[backend].forward(
        logp, old_logp, advantages, mask, ref_logp, is_weights, GrpoSettings.from_floats(settings), need_grad
    )
    return loss, stats, logp.new_empty(0) if coef is None else coef, row_scale


_OP_PARAMS = tuple(inspect.signature(_grpo_loss_impl).parameters)
_grpo_loss_op = torch.library.custom_op("harmo_fast::grpo_loss", mutates_args=())(_grpo_loss_impl)


@_grpo_loss_op.register_fake
def _grpo_loss_fake(logp, old_logp, advantages, mask, ref_logp, is_weights, settings, backend, need_grad):
    f32 = torch.float32
    return (
        logp.new_empty((), dtype=f32),
        logp.new_empty(len(METRICS), dtype=f32),
        torch.empty_like(logp, memory_format=torch.contiguous_format) if need_grad else logp.new_empty(0),
        logp.new_empty(logp.shape[0], dtype=f32),
    )


@torch.library.custom_op("harmo_fast::grpo_loss_scale_", mutates_args=("coef",))
def _grpo_loss_scale_op(coef: torch.Tensor, row_scale: torch.Tensor, grad_loss: torch.Tensor, backend: str) -> None:
    """coef *= grad_loss * row_scale[:, None], in place (under torch.compile, functionalization
    turns this into a scaled copy, since the graph may still hold coef)."""
    _LAUNCHERS[backend].scale_(coef, row_scale, grad_loss)


@_grpo_loss_scale_op.register_fake
def _grpo_loss_scale_fake(coef, row_scale, grad_loss, backend) -> None:
    return None


def _op_setup(ctx, inputs, output) -> None:
    ctx.backend = inputs[_OP_PARAMS.index("backend")]
    _, stats, coef, row_scale = output
    ctx.mark_non_differentiable(stats, coef, row_scale)
    ctx.set_materialize_grads(False)  # no zero-filled (N,T) gradient for the coef output
    ctx.save_for_backward(coef, row_scale)


def _op_backward(ctx, grad_loss, grad_stats, grad_coef, grad_row_scale):
    # A second backward through the same graph finds coef already scaled: autograd's check of the
    # saved tensor's version raises then.
    coef, row_scale = ctx.saved_tensors
    _grpo_loss_scale_op(coef, row_scale, grad_loss, ctx.backend)
    return (coef, *(None for _ in _OP_PARAMS[1:]))


_grpo_loss_op.register_autograd(_op_backward, setup_context=_op_setup)


class _GrpoLossFunction(torch.autograd.Function):
    """The eager route (ops/_eager_route.py): the same launchers as the custom op, without its
    dispatch. forward returns (loss, stats); the backward scales the saved coefficients in place
    and hands them on as logp's gradient, as _op_backward does."""

    @staticmethod
    def forward(ctx, logp, old_logp, advantages, mask, ref_logp, is_weights, settings: GrpoSettings, backend: str):
        loss, stats, coef, row_scale = _LAUNCHERS[backend].forward(
            logp, old_logp, advantages, mask, ref_logp, is_weights, settings, True
        )
        ctx.backend = backend
        ctx.mark_non_differentiable(stats)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(coef, row_scale)
        return loss, stats

    @staticmethod
    def backward(ctx, grad_loss, grad_stats):
        coef, row_scale = ctx.saved_tensors
        if grad_loss is None:
            return (None,) * 8
        _LAUNCHERS[ctx.backend].scale_(coef, row_scale, grad_loss)
        # The kernel wrote through a raw pointer: bump the version so that a second backward
        # through this graph raises, as it does on the custom-op route.
        torch.autograd.graph.increment_version(coef)
        return (coef, *(None,) * 7)


def _kernel_inputs(logp, old_logp, advantages, mask, ref_logp, is_weights):
    """Contiguous token tensors of one dtype (the widest given), fp32 advantages/weights; copies
    nothing when the inputs already are so (the usual case)."""
    dtype = logp.dtype
    for t in (old_logp, ref_logp):
        if t is not None and t.dtype != dtype:
            dtype = torch.promote_types(dtype, t.dtype)
    lp = logp if logp.dtype == dtype else logp.to(dtype)
    old = lp.detach() if old_logp is None else old_logp.to(dtype)
    ref = None if ref_logp is None else ref_logp.to(dtype).contiguous()
    w = weights_input(is_weights, *logp.shape)
    adv = advantages if advantages.dtype == torch.float32 else advantages.float()
    return lp.contiguous(), old.contiguous(), adv.contiguous(), mask.contiguous(), ref, w


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    is_weights: torch.Tensor | None = None,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    delta: float | None = None,
    beta: float = 0.0,
    kl_estimator: str = "k3",
    kl_clamp_log_ratio: float | None = None,
    kl_clamp_value: float | None = None,
    kl_bias_corrected: bool = False,
    ratio_level: str = "token",
    loss_agg: str = "token_mean",
    normalizer: float | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped GRPO loss of logp (N,T) (see the module docstring for the formula).

    old_logp (N,T) or None (on-policy: old = logp.detach()); advantages (N,) or (N,T); mask (N,T)
    bool/int/float; ref_logp (N,T) for the KL (needed when beta > 0; gives kl_mean whenever
    given); kl_clamp_log_ratio / kl_clamp_value: token_kl's clamps of the KL term (None = off;
    verl's low_var_kl: 20 / 10); is_weights (N,), (N,1) or (N,T).
    loss_agg (harmo_fast/ops/_loss_agg.py, docs/SPEC.md §2): token_mean ("token-mean", "bnpo"),
    token_sum ("token-sum"), seq_mean_token_mean, seq_mean_token_sum, seq_mean_token_sum_norm
    (verl's "seq-mean-*" names; seq-means over the non-empty rows), and TRL's "grpo", "dr_grpo",
    "luspo", "dapo" (seq-means over every row, as TRL). normalizer: the divisor replacing the
    mode's default (dr_grpo: TRL's max_completion_length; dr_grpo and dapo require it).
    Returns (loss: 0-dim fp32, differentiable w.r.t. logp; metrics: {kl_mean, clip_low_frac,
    clip_high_frac, ratio_mean}, 0-dim fp32, detached).
    """
    device = _validate(
        logp, old_logp, advantages, mask, ref_logp, is_weights, eps_low, eps_high, delta, beta, normalizer, ratio_level
    )
    options = grpo_options(locals())
    settings = grpo_settings(OP, *logp.shape, **options)
    backend = _dispatch.resolve_backend(backend, device, OP)
    if backend == "torch":
        _check_finite_inputs(advantages, is_weights)
        return grpo_loss_reference(logp, old_logp, advantages, mask, ref_logp, is_weights, **options)
    lp, old, adv, m, ref, w = _kernel_inputs(logp, old_logp, advantages, mask, ref_logp, is_weights)
    need_grad = logp.requires_grad and torch.is_grad_enabled()
    if not direct_route():
        loss, stats, _, _ = _grpo_loss_op(lp, old, adv, m, ref, w, settings.as_floats(), backend, need_grad)
    elif need_grad:
        loss, stats = _GrpoLossFunction.apply(lp, old, adv, m, ref, w, settings, backend)
    else:
        loss, stats, _, _ = _LAUNCHERS[backend].forward(lp, old, adv, m, ref, w, settings, False)
    kl, clip_low, clip_high, ratio = stats.unbind(0)
    return loss, {"kl_mean": kl, "clip_low_frac": clip_low, "clip_high_frac": clip_high, "ratio_mean": ratio}
