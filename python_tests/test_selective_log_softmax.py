"""selective_log_softmax: the reference against hand-computed values and gradcheck, every runnable
fused backend against the reference (values, entropy, gradients, dtypes, layouts, in-place
backward), errors, large row counts and offsets beyond 2^31 elements, torch.library.opcheck of every
custom op on every backend present, torch.compile."""

from __future__ import annotations

import math

import pytest
import torch

import harmo_fast as harmo
from harmo_fast import _dispatch
from harmo_fast.ops.selective_log_softmax import selective_log_softmax_reference as reference

FUSED = [b for b in ("cpu", "triton") if _dispatch.available_backends()[b].startswith("available")]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# fp32 kernels differ from the reference only by summation order / 1/tau multiplication; half
# precision gradients are rounded to the logits' dtype (and compared relative to their scale).
TOL = {torch.float32: 2e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}


def _logits(shape, dtype, scale=3.0):
    return (torch.randn(shape) * scale).to(dtype)


def _close(actual, expected, rel, what):
    actual, expected = actual.double(), expected.double()
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item() / scale
    assert err <= rel, f"{what}: max error {err:.3g} (relative to scale {scale:.3g}) > {rel}"


def _run(backend, logits, index, temperature, with_entropy, g, gh, **kw):
    """Values and d(logits) of sum(g * logp + gh * entropy)."""
    x = logits.detach().clone().requires_grad_()
    if with_entropy:
        logp, ent = harmo.selective_log_softmax(x, index, temperature, return_entropy=True, backend=backend, **kw)
        loss = (logp * g).sum() + (ent * gh).sum()
    else:
        logp, ent = harmo.selective_log_softmax(x, index, temperature, backend=backend, **kw), None
        loss = (logp * g).sum()
    (grad,) = torch.autograd.grad(loss, x)
    return logp, ent, grad


# ---------------------------------------------------------------------------------------------
# The reference
# ---------------------------------------------------------------------------------------------
def test_reference_hand_values():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, -math.inf, 0.0]])
    logp, ent = reference(logits, torch.tensor([2, 1]), temperature=2.0, return_entropy=True)
    # Row 0: uniform over 4. Row 1 with tau=2: x = [1, 0, -inf, 0], Z = e + 2.
    z = math.e + 2
    assert logp.tolist() == pytest.approx([-math.log(4), -math.log(z)], abs=1e-6)
    p = [math.e / z, 1 / z, 1 / z]
    h1 = -sum(q * math.log(q) for q in p)
    assert ent.tolist() == pytest.approx([math.log(4), h1], abs=1e-6)
    assert logp.dtype == torch.float32


def test_reference_gradcheck_float64():
    logits = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 6, (2, 3))

    def f(z):
        logp, ent = reference(z, index, 0.8, return_entropy=True)
        return logp, ent

    assert torch.autograd.gradcheck(f, (logits,))


