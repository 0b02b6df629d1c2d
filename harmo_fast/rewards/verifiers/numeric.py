"""Numeric answers: one number, exact for integers and fractions, to half a unit in the
gold's last printed place for decimals (relative for scientific notation), or within
`rel_tol`; a percent policy as for math. Expressions (`\\sqrt{2}`) fall back to sympy."""

from __future__ import annotations

from typing import Any

from harmo_fast.rewards.verifiers.base import Outcome, Verifier
from harmo_fast.rewards.verifiers.math import (
    MAX_ANSWER_CHARS,
    NeedsSympy,
    _Comparer,
    decimal_comma,
    gold_answer,
    is_prose,
    validate_number_options,
)
from harmo_fast.rewards.verifiers.math_clean import clean_math
from harmo_fast.rewards.verifiers.registry import register


@register("numeric")
class NumericVerifier(Verifier):
    """A single number against the gold number."""

    bare_answer_max_chars = 80  # a bare `3.14` or `\\frac{1}{2}`, not prose
    free_text = True
    option_names = frozenset({"percent", "rel_tol"})

    def accepts_bare(self, text: str) -> bool:
        return super().accepts_bare(text) and not is_prose(text)

    def validate_options(self, options: dict[str, Any]) -> None:
        validate_number_options(options)

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str]:
        too_long = _too_long(answer, gold)
        return too_long or _Comparer(options, fast=False).scalar(*_cleaned(answer, gold))

    def fast_compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str] | None:
        too_long = _too_long(answer, gold)
        if too_long:
            return too_long
        try:
            return _Comparer(options, fast=True).scalar(*_cleaned(answer, gold))
        except NeedsSympy:
            return None


def _cleaned(answer: str, gold: str) -> tuple[str, str]:
    return decimal_comma(clean_math(answer), clean_math(gold_answer(gold)))


def _too_long(answer: str, gold: str) -> tuple[Outcome, str] | None:
    if len(gold) > MAX_ANSWER_CHARS:
        return "gold_fail", f"gold longer than {MAX_ANSWER_CHARS} characters"
    if len(answer) > MAX_ANSWER_CHARS:
        return "parse_fail", f"answer longer than {MAX_ANSWER_CHARS} characters"
    return None
