"""EmbeddingRM with the bundled all-MiniLM-L6-v2 (loaded once per process by the module cache)."""

import pytest

from harmo_fast.rewards.embedding_rm import EmbeddingRM, load_embedder


@pytest.fixture(scope="module")
def rm():
    return EmbeddingRM()


def test_default_model_is_the_bundled_minilm(rm):
    model = load_embedder(None, "cpu")
    assert model.get_embedding_dimension() == 384
    assert load_embedder(None, "cpu") is model  # cached per process


def test_identical_text_scores_one_and_unrelated_lower(rm):
    ref = "A brown dog is running across a grassy field."
    scores = rm.score(
        [ref, "A dog runs through the grass.", "The quarterly tax report is due on Monday."],
        [ref, ref, ref],
    )
    assert scores[0] == pytest.approx(1.0, abs=1e-4)
    assert scores[0] > scores[1] > scores[2]
    assert scores[1] > 0.5 and scores[2] < 0.3
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_rescale_modes(rm):
    answers = ["The cat sleeps on the sofa.", "Stock markets fell sharply today.", "same"]
    refs = ["A cat is sleeping on a couch.", "A cat is sleeping on a couch.", "same"]
    cos = rm.cosine(answers, refs)
    clip = EmbeddingRM(rescale="clip").score(answers, refs)
    affine = EmbeddingRM(rescale="affine").score(answers, refs)
    for c, s_clip, s_aff in zip(cos, clip, affine):
        assert s_clip == pytest.approx(max(0.0, min(1.0, c)), abs=1e-6)
        assert s_aff == pytest.approx((1 + c) / 2, abs=1e-6)


def test_negative_cosine_is_clipped(rm, monkeypatch):
    monkeypatch.setattr(rm, "cosine", lambda a, r: [-0.4, 0.3, None])
    assert rm.score(["x", "y", ""], ["r", "r", "r"]) == pytest.approx([0.0, 0.3, 0.0])
    monkeypatch.setattr(EmbeddingRM, "cosine", lambda self, a, r: [-0.4, 0.3, None])
    assert EmbeddingRM(rescale="affine").score(["x", "y", ""], ["r", "r", "r"]) == pytest.approx([0.3, 0.65, 0.0])


def test_batching_equals_unbatched(rm):
    answers = [f"Answer number {i}: the sky looks {'blue' if i % 2 else 'grey'} today" for i in range(5)]
    refs = ["The sky is blue."] * 3 + ["reference one", "a much longer reference text that pads the batch"]
    small = EmbeddingRM(batch_size=2).score(answers, refs)
    big = EmbeddingRM(batch_size=64).score(answers, refs)
    one_by_one = [rm.score([a], [r])[0] for a, r in zip(answers[3:], refs[3:])]
    assert small == pytest.approx(big, abs=1e-5)
    assert big[3:] == pytest.approx(one_by_one, abs=1e-5)


def test_empty_answers_score_zero(rm):
    scores = EmbeddingRM(rescale="affine").score(["", "   \n", "A dog.", "A dog."], ["A dog.", "A dog.", "", "A dog."])
    assert scores[:3] == [0.0, 0.0, 0.0]
    assert scores[3] == pytest.approx(1.0, abs=1e-4)
    assert rm.score([], []) == []


def test_bad_arguments(rm):
    with pytest.raises(ValueError, match="rescale"):
        EmbeddingRM(rescale="sigmoid")
    with pytest.raises(ValueError, match="batch_size"):
        EmbeddingRM(batch_size=0)
    with pytest.raises(ValueError, match="references"):
        rm.score(["a", "b"], ["a"])
    with pytest.raises(TypeError, match=r"answers\[1\]"):
        rm.score(["a", None], ["a", "b"])
