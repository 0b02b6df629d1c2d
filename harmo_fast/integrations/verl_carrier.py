"""How HARMO's group length penalty reaches verl's advantage: a correctness bit carried in the reward.

The penalty of a response needs its whole group (the G responses to one prompt): their lengths
and which of them are correct. verl 0.9.1 scores each response alone (`RewardManagerBase.run_single`,
possibly on several Ray reward workers, or streamed from the rollout), and a registered advantage
estimator receives only `token_level_rewards`, `response_mask`, the uid `index` and the algorithm
config. So the work is split:

- the "harmo" reward manager scores a response alone (hybrid + format, weighted), rounds the score
  to float32 (verl stores rewards as float32) and overwrites the two lowest mantissa bits: bit 1 is
  always set (a marker that the manager produced this reward), bit 0 holds correctness (hybrid
  score >= `length.correct_threshold`). The score moves by at most 3 units in the last place;
- the "harmo" advantage estimator sums each row of `token_level_rewards` (the score sits on one
  token, the others are 0, so the sum is the stored float32 exactly), checks the marker, reads the
  bit, clears both bits, takes the lengths from `response_mask` and the groups from the uids,
  adds `w_length * R_len` and then computes the advantages.

Anything that changes the stored reward before the estimator (verl's `use_kl_in_reward`, another
reward manager) removes the marker from most rows, and the estimator then raises instead of
reading noise as correctness.
"""

from __future__ import annotations

import struct

import torch

MARKER = 0b10
CORRECT = 0b01
_LOW_BITS = MARKER | CORRECT


def encode(score: float, correct: bool) -> float:
    """`score` as float32 with the marker and the correctness bit in its two lowest bits (a Python
    float that float32 holds exactly)."""
    (bits,) = struct.unpack("<I", struct.pack("<f", float(score)))
    bits = (bits & ~_LOW_BITS & 0xFFFFFFFF) | MARKER | (CORRECT if correct else 0)
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def decode(token_level_rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores (N,) float32 with the carrier bits cleared, correct (N,) bool) of rewards (N, T)
    that the "harmo" reward manager produced. Raises ValueError when a row lacks the marker."""
    if token_level_rewards.dtype != torch.float32 or token_level_rewards.dim() != 2:
        raise ValueError(
            "harmo advantage: token_level_rewards must be a float32 (N, T) tensor, got "
            f"{token_level_rewards.dtype} {tuple(token_level_rewards.shape)}"
        )
    totals = token_level_rewards.detach().cpu().sum(-1).contiguous()  # on the CPU: no flush of subnormals
    bits = totals.view(torch.int32)
    unmarked = (bits & MARKER) == 0
    if bool(unmarked.any()):
        raise ValueError(
            f"harmo advantage: {int(unmarked.sum())} of {bits.numel()} rewards do not carry the harmo reward "
            "manager's correctness bit; the 'harmo' advantage estimator needs reward.reward_manager.name=harmo "
            "and algorithm.use_kl_in_reward=False (anything that changes the rewards before the estimator "
            "removes the bit)"
        )
    correct = (bits & CORRECT) != 0
    scores = (bits & ~_LOW_BITS).view(torch.float32)
    device = token_level_rewards.device
    return scores.to(device), correct.to(device)
