"""Counting verifier: digits and number words; several numbers are a hedge."""

import pytest

from harmo_fast.rewards.verify import verify


@pytest.mark.parametrize(
    "completion, gold",
    [
        ("3", "3"),
        ("There are three apples.", "3"),
        ("<answer>twenty-one</answer>", "21"),
        ("Answer: 1,000", "1000"),
        (r"\boxed{12}", "12"),
        ("I count 7 birds", "seven"),
        ("zero", "0"),
    ],
)
def test_matches(completion, gold):
    assert verify(completion, gold, "counting").correct


@pytest.mark.parametrize(
    "completion, gold, reason",
    [
        ("12", "2", "mismatch"),  # "2" is not a substring match of "12"
        ("3 apples, not 4", "3", "mismatch"),  # hedge
        ("either 2 or 3", "3", "mismatch"),
        ("3.5", "3", "mismatch"),
        ("many", "3", "parse_fail"),
    ],
)
def test_mismatch(completion, gold, reason):
    v = verify(completion, gold, "counting")
    assert not v.correct and v.reason == reason


def test_gold_must_be_a_count():
    assert not verify("3", "a few", "counting").confident
    assert not verify("3", "2.5", "counting").confident
