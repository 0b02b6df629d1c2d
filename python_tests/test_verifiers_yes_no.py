"""Yes/no verifier: whole words only, hedges, bare responses."""

import pytest

from harmo_fast.rewards.verify import verify


@pytest.mark.parametrize(
    "completion, gold",
    [
        ("Yes", "yes"),
        ("yes.", "Yes"),
        ("**No**", "no"),
        ("<answer>NO</answer>", "no"),
        ("Yes, the cat is on the mat.", "yes"),
        ("I know it is yes", "yes"),  # "know" is not "no"
        ("No. Nobody is there.", "no"),
        ("Answer: yes", "yes"),
        (r"\boxed{No}", "no"),
    ],
)
def test_matches(completion, gold):
    assert verify(completion, gold, "yes_no").correct


@pytest.mark.parametrize(
    "completion, gold, reason",
    [
        ("No", "yes", "mismatch"),
        ("Yes", "no", "mismatch"),
        ("yes or no", "yes", "mismatch"),  # a hedge
        ("<answer>Yes, no</answer>", "no", "mismatch"),
        ("I'm not sure", "no", "parse_fail"),  # no yes/no word at all: no substring match on "not"
        ("maybe", "yes", "parse_fail"),
        ("The eyes know nothing", "yes", "parse_fail"),  # substrings of "eyes", "know", "nothing"
    ],
)
def test_mismatch_and_substrings(completion, gold, reason):
    v = verify(completion, gold, "yes_no")
    assert not v.correct and v.reason == reason


def test_gold_must_be_yes_or_no():
    v = verify("yes", "perhaps", "yes_no")
    assert not v.confident and v.reason == "parse_fail"
