"""Inequalities, intervals and unions as sympy sets of reals, and their equality."""

from __future__ import annotations

from typing import Any

from harmo_fast.rewards.verifiers.math_structure import Node
from harmo_fast.rewards.verifiers.math_sympy import SympyParseError, to_sympy

FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
"""An inequality read from the other side."""


def as_set(n: Node) -> Any:
    """The set of reals a node describes: an inequality chain in one variable, an interval
    `(a,b]`, a union, or a list of those ("x < -1 or x > 2"). ValueError otherwise."""
    import sympy  # heavy to import: see math_sympy

    kind = n[0]
    try:
        if kind == "tuple" and len(n[3]) == 2 and n[1] in "([" and n[2] in ")]":
            a, b = (to_sympy(_scalar(x)) for x in n[3])
            return sympy.Interval(a, b, left_open=n[1] == "(", right_open=n[2] == ")")
        if kind in ("union", "list"):
            return sympy.Union(*(as_set(x) for x in n[1]))
        if kind == "set":
            return sympy.FiniteSet(*(to_sympy(_scalar(x)) for x in n[1]))
        if kind == "rel":
            return _relation_set(n)
        if kind == "scalar":
            return sympy.FiniteSet(to_sympy(n[1]))
    except SympyParseError as exc:
        raise ValueError(str(exc)) from None
    except (TypeError, NotImplementedError, AttributeError) as exc:
        # sympy refuses the pieces (e.g. an endpoint that parsed to a relation, not a number)
        raise ValueError(f"not a set of reals: {type(exc).__name__}") from None
    raise ValueError(f"not a set of reals: {kind}")


def _scalar(n: Node) -> str:
    if n[0] != "scalar":
        raise ValueError("interval endpoint is not a scalar")
    return n[1]


def _relation_set(n: Node) -> Any:
    import sympy  # heavy to import: see math_sympy
    from sympy.core.function import AppliedUndef

    exprs = [to_sympy(_scalar(e)) for e in n[1]]
    if not all(isinstance(e, sympy.Expr) for e in exprs):
        raise ValueError("an inequality side is not an expression")
    ops = n[2]
    if any(op not in FLIP for op in ops):
        raise ValueError("not an inequality")
    symbols = set().union(*(e.free_symbols for e in exprs))
    varying = [e for e in exprs if e.free_symbols]
    if not varying:
        raise ValueError("an inequality without a variable")
    named = len(symbols) != 1 or isinstance(varying[0], AppliedUndef)
    if named and all(e == varying[0] for e in varying[1:]):
        # `2 < g(x) < 5`, `0 < ab < 1`: the set is that of the bounded quantity itself.
        x = sympy.Dummy("v")
        exprs = [x if e.free_symbols else e for e in exprs]
    elif len(symbols) != 1:
        raise ValueError("an inequality needs exactly one variable")
    else:
        x = symbols.pop()
    rel = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge}
    result = sympy.S.Reals
    for left, op, right in zip(exprs, ops, exprs[1:]):
        cond = rel[op](left, right)
        result = sympy.Intersection(result, sympy.solveset(cond, x, sympy.S.Reals))
    return result


def sets_equal(a: Any, b: Any) -> bool:
    """Equality of two sets of reals (symmetric difference empty)."""
    import sympy  # heavy to import: see math_sympy

    if a == b:
        return True
    try:
        diff = sympy.Union(sympy.Complement(a, b), sympy.Complement(b, a))
        return diff.is_empty is True or diff == sympy.S.EmptySet
    except (TypeError, ValueError, NotImplementedError):
        return False
