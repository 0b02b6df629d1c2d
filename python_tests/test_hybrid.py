"""The hybrid router (each task type's path, the non-confident fallback, scored_by, errors as
verdicts) and the composer arithmetic. A recording fake model RM keeps these fast; one test runs
the default embedding RM end to end."""

import logging

import pytest

from harmo_fast.rewards.config import FormatConfig, LengthPenaltyConfig, ModelRMConfig, RewardConfig
from harmo_fast.rewards.format import format_reward
from harmo_fast.rewards.hybrid import HybridReward, committed_answer
from harmo_fast.rewards.length import length_reward
from harmo_fast.rewards.types import RewardSample


class FakeRM:
    """Scores 0.9 when the answer equals the context, else 0.3; records every call."""

    def __init__(self, context="reference", scores=None):
        self.context = context
        self.calls = []
        self.scores = scores

    def score(self, answers, contexts):
        self.calls.append((list(answers), list(contexts)))
        if self.scores is not None:
            return list(self.scores)
        return [0.9 if a == c else 0.3 for a, c in zip(answers, contexts)]


def S(completion, answer, task_type="math", group_id=0, length=10, **kw):
    return RewardSample(
        completion=completion, answer=answer, task_type=task_type, group_id=group_id, length=length, **kw
    )


def T(answer, think="because"):
    return f"<think>{think}</think><answer>{answer}</answer>"


