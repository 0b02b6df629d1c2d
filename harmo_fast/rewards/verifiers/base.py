"""The verifier base class: per-gold comparison, combined over a list of acceptable golds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from harmo_fast.rewards.types import Verdict

Outcome = Literal["match", "mismatch", "parse_fail", "gold_fail"]
"""One (answer, gold) comparison: equal, different, answer unreadable, or gold unreadable."""


class Verifier:
    """Base of every rule verifier.

    Subclasses implement `compare` (one answer against one gold) and may implement
    `fast_compare`, a cheap path that cannot hang and returns None when it cannot decide.
    `parent_safe` verifiers are cheap throughout: the pool runs them in the calling process.
    """

    #: grade the whole response when no tag, box or anchor phrase marks the answer, if it is at
    #: most this many characters (0 = never)
    bare_answer_max_chars: int = 0
    #: after tags, boxes and answer phrases, also look for the answer in free text (a GSM8K line,
    #: the last math span, the last number) unless the caller asks for `strict_format`
    free_text: bool = False
    #: compare() is cheap and cannot hang (bounded string work only)
    parent_safe: bool = False
    #: option names this verifier understands (besides the common ones of `verify`)
    option_names: frozenset[str] = frozenset()

    def validate_options(self, options: dict[str, Any]) -> None:
        """Raise ValueError naming an option whose value is invalid (names are checked already)."""

    def accepts_bare(self, text: str) -> bool:
        """Whether an unmarked response may be graded whole as the answer."""
        return len(text) <= self.bare_answer_max_chars

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str]:
        """(outcome, detail) for one gold."""
        raise NotImplementedError

    def fast_compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str] | None:
        """Like `compare` but only when decidable without heavy work; None = needs `compare`."""
        return self.compare(answer, gold, options) if self.parent_safe else None

    def check(self, answer: str, golds: Sequence[str], options: dict[str, Any]) -> Verdict:
        """The verdict of `answer` against every acceptable gold."""
        return combine(answer, [self.compare(answer, g, options) for g in golds])

    def fast_check(self, answer: str, golds: Sequence[str], options: dict[str, Any]) -> Verdict | None:
        """The verdict when every gold is decidable on the cheap path (or one already matches)."""
        if self.parent_safe:
            return self.check(answer, golds, options)
        outcomes = []
        for gold in golds:
            result = self.fast_compare(answer, gold, options)
            if result is None:
                return None
            if result[0] == "match":
                return combine(answer, [result])
            outcomes.append(result)
        return combine(answer, outcomes)


def combine(answer: str, outcomes: Sequence[tuple[Outcome, str]]) -> Verdict:
    """Any match wins; an unreadable gold or answer makes the verdict not confident."""
    kinds = [o for o, _ in outcomes]
    details = "; ".join(d for _, d in outcomes if d)
    if "match" in kinds:
        return Verdict(1.0, True, "ok", answer)
    if "gold_fail" in kinds:
        return Verdict(0.0, False, "parse_fail", answer, confident=False, detail=details or "gold unparseable")
    if "parse_fail" in kinds:
        return Verdict(0.0, False, "parse_fail", answer, confident=False, detail=details or "answer unparseable")
    return Verdict(0.0, False, "mismatch", answer, detail=details)
