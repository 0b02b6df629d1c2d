"""Size guards run before any string reaches sympy: inputs that would make sympy (or the
`str()` of its result) run for minutes in C code are refused quickly as `parse_fail`."""

from __future__ import annotations

import re

MAX_EXPR_CHARS = 600
MAX_DIGIT_RUN = 120
MAX_POWERS = 40
MAX_EXPONENT_DIGITS = 3  # a literal exponent above 999 is refused
MAX_FACTORIAL = 5000
MAX_NESTING = 40

_DIGIT_RUN = re.compile(r"\d+")
_EXP_LITERAL = re.compile(r"\^\s*\{?\s*[-+]?\s*(\d+)")
_EXP_NESTED = re.compile(r"\^\s*\{[^{}]*\^")
_FACTORIAL = re.compile(r"(\d+)\s*!|\\(?:factorial|Gamma)\s*\{?\s*(\d+)")
_BINOM = re.compile(r"\\[dt]?binom\s*\{\s*(\d+)")
_OPEN = re.compile(r"[{(\[]")


def too_big(expr: str) -> str | None:
    """Why `expr` is too costly for sympy, or None when it may be parsed."""
    if len(expr) > MAX_EXPR_CHARS:
        return f"expression longer than {MAX_EXPR_CHARS} characters"
    for m in _DIGIT_RUN.finditer(expr):
        if len(m.group(0)) > MAX_DIGIT_RUN:
            return f"a number with more than {MAX_DIGIT_RUN} digits"
    if expr.count("^") + expr.count("**") > MAX_POWERS:
        return f"more than {MAX_POWERS} powers"
    if _EXP_NESTED.search(expr) or re.search(r"\^\s*\w\s*\^|\^\s*\(", expr):
        return "a power tower (an exponent containing a power)"
    for m in _EXP_LITERAL.finditer(expr):
        if len(m.group(1).lstrip("0")) > MAX_EXPONENT_DIGITS:
            return "an exponent above 999"
    for m in _FACTORIAL.finditer(expr):
        if int(m.group(1) or m.group(2)) > MAX_FACTORIAL:
            return f"a factorial above {MAX_FACTORIAL}!"
    if "!!" in expr or re.search(r"\)\s*!", expr):
        return "a factorial of an expression"
    for m in _BINOM.finditer(expr):
        if int(m.group(1)) > 10 * MAX_FACTORIAL:
            return "a binomial coefficient that is too large"
    depth = 0
    for ch in expr:
        if ch in "{([":
            depth += 1
            if depth > MAX_NESTING:
                return f"brackets nested deeper than {MAX_NESTING}"
        elif ch in "})]":
            depth -= 1
    return None