def test_reference_gradient_formula():
    """dz = g/tau (1[v=y] - p) + h/tau * p (lse - H - x): the formula the kernels implement."""
    z = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    y, tau = torch.randint(0, 9, (4,)), 1.7
    g, h = torch.randn(4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    logp, ent = reference(z, y, tau, return_entropy=True)
    (grad,) = torch.autograd.grad((logp * g + ent * h).sum(), z)
    x = z.detach() / tau
    p = x.softmax(-1)
    lse = x.logsumexp(-1, keepdim=True)
    onehot = torch.nn.functional.one_hot(y, 9).double()
    expected = g[:, None] / tau * (onehot - p) + h[:, None] / tau * p * (lse - ent.detach()[:, None] - x)
    torch.testing.assert_close(grad, expected)


# ---------------------------------------------------------------------------------------------
# Fused backends against the reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_matches_reference(backend, dtype, temperature):
    shape = (2, 3, 37) if backend == "triton" else (3, 5, 301)
    logits = _logits(shape, dtype)
    index = torch.randint(0, shape[-1], shape[:-1])
    g, gh = torch.randn(shape[:-1]), torch.randn(shape[:-1])
    lp, ent, grad = _run(backend, logits, index, temperature, True, g, gh)
    lp_r, ent_r, grad_r = _run("torch", logits, index, temperature, True, g, gh)
    assert lp.dtype == ent.dtype == torch.float32 and lp.shape == index.shape
    assert grad.dtype == dtype and grad.shape == logits.shape
    _close(lp, lp_r, 1e-5, "logp")
    _close(ent, ent_r, 1e-5, "entropy")
    _close(grad, grad_r, TOL[dtype], "grad")


@pytest.mark.parametrize("backend", FUSED)
def test_logp_only_and_entropy_only_gradients(backend):
    logits = _logits((6, 53), torch.float32)
    index = torch.randint(0, 53, (6,))
    g = torch.randn(6)
    lp, _, grad = _run(backend, logits, index, 1.3, False, g, None)
    lp_r, _, grad_r = _run("torch", logits, index, 1.3, False, g, None)
    _close(lp, lp_r, 1e-5, "logp")
    _close(grad, grad_r, 2e-5, "grad (logp only)")
    zero = torch.zeros(6)
    _, _, grad = _run(backend, logits, index, 1.3, True, zero, g)
    _, _, grad_r = _run("torch", logits, index, 1.3, True, zero, g)
    _close(grad, grad_r, 2e-5, "grad (entropy only)")


@pytest.mark.parametrize("backend", FUSED)
def test_strided_layouts_and_masked_vocab(backend):
    """TRL-style slice logits[:, :-1] (no copy), a transposed leading layout (copied) and -inf logits."""
    full = _logits((2, 6, 40), torch.float32)
    full[0, 1, :7] = -math.inf
    views = [full[:, :-1], full.transpose(0, 1)[1:4], full[1, ::2]]
    for logits in views:
        index = torch.randint(7, 40, logits.shape[:-1])
        g, gh = torch.randn(index.shape), torch.randn(index.shape)
        lp, ent, grad = _run(backend, logits, index, 0.9, True, g, gh)
        lp_r, ent_r, grad_r = _run("torch", logits, index, 0.9, True, g, gh)
        assert torch.isfinite(grad).all() and torch.isfinite(ent).all()
        _close(lp, lp_r, 1e-5, "logp")
        _close(ent, ent_r, 1e-5, "entropy")
        _close(grad, grad_r, 2e-5, "grad")


@pytest.mark.parametrize("backend", FUSED)
def test_int32_index_vocab_one_and_empty(backend):
    logits = _logits((4, 11), torch.float32)
    index = torch.randint(0, 11, (4,), dtype=torch.int32)
    torch.testing.assert_close(harmo.selective_log_softmax(logits, index, backend=backend), reference(logits, index))
    one = torch.randn(3, 1)
    assert harmo.selective_log_softmax(one, torch.zeros(3, dtype=torch.long), backend=backend).abs().max() == 0
    empty = torch.randn(0, 5, requires_grad=True)
    out = harmo.selective_log_softmax(empty, torch.zeros(0, dtype=torch.long), backend=backend)
    out.sum().backward()
    assert out.shape == (0,) and empty.grad.shape == (0, 5)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inplace_backward(backend, dtype):
    base = _logits((3, 4, 29), dtype).requires_grad_()
    index = torch.randint(0, 29, (3, 4))
    g, gh = torch.randn(3, 4), torch.randn(3, 4)
    logits = base * 1.0  # a non-leaf, like the output of an LM head
    lp, ent = harmo.selective_log_softmax(
        logits, index, 0.8, return_entropy=True, inplace_backward=True, backend=backend
    )
    (grad,) = torch.autograd.grad((lp * g + ent * gh).sum(), logits)
    assert grad.data_ptr() == logits.data_ptr(), "the gradient must live in the logits buffer"
    _, _, grad_r = _run("torch", base.detach(), index, 0.8, True, g, gh)
    _close(grad, grad_r, TOL[dtype], "in-place grad")


@pytest.mark.parametrize("backend", FUSED)
def test_inplace_backward_refuses_unsafe_logits(backend):
    leaf = torch.randn(2, 9, requires_grad=True)
    index = torch.randint(0, 9, (2,))
    with pytest.raises(ValueError, match="inplace_backward"):
        harmo.selective_log_softmax(leaf, index, inplace_backward=True, backend=backend)
    # tanh saves its output for its backward: overwriting it must be caught by autograd.
    logits = torch.tanh(leaf)
    lp = harmo.selective_log_softmax(logits, index, inplace_backward=True, backend=backend)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        lp.sum().backward()


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", *FUSED])
def test_bad_arguments(backend):
    logits, index = torch.randn(2, 3, 5), torch.randint(0, 5, (2, 3))
    f = harmo.selective_log_softmax
    with pytest.raises(TypeError, match="logits"):
        f(logits.double(), index, backend=backend)
    with pytest.raises(TypeError, match="logits"):
        f(logits.long(), index, backend=backend)
    with pytest.raises(TypeError, match="index"):
        f(logits, index.float(), backend=backend)
    with pytest.raises(ValueError, match="index"):
        f(logits, index[:, :2], backend=backend)
    with pytest.raises(ValueError, match="logits"):
        f(torch.randn(2, 0), torch.zeros(2, dtype=torch.long), backend=backend)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="temperature"):
            f(logits, index, temperature=bad, backend=backend)
    with pytest.raises(TypeError, match="temperature"):
        f(logits, index, temperature=True, backend=backend)
    with pytest.raises(ValueError, match="device"):
        f(logits, index.to("meta"), backend=backend)


