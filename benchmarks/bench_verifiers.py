"""Rule-verifier throughput and tail latency, against math-verify's parse+verify.

    pytest benchmarks/bench_verifiers.py --benchmark-only -s

Groups:
- verifiers-simple: plain numbers, letters, yes/no and short strings, one process (per core):
  our in-process fast path vs math-verify parse+verify.
- verifiers-simple-numbers: the same with plain numbers only (math-verify's best case).
- verifiers-untagged: short free-text answers with no tag or box (`The result is $14$`, a GSM8K
  `#### 72` line, a number at the end of a sentence), one process.
- verifiers-corpus: our labelled free-form corpus (python_tests/verifier_cases.py), math rows:
  accuracy of ours and of math-verify against the labels, and their agreement (printed with -s).
- verifiers-mixed: long solutions with symbolic LaTeX, numbers, multiple choice and text:
  our VerifierPool with 2 workers vs math-verify single-process. Every round draws a fresh
  batch, so no cache is warm across rounds (for either side).
- verifiers-hostile: batches of 8 ordinary samples plus hostile inputs (size-guard cases and a
  verifier that hangs in C code, standing for an input no guard catches); the p99 batch
  latency must stay within timeout + 1 s. (A batch's latency is at least the time its ordinary
  samples need, so the bound is checked on batches whose ordinary part is small.)
"""

from __future__ import annotations

import random
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _rate import record_rate  # benchmarks/ is on sys.path under pytest

from harmo_fast.rewards.pool import VerifierPool
from harmo_fast.rewards.verify import fast_verify, verify_inline

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python_tests"))
from verifier_cases import CASES  # the corpus lives next to the tests

TIMEOUT_S = 2.0
N_SIMPLE = 400
N_MIXED = 96
N_CLEAN_WITH_HOSTILE = 8  # ordinary samples in each hostile batch (they alone take well under 1 s)


def _filler(rng: random.Random, words: int) -> str:
    vocab = [
        "we", "compute", "the", "value", "of", "each", "term", "then", "substitute", "and", "simplify", "so",
        "that", "the", "result", "follows",
    ]  # fmt: skip
    return " ".join(rng.choice(vocab) for _ in range(words))


def simple_batch(seed: int, n: int = N_SIMPLE) -> list[tuple[str, str, str, dict]]:
    """Short answers: numbers (some wrong), letters, yes/no, short strings."""
    rng = random.Random(seed)
    items = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            v = rng.randint(1, 10**6)
            pred = v if rng.random() < 0.7 else v + 1
            items.append((f"The answer is \\boxed{{{pred:,}}}", str(v), "math", {}))
        elif kind == 1:
            gold = rng.choice("ABCD")
            items.append((f"<answer>({rng.choice('ABCD')})</answer>", gold, "multiple_choice", {}))
        elif kind == 2:
            items.append((f"<answer>{rng.choice(['Yes', 'No'])}</answer>", rng.choice(["yes", "no"]), "yes_no", {}))
        else:
            word = rng.choice(["stop", "exit", "cafe", "route 66", "main street"])
            items.append(
                (f"<answer>{word.title()}</answer>", rng.choice(["stop", "exit", "route 66"]), "short_text", {})
            )
    return items


def numbers_batch(seed: int, n: int = N_SIMPLE) -> list[tuple[str, str, str, dict]]:
    """Plain numbers only (math-verify's best case): integers, decimals, thousands separators."""
    rng = random.Random(seed)
    items = []
    for k in range(n):
        v = rng.randint(1, 10**6) if k % 2 else round(rng.uniform(0, 1000), 2)
        pred = v if rng.random() < 0.7 else v + 1
        text = f"{pred:,}" if k % 4 == 1 else str(pred)
        items.append((f"The answer is \\boxed{{{text}}}", str(v), "math", {}))
    return items


def untagged_batch(seed: int, n: int = N_SIMPLE) -> list[tuple[str, str, str, dict]]:
    """Short free-text answers without a tag or box, some wrong."""
    rng = random.Random(seed)
    items = []
    for k in range(n):
        v = rng.randint(1, 10**5)
        pred = v if rng.random() < 0.7 else v + 1
        style = k % 4
        if style == 0:
            text = f"The result is ${pred}$."
        elif style == 1:
            text = f"{v - 3} + 3 = {pred}\n#### {pred}"
        elif style == 2:
            text = f"Adding them up, we get {pred} apples in total."
        else:
            text = f"So \\( x = {pred} \\)."
        items.append((text, str(v), "math", {}))
    return items


