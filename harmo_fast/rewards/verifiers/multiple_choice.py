"""Multiple choice: the option letter in any usual notation (`A`, `(A)`, `A.`, `**A**`,
`\\boxed{A}`, `\\text{(A)}`, lower case), or the option's text when `choices` are given.
Letters are limited to the valid options; several different letters are a hedge and wrong."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from harmo_fast.rewards.normalize import normalize_text
from harmo_fast.rewards.verifiers.base import Outcome, Verifier
from harmo_fast.rewards.verifiers.registry import register

_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf|fbox)\s*\{([^{}]*)\}")
# The whole answer is one letter: `B`, `(b)`, `B.`, `B)`, `[B]`, `Option B`, `B: 12`, `(B) 12`.
_LEADING = re.compile(
    r"^(?:(?:option|choice|answer)\s*(?::\s*)?)?[(\[]?([A-Za-z])[)\]]?(?:\s*$|\s*[.:)]\s*|(?<=[)\]])\s+)", re.IGNORECASE
)
_PAREN = re.compile(r"[(\[]([A-Z])[)\]]")
_STANDALONE = re.compile(r"(?<![\w'\\])([A-Z])(?![\w'])")


def _letters(n_choices: int | None, gold_letter: str | None) -> str:
    """The valid option letters: as many as `choices`, else A-E (extended to the gold's letter)."""
    if n_choices:
        return string.ascii_uppercase[: min(n_choices, 26)]
    last = max("E", gold_letter or "E")
    return string.ascii_uppercase[: string.ascii_uppercase.index(last) + 1]


def _unwrap(text: str) -> str:
    t = text.replace("**", " ").replace("$", " ")
    for _ in range(3):
        t = _WRAPPERS.sub(r"\1", t)
    return t.strip()


def letter_of(text: str, valid: str, choices: Sequence[str] | None) -> tuple[str | None, str]:
    """(letter, detail): the single option the text commits to, or None with the reason."""
    t = _unwrap(text)
    found: set[str] = set()
    m = _LEADING.match(t)
    if m and m.group(1).upper() in valid:
        found.add(m.group(1).upper())
        t = t[m.end() :]  # the rest may still name other options: "(A) (B) (C)" is a hedge
    elif choices:
        norm = normalize_text(t)
        hits = {valid[i] for i, c in enumerate(choices[: len(valid)]) if normalize_text(str(c)) == norm and norm}
        if len(hits) == 1:
            return hits.pop(), ""
    found |= {c for c in _PAREN.findall(t) if c in valid}
    for m in _STANDALONE.finditer(t):
        c = m.group(1)
        if c not in valid:
            continue
        # "A cat", "I think": a capital A or I followed by a lower-case word is prose.
        if c in "AI" and re.match(r"\s+[a-z]", t[m.end() : m.end() + 3]):
            continue
        found.add(c)
    if len(found) == 1:
        return found.pop(), ""
    if len(found) > 1:
        return None, f"hedged: letters {''.join(sorted(found))}"
    return None, "no option letter"


@register("multiple_choice")
class MultipleChoiceVerifier(Verifier):
    """The chosen option letter against the gold letter (or the gold option text)."""

    bare_answer_max_chars = 100_000
    parent_safe = True
    option_names = frozenset({"choices"})

    def validate_options(self, options: dict[str, Any]) -> None:
        choices = options.get("choices")
        if choices is not None and (isinstance(choices, str) or not all(isinstance(c, str) for c in choices)):
            raise ValueError(f"choices must be a list of option texts (str), got {choices!r:.80}")

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> tuple[Outcome, str]:
        choices = options.get("choices")
        g_raw = _unwrap(gold)
        gm = _LEADING.match(g_raw)
        g_letter = gm.group(1).upper() if gm and (len(g_raw) <= 4 or not choices) else None
        valid = _letters(len(choices) if choices else None, g_letter)
        if g_letter is None and choices:
            g_letter, _ = letter_of(gold, valid, choices)
        if g_letter is None or g_letter not in valid:
            return "gold_fail", f"gold {gold[:40]!r} is not an option letter"
        p, detail = letter_of(answer, valid, choices)
        if p is None:
            return ("mismatch", detail) if detail.startswith("hedged") else ("parse_fail", detail)
        return ("match", "") if p == g_letter else ("mismatch", "")
