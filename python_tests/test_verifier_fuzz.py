"""Fuzzing: random and adversarial completions and golds must never raise out of the reward
layer, never produce an "error" verdict (a verifier bug), and never take long in-process.

The default run tries a few hundred examples; set HARMO_FUZZ_EXAMPLES=10000 for a long run."""

import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmo_fast.rewards.extract import extract_answer
from harmo_fast.rewards.types import TASK_TYPES, Verdict
from harmo_fast.rewards.verify import verify_inline

EXAMPLES = int(os.environ.get("HARMO_FUZZ_EXAMPLES", "300"))
SLOW_S = 10.0  # far above any legitimate verification; a guard failure shows up here

FRAGMENTS = [
    "\\boxed{",
    "\\fbox{",
    "}",
    "{",
    "\\}",
    "\\{",
    "^",
    "^{",
    "_",
    "\\frac",
    "\\dfrac",
    "\\sqrt",
    "\\sqrt[",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    "< think >",
    "Answer:",
    "**",
    "final answer is",
    "The answer is",
    "\\pm",
    "\\mp",
    "\\cup",
    "\\cap",
    "(",
    ")",
    "[",
    "]",
    "\\left(",
    "\\right]",
    "\\begin{pmatrix}",
    "\\end{pmatrix}",
    "\\begin{array}{cc}",
    "&",
    "\\\\",
    "=",
    "<",
    ">",
    "\\le",
    "\\geq",
    "\\ne",
    "%",
    "\\%",
    "!",
    "!!",
    "e",
    "i",
    "x",
    "y",
    "\\pi",
    "\\infty",
    "-",
    "+",
    "*",
    "/",
    ",",
    ".",
    ";",
    ":",
    " ",
    "\n",
    "9",
    "99",
    "0",
    "1",
    "2",
    "10^{",
    "9^{9^{9",
    "\\times 10^{",
    "e5",
    "1,234",
    "1{,}000",
    "\\,",
    "\\!",
    ",\\! 000",
    "2500,75",
    "####",
    "#### 7 eggs",
    "Final Answer: The final answer is",
    "\\approx",
    "≈",
    "\\lt",
    "\\gt",
    "\\neq",
    "g(x)",
    "km/h",
    "\\text{km} / \\mathrm{h}",
    "\\text{",
    "\\text{ cm}",
    "\\mathrm{",
    "^\\circ",
    "°",
    "$",
    "$$",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "yes",
    "no",
    "(A)",
    "B.",
    "C",
    "three",
    "twenty-one",
    "and",
    "or",
    "\\lor",
    "\\in",
    "\\emptyset",
    "\\mathbb{R}",
    "\\binom{",
    "\\log",
    "\\sin",
    "\\int",
    "\\sum_{",
    "\\lim",
    "\\",
    "\x00",
    "ＳＴＯＰ",
    "١٢٣",
    "∞",
    "≤",
    "±",
    "−",
    "x_1",
    "f(x)",
    "a_{n+1}",
    "\\langle",
    "\\rangle",
    "\\operatorname{",
    "\\ldots",
    "1:00",
]

fragment_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
texts = st.one_of(
    fragment_text, st.text(max_size=200), st.text(alphabet="0123456789^{}!\\()[],.-+*/=<>xe ", max_size=120)
)
golds = st.one_of(
    st.sampled_from(
        [
            "42",
            "\\frac{1}{2}",
            "x^2+1",
            "(1,2]",
            "\\{1,2\\}",
            "1 \\pm \\sqrt{2}",
            "x > 2",
            "B",
            "yes",
            "3",
            "stop sign",
            "28\\%",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
            "1.2e-10",
            "y=2x+1",
        ]
    ),
    texts.filter(lambda s: s.strip() != ""),
)
options_for = {"multiple_choice": {"choices": ["red", "green", "blue"]}}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(completion=texts, gold=golds, task_type=st.sampled_from(TASK_TYPES), fallback=st.booleans())
def test_never_raises_or_errors(completion, gold, task_type, fallback):
    extract_answer(completion, last_number_fallback=fallback)
    t = time.perf_counter()
    v = verify_inline(completion, gold, task_type, last_number_fallback=fallback, **options_for.get(task_type, {}))
    elapsed = time.perf_counter() - t
    assert isinstance(v, Verdict)
    assert v.reason != "error", (completion, gold, task_type, v.detail)
    assert v.score in (0.0, 1.0) and v.correct == (v.score == 1.0)
    assert elapsed < SLOW_S, (completion, gold, task_type, elapsed)


@settings(max_examples=max(50, EXAMPLES // 6), deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(answer=texts, gold=golds)
def test_math_boxed_answers(answer, gold):
    v = verify_inline(f"\\boxed{{{answer}}}", gold, "math")
    assert v.reason != "error", (answer, gold, v.detail)
