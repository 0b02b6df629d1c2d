"""Locate the final answer in a raw completion.

Order (verifier_notes.md section 7, rows 1-2): only the text after the last `</think>` is graded
(nothing when a `<think>` is left open); then the last `<answer>...</answer>`; else the last
brace-balanced `\\boxed{}` / `\\fbox{}` (adjacent boxes joined into a list); else a "final answer
is" / "Answer:" phrase (markdown bold allowed). Free-text location (on by default for math and
numeric answers) goes on: a GSM8K `#### x` line, the last display or inline math (`\\[..\\]`,
`\\(..\\)`, `$$..$$`, `$..$`, adjacent ones joined into a list), and finally the last number.
`locate` says which locator found the answer. Every scan is linear in the input: no pattern here
can backtrack catastrophically."""

from __future__ import annotations

import re

# Qwen2.5-VL writes spaced tags (`< think >`); only the tags are normalised, never the text.
_THINK_OPEN = re.compile(r"<\s*think\s*>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<\s*answer\s*>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"<\s*/\s*answer\s*>", re.IGNORECASE)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_SPACE = re.compile(r"\\boxed +([^\s$]+)")  # `\boxed 5`
# Two boxes or math spans separated only by these (whitespace, commas, "and"/"or", math delimiters)
# state one answer with several parts: "$\\boxed{4}$ and $\\boxed{9}$", "$(2,5)$ or $(5,2)$".
_JOIN = re.compile(r"(?:\s|,|;|\band\b|\bor\b|\\quad|\\qquad|\$|\\\)|\\\(|\\text\{\s*(?:and|or)\s*\})*", re.IGNORECASE)
# Unambiguous on purpose (each run of spaces can be matched one way only): no backtracking blow-up.
_ANCHOR = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:\*\*\s*)?(?:is|:|=)(?:\s*\*\*)?[ \t]*(?::[ \t]*)?([^\n]*)",
    re.IGNORECASE,
)
_HOPE = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)
_LAST_NUMBER = re.compile(
    r"[-+]?\\[dt]?frac\{\d+\}\{\d+\}"
    r"|[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:/\d+(?![\d.]))?(?:\s*(?:\\%|%))?"
)
_GSM8K = re.compile(r"####[ \t]*([^\n]*)")
# A number then prose (`12 eggs`, `14 because ...`); never a second answer (`12 and 13`, `5 or 7`).
_NUMBER_THEN_WORDS = re.compile(r"([-+]?\$?[\d,.]*\d%?)\s+(?!(?:and|or)\b)[A-Za-z]{2,}")
# Math delimiters; a backslash before them escapes them (`\\$5`, the row break `\\\\[2pt]`).
_MATH_DELIM = re.compile(r"(?<!\\)(?:\\\[|\\\]|\\\(|\\\)|\$\$|\$)")
_MATH_CLOSE = {"\\[": "\\]", "\\(": "\\)", "$$": "$$", "$": "$"}
_SENTENCE_END = re.compile(r"\.(?=\s)")

LOCATORS = ("answer_tag", "boxed", "answer_phrase", "gsm8k", "math", "bare", "last_number")
"""The ways an answer can be found, in priority order ("bare": the whole short response)."""


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
        if prev[2] >= parts[0][0] or not _JOIN.fullmatch(text[prev[2] + 1 : parts[0][0]]):
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


def _anchor_answer(text: str, free_text: bool = False) -> str | None:
    """The answer after the last "final answer is" / "the answer is" / "Answer:" phrase.

    A phrase that repeats inside its own answer ("Final Answer: The final answer is 58") counts
    by its innermost one. With `free_text`, the answer is the first math (list) in the phrase's
    line, else the line up to the end of its first sentence (only its number when words follow)."""
    m = last_match(_ANCHOR, text)
    if m is None:
        return None
    ans = m.group(1)
    for _ in range(3):
        inner = last_match(_ANCHOR, ans)
        if inner is None:
            break
        ans = inner.group(1)
    ans = _HOPE.sub("", ans)
    if free_text:
        spans = math_spans(ans)
        if spans:
            return _joined_math(ans, spans, first=True)
        end = _SENTENCE_END.search(ans)
        if end:
            ans = ans[: end.start()]
        lead = _NUMBER_THEN_WORDS.match(ans.replace("**", "").strip())
        if lead:
            return lead.group(1)
    return _clean_answer(ans)


