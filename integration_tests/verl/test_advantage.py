"""The "harmo" advantage estimator and the correctness carrier, on tensors shaped as verl passes
them (float32 token-level rewards, a numpy array of uid strings)."""

import numpy as np
import pytest
import torch
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

from harmo_fast.integrations.verl_advantage import harmo_advantage
from harmo_fast.integrations.verl_carrier import decode, encode
from harmo_fast.ops.length_penalty import length_penalty


def rewards_at_ends(scores: list[float], lengths: list[int], width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """(token_level_rewards, response_mask) with each score on its response's last token."""
    mask = torch.zeros(len(scores), width, dtype=torch.int64)
    rewards = torch.zeros(len(scores), width, dtype=torch.float32)
    for i, (s, n) in enumerate(zip(scores, lengths)):
        mask[i, :n] = 1
        rewards[i, n - 1] = s
    return rewards, mask


@pytest.mark.parametrize("score", [0.0, -0.0, 1.5, -0.5, 0.5 - 0.5 * 0.3, 1e-30, 123.456, -2.75])
@pytest.mark.parametrize("correct", [False, True])
def test_carrier_round_trip(score, correct):
    carried = encode(score, correct)
    assert torch.tensor([carried], dtype=torch.float32).item() == carried  # float32 holds it exactly
    values, flags = decode(torch.tensor([[0.0, carried, 0.0]]))
    assert flags.tolist() == [correct]
    assert values.item() == pytest.approx(score, rel=4e-7, abs=1e-44)


def test_unmarked_rewards_are_refused():
    rewards, mask = rewards_at_ends([1.0, 0.5], [3, 4])  # plain rewards, as verl's naive manager gives
    with pytest.raises(ValueError, match=r"2 of 2 rewards do not carry the harmo reward manager's"):
        harmo_advantage(rewards, mask, np.array(["a", "a"], dtype=object))
    with pytest.raises(ValueError, match="float32"):
        decode(rewards.double())


def test_estimator_formula_with_string_uids():
    scores = [1.5, 1.5, 0.5, 0.5, 1.0, 0.0]
    correct = [True, True, False, False, True, False]
    lengths = [9, 6, 3, 11, 5, 2]
    uids = np.array(["u1", "u1", "u1", "u1", "u2", "u2"], dtype=object)
    rewards, mask = rewards_at_ends([encode(s, c) for s, c in zip(scores, correct)], lengths)
    adv, returns = get_adv_estimator_fn("harmo")(token_level_rewards=rewards, response_mask=mask, index=uids)
    assert adv is returns and adv.shape == mask.shape
    pen = length_penalty(torch.tensor(lengths), torch.tensor(correct), group_ids=torch.tensor([0, 0, 0, 0, 1, 1]))
    assert pen.tolist() == pytest.approx([0, 0, -0.5, 0, 0, -0.5])  # d = 0.5 and 0.6: both capped at p_max
    total = torch.tensor(scores) + pen
    want = torch.cat([total[:4] - total[:4].mean(), total[4:] - total[4:].mean()])
    assert torch.allclose((adv * mask).sum(1) / mask.sum(1), want, atol=1e-6)
    assert torch.all(adv[mask == 0] == 0)


def test_singletons_and_missing_index():
    rewards, mask = rewards_at_ends([encode(1.5, True), encode(0.5, False)], [3, 3])
    adv, _ = harmo_advantage(rewards, mask, np.array(["x", "y"], dtype=object))
    assert torch.all(adv == 0)  # a group of one has no baseline to compare with
    with pytest.raises(ValueError, match="uid index"):
        harmo_advantage(rewards, mask, None)
    with pytest.raises(ValueError, match="index has 1 entries for 2"):
        harmo_advantage(rewards, mask, np.array(["x"], dtype=object))
