"""linear_grpo_loss: every runnable fused backend against grpo_loss(linear_log_probs(...)) by the torch
reference (loss, metrics, d hidden, d weight) over the options of grpo_loss, temperatures, chunk
sizes that split rows, padding and dtypes; the chunk planner; no (N*T, V) allocation; the
backward's grad_output scaling; torch.library.opcheck of both custom ops; torch.compile; errors."""

from __future__ import annotations

import pytest
import torch
from alloc_probe import LargestAllocation

import harmo_fast as harmo
from harmo_fast._dispatch import available_backends
from harmo_fast.ops import grpo_loss as gl
from harmo_fast.ops.linear_grpo_loss import (
    METRICS,
    Chunk,
    _linear_grpo_loss_op,
    _scale_op,
    linear_grpo_loss,
    linear_grpo_loss_reference,
    plan_chunks,
)
from harmo_fast.ops.linear_log_probs import linear_log_probs_reference

FUSED = [b for b in ("cpu", "triton", "cuda") if available_backends()[b].startswith("available")]


def _device(backend: str) -> str:
    return "cuda" if backend == "cuda" or (backend == "triton" and torch.cuda.is_available()) else "cpu"


def _problem(n=3, t=7, size=8, vocab=21, dtype=torch.float32, adv_tok=False, device="cpu"):
    """Inputs with right padding, a fully masked row and one hole inside a row."""
    hidden = torch.randn(n, t, size).to(dtype)
    weight = (torch.randn(vocab, size) * size**-0.5 * 2).to(dtype)
    ids = torch.randint(0, vocab, (n, t))
    with torch.no_grad():
        logp = linear_log_probs_reference(hidden, weight, ids)
    old = logp + 0.3 * torch.randn(n, t)
    ref = logp + 0.4 * torch.randn(n, t)
    adv = torch.randn((n, t) if adv_tok else (n,))
    mask = torch.arange(t)[None, :] < torch.randint(1, t + 1, (n,))[:, None]
    mask[:1, : min(t, 2)] = True
    if n > 1:
        mask[1] = False
    if t > 3:
        mask[:1, 1] = False
    return tuple(x.to(device) for x in (hidden, weight, ids, old, adv, mask, ref))


def _run(backend, hidden, weight, ids, old, adv, mask, ref, w=None, **kw):
    """(loss, metrics, d hidden, d weight) of one call with fresh leaves."""
    h = hidden.detach().clone().requires_grad_()
    wt = weight.detach().clone().requires_grad_()
    loss, metrics = linear_grpo_loss(h, wt, ids, old, adv, mask, ref, w, backend=backend, **kw)
    gh, gw = torch.autograd.grad(loss, (h, wt))
    return loss, metrics, gh, gw


def _close(actual, expected, rel, what):
    actual, expected = actual.double(), expected.double()
    scale = max(1e-3, expected.abs().max().item())
    err = (actual - expected).abs().max().item() / scale
    assert err <= rel, f"{what}: max error {err:.3g} (relative to scale {scale:.3g}) > {rel}"


def _compare(backend, args, w=None, rel=2e-5, **kw):
    kw.setdefault("entropy_metric", True)
    got = _run(backend, *args, w, **kw)
    cpu = lambda x: None if x is None else x.cpu()  # noqa: E731
    want = _run("torch", *map(cpu, args), cpu(w), **kw)
    assert got[0].dtype == torch.float32 and got[0].dim() == 0
    assert set(got[1]) == set(want[1]) == set(METRICS if kw["entropy_metric"] else gl.METRICS)
    _close(got[0], want[0], rel, "loss")
    for k in want[1]:
        assert not got[1][k].requires_grad and got[1][k].dim() == 0
        _close(got[1][k], want[1][k], rel, k)
    for name, g, g_want in zip(("hidden", "weight"), got[2:], want[2:]):
        assert g.dtype == g_want.dtype and g.shape == g_want.shape
        _close(g, g_want, rel if g.dtype == torch.float32 else 3e-2, f"grad {name}")


def test_reference_is_grpo_loss_of_linear_log_probs_and_gradchecks():
    hidden, weight, ids, old, adv, mask, ref = _problem(2, 4, 3, 6, dtype=torch.float64)
    kw = dict(beta=0.1, loss_agg="seq_mean_token_mean", ratio_level="sequence")
    loss, _ = linear_grpo_loss_reference(hidden, weight, ids, old.double(), adv, mask, ref.double(), **kw)
    logp = linear_log_probs_reference(hidden, weight, ids)
    want, _ = gl.grpo_loss_reference(logp, old.double(), adv, mask, ref.double(), **kw)
    torch.testing.assert_close(loss, want)
    leaves = (hidden.requires_grad_(), weight.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda h, w: linear_grpo_loss_reference(h, w, ids, old.double(), adv, mask, ref.double(), **kw)[0], leaves
    )


