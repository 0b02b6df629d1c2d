"""The eager route of grpo_loss and selective_log_softmax (a torch.autograd.Function calling the
kernels, ops/_eager_route.py) against their custom-op route (taken under any dispatch mode, and by
torch.compile): the same loss, metrics, log-probs and gradients bit for bit, on every kernel
backend; the in-place and second-backward guards hold on the eager route too."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import harmo_fast as harmo
from harmo_fast._dispatch import available_backends

# Both routes run the same Python launchers whatever the backend; Triton joins only on a GPU
# machine (the interpreter would add minutes and test nothing more).
KERNEL_BACKENDS = [
    b
    for b in ("cpu", "cuda", "triton")
    if available_backends()[b].startswith("available") and (b != "triton" or torch.cuda.is_available())
]


class _PassThrough(TorchDispatchMode):
    """A dispatch mode that changes nothing but the route: ops called under it take their custom op."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _device(backend: str) -> str:
    return "cpu" if backend == "cpu" else "cuda"


def _grpo_inputs(dtype: torch.dtype, device: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    n, t = 6, 300
    logp = (torch.randn(n, t, generator=g) * 0.5 - 1.0).to(dtype)
    old = (logp.float() + torch.randn(n, t, generator=g) * 0.3).to(dtype)
    ref = (logp.float() + torch.randn(n, t, generator=g) * 0.3).to(dtype)
    mask = torch.rand(n, t, generator=g) > 0.2
    mask[2] = False
    return dict(
        logp=logp.to(device),
        old=old.to(device),
        ref=ref.to(device),
        adv=torch.randn(n, generator=g).to(device),
        mask=mask.to(device),
        w=torch.rand(n, t, generator=g).to(device) + 0.5,
    )


def _grpo_run(x: dict, backend: str, options: dict, route) -> tuple[torch.Tensor, dict, torch.Tensor, str]:
    logp = x["logp"].clone().requires_grad_()
    with route():
        loss, metrics = harmo.grpo_loss(
            logp, x["old"], x["adv"], x["mask"], x["ref"], x["w"], backend=backend, **options
        )
    (loss * 1.7).backward()
    return loss.detach(), metrics, logp.grad, type(loss.grad_fn).__name__


GRPO_OPTIONS = [
    dict(),
    dict(beta=0.04, kl_estimator="k3", loss_agg="seq_mean_token_mean"),
    dict(beta=0.1, kl_estimator="k2+", kl_bias_corrected=True, delta=3.0, loss_agg="grpo"),
    dict(ratio_level="sequence", beta=0.02, loss_agg="dr_grpo", normalizer=512.0),
]


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("options", GRPO_OPTIONS, ids=range(len(GRPO_OPTIONS)))
def test_grpo_loss_routes_bit_identical(backend: str, dtype: torch.dtype, options: dict) -> None:
    x = _grpo_inputs(dtype, _device(backend))
    loss_a, metrics_a, grad_a, node_a = _grpo_run(x, backend, options, nullcontext)
    loss_b, metrics_b, grad_b, node_b = _grpo_run(x, backend, options, _PassThrough)
    assert node_a == "_GrpoLossFunctionBackward" and node_a != node_b  # the two routes really differ
    assert loss_a.shape == () and loss_a.dtype == torch.float32
    assert torch.equal(loss_a, loss_b)
    for name in metrics_a:
        assert torch.equal(metrics_a[name], metrics_b[name]), name
    assert grad_a.dtype == dtype
    assert torch.equal(grad_a, grad_b)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_grpo_loss_eager_route_second_backward_raises(backend: str) -> None:
    x = _grpo_inputs(torch.float32, _device(backend))
    logp = x["logp"].clone().requires_grad_()
    loss, _ = harmo.grpo_loss(logp, x["old"], x["adv"], x["mask"], backend=backend)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_grpo_loss_no_grad_matches_grad_route(backend: str) -> None:
    x = _grpo_inputs(torch.float32, _device(backend))
    with torch.no_grad():
        loss_ng, metrics_ng = harmo.grpo_loss(x["logp"], x["old"], x["adv"], x["mask"], x["ref"], backend=backend)
    logp = x["logp"].clone().requires_grad_()
    loss, metrics = harmo.grpo_loss(logp, x["old"], x["adv"], x["mask"], x["ref"], backend=backend)
    assert loss_ng.grad_fn is None and torch.equal(loss_ng, loss.detach())
    assert all(torch.equal(metrics_ng[k], metrics[k]) for k in metrics)


def _sls_run(logits: torch.Tensor, index: torch.Tensor, backend: str, inplace: bool, entropy: bool, route):
    base = logits.clone().requires_grad_()
    z = base * 1.0  # a non-leaf, as an LM head's output, so the in-place backward is allowed
    with route():
        out = harmo.selective_log_softmax(
            z, index, 0.8, return_entropy=entropy, inplace_backward=inplace, backend=backend
        )
    logp, ent = out if entropy else (out, None)
    g = torch.linspace(-1.0, 1.0, logp.numel(), device=logp.device).reshape(logp.shape)
    total = (logp * g).sum() + (ent.sum() * 0.3 if ent is not None else 0.0)
    total.backward()
    return logp.detach(), None if ent is None else ent.detach(), base.grad, type(logp.grad_fn).__name__


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("entropy", [False, True])
def test_selective_log_softmax_routes_bit_identical(backend: str, dtype, inplace: bool, entropy: bool) -> None:
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(3, 5, 700, generator=g) * 3).to(dtype).to(_device(backend))
    index = torch.randint(0, 700, (3, 5), generator=g).to(logits.device)
    a = _sls_run(logits, index, backend, inplace, entropy, nullcontext)
    b = _sls_run(logits, index, backend, inplace, entropy, _PassThrough)
    assert a[3] == "_SelectiveLogSoftmaxFunctionBackward" and a[3] != b[3]
    for x, y in zip(a[:3], b[:3]):
        assert (x is None and y is None) or torch.equal(x, y)
    assert a[2].dtype == dtype


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_selective_log_softmax_no_grad_route(backend: str) -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 300, generator=g).to(_device(backend))
    index = torch.randint(0, 300, (4,), generator=g).to(logits.device)
    with torch.no_grad():
        logp, ent = harmo.selective_log_softmax(logits, index, return_entropy=True, backend=backend)
    ref_logp, ref_ent = harmo.selective_log_softmax(logits, index, return_entropy=True, backend="torch")
    torch.testing.assert_close(logp, ref_logp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent, ref_ent, rtol=1e-5, atol=1e-5)
    with pytest.raises(IndexError):
        harmo.selective_log_softmax(logits, torch.full((4,), 300, device=logits.device), backend=backend)
