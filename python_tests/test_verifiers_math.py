"""Math verifier: our own labelled (answer, gold, equivalent?) cases for every feature, including
the false-positive traps that public verifiers fall into (verifier_notes.md sections 3, 4.3)."""

import time

import pytest

from harmo_fast.rewards.verify import fast_verify, verify

# (answer as the model boxes it, gold) pairs that must be judged equal.
EQUAL = [
    # numbers: separators, decimals, trailing zeros, signs
    ("42", "42"),
    ("1,234", "1234"),
    ("1{,}234", "1234"),
    (r"1\,234", "1234"),
    ("1 234 567", "1234567"),
    ("0.50", r"\frac{1}{2}"),
    (".5", "0.5"),
    ("5.0", "5"),
    ("-3", "-3"),
    (r"\$5", "5"),
    # fractions, mixed numbers, scientific notation
    (r"\dfrac{6}{8}", r"\frac34"),
    ("3/4", r"\frac{3}{4}"),
    (r"1\frac{1}{2}", "3/2"),
    ("1 1/2", "1.5"),
    (r"0.\overline{3}", r"\frac{1}{3}"),
    (r"0.1\overline{6}", r"\frac16"),
    (r"1.5 \times 10^{3}", "1500"),
    ("1.5e3", "1500"),
    (r"10^{6}", "1000000"),
    (r"2.5\cdot 10^{-3}", "0.0025"),
    # LaTeX with and without delimiters, symbolic equivalence
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
    (r"$\frac{\sqrt{2}}{2}$", r"\frac{\sqrt2}{2}"),
    (r"2x+1", "1+2x"),
    (r"(x+1)^2", "x^2+2x+1"),
    (r"\frac{11+9a}{20}", r"\dfrac{9a + 11}{20}"),
    (r"\sqrt{12}", r"2\sqrt{3}"),
    (r"2\pi", r"\pi \cdot 2"),
    (r"e^{i\pi}", "-1"),
    (r"\sin^2 x + \cos^2 x", "1"),
    (r"3.14159265", r"\pi"),  # a decimal with enough digits that rounds to the exact gold
    # units, text, degrees, ordinals
    (r"10\text{ cm}", "10"),
    ("10 meters", "10"),
    (r"30^\circ", "30"),
    (r"12^{\text{th}}", "12"),
    (r"\text{Monday}", "Monday"),
    (r"\text{(C)}", "(C)"),
    # percent (default policy "either")
    (r"28\%", "0.28"),
    (r"28\%", "28"),
    ("28%", r"28\%"),
    # intervals, sets, tuples, unions
    ("(1,2]", "(1, 2]"),
    (r"\left[ -1, 3 \right)", "[-1,3)"),
    (r"\{2,1\}", r"\{1,2\}"),
    ("3, 1, 2", "1, 2, 3"),
    (r"(3, \frac{2\pi}{3})", r"\left(3, \frac{2\pi}{3}\right)"),
    (r"(-\infty, 0) \cup (1, \infty)", r"(1,\infty)\cup(-\infty,0)"),
    (r"x \in [1,2]", "[1,2]"),
    (r"\emptyset", r"\{\}"),
    # \pm expansion
    (r"1 \pm \sqrt{19}", r"1 + \sqrt{19}, 1 - \sqrt{19}"),
    (r"\pm 2", "2, -2"),
    # matrices
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1 & 2\\ 3 & 4\end{bmatrix}"),
    (r"\begin{pmatrix}\frac12\\0.5\end{pmatrix}", r"\begin{pmatrix}0.5\\\frac{1}{2}\end{pmatrix}"),
    # equations and inequalities
    ("x=5", "5"),
    ("5", "x=5"),
    ("a+2z=2z+a=101", "101"),
    ("y = 2x + 1", "2x - y + 1 = 0"),
    ("x^2+y^2=1", "2x^2+2y^2-2=0"),
    ("x > 2", "2 < x"),
    ("(1, 2)", "1 < x < 2"),
    (r"[2, \infty)", r"x \ge 2"),
    (r"(-\infty,-1]\cup[1,\infty)", r"x \le -1 \text{ or } x \ge 1"),
    # functions, roots, complex numbers, combinatorics
    (r"\log_2 8", "3"),
    (r"\sin(\pi/6)", r"\frac12"),
    (r"\sqrt[3]{8}", "2"),
    ("x^2 - 1", "(x-1)(x+1)"),
    ("1 + i", "i+1"),
    (r"\binom{5}{2}", "10"),
    ("5!", "120"),
    (r"\sqrt{1/n}", r"\frac{1}{\sqrt n}"),
    (r"n(n+1)/2", r"\frac{n^2+n}{2}"),
    # lists of assignments and unordered points
    (r"x=-1 \text{ or } x=1", r"\pm 1"),
    ("n=3,2,1", "n=1,2,3"),
    (r"(1,2), (3,4)", r"(3,4),(1,2)"),
    (r"\$1,\!000", "1000"),
    # exact comparisons of tiny and huge values
    (r"\frac{1}{2006!}", r"\frac{1}{2006!}"),
    ("(x+y+z+1)^{40}", "(1+z+y+x)^{40}"),
    ("0.1x", r"\frac{x}{10}"),
    ("2^{100}", "1267650600228229401496703205376"),
]

