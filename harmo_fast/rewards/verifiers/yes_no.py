"""Yes/no questions: whole words only, never substrings ("know" is not "no")."""

from __future__ import annotations

import re
from typing import Any

from harmo_fast.rewards.normalize import normalize_text
from harmo_fast.rewards.verifiers.base import Outcome, Verifier
from harmo_fast.rewards.verifiers.registry import register

_WORD = re.compile(r"\b(yes|no)\b")
# A response that opens with the word as its own sentence or clause: "Yes, because ...", "No."
_LEAD = re.compile(r"\s*(?:\*\*)?(yes|no)(?:\*\*)?\s*(?:[,.!;:]|$)", re.IGNORECASE)


def yes_no_of(text: str, *, whole_response: bool = False) -> str | None:
    """ "yes" / "no" when the text commits to exactly one of them, else None.

    A marked answer must contain one kind only ("yes or no" is a hedge). A bare response counts
    when it opens with the word as a clause ("Yes, because..."), or mentions only one of them.
    """
    words = _WORD.findall(normalize_text(text, number_words=False))
    if not words:
        return None
    if whole_response:
        lead = _LEAD.match(text)
        if lead:
            return lead.group(1).lower()
    kinds = set(words)
    return words[0] if len(kinds) == 1 else None


@register("yes_no")
class YesNoVerifier(Verifier):
    """The answer's yes/no word against the gold's."""

    bare_answer_max_chars = 100_000
    parent_safe = True

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str]:
        g = yes_no_of(gold)
        if g is None:
            return "gold_fail", f"gold {gold[:40]!r} is not yes/no"
        p = yes_no_of(answer, whole_response=bool(options.get("_bare")))
        if p is None:
            if set(_WORD.findall(normalize_text(answer, number_words=False))) == {"yes", "no"}:
                return "mismatch", "answer says both yes and no"
            return "parse_fail", "no yes/no in the answer"
        return ("match", "") if p == g else ("mismatch", "")
