"""grpo_loss: the reference against hand-computed docs/SPEC.md values and gradcheck; every backend against
the reference (loss, metrics, gradient) over aggregations, ratio levels, dual clip, importance
weights, KL estimators, bias correction, dtypes and edge cases; torch.compile; argument errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import harmo_fast as harmo
from harmo_fast._dispatch import available_backends
from harmo_fast.ops._grpo_layout import ROW_SLOTS, RowSlot
from harmo_fast.ops._loss_agg import AGGREGATIONS, ALIASES
from harmo_fast.ops.grpo_loss import METRICS, _finish_partials, grpo_loss_reference
from harmo_fast.ops.token_kl import KL_ESTIMATORS

KERNEL_BACKENDS = [b for b in ("cpu", "triton", "cuda") if available_backends()[b].startswith("available")]
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1e-2, atol=1e-2),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
}


def _device(backend: str) -> str:
    return "cuda" if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()) else "cpu"


def _inputs(
    n: int,
    t: int,
    *,
    dtype=torch.float32,
    spread=0.3,
    adv_tok=False,
    w_shape=None,
    ref=True,
    device="cpu",
    masked_rows=(1,),
):
    logp = (torch.randn(n, t) * 0.5 - 1.0).to(dtype)
    old = (logp.float() + torch.randn(n, t) * spread).to(dtype)
    ref_logp = (logp.float() + torch.randn(n, t) * 0.4).to(dtype) if ref else None
    adv = torch.randn((n, t) if adv_tok else (n,))
    mask = torch.rand(n, t) > 0.25
    for r in masked_rows:
        if r < n:
            mask[r] = False
    w = None if w_shape is None else torch.rand(w_shape) + 0.5
    mv = lambda x: None if x is None else x.to(device)  # noqa: E731
    return mv(logp).requires_grad_(), mv(old), mv(adv), mv(mask), mv(ref_logp), mv(w)


def _compare(backend: str, args: tuple, dtype=torch.float32, **kw) -> None:
    logp = args[0]
    loss, metrics = harmo.grpo_loss(*args, backend=backend, **kw)
    want, want_metrics = grpo_loss_reference(*args, **kw)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert set(metrics) == set(METRICS)
    torch.testing.assert_close(loss, want, **TOL[dtype])
    for k in METRICS:
        assert metrics[k].dim() == 0 and not metrics[k].requires_grad and metrics[k].dtype == torch.float32
        torch.testing.assert_close(metrics[k], want_metrics[k].float(), **TOL[dtype], msg=k)
    (g,) = torch.autograd.grad(loss, logp)
    (g_want,) = torch.autograd.grad(want, logp)
    assert g.dtype == logp.dtype and torch.isfinite(g).all()
    torch.testing.assert_close(g.float(), g_want.float(), **TOL[dtype])


# --- the reference against the docs/SPEC.md formula, by hand


def test_reference_hand_example_positive_advantage() -> None:
    logp = torch.zeros(1, 3, requires_grad=True)
    old = torch.tensor([[0.0, math.log(1.5), math.log(0.5)]])  # r = 1, 2/3, 2
    adv, mask = torch.ones(1), torch.ones(1, 3, dtype=torch.bool)
    loss, m = grpo_loss_reference(logp, old, adv, mask)
    # L = -min(r A, clamp(r, 0.8, 1.2) A) = -1, -2/3, -1.2 ; token_mean over 3 tokens
    assert loss.item() == pytest.approx(-(1.0 + 2.0 / 3.0 + 1.2) / 3.0, rel=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    # unclipped tokens: -A r / 3 (the r = 1 tie gets the full gradient); the clipped one: 0
    torch.testing.assert_close(g, torch.tensor([[-1.0 / 3.0, -2.0 / 9.0, 0.0]]))
    assert m["clip_high_frac"].item() == pytest.approx(1.0 / 3.0)
    assert m["clip_low_frac"].item() == 0.0
    assert m["ratio_mean"].item() == pytest.approx((1.0 + 2.0 / 3.0 + 2.0) / 3.0, rel=1e-6)
    assert m["kl_mean"].item() == 0.0


def test_reference_hand_example_negative_advantage_dual_clip_and_kl() -> None:
    logp = torch.zeros(1, 3, requires_grad=True)
    old = torch.tensor([[0.0, math.log(1.5), math.log(0.5)]])  # r = 1, 2/3, 2
    ref = torch.tensor([[math.log(2.0), 0.0, 0.0]])  # k3 = 1 - ln2 on token 0
    adv, mask = -torch.ones(1), torch.ones(1, 3)
    loss, m = grpo_loss_reference(logp, old, adv, mask, ref, delta=1.5, beta=0.1)
    # token 0: -min(-1, -1) = 1 ; token 1: -min(-2/3, -0.8) = 0.8 (clipped) ;
    # token 2: r' = min(2, 1.5): -min(-1.5, -1.2) = 1.5 (dual-clipped)
    kl0 = 1.0 - math.log(2.0)
    assert loss.item() == pytest.approx((1.0 + 0.8 + 1.5 + 0.1 * kl0) / 3.0, rel=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    # grad = (-A r [unclipped] + beta (1 - exp(ref - logp))) / 3
    torch.testing.assert_close(g, torch.tensor([[(1.0 + 0.1 * (1.0 - 2.0)) / 3.0, 0.0, 0.0]]))
    assert m["clip_low_frac"].item() == pytest.approx(1.0 / 3.0)
    assert m["clip_high_frac"].item() == 0.0
    assert m["kl_mean"].item() == pytest.approx(kl0 / 3.0, rel=1e-6)


def test_reference_aggregations_by_hand() -> None:
    # Row sums 3 and 3 over 2 and 1 tokens; the third row is empty (fully masked).
    per_tok = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    lm = per_tok * mask

    def agg(name: str, normalizer: float | None = None) -> float:
        return AGGREGATIONS[name].reference(lm, mask, normalizer).item()

    assert agg("token_mean") == pytest.approx(6.0 / 3.0)
    assert agg("token_mean", 12.0) == pytest.approx(0.5)
    assert agg("token_sum") == pytest.approx(6.0)
    assert agg("token_sum", 0.5) == pytest.approx(12.0)  # verl token-sum with dp_size = 2
    # ours and verl's: the two non-empty rows
    assert agg("seq_mean_token_mean") == pytest.approx((1.5 + 3.0) / 2)
    assert agg("seq_mean_token_mean", 4.0) == pytest.approx((1.5 + 3.0) / 4)
    assert agg("seq_mean_token_sum") == pytest.approx(6.0 / 2)
    assert agg("seq_mean_token_sum", 8.0) == pytest.approx(6.0 / 8)
    assert agg("seq_mean_token_sum_norm") == pytest.approx(6.0 / (2 * 3))
    assert agg("seq_mean_token_sum_norm", 40.0) == pytest.approx(6.0 / 40)
    # TRL's: every row
    assert agg("grpo") == pytest.approx((1.5 + 3.0) / 3)
    assert agg("luspo") == pytest.approx(6.0 / 3)
    assert agg("dr_grpo", 4.0) == pytest.approx(6.0 / (3 * 4))
    assert agg("dapo", 12.0) == pytest.approx(0.5)


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_aggregation_plan_equals_reference(name: str) -> None:
    # The kernels' per-row weights (plan) give the reference's loss, with empty rows and without.
    mode = AGGREGATIONS[name]
    for normalizer in (None, 7.0) if mode.required_normalizer is None else (7.0,):
        lm = torch.randn(5, 6, dtype=torch.float64)
        mask = (torch.rand(5, 6) > 0.4).double()
        mask[1] = 0.0
        lm = lm * mask
        partials = torch.zeros(5, ROW_SLOTS, dtype=torch.float64)
        partials[:, RowSlot.LOSS] = lm.sum(-1)
        partials[:, RowSlot.COUNT] = mask.sum(-1)
        loss, _, _ = _finish_partials(partials, mode.plan(5, 6, normalizer))
        assert loss.item() == pytest.approx(mode.reference(lm, mask, normalizer).item(), rel=1e-6)


def test_reference_sequence_ratio_by_hand() -> None:
    logp = torch.zeros(1, 3, requires_grad=True)
    old = torch.tensor([[0.0, -0.3, 5.0]])
    mask = torch.tensor([[True, True, False]])  # masked token ignored in the row's mean
    loss, m = grpo_loss_reference(logp, old, torch.ones(1), mask, ratio_level="sequence", eps_low=0.5)
    s = math.exp(0.15)  # exp(mean(0, 0.3)), inside the clip range
    assert loss.item() == pytest.approx(-s, rel=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    # d/dlogp_t of -mean_t(S) with dS/dlogp_t = S m_t / 2
    torch.testing.assert_close(g, torch.tensor([[-s / 2, -s / 2, 0.0]]))
    assert m["ratio_mean"].item() == pytest.approx(s, rel=1e-6)


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize(
    "extra", [dict(), dict(delta=1.3, beta=0.2), dict(beta=0.1, kl_bias_corrected=True, kl_estimator="k2")]
)
def test_reference_gradcheck(level: str, extra: dict) -> None:
    n, t = 3, 5
    logp = (torch.randn(n, t, dtype=torch.float64) * 0.3).requires_grad_()
    old = logp.detach() + torch.randn(n, t, dtype=torch.float64) * 0.4
    ref = logp.detach() + torch.randn(n, t, dtype=torch.float64) * 0.4
    adv = torch.randn(n, dtype=torch.float64)
    mask = torch.rand(n, t) > 0.3
    w = torch.rand(n, t, dtype=torch.float64) + 0.5
    f = lambda x: grpo_loss_reference(x, old, adv, mask, ref, w, ratio_level=level, **extra)[0]  # noqa: E731
    assert torch.autograd.gradcheck(f, (logp,))


def test_reference_bias_corrected_kl_gradient() -> None:
    # token level: d/dlogp (beta * r * k3) = beta * r * (logp - ref) exactly (research notes, section 0)
    logp = torch.tensor([[0.2, -0.4]], requires_grad=True)
    old, ref = torch.tensor([[0.0, 0.1]]), torch.tensor([[0.5, -1.0]])
    adv = torch.zeros(1)  # no policy gradient
    loss, _ = grpo_loss_reference(
        logp, old, adv, torch.ones(1, 2), ref, beta=0.5, kl_bias_corrected=True, loss_agg="seq_mean_token_sum"
    )
    (g,) = torch.autograd.grad(loss, logp)
    r = torch.exp(logp.detach() - old)
    torch.testing.assert_close(g, 0.5 * r * (logp.detach() - ref))


# --- every backend against the reference


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 5),
    t=st.integers(1, 40),
    level=st.sampled_from(["token", "sequence"]),
    agg=st.sampled_from(sorted(AGGREGATIONS)),
    delta=st.sampled_from([None, 1.4, 3.0]),
    beta=st.sampled_from([0.0, 0.04]),
    est=st.sampled_from(sorted(KL_ESTIMATORS)),
    bias=st.booleans(),
    adv_tok=st.booleans(),
    w_kind=st.sampled_from([None, "n", "n1", "nt"]),
    eps_high=st.sampled_from([None, 0.28]),
    spread=st.sampled_from([0.05, 0.5, 3.0]),
    kl_clamps=st.sampled_from([(None, None), (0.3, None), (None, 0.05), (20.0, 10.0)]),
)
def test_backend_matches_reference(
    backend, n, t, level, agg, delta, beta, est, bias, adv_tok, w_kind, eps_high, spread, kl_clamps
) -> None:
    w_shape = {None: None, "n": (n,), "n1": (n, 1), "nt": (n, t)}[w_kind]
    args = _inputs(n, t, spread=spread, adv_tok=adv_tok, w_shape=w_shape, device=_device(backend))
    _compare(
        backend,
        args,
        ratio_level=level,
        loss_agg=agg,
        normalizer=_required_normalizer(agg),
        delta=delta,
        beta=beta,
        kl_estimator=est,
        kl_bias_corrected=bias,
        eps_high=eps_high,
        kl_clamp_log_ratio=kl_clamps[0],
        kl_clamp_value=kl_clamps[1],
    )


def test_reference_kl_clamps_by_hand() -> None:
    # verl's low_var_kl: d = ref - logp clamped to [-20, 20], k3 of it clamped to [-10, 10]; the
    # gradient is zero wherever a clamp is active (torch.clamp).
    logp = torch.zeros(1, 4, requires_grad=True)
    ref = torch.tensor([[30.0, -30.0, 2.0, 0.5]])  # d = +-30: both clamps; 2 and 0.5: none
    adv, mask = torch.zeros(1), torch.ones(1, 4)
    kw = dict(beta=1.0, kl_clamp_log_ratio=20.0, kl_clamp_value=10.0, normalizer=1.0)
    loss, m = grpo_loss_reference(logp, None, adv, mask, ref, **kw)
    k3 = lambda d: math.exp(d) - d - 1  # noqa: E731
    assert k3(-20.0) > 10.0 and k3(2.0) < 10.0
    want = [10.0, 10.0, k3(2.0), k3(0.5)]
    assert loss.item() == pytest.approx(sum(want), rel=1e-6)
    (g,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(g, torch.tensor([[0.0, 0.0, 1.0 - math.exp(2.0), 1.0 - math.exp(0.5)]]))
    assert m["kl_mean"].item() == pytest.approx(sum(want) / 4, rel=1e-6)
    for backend in KERNEL_BACKENDS:
        dev = _device(backend)
        x = logp.detach().to(dev).requires_grad_()
        got, _ = harmo.grpo_loss(x, None, adv.to(dev), mask.to(dev), ref.to(dev), backend=backend, **kw)
        torch.testing.assert_close(got.cpu(), loss.detach())
        torch.testing.assert_close(torch.autograd.grad(got, x)[0].cpu(), g)


@pytest.mark.parametrize("backend", ["torch", *KERNEL_BACKENDS])
@pytest.mark.parametrize("estimator", sorted(KL_ESTIMATORS))
@pytest.mark.parametrize("clamps", [(None, None), (1.0, 0.5)])
def test_kl_term_is_token_kl(backend: str, estimator: str, clamps: tuple) -> None:
    # With A = 0 the loss is beta * the masked token_kl sum, value and gradient, for every estimator
    # (abs and the straight-through "+" ones included) and clamp.
    dev = _device(backend)
    logp, old, _, mask, ref, _ = _inputs(3, 8, device=dev)
    ref = ref + torch.randn(3, 8, device=dev)  # beyond the clamps on some tokens
    loss, m = harmo.grpo_loss(
        logp,
        old,
        torch.zeros(3, device=dev),
        mask,
        ref,
        beta=0.3,
        kl_estimator=estimator,
        kl_clamp_log_ratio=clamps[0],
        kl_clamp_value=clamps[1],
        loss_agg="token_sum",
        backend=backend,
    )
    kl = harmo.token_kl(logp, ref, estimator, *clamps, backend="torch")
    want = 0.3 * (kl * mask).sum()
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(m["kl_mean"], (kl * mask).sum() / mask.sum())
    torch.testing.assert_close(torch.autograd.grad(loss, logp)[0], torch.autograd.grad(want, logp)[0])


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("delta", [None, 3.0])
def test_overflowing_ratios_torch_matches_kernels(backend: str, level: str, delta: float | None) -> None:
    # logp - old >= ~89 (or old = -inf) overflows r = exp(logp - old) to inf in fp32. Tokens that pass
    # no gradient to r (A > 0 clipped, A < 0 capped by delta, A = 0) keep a zero gradient and a
    # finite loss in the torch reference as in the kernels; A < 0 without delta is infinite in both.
    dev = _device(backend)
    old = torch.tensor([[-95.0, -float("inf"), 0.0], [-95.0, 0.0, 0.0], [-float("inf"), -95.0, 0.0]], device=dev)
    adv = torch.tensor([1.0, 0.0, -1.0], device=dev)
    mask = torch.tensor([[True, True, True], [True, True, False], [True, True, True]], device=dev)
    ref = torch.full((3, 3), -0.5, device=dev)
    kw = dict(ratio_level=level, delta=delta, beta=0.05, kl_clamp_log_ratio=20.0, kl_clamp_value=10.0)
    rows = slice(None) if delta is not None else slice(0, 2)  # without delta the A < 0 row is infinite
    for x0 in (torch.zeros(3, 3, device=dev), torch.full((3, 3), -0.2, device=dev)):
        got_x, want_x = x0.clone().requires_grad_(), x0.clone().requires_grad_()
        got, _ = harmo.grpo_loss(got_x[rows], old[rows], adv[rows], mask[rows], ref[rows], backend=backend, **kw)
        want, _ = harmo.grpo_loss(want_x[rows], old[rows], adv[rows], mask[rows], ref[rows], backend="torch", **kw)
        assert torch.isfinite(got) and torch.isfinite(want)
        torch.testing.assert_close(got, want)
        (g,) = torch.autograd.grad(got, got_x)
        (g_want,) = torch.autograd.grad(want, want_x)
        assert torch.isfinite(g_want).all()
        torch.testing.assert_close(g, g_want)
    if delta is None:  # the A < 0 row: inf loss, an infinite gradient on its unclipped tokens, in both
        x = torch.zeros(1, 3, device=dev, requires_grad=True)
        got, _ = harmo.grpo_loss(x, old[2:], adv[2:], mask[2:], backend=backend, ratio_level=level)
        want, _ = harmo.grpo_loss(x, old[2:], adv[2:], mask[2:], backend="torch", ratio_level=level)
        assert got.item() == want.item() == float("inf")
        torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


def _required_normalizer(agg: str) -> float | None:
    return 37.0 if AGGREGATIONS[ALIASES.get(agg, agg)].required_normalizer else None


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("name", sorted(ALIASES))
def test_aliases_match_reference(backend: str, name: str) -> None:
    args = _inputs(3, 9, device=_device(backend))
    _compare(backend, args, loss_agg=name, beta=0.1)
    canonical, _ = grpo_loss_reference(*args, loss_agg=ALIASES[name], beta=0.1)
    aliased, _ = grpo_loss_reference(*args, loss_agg=name, beta=0.1)
    assert canonical.item() == aliased.item()


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("agg", sorted(AGGREGATIONS))
def test_empty_rows_count_as_the_mode_says(backend: str, agg: str) -> None:
    # Rows 1 and 3 are fully masked: ours and verl's seq-means leave them out of the row count,
    # TRL's count them; every backend agrees with the reference either way.
    args = _inputs(5, 7, masked_rows=(1, 3), device=_device(backend))
    _compare(backend, args, loss_agg=agg, normalizer=_required_normalizer(agg), beta=0.1)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("agg", sorted(AGGREGATIONS))
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("grad_output", [1.0, 0.37, -2.0, 0.0])
def test_upstream_gradient_scales_the_stored_gradient(backend: str, agg: str, level: str, grad_output: float) -> None:
    # The backward scales the coefficients the forward stored by grad_output and each row's
    # aggregation weight: every grad_output (0 and negative ones too) must reach every token, and
    # float masks (token weights) must give the reference's row weights.
    args = list(_inputs(4, 150, device=_device(backend), masked_rows=(2,)))  # rows span two chunks of 128
    args[3] = args[3] * (torch.rand(4, 150, device=args[3].device) + 0.5)
    kw = dict(loss_agg=agg, normalizer=_required_normalizer(agg), ratio_level=level, beta=0.1)
    loss, _ = harmo.grpo_loss(*args, backend=backend, **kw)
    want, _ = grpo_loss_reference(*args, **kw)
    (g,) = torch.autograd.grad(loss * grad_output, args[0])
    (g_want,) = torch.autograd.grad(want * grad_output, args[0])
    assert (g == 0).all() if grad_output == 0.0 else (g != 0).any()
    torch.testing.assert_close(g, g_want)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("agg", sorted(AGGREGATIONS))
def test_explicit_normalizer(backend: str, agg: str) -> None:
    args = _inputs(4, 6, device=_device(backend))
    _compare(backend, args, loss_agg=agg, normalizer=11.0)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_half_precision_inputs(backend: str, dtype: torch.dtype, level: str) -> None:
    args = _inputs(3, 33, dtype=dtype, device=_device(backend))
    _compare(backend, args, dtype=dtype, ratio_level=level, beta=0.05)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize(
    "mask_dtype", [torch.bool, torch.uint8, torch.int32, torch.int64, torch.float32, torch.bfloat16]
)
def test_mask_dtypes(backend: str, mask_dtype: torch.dtype) -> None:
    logp, old, adv, mask, ref, w = _inputs(3, 10, device=_device(backend))
    _compare(backend, (logp, old, adv, mask.to(mask_dtype), ref, w), beta=0.1, ratio_level="sequence")


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("delta", [None, 1.1, 1.2, 3.0])
@pytest.mark.parametrize("eps_high", [None, 0.5])
@pytest.mark.parametrize("weights", [False, True])
def test_row_advantages_equal_the_same_per_token(backend: str, delta, eps_high, weights: bool) -> None:
    # A row's advantage (and weight) given once takes the kernels' row-constant policy term (one
    # clamp of r per sign of A); given per token, the general min of the two branches. Log-ratios
    # sweep every region (below 1 - eps_low, inside, above 1 + eps_high, above delta, delta below
    # or equal to 1 + eps_high) for A > 0, A < 0 and A = 0: loss, metrics and gradient agree.
    dev = _device(backend)
    t = 64
    old = torch.zeros(3, t, device=dev)
    logp = torch.linspace(-1.0, 1.0, t, device=dev).expand(3, t).clone().requires_grad_()
    adv = torch.tensor([1.3, -0.7, 0.0], device=dev)
    w = torch.tensor([0.5, 2.0, 1.5], device=dev) if weights else None
    mask = torch.ones(3, t, dtype=torch.bool, device=dev)
    kw = dict(delta=delta, eps_high=eps_high, beta=0.04, ref_logp=torch.full((3, t), -0.1, device=dev))
    loss, metrics = harmo.grpo_loss(logp, old, adv, mask, is_weights=w, backend=backend, **kw)
    w_tok = None if w is None else w[:, None].expand(3, t).contiguous()
    loss_tok, metrics_tok = harmo.grpo_loss(
        logp, old, adv[:, None].expand(3, t).contiguous(), mask, is_weights=w_tok, backend=backend, **kw
    )
    want, want_metrics = grpo_loss_reference(logp, old, adv, mask, is_weights=w, **kw)
    (g,) = torch.autograd.grad(loss, logp)
    (g_tok,) = torch.autograd.grad(loss_tok, logp)
    (g_want,) = torch.autograd.grad(want, logp)
    torch.testing.assert_close(loss, loss_tok, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_tok, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(g, g_want, rtol=1e-5, atol=1e-7)
    for k in METRICS:
        assert metrics[k].item() == metrics_tok[k].item(), k
        torch.testing.assert_close(metrics[k], want_metrics[k].float(), msg=k)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_on_policy_ties_get_full_gradient(backend: str, level: str) -> None:
    # old_logp=None: r = 1 exactly, r*A == clamp(r)*A for every token (min() ties), full gradient -A/n.
    dev = _device(backend)
    logp = torch.randn(2, 4, device=dev, requires_grad=True)
    adv = torch.tensor([1.5, -2.0], device=dev)
    mask = torch.ones(2, 4, dtype=torch.bool, device=dev)
    loss, m = harmo.grpo_loss(logp, None, adv, mask, ratio_level=level, backend=backend)
    (g,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(g, (-adv / 8.0)[:, None].expand(2, 4))
    assert m["ratio_mean"].item() == 1.0 and m["clip_low_frac"].item() == 0.0


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("level", ["token", "sequence"])
def test_all_masked_rows_and_empty_batches(backend: str, level: str) -> None:
    dev = _device(backend)
    for n, t in ((3, 5), (0, 5), (4, 0)):
        logp = torch.randn(n, t, device=dev, requires_grad=True)
        mask = torch.zeros(n, t, dtype=torch.bool, device=dev)
        for agg in AGGREGATIONS:
            loss, m = harmo.grpo_loss(
                logp,
                logp.detach() + 1.0,
                torch.ones(n, device=dev),
                mask,
                logp.detach(),
                beta=0.1,
                loss_agg=agg,
                normalizer=_required_normalizer(agg),
                ratio_level=level,
                backend=backend,
            )
            (g,) = torch.autograd.grad(loss, logp)
            assert loss.item() == 0.0 and all(v.item() == 0.0 for v in m.values())
            assert g.shape == (n, t) and (g == 0).all()


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_masked_positions_are_inert(backend: str) -> None:
    # Garbage (inf/NaN) in logp/old/ref at masked positions changes nothing.
    args = _inputs(3, 8, device=_device(backend))
    logp, old, adv, mask, ref, _ = args
    dirty_old, dirty_ref = old.clone(), ref.clone()
    dirty_old[~mask] = float("inf")
    dirty_ref[~mask] = float("nan")
    clean, _ = harmo.grpo_loss(logp, old, adv, mask, ref, beta=0.1, backend=backend)
    dirty, _ = harmo.grpo_loss(logp, dirty_old, adv, mask, dirty_ref, beta=0.1, backend=backend)
    torch.testing.assert_close(dirty, clean)
    (g,) = torch.autograd.grad(dirty, logp)
    assert torch.isfinite(g).all() and (g[~mask] == 0).all()


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_long_padded_rows(backend: str, level: str, dtype: torch.dtype) -> None:
    # Right-padded responses as trainers batch them: rows end anywhere around the CPU kernel's
    # 128-token chunks (whose all-padding chunks it skips), with garbage in the padding.
    lengths = [0, 1, 127, 128, 129, 300, 700]
    n, t = len(lengths), 700
    logp, old, adv, _, ref, _ = _inputs(n, t, dtype=dtype, adv_tok=True, device=_device(backend))
    mask = (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]).to(logp.device)
    dirty_old = old.clone()
    dirty_old[~mask] = float("nan")
    for agg in ("token_mean", "seq_mean_token_mean"):
        _compare(backend, (logp, old, adv, mask, ref, None), dtype, ratio_level=level, beta=0.05, loss_agg=agg)
        loss, _ = harmo.grpo_loss(
            logp, dirty_old, adv, mask, ref, beta=0.05, ratio_level=level, loss_agg=agg, backend=backend
        )
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.isfinite(loss) and (g[~mask] == 0).all() and torch.isfinite(g).all()
    bad_adv = adv.clone()
    bad_adv[0, -1] = float("nan")  # in the padding of an all-padding row: still an error
    with pytest.raises(ValueError, match="advantages"):
        harmo.grpo_loss(logp, old, bad_adv, mask, ref, beta=0.05, ratio_level=level, backend=backend)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("delta", [None, 2.0])
def test_huge_log_ratios(backend: str, level: str, delta: float | None) -> None:
    # |logp - old| ~ 50: r = e^{+-50} is finite in fp32; loss and gradient finite and as the reference.
    dev = _device(backend)
    logp = torch.zeros(2, 6, device=dev, requires_grad=True)
    old = torch.tensor([[50.0, -50.0, 0.1, -49.0, 48.0, 0.0]] * 2, device=dev)
    adv = torch.tensor([1.0, -1.0], device=dev)
    mask = torch.ones(2, 6, dtype=torch.bool, device=dev)
    ref = torch.full((2, 6), -0.5, device=dev)
    kw = dict(ratio_level=level, delta=delta, beta=0.05)
    loss, _ = harmo.grpo_loss(logp, old, adv, mask, ref, backend=backend, **kw)
    want, _ = grpo_loss_reference(logp, old, adv, mask, ref, **kw)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, want, rtol=1e-5, atol=1e-5)
    (g,) = torch.autograd.grad(loss, logp)
    (g_want,) = torch.autograd.grad(want, logp)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, g_want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_ratios_far_outside_clip_range(backend: str) -> None:
    args = _inputs(4, 16, spread=4.0, device=_device(backend))
    _compare(backend, args, delta=3.0, beta=0.02)


def test_kl_metric_without_beta_and_zero_without_ref() -> None:
    logp, old, adv, mask, ref, _ = _inputs(3, 7)
    _, with_ref = harmo.grpo_loss(logp, old, adv, mask, ref, backend="cpu")
    _, want = grpo_loss_reference(logp, old, adv, mask, ref)
    assert with_ref["kl_mean"].item() > 0
    torch.testing.assert_close(with_ref["kl_mean"], want["kl_mean"])
    _, without = harmo.grpo_loss(logp, old, adv, mask, backend="cpu")
    assert without["kl_mean"].item() == 0.0


def test_no_grad_path_and_auto_backend() -> None:
    logp, old, adv, mask, ref, w = _inputs(3, 7)
    want, want_m = grpo_loss_reference(logp, old, adv, mask, ref, w, beta=0.1)
    with torch.no_grad():
        loss, m = harmo.grpo_loss(logp, old, adv, mask, ref, w, beta=0.1)
    torch.testing.assert_close(loss, want.detach())
    torch.testing.assert_close(m["ratio_mean"], want_m["ratio_mean"])


def test_second_backward_through_fused_buffer_raises() -> None:
    logp, old, adv, mask, _, _ = _inputs(2, 5)
    loss, _ = harmo.grpo_loss(logp, old, adv, mask, backend="cpu")
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_torch_compile_fullgraph_step_matches_eager() -> None:
    # The loss step is captured whole (fullgraph); its backward runs through the compiled graph's
    # autograd (the custom op's registered backward).
    logp0, old, adv, mask, ref, w = _inputs(4, 12)

    def step(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, metrics = harmo.grpo_loss(x * 1.0, old, adv, mask, ref, w, beta=0.05, loss_agg="grpo", backend="cpu")
        return loss, metrics["clip_low_frac"]

    from torch._dynamo.backends.debugging import aot_eager

    seen: list[str] = []

    def recording_aot_eager(gm, example_inputs):
        seen.extend(str(node.target) for node in gm.graph.nodes)
        return aot_eager(gm, example_inputs)

    compiled = torch.compile(step, fullgraph=True, backend=recording_aot_eager)
    x1 = logp0.detach().clone().requires_grad_()
    x2 = logp0.detach().clone().requires_grad_()
    l1, c1 = step(x1)
    l2, c2 = compiled(x2)
    l1.backward()
    l2.backward()
    torch.testing.assert_close(l2, l1)
    torch.testing.assert_close(c2, c1)
    torch.testing.assert_close(x2.grad, x1.grad)
    assert "harmo_fast.grpo_loss.default" in seen  # the fused kernel, not a traced-through reference


# --- bad input


def _good() -> dict:
    logp, old, adv, mask, ref, w = _inputs(2, 3)
    return dict(logp=logp, old_logp=old, advantages=adv, mask=mask, ref_logp=ref, is_weights=w)


@pytest.mark.parametrize(
    ("change", "exc", "match"),
    [
        (dict(logp=torch.zeros(6)), ValueError, "logp"),
        (dict(logp=torch.zeros(2, 3, dtype=torch.int32)), TypeError, "logp"),
        (dict(old_logp=torch.zeros(3, 2)), ValueError, "old_logp"),
        (dict(ref_logp=torch.zeros(2, 4)), ValueError, "ref_logp"),
        (dict(mask=torch.ones(2, 2, dtype=torch.bool)), ValueError, "mask"),
        (dict(mask=torch.ones(2, 3, dtype=torch.complex64)), TypeError, "mask"),
        (dict(advantages=torch.zeros(3)), ValueError, "advantages"),
        (dict(advantages=torch.zeros(2, dtype=torch.int64)), TypeError, "advantages"),
        (dict(advantages=torch.tensor([0.0, float("nan")])), ValueError, "advantages"),
        (dict(advantages=torch.tensor([[0.0, 1, 2], [3, float("inf"), 5]])), ValueError, "advantages"),
        (dict(is_weights=torch.ones(2, 2)), ValueError, "is_weights"),
        (dict(is_weights=torch.tensor([1.0, float("nan")])), ValueError, "is_weights"),
        (dict(old_logp=torch.zeros(2, 3, device="meta")), ValueError, "device"),
        (dict(eps_low=0.0), ValueError, "eps_low"),
        (dict(eps_high=-0.1), ValueError, "eps_high"),
        (dict(delta=1.0), ValueError, "delta"),
        (dict(beta=-0.1), ValueError, "beta"),
        (dict(beta=0.1, ref_logp=None), ValueError, "ref_logp"),
        (dict(normalizer=0.0), ValueError, "normalizer"),
        (dict(loss_agg="mean"), ValueError, "loss_agg"),
        (dict(loss_agg="dapo"), ValueError, "normalizer"),
        (dict(loss_agg="dr_grpo"), ValueError, "max_completion_length"),
        (dict(kl_estimator="k9"), ValueError, "kl_estimator"),
        (dict(kl_estimator="k3++"), ValueError, "kl_estimator"),
        (dict(kl_clamp_log_ratio=0.0), ValueError, "kl_clamp_log_ratio"),
        (dict(kl_clamp_value=-1.0), ValueError, "kl_clamp_value"),
        (dict(ratio_level="sequence_token"), ValueError, "ratio_level"),
        (dict(backend="gpu"), ValueError, "backend"),
    ],
)
@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_bad_input(change: dict, exc: type, match: str, backend: str) -> None:
    kw = _good() | change
    kw.setdefault("backend", backend)
    with pytest.raises(exc, match=match):
        harmo.grpo_loss(**kw)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("need_grad", [True, False])
@pytest.mark.parametrize("sequence", [False, True])
def test_opcheck_grpo_loss_op(backend: str, need_grad: bool, sequence: bool) -> None:
    from harmo_fast.ops.grpo_loss import GrpoSettings, _grpo_loss_op

    logp, old, adv, mask, ref, w = _inputs(3, 5, w_shape=(3,), device=_device(backend))
    settings = GrpoSettings(
        clip_lo=0.8,
        clip_hi=1.28,
        delta=3.0,
        beta=0.1,
        kl_estimator=2,
        kl_clamp_d=20.0,
        kl_clamp_v=10.0,
        bias_corrected=True,
        sequence=sequence,
        agg_base=3.0,
        agg_per_row_count=True,
        agg_total_count=False,
        agg_nonempty_rows=True,
    )
    lp = logp.detach().float().contiguous().requires_grad_(need_grad)
    args = (lp, old.float(), adv.float(), mask, ref.float(), w.float(), settings.as_floats(), backend, need_grad)
    # With a gradient, the backward scales the coef output in place: opcheck's AOT test returns that
    # output from its graph, which real use never does (grpo_loss drops it); the compiled path with
    # a gradient is tested by test_torch_compile_fullgraph_step_matches_eager.
    tests = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(_grpo_loss_op, args, test_utils=tests if need_grad else (*tests, "test_aot_dispatch_dynamic"))


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_opcheck_grpo_loss_scale_op(backend: str) -> None:
    from harmo_fast.ops.grpo_loss import _grpo_loss_scale_op

    dev = _device(backend)
    coef = torch.randn(3, 5, device=dev)
    row_scale = torch.rand(3, device=dev)
    grad = torch.tensor(0.5, device=dev)
    torch.library.opcheck(_grpo_loss_scale_op, (coef, row_scale, grad, backend))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_no_gradient_wanted_allocates_no_coefficient_buffer(monkeypatch, requires_grad: bool) -> None:
    from harmo_fast.ops import grpo_loss as module

    seen = []
    launcher = module._LAUNCHERS["cpu"]

    def forward(*args):
        out = launcher.forward(*args)
        seen.append(out[2])
        return out

    monkeypatch.setitem(module._LAUNCHERS, "cpu", launcher._replace(forward=forward))
    logp, old, adv, mask, _, _ = _inputs(3, 6)
    harmo.grpo_loss(logp.requires_grad_(requires_grad), old, adv, mask, backend="cpu")
    with torch.no_grad():
        harmo.grpo_loss(logp, old, adv, mask, backend="cpu")
    assert seen[1] is None
    assert (seen[0] is not None) == requires_grad
