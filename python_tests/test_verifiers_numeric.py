"""Numeric verifier: tolerance tied to the gold's printed precision, relative for scientific
notation, exact for integers and fractions; rel_tol and percent options."""

import pytest

from harmo_fast.rewards.verify import verify


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("3.14", "3.14"),
        ("3.141", "3.14"),
        ("3.1449", "3.14"),
        ("3", "3.0"),
        ("1,234.50", "1234.5"),
        ("1.23e-10", "1.2e-10"),  # the gold states two significant digits
        (r"1.2 \times 10^{-10}", "1.2e-10"),
        ("0.5", r"\frac{1}{2}"),
        (r"\frac{1}{3}", "0.333"),
        (r"\sqrt{2}", "1.414"),
        ("1.41421356", r"\sqrt{2}"),
        ("12.5%", "0.125"),
        (r"\$3.50", "3.5"),
    ],
)
def test_equal(answer, gold):
    v = verify(f"<answer>{answer}</answer>", gold, "numeric")
    assert v.correct, v


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("3.1", "3.14"),
        ("3.15", "3.14"),
        ("10001", "10000"),
        ("4.9999", "5"),
        ("2", "200"),
        ("1.3e-10", "1.2e-10"),
        ("1.2e-9", "1.2e-10"),
        ("0.333", r"\frac{1}{3}"),  # too few digits for an exact gold
        ("1.41", r"\sqrt{2}"),
        ("-3.14", "3.14"),
    ],
)
def test_different(answer, gold):
    v = verify(f"<answer>{answer}</answer>", gold, "numeric")
    assert not v.correct and v.reason == "mismatch", v


def test_tiny_and_huge_values_are_relative():
    assert verify("<answer>6.022e23</answer>", "6.02e23", "numeric").correct
    assert not verify("<answer>6.03e23</answer>", "6.02e23", "numeric").correct
    assert verify("<answer>1.6e-19</answer>", "1.60e-19", "numeric").correct
    assert not verify("<answer>1.7e-19</answer>", "1.60e-19", "numeric").correct


def test_rel_tol():
    assert verify("<answer>10001</answer>", "10000", "numeric", rel_tol=1e-3).correct
    assert not verify("<answer>10100</answer>", "10000", "numeric", rel_tol=1e-3).correct


def test_bare_number_and_prose():
    assert verify("3.14", "3.14", "numeric").correct
    assert verify("It is about 3.14 I guess", "3.14", "numeric").located == "last_number"
    assert verify("It is about 3.14 I guess", "3.14", "numeric", strict_format=True).reason == "no_answer"


def test_non_number_answer():
    v = verify("<answer>banana</answer>", "3.14", "numeric")
    assert not v.correct