def _clean_answer(ans: str) -> str:
    """Strip markdown bold and one sentence-final period around an answer."""
    ans = ans.replace("**", "").strip()
    if ans.endswith("."):
        ans = ans[:-1].rstrip()
    return ans


def math_spans(text: str) -> list[tuple[int, int, int, int]]:
    """(opening start, content start, content end, closing end) of every complete math span
    (`\\[..\\]`, `\\(..\\)`, `$$..$$`, `$..$`), in order; an unclosed one is ignored."""
    spans = []
    opened: re.Match[str] | None = None
    for m in _MATH_DELIM.finditer(text):
        tok = m.group(0)
        if opened is None:
            if tok in _MATH_CLOSE:
                opened = m
        elif tok == _MATH_CLOSE[opened.group(0)]:
            if text[opened.end() : m.start()].strip():
                spans.append((opened.start(), opened.end(), m.start(), m.end()))
            opened = None
    return spans


def _joined_math(text: str, spans: list[tuple[int, int, int, int]], first: bool = False) -> str:
    """The last (or first) math span with the spans joined to it by `_JOIN`, as a list `a, b`."""
    if first:
        group = [spans[0]]
        for nxt in spans[1:]:
            if not _JOIN.fullmatch(text[group[-1][3] : nxt[0]]):
                break
            group.append(nxt)
    else:
        group = [spans[-1]]
        for prev in reversed(spans[:-1]):
            if not _JOIN.fullmatch(text[prev[3] : group[0][0]]):
                break
            group.insert(0, prev)
    return ", ".join(text[a:b].strip() for _, a, b, _ in group)


def _gsm8k_answer(text: str) -> str | None:
    """The last `#### x` line's answer; a number followed by words (`12 eggs`) is the number."""
    m = last_match(_GSM8K, text)
    if m is None:
        return None
    ans = _clean_answer(m.group(1))
    lead = _NUMBER_THEN_WORDS.match(ans)
    return (lead.group(1) if lead else ans) or None


def locate(text: str, *, free_text: bool = False) -> tuple[str, str] | None:
    """(answer, locator) for a response whose reasoning is already stripped, or None.

    Marked answers first: the last answer tag (inside it: a box, an answer phrase, with
    `free_text` its math, else all of it), the last box, an answer phrase. With `free_text`
    also a GSM8K `#### x` line, then the last math span (joined with adjacent ones). The
    locator names are those of `LOCATORS`; the bare response and the last number are the
    caller's (they depend on the task type)."""
    block = _last_answer_block(text)
    if block is not None:
        inner = last_boxed(block)
        if inner is None:
            inner = _anchor_answer(block, free_text)
        if inner is None and free_text:
            spans = math_spans(block)
            inner = _joined_math(block, spans) if spans else None
        ans = _clean_answer(inner if inner is not None else block)
        return (ans, "answer_tag") if ans else None
    boxed = last_boxed(text)
    if boxed is not None:
        return (boxed.strip(), "boxed") if boxed.strip() else None
    anchored = _anchor_answer(text, free_text)
    if anchored:
        return anchored, "answer_phrase"
    if not free_text:
        return None
    gsm = _gsm8k_answer(text)
    if gsm:
        return gsm, "gsm8k"
    spans = math_spans(text)
    if spans:
        return _joined_math(text, spans), "math"
    return None


def locate_answer(text: str) -> str | None:
    """The marked answer in a response (reasoning already stripped): answer tag, box, anchor."""
    found = locate(text)
    return found[0] if found else None


def last_number(text: str) -> str | None:
    """The last number written in `text`: thousands separators, a fraction `a/b` or
    `\\frac{a}{b}` and a trailing percent sign are part of it."""
    m = last_match(_LAST_NUMBER, text)
    return m.group(0) if m else None


def extract_answer(completion: str, *, free_text: bool = False, last_number_fallback: bool = False) -> str | None:
    """The answer a completion commits to, or None.

    Grades only what follows the last `</think>` (None if a `<think>` is unterminated); then the
    last `<answer>...</answer>`, else the last brace-balanced `\\boxed{}` / `\\fbox{}`, else
    "final answer is" / "Answer:" (markdown bold allowed); with `free_text` then a GSM8K line and
    the last math span; else (with `free_text` or `last_number_fallback`) the last number.
    """
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    body = strip_reasoning(completion)
    if body is None:
        return None
    found = locate(body, free_text=free_text)
    if found is not None:
        return found[0]
    return last_number(body) if free_text or last_number_fallback else None