def mixed_batch(seed: int, n: int = N_MIXED) -> list[tuple[str, str, str, dict]]:
    """Long solutions ending in symbolic LaTeX, numbers, multiple choice and text answers."""
    rng = random.Random(seed)
    items = []
    for k in range(n):
        a, b, c = rng.randint(2, 19), rng.randint(2, 19), rng.randint(2, 9)
        body = _filler(rng, rng.randint(150, 400))
        kind = k % 8
        if kind == 0:
            pred, gold = f"\\frac{{{a}\\sqrt{{{c}}}}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}\\sqrt{{{c}}}"
        elif kind == 1:
            pred, gold = f"(x+{a})^2", f"x^2+{2 * a}x+{a * a + (k % 3 == 0)}"
        elif kind == 2:
            pred, gold = f"\\left({a}, {a + b}\\right]", f"({a},{a + b}]"
        elif kind == 3:
            pred, gold = f"{a} \\pm \\sqrt{{{c}}}", f"{a}+\\sqrt{{{c}}}, {a}-\\sqrt{{{c}}}"
        elif kind == 4:
            pred, gold = f"{a * 1000 + b:,}", str(a * 1000 + b)
        elif kind == 5:
            pred, gold = f"\\frac{{{a}}}{{{b}}}", f"{a / b:.6f}"
        elif kind == 6:
            letter = rng.choice("ABCD")
            items.append((f"{body}\nAnswer: ({letter})", rng.choice("ABCD"), "multiple_choice", {}))
            continue
        else:
            items.append((f"{body}\n<answer>Route {a}</answer>", f"route {a}", "short_text", {}))
            continue
        items.append((f"<think>{body}</think>\nSo the final answer is $\\boxed{{{pred}}}$.", gold, "math", {}))
    return items


def _math_verify_all(items) -> int:
    from math_verify import parse, verify

    ok = 0
    for completion, gold, _, _ in items:
        g = parse(f"${gold}$")
        ok += bool(verify(g, parse(completion)))
    return ok


class _Rounds:
    """A fresh batch per round (pedantic setup), so caches never carry over."""

    def __init__(self, make, start: int) -> None:
        self.make, self.seed = make, start

    def __call__(self):
        self.seed += 1
        return (self.make(self.seed),), {}


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(num_workers=2, timeout_s=TIMEOUT_S).start() as p:
        yield p


# benchmark group -> (batch builder, seed, whether each answer must have been located in free text)
FAST_PATH_SETS = {
    "verifiers-simple": (simple_batch, 100, False),
    "verifiers-simple-numbers": (numbers_batch, 200, False),
    "verifiers-untagged": (untagged_batch, 300, True),
}


@pytest.mark.parametrize("group", list(FAST_PATH_SETS))
def test_fast_path_math_verify(benchmark, group):
    make, seed, _ = FAST_PATH_SETS[group]
    benchmark.group = group
    benchmark.extra_info["baseline"] = True
    benchmark.extra_info["items"] = N_SIMPLE
    benchmark.pedantic(_math_verify_all, setup=_Rounds(make, seed), rounds=5, warmup_rounds=1)
    record_rate(benchmark, "per_s", N_SIMPLE)


@pytest.mark.parametrize("group", list(FAST_PATH_SETS))
def test_fast_path_harmo_in_process(benchmark, group):
    make, seed, untagged = FAST_PATH_SETS[group]

    def run(items):
        return [fast_verify(*it[:3], **it[3]) for it in items]

    benchmark.group = group
    benchmark.extra_info["items"] = N_SIMPLE
    out = benchmark.pedantic(run, setup=_Rounds(make, seed), rounds=5, warmup_rounds=1)
    assert all(v is not None for v in out)  # every case took the fast path
    if untagged:
        assert all(v.located is not None for v in out)
    record_rate(benchmark, "per_s", N_SIMPLE)


def _math_verify_one(completion: str, gold: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(f"${gold}$"), parse(completion)))


@pytest.mark.benchmark(group="verifiers-corpus")
def test_corpus_agreement(benchmark):
    rows = [c for c in CASES if c.task_type == "math"]

    def grade(rows):
        return [verify_inline(c.completion, c.gold, "math").correct for c in rows]

    ours = benchmark.pedantic(grade, args=(rows,), rounds=1, warmup_rounds=0)
    theirs = [_math_verify_one(c.completion, c.gold) for c in rows]
    labels = [c.expected for c in rows]
    n = len(rows)
    ours_acc = sum(o == e for o, e in zip(ours, labels)) / n
    theirs_acc = sum(t == e for t, e in zip(theirs, labels)) / n
    agree = sum(o == t for o, t in zip(ours, theirs)) / n
    benchmark.extra_info.update(
        rows=n, ours=round(ours_acc, 3), math_verify=round(theirs_acc, 3), agree=round(agree, 3)
    )
    print(f"\ncorpus math rows: {n}; ours {ours_acc:.3f}, math-verify {theirs_acc:.3f}, agreement {agree:.3f}")
    categories = sorted({c.category for c in rows})
    for cat in categories:
        idx = [i for i, c in enumerate(rows) if c.category == cat]
        o = sum(ours[i] == labels[i] for i in idx)
        t = sum(theirs[i] == labels[i] for i in idx)
        print(f"  {cat:22} {len(idx):4d} rows  ours {o / len(idx):.3f}  math-verify {t / len(idx):.3f}")
    for i, c in enumerate(rows):
        if theirs[i] != labels[i]:
            print(f"  math-verify differs from the label ({c.category}): {c.completion[:70]!r} vs {c.gold!r}")
    assert ours_acc >= theirs_acc


