"""OCR and short-text answers: exact match after normalisation (Unicode NFKC, case,
punctuation, articles, number words), with ANLS reported as a separate partial score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harmo_fast.rewards.normalize import anls, normalize_text
from harmo_fast.rewards.types import Verdict
from harmo_fast.rewards.verifiers.base import Outcome, Verifier, combine
from harmo_fast.rewards.verifiers.registry import register


@register("ocr", "short_text")
class TextVerifier(Verifier):
    """Normalised exact match; `partial` = the best ANLS over the golds (never the reward)."""

    bare_answer_max_chars = 100_000
    parent_safe = True

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str]:
        g = normalize_text(gold)
        if not g:
            return "gold_fail", "gold is empty after normalisation"
        p = normalize_text(answer)
        if not p:
            return "parse_fail", "answer is empty after normalisation"
        return ("match", "") if p == g else ("mismatch", "")

    def check(self, answer: str, golds: Sequence[str], options: dict[str, Any]) -> Verdict:
        verdict = combine(answer, [self.compare(answer, g, options) for g in golds])
        partial = max(anls(answer, g) for g in golds)
        return Verdict(**{**verdict.__dict__, "partial": partial})
