"""The hybrid router and the reward composer (docs/SPEC.md §1, paper Eq. 1 and Eq. 3).

Routing, not mixing: each sample goes by its `task_type` either to its rule verifier (verdict
1.0/0.0) or, for the task types in `RewardConfig.model_task_types` (default: open_ended), to the
model RM (a score in [0, 1]). A rule verdict that is not confident (unparseable gold, parse
failure, timeout, error) on a sample that has a `reference` is re-scored by the model RM (our
choice); without a reference it keeps its rule score. Every verdict records `scored_by`.

The model RM receives the answer the completion commits to (the marked answer after the last
`</think>`, else the whole text after it) and, per the RM's `context`, either the sample's
`reference` (falling back to its first gold answer) or its `prompt`. A model-scored verdict is
`correct` (reason "ok") when its score >= `model_rm.correct_threshold`, else reason "mismatch"; a
fallback verdict's `detail` names the rule reason it replaced.

Then `total = w_hybrid * R_hyb + w_length * R_len + w_format * R_fmt`, with R_len computed from
the hybrid scores and lengths per group and R_fmt per completion.

Bad data inside a sample (unknown task type, unreadable gold, a verifier or model RM that raises)
becomes a verdict with reason "error" and score 0, logged once per kind; malformed arguments
(a non-string completion, a negative length) raise at once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from harmo_fast.rewards.config import RewardConfig
from harmo_fast.rewards.extract import locate_answer, strip_reasoning
from harmo_fast.rewards.format import format_reward
from harmo_fast.rewards.length import length_reward
from harmo_fast.rewards.model_rm import ModelRM, build_model_rm
from harmo_fast.rewards.types import RewardResult, RewardSample, Verdict
from harmo_fast.rewards.verifiers import get_verifier
from harmo_fast.rewards.verify import fast_verify, verify

log = logging.getLogger(__name__)

# Rule verdict reasons that mean "the rule could not judge": such a verdict falls back to the model
# RM when the sample has a reference.
NOT_JUDGED = frozenset({"parse_fail", "timeout", "error"})


def validate_samples(samples: Sequence[RewardSample]) -> None:
    """Raise TypeError/ValueError naming `samples[i].field` for a structurally malformed sample."""
    if not isinstance(samples, (list, tuple)):
        raise TypeError(f"samples must be a list of RewardSample, got {type(samples).__name__}")
    for i, s in enumerate(samples):
        if not isinstance(s, RewardSample):
            raise TypeError(f"samples[{i}] must be a RewardSample, got {type(s).__name__}")
        for name in ("completion", "task_type", "prompt"):
            if not isinstance(getattr(s, name), str):
                raise TypeError(f"samples[{i}].{name} must be a str, got {type(getattr(s, name)).__name__}")
        if not isinstance(s.answer, (str, list, tuple)):
            raise TypeError(f"samples[{i}].answer must be a str or a list of str, got {type(s.answer).__name__}")
        if s.reference is not None and not isinstance(s.reference, str):
            raise TypeError(f"samples[{i}].reference must be a str or None, got {type(s.reference).__name__}")
        if isinstance(s.group_id, bool) or not isinstance(s.group_id, int):
            raise TypeError(f"samples[{i}].group_id must be an int, got {s.group_id!r}")
        if isinstance(s.length, bool) or not isinstance(s.length, int) or s.length < 0:
            raise ValueError(f"samples[{i}].length must be an int >= 0, got {s.length!r}")


def committed_answer(completion: str) -> str | None:
    """The text a model RM judges: the marked answer (tag, box, anchor phrase) after the last
    `</think>`, else all of the text after it, stripped; None when a `<think>` is left open."""
    body = strip_reasoning(completion)
    if body is None:
        return None
    marked = locate_answer(body)
    return marked if marked is not None else body.strip()


def _first_gold(answer: str | Sequence[str]) -> str:
    if isinstance(answer, str):
        return answer
    return next((a for a in answer if isinstance(a, str)), "")


R = TypeVar("R")
Submit = Callable[..., Future[Any]]
"""Starts `fn(*args)` and returns its future (`run_now`, or an executor's `submit`)."""


def run_now(fn: Callable[..., R], *args: Any) -> Future[R]:
    """`fn(*args)` run at once, as a resolved future (its exception, if it raised)."""
    future: Future[R] = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _timed(fn: Callable[..., R], *args: Any) -> tuple[R, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def error_verdict(detail: str, scored_by: str = "rule", extracted: str | None = None) -> Verdict:
    return Verdict(0.0, False, "error", extracted, confident=False, scored_by=scored_by, detail=detail[:500])


class HybridReward:
    """Scores batches of `RewardSample`s into a `RewardResult` (see the module docstring).

    pool: a `VerifierPool` for the rule verifiers (hard per-sample timeouts in worker processes).
        None: verify in this process; cases that need sympy still go to the shared pool of
        `verify(..., timeout_s=cfg.timeout_s)`, so a hostile input cannot hang the caller.
    model_rm: any object with `context` and `score(answers, contexts)`; None builds the one
        `cfg.model_rm` describes on first use (`kind: none` = no model RM: model-routed samples
        then get score 0 with reason "error", and non-confident rule verdicts keep their score).
    """

    def __init__(self, cfg: RewardConfig | None = None, pool: Any = None, model_rm: ModelRM | None = None) -> None:
        self.cfg = cfg or RewardConfig()
        self.pool = pool
        self._model_rm = model_rm
        self._model_rm_built = model_rm is not None
        self._logged: set[str] = set()

    # -- helpers -------------------------------------------------------------------------------

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.error(message + " (logged once)", *args)

    @property
    def model_rm(self) -> ModelRM | None:
        """The model RM, built from `cfg.model_rm` on first access (a build error propagates)."""
        if not self._model_rm_built:
            self._model_rm = build_model_rm(self.cfg.model_rm)
            self._model_rm_built = True
        return self._model_rm

    def route(self, samples: Sequence[RewardSample]) -> tuple[list[int], list[int]]:
        """(indices for the rule verifiers, indices for the model RM)."""
        model_types = set(self.cfg.model_task_types)
        rule, model = [], []
        for i, s in enumerate(samples):
            (model if s.task_type in model_types else rule).append(i)
        return rule, model

    def needs_fallback(self, sample: RewardSample, verdict: Verdict) -> bool:
        """True when a rule verdict could not judge and the sample has a reference."""
        judged = verdict.confident and verdict.reason not in NOT_JUDGED
        return not judged and bool(sample.reference and sample.reference.strip())

    def _options(self, sample: RewardSample) -> dict[str, Any]:
        options = dict(self.cfg.verify_options.get(sample.task_type, {}))
        if self.cfg.strict_format:
            options.setdefault("strict_format", True)
        if sample.choices is not None and "choices" in get_verifier(sample.task_type).option_names:
            options["choices"] = list(sample.choices)
        return options

    # -- stages --------------------------------------------------------------------------------

    def rule_verdicts(self, samples: Sequence[RewardSample], indices: Sequence[int]) -> dict[int, Verdict]:
        """Rule verdicts of `samples[i]` for i in `indices`; never raises."""
        out: dict[int, Verdict] = {}
        heavy: list[int] = []
        items: list[tuple[str, Any, str, dict]] = []
        for i in indices:
            s = samples[i]
            try:
                options = self._options(s)
                answer = list(s.answer) if not isinstance(s.answer, str) else s.answer
                if self.pool is None:
                    out[i] = verify(s.completion, answer, s.task_type, timeout_s=self.cfg.timeout_s, **options)
                    continue
                # The cheap path here, per sample, so that one bad sample cannot fail the batch.
                fast = fast_verify(s.completion, answer, s.task_type, **options)
            except Exception as e:
                self._log_once(
                    f"rule:{type(e).__name__}:{s.task_type}", "rule verifier failed on a %s sample: %s", s.task_type, e
                )
                out[i] = error_verdict(f"{type(e).__name__}: {e}")
                continue
            if fast is not None:
                out[i] = fast
            else:
                heavy.append(i)
                items.append((s.completion, answer, s.task_type, options))
        if heavy:
            try:
                verdicts = self.pool.verify_many(items)
                if len(verdicts) != len(items):
                    raise RuntimeError(f"verify_many returned {len(verdicts)} verdicts for {len(items)} items")
            except Exception as e:
                self._log_once(f"pool:{type(e).__name__}", "verifier pool failed: %s", e)
                verdicts = [error_verdict(f"verifier pool: {type(e).__name__}: {e}")] * len(items)
            out.update(zip(heavy, verdicts))
        return out

    def model_verdicts(
        self, samples: Sequence[RewardSample], indices: Sequence[int], prior: dict[int, Verdict] | None = None
    ) -> dict[int, Verdict]:
        """Model-RM verdicts of `samples[i]` for i in `indices`; never raises. `prior` holds the
        rule verdicts being replaced (fallback), kept when there is no model RM."""
        prior = prior or {}
        out: dict[int, Verdict] = {}
        todo: list[int] = []
        answers: dict[int, str] = {}
        for i in indices:
            answer = committed_answer(samples[i].completion)
            if answer is None:
                out[i] = Verdict(0.0, False, "format_fail", None, scored_by="model", detail="unterminated <think>")
            elif not answer:
                out[i] = Verdict(0.0, False, "no_answer", None, scored_by="model")
            else:
                answers[i] = answer
                todo.append(i)
        if not todo:
            return out
        try:
            rm = self.model_rm
        except Exception as e:
            self._log_once("model_build", "building the model RM failed: %s", e)
            out.update(
                {i: error_verdict(f"model RM unavailable: {type(e).__name__}: {e}", "model", answers[i]) for i in todo}
            )
            return out
        if rm is None:
            for i in todo:
                out[i] = prior.get(i) or error_verdict(
                    "no model RM configured (model_rm.kind='none')", "none", answers[i]
                )
            return out
        if rm.context == "prompt":
            contexts = [samples[i].prompt for i in todo]
        else:
            contexts = [samples[i].reference or _first_gold(samples[i].answer) for i in todo]
        try:
            scores = list(rm.score([answers[i] for i in todo], contexts))
            if len(scores) != len(todo):
                raise RuntimeError(f"the model RM returned {len(scores)} scores for {len(todo)} answers")
        except Exception as e:
            self._log_once(f"model:{type(e).__name__}", "model RM failed: %s", e)
            out.update({i: error_verdict(f"model RM: {type(e).__name__}: {e}", "model", answers[i]) for i in todo})
            return out
        threshold = self.cfg.model_rm.correct_threshold
        for i, raw in zip(todo, scores):
            score = float(raw)
            if math.isnan(score):
                out[i] = error_verdict("model RM returned NaN", "model", answers[i])
                continue
            score = min(1.0, max(0.0, score))
            detail = f"rule verdict {prior[i].reason} -> model" if i in prior else ""
            correct = score >= threshold
            out[i] = Verdict(
                score, correct, "ok" if correct else "mismatch", answers[i], scored_by="model", detail=detail
            )
        return out

    def compose(
        self, samples: Sequence[RewardSample], verdicts: Sequence[Verdict], timings: dict[str, float] | None = None
    ) -> RewardResult:
        """R_len, R_fmt and the weighted total from the per-sample hybrid verdicts."""
        cfg = self.cfg
        hybrid = [float(v.score) for v in verdicts]
        length = length_reward([s.length for s in samples], hybrid, [s.group_id for s in samples], cfg.length)
        fmt = format_reward([s.completion for s in samples], cfg.format)
        total = [cfg.w_hybrid * h + cfg.w_length * ln + cfg.w_format * f for h, ln, f in zip(hybrid, length, fmt)]
        return RewardResult(
            total, {"hybrid": hybrid, "length": length, "format": fmt}, list(verdicts), dict(timings or {})
        )

    def score(self, samples: Sequence[RewardSample]) -> RewardResult:
        """Route, verify, model-score, fall back and compose one batch, in the calling thread."""
        validate_samples(samples)
        return self.score_staged(samples, run_now, run_now)

    def score_staged(self, samples: Sequence[RewardSample], run_rules: Submit, run_model: Submit) -> RewardResult:
        """The one scoring path, for validated `samples`: route; the rule verdicts and the model
        verdicts of the model-routed samples; the model re-scores the rule verdicts that
        `needs_fallback`; compose. `run_rules(fn, *args)` and `run_model(fn, *args)` start a stage
        and return its future: `run_now` runs it at once, an executor's `submit` runs the two
        stages at the same time (`RewardPipeline`)."""
        t0 = time.perf_counter()
        rule_idx, model_idx = self.route(samples)
        rules_f = run_rules(_timed, self.rule_verdicts, samples, rule_idx)
        model_f = run_model(_timed, self.model_verdicts, samples, model_idx)
        verdicts, t_rules = rules_f.result()
        model_verdicts, t_model = model_f.result()
        fallback = [i for i in rule_idx if self.needs_fallback(samples[i], verdicts[i])]
        verdicts.update(model_verdicts)
        if fallback:
            prior = {i: verdicts[i] for i in fallback}
            more, t_more = run_model(_timed, self.model_verdicts, samples, fallback, prior).result()
            verdicts.update(more)
            t_model += t_more
        ordered = [verdicts[i] for i in range(len(samples))]
        return self.compose(samples, ordered, {"rules": t_rules, "model": t_model, "total": time.perf_counter() - t0})