@pytest.mark.benchmark(group="verifiers-mixed")
def test_mixed_math_verify(benchmark):
    benchmark.extra_info["baseline"] = True
    benchmark.extra_info["items"] = N_MIXED
    benchmark.pedantic(_math_verify_all, setup=_Rounds(mixed_batch, 1000), rounds=3, warmup_rounds=1)
    record_rate(benchmark, "per_s", N_MIXED, 1)


@pytest.mark.benchmark(group="verifiers-mixed")
def test_mixed_harmo_pool_2_workers(benchmark, pool):
    benchmark.extra_info["items"] = N_MIXED
    out = benchmark.pedantic(pool.verify_many, setup=_Rounds(mixed_batch, 1000), rounds=3, warmup_rounds=1)
    assert not any(v.reason in ("error", "timeout") for v in out)
    record_rate(benchmark, "per_s", N_MIXED, 1)


@pytest.mark.benchmark(group="verifiers-mixed")
def test_mixed_harmo_in_process(benchmark):
    def run(items):
        return [verify_inline(*it[:3], **it[3]) for it in items]

    benchmark.extra_info["items"] = N_MIXED
    benchmark.pedantic(run, setup=_Rounds(mixed_batch, 1000), rounds=3, warmup_rounds=1)
    record_rate(benchmark, "per_s", N_MIXED, 1)


HOOK = textwrap.dedent("""
    import re
    from harmo_fast.rewards.verifiers import register
    from harmo_fast.rewards.verifiers.base import Verifier

    @register("_bench_hang")
    class Hang(Verifier):
        bare_answer_max_chars = 1000
        def compare(self, answer, gold, options):
            re.match(r"(a+)+$", "a" * 64 + "b")  # hangs inside the C regex engine
            return "match", ""
""")

HOSTILE = [
    (r"\boxed{9^{9^{9^{9^{9}}}}}", "1", "math", {}),
    (r"\boxed{10^{10^{10^{10}}}}", "x", "math", {}),
    (r"\boxed{99999999!}", "1", "math", {}),
    (r"\boxed{" + "9" * 100000 + "}", "1", "math", {}),
    (r"\boxed{" + "(" * 3000 + "x" + ")" * 3000 + "}", "x", "math", {}),
    ("\\boxed{" * 50000, "1", "math", {}),
    # passes the guards; undefined functions send it to sympy's simplify, which runs for minutes
    (r"\boxed{(f(x)+g(x)+1)^{120}}", r"(1+g(x)+f(x))^{119}(1+f(x)+g(y))", "math", {}),
]


@pytest.mark.benchmark(group="verifiers-hostile")
def test_hostile_batch_latency(benchmark, tmp_path):
    (tmp_path / "harmo_bench_hang.py").write_text(HOOK)
    sys.path.insert(0, str(tmp_path))
    import harmo_bench_hang  # noqa: F401

    latencies = []
    with VerifierPool(num_workers=2, timeout_s=TIMEOUT_S, preload=["harmo_bench_hang"]).start() as p:

        def run(items):
            t = time.perf_counter()
            out = p.verify_many(items)
            latencies.append(time.perf_counter() - t)
            return out

        def setup_round(state={"seed": 5000}):  # noqa: B006 - a round counter
            state["seed"] += 1
            items = mixed_batch(state["seed"], N_CLEAN_WITH_HOSTILE) + HOSTILE + [("x", "y", "_bench_hang", {})]
            random.Random(state["seed"]).shuffle(items)
            return (items,), {}

        out = benchmark.pedantic(run, setup=setup_round, rounds=10, warmup_rounds=0)
    sys.path.remove(str(tmp_path))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    benchmark.extra_info["p99_s"] = round(p99, 3)
    benchmark.extra_info["bound_s"] = TIMEOUT_S + 1.0
    assert sum(v.reason == "timeout" for v in out) == 2
    assert p99 <= TIMEOUT_S + 1.0
