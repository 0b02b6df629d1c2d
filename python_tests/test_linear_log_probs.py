"""linear_log_probs: every runnable fused backend against the unchunked reference (values, entropy,
gradients for hidden / weight / bias, dtypes, chunk sizes that do not divide N), partial
gradients, no tensor of size N x V ever allocated, errors, torch.library.opcheck of both custom ops
on every backend present, torch.compile."""

from __future__ import annotations

import pytest
import torch
from alloc_probe import LargestAllocation

import harmo_fast as harmo
from harmo_fast import _dispatch
from harmo_fast.ops import _logprob_tiles as tiles
from harmo_fast.ops.linear_log_probs import linear_log_probs_reference as reference
from harmo_fast.ops.selective_log_softmax import selective_log_softmax_reference

FUSED = [b for b in ("cpu", "triton") if _dispatch.available_backends()[b].startswith("available")]
TOL = {torch.float32: 2e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}


def _problem(lead, size, vocab, dtype, with_bias=True):
    hidden = torch.randn(*lead, size).to(dtype)
    weight = (torch.randn(vocab, size) / size**0.5 * 2).to(dtype)
    bias = torch.randn(vocab).to(dtype) if with_bias else None
    index = torch.randint(0, vocab, lead)
    return hidden, weight, bias, index


def _close(actual, expected, rel, what):
    actual, expected = actual.double(), expected.double()
    scale = max(1e-3, expected.abs().max().item())
    err = (actual - expected).abs().max().item() / scale
    assert err <= rel, f"{what}: max error {err:.3g} (relative to scale {scale:.3g}) > {rel}"


def _run(backend, hidden, weight, bias, index, temperature, g, gh, **kw):
    """(logp, entropy, grads of sum(g*logp + gh*entropy) w.r.t. hidden, weight[, bias])."""
    leaves = [t.detach().clone().requires_grad_() for t in (hidden, weight) + ((bias,) if bias is not None else ())]
    b = leaves[2] if bias is not None else None
    logp, ent = harmo.linear_log_probs(
        leaves[0], leaves[1], index, b, temperature=temperature, return_entropy=True, backend=backend, **kw
    )
    grads = torch.autograd.grad((logp * g).sum() + (ent * gh).sum(), leaves)
    return logp, ent, grads


def test_reference_is_selective_log_softmax_of_the_logits():
    hidden, weight, bias, index = _problem((5,), 8, 13, torch.float64)
    logp, ent = reference(hidden, weight, index, bias, 0.7, return_entropy=True)
    lp_r, ent_r = selective_log_softmax_reference(hidden @ weight.T + bias, index, 0.7, return_entropy=True)
    torch.testing.assert_close(logp, lp_r)
    torch.testing.assert_close(ent, ent_r)


def test_reference_gradcheck_float64():
    hidden, weight, bias, index = _problem((4,), 3, 6, torch.float64)
    args = tuple(t.requires_grad_() for t in (hidden, weight, bias))
    assert torch.autograd.gradcheck(lambda h, w, b: reference(h, w, index, b, 1.3, return_entropy=True), args)


# The Triton interpreter is slow: it runs one chunking pattern, the compiled CPU core all three.
CASES = [(b, c) for b in FUSED for c in ((1, 4, 64) if b == "cpu" else (4,))]