# Every grpo_loss option, each at least once; the compiled CPU core runs every case at several
# chunk sizes (1 token, rows split in two, several rows per chunk), the Triton interpreter a few.
OPTION_CASES = {
    "defaults": {},
    "token_sum_k1_t0.7": dict(loss_agg="token_sum", beta=0.05, kl_estimator="k1", temperature=0.7),
    "seq_mean_token_mean_eps_high": dict(loss_agg="seq_mean_token_mean", eps_high=0.28, beta=0.1),
    "seq_mean_token_sum_k2": dict(loss_agg="seq_mean_token_sum", beta=0.1, kl_estimator="k2"),
    "seq_mean_token_sum_norm_dual_clip": dict(loss_agg="seq_mean_token_sum_norm", delta=1.1, eps_low=0.05),
    "grpo_bias_corrected": dict(loss_agg="grpo", beta=0.2, kl_bias_corrected=True),
    "dr_grpo_clamps": dict(
        loss_agg="dr_grpo", normalizer=9.0, beta=0.1, kl_estimator="k3+", kl_clamp_log_ratio=0.3, kl_clamp_value=0.2
    ),
    "luspo_sequence": dict(loss_agg="luspo", ratio_level="sequence", beta=0.1, temperature=1.3),
    "dapo_abs": dict(loss_agg="dapo", normalizer=5.0, beta=0.1, kl_estimator="abs"),
    "token_mean_normalizer_sequence_bias": dict(
        normalizer=4.0, ratio_level="sequence", beta=0.1, kl_bias_corrected=True, eps_low=0.05
    ),
    "grpo_sequence_per_row_count": dict(loss_agg="grpo", ratio_level="sequence", eps_low=0.05),
}
TRITON_CASES = ("defaults", "grpo_bias_corrected", "luspo_sequence")


def _cases():
    for backend in FUSED:
        for name in OPTION_CASES if backend != "triton" else TRITON_CASES:
            for chunk in (1, 4, 64) if backend != "triton" else (4,):
                yield backend, name, chunk


@pytest.mark.parametrize(("backend", "case", "chunk_size"), list(_cases()))
def test_matches_reference_every_option(backend, case, chunk_size):
    args = _problem(device=_device(backend))
    _compare(backend, args, chunk_size=chunk_size, **OPTION_CASES[case])


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("w_shape", ["row", "row1", "token"])
def test_per_token_advantages_importance_weights_and_on_policy(backend, w_shape):
    dev = _device(backend)
    hidden, weight, ids, old, adv, mask, ref = _problem(adv_tok=True, device=dev)
    w = torch.rand({"row": (3,), "row1": (3, 1), "token": (3, 7)}[w_shape], device=dev) + 0.5
    _compare(backend, (hidden, weight, ids, old, adv, mask, ref), w, chunk_size=4, beta=0.1)
    _compare(backend, (hidden, weight, ids, None, adv, mask, ref), w, chunk_size=3, ratio_level="sequence")


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("mask_dtype", [torch.uint8, torch.int64, torch.float32])
def test_mask_dtypes_and_fractional_weights(backend, mask_dtype):
    hidden, weight, ids, old, adv, mask, ref = _problem(device=_device(backend))
    m = mask.to(mask_dtype)
    if mask_dtype == torch.float32:
        m = m * torch.rand(m.shape, device=m.device)
    _compare(backend, (hidden, weight, ids, old, adv, m, ref), chunk_size=5, loss_agg="seq_mean_token_mean", beta=0.1)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_parameters(backend, dtype):
    # The reference's logits are rounded to the parameters' dtype as the kernels' are; the
    # gradients go through half-precision d(logits) and matmuls, hence the looser tolerance.
    args = _problem(n=4, t=6, size=16, vocab=40, dtype=dtype, device=_device(backend))
    _compare(backend, args, rel=2e-2, chunk_size=5, beta=0.1)