def test_verifiable_types_take_the_rule_path():
    rm = FakeRM()
    samples = [
        S(T("\\frac{1}{2}"), "0.5", "math"),
        S(T("3"), "4", "math"),
        S(T("(B)"), "B", "multiple_choice"),
        S(T("blue"), "B", "multiple_choice", choices=["red", "blue", "green"]),
        S(T("3.14"), "3.14", "numeric"),
        S(T("seven"), "7", "counting"),
        S(T("No"), "yes", "yes_no"),
        S(T("STOP"), "stop", "ocr"),
        S(T("the Eiffel Tower"), "Eiffel Tower", "short_text"),
    ]
    res = HybridReward(RewardConfig(), model_rm=rm).score(samples)
    assert res.components["hybrid"] == [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert all(v.scored_by == "rule" for v in res.verdicts)
    assert [v.reason for v in res.verdicts][:2] == ["ok", "mismatch"]
    assert rm.calls == []  # confident verdicts never reach the model


def test_open_ended_uses_the_model_with_reference_or_gold():
    rm = FakeRM()
    samples = [
        S(T("a red bus"), "bus", "open_ended", reference="a red bus"),
        S(T("a cat"), "a dog", "open_ended"),  # no reference: the gold answer is the reference
        S(
            "<think>hmm</think>\nA long free-form caption.\n", "x", "open_ended", reference="r"
        ),  # no tag: text after </think>
    ]
    res = HybridReward(RewardConfig(), model_rm=rm).score(samples)
    assert rm.calls == [(["a red bus", "a cat", "A long free-form caption."], ["a red bus", "a dog", "r"])]
    assert res.components["hybrid"] == [0.9, 0.3, 0.3]
    assert all(v.scored_by == "model" for v in res.verdicts)
    assert [v.extracted for v in res.verdicts] == ["a red bus", "a cat", "A long free-form caption."]
    # correct = score >= model_rm.correct_threshold (1.0 by default): none of these
    assert [v.correct for v in res.verdicts] == [False, False, False]
    assert [v.reason for v in res.verdicts] == ["mismatch"] * 3
    low = HybridReward(RewardConfig(model_rm=ModelRMConfig(correct_threshold=0.8)), model_rm=FakeRM()).score(samples)
    assert [v.correct for v in low.verdicts] == [True, False, False]
    assert [v.reason for v in low.verdicts] == ["ok", "mismatch", "mismatch"]


def test_length_threshold_decides_only_the_length_anchor():
    samples = [
        S(T("a red bus"), "bus", "open_ended", reference="a red bus", length=100),  # model score 0.9
        S(T("a cat"), "a dog", "open_ended", length=20),  # model score 0.3
    ]
    cfg = RewardConfig(length=LengthPenaltyConfig(correct_threshold=0.8, p_max=1.0, tau=1.0))
    res = HybridReward(cfg, model_rm=FakeRM()).score(samples)
    assert [v.correct for v in res.verdicts] == [False, False]  # model_rm.correct_threshold stays 1.0
    assert res.components["length"] == pytest.approx([0.0, -0.8])  # 0.9 >= 0.8 anchors L* = 100
    assert RewardConfig().model_rm.correct_threshold == RewardConfig().length.correct_threshold == 1.0


def test_prompt_context_rm_gets_the_prompt():
    rm = FakeRM(context="prompt")
    HybridReward(RewardConfig(), model_rm=rm).score(
        [S(T("answer"), "gold", "open_ended", prompt="the question", reference="ref")]
    )
    assert rm.calls == [(["answer"], ["the question"])]


def test_open_ended_without_answer_is_not_sent_to_the_model():
    rm = FakeRM()
    res = HybridReward(RewardConfig(), model_rm=rm).score(
        [
            S("<think>never closed", "g", "open_ended", reference="r"),
            S("<think>x</think>   ", "g", "open_ended", reference="r"),
        ]
    )
    assert rm.calls == []
    assert [v.reason for v in res.verdicts] == ["format_fail", "no_answer"]
    assert res.components["hybrid"] == [0.0, 0.0]


def test_non_confident_rule_verdict_falls_back_only_with_a_reference():
    rm = FakeRM()
    samples = [
        S(T("42"), "many", "counting", reference="42"),  # unparseable gold, reference given -> model
        S(T("42"), "many", "counting"),  # no reference -> keeps the rule verdict
        S(T("yes"), "maybe", "yes_no", reference="probably"),  # gold not yes/no -> model
        S(T("41"), "42", "math", reference="42"),  # confident mismatch: no fallback despite reference
    ]
    res = HybridReward(RewardConfig(), model_rm=rm).score(samples)
    v = res.verdicts
    assert (v[0].scored_by, v[0].score) == ("model", 0.9) and "parse_fail" in v[0].detail
    assert (v[1].scored_by, v[1].score, v[1].confident, v[1].reason) == ("rule", 0.0, False, "parse_fail")
    assert (v[2].scored_by, v[2].score) == ("model", 0.3)
    assert (v[3].scored_by, v[3].reason) == ("rule", "mismatch")
    assert rm.calls == [(["42", "yes"], ["42", "probably"])]


def test_bad_sample_data_becomes_error_verdicts():
    res = HybridReward(RewardConfig(), model_rm=FakeRM()).score(
        [S(T("1"), "1", "astrology"), S(T("1"), [], "math"), S(T("1"), "1", "math")]
    )
    assert [v.reason for v in res.verdicts] == ["error", "error", "ok"]
    assert "astrology" in res.verdicts[0].detail
    assert res.components["hybrid"] == [0.0, 0.0, 1.0]
    # an erroring rule verdict with a reference is re-scored by the model
    fb = HybridReward(RewardConfig(), model_rm=FakeRM()).score([S(T("r"), "1", "astrology", reference="r")])
    assert (fb.verdicts[0].scored_by, fb.verdicts[0].score) == ("model", 0.9)


def test_model_rm_failure_is_an_error_verdict_logged_once(caplog):
    class Broken:
        context = "reference"

        def score(self, answers, contexts):
            raise RuntimeError("CUDA out of memory")

    hybrid = HybridReward(RewardConfig(), model_rm=Broken())
    batch = [S(T("a"), "g", "open_ended", reference="r"), S(T("1"), "1", "math")]
    with caplog.at_level(logging.ERROR, logger="harmo_fast.rewards.hybrid"):
        for _ in range(3):
            res = hybrid.score(batch)
            assert (res.verdicts[0].reason, res.verdicts[0].score, res.verdicts[0].scored_by) == ("error", 0.0, "model")
            assert "out of memory" in res.verdicts[0].detail
            assert res.verdicts[1].reason == "ok"
    assert sum("CUDA out of memory" in r.getMessage() for r in caplog.records) == 1


def test_model_scores_are_checked_and_clipped():
    samples = [S(T(a), "g", "open_ended", reference="r") for a in ("a", "b", "c")]
    res = HybridReward(RewardConfig(), model_rm=FakeRM(scores=[1.7, -0.2, float("nan")])).score(samples)
    assert res.components["hybrid"] == [1.0, 0.0, 0.0]
    assert res.verdicts[2].reason == "error"
    short = HybridReward(RewardConfig(), model_rm=FakeRM(scores=[0.5])).score(samples)
    assert [v.reason for v in short.verdicts] == ["error"] * 3


def test_no_model_rm_configured():
    cfg = RewardConfig(model_rm=ModelRMConfig(kind="none"))
    res = HybridReward(cfg).score(
        [S(T("a"), "g", "open_ended", reference="r"), S(T("42"), "many", "counting", reference="42")]
    )
    assert (res.verdicts[0].reason, res.verdicts[0].scored_by, res.verdicts[0].score) == ("error", "none", 0.0)
    assert (res.verdicts[1].reason, res.verdicts[1].scored_by) == ("parse_fail", "rule")  # rule verdict kept


def test_model_task_types_and_verify_options_are_configurable():
    rm = FakeRM()
    cfg = RewardConfig(model_task_types=["open_ended", "short_text"], verify_options={"math": {"percent": "value"}})
    res = HybridReward(cfg, model_rm=rm).score([S(T("Paris"), "Paris", "short_text"), S(T("28\\%"), "28", "math")])
    assert res.verdicts[0].scored_by == "model" and rm.calls[0] == (["Paris"], ["Paris"])
    default = HybridReward(RewardConfig(), model_rm=FakeRM()).score([S(T("28\\%"), "28", "math")])
    assert default.verdicts[0].correct and not res.verdicts[1].correct  # the percent policy reached the verifier


def test_composer_arithmetic_with_weights():
    cfg = RewardConfig(
        w_hybrid=2.0,
        w_length=0.5,
        w_format=3.0,
        length=LengthPenaltyConfig(p_max=1.0, tau=1.0, correct_threshold=1.0),
        format=FormatConfig(f_pos=0.25, f_neg=0.75),
    )
    samples = [
        S(T("12"), "12", "math", group_id=5, length=100),  # correct, formatted
        S(T("13"), "12", "math", group_id=5, length=40),  # wrong and shorter: penalised
        S("the answer is \\boxed{12}", "12", "math", group_id=5, length=120),  # correct, wrong format
        S(T("hello"), "hello", "open_ended", group_id=9, length=10, reference="hello"),  # model 0.9
    ]
    res = HybridReward(cfg, model_rm=FakeRM()).score(samples)
    hybrid = [1.0, 0.0, 1.0, 0.9]
    length = [0.0, -(100 - 40) / 100, 0.0, 0.0]
    fmt = [0.25, 0.25, -0.75, 0.25]
    assert res.components["hybrid"] == pytest.approx(hybrid)
    assert res.components["length"] == pytest.approx(length)
    assert res.components["format"] == pytest.approx(fmt)
    assert res.components["length"] == pytest.approx(
        length_reward([100, 40, 120, 10], hybrid, [5, 5, 5, 9], cfg.length)
    )
    assert res.components["format"] == format_reward([s.completion for s in samples], cfg.format)
    assert res.total == pytest.approx([2 * h + 0.5 * ln + 3 * f for h, ln, f in zip(hybrid, length, fmt)])
    assert set(res.components) == {"hybrid", "length", "format"}
    assert set(res.timings) == {"rules", "model", "total"} and all(t >= 0 for t in res.timings.values())
    assert len(res.verdicts) == len(samples)


def test_empty_batch():
    res = HybridReward(RewardConfig(), model_rm=FakeRM()).score([])
    assert res.total == [] and res.components == {"hybrid": [], "length": [], "format": []} and res.verdicts == []


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("not a sample", r"samples\[1\] must be a RewardSample"),
        (S(None, "1"), r"samples\[1\].completion"),
        (S("x", "1", length=-1), r"samples\[1\].length"),
        (S("x", "1", group_id="g"), r"samples\[1\].group_id"),
        (S("x", 1), r"samples\[1\].answer"),
    ],
)
def test_malformed_samples_raise(bad, match):
    with pytest.raises((TypeError, ValueError), match=match):
        HybridReward(RewardConfig(), model_rm=FakeRM()).score([S("x", "1"), bad])


