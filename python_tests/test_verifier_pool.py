"""VerifierPool: order, the in-process fast path, hard timeouts on C-level hangs, exceptions and
crashed workers becoming verdicts, transparent worker replacement, thread safety."""

import textwrap
import threading
import time

import pytest

from harmo_fast.rewards.pool import VerifierPool
from harmo_fast.rewards.verify import verify

TIMEOUT_S = 1.5

HOOKS = textwrap.dedent('''
    """Test-only verifiers loaded into the pool's workers."""
    import os
    import re

    from harmo_fast.rewards.verifiers import register
    from harmo_fast.rewards.verifiers.base import Verifier


    class _Hook(Verifier):
        bare_answer_max_chars = 1000


    @register("_test_hang")
    class Hang(_Hook):
        def compare(self, answer, gold, options):
            # Catastrophic backtracking runs inside the C regex engine: no signal can stop it.
            re.match(r"(a+)+$", "a" * 64 + "b")
            return "match", ""


    @register("_test_crash")
    class Crash(_Hook):
        def compare(self, answer, gold, options):
            os._exit(7)


    @register("_test_raise")
    class Raise(_Hook):
        def compare(self, answer, gold, options):
            raise RuntimeError("boom in verifier")
''')

SYMBOLIC = (r"\boxed{(x+1)^2}", "x^2+2x+1", "math", {})
# A real math input that passes the size guards and keeps sympy's simplify busy for minutes
# (undefined functions defeat numeric evaluation, so the verifier falls back to simplify).
SLOW_MATH = (r"\boxed{(f(x)+g(x)+1)^{120}}", r"(1+g(x)+f(x))^{119}(1+f(x)+g(y))", "math", {})
SYMBOLIC_WRONG = (r"\boxed{(x+1)^2}", "x^2+1", "math", {})


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("hooks")
    (path / "harmo_test_pool_hooks.py").write_text(HOOKS)
    import sys

    sys.path.insert(0, str(path))
    import harmo_test_pool_hooks  # noqa: F401 - registers the hooks in the parent too

    with VerifierPool(num_workers=2, timeout_s=TIMEOUT_S, preload=["harmo_test_pool_hooks"]).start() as p:
        yield p
    sys.path.remove(str(path))


def test_order_and_results(pool):
    items = [
        SYMBOLIC,
        (r"\boxed{42}", "42", "math", {}),
        SYMBOLIC_WRONG,
        ("B", "B", "multiple_choice", {}),
        ("no", "yes", "yes_no", {}),
    ]
    got = [v.correct for v in pool.verify_many(items)]
    assert got == [True, True, False, True, False]
    assert pool.verify_many([]) == []


def test_simple_cases_never_reach_workers(pool):
    before = pool.dispatched
    items = [
        (r"\boxed{1,234}", "1234", "math", {}),
        ("(B)", "B", "multiple_choice", {}),
        ("yes", "yes", "yes_no", {}),
        ("STOP", "stop", "ocr", {}),
        ("three", "3", "counting", {}),
        ("<answer>3.14</answer>", "3.14", "numeric", {}),
    ] * 50
    assert all(v.correct for v in pool.verify_many(items))
    assert pool.dispatched == before
    pool.verify_many([SYMBOLIC])
    assert pool.dispatched == before + 1


def test_hang_in_c_code_times_out_and_batch_goes_on(pool):
    restarts = pool.restarts
    items = [("x", "y", "_test_hang", {}), SYMBOLIC, (r"\boxed{7}", "7", "math", {}), SYMBOLIC_WRONG]
    t = time.monotonic()
    verdicts = pool.verify_many(items)
    elapsed = time.monotonic() - t
    assert verdicts[0].reason == "timeout" and not verdicts[0].confident and verdicts[0].score == 0.0
    assert [v.correct for v in verdicts[1:]] == [True, True, False]
    assert elapsed < TIMEOUT_S + 1.0
    assert pool.restarts == restarts + 1
    assert pool.verify_many([SYMBOLIC])[0].correct  # the replaced worker serves again


def test_guard_passing_math_input_times_out(pool):
    t = time.monotonic()
    verdicts = pool.verify_many([SLOW_MATH, SYMBOLIC, ("x", "y", "_test_hang", {}), SYMBOLIC_WRONG, SYMBOLIC])
    elapsed = time.monotonic() - t
    assert [v.reason for v in verdicts] == ["timeout", "ok", "timeout", "mismatch", "ok"]
    assert elapsed < TIMEOUT_S + 1.0


def test_exception_becomes_error_verdict(pool):
    v_err, v_ok = pool.verify_many([("x", "y", "_test_raise", {}), SYMBOLIC])
    assert v_err.reason == "error" and not v_err.confident and "boom in verifier" in v_err.detail
    assert v_ok.correct


def test_crashed_worker_is_replaced(pool):
    restarts = pool.restarts
    verdicts = pool.verify_many([("x", "y", "_test_crash", {}), SYMBOLIC, SYMBOLIC_WRONG])
    assert [v.reason for v in verdicts] == ["error", "ok", "mismatch"]
    assert "died" in verdicts[0].detail and not verdicts[0].confident
    assert pool.restarts == restarts + 1
    assert [v.correct for v in pool.verify_many([SYMBOLIC, SYMBOLIC])] == [True, True]


def test_concurrent_callers(pool):
    results = {}

    def run(k):
        results[k] = [v.correct for v in pool.verify_many([SYMBOLIC, SYMBOLIC_WRONG, (r"\boxed{2}", "2", "math", {})])]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert results == {k: [True, False, True] for k in range(3)}


def test_invalid_items_raise_in_the_caller(pool):
    with pytest.raises(ValueError, match="task_type"):
        pool.verify_many([("1", "1", "nope", {})])
    with pytest.raises(ValueError, match=r"items\[0\]"):
        pool.verify_many([("1", "1", "math")])
    with pytest.raises(ValueError, match="options"):
        pool.verify_many([("1", "1", "math", None)])


def test_constructor_validation_and_close():
    with pytest.raises(ValueError, match="num_workers"):
        VerifierPool(num_workers=0)
    with pytest.raises(ValueError, match="timeout_s"):
        VerifierPool(timeout_s=-1)
    p = VerifierPool(num_workers=1, timeout_s=5)
    p.close()
    p.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        p.verify_many([SYMBOLIC])


def test_verify_with_timeout_uses_a_worker():
    assert verify(r"\boxed{(x+1)^2}", "x^2+2x+1", "math", timeout_s=30).correct
    assert verify(r"\boxed{5}", "5", "math", timeout_s=30).correct
