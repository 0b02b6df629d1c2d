"""The math verifier: structure first (lists, sets, tuples, intervals, matrices, relations,
`\\pm`), then scalars: normalised strings, plain numbers (exact or to the gold's printed
precision, percent policy), text answers, and finally sympy equivalence (workers only).

Policies (options): `percent` = "either" (default: `28%` matches `28` and `0.28`), "value"
(`28%` is 0.28) or "number" (`28%` is 28); `rel_tol` replaces the precision rule with a
relative tolerance; `ordered` (default False) compares bare lists `1, 2, 3` in order.
A gold inequality accepts an equal interval, but a gold interval does not accept a restated
inequality (verifier_notes.md 1.1). Lists are never judged by a subset: `1728` is wrong for
`1331, 1728`, and `5 or 7` is a hedge."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from harmo_fast.rewards.extract import last_boxed
from harmo_fast.rewards.normalize import MIN_APPROX_SIG, PERCENT_POLICIES, normalize_text, numbers_equal, parse_number
from harmo_fast.rewards.verifiers.base import Outcome, Verifier
from harmo_fast.rewards.verifiers.math_clean import clean_math, unwrap_text
from harmo_fast.rewards.verifiers.math_sets import FLIP, as_set, sets_equal
from harmo_fast.rewards.verifiers.math_structure import Node, StructureError, parse_structure
from harmo_fast.rewards.verifiers.math_sympy import (
    SympyParseError,
    exprs_equal,
    numeric_value,
    ratio_constant,
    to_sympy,
)
from harmo_fast.rewards.verifiers.registry import register

Result = tuple[Outcome, str]
MATCH: Result = ("match", "")
MISMATCH: Result = ("mismatch", "")


class NeedsSympy(Exception):
    """Raised on the fast path when a comparison needs sympy."""


_LATEX_CMD = re.compile(r"\\[a-zA-Z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
_DECIMAL_COMMA = re.compile(r"(?:[A-Za-z](?:_\{?\w+\}?)?\s*=\s*)?[-+]?\d+,(?:\d{1,2}|\d{4,})")
_PLAIN_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_ELLIPSIS = re.compile(r"\\[lc]?dots|\.\.\.|…")
_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")
_MATH_WORDS = frozenset([
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "sqrt", "frac", "pi", "infty", "cdot", "times", "div", "binom", "lim", "sum", "int", "min", "max",
    "gcd", "lcm", "mod", "pmod", "det",
])  # fmt: skip


def _is_text(s: str) -> bool:
    """A word answer ("Monday", "\\text{even}") rather than an expression."""
    if re.fullmatch(r"\\text\{[^{}]*\}", s):
        return bool(re.search(r"[A-Za-z]{2,}", s))
    plain = _LATEX_CMD.sub(" ", s)
    words = [w for w in _WORD.findall(plain) if w.lower() not in _MATH_WORDS]
    return bool(words) and not re.search(r"[\d^_=+*/]", unwrap_text(s).replace(" ", ""))


def gold_answer(gold: str) -> str:
    """The gold's final answer: a gold written as a worked solution counts by its last box."""
    if "\\boxed" in gold or "\\fbox" in gold:
        boxed = last_boxed(gold)
        if boxed:
            return boxed
    return gold


def is_prose(text: str) -> bool:
    """Two words in a row: a sentence, not a bare answer."""
    return bool(_PROSE.search(_LATEX_CMD.sub(" ", text)))


def decimal_comma(p: str, g: str) -> tuple[str, str]:
    """`2500,75` (or `x = 2500,75`) read with a decimal comma when the other side is one number (a
    comma before exactly three digits stays a thousands separator; `1,2` against a list stays a list)."""
    if _DECIMAL_COMMA.fullmatch(p) and parse_number(g) is not None:
        p = p.replace(",", ".")
    elif _DECIMAL_COMMA.fullmatch(g) and parse_number(p) is not None:
        g = g.replace(",", ".")
    return p, g


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", unwrap_text(s)).replace("\\frac", "frac").lower()