# Pairs that must be judged different (many are false positives of public graders).
DIFFERENT = [
    ("12", "2"),
    ("2", "12"),
    ("200", "2"),
    ("0.02", "2"),
    ("10001", "10000"),
    ("4.9999", "5"),
    (r"\frac{1}{23}", r"\frac{12}{3}"),
    (r"\frac{1}{2004!}", r"\frac{1}{2006!}"),
    ("3.14", r"\pi"),
    (r"4\sqrt{2}", "4"),
    (r"1 - \frac{1}{e}", r"1 + \frac{1}{e}"),
    ("2x+1", "2y+1"),
    ("xy", "x+y"),
    # percent: a bare number never means a percentage of itself
    ("0.28", "28"),
    ("28", "0.28"),
    # intervals: open/closed ends and order
    ("(1,2)", "(1,2]"),
    ("[1,2]", "[1,2)"),
    ("(2,1)", "(1,2)"),
    # tuples are ordered, sets are not; no subset or superset credit
    (r"(3, \frac{2\pi}{3})", r"(\frac{2\pi}{3}, 3)"),
    ("1728", "1331, 1728"),
    ("1331, 1728, 2197", "1331, 1728"),
    ("19, 46, 82", "21, 36, 82"),
    (r"\{1,2\}", "(1,2)"),
    # \pm is two values
    ("2021", r"\pm 2021"),
    (r"1 + \sqrt{19}", r"1 \pm \sqrt{19}"),
    # matrices: the shape counts
    (r"\begin{pmatrix}1&2&3&4\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1&2\end{pmatrix}"),
    (r"\begin{pmatrix}1&2\\3&5\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}"),
    # equations: a different line is not the same line; sides are not judged alone
    ("3x-y+13=0", "3x+4y+14=0"),
    ("x=2", "y=2"),
    ("D=(0,1.5)", "D=(0,1)"),
    # directional: a restated inequality does not match a gold interval
    ("1 < x < 2", "(1, 2)"),
    (r"x \le -1 \text{ or } x \ge 1", r"(-\infty,-1]\cup[1,\infty)"),
    ("x > 2", "x < 2"),
    ("(1,2)", "1 \\le x \\le 2"),
    # text answers
    (r"\text{even}", r"\text{odd}"),
    ("12:00", "1:00"),
    # more traps: complex conjugates, quantified statements, wrong list members, sign of infinity
    # a difference of 1 between huge values is a difference (no relative-tolerance blind spot)
    ("(x+y+z+1)^{40}", "(1+z+y+x)^{40}+1"),
    ("2^{100}+1", "2^{100}"),
    ("e^{40x}+1", "e^{40x}"),
    ("3-2i", "3+2i"),
    (r"\forall x>0, f(x)=0", "f(x)=0"),
    ("n=2,3,4", "n=1,2,3"),
    (r"-\infty", r"\infty"),
    (r"1, 2, 3, \ldots", r"1, 2, 4, \ldots"),
    (r"3, 2, 1, \ldots", r"1, 2, 3, \ldots"),
    ("1,2,2", "1,2"),
]


@pytest.mark.parametrize("answer, gold", EQUAL)
def test_equal(answer, gold):
    v = verify(rf"The answer is $\boxed{{{answer}}}$.", gold, "math")
    assert v.correct and v.score == 1.0 and v.reason == "ok", v


@pytest.mark.parametrize("answer, gold", DIFFERENT)
def test_different(answer, gold):
    v = verify(rf"\boxed{{{answer}}}", gold, "math")
    assert not v.correct and v.score == 0.0 and v.reason == "mismatch" and v.confident, v


def test_hedged_boxes_are_wrong():
    assert not verify(r"\boxed{5} or \boxed{7}", "5", "math").correct
    assert not verify(r"\boxed{5, 7}", "5", "math").correct
    assert verify(r"\boxed{5}, \boxed{7}", r"\{5, 7\}", "math").correct


