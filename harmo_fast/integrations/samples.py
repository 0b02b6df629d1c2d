"""Foreign inputs as HARMO reward samples: the text of chat messages, ground truths in the shapes
trainers pass them, and the task type a dataset's name implies."""

from __future__ import annotations

import re
from typing import Any

# data-source names -> task type (our choice); the first row with a matching name wins. A word of
# the data source matches a name equal to it, or beginning with it when the name has 4+ letters.
DATA_SOURCE_TASK_TYPES: list[tuple[tuple[str, ...], str]] = [
    (
        ("mmlu", "arc", "gpqa", "scienceqa", "ai2d", "mmbench", "seedbench", "commonsenseqa", "hellaswag", "mcq"),
        "multiple_choice",
    ),
    (("countbench", "counting", "tallyqa"), "counting"),
    (("pope", "yesno", "boolq"), "yes_no"),
    (("ocrbench", "ocr", "textvqa", "docvqa", "infovqa", "chartqa", "vqav2"), "short_text"),
    (("caption", "coco", "nocaps", "llava", "sharegpt"), "open_ended"),
    (
        ("gsm8k", "math", "aime", "amc", "olympiad", "geometry3k", "geo3k", "deepscaler", "dapo", "numina", "minerva"),
        "math",
    ),
]


def task_type_from_data_source(data_source: str, default: str = "math") -> str:
    """The task type `DATA_SOURCE_TASK_TYPES` gives `data_source` (`default` when none matches)."""
    words = [w for w in re.split(r"[^0-9a-z]+", str(data_source).lower()) if w]
    for names, task_type in DATA_SOURCE_TASK_TYPES:
        if any(w == n or (len(n) >= 4 and w.startswith(n)) for w in words for n in names):
            return task_type
    return default


def message_text(x: Any) -> str:
    """The text of a completion or prompt: a string, a message dict, or a list of messages
    (their contents joined); message content may be a list of typed parts."""
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        content = x.get("content", "")
        if isinstance(content, list):
            return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
        return "" if content is None else str(content)
    if isinstance(x, (list, tuple)):
        return "\n".join(message_text(m) for m in x)
    raise TypeError(f"expected a string or chat messages, got {type(x).__name__}")


def gold_answer(x: Any) -> str | list[str]:
    """A ground truth as the verifiers take it: a string, or a list of accepted strings."""
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)) or type(x).__name__ == "ndarray":
        return [str(g) for g in x]
    return str(x)
