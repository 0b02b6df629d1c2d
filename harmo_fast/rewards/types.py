"""The data that flows through the reward layer: one verdict per (completion, gold) check, the
per-sample inputs a trainer hands over, and the per-component results it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Reason = Literal["ok", "no_answer", "parse_fail", "timeout", "mismatch", "format_fail", "error"]
ScoredBy = Literal["rule", "model", "none"]

TASK_TYPES = ("math", "multiple_choice", "numeric", "counting", "yes_no", "ocr", "short_text", "open_ended")


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one completion against its gold answer(s).

    score: the accuracy reward in [0, 1] (1.0/0.0 for rule verdicts).
    correct: the verifier's yes/no.
    reason: why (ok = correct; mismatch = parsed and wrong; others = could not judge cleanly).
    extracted: the answer text taken from the completion (None when none was found).
    confident: False when the rule verifier cannot be trusted here (unparseable gold, timeout,
        parse failure); the hybrid router then falls back to the model-based score.
    scored_by: which path produced `score`.
    partial: an optional partial-credit score (ANLS for OCR / short text), reported, not rewarded.
    detail: free-text diagnostics for logs (e.g. the exception text of a crashed worker).
    located: how the answer was found in the completion (one of `extract.LOCATORS`: answer_tag,
        boxed, answer_phrase, gsm8k, math, bare, last_number), None when none was found.
    """

    score: float
    correct: bool
    reason: Reason
    extracted: str | None = None
    confident: bool = True
    scored_by: ScoredBy = "rule"
    partial: float | None = None
    detail: str = ""
    located: str | None = None


@dataclass(frozen=True)
class RewardSample:
    """One response to score. `group_id` ties the G responses to one prompt together."""

    completion: str
    answer: str | list[str]
    task_type: str
    group_id: int
    length: int  # completion length in tokens
    prompt: str = ""
    reference: str | None = None  # reference text for the model-based reward
    choices: list[str] | None = None


@dataclass
class RewardResult:
    """Rewards of a batch: the total and each component, aligned with the submitted samples."""

    total: list[float]
    components: dict[str, list[float]]  # "hybrid", "length", "format" (weighted inputs, unweighted)
    verdicts: list[Verdict]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
