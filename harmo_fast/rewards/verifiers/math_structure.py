"""Split a cleaned math answer into its structure: lists, sets, tuples and intervals,
unions, matrices, relations and `\\pm` pairs, down to scalar expressions (plain strings).

Nodes are tuples, cheap to build and compare:
    ("scalar", text)            ("list", items)        unordered unless the policy says so
    ("set", items)              ("tuple", open, close, items)    `(a,b]`, `[a,b]`, `(x,y,z)`
    ("union", parts)            ("matrix", rows)       rows of nodes
    ("rel", exprs, ops)         a chain `e0 op0 e1 op1 e2 ...`, ops in = < <= > >= != ~ (approx)
"""

from __future__ import annotations

import re
from typing import Any

from harmo_fast.rewards.normalize import parse_number

Node = tuple[Any, ...]
MAX_STRUCTURE_CHARS = 4000
MAX_DEPTH = 12

_OPENERS = "([{"
_CLOSERS = ")]}"
_SEPARATORS = re.compile(r",|;|\\text\{\s*(?:and|or)\s*\}|\s(?:and|or)\s|\\(?:lor|vee)(?![a-zA-Z])")
_REL = re.compile(r"\\(?:leq?|geq?|neq?|lt|gt|approx)(?![a-zA-Z])|<=|>=|!=|≤|≥|≠|≈|=|<|>")
_REL_CANON = {
    "\\le": "<=",
    "\\leq": "<=",
    "\\ge": ">=",
    "\\geq": ">=",
    "\\ne": "!=",
    "\\neq": "!=",
    "\\lt": "<",
    "\\gt": ">",
    "\\approx": "~",
    "≈": "~",
    "≤": "<=",
    "≥": ">=",
    "≠": "!=",
}
_MATRIX = re.compile(r"^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.DOTALL)
_THOUSANDS = re.compile(r"(?<![\d,.])\d{1,3}(?:,\d{3})+(?![\d,])")
_PM = re.compile(r"\\(?:pm|mp)(?![a-zA-Z])|±|∓")


class StructureError(ValueError):
    """The answer is too large or too deeply nested to split."""


def _top_level(text: str, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    """Matches of `pattern` outside every bracket pair."""
    depth_at = _depths(text)
    return [m for m in pattern.finditer(text) if depth_at[m.start()] == 0]


def _depths(text: str) -> list[int]:
    """Bracket depth before each character (any of ([{ opens, any of )]} closes; `\\{` counts)."""
    out = []
    depth = 0
    for ch in text:
        if ch in _CLOSERS:
            depth = max(0, depth - 1)
        out.append(depth)
        if ch in _OPENERS:
            depth += 1
    return out


def _split(text: str, matches: list[re.Match[str]]) -> list[str]:
    parts, last = [], 0
    for m in matches:
        parts.append(text[last : m.start()])
        last = m.end()
    parts.append(text[last:])
    return [p.strip() for p in parts]


def _wrapped(text: str) -> tuple[str, str, str] | None:
    """(open, inner, close) when the first bracket closes at the last character."""
    if len(text) < 2:
        return None
    if text.startswith("\\{") and text.endswith("\\}"):
        inner = text[2:-2]
        return ("{", inner, "}") if _closes_at_end(text) else None
    if text.startswith("\\langle") and text.endswith("\\rangle"):
        return "<", text[len("\\langle") : -len("\\rangle")], ">"
    if text[0] in "([" and text[-1] in ")]" and _closes_at_end(text):
        return text[0], text[1:-1], text[-1]
    return None


def _closes_at_end(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        if ch in _OPENERS:
            depth += 1
        elif ch in _CLOSERS:
            depth -= 1
            if depth == 0 and i < len(text) - 1:
                return False
    return depth == 0


def parse_structure(text: str, depth: int = 0) -> Node:
    """The structure of a cleaned answer (see the module docstring)."""
    if len(text) > MAX_STRUCTURE_CHARS or depth > MAX_DEPTH:
        raise StructureError("answer too large or too deeply nested")
    t = text.strip()
    if not t or parse_number(t) is not None:
        return ("scalar", t)
    cups = _top_level(t, re.compile(r"\\cup(?![a-zA-Z])|∪"))
    if cups:
        return ("union", [parse_structure(p, depth + 1) for p in _split(t, cups)])
    if _REL.search(t):
        # `x = 1,000`: beside a relation, comma-grouped thousands are one number, not a list.
        t = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), t)
    seps = _top_level(t, _SEPARATORS)
    if seps:
        parts = [p for p in _split(t, seps) if p]
        if len(parts) > 1:
            return ("list", [parse_structure(p, depth + 1) for p in parts])
        if parts:
            return parse_structure(parts[0], depth + 1)
    rels = _top_level(t, _REL)
    if rels:
        exprs = _split(t, rels)
        if all(exprs):
            ops = [_REL_CANON.get(m.group(0), m.group(0)) for m in rels]
            return ("rel", [parse_structure(e, depth + 1) for e in exprs], ops)
    pms = _top_level(t, _PM)
    if len(pms) == 1:
        m = pms[0]
        head, tail = t[: m.start()].strip(), t[m.end() :].strip()
        plus = f"{head}+{tail}" if head else tail
        minus = f"{head}-{tail}" if head else f"-{tail}"
        sign = -1 if m.group(0) in ("\\mp", "∓") else 1
        items = [plus, minus] if sign > 0 else [minus, plus]
        return ("set", [parse_structure(i, depth + 1) for i in items])
    mm = _MATRIX.match(t)
    if mm:
        rows = [r for r in re.split(r"\\\\", mm.group(2)) if r.strip() and not r.strip().startswith("\\hline")]
        return ("matrix", [[parse_structure(c, depth + 1) for c in r.split("&")] for r in rows])
    w = _wrapped(t)
    if w:
        open_, inner, close = w
        items = _split(inner, _top_level(inner, re.compile(",")))
        if open_ == "{":
            return ("set", [parse_structure(i, depth + 1) for i in items if i])
        if len(items) >= 2 and all(items):
            return ("tuple", open_, close, [parse_structure(i, depth + 1) for i in items])
        if open_ in "([" and open_ + close in ("()", "[]") and len(items) == 1:
            return parse_structure(inner, depth + 1)
    return ("scalar", t)
