"""Open-ended answers have no rule verdict: the hybrid router scores them with the model RM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harmo_fast.rewards.types import Verdict
from harmo_fast.rewards.verifiers.base import Outcome, Verifier
from harmo_fast.rewards.verifiers.registry import register


@register("open_ended")
class OpenEndedVerifier(Verifier):
    """Always a not-confident verdict scored by nobody, so the router uses the model score."""

    bare_answer_max_chars = 100_000
    parent_safe = True

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str]:
        return "parse_fail", "open-ended: no rule verdict"

    def check(self, answer: str, golds: Sequence[str], options: dict[str, Any]) -> Verdict:
        return Verdict(
            0.0, False, "parse_fail", answer, confident=False, scored_by="none", detail="open-ended: no rule verdict"
        )