@pytest.mark.parametrize(("backend", "chunk_size"), CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_matches_reference(backend, chunk_size, dtype):
    lead = (3, 7)  # 21 tokens: chunks of 4 leave a remainder, 64 is one partial chunk
    hidden, weight, bias, index = _problem(lead, 16, 45, dtype)
    g, gh = torch.randn(lead), torch.randn(lead)
    lp, ent, grads = _run(backend, hidden, weight, bias, index, 0.8, g, gh, chunk_size=chunk_size)
    lp_r, ent_r, grads_r = _run("torch", hidden, weight, bias, index, 0.8, g, gh)
    assert lp.dtype == ent.dtype == torch.float32 and lp.shape == lead
    value_tol = 1e-5 if dtype == torch.float32 else 2e-2  # half-precision matmuls may block differently
    _close(lp, lp_r, value_tol, "logp")
    _close(ent, ent_r, value_tol, "entropy")
    for name, got, want in zip(("hidden", "weight", "bias"), grads, grads_r):
        assert got.dtype == dtype and got.shape == want.shape
        _close(got, want, TOL[dtype] if dtype == torch.float32 else 3e-2, f"grad {name}")


@pytest.mark.parametrize("backend", FUSED)
def test_no_bias_and_partial_gradients(backend):
    hidden, weight, _, index = _problem((10,), 12, 30, torch.float32, with_bias=False)
    g = torch.randn(10)
    h = hidden.clone().requires_grad_()
    logp = harmo.linear_log_probs(h, weight, index, temperature=1.5, chunk_size=3, backend=backend)  # frozen head
    (logp * g).sum().backward()
    h_r = hidden.clone().requires_grad_()
    (reference(h_r, weight, index, None, 1.5) * g).sum().backward()
    _close(logp, reference(hidden, weight, index, None, 1.5), 1e-5, "logp")
    _close(h.grad, h_r.grad, 2e-5, "grad hidden")
    w = weight.clone().requires_grad_()
    (harmo.linear_log_probs(hidden, w, index, chunk_size=7, backend=backend) * g).sum().backward()
    w_r = weight.clone().requires_grad_()
    (reference(hidden, w_r, index) * g).sum().backward()
    _close(w.grad, w_r.grad, 2e-5, "grad weight")


@pytest.mark.parametrize("backend", FUSED[:1])  # the chunking is backend-independent Python
def test_never_allocates_the_full_logits(backend):
    n, size, vocab, chunk = 96, 8, 40, 10
    hidden, weight, bias, index = _problem((n,), size, vocab, torch.float32)
    leaves = [t.requires_grad_() for t in (hidden, weight, bias)]
    with LargestAllocation() as mode:
        logp, ent = harmo.linear_log_probs(
            *leaves[:2], index, leaves[2], return_entropy=True, chunk_size=chunk, backend=backend
        )
        (logp.sum() + ent.sum()).backward()
    # The biggest things allocated: one chunk of logits, the weight gradient, hidden's gradient.
    assert mode.largest == max(chunk * vocab, vocab * size, n * size) < n * vocab
    with LargestAllocation() as mode:
        reference(*leaves[:2], index, leaves[2]).sum().backward()
    assert mode.largest >= n * vocab  # the check above can fail: the reference does hold (N, V)


def test_tile_shape_bounds_the_tile():
    assert tiles.tile_shape(4096, 32768, 4, 4096) == (4096, 1024)
    assert tiles.tile_shape(4096, 32768, 2, 4096) == (4096, 2048)
    assert tiles.tile_shape(100, 50, 4, 4096) == (100, 50)  # small problems: one tile
    assert tiles.tile_shape(10, 1 << 30, 4, 4096) == (10, (16 << 20) // 40)
    assert tiles.tile_shape(1 << 30, 8, 4, 1 << 30) == (1 << 30, 1)
    rows, cols = tiles.tile_shape(65536, 151_936, 2, 4096)
    assert rows * cols * 2 <= 16 << 20


@pytest.mark.parametrize("backend", ["torch", *FUSED])
def test_bad_arguments(backend):
    hidden, weight, bias, index = _problem((2, 3), 4, 9, torch.float32)
    f = harmo.linear_log_probs
    with pytest.raises(ValueError, match="weight"):
        f(hidden, weight[:, :3], index, backend=backend)
    with pytest.raises(ValueError, match="weight"):
        f(hidden, weight[0], index, backend=backend)
    with pytest.raises(TypeError, match="weight"):
        f(hidden, weight.bfloat16(), index, backend=backend)
    with pytest.raises(TypeError, match="hidden"):
        f(hidden.long(), weight, index, backend=backend)
    with pytest.raises(ValueError, match="bias"):
        f(hidden, weight, index, bias[:5], backend=backend)
    with pytest.raises(ValueError, match="index"):
        f(hidden, weight, index[0], backend=backend)
    with pytest.raises(ValueError, match="temperature"):
        f(hidden, weight, index, temperature=0.0, backend=backend)
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="chunk_size"):
            f(hidden, weight, index, chunk_size=bad, backend=backend)


@pytest.mark.parametrize("backend", FUSED)
def test_out_of_range_index(backend):
    hidden, weight, _, index = _problem((2, 3), 4, 9, torch.float32)
    index[0, 1] = 9
    with pytest.raises(IndexError, match=r"index must lie in \[0, 9\), found 9"):
        harmo.linear_log_probs(hidden, weight, index, backend=backend)


@pytest.mark.skipif("cpu" not in FUSED, reason="compiled CPU core not built")
def test_torch_compile_fullgraph_matches_eager():
    def step(h, w, b, y):
        logp, ent = harmo.linear_log_probs(
            h, w, y, b, temperature=0.9, return_entropy=True, chunk_size=5, backend="cpu"
        )
        return logp.sum() - 0.1 * ent.sum()

    hidden, weight, bias, index = _problem((2, 6), 8, 19, torch.float32)
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    results = []
    for f in (step, compiled):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        loss = f(*leaves, index)
        loss.backward()
        results.append((loss.detach(), *(t.grad for t in leaves)))
    torch.testing.assert_close(results[0], results[1])


OPCHECK_BACKENDS = ["cpu", "triton", "cuda"]


def _opcheck_device(backend: str) -> torch.device:
    """The device this backend's kernels take tensors on here; skips when it is unavailable."""
    status = _dispatch.available_backends()[backend]
    if not status.startswith("available"):
        pytest.skip(f"backend {backend!r}: {status}")
    on_cpu = backend == "cpu" or (backend == "triton" and _dispatch.triton_interpreting())
    return torch.device("cpu" if on_cpu else "cuda")


@pytest.mark.parametrize("backend", OPCHECK_BACKENDS)
@pytest.mark.parametrize("vocab_blocks", [1, 3])
def test_opcheck(backend, vocab_blocks, monkeypatch):
    """Both custom ops, with 7 x 3 tokens in tiles of 4 (a remainder), the vocabulary in one tile
    or in blocks of 4, a transposed hidden and a column-major weight (the gradients come back
    contiguous, and so must the fakes), with and without bias, each subset of gradients."""
    device = _opcheck_device(backend)
    vocab, tile_rows = 12, 4
    monkeypatch.setattr(tiles, "CHUNK_BYTES", tile_rows * (vocab // vocab_blocks) * 4)
    assert tiles.tile_shape(21, vocab, 4, tile_rows) == (tile_rows, vocab // vocab_blocks)
    hidden = torch.randn(3, 7, 8, device=device).transpose(0, 1)
    weight = torch.randn(8, vocab, device=device).t()
    bias = torch.randn(vocab, device=device)
    index = torch.randint(0, vocab, (7, 3), device=device)
    forward = torch.ops.harmo_fast.linear_log_probs.default
    for b, return_entropy in ((bias, True), (None, False)):
        leaves = [t.clone().requires_grad_() if t is not None else None for t in (hidden, weight, b)]
        torch.library.opcheck(forward, (*leaves, index, 0.8, return_entropy, tile_rows, backend))
    _, entropy, lse = forward(hidden, weight, bias, index, 0.8, True, tile_rows, backend)
    g = torch.randn(index.shape, device=device)
    backward = torch.ops.harmo_fast.linear_log_probs_backward.default
    for grad_logp, grad_entropy, b, needs in (
        (g, g, bias, (True, True, True)),
        (g, None, None, (True, False, False)),
        (None, g, bias, (False, True, True)),
    ):
        ent = entropy if grad_entropy is not None else None
        args = (grad_logp, grad_entropy, hidden, weight, b, index, lse, ent, 0.8, tile_rows, backend, *needs)
        torch.library.opcheck(backward, args)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_size", [4, None])
# The Triton interpreter evaluates log(0) for the -inf block in numpy, which warns.
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_tiles_split_tokens_and_vocabulary(backend, dtype, chunk_size, monkeypatch):
    """Tiles of 16 vocabulary columns: 3 blocks, the last partial, each a window in which most
    rows' targets lie outside (forward: merged online; one block's logits all -inf through the
    bias). chunk_size=4 also splits the 9 tokens (4, 4, 1), which sums the weight gradient over
    token chunks; None keeps them in one tile (written straight)."""
    rows = 4 if chunk_size else 9
    monkeypatch.setattr(tiles, "CHUNK_BYTES", 16 * rows * dtype.itemsize)
    assert tiles.tile_shape(9, 45, dtype.itemsize, chunk_size or tiles.TILE_ROWS) == (rows, 16)
    hidden, weight, bias, index = _problem((9,), 16, 45, dtype)
    bias[16:32] = float("-inf")
    index = torch.where((index >= 16) & (index < 32), index - 16, index)
    g, gh = torch.randn(9), torch.randn(9)
    lp, ent, grads = _run(backend, hidden, weight, bias, index, 0.7, g, gh, chunk_size=chunk_size)
    lp_r, ent_r, grads_r = _run("torch", hidden, weight, bias, index, 0.7, g, gh)
    rel = TOL[dtype] if dtype == torch.float32 else 3e-2
    _close(lp, lp_r, rel, "logp")
    _close(ent, ent_r, rel, "entropy")
    for name, got, want in zip(("hidden", "weight", "bias"), grads, grads_r):
        assert got.dtype == want.dtype
        _close(got, want, rel, f"grad {name}")