def validate_number_options(options: dict[str, Any]) -> None:
    """Check the `percent` and `rel_tol` options shared by math and numeric."""
    percent = options.get("percent", "either")
    if percent not in PERCENT_POLICIES:
        raise ValueError(f"percent must be one of {PERCENT_POLICIES}, got {percent!r}")
    rel_tol = options.get("rel_tol")
    if rel_tol is not None and (isinstance(rel_tol, bool) or not isinstance(rel_tol, (int, float)) or not rel_tol >= 0):
        raise ValueError(f"rel_tol must be a non-negative number or None, got {rel_tol!r}")


class _Comparer:
    """Compares two structures under one set of (validated) options; `fast` forbids sympy."""

    def __init__(self, options: dict[str, Any], fast: bool) -> None:
        self.percent = options.get("percent", "either")
        self.rel_tol = options.get("rel_tol")
        self.ordered = bool(options.get("ordered", False))
        self.fast = fast

    # ------------------------------------------------------------ scalars
    def scalar(self, p: str, g: str) -> Result:
        if not g:
            return ("gold_fail", "empty gold")
        if not p:
            return ("parse_fail", "empty answer")
        if _squash(p) == _squash(g) and "%" not in p + g:
            return MATCH
        p_dots, g_dots = bool(_ELLIPSIS.fullmatch(p)), bool(_ELLIPSIS.fullmatch(g))
        if p_dots or g_dots:
            return MATCH if p_dots and g_dots else MISMATCH  # only an ellipsis equals an ellipsis
        pn, gn = parse_number(p), parse_number(g)
        if pn is not None and gn is not None:
            return MATCH if numbers_equal(pn, gn, percent=self.percent, rel_tol=self.rel_tol) else MISMATCH
        if _is_text(g) or _is_text(p) or ":" in g + p:
            same = normalize_text(unwrap_text(p)) == normalize_text(unwrap_text(g))
            return MATCH if same else MISMATCH
        if self.fast:
            raise NeedsSympy
        return self._sympy_scalar(p, g, pn, gn)

    def _sympy_scalar(self, p: str, g: str, pn: Any, gn: Any) -> Result:
        g_text, p_text = g.replace("%", ""), p.replace("%", "")
        try:
            ge = to_sympy(g_text)
        except SympyParseError as exc:
            return ("gold_fail", f"gold: {exc}")
        try:
            pe = to_sympy(p_text)
        except SympyParseError as exc:
            return ("parse_fail", f"answer: {exc}")
        import sympy  # heavy to import: see math_sympy

        if not (isinstance(ge, sympy.Expr) and isinstance(pe, sympy.Expr)):
            return MATCH if pe == ge else MISMATCH  # sets or relations the parser built itself
        g_vals = self._readings(ge, "%" in g)
        p_vals = self._readings(pe, "%" in p)
        try:
            for gv in g_vals:
                for pv in p_vals:
                    if (gn is not None and gn.ulp is not None) or (pn is not None and pn.ulp is not None):
                        if self._decimal_close(pv, gv, pn, gn):
                            return MATCH
                    elif exprs_equal(pv, gv):
                        return MATCH
        except (ValueError, TypeError, NotImplementedError) as exc:
            # sympy refuses to evaluate a parsed object (`\int 0`: an integral without a variable)
            return ("parse_fail", f"cannot compare: {type(exc).__name__}")
        return MISMATCH

    def _readings(self, e: Any, has_percent: bool) -> list[Any]:
        """The values an expression with a percent sign may mean (see normalize.number_readings)."""
        if not has_percent:
            return [e]
        if self.percent == "value":
            return [e / 100]
        if self.percent == "number":
            return [e]
        return [e / 100, e]

    def _decimal_close(self, pv: Any, gv: Any, pn: Any, gn: Any) -> bool:
        """A decimal on either side: compare at the printed precision (normalize.numbers_equal)."""
        a, b = numeric_value(pv), numeric_value(gv)
        if a is None or b is None or a.imag != 0 or b.imag != 0:
            return False
        diff = _fraction(abs(a.real - b.real))
        if self.rel_tol is not None:
            return diff <= Fraction(self.rel_tol) * _fraction(max(abs(a.real), abs(b.real)))
        if gn is not None and gn.ulp is not None:
            return diff <= gn.ulp / 2
        return pn.sig >= MIN_APPROX_SIG and diff <= pn.ulp / 2

    # ------------------------------------------------------------ structures
    def node(self, p: Node, g: Node) -> Result:
        p, g = settle_approx(p), settle_approx(g)
        pk, gk = p[0], g[0]
        if gk == "rel":
            return self._gold_relation(p, g)
        if gk == "list" and all(i[0] == "rel" and "=" not in i[2] and "!=" not in i[2] for i in g[1]):
            return self._sets(p, g)  # "x < -1 or x > 2"
        if pk == "rel":
            if all(op == "=" for op in p[2]):
                return self.node(p[1][-1], g)  # `x = 3`, `a+b = 3 = 3`: the final value
            return MISMATCH  # a restated inequality is not an interval or a value
        if gk == "scalar" and pk == "scalar":
            return self.scalar(p[1], g[1])
        if gk in ("set", "list") and pk in ("set", "list", "tuple"):
            p_items = p[3] if pk == "tuple" else p[1]
            if pk == "tuple" and gk == "set":
                return MISMATCH
            # A list with an ellipsis is a sequence: its order matters.
            sequence = any(i[0] == "scalar" and _ELLIPSIS.fullmatch(i[1]) for i in g[1])
            ordered = (self.ordered or sequence) and gk == "list" and pk == "list"
            return self._items(p_items, g[1], ordered, dedup=(gk == "set" or pk == "set"))
        if gk == "tuple":
            if pk == "tuple":
                if (p[1], p[2]) != (g[1], g[2]):
                    return MISMATCH
                return self._items(p[3], g[3], ordered=True)
            if pk == "list" and g[1] + g[2] == "()":
                return self._items(p[1], g[3], ordered=True)  # a point written without parentheses
            if pk == "matrix" and self._is_vector(p):
                return self._items(self._flat(p), g[3], ordered=True)
            return MISMATCH
        if gk == "union":
            parts = p[1] if pk == "union" else [p]
            return self._items(parts, g[1], ordered=False)
        if gk == "matrix":
            if pk == "matrix":
                if [len(r) for r in p[1]] != [len(r) for r in g[1]]:
                    return MISMATCH
                return self._items(self._flat(p), self._flat(g), ordered=True)
            if pk == "tuple" and self._is_vector(g) and p[1] + p[2] in ("()", "[]"):
                return self._items(p[3], self._flat(g), ordered=True)
            return MISMATCH
        if pk in ("set", "list") and gk == "scalar" and len(p[1]) == 1:
            return self.node(p[1][0], g)
        return MISMATCH

    @staticmethod
    def _flat(m: Node) -> list[Node]:
        return [c for row in m[1] for c in row]

    @staticmethod
    def _is_vector(m: Node) -> bool:
        return len(m[1]) == 1 or all(len(r) == 1 for r in m[1])

    def _items(self, ps: list[Node], gs: list[Node], ordered: bool, dedup: bool = False) -> Result:
        """Item-wise comparison, in order or as a perfect matching (sets and bare lists)."""
        if max(len(ps), len(gs)) > MAX_ITEMS:
            return ("parse_fail", f"more than {MAX_ITEMS} items")  # bounds the n^2 matching
        if dedup:
            ps, gs = _dedup(ps), _dedup(gs)
        if len(ps) != len(gs):
            return ("mismatch", f"{len(ps)} items for {len(gs)}")
        if ordered:
            results = [self.node(p, g) for p, g in zip(ps, gs)]
            return _all(results)
        # Unordered: a perfect matching between answer and gold items.
        table = [[self.node(p, g) for g in gs] for p in ps]
        if _perfect_matching([[r[0] == "match" for r in row] for row in table]):
            return MATCH
        # Undecidable items only matter if they could complete the matching.
        if _perfect_matching([[r[0] != "mismatch" for r in row] for row in table]):
            return next(r for row in table for r in row if r[0] in ("gold_fail", "parse_fail"))
        return MISMATCH

    def _gold_relation(self, p: Node, g: Node) -> Result:
        exprs, ops = g[1], g[2]
        if p[0] == "rel" and self._same_relation(p, g):
            return MATCH
        if "!=" in ops:
            return MISMATCH  # `x \ne 2` is no set of reals we compare; only the same relation matches
        if all(op == "=" for op in ops):
            if len(exprs) == 2 and _is_name(exprs[0]):
                gold_value = exprs[-1]
                if p[0] == "rel" and all(op == "=" for op in p[2]):
                    if _is_name(p[1][0]) and _squash(p[1][0][1]) != _squash(exprs[0][1]):
                        return ("mismatch", "different variable")
                    return self.node(p[1][-1], gold_value)
                return self.node(p, gold_value)
            if p[0] != "rel" or not all(op == "=" for op in p[2]) or len(p[1]) != 2:
                return MISMATCH
            if self.fast:
                raise NeedsSympy
            return self._equations(p, g)
        return self._sets(p, g)

    def _same_relation(self, p: Node, g: Node) -> bool:
        """The same chain written alike (`x \\geq 2` / `x >= 2`) or mirrored (`2 <= x`)."""
        if len(p[1]) != len(g[1]):
            return False
        if p[2] == g[2]:
            pairs = zip(p[1], g[1])
        elif [FLIP.get(op, op) for op in reversed(p[2])] == g[2]:
            pairs = zip(reversed(p[1]), g[1])
        else:
            return False
        return all(self.node(a, b)[0] == "match" for a, b in pairs)

    def _sets(self, p: Node, g: Node) -> Result:
        """A gold inequality against the answer's set of reals (an interval, union, inequality)."""
        if self.fast:
            raise NeedsSympy
        try:
            gs = as_set(g)
        except ValueError as exc:
            return ("gold_fail", f"gold inequality: {exc}")
        try:
            ps = as_set(p)
        except ValueError as exc:
            return ("parse_fail", f"answer: {exc}")
        return MATCH if sets_equal(ps, gs) else MISMATCH

    def _equations(self, p: Node, g: Node) -> Result:
        try:
            gl, gr = (to_sympy(e[1]) for e in g[1])
        except (SympyParseError, IndexError) as exc:
            return ("gold_fail", f"gold: {exc}")
        try:
            pl, pr = (to_sympy(e[1]) for e in p[1])
        except (SympyParseError, IndexError) as exc:
            return ("parse_fail", f"answer: {exc}")
        return MATCH if ratio_constant(pl - pr, gl - gr) else MISMATCH


