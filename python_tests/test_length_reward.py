"""R_len: the group shortest-correct anchor, the three shapes, threshold, disabled, validation, and
agreement of the public path (the batched op) with a brute force and with the op's torch reference."""

import math
import random

import pytest
import torch

from harmo_fast.ops.length_penalty import length_penalty_reference
from harmo_fast.rewards.config import LengthPenaltyConfig
from harmo_fast.rewards.length import length_reward


def test_hand_computed_linear():
    # group 0: correct at 100 and 150 -> L* = 100; incorrect 40 -> d = 0.6 -> min(1, 1.2) = 1
    # incorrect 80 -> d = 0.2 -> 0.4 -> -0.2; incorrect 120 (longer than L*) -> 0
    cfg = LengthPenaltyConfig(p_max=0.5, tau=0.5, shape="linear")
    out = length_reward([100, 150, 40, 80, 120], [1.0, 1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0, 0], cfg)
    assert out == pytest.approx([0.0, 0.0, -0.5, -0.2, 0.0])


def test_exp_and_step_shapes():
    lengths, scores, groups = [100, 75, 50], [1.0, 0.0, 0.0], [3, 3, 3]  # d = 0.25, 0.5
    exp = length_reward(lengths, scores, groups, LengthPenaltyConfig(shape="exp", p_max=1.0, tau=0.5))
    assert exp == pytest.approx([0.0, -(1 - math.exp(-0.5)), -(1 - math.exp(-1.0))])
    step = length_reward(lengths, scores, groups, LengthPenaltyConfig(shape="step", p_max=0.3, tau=0.5))
    assert step == pytest.approx([0.0, 0.0, -0.3])  # d >= tau is penalised, d < tau is not


def test_no_correct_in_group_gives_zero():
    out = length_reward([10, 1, 200, 5], [0.0, 0.0, 1.0, 0.0], [0, 0, 1, 1])
    # group 0 has no correct answer; group 1's short wrong answer is penalised
    assert out[:2] == [0.0, 0.0]
    assert out[2] == 0.0 and out[3] < 0


def test_ties_and_equal_lengths():
    # two correct answers of equal length; a wrong answer of exactly L* is not penalised
    out = length_reward([50, 50, 50, 49], [1.0, 1.0, 0.0, 0.0], [0, 0, 0, 0], LengthPenaltyConfig(p_max=1.0, tau=1.0))
    assert out == pytest.approx([0.0, 0.0, 0.0, -1 / 50])


def test_threshold_decides_correctness():
    lengths, scores, groups = [100, 20], [0.8, 0.1], [0, 0]
    assert length_reward(lengths, scores, groups) == [0.0, 0.0]  # default threshold 1.0: no anchor
    low = length_reward(lengths, scores, groups, LengthPenaltyConfig(correct_threshold=0.7))
    assert low[0] == 0.0 and low[1] == pytest.approx(-0.5)
    nan = length_reward(lengths, [float("nan"), 0.0], groups, LengthPenaltyConfig(correct_threshold=0.0))
    assert nan == [0.0, 0.0]  # NaN is never correct; 0.0 >= 0.0 is, but nothing else is shorter


def test_disabled_and_empty():
    assert length_reward([100, 5], [1.0, 0.0], [0, 0], LengthPenaltyConfig(enabled=False)) == [0.0, 0.0]
    assert length_reward([], [], []) == []


def test_groups_in_any_order_and_ragged():
    lengths = [30, 100, 10, 60, 5, 90]
    scores = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
    groups = [7, 2, 7, 7, 2, 9]
    cfg = LengthPenaltyConfig(p_max=1.0, tau=1.0)
    out = length_reward(lengths, scores, groups, cfg)
    assert out == pytest.approx([-(60 - 30) / 60, 0.0, -(60 - 10) / 60, 0.0, -(100 - 5) / 100, 0.0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lengths": [1, 2], "correct_scores": [1.0], "group_ids": [0, 0]}, "correct_scores"),
        ({"lengths": [1, 2], "correct_scores": [1.0, 0.0], "group_ids": [0]}, "group_ids"),
        ({"lengths": [1, -2], "correct_scores": [1.0, 0.0], "group_ids": [0, 0]}, r"lengths\[1\]"),
        ({"lengths": [1.5, 2], "correct_scores": [1.0, 0.0], "group_ids": [0, 0]}, r"lengths\[0\]"),
        ({"cfg": LengthPenaltyConfig(shape="cubic")}, "shape"),
        ({"cfg": LengthPenaltyConfig(tau=0.0)}, "tau"),
        ({"cfg": LengthPenaltyConfig(p_max=-1.0)}, "p_max"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"lengths": [1, 2], "correct_scores": [1.0, 0.0], "group_ids": [0, 0], **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        length_reward(**args)


def _brute_force(lengths, correct, groups, p_max, tau, shape):
    g = {
        "linear": lambda d: min(1, d / tau),
        "exp": lambda d: 1 - math.exp(-d / tau),
        "step": lambda d: float(d >= tau),
    }[shape]
    out = []
    for i in range(len(lengths)):
        anchors = [lengths[j] for j in range(len(lengths)) if groups[j] == groups[i] and correct[j]]
        if correct[i] or not anchors or lengths[i] >= min(anchors):
            out.append(0.0)
        else:
            out.append(-p_max * g((min(anchors) - lengths[i]) / min(anchors)))
    return out


@pytest.mark.parametrize("shape", ["linear", "exp", "step"])
def test_public_path_matches_brute_force_and_the_op_reference(shape):
    rng = random.Random(1)
    for _ in range(30):
        n = rng.randint(1, 40)
        lengths = [rng.randint(0, 300) for _ in range(n)]
        scores = [rng.choice([0.0, 1.0, 0.5]) for _ in range(n)]
        groups = [rng.randint(0, 5) for _ in range(n)]
        cfg = LengthPenaltyConfig(
            p_max=rng.uniform(0, 2), tau=rng.uniform(0.05, 1.5), shape=shape, correct_threshold=0.5
        )
        correct = [s >= 0.5 for s in scores]
        expected = _brute_force(lengths, correct, groups, cfg.p_max, cfg.tau, shape)
        reference = length_penalty_reference(
            torch.tensor(lengths),
            torch.tensor(correct),
            group_ids=torch.tensor(groups),
            p_max=cfg.p_max,
            tau=cfg.tau,
            shape=shape,
        ).tolist()
        assert reference == pytest.approx(expected, abs=1e-5)
        got = length_reward(lengths, scores, groups, cfg)
        assert got == pytest.approx(reference, abs=1e-6)  # both float32