def test_committed_answer():
    assert committed_answer("<think>a</think><answer> b </answer>") == "b"
    assert committed_answer("<think>a</think>\n  plain text  ") == "plain text"
    assert committed_answer("no tags at all") == "no tags at all"
    assert committed_answer("<think>open") is None


def test_default_embedding_rm_end_to_end():
    """model_rm=None builds the configured RM (bundled MiniLM) on first use."""
    hybrid = HybridReward(RewardConfig(model_rm=ModelRMConfig(kind="embedding", rescale="affine")))
    ref = "Two children are playing football in a park"
    res = hybrid.score(
        [
            S(T(ref), "x", "open_ended", reference=ref),
            S(T("The invoice total is due next week."), "x", "open_ended", reference=ref),
            S(T("2"), "2", "math"),
        ]
    )
    same, other, rule = res.verdicts
    assert same.scored_by == other.scored_by == "model" and rule.scored_by == "rule"
    assert same.score == pytest.approx(1.0, abs=1e-4) and 0.0 < other.score < 0.8


def test_fuzzed_completions_never_raise():
    """Random and adversarial text through routing, extraction, format and composition (task types
    whose verifiers run in-process, so no sample waits on a worker)."""
    import math

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(
        ["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "}", "{", "(B)", "yes", "3", " ", "\n", "**", "$"]
    )
    text = st.one_of(st.text(max_size=200), st.lists(st.one_of(pieces, st.text(max_size=5)), max_size=40).map("".join))
    cfg = RewardConfig(length=LengthPenaltyConfig(correct_threshold=0.5), model_rm=ModelRMConfig(correct_threshold=0.5))
    hybrid = HybridReward(cfg, model_rm=FakeRM())
    task = st.sampled_from(["multiple_choice", "yes_no", "counting", "ocr", "short_text", "open_ended", "not_a_type"])

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(text, text, task, st.integers(0, 3), st.integers(0, 500), st.none() | text),
            min_size=1,
            max_size=6,
        )
    )
    def run(rows):
        samples = [S(c, a, t, group_id=g, length=n, reference=r) for c, a, t, g, n, r in rows]
        res = hybrid.score(samples)
        assert len(res.total) == len(samples) == len(res.verdicts)
        assert all(math.isfinite(x) for x in res.total)
        assert all(0.0 <= v.score <= 1.0 for v in res.verdicts)

    run()