def settle_approx(n: Node) -> Node:
    """A chain with `\\approx` read as its exact part: `x = 2/7 \\approx 0.29` is `x = 2/7`, and
    `2/7 \\approx 0.29` is `2/7`; `x \\approx 0.29` (nothing exact before it) is `x = 0.29`."""
    if n[0] != "rel" or "~" not in n[2]:
        return n
    exprs, ops = n[1], n[2]
    i = ops.index("~")
    if i == 0 and _is_name(exprs[0]):
        return ("rel", exprs, ["=" if op == "~" else op for op in ops])
    if i == 0:
        return exprs[0]
    return ("rel", exprs[: i + 1], ops[:i])


def _fraction(x: Any) -> Any:
    """An mpmath real as an exact Fraction (mantissa * 2**exponent)."""
    man, exp = x.man_exp
    return Fraction(man) * (Fraction(2) ** exp) if man else Fraction(0)


def _is_name(n: Node) -> bool:
    """A variable or function name on the left of an assignment (`x`, `a_1`, `f(x)`, `D`)."""
    return n[0] == "scalar" and bool(re.fullmatch(r"[A-Za-z](?:_\{?\w+\}?)?(?:\([^()]*\))?|\\[a-zA-Z]+", n[1]))


def _dedup(items: list[Node]) -> list[Node]:
    seen, out = set(), []
    for it in items:
        key = repr(it)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


