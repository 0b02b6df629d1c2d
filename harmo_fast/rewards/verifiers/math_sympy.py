"""Guarded LaTeX -> sympy parsing and the equivalence of two scalar expressions.

Only strings that passed `guards.too_big` reach the parser (latex2sympy2_extended's ANTLR
grammar, which never evaluates Python code). Equivalence of exact expressions: their difference,
at random rational points for expressions with variables (names are kept apart), must evaluate
to zero under sympy's adaptive-precision evalf, never "close to zero" (so `(x+y+1)^{40}` and
`(x+y+1)^{40}+1` differ, and so do `1/2004!` and `1/2006!`). Expressions with decimal literals
compare to a relative 1e-10. `simplify` is the last resort when evaluation is undefined. Results
are never printed with `str()`, whose cost on huge numbers is what makes other verifiers hang."""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any

from harmo_fast.rewards.guards import too_big

NUM_POINTS = 5
REL_TOL = 1e-10  # for expressions with decimal literals (15-digit floats)
ZERO_DIGITS = 60
ZERO_BITS = 8  # an evaluated difference with at most this many significant bits is 0

# sympy, mpmath and latex2sympy2_extended are imported inside the functions that use them: they are
# heavy to import, and a process that only takes the fast path (the trainer, a verl reward process)
# never needs them; the worker zygote imports them once, in its warm-up.


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
    except Exception as exc:
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


def numeric_value(e: Any, subs: dict | None = None) -> Any:
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


def _is_zero(d: Any) -> bool | None:
    """Whether the closed-form number `d` is exactly 0, judged with sympy's adaptive evalf: a
    zero difference evaluates to a value without significant digits (`0.e-190`), a nonzero one
    to accurate digits however large the cancelling terms are. None when `d` is undefined."""
    import sympy

    if d == 0:
        return True
    try:
        v = d.evalf(ZERO_DIGITS)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError, RecursionError):
        return None
    if v.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) or v.free_symbols:
        return None
    parts = v.as_real_imag()
    for part in parts:
        if part == 0:
            continue
        if not isinstance(part, sympy.Float):
            return None
        if part._prec > ZERO_BITS:
            return False
    return True


def _exact(e: Any) -> bool:
    """No decimal literal inside: values can be compared without any tolerance."""
    import sympy

    return not e.has(sympy.Float)


def _same_value(a: Any, b: Any, exact: bool) -> bool | None:
    """Whether two closed-form numbers are equal (None when undefined)."""
    if exact:
        return _is_zero(a - b)
    x, y = numeric_value(a), numeric_value(b)
    if x is None or y is None:
        return None
    return _close(x, y)


def _points(names: list[str], exact: bool, seed: int) -> Any:
    """Random evaluation points: small rationals for exact expressions, floats otherwise."""
    import sympy

    rng = random.Random(seed)
    while True:
        if exact:
            yield {n: sympy.Rational(rng.randint(3, 97), rng.randint(11, 53)) for n in names}
        else:
            yield {n: sympy.Float(rng.uniform(0.3, 2.7), 30) for n in names}


def exprs_equal(p: Any, g: Any) -> bool:
    """Whether two sympy objects are the same mathematical value."""
    import sympy

    if p == g:
        return True
    if not (_is_expr(p) and _is_expr(g)):
        return False
    if p.has(sympy.oo, -sympy.oo, sympy.zoo) or g.has(sympy.oo, -sympy.oo, sympy.zoo):
        return sympy.simplify(p - g) == 0
    exact = _exact(p) and _exact(g)
    if not p.free_symbols and not g.free_symbols:
        same = _same_value(p, g, exact)
        return sympy.simplify(p - g) == 0 if same is None else same
    return _agree_at_points(p, g, exact)


def _agree_at_points(p: Any, g: Any, exact: bool) -> bool:
    """Equal values at random points, each variable name drawn independently (so `x+1` and
    `y+1` differ, while `\\sin^2 x + \\cos^2 x` equals 1); simplify when undecided."""
    import sympy

    names = sorted({s.name for s in p.free_symbols} | {s.name for s in g.free_symbols})
    agreed = 0
    points = _points(names, exact, 12345)
    for _ in range(3 * NUM_POINTS):
        vals = next(points)
        same = _same_value(
            p.xreplace({s: vals[s.name] for s in p.free_symbols}),
            g.xreplace({s: vals[s.name] for s in g.free_symbols}),
            exact,
        )
        if same is None:
            continue
        if not same:
            return False
        agreed += 1
        if agreed >= NUM_POINTS:
            return True
    by_name = {s.name: s for s in p.free_symbols}
    return sympy.simplify(p - g.xreplace({s: by_name.get(s.name, s) for s in g.free_symbols})) == 0


def ratio_constant(p: Any, g: Any) -> bool:
    """Whether p = c*g for a nonzero constant c (two equations written differently)."""
    names = sorted({s.name for s in p.free_symbols} | {s.name for s in g.free_symbols})
    exact = _exact(p) and _exact(g)
    points = _points(names, exact, 54321)
    ratio = None
    agreed = 0
    for _ in range(3 * NUM_POINTS):
        vals = next(points)
        a = p.xreplace({s: vals[s.name] for s in p.free_symbols})
        b = g.xreplace({s: vals[s.name] for s in g.free_symbols})
        if _is_zero(b) is not False or _is_zero(a) is not False:
            continue  # a root of either side says nothing about the ratio
        r = a / b
        if ratio is None:
            ratio = r
            continue
        same = _same_value(r, ratio, exact)
        if same is None:
            continue
        if not same:
            return False
        agreed += 1
        if agreed >= NUM_POINTS:
            return True
    return False
