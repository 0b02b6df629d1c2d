"""Locate the final answer in a raw completion.

Order (verifier_notes.md section 7, rows 1-2): only the text after the last `</think>` is graded
(nothing when a `<think>` is left open); then the last `<answer>...</answer>`; else the last
brace-balanced `\\boxed{}` / `\\fbox{}` (adjacent boxes joined into a list); else a "final answer
is" / "Answer:" phrase (markdown bold allowed); else, only when asked, the last number.
Every scan is linear in the input: no pattern here can backtrack catastrophically."""

from __future__ import annotations

import re

# Qwen2.5-VL writes spaced tags (`< think >`); only the tags are normalised, never the text.
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<\s*answer\s*>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"<\s*/\s*answer\s*>", re.IGNORECASE)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_SPACE = re.compile(r"\\boxed +([^\s$]+)")  # `\boxed 5`
# A box separated from the next one only by these (whitespace, commas, "and", math delimiters).
_BOX_JOIN = re.compile(r"(?:\s|,|;|\band\b|\\quad|\\qquad|\$|\\\)|\\\(|\\text\{\s*and\s*\})*", re.IGNORECASE)
# Unambiguous on purpose (each run of spaces can be matched one way only): no backtracking blow-up.
_ANCHOR = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:\*\*\s*)?(?:is|:|=)(?:\s*\*\*)?[ \t]*(?::[ \t]*)?([^\n]*)",
    re.IGNORECASE,
)
_HOPE = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)
_LAST_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")


def last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last non-overlapping match of `pattern` in `text` (one linear scan)."""
    found = None
    for found in pattern.finditer(text):  # noqa: B007 (the loop keeps the last match)
        pass
    return found


def strip_reasoning(completion: str) -> str | None:
    """The text after the last `</think>`; None when a `<think>` is opened and never closed."""
    closes = list(_THINK_CLOSE.finditer(completion))
    if closes:
        return completion[closes[-1].end() :]
    if _THINK_OPEN.search(completion):
        return None
    return completion


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}`, with directly adjacent boxes
    before it (`\\boxed{2}, \\boxed{3}`) joined as `2, 3`; None when there is no complete box."""
    spans = _box_spans(text)
    if not spans:
        m = last_match(_BOX_SPACE, text)
        return m.group(1) if m else None
    parts = [spans[-1]]
    for prev in reversed(spans[:-1]):
        if prev[2] >= parts[0][0] or not _BOX_JOIN.fullmatch(text[prev[2] + 1 : parts[0][0]]):
            break  # nested in the next box, or separated by more than a joiner
        parts.insert(0, prev)
    return ", ".join(text[s:e].strip() for _, s, e in parts)


def _box_spans(text: str) -> list[tuple[int, int, int]]:
    """(command start, content start, content end) of every complete box, in order."""
    spans = []
    pos = 0
    n = len(text)
    while True:
        m = _BOX.search(text, pos)
        if m is None:
            return spans
        start = m.end()
        depth = 1
        i = start
        while i < n and depth:
            c = text[i]
            if c == "\\" and i + 1 < n and text[i + 1] in "{}":
                i += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        if depth:
            return spans  # unterminated (truncated output): no later box can be complete either
        spans.append((m.start(), start, i - 1))
        pos = i


def _last_answer_block(text: str) -> str | None:
    """Content of the last complete `<answer>...</answer>` (across lines)."""
    closes = list(_ANSWER_CLOSE.finditer(text))
    if not closes:
        return None
    close = closes[-1]
    opens = [m for m in _ANSWER_OPEN.finditer(text, 0, close.start())]
    if not opens:
        return None
    return text[opens[-1].end() : close.start()]


def _anchor_answer(text: str) -> str | None:
    """The answer after the last "final answer is" / "the answer is" / "Answer:" phrase."""
    m = last_match(_ANCHOR, text)
    if m is None:
        return None
    return _clean_answer(_HOPE.sub("", m.group(1)))


def _clean_answer(ans: str) -> str:
    """Strip markdown bold and one sentence-final period around an answer."""
    ans = ans.replace("**", "").strip()
    if ans.endswith("."):
        ans = ans[:-1].rstrip()
    return ans


def locate_answer(text: str) -> str | None:
    """The marked answer in a response (reasoning already stripped): answer tag, box, anchor."""
    block = _last_answer_block(text)
    if block is not None:
        inner = last_boxed(block)
        if inner is None:
            inner = _anchor_answer(block)
        ans = _clean_answer(inner if inner is not None else block)
        return ans or None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None
    anchored = _anchor_answer(text)
    return anchored or None


def last_number(text: str) -> str | None:
    """The last number written in `text` (thousands separators allowed)."""
    m = last_match(_LAST_NUMBER, text)
    return m.group(0) if m else None


def extract_answer(completion: str, *, last_number_fallback: bool = False) -> str | None:
    """The answer a completion commits to, or None.

    Grades only what follows the last `</think>` (None if a `<think>` is unterminated); then the
    last `<answer>...</answer>`, else the last brace-balanced `\\boxed{}` / `\\fbox{}`, else
    "final answer is" / "Answer:" (markdown bold allowed), else (only when
    `last_number_fallback`) the last number.
    """
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    body = strip_reasoning(completion)
    if body is None:
        return None
    found = locate_answer(body)
    if found is None and last_number_fallback:
        found = last_number(body)
    return found