def _all(results: list[Result]) -> Result:
    for kind in ("mismatch", "gold_fail", "parse_fail"):
        for r in results:
            if r[0] == kind:
                return r
    return MATCH


def _perfect_matching(ok: list[list[bool]]) -> bool:
    """Whether every row can be paired with a distinct column where ok is True (Kuhn)."""
    n = len(ok)
    match_of_col: list[int | None] = [None] * n

    def augment(r: int, seen: list[bool]) -> bool:
        for c in range(n):
            if ok[r][c] and not seen[c]:
                seen[c] = True
                if match_of_col[c] is None or augment(match_of_col[c], seen):
                    match_of_col[c] = r
                    return True
        return False

    return all(augment(r, [False] * n) for r in range(n))


MAX_ITEMS = 64
MAX_ANSWER_CHARS = 4000  # longer "answers" are prose or attacks; the clean-up regexes stay cheap


def _prepare(answer: str, gold: str) -> tuple[Node, Node] | Result:
    if len(gold) > MAX_ANSWER_CHARS:
        return ("gold_fail", f"gold longer than {MAX_ANSWER_CHARS} characters")
    if len(answer) > MAX_ANSWER_CHARS:
        return ("parse_fail", f"answer longer than {MAX_ANSWER_CHARS} characters")
    gold = gold_answer(gold)
    p, g = decimal_comma(clean_math(answer), clean_math(gold))
    try:
        gn = parse_structure(g)
    except StructureError as exc:
        return ("gold_fail", f"gold: {exc}")
    try:
        pn = parse_structure(p)
    except StructureError as exc:
        return ("parse_fail", f"answer: {exc}")
    return pn, gn


