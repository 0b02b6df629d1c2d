"""The public rule-verification entry point: `verify(completion, gold, task_type, **options)`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from harmo_fast.rewards.extract import last_number, locate, strip_reasoning
from harmo_fast.rewards.process_pool import shared_pool
from harmo_fast.rewards.types import Verdict
from harmo_fast.rewards.verifiers import get_verifier

COMMON_OPTIONS = frozenset({"last_number_fallback", "strict_format", "timeout_s"})


def _golds(gold: str | Sequence[str]) -> list[str]:
    golds = [gold] if isinstance(gold, str) else list(gold) if isinstance(gold, (list, tuple)) else None
    if golds is None or not golds or not all(isinstance(g, str) for g in golds):
        raise ValueError(f"gold must be a str or a non-empty list of str, got {gold!r:.80}")
    return golds


def _check_options(verifier: Any, task_type: str, options: dict[str, Any]) -> None:
    unknown = set(options) - COMMON_OPTIONS - verifier.option_names
    if unknown:
        valid = sorted(COMMON_OPTIONS | verifier.option_names)
        raise ValueError(f"unknown option(s) {sorted(unknown)} for task_type {task_type!r}; valid: {valid}")
    timeout_s = options.get("timeout_s")
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number or None, got {timeout_s!r}")
    for flag in ("last_number_fallback", "strict_format"):
        if not isinstance(options.get(flag, False), bool):
            raise ValueError(f"{flag} must be a bool, got {options[flag]!r}")
    verifier.validate_options(options)


def prepare(completion: str, gold: str | Sequence[str], task_type: str, options: dict[str, Any]):
    """Validate and extract: (verifier, answer, golds, options, early verdict or None)."""
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    verifier = get_verifier(task_type)
    _check_options(verifier, task_type, options)
    golds = _golds(gold)
    body = strip_reasoning(completion)
    if body is None:
        verdict = Verdict(0.0, False, "format_fail", None, detail="unterminated <think>")
        if task_type == "open_ended":
            verdict = replace(verdict, confident=False, scored_by="none")
        return verifier, None, golds, options, verdict
    free_text = verifier.free_text and not options.get("strict_format", False)
    found = locate(body, free_text=free_text)
    opts = dict(options)
    bare = body.strip()
    if found is None and bare and verifier.accepts_bare(bare):
        found = bare, "bare"
        opts["_bare"] = True
    if found is None and (free_text or options.get("last_number_fallback")):
        number = last_number(body)
        found = None if number is None else (number, "last_number")
    if found is None:
        return verifier, None, golds, opts, Verdict(0.0, False, "no_answer", None)
    answer, opts["_located"] = found
    return verifier, answer, golds, opts, None


def fast_verify(completion: str, gold: str | Sequence[str], task_type: str = "math", **options: Any) -> Verdict | None:
    """The verdict when it needs no heavy work (bounded string work only), else None."""
    verifier, answer, golds, opts, early = prepare(completion, gold, task_type, options)
    if early is not None:
        return early
    try:
        verdict = verifier.fast_check(answer, golds, opts)
    except Exception as exc:
        verdict = _error(exc)
    return None if verdict is None else _with_answer(verdict, answer, opts["_located"])


def verify_inline(completion: str, gold: str | Sequence[str], task_type: str = "math", **options: Any) -> Verdict:
    """The full verdict computed in this process, without a hard timeout (guards still apply)."""
    verifier, answer, golds, opts, early = prepare(completion, gold, task_type, options)
    if early is not None:
        return early
    try:
        verdict = verifier.fast_check(answer, golds, opts)
        if verdict is None:
            verdict = verifier.check(answer, golds, opts)
    except Exception as exc:
        # Model text must never take the reward layer down: a verifier failure scores this
        # sample as an error (not confident) instead of raising. Arguments were validated above.
        verdict = _error(exc)
    return _with_answer(verdict, answer, opts["_located"])


def _error(exc: BaseException) -> Verdict:
    return Verdict(0.0, False, "error", None, confident=False, detail=f"{type(exc).__name__}: {exc}"[:2000])


def _with_answer(verdict: Verdict, answer: str, located: str) -> Verdict:
    return replace(verdict, extracted=answer if verdict.extracted is None else verdict.extracted, located=located)


def verify(completion: str, gold: str | Sequence[str], task_type: str = "math", **options: Any) -> Verdict:
    """Check a raw model completion against its gold answer(s) with the task type's rule verifier.

    `gold` is a string or a list of acceptable strings. Options: `strict_format` (math and
    numeric: grade only an answer marked by a tag, box or answer phrase, or a short bare
    response, instead of also locating it in free text: a GSM8K line, the last math span, the
    last number), `last_number_fallback` (grade the last number when nothing else locates the
    answer, for every task type), `timeout_s` (a hard limit: cases that need sympy then run in
    the shared worker pool, see `harmo_fast.rewards.pool`), and the task type's own (`choices`
    for multiple choice; `percent`, `rel_tol`, `ordered` for math and numeric). Unknown task
    types and options raise ValueError. `Verdict.located` names the locator that found the answer.
    """
    timeout_s = options.get("timeout_s")
    if timeout_s is None:
        return verify_inline(completion, gold, task_type, **options)
    fast = fast_verify(completion, gold, task_type, **options)
    if fast is not None:
        return fast
    return shared_pool(float(timeout_s)).verify_many([(completion, gold, task_type, options)])[0]