@pytest.mark.parametrize("backend", FUSED)
def test_out_of_range_index(backend):
    logits = torch.randn(2, 3, 5)
    for bad in (5, -1):
        index = torch.zeros(2, 3, dtype=torch.long)
        index[1, 2] = bad
        with pytest.raises(IndexError, match=rf"index must lie in \[0, 5\), found {bad}"):
            harmo.selective_log_softmax(logits, index, backend=backend)


# ---------------------------------------------------------------------------------------------
# Scale: many rows, offsets beyond 2^31 elements
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif("cpu" not in FUSED, reason="compiled CPU core not built")
def test_more_than_65536_rows():
    logits = _logits((70_000, 8), torch.float32)
    index = torch.randint(0, 8, (70_000,))
    g = torch.randn(70_000)
    lp, _, grad = _run("cpu", logits, index, 1.0, False, g, None)
    lp_r, _, grad_r = _run("torch", logits, index, 1.0, False, g, None)
    _close(lp, lp_r, 1e-5, "logp")
    _close(grad, grad_r, 2e-5, "grad")


@pytest.mark.skipif("cpu" not in FUSED, reason="compiled CPU core not built")
def test_row_offsets_beyond_int32():
    """Row 1 starts 2^31 + 8 elements after row 0: only int64 offsets reach it. The storage is a
    4 GiB bf16 reservation of which only two rows are touched (Linux commits pages lazily)."""
    vocab, gap = 8, 2**31 + 8
    try:
        storage = torch.empty(gap + vocab, dtype=torch.bfloat16)
    except RuntimeError as exc:  # e.g. strict overcommit: cannot reserve the address space
        pytest.skip(f"cannot reserve 4 GiB of address space here: {exc}")
    storage.requires_grad_()
    logits = storage.as_strided((2, vocab), (gap, 1))
    values = _logits((2, vocab), torch.bfloat16)
    with torch.no_grad():
        logits.copy_(values)
    index = torch.tensor([3, 6])
    g = torch.tensor([1.0, -2.0])
    expected = reference(values, index)
    (grad_r,) = torch.autograd.grad((reference(values.requires_grad_(), index) * g).sum(), values)
    lp = harmo.selective_log_softmax(logits, index, backend="cpu")
    torch.testing.assert_close(lp, expected)
    (grad,) = torch.autograd.grad((lp * g).sum(), logits)
    torch.testing.assert_close(grad, grad_r)
    lp = harmo.selective_log_softmax(logits, index, inplace_backward=True, backend="cpu")
    (grad,) = torch.autograd.grad((lp * g).sum(), logits)
    torch.testing.assert_close(storage.detach()[gap : gap + vocab], grad_r[1])


