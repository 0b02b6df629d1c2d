"""Free-form answers (issue 12): our labelled corpus (verifier_cases.py) graded case by case,
free-text location against strict_format, and hypothesis round-trips (one value written several
ways, in several places of a response, must always match its gold and never a different one)."""

from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_cases import CASES

from harmo_fast.rewards.verify import verify

MARKED = ("answer_tag", "boxed", "answer_phrase", "bare")


def test_corpus_covers_every_category_both_ways():
    assert len(CASES) >= 300
    by_category = Counter((c.category, c.expected) for c in CASES)
    for category in {c.category for c in CASES} - {"traps"}:  # traps are wrong answers only
        assert by_category[(category, True)] and by_category[(category, False)], category


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}-{i}" for i, c in enumerate(CASES)])
def test_corpus_case(case):
    v = verify(case.completion, case.gold, case.task_type)
    assert v.correct is case.expected, v
    if case.expected:
        assert v.located is not None and v.reason == "ok"


def test_strict_format_grades_only_marked_answers():
    free = [c for c in CASES if c.expected and c.task_type == "math"]
    located = Counter()
    for case in free:
        v = verify(case.completion, case.gold, "math")
        located[v.located] += 1
        strict = verify(case.completion, case.gold, "math", strict_format=True)
        if v.located in MARKED:
            assert strict.located == v.located, case
        else:
            assert strict.located in (None, "bare"), case
    # The corpus exercises every free-text locator.
    assert located["gsm8k"] and located["math"] and located["last_number"]


def test_hedged_options_are_wrong():
    assert not verify("The answer is B or D.", "B", "multiple_choice").correct
    assert not verify("Maybe (A), maybe (C).", "C", "multiple_choice").correct
    assert not verify("yes or no", "yes", "yes_no").correct
    assert not verify(r"\boxed{5} or \boxed{7}", "7", "math").correct


# ------------------------------------------------------------------ round-trips

PLACES = [
    r"\boxed{{}}",
    "<answer>{}</answer>",
    "So the answer is ${}$.",
    "We compute everything carefully.\n\\[ {} \\]",
    "Final Answer: The final answer is ${}$. I hope it is correct.",
    "Thus \\( x = {} \\).",
]


def _integer_forms(n: int) -> list[str]:
    forms = [str(n), f"{n}.0", f"\\text{{{n}}}", f"{n}\\text{{ cm}}", f"\\${n}"]
    if abs(n) >= 1000:
        grouped = f"{n:,}"
        forms += [grouped, grouped.replace(",", "{,}"), grouped.replace(",", "\\,"), grouped.replace(",", ",\\!")]
    return forms


def _fraction_forms(q: Fraction) -> list[str]:
    sign = "-" if q < 0 else ""
    a, b = abs(q.numerator), q.denominator
    forms = [f"{sign}\\frac{{{a}}}{{{b}}}", f"{sign}\\dfrac{{{a}}}{{{b}}}", f"{sign}{a}/{b}"]
    forms.append(f"\\frac{{{sign}{a * 3}}}{{{b * 3}}}")  # unreduced
    whole, rest = divmod(a, b)
    if whole and rest:
        forms.append(f"{sign}{whole}\\frac{{{rest}}}{{{b}}}")  # a mixed number
    if 10**6 % b == 0:  # terminating decimal
        text = f"{abs(q.numerator) / b:.6f}".rstrip("0")
        forms += [sign + text, sign + text.replace(".", ",") if len(text.split(".")[1]) != 3 else sign + text]
    return forms


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(-(10**7), 10**7), place=st.sampled_from(PLACES))
def test_integer_round_trip(n, place):
    for form in _integer_forms(n):
        completion = place.replace("{}", form)
        assert verify(completion, str(n), "math").correct, completion
    assert not verify(place.replace("{}", str(n + 1)), str(n), "math").correct


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num=st.integers(-500, 500),
    den=st.sampled_from([2, 3, 4, 5, 7, 8, 16, 25, 40]),
    place=st.sampled_from(PLACES),
)
def test_fraction_round_trip(num, den, place):
    q = Fraction(num, den)
    if q.denominator == 1:
        return
    gold = f"\\frac{{{q.numerator}}}{{{q.denominator}}}"
    for form in _fraction_forms(q):
        completion = place.replace("{}", form)
        assert verify(completion, gold, "math").correct, completion
    wrong = f"\\frac{{{q.numerator + 1}}}{{{q.denominator}}}"
    assert not verify(place.replace("{}", wrong), gold, "math").correct


@settings(max_examples=40, deadline=None)
@given(items=st.lists(st.integers(-99, 99), min_size=2, max_size=5, unique=True), data=st.data())
def test_set_round_trip(items, data):
    gold = "\\{" + ", ".join(map(str, items)) + "\\}"
    shuffled = data.draw(st.permutations(items))
    completions = [
        "\\boxed{\\{" + ", ".join(map(str, shuffled)) + "\\}}",
        "\\boxed{" + ", ".join(map(str, shuffled)) + "}",
        "The solutions are " + " and ".join(f"${x}$" for x in shuffled) + ".",
        "So $x = " + ", ".join(map(str, shuffled)) + "$.",
    ]
    for completion in completions:
        assert verify(completion, gold, "math").correct, completion
    missing = "\\{" + ", ".join(map(str, items[1:])) + "\\}"
    assert not verify(f"\\boxed{{{missing}}}", gold, "math").correct


@settings(max_examples=40, deadline=None)
@given(a=st.integers(-50, 50), width=st.integers(1, 50), left=st.booleans(), right=st.booleans())
def test_interval_round_trip(a, width, left, right):
    b = a + width
    lo, hi = "[" if left else "(", "]" if right else ")"
    gold = f"{lo}{a}, {b}{hi}"
    for form in (f"{lo}{a},{b}{hi}", f"\\left{lo} {a}, {b} \\right{hi}", f"x \\in {lo}{a}, {b}{hi}"):
        for place in PLACES[:4]:
            completion = place.replace("{}", form)
            assert verify(completion, gold, "math").correct, completion
    flipped = f"{'(' if left else '['}{a}, {b}{hi}"
    assert not verify(f"\\boxed{{{flipped}}}", gold, "math").correct
