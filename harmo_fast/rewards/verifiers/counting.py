"""Counting questions: one integer, written as digits or as a number word. An answer that
mentions several different numbers ("3 apples, not 4") is a hedge and is wrong."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from harmo_fast.rewards.normalize import NUMBER_WORD, number_word_value, parse_number
from harmo_fast.rewards.verifiers.base import Outcome, Verifier
from harmo_fast.rewards.verifiers.registry import register

_DIGITS = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w.]*\d)")


def numbers_in(text: str, limit: int = 2) -> set[Fraction]:
    """Distinct numbers mentioned in `text` (digits and number words), stopping at `limit`."""
    values: set[Fraction] = set()
    seen: set[str] = set()
    for m in _DIGITS.finditer(text):
        raw = m.group(0)
        if raw not in seen and len(raw) < 60:
            seen.add(raw)
            values.add(Fraction(raw.replace(",", "")))
            if len(values) >= limit:
                return values
    for m in NUMBER_WORD.finditer(text):
        values.add(Fraction(number_word_value(m)))
        if len(values) >= limit:
            return values
    return values


@register("counting")
class CountingVerifier(Verifier):
    """The single number in the answer against the gold count."""

    bare_answer_max_chars = 100_000
    parent_safe = True

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str]:
        g = parse_number(gold)
        if g is None or g.value.denominator != 1 or g.percent:
            return "gold_fail", f"gold {gold[:40]!r} is not a count"
        found = numbers_in(answer)
        if not found:
            return "parse_fail", "no number in the answer"
        if len(found) > 1:
            return "mismatch", f"hedged: {len(found)} different numbers"
        return ("match", "") if found.pop() == g.value else ("mismatch", "")
