"""RewardPipeline: asynchronous submit, rules and model scoring at the same time, results in input
order, crashes and exceptions as error verdicts without a dead pipeline, clean close.

A probe verifier (written to a temporary module and preloaded into the worker processes) sleeps,
raises or kills its worker on demand; a fake model RM sleeps or raises on demand."""

import textwrap
import time

import pytest

from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.hybrid import HybridReward
from harmo_fast.rewards.pipeline import RewardPipeline
from harmo_fast.rewards.pool import VerifierPool
from harmo_fast.rewards.types import RewardSample

PROBE = textwrap.dedent(
    '''
    import os, time
    from harmo_fast.rewards.verifiers import register
    from harmo_fast.rewards.verifiers.base import Verifier

    @register("probe")
    class Probe(Verifier):
        """answer "crash" kills the worker, "raise" raises, "sleep" sleeps `gold` seconds."""
        bare_answer_max_chars = 100

        def compare(self, answer, gold, options):
            if answer == "crash":
                os._exit(3)
            if answer == "raise":
                raise RuntimeError("probe verifier bug")
            if answer == "sleep":
                time.sleep(float(gold))
                return "match", ""
            return ("match" if answer == gold else "mismatch"), ""
    '''
)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    import sys

    folder = tmp_path_factory.mktemp("probe")
    (folder / "harmo_probe_verifier.py").write_text(PROBE)
    sys.path.insert(0, str(folder))  # workers inherit sys.path through PYTHONPATH
    import harmo_probe_verifier  # noqa: F401 - registers "probe" in this process too

    pool = VerifierPool(num_workers=2, timeout_s=1.5, preload=["harmo_probe_verifier"])
    yield pool
    pool.close()
    sys.path.remove(str(folder))


class SlowRM:
    context = "reference"

    def __init__(self, delay=0.0, fail=False):
        self.delay, self.fail = delay, fail

    def score(self, answers, contexts):
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model RM exploded")
        return [0.9 if a == c else 0.3 for a, c in zip(answers, contexts)]


def S(completion, answer, task_type="math", group_id=0, length=10, **kw):
    return RewardSample(
        completion=completion, answer=answer, task_type=task_type, group_id=group_id, length=length, **kw
    )


def T(answer):
    return f"<think>work</think><answer>{answer}</answer>"


MIXED = [
    S(T("\\frac{x^2-1}{x-1}"), "x+1", "math", group_id=0, length=30),  # needs sympy: goes to a worker
    S(T("7"), "7", "numeric", group_id=0, length=12),
    S(T("C"), "C", "multiple_choice", group_id=1, length=5),
    S(T("a dog"), "a dog", "open_ended", group_id=1, length=8, reference="a dog"),
    S("no format, 3", "4", "counting", group_id=1, length=3),
    S(T("13"), "12", "math", group_id=0, length=4),
]


def test_results_in_input_order_equal_the_synchronous_router(pool):
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM()) as pipe:
        got = pipe.submit(MIXED).result(timeout=60)
    want = HybridReward(RewardConfig(), pool=pool, model_rm=SlowRM()).score(MIXED)
    assert got.total == want.total
    assert got.components == want.components
    assert got.verdicts == want.verdicts
    assert [v.scored_by for v in got.verdicts] == ["rule", "rule", "rule", "model", "rule", "rule"]
    assert got.components["hybrid"] == [1.0, 1.0, 1.0, 0.9, 0.0, 0.0]
    assert set(got.timings) == {"rules", "model", "total"}


def test_timeout_is_a_verdict(pool):
    # (the pool's own latency bound under hostile inputs is tested with the pool)
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM()) as pipe:
        res = pipe.score(
            [S(T("sleep"), "30", "probe"), S(T("sleep"), "30", "probe", reference="sleep"), S(T("1"), "1", "probe")]
        )
    assert [(v.reason, v.scored_by, v.score) for v in res.verdicts] == [
        ("timeout", "rule", 0.0),
        ("mismatch", "model", 0.9),
        ("ok", "rule", 1.0),
    ]
    assert "timeout -> model" in res.verdicts[1].detail


def test_submit_returns_before_scoring_finishes(pool):
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM(delay=1.0)) as pipe:
        t0 = time.perf_counter()
        fut = pipe.submit([S(T("x"), "g", "open_ended", reference="x")])
        assert time.perf_counter() - t0 < 0.5
        assert not fut.done()
        assert fut.result(timeout=30).components["hybrid"] == [0.9]
        assert time.perf_counter() - t0 >= 1.0


