"""token_kl: the reference against hand values and gradcheck, every backend against the reference
(values and gradients), clamps, dtypes, edge cases and argument errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import harmo_fast as harmo
from harmo_fast._dispatch import available_backends
from harmo_fast.ops.token_kl import KL_ESTIMATORS, token_kl_reference

KERNEL_BACKENDS = [b for b in ("cpu", "triton", "cuda") if available_backends()[b].startswith("available")]
ESTIMATORS = tuple(KL_ESTIMATORS)
# Whose gradient is the derivative of their value (the straight-through ones take k2's).
SMOOTH_ESTIMATORS = ("k1", "k2", "k3", "abs")
TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1e-2, atol=1e-2),
    torch.float16: dict(rtol=1e-2, atol=1e-2),
}


def _device(backend: str) -> str:
    return "cuda" if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()) else "cpu"


def test_reference_hand_values() -> None:
    logp = torch.tensor([0.0, 1.0, -2.0])
    ref = torch.tensor([math.log(2.0), 1.0, -3.0])  # d = ln2, 0, -1
    d = [math.log(2.0), 0.0, -1.0]
    torch.testing.assert_close(token_kl_reference(logp, ref, "k1"), torch.tensor([-x for x in d]))
    torch.testing.assert_close(token_kl_reference(logp, ref, "k2"), torch.tensor([x * x / 2 for x in d]))
    torch.testing.assert_close(token_kl_reference(logp, ref, "k3"), torch.tensor([math.exp(x) - x - 1 for x in d]))
    torch.testing.assert_close(token_kl_reference(logp, ref, "abs"), torch.tensor([abs(x) for x in d]))
    # clamp of d to [-0.5, 0.5] then of the value to [-0.1, 0.1]
    got = token_kl_reference(logp, ref, "k1", clamp_log_ratio=0.5, clamp_value=0.1)
    torch.testing.assert_close(got, torch.tensor([-0.1, 0.0, 0.1]))


@pytest.mark.parametrize("base", ["k1", "k2", "k3", "abs"])
@pytest.mark.parametrize("clamps", [(None, None), (0.5, 0.2)])
def test_reference_straight_through_is_base_value_with_k2_gradient(base: str, clamps: tuple) -> None:
    # verl's kl_penalty(..., "k3+"): k3's (clamped) value, the gradient of 0.5 (logp - ref)^2 = logp - ref,
    # whatever the clamps do to the value.
    logp = torch.tensor([0.0, 1.0, -2.0, 0.4], requires_grad=True)
    ref = torch.tensor([math.log(2.0), 1.5, -3.0, 0.4])
    got = token_kl_reference(logp, ref, base + "+", *clamps)
    torch.testing.assert_close(got, token_kl_reference(logp, ref, base, *clamps))
    (g,) = torch.autograd.grad(got.sum(), logp)
    torch.testing.assert_close(g, logp.detach() - ref)


def test_reference_abs_gradient_is_sign_of_logp_minus_ref() -> None:
    logp = torch.tensor([0.0, 1.0, -2.0, 0.5], requires_grad=True)
    ref = torch.tensor([1.0, 0.0, -2.0, 0.5 + 1e-3])
    (g,) = torch.autograd.grad(token_kl_reference(logp, ref, "abs").sum(), logp)
    torch.testing.assert_close(g, torch.tensor([-1.0, 1.0, 0.0, -1.0]))


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("estimator", ["abs", "abs+", "k3+", "k1+"])
def test_backend_at_ties_and_clamp_bounds(backend: str, estimator: str) -> None:
    # d = 0 (abs's kink: gradient 0), d on and beyond the clamp bound, large d with and without clamps.
    dev = _device(backend)
    logp = torch.tensor([0.5, 0.0, 0.0, 0.0, 30.0], device=dev, requires_grad=True)
    ref = torch.tensor([0.5, 2.0, -2.5, 30.0, 0.0], device=dev)
    for clamps in ((None, None), (2.0, 1.5), (20.0, 10.0)):
        got = harmo.token_kl(logp, ref, estimator, *clamps, backend=backend)
        want = token_kl_reference(logp, ref, estimator, *clamps)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        (g_got,) = torch.autograd.grad(got.sum(), logp)
        (g_want,) = torch.autograd.grad(want.sum(), logp)
        torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-5)


def test_reference_k3_gradient_is_one_minus_exp_d() -> None:
    logp = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    ref = torch.tensor([0.0, 0.5, 1.0])
    (g,) = torch.autograd.grad(token_kl_reference(logp, ref).sum(), logp)
    torch.testing.assert_close(g, 1.0 - torch.exp(ref - logp.detach()))


@pytest.mark.parametrize("estimator", SMOOTH_ESTIMATORS)
@pytest.mark.parametrize("clamps", [(None, None), (0.7, None), (None, 0.3), (0.7, 0.3)])
def test_reference_gradcheck(estimator: str, clamps: tuple) -> None:
    logp = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(4, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: token_kl_reference(x, ref, estimator, *clamps), (logp,))


def _check_backend(backend: str, shape: tuple, dtype: torch.dtype, estimator: str, clamps: tuple, scale: float) -> None:
    dev = _device(backend)
    logp = (torch.randn(shape) * scale).to(dtype).to(dev).requires_grad_()
    ref = (torch.randn(shape) * scale).to(dtype).to(dev)
    got = harmo.token_kl(logp, ref, estimator, *clamps, backend=backend)
    want = token_kl_reference(logp, ref, estimator, *clamps)
    assert got.dtype == torch.float32 and got.shape == logp.shape
    torch.testing.assert_close(got, want, **TOL[dtype])
    g = torch.randn(shape, device=dev)
    (g_got,) = torch.autograd.grad(got, logp, g)
    (g_want,) = torch.autograd.grad(want, logp, g)
    assert g_got.dtype == dtype
    torch.testing.assert_close(g_got.float(), g_want.float(), **TOL[dtype])


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@settings(max_examples=12, deadline=None)
@given(
    shape=st.sampled_from([(7,), (3, 5), (2, 3, 4), (1, 129), (0, 4)]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
    estimator=st.sampled_from(ESTIMATORS),
    clamps=st.sampled_from([(None, None), (1.0, None), (None, 2.0), (20.0, 10.0)]),
)
def test_backend_matches_reference(
    backend: str, shape: tuple, dtype: torch.dtype, estimator: str, clamps: tuple
) -> None:
    _check_backend(backend, shape, dtype, estimator, clamps, scale=2.0)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_backend_huge_log_ratios(backend: str, estimator: str) -> None:
    # |d| up to ~50: k3 = exp(50) is finite in fp32; values agree relatively, nothing is NaN.
    dev = _device(backend)
    logp = torch.tensor([0.0, 50.0, -50.0, 3.0], device=dev, requires_grad=True)
    ref = torch.tensor([50.0, 0.0, 0.0, -45.0], device=dev)
    got = harmo.token_kl(logp, ref, estimator, backend=backend)
    want = token_kl_reference(logp, ref, estimator)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    (g_got,) = torch.autograd.grad(got.sum(), logp)
    (g_want,) = torch.autograd.grad(want.sum(), logp)
    torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_clamped_entries_have_zero_gradient(backend: str) -> None:
    dev = _device(backend)
    logp = torch.tensor([0.0, 0.0, 0.0], device=dev, requires_grad=True)
    ref = torch.tensor([30.0, 0.1, -30.0], device=dev)
    kl = harmo.token_kl(logp, ref, "k3", clamp_log_ratio=20.0, clamp_value=10.0, backend=backend)
    torch.testing.assert_close(kl, torch.tensor([10.0, math.exp(0.1) - 1.1, 10.0], device=dev))
    (g,) = torch.autograd.grad(kl.sum(), logp)
    torch.testing.assert_close(g, torch.tensor([0.0, 1.0 - math.exp(0.1), 0.0], device=dev))


def test_auto_backend_and_no_grad_path() -> None:
    logp, ref = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(harmo.token_kl(logp, ref), token_kl_reference(logp, ref))
    torch.testing.assert_close(harmo.token_kl(logp, ref, "low_var_kl"), token_kl_reference(logp, ref, "k3"))
    torch.testing.assert_close(harmo.token_kl(logp, ref, "low_var_kl+"), token_kl_reference(logp, ref, "k3+"))


def test_non_contiguous_inputs() -> None:
    logp = torch.randn(6, 4).t().requires_grad_()
    ref = torch.randn(4, 6)
    got = harmo.token_kl(logp, ref, backend="cpu")
    torch.testing.assert_close(got, token_kl_reference(logp, ref))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(estimator="k4"), "estimator"),
        (dict(clamp_log_ratio=-1.0), "clamp_log_ratio"),
        (dict(clamp_value=0.0), "clamp_value"),
        (dict(backend="nope"), "backend"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        harmo.token_kl(torch.zeros(2), torch.zeros(2), **kwargs)


def test_bad_tensors() -> None:
    with pytest.raises(ValueError, match="ref_logp"):
        harmo.token_kl(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(TypeError, match="logp"):
        harmo.token_kl(torch.zeros(2, dtype=torch.int64), torch.zeros(2))
    with pytest.raises(TypeError, match="ref_logp"):
        harmo.token_kl(torch.zeros(2), [0.0, 0.0])
    with pytest.raises(ValueError, match="device"):
        harmo.token_kl(torch.zeros(2), torch.zeros(2, device="meta"))


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("estimator", [0, 2, 3, 6])
def test_opcheck_token_kl_ops(backend: str, estimator: int) -> None:
    from harmo_fast.ops.token_kl import _token_kl_backward_op, _token_kl_op

    dev = _device(backend)
    logp = torch.randn(3, 4, device=dev, requires_grad=True)
    ref = torch.randn(3, 4, device=dev)
    torch.library.opcheck(_token_kl_op, (logp, ref, estimator, 1.5, math.inf, backend))
    grad = torch.randn(3, 4, device=dev)
    torch.library.opcheck(_token_kl_backward_op, (grad, logp.detach(), ref, estimator, 1.5, math.inf, backend))
