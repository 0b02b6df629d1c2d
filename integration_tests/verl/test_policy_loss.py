"""The "harmo" policy loss against verl's compute_policy_loss_vanilla (which ends in agg_loss), in
every loss_agg_mode: values, gradients and metrics, with empty rows, log-ratios past verl's +-20
clamp, dual clipping, rollout importance weights and verl's mini-batch normalisation."""

import pytest
import torch
from verl.trainer.ppo.core_algos import agg_loss, compute_policy_loss_vanilla, get_policy_loss_fn
from verl.workers.config import ActorConfig

from harmo_fast.integrations.verl_loss import AGGREGATIONS, harmo_policy_loss

MODES = ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
# Tolerance relative to the loss's magnitude: the same aggregation of a bound on each token's
# |loss| (clip_ratio_c * |A| * w). Both sides round each token in fp32 (exp to about 1 ulp), so
# the difference grows with the terms added up, not with the (possibly cancelling) total.
TOL = 1e-6


def actor_config(**overrides) -> ActorConfig:
    settings = dict(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1)
    settings.update(dict(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0), **overrides)
    return ActorConfig(**settings)


def batch(seed: int, n: int = 12, t: int = 33, spread: float = 0.5, weights: bool = False):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(n, t, generator=g) * 6
    logp = (old + torch.randn(n, t, generator=g) * spread).requires_grad_()
    adv = torch.randn(n, 1, generator=g).expand(n, t).contiguous()
    mask = torch.rand(n, t, generator=g) > 0.25
    mask[1] = False  # an empty row
    w = torch.rand(n, t, generator=g) + 0.5 if weights else None
    return old, logp, adv, mask, w


def magnitude(adv, mask, mode, cfg, w) -> float:
    bound = cfg.clip_ratio_c * adv.abs() * (1.0 if w is None else w)
    return max(1.0, abs(agg_loss(bound, mask, mode, **cfg.global_batch_info).item()))


def both(old, logp, adv, mask, mode, cfg, w):
    scale = magnitude(adv, mask, mode, cfg, w)
    want, want_metrics = compute_policy_loss_vanilla(old, logp, adv, mask, mode, cfg, w)
    (want_grad,) = torch.autograd.grad(want, logp)
    got, got_metrics = harmo_policy_loss(old, logp, adv, mask, mode, cfg, w)
    (got_grad,) = torch.autograd.grad(got, logp)
    return (want, want_grad, want_metrics, scale), (got, got_grad, got_metrics, scale)


def assert_same(want, got):
    (a, ga, ma, scale), (b, gb, mb, _) = want, got
    assert abs(a.item() - b.item()) <= TOL * scale, (a.item(), b.item(), scale)
    assert torch.allclose(ga, gb, rtol=1e-5, atol=1e-7)
    assert ma.keys() == mb.keys()
    for key in ma:
        assert mb[key] == pytest.approx(ma[key], abs=1e-6), key


def test_registered_under_harmo():
    assert get_policy_loss_fn("harmo") is harmo_policy_loss
    assert set(AGGREGATIONS) == set(MODES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("spread", "weights"), [(0.3, False), (0.3, True), (40.0, False)])
def test_matches_verl(mode, spread, weights):
    cfg = actor_config()
    for seed in range(4):
        old, logp, adv, mask, w = batch(seed, spread=spread, weights=weights)
        assert_same(*both(old, logp, adv, mask, mode, cfg, w))


@pytest.mark.parametrize("mode", MODES)
def test_global_batch_normalisation_over_micro_batches(mode):
    """Two micro-batches with verl's global_batch_info (dp_size 2): each equals verl's, and the
    micro-batch losses add up to the mini-batch loss over both."""
    old, logp, adv, mask, w = batch(7, n=16, weights=True)
    info = dict(dp_size=2, batch_num_tokens=int(mask.sum()) * 2, global_batch_size=16 * 2, loss_scale_factor=64)
    cfg = actor_config(global_batch_info=info)
    total = 0.0
    for rows in (slice(0, 8), slice(8, 16)):
        want, got = both(old[rows], logp[rows], adv[rows], mask[rows], mode, cfg, w[rows])
        assert_same(want, got)
        total += got[0].item()
    whole = harmo_policy_loss(old, logp, adv, mask, mode, cfg, w)[0].item()
    assert total == pytest.approx(whole, rel=1e-5)


def test_dual_clip_and_clip_ratios_come_from_the_config():
    old, logp, adv, mask, _ = batch(3, spread=2.0)
    for cfg in (actor_config(clip_ratio_c=10.0), actor_config(clip_ratio_low=0.1, clip_ratio_high=0.5)):
        assert_same(*both(old, logp, adv, mask, "token-mean", cfg, None))
    assert_same(
        *both(old, logp, adv, mask, "token-mean", actor_config(clip_ratio_low=None, clip_ratio_high=None), None)
    )


def test_bad_settings_raise():
    old, logp, adv, mask, _ = batch(0)
    with pytest.raises(ValueError, match=r"clip_ratio_c \(1.1\) must be >= 1 \+ clip_ratio_high"):
        harmo_policy_loss(old, logp, adv, mask, "token-mean", actor_config(clip_ratio_c=1.1))
    with pytest.raises(ValueError, match="unknown loss_agg_mode 'token-avg'"):
        harmo_policy_loss(old, logp, adv, mask, "token-avg", actor_config())
    with pytest.raises(ValueError, match="batch_num_tokens is required when dp_size > 1"):
        harmo_policy_loss(old, logp, adv, mask, "token-mean", actor_config(global_batch_info={"dp_size": 2}))
    with pytest.raises(ValueError, match="needs verl's actor config"):
        harmo_policy_loss(old, logp, adv, mask, "token-mean", None)
