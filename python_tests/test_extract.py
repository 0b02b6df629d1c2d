"""Answer extraction: reasoning split, answer tags, boxes, anchor phrases, last-number fallback."""

import pytest

from harmo_fast.rewards.extract import extract_answer, last_boxed, locate, strip_reasoning


@pytest.mark.parametrize(
    "completion, expected",
    [
        # Only the text after the last </think> is graded.
        (r"<think>so \boxed{3}</think> The answer is $7$.", "$7$"),
        (r"<think>a</think><think>\boxed{1}</think>\boxed{2}", "2"),
        ("< think >x< / think > Answer: 5", "5"),  # spaced tags (Qwen2.5-VL)
        # An unterminated think block yields nothing, even with a box inside.
        (r"<think>\boxed{3} and I keep thinking", None),
        # The last <answer> block, across lines.
        ("<answer>1</answer> then <answer>\nB\n</answer>", "B"),
        ("<answer>\nline one\nline two\n</answer>", "line one\nline two"),
        (r"<answer>so \boxed{12}</answer>", "12"),
        ("<answer>The final answer is 9.</answer>", "9"),
        ("<answer>  </answer>", None),
        # The last box, brace-balanced, \fbox too.
        (r"first \boxed{1} then \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\fbox{x^{2}}", "x^{2}"),
        (r"\boxed 5", "5"),
        # Adjacent boxes form a list; a box after prose does not join.
        (r"\boxed{2}, \boxed{3}", "2, 3"),
        (r"$\boxed{2}$ and $\boxed{3}$", "2, 3"),
        (r"\boxed{1} was wrong, so \boxed{2}", "2"),
        # A truncated box is not an answer; an earlier complete one still is.
        (r"\boxed{4} hmm \boxed{5", "4"),
        (r"\boxed{5", None),
        # Anchor phrases, markdown bold, "I hope it is correct".
        ("**Answer:** 4", "4"),
        ("Answer: **73**", "73"),
        ("The final answer is $5$. I hope it is correct.", "$5$"),
        ("So the answer is 3.5.", "3.5"),
        ("the answer is: (C)", "(C)"),
        ("Answer: 1\nmore text\nAnswer: 2", "2"),
        # Nothing marks an answer.
        ("we get 12 and 13", None),
        ("", None),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_last_number_fallback_is_opt_in():
    text = "we get 12 and then 1,234.5 apples"
    assert extract_answer(text) is None
    assert extract_answer(text, last_number_fallback=True) == "1,234.5"
    # A marked answer always wins over the fallback.
    assert extract_answer(r"\boxed{7} and 8", last_number_fallback=True) == "7"
    # The fallback never reads inside an unterminated think block.
    assert extract_answer("<think>12", last_number_fallback=True) is None


def test_strip_reasoning():
    assert strip_reasoning("no tags") == "no tags"
    assert strip_reasoning("<think>a</think>b</think>c") == "c"
    assert strip_reasoning("<think>open") is None


def test_nested_and_escaped_braces():
    assert last_boxed(r"\boxed{a\{b\}c}") == r"a\{b\}c"
    assert last_boxed(r"\boxed{\frac{\sqrt{2}}{2}}") == r"\frac{\sqrt{2}}{2}"


def test_rejects_non_string():
    with pytest.raises(TypeError, match="completion"):
        extract_answer(None)  # type: ignore[arg-type]


def test_linear_time_on_hostile_input():
    import time

    hostile = "\\boxed{" * 20000 + "Answer: " * 20000 + "<answer>" * 5000 + "{" * 20000
    t = time.perf_counter()
    extract_answer(hostile, last_number_fallback=True)
    assert time.perf_counter() - t < 2.0


@pytest.mark.parametrize(
    "hostile",
    [
        "answer" + " " * 50000 + "x",  # a long run of spaces after an anchor word, no colon
        "The answer is" + " \t" * 30000,
        "Option" + " " * 50000,
        ("1 " * 30000) + "apples",
        "\\boxed{" + "1" * 50000 + " cm" * 10000 + "}",
        "(" * 30000 + "1, 2" + "]" * 30000,
        "\\boxed{" + ",".join(["1"] * 1900) + "}",  # a huge list: the set matching is bounded
        "\\boxed{1" + "\\text{a} " * 400 + "!}",  # many unit-like groups that end in no unit
        "\\boxed{1" + "\\text{a}/" * 400 + "\\text{}",
        "x = " + "1,000" * 700,
        "#### " + "1 " * 1900 + "ab",
        "$" * 3990,
    ],
)
def test_no_quadratic_blowup(hostile):
    import time

    from harmo_fast.rewards.types import TASK_TYPES
    from harmo_fast.rewards.verify import fast_verify

    t = time.perf_counter()
    for task_type in TASK_TYPES:
        fast_verify(hostile, "1", task_type)
    assert time.perf_counter() - t < 3.0


@pytest.mark.parametrize(
    "text, expected",
    [
        # Marked answers keep their priority over free text.
        (r"$x=1$ so <answer>2</answer>", ("2", "answer_tag")),
        (r"<answer>The result is $14$</answer>", ("14", "answer_tag")),
        (r"so $3$ and \boxed{4}", ("4", "boxed")),
        ("Final Answer: The final answer is 58. I hope it is correct.", ("58", "answer_phrase")),
        (r"The answer is $x = 3$ because $3 + 1 = 4$.", ("x = 3", "answer_phrase")),
        ("The answer is 14. Then we double-check 15.", ("14", "answer_phrase")),
        ("The answer is 14 because 3 + 11 = 14", ("14", "answer_phrase")),
        ("The answer is 12 and 13", ("12 and 13", "answer_phrase")),
        ("Answer: 7 or 8 apples", ("7 or 8 apples", "answer_phrase")),
        # Free text: GSM8K line, the last math span (display or inline), adjacent spans joined.
        ("she has 72 left\n#### 72", ("72", "gsm8k")),
        ("#### 1,000 \nsome trailing text 5", ("1,000", "gsm8k")),
        (r"We get $x=2$ first, then \[ y = \frac{3}{4} \]", (r"y = \frac{3}{4}", "math")),
        (r"So \( 7 \) apples.", ("7", "math")),
        ("$$ 12 $$ is it", ("12", "math")),
        (r"The solutions are $(2,5)$ or $(5,2)$.", ("(2,5), (5,2)", "math")),
        (r"Thus $a$ is even, and $b=3$.", ("b=3", "math")),
        # An escaped dollar is no delimiter; an unclosed one is ignored.
        (r"It costs \$5 and then $6$", ("6", "math")),
        (r"first $1$ then $2 unclosed", ("1", "math")),
        # Nothing located by these locators (the caller then tries the bare text and the last number).
        ("we get 12 and 13", None),
    ],
)
def test_locate_free_text(text, expected):
    assert locate(text, free_text=True) == expected


def test_free_text_locators_are_opt_in_for_locate():
    assert locate("she has 72 left\n#### 72") is None
    assert locate(r"The result is $14$") is None
    assert extract_answer("we get 12 and then 3/4 cup", free_text=True) == "3/4"
    assert extract_answer(r"we get \frac{3}{4}", free_text=True) == r"\frac{3}{4}"
    assert extract_answer("the rate is 25 %.", free_text=True) == "25 %"


@pytest.mark.parametrize("n", [1000, 30000])
def test_math_span_scan_is_linear(n):
    import time

    hostile = "$" * n + "\\[" * n + "\\(" * n + "#### " * n + "1/" * n
    t = time.perf_counter()
    extract_answer(hostile, free_text=True)
    assert time.perf_counter() - t < 2.0