@register("math")
class MathVerifier(Verifier):
    """Math answers (see the module docstring)."""

    bare_answer_max_chars = 80  # a bare `3.14` or `\\frac{1}{2}`, not prose
    free_text = True
    option_names = frozenset({"percent", "rel_tol", "ordered"})

    def accepts_bare(self, text: str) -> bool:
        return super().accepts_bare(text) and not is_prose(text)

    def validate_options(self, options: dict[str, Any]) -> None:
        validate_number_options(options)
        if not isinstance(options.get("ordered", False), bool):
            raise ValueError(f"ordered must be a bool, got {options['ordered']!r}")

    def compare(self, answer: str, gold: str, options: dict[str, Any]) -> Result:
        prepared = _prepare(answer, gold)
        if isinstance(prepared[0], str):
            return prepared  # type: ignore[return-value]
        return _Comparer(options, fast=False).node(*prepared)

    def fast_compare(self, answer: str, gold: str, options: dict[str, Any]) -> Result | None:
        if _PLAIN_NUMBER.fullmatch(answer) and _PLAIN_NUMBER.fullmatch(gold):
            # The commonest case, without the LaTeX clean-up: two plain decimal numbers.
            p, g = parse_number(answer), parse_number(gold)
            if p is not None and g is not None:
                return MATCH if numbers_equal(p, g, rel_tol=options.get("rel_tol")) else MISMATCH
        prepared = _prepare(answer, gold)
        if isinstance(prepared[0], str):
            return prepared  # type: ignore[return-value]
        try:
            return _Comparer(options, fast=True).node(*prepared)
        except NeedsSympy:
            return None
