"""Multiple-choice verifier: letter notations, option text, hedges, valid letters."""

import pytest

from harmo_fast.rewards.verify import verify

CHOICES = ["London", "Paris", "Rome", "Berlin"]


@pytest.mark.parametrize(
    "completion, gold",
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B)", "B"),
        ("**B**", "B"),
        (r"\boxed{B}", "B"),
        (r"\boxed{\text{(B)}}", "B"),
        ("b", "B"),
        ("(b)", "B"),
        ("<answer>B</answer>", "B"),
        ("The answer is (B).", "B"),
        ("Answer: B. 12 apples", "B"),
        ("(B) 12 apples", "B"),
        ("<think>A or B?</think><answer>C</answer>", "C"),
        ("B", "(B)"),
        ("B", "b"),
        ("I think the correct option is B.", "B"),
        ("A triangle has three sides, so D", "D"),
        ("Option B", "B"),
    ],
)
def test_letter_notations_match(completion, gold):
    v = verify(completion, gold, "multiple_choice")
    assert v.correct and v.reason == "ok" and v.score == 1.0


@pytest.mark.parametrize(
    "completion, gold, reason",
    [
        ("C", "B", "mismatch"),
        ("The answer is B, not A", "A", "mismatch"),  # several letters: a hedge
        ("A or B", "A", "mismatch"),
        ("(A) (B) (C) (D)", "A", "mismatch"),
        ("Blue", "B", "parse_fail"),  # a word starting with the letter is not the letter
        ("Brown", "Blue", "parse_fail"),  # gold text without choices is not a letter -> not confident
        ("I cannot tell", "B", "parse_fail"),
    ],
)
def test_wrong_and_hedged(completion, gold, reason):
    v = verify(completion, gold, "multiple_choice")
    assert not v.correct and v.score == 0.0 and v.reason == reason


def test_option_text_maps_to_letter():
    assert verify("Paris", "B", "multiple_choice", choices=CHOICES).correct
    assert verify("<answer>paris</answer>", "B", "multiple_choice", choices=CHOICES).correct
    assert not verify("Rome", "B", "multiple_choice", choices=CHOICES).correct
    # The gold may itself be the option text.
    assert verify("B", "Paris", "multiple_choice", choices=CHOICES).correct
    assert not verify("C", "Paris", "multiple_choice", choices=CHOICES).correct


def test_letters_limited_to_valid_options():
    # With four choices, "E" is not an option: it cannot be the committed letter.
    v = verify("E", "A", "multiple_choice", choices=CHOICES)
    assert not v.correct
    # Without choices, a gold beyond E extends the valid range.
    assert verify("(G)", "G", "multiple_choice").correct


def test_gold_not_a_letter_is_not_confident():
    v = verify("A", "the red one", "multiple_choice")
    assert v.reason == "parse_fail" and not v.confident


def test_list_of_golds():
    assert verify("C", ["B", "C"], "multiple_choice").correct