def test_percent_policies():
    assert verify(r"\boxed{28\%}", "0.28", "math", percent="value").correct
    assert not verify(r"\boxed{28\%}", "28", "math", percent="value").correct
    assert verify(r"\boxed{28\%}", "28", "math", percent="number").correct
    assert not verify(r"\boxed{28\%}", "0.28", "math", percent="number").correct
    with pytest.raises(ValueError, match="percent"):
        verify(r"\boxed{1}", "1", "math", percent="sometimes")


def test_rel_tol_option():
    assert not verify(r"\boxed{10001}", "10000", "math").correct
    assert verify(r"\boxed{10001}", "10000", "math", rel_tol=1e-3).correct


def test_ordered_option():
    assert verify(r"\boxed{3, 2, 1}", "1, 2, 3", "math").correct
    assert not verify(r"\boxed{3, 2, 1}", "1, 2, 3", "math", ordered=True).correct
    assert verify(r"\boxed{1, 2, 3}", "1, 2, 3", "math", ordered=True).correct


def test_reasoning_and_answer_location():
    # A box inside the reasoning does not count; the answer after it does.
    assert verify(r"<think>\boxed{7}</think> The answer is $5$.", "5", "math").correct
    assert not verify(r"<think>\boxed{5}</think> The answer is $7$.", "5", "math").correct
    v = verify(r"<think>\boxed{5}", "5", "math")
    assert v.reason == "format_fail" and v.score == 0.0
    assert verify("**Answer:** 4", "4", "math").correct
    assert verify(r"<answer>\frac{1}{2}</answer>", "0.5", "math").correct


def test_free_text_location_and_strict_format():
    # Free text is searched by default: the last number here; strict_format grades only marked answers.
    prose = "I computed it and got 5 in the end, I think"
    v = verify(prose, "5", "math")
    assert v.correct and v.located == "last_number"
    v = verify(prose, "5", "math", strict_format=True)
    assert v.reason == "no_answer" and v.score == 0.0 and v.located is None
    assert verify(prose, "5", "math", strict_format=True, last_number_fallback=True).correct
    v = verify("5", "5", "math", strict_format=True)
    assert v.correct and v.located == "bare"  # a short bare answer is the answer
    with pytest.raises(ValueError, match="strict_format"):
        verify("5", "5", "math", strict_format="yes")


def test_list_of_golds():
    assert verify(r"\boxed{0.5}", ["1/3", r"\frac{1}{2}"], "math").correct
    assert not verify(r"\boxed{0.25}", ["1/3", r"\frac{1}{2}"], "math").correct


def test_gold_written_as_a_solution_counts_by_its_last_box():
    gold = r"We first try $\boxed{3}$, which fails; the sum is $\boxed{\frac{7}{2}}$."
    assert verify(r"\boxed{3.5}", gold, "math").correct
    assert not verify(r"\boxed{3}", gold, "math").correct
    assert verify("<answer>3.5</answer>", gold, "numeric").correct


def test_unparseable_gold_is_not_confident():
    v = verify(r"\boxed{5}", r"\frac{1}{", "math")
    assert v.reason == "parse_fail" and not v.confident and v.score == 0.0
    # An inequality whose side is not an expression (found by fuzzing) is an unreadable gold.
    v = verify(r"\boxed{(1,2)}", r"0\leA<0", "math")
    assert v.reason == "parse_fail" and not v.confident
    # A parseable gold with garbage in the answer is a parse failure of the answer.
    v = verify(r"\boxed{\frac{1}{}}", "5", "math")
    assert not v.correct


def test_size_guard_returns_quickly():
    for hostile in [
        r"9^{9^{9^{9}}}",
        "2^{2^{2^{2^{2}}}}",
        "10^{100000}",
        "99999!",
        "1" * 5000,
        "(" * 500 + "1" + ")" * 500,
    ]:
        t = time.perf_counter()
        v = verify(rf"\boxed{{{hostile}}}", r"\frac{1}{2} + x", "math")
        assert time.perf_counter() - t < 1.0, hostile
        assert not v.correct and v.reason in ("parse_fail", "mismatch"), (hostile, v)


def test_fast_path_needs_no_sympy():
    # Plain numbers, fractions and structures of them are decided without sympy.
    for answer, gold in [("1,234", "1234"), (r"\frac{1}{2}", "0.5"), ("(1,2]", "(1,2]"), ("12", "2"), ("x=5", "5")]:
        assert fast_verify(rf"\boxed{{{answer}}}", gold, "math") is not None
    # A symbolic comparison is not.
    assert fast_verify(r"\boxed{2x+1}", "1+2x", "math") is None


def test_no_eval_of_model_text(tmp_path):
    # A payload that would run if any layer eval()'d the answer: nothing is written.
    target = tmp_path / "pwned"
    payload = rf"\boxed{{__import__('os').system('touch {target}') + \pi}}"
    verify(payload, r"\pi", "math")
    assert not target.exists()