def test_public_api_is_lazy_and_complete():
    """`import harmo_fast.rewards` (as in a verifier worker) must not import torch; every exported
    name resolves."""
    import subprocess
    import sys

    code = (
        "import sys, harmo_fast.rewards as r; "
        "r.verify; r.HybridReward; r.format_reward; r.length_reward; r.RewardConfig; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
    from harmo_fast import rewards

    for name in rewards.__all__:
        assert getattr(rewards, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rewards.nope  # noqa: B018 (the attribute access is what is tested)


def test_free_text_answers_count_unless_strict_format():
    # An untagged answer from a model that has not learned the format yet: the accuracy reward
    # sees it (so groups are not all-zero), the format reward still penalises the missing format.
    samples = [S("19+29 is computed as follows. That gives 48 in total.", "48"), S(r"It is $47$.", "48")]
    res = HybridReward(RewardConfig(model_rm=ModelRMConfig(kind="none"))).score(samples)
    assert res.components["hybrid"] == [1.0, 0.0]
    assert [v.located for v in res.verdicts] == ["last_number", "math"]
    assert all(f < 0 for f in res.components["format"])
    strict = HybridReward(RewardConfig(strict_format=True, model_rm=ModelRMConfig(kind="none"))).score(samples)
    assert strict.components["hybrid"] == [0.0, 0.0]
    assert [v.reason for v in strict.verdicts] == ["no_answer", "no_answer"]