def test_rules_and_model_run_at_the_same_time(pool):
    """1 s of rule work and 1 s of model work finish together in well under their 2 s sum,
    within one batch and across two batches."""
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM(delay=1.0)) as pipe:
        pipe.score([S(T("x"), "x", "probe")])  # workers warm
        batch = [S(T("sleep"), "1.0", "probe"), S(T("x"), "g", "open_ended", reference="x")]
        t0 = time.perf_counter()
        res = pipe.score(batch)
        within = time.perf_counter() - t0
        assert res.components["hybrid"] == [1.0, 0.9]
        assert 1.0 <= within < 1.8, within
        t0 = time.perf_counter()
        a = pipe.submit([S(T("x"), "g", "open_ended", reference="x")])
        b = pipe.submit([S(T("sleep"), "1.0", "probe")])
        assert a.result(timeout=30).components["hybrid"] == [0.9]
        assert b.result(timeout=30).components["hybrid"] == [1.0]
        across = time.perf_counter() - t0
        assert 1.0 <= across < 1.8, across


def test_worker_crash_and_verifier_exception_become_error_verdicts(pool):
    restarts = pool.restarts
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM()) as pipe:
        res = pipe.score(
            [
                S(T("crash"), "x", "probe"),
                S(T("ok"), "ok", "probe"),
                S(T("raise"), "x", "probe"),
                S(T("7"), "7", "math"),
            ]
        )
        assert [v.reason for v in res.verdicts] == ["error", "ok", "error", "ok"]
        assert "died" in res.verdicts[0].detail and "probe verifier bug" in res.verdicts[2].detail
        assert res.components["hybrid"] == [0.0, 1.0, 0.0, 1.0]
        assert pool.restarts > restarts
        # the pipeline keeps serving, and a crash on a sample with a reference falls back to the model
        again = pipe.score([S(T("crash"), "x", "probe", reference="crash"), S(T("ok"), "ok", "probe")])
        assert [(v.scored_by, v.score) for v in again.verdicts] == [("model", 0.9), ("rule", 1.0)]


def test_model_failure_and_pool_failure_keep_the_pipeline_alive(pool):
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM(fail=True)) as pipe:
        res = pipe.score([S(T("x"), "g", "open_ended", reference="x"), S(T("2"), "2", "math")])
        assert [(v.reason, v.score) for v in res.verdicts] == [("error", 0.0), ("ok", 1.0)]
        assert "model RM exploded" in res.verdicts[0].detail

    class BrokenPool:
        def verify_many(self, items):
            raise OSError("pipe broken")

    with RewardPipeline(RewardConfig(), pool=BrokenPool(), model_rm=SlowRM()) as pipe:
        for _ in range(2):
            res = pipe.score(
                [S(T("\\frac{x^2-1}{x-1}"), "x+1"), S(T("5"), "5"), S(T("y"), "g", "open_ended", reference="y")]
            )
            assert [v.reason for v in res.verdicts] == [
                "error",
                "ok",
                "mismatch",
            ]  # only the sympy case needed the pool
            assert "pipe broken" in res.verdicts[0].detail


def test_unexpected_failure_still_resolves_the_future(pool, monkeypatch):
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM()) as pipe:
        monkeypatch.setattr(pipe.hybrid, "compose", lambda *a, **k: (_ for _ in ()).throw(ValueError("composer bug")))
        res = pipe.score([S(T("1"), "1"), S(T("2"), "2")])
        assert [v.reason for v in res.verdicts] == ["error", "error"] and res.total == [0.0, 0.0]
        assert "composer bug" in res.verdicts[0].detail
        monkeypatch.undo()
        assert pipe.score([S(T("1"), "1")]).components["hybrid"] == [1.0]


def test_malformed_arguments_raise_in_submit(pool):
    with RewardPipeline(RewardConfig(), pool=pool, model_rm=SlowRM()) as pipe:
        with pytest.raises(TypeError, match=r"samples\[0\]"):
            pipe.submit(["not a sample"])
        assert pipe.score([]).total == []


def test_close_is_clean_and_idempotent():
    pipe = RewardPipeline(RewardConfig(num_workers=1, timeout_s=3.0), model_rm=SlowRM(delay=0.3))
    fut = pipe.submit([S(T("x"), "g", "open_ended", reference="x"), S(T("3"), "3")])
    zygote = pipe.pool._zygote.proc  # the process that forks the pool's workers
    assert zygote.poll() is None
    pipe.close()  # waits for the batch in flight
    assert fut.done() and fut.result().components["hybrid"] == [0.9, 1.0]
    assert zygote.poll() is not None  # the pool it created is stopped
    pipe.close()
    with pytest.raises(RuntimeError, match="closed"):
        pipe.submit([S(T("1"), "1")])
