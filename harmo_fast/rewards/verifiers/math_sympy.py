"""Guarded LaTeX -> sympy parsing and the equivalence of two scalar expressions.

Only strings that passed `guards.too_big` reach the parser (latex2sympy2_extended's ANTLR
grammar, which never evaluates Python code). Equivalence: exact for rationals; 30-digit numeric
evaluation for other constants; random-point evaluation for expressions with variables (names
are kept apart), with `simplify` as the last resort. Results are never printed with `str()`, whose
cost on huge numbers is what makes other verifiers hang."""
from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from harmo_fast.rewards.guards import too_big

NUM_POINTS = 5
REL_TOL = 1e-10


class SympyParseError(ValueError):
    """The text could not be turned into a sympy expression (or was refused by the guards)."""


@lru_cache(maxsize=4096)
def to_sympy(text: str) -> Any:
    """The sympy expression of a cleaned LaTeX scalar; SympyParseError when refused or invalid."""
    reason = too_big(text)
    if reason:
        raise SympyParseError(reason)
    import sympy
    from latex2sympy2_extended import latex2sympy

    try:
        expr = latex2sympy(text)
    except Exception as exc:  # noqa: BLE001 - the parser raises many kinds
        raise SympyParseError(f"unparseable: {type(exc).__name__}") from None
    if not isinstance(expr, sympy.Basic):
        raise SympyParseError(f"not an expression: {type(expr).__name__}")
    if expr.has(sympy.zoo, sympy.nan):
        raise SympyParseError("undefined value (division by zero)")
    i = sympy.Symbol("i")
    if i in getattr(expr, "free_symbols", ()):
        expr = expr.xreplace({i: sympy.I})
    return expr


def _is_expr(e: Any) -> bool:
    import sympy

    return isinstance(e, sympy.Expr)


def _num(e: Any, subs: dict | None = None) -> Any:
    """A 30-digit value of `e` as an mpmath number (no exponent range limit: `1/2006!` is not
    0), None when it is not a finite number."""
    import mpmath
    import sympy

    try:
        v = (e.xreplace(subs) if subs else e).evalf(30)
        if v.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) or v.free_symbols:
            return None
        re_, im_ = v.as_real_imag()
        c = mpmath.mpc(mpmath.mpf(sympy.Float(re_, 30)._mpf_), mpmath.mpf(sympy.Float(im_, 30)._mpf_))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError):
        return None
    if not mpmath.isfinite(c):
        return None
    return c


def _close(a: Any, b: Any, rel: float = REL_TOL) -> bool:
    d = abs(a - b)
    return d == 0 or d <= rel * max(abs(a), abs(b))


def exprs_equal(p: Any, g: Any) -> bool:
    """Whether two sympy objects are the same mathematical value."""
    import sympy

    if p == g:
        return True
    if not (_is_expr(p) and _is_expr(g)):
        return False
    if p.has(sympy.oo, -sympy.oo, sympy.zoo) or g.has(sympy.oo, -sympy.oo, sympy.zoo):
        return sympy.simplify(p - g) == 0
    if not p.free_symbols and not g.free_symbols:
        if p.is_Rational and g.is_Rational:
            return False  # exact and different
        a, b = _num(p), _num(g)
        if a is None or b is None:
            return sympy.simplify(p - g) == 0
        return _close(a, b)
    return _agree_at_points(p, g)


def _agree_at_points(p: Any, g: Any) -> bool:
    """Equal values at random points, each variable name drawn independently (so `x+1` and
    `y+1` differ, while `\\sin^2 x + \\cos^2 x` equals 1); simplify when undecided."""
    import sympy

    names = sorted({s.name for s in p.free_symbols} | {s.name for s in g.free_symbols})
    rng = random.Random(12345)
    agreed = 0
    for _ in range(3 * NUM_POINTS):
        vals = {n: sympy.Float(rng.uniform(0.3, 2.7), 30) for n in names}
        a = _num(p, {s: vals[s.name] for s in p.free_symbols})
        b = _num(g, {s: vals[s.name] for s in g.free_symbols})
        if a is None or b is None:
            continue
        if not _close(a, b, 1e-9):
            return False
        agreed += 1
        if agreed >= NUM_POINTS:
            return True
    by_name = {s.name: s for s in p.free_symbols}
    return sympy.simplify(p - g.xreplace({s: by_name.get(s.name, s) for s in g.free_symbols})) == 0


def ratio_constant(p: Any, g: Any) -> bool:
    """Whether p = c*g for a nonzero constant c (two equations written differently)."""
    import sympy

    names = {s.name for s in p.free_symbols} | {s.name for s in g.free_symbols}
    rng = random.Random(54321)
    ratio = None
    agreed = 0
    for _ in range(3 * NUM_POINTS):
        vals = {n: sympy.Float(rng.uniform(0.3, 2.7), 30) for n in names}
        a = _num(p, {s: vals[s.name] for s in p.free_symbols})
        b = _num(g, {s: vals[s.name] for s in g.free_symbols})
        if a is None or b is None or abs(b) < 1e-12:
            continue
        r = a / b
        if abs(r) < 1e-12:
            return False
        if ratio is None:
            ratio = r
        elif not _close(r, ratio, 1e-8):
            return False
        agreed += 1
        if agreed >= NUM_POINTS:
            return True
    return False
