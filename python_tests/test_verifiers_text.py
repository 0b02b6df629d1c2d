"""OCR / short-text verifier: normalised exact match; ANLS as a separate partial score."""

import pytest

from harmo_fast.rewards.normalize import anls, normalize_text
from harmo_fast.rewards.verify import verify


@pytest.mark.parametrize("task_type", ["ocr", "short_text"])
@pytest.mark.parametrize(
    "completion, gold",
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("ＳＴＯＰ", "stop"),  # NFKC full-width
        ("<answer>an apple</answer>", "Apple"),
        ("two", "2"),
        ("Hello,   world", "hello world"),
        ("3.5 kg", "3.5 kg."),
        ("café", "café"),
    ],
)
def test_normalised_exact_match(task_type, completion, gold):
    v = verify(completion, gold, task_type)
    assert v.correct and v.partial == pytest.approx(anls(v.extracted, gold))


@pytest.mark.parametrize(
    "completion, gold",
    [
        ("The sign says STOP here", "stop"),  # containment is not a match
        ("stop", "stop sign ahead"),
        ("3.5", "35"),  # a decimal point is not punctuation
        ("Hello wrld", "hello world"),
    ],
)
def test_no_substring_or_fuzzy_credit(completion, gold):
    v = verify(completion, gold, "ocr")
    assert not v.correct and v.score == 0.0 and v.reason == "mismatch"


def test_anls_partial_score():
    v = verify("Hello wrld", "hello world", "ocr")
    assert v.partial == pytest.approx(1 - 1 / 11)
    assert verify("xyz", "hello world", "ocr").partial == 0.0  # below the 0.5 threshold
    assert verify("hello wrld", ["nothing", "hello world"], "ocr").partial == pytest.approx(1 - 1 / 11)


def test_normalize_text():
    assert normalize_text("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_text("Twenty-one 1,000 items") == "21 1000 items"
    assert normalize_text("a. b. c.") == "b c"  # "a" is an article


def test_empty_gold_is_not_confident():
    assert not verify("x", "!!!", "short_text").confident


def test_open_ended_goes_to_model():
    v = verify("A cat on a mat.", "a cat", "open_ended")
    assert not v.confident and v.scored_by == "none" and v.score == 0.0
    v = verify("<think>never closed", "a cat", "open_ended")
    assert not v.confident and v.scored_by == "none"