@pytest.mark.parametrize("backend", FUSED)
def test_empty_batch_and_all_masked_rows_give_zero(backend):
    hidden, weight, ids, old, adv, mask, ref = _problem(device=_device(backend))
    mask = torch.zeros_like(mask)
    loss, metrics, gh, gw = _run(backend, hidden, weight, ids, old, adv, mask, ref, beta=0.1)
    assert loss.item() == 0.0 and all(v.item() == 0.0 for v in metrics.values())
    assert not gh.any() and not gw.any()
    args = _problem(n=0, device=_device(backend))
    loss, _, gh, gw = _run(backend, *args)
    assert loss.item() == 0.0 and gh.shape == (0, 7, 8) and not gw.any()


@pytest.mark.parametrize("backend", FUSED)
def test_partial_gradients_no_grad_and_grad_output_scaling(backend):
    hidden, weight, ids, old, adv, mask, ref = _problem(device=_device(backend))
    _, _, gh_want, gw_want = _run("torch", hidden, weight, ids, old, adv, mask, ref, beta=0.1)
    h = hidden.clone().requires_grad_()
    loss, _ = linear_grpo_loss(h, weight, ids, old, adv, mask, ref, beta=0.1, chunk_size=3, backend=backend)
    (-2.5 * loss).backward()
    _close(h.grad, -2.5 * gh_want, 2e-5, "grad hidden")
    w = weight.clone().requires_grad_()
    loss, _ = linear_grpo_loss(hidden, w, ids, old, adv, mask, ref, beta=0.1, chunk_size=3, backend=backend)
    (loss * 3.0).backward()
    _close(w.grad, 3.0 * gw_want, 2e-5, "grad weight")
    with torch.no_grad():
        lossless, _ = linear_grpo_loss(
            hidden.requires_grad_(), weight, ids, old, adv, mask, ref, beta=0.1, backend=backend
        )
    _close(lossless, loss, 1e-6, "loss without gradient")


@pytest.mark.parametrize("backend", FUSED)
def test_second_backward_through_the_same_graph_raises(backend):
    hidden, weight, ids, old, adv, mask, ref = _problem(device=_device(backend))
    h = hidden.clone().requires_grad_()
    loss, _ = linear_grpo_loss(h, weight, ids, old, adv, mask, ref, backend=backend)
    (2.0 * loss).backward(retain_graph=True)  # scales the saved gradients in place
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_plan_chunks_covers_each_rows_masked_prefix_once():
    lengths = [5, 0, 3, 7, 7, 2, 1, 1, 1]
    for tokens in (1, 2, 3, 6, 8, 100):
        for whole in (False, True):
            chunks = plan_chunks(lengths, tokens, whole)
            seen = [[0] * 7 for _ in lengths]
            for c in chunks:
                assert c.r1 > c.r0 and c.t1 > c.t0
                if whole:
                    assert c.t0 == 0
                if not whole or c.r1 - c.r0 > 1:
                    assert (c.r1 - c.r0) * (c.t1 - c.t0) <= tokens
                for r in range(c.r0, c.r1):
                    for t in range(c.t0, c.t1):
                        seen[r][t] += 1
            for r, length in enumerate(lengths):
                assert all(seen[r][t] == 1 for t in range(length)), (tokens, whole, r)
    assert plan_chunks([4, 4, 4, 4], 8, False) == [Chunk(0, 2, 0, 4), Chunk(2, 4, 0, 4)]
    assert plan_chunks([0, 0], 8, False) == []


@pytest.mark.parametrize("backend", FUSED[:1])  # the chunking is backend-independent Python
def test_never_allocates_the_full_logits(backend):
    n, t, size, vocab = 6, 16, 8, 50
    hidden, weight, ids, old, adv, mask, ref = _problem(n, t, size, vocab)
    h, w = hidden.requires_grad_(), weight.requires_grad_()
    with LargestAllocation() as seen:
        loss, _ = linear_grpo_loss(h, w, ids, old, adv, mask, ref, beta=0.1, chunk_size=8, backend=backend)
        loss.backward()
    assert seen.largest <= max(8 * vocab, vocab * size, n * t * size)


@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("need_grad", [True, False])
def test_opcheck_linear_grpo_loss_op(backend, need_grad):
    hidden, weight, ids, old, adv, mask, ref = _problem(device=_device(backend))
    settings = gl.GrpoSettings(0.8, 1.28, 3.0, 0.1, 2, 20.0, 10.0, True, False, 3.0, True, False, True)
    w = torch.rand(3, device=hidden.device) + 0.5
    h = hidden.requires_grad_(need_grad)
    args = (h, weight, ids, old, adv, mask, ref, w, settings.as_floats(), 0.9, True, 4, backend, need_grad, False, True)
    # As for grpo_loss: with a gradient the backward scales returned outputs in place, which the
    # AOT test would return from its graph; real use drops them (the compile test covers it).
    tests = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(
        _linear_grpo_loss_op, args, test_utils=tests if need_grad else (*tests, "test_aot_dispatch_dynamic")
    )


