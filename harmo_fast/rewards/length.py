"""R_len, the group-relative length penalty against brevity hacking (docs/SPEC.md §1).

Within each group, L* is the length of the shortest *correct* response (score >=
`correct_threshold`). An incorrect response shorter than L* gets `-p_max * g((L* - L)/L*; tau)`;
every other response gets 0, and so does every response of a group with no correct response.

This module owns the semantics (threshold, enabled flag, validation); the arithmetic runs in the
batched op `harmo_fast.length_penalty`, which the tests hold to its torch reference.
"""

from __future__ import annotations

from collections.abc import Sequence

from harmo_fast.rewards.config import LengthPenaltyConfig

# The shapes of `harmo_fast.ops.length_penalty` (named here so that validation needs no torch).
_SHAPES = ("exp", "linear", "step")


def _validate(
    lengths: Sequence[int], correct_scores: Sequence[float], group_ids: Sequence[int], cfg: LengthPenaltyConfig
) -> None:
    n = len(lengths)
    if len(correct_scores) != n:
        raise ValueError(f"correct_scores has {len(correct_scores)} entries, lengths has {n}")
    if len(group_ids) != n:
        raise ValueError(f"group_ids has {len(group_ids)} entries, lengths has {n}")
    for i, length in enumerate(lengths):
        if isinstance(length, bool) or (not isinstance(length, int) and not float(length).is_integer()):
            raise TypeError(f"lengths[{i}] must be an integer token count, got {length!r}")
        if length < 0:
            raise ValueError(f"lengths[{i}] must be >= 0, got {length}")
    if cfg.shape not in _SHAPES:
        raise ValueError(f"LengthPenaltyConfig.shape must be one of {sorted(_SHAPES)}, got {cfg.shape!r}")
    if not cfg.tau > 0:
        raise ValueError(f"LengthPenaltyConfig.tau must be > 0, got {cfg.tau}")
    if not cfg.p_max >= 0:
        raise ValueError(f"LengthPenaltyConfig.p_max must be >= 0, got {cfg.p_max}")


def _penalties(
    lengths: Sequence[int], correct: Sequence[bool], group_ids: Sequence[int], cfg: LengthPenaltyConfig
) -> list[float]:
    # torch and the compiled op load on the first scored batch: importing the reward layer stays
    # torch-free (verifier workers, a verl reward process that only verifies).
    import torch

    from harmo_fast.ops.length_penalty import length_penalty

    out = length_penalty(
        torch.tensor([int(x) for x in lengths], dtype=torch.int64),
        torch.tensor(list(correct), dtype=torch.bool),
        group_ids=torch.tensor([int(g) for g in group_ids], dtype=torch.int64),
        p_max=cfg.p_max,
        tau=cfg.tau,
        shape=cfg.shape,
    )
    return [float(x) for x in out.tolist()]


def length_reward(
    lengths: Sequence[int],
    correct_scores: Sequence[float],
    group_ids: Sequence[int],
    cfg: LengthPenaltyConfig | None = None,
) -> list[float]:
    """R_len per response.

    lengths: completion lengths in tokens. correct_scores: the hybrid accuracy scores; a response
    counts as correct when its score >= `cfg.correct_threshold` (NaN never does). group_ids: the
    prompt group of each response (any integers, any order). All zeros when `cfg.enabled` is False.
    cfg: None = the defaults.
    """
    cfg = cfg or LengthPenaltyConfig()
    _validate(lengths, correct_scores, group_ids, cfg)
    if not cfg.enabled or len(lengths) == 0:
        return [0.0] * len(lengths)
    correct = [bool(s >= cfg.correct_threshold) for s in correct_scores]  # NaN >= t is False
    return _penalties(lengths, correct, group_ids, cfg)
