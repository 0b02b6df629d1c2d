"""Per-group seeded sampling: the warpers agree with Hugging Face's, draws follow the group's seed
only, and a prompt group's completions do not depend on the batch (or rank) that generates it."""

from __future__ import annotations

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from harmo_fast.data.jsonl import load_jsonl
from harmo_fast.data.synth import write_synth
from harmo_fast.trainer.group_sampling import GroupSampler, group_seed, group_seeds, warp
from harmo_fast.trainer.prompts import PromptEncoder
from harmo_fast.trainer.rollout import HFRolloutEngine
from harmo_fast.trainer.tiny_policy import build_tiny_vlm

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"), [(1.0, 0, 1.0), (0.6, 0, 1.0), (0.7, 5, 0.9), (1.3, 0, 0.5)]
)
def test_warp_matches_the_transformers_warpers(temperature, top_k, top_p):
    scores = torch.randn(6, 50, generator=torch.Generator().manual_seed(1)) * 3
    expected = TemperatureLogitsWarper(temperature)(None, scores.clone())
    if top_k:
        expected = TopKLogitsWarper(top_k)(None, expected)
    if top_p < 1:
        expected = TopPLogitsWarper(top_p)(None, expected)
    assert torch.equal(warp(scores, temperature, top_k, top_p), expected)


def test_seeds_depend_on_seed_step_and_group_only():
    assert group_seeds(7, 3, 2, 3) == [group_seed(7, 3, g) for g in (2, 3, 4)]
    assert len({group_seed(s, t, g) for s in (0, 1) for t in (1, 2) for g in (0, 1)}) == 8
    assert all(0 <= group_seed(0, 1, g) < 2**63 for g in range(10))


def test_sampler_rows_follow_their_group_generator():
    scores = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    both = GroupSampler([11, 22], 1.0, 0, 1.0)(None, scores)
    second = GroupSampler([22], 1.0, 0, 1.0)(None, scores[3:])
    assert torch.equal(both[3:], second)  # group 1's rows do not depend on group 0 being in the batch
    assert ((both == 0).sum(dim=1) == 1).all() and (both.isinf().sum(dim=1) == 39).all()
    with pytest.raises(ValueError, match="do not split into 4 groups"):
        GroupSampler([1, 2, 3, 4], 1.0, 0, 1.0)(None, scores)


def test_a_group_samples_the_same_completions_in_any_batch(tmp_path):
    write_synth(tmp_path, 4, 0, seed=3)
    samples = load_jsonl(tmp_path / "train.jsonl").samples
    model, processor = build_tiny_vlm(
        seed=0, hidden_size=64, intermediate_size=128, vision_embed_dim=32, vision_depth=1, vision_num_heads=2
    )
    engine = HFRolloutEngine(model, PromptEncoder(processor, True), max_new_tokens=12, temperature=0.8, top_p=0.95)
    seeds = group_seeds(0, 5, 0, 4)
    engine.set_group_seeds(seeds)
    whole = engine.generate(samples, 3)
    engine.set_group_seeds(seeds[2:])
    half = engine.generate(samples[2:], 3)
    assert whole.texts[6:] == half.texts
    assert torch.equal(whole.lengths[6:], half.lengths)
    n = int(half.lengths.max())
    assert torch.equal(whole.completion_ids[6:, :n], half.completion_ids[:, :n])
    assert len(set(whole.texts)) > 4  # really sampled, not greedy
    engine.set_group_seeds(seeds[:1])  # seeds are checked against the prompts
    with pytest.raises(ValueError, match="1 seeds for 2 prompts"):
        engine.generate(samples[:2], 3)


def test_sampler_draws_follow_the_warped_distribution():
    # One group of many rows with the same scores: token frequencies match softmax(scores / T) after
    # top-k, and a token top-k removed is never drawn.
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    rows = 20000
    out = GroupSampler([7], 0.8, 4, 1.0)(None, logits.expand(rows, -1).clone())
    freq = (out == 0).double().mean(dim=0)
    expected = warp(logits[None], 0.8, 4, 1.0).softmax(dim=-1)[0].double()
    assert freq[4:].sum() == 0
    assert torch.allclose(freq, expected, atol=4 * (expected * (1 - expected) / rows).sqrt().max())