@pytest.mark.parametrize("backend", FUSED)
def test_return_logp_gives_the_masked_log_probs(backend):
    hidden, weight, ids, old, adv, mask, ref = _problem(device=_device(backend))
    h = hidden.clone().requires_grad_()
    loss, metrics, logp = linear_grpo_loss(
        h, weight, ids, old, adv, mask, ref, chunk_size=4, return_logp=True, backend=backend
    )
    want_loss, want_metrics, want_logp = linear_grpo_loss_reference(
        hidden.cpu(), weight.cpu(), ids.cpu(), old.cpu(), adv.cpu(), mask.cpu(), ref.cpu(), return_logp=True
    )
    assert logp.shape == ids.shape and logp.dtype == torch.float32 and not logp.requires_grad
    on = mask.cpu()
    _close(logp.cpu()[on], want_logp[on], 2e-5, "logp")
    _close(loss.detach().cpu(), want_loss, 2e-5, "loss")
    assert set(metrics) == set(want_metrics)
    loss.backward()  # the extra output does not disturb the backward
    assert h.grad is not None and torch.isfinite(h.grad).all()


def test_opcheck_scale_op():
    torch.library.opcheck(_scale_op, (torch.randn(2, 3, 4), torch.randn(5, 4), torch.tensor(0.5)))
    torch.library.opcheck(_scale_op, (torch.randn(0), torch.randn(5, 4, dtype=torch.bfloat16), torch.tensor(2.0)))


def test_torch_compile_fullgraph_matches_eager():
    hidden, weight, ids, old, adv, mask, ref = _problem()

    def step(h, w):
        loss, metrics = linear_grpo_loss(h * 1.0, w, ids, old, adv, mask, ref, beta=0.05, chunk_size=4, backend="cpu")
        return loss, metrics["kl_mean"]

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    leaves = [[t.detach().clone().requires_grad_() for t in (hidden, weight)] for _ in range(2)]
    l1, k1 = step(*leaves[0])
    l2, k2 = compiled(*leaves[1])
    l1.backward()
    l2.backward()
    torch.testing.assert_close(l2, l1)
    torch.testing.assert_close(k2, k1)
    for a, b in zip(leaves[0], leaves[1]):
        torch.testing.assert_close(b.grad, a.grad)


# --- bad input


def _good():
    hidden, weight, ids, old, adv, mask, ref = _problem()
    return dict(hidden=hidden, weight=weight, ids=ids, old_logp=old, advantages=adv, mask=mask, ref_logp=ref)


@pytest.mark.parametrize(
    ("change", "exc", "match"),
    [
        (dict(hidden=torch.randn(21, 8)), ValueError, "hidden must be 3-D"),
        (dict(weight=torch.randn(21, 5)), ValueError, r"weight must have shape \(V, 8\)"),
        (dict(weight=torch.randn(21, 8, dtype=torch.bfloat16)), TypeError, "weight dtype"),
        (dict(ids=torch.zeros(3, 6, dtype=torch.int64)), ValueError, "ids must have shape"),
        (dict(ids=torch.zeros(3, 7)), TypeError, "ids must have dtype"),
        (dict(ids=torch.full((3, 7), 21)), IndexError, r"ids must lie in \[0, 21\)"),
        (dict(old_logp=torch.zeros(3, 6)), ValueError, "linear_grpo_loss: old_logp must have shape"),
        (dict(advantages=torch.zeros(4)), ValueError, "linear_grpo_loss: advantages must have shape"),
        (dict(advantages=torch.tensor([0.0, float("nan"), 1.0])), ValueError, "advantages contains NaN"),
        (dict(ref_logp=None, beta=0.1), ValueError, "beta > 0 needs ref_logp"),
        (dict(loss_agg="dapo"), ValueError, "needs normalizer"),
        (dict(temperature=0.0), ValueError, "temperature must be finite and > 0"),
        (dict(chunk_size=0), ValueError, "chunk_size must be None or an int >= 1"),
        (dict(backend="nope"), ValueError, "backend must be one of"),
    ],
)
def test_bad_arguments_raise_naming_them(change, exc, match):
    kw = _good() | change
    kw.setdefault("backend", "cpu" if "cpu" in FUSED else "torch")
    with pytest.raises(exc, match=match):
        linear_grpo_loss(**kw)


def test_public_name():
    assert harmo.linear_grpo_loss is linear_grpo_loss