# ---------------------------------------------------------------------------------------------
# torch.compile / custom-op registration
# ---------------------------------------------------------------------------------------------
OPCHECK_BACKENDS = ["cpu", "triton", "cuda"]
# Logits layouts the kernels read as is, or copy (a strided vocabulary dimension, leading
# dimensions that do not collapse to two): the gradient's layout follows, and so must the fakes.
OPCHECK_LAYOUTS = {
    "contiguous": lambda: _logits((2, 3, 9), torch.float32),
    "strided_vocab": lambda: _logits((3, 9, 2), torch.float32).transpose(-1, -2),
    "uncollapsible": lambda: _logits((2, 3, 4, 9), torch.float32).permute(2, 0, 1, 3),
}
# (layout, with d logp, with d entropy): every layout with both upstream gradients, and each alone.
OPCHECK_BACKWARD_CASES = [(layout, True, True) for layout in OPCHECK_LAYOUTS] + [
    ("contiguous", True, False),
    ("contiguous", False, True),
]


def _opcheck_device(backend: str) -> torch.device:
    """The device this backend's kernels take tensors on here; skips when it is unavailable."""
    status = _dispatch.available_backends()[backend]
    if not status.startswith("available"):
        pytest.skip(f"backend {backend!r}: {status}")
    on_cpu = backend == "cpu" or (backend == "triton" and _dispatch.triton_interpreting())
    return torch.device("cpu" if on_cpu else "cuda")


@pytest.mark.parametrize("backend", OPCHECK_BACKENDS)
@pytest.mark.parametrize("layout", OPCHECK_LAYOUTS)
def test_opcheck_forward(backend, layout):
    device = _opcheck_device(backend)
    logits = OPCHECK_LAYOUTS[layout]().to(device).requires_grad_()
    index = torch.randint(0, logits.shape[-1], logits.shape[:-1], device=device)
    op = torch.ops.harmo_fast.selective_log_softmax.default
    for return_entropy, inplace_backward in ((True, False), (False, False), (True, True)):
        torch.library.opcheck(op, (logits, index, 0.7, return_entropy, inplace_backward, backend))


@pytest.mark.parametrize("backend", OPCHECK_BACKENDS)
@pytest.mark.parametrize(("layout", "with_logp", "with_entropy"), OPCHECK_BACKWARD_CASES)
def test_opcheck_backward(backend, layout, with_logp, with_entropy):
    """Both backward ops: the out-of-place one and the in-place one that writes over the logits."""
    device = _opcheck_device(backend)
    logits = OPCHECK_LAYOUTS[layout]().to(device)
    index = torch.randint(0, logits.shape[-1], logits.shape[:-1], device=device)
    _, entropy, lse = torch.ops.harmo_fast.selective_log_softmax(logits, index, 0.7, True, False, backend)
    grad_logp = torch.randn(index.shape, device=device) if with_logp else None
    grad_entropy = torch.randn(index.shape, device=device) if with_entropy else None
    args = (grad_logp, grad_entropy, logits, index, lse, entropy if with_entropy else None, 0.7, backend)
    torch.library.opcheck(torch.ops.harmo_fast.selective_log_softmax_backward.default, args)
    torch.library.opcheck(torch.ops.harmo_fast.selective_log_softmax_backward_.default, args)


@pytest.mark.skipif("cpu" not in FUSED, reason="compiled CPU core not built")
@pytest.mark.parametrize("inplace", [False, True])
def test_torch_compile_fullgraph_matches_eager(inplace):
    def step(z, y):
        logits = z * 1.5  # non-leaf, so the in-place backward may overwrite it
        logp, ent = harmo.selective_log_softmax(
            logits, y, 0.9, return_entropy=True, inplace_backward=inplace, backend="cpu"
        )
        return (logp * 2.0).sum() - ent.mean()

    logits = _logits((2, 4, 23), torch.float32)
    index = torch.randint(0, 23, (2, 4))
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    outs = []
    for f in (step, compiled):
        z = logits.clone().requires_grad_()
        loss = f(z, index)
        loss.backward()
        outs.append((loss.detach(), z.grad))
    torch.testing.assert_close(outs[0], outs[1])
