"""R_fmt, the format-adherence reward (docs/SPEC.md §1).

Two styles, chosen by `FormatConfig.style`:

- "tags" (default): the whole completion is exactly one `<think>...</think>` followed by exactly one
  `<answer>...</answer>`, with only whitespace before, between and after. Both ends are anchored
  (never MULTILINE `$`, which lets trailing text through), the blocks may span lines (DOTALL), and
  every tag must occur exactly once, so duplicated, nested or out-of-order blocks fail.
- "boxed": reasoning text followed by exactly one brace-balanced `\\boxed{...}` and nothing
  substantive after it (whitespace, a final period, closing math delimiters or markdown bold are
  allowed). A think block, if present, must be a single leading `<think>...</think>` and the box
  must follow it.

With `require_nonempty` (default) the think/reasoning part and the answer must contain
non-whitespace text, so `<think></think><answer></answer>` does not earn the reward. Tags tolerate
whitespace inside the angle brackets (`< think >`, `</ answer>`), as Qwen2.5-VL emits them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from harmo_fast.rewards.config import FormatConfig

# What may follow the final box: whitespace, '.', '$', '\]', '\)', markdown '*'.
_BOX_TAIL = re.compile(r"(?:\s|\.|\$|\\\]|\\\)|\*)*\Z")
_BOX_OPEN = re.compile(r"\\boxed\s*\{")


@lru_cache(maxsize=32)
def _tag_patterns(tag: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    name = re.escape(tag)
    return re.compile(rf"<\s*{name}\s*>"), re.compile(rf"<\s*/\s*{name}\s*>")


def _single_block(text: str, tag: str) -> tuple[int, int, int, int] | None:
    """(open_start, open_end, close_start, close_end) of the one `<tag>...</tag>` in `text`, or
    None when the tag does not occur exactly once, opening before closing."""
    open_re, close_re = _tag_patterns(tag)
    opens = list(open_re.finditer(text))
    closes = list(close_re.finditer(text))
    if len(opens) != 1 or len(closes) != 1:
        return None
    o, c = opens[0], closes[0]
    if c.start() < o.end():
        return None
    return o.start(), o.end(), c.start(), c.end()


def _follows_tags(completion: str, cfg: FormatConfig) -> bool:
    if cfg.think_tag == cfg.answer_tag:
        raise ValueError(f"FormatConfig.think_tag and answer_tag must differ, both are {cfg.think_tag!r}")
    think = _single_block(completion, cfg.think_tag)
    answer = _single_block(completion, cfg.answer_tag)
    if think is None or answer is None:
        return False
    t_open, t_body, t_close, t_end = think
    a_open, a_body, a_close, a_end = answer
    if completion[:t_open].strip() or completion[t_end:a_open].strip() or completion[a_end:].strip():
        return False  # text before, between or after the blocks (this also rejects wrong order)
    filled = bool(completion[t_body:t_close].strip() and completion[a_body:a_close].strip())
    return filled or not cfg.require_nonempty


def _box_end(text: str, body_start: int) -> int | None:
    """Index just past the brace closing a box whose body starts at `body_start`, or None."""
    depth = 1
    i = body_start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # an escaped brace \{ or \} does not count
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _follows_boxed(completion: str, cfg: FormatConfig) -> bool:
    open_re, close_re = _tag_patterns(cfg.think_tag)
    start = 0
    if open_re.search(completion) or close_re.search(completion):
        think = _single_block(completion, cfg.think_tag)
        if think is None or completion[: think[0]].strip():
            return False
        if cfg.require_nonempty and not completion[think[1] : think[2]].strip():
            return False
        start = think[3]
    boxes = list(_BOX_OPEN.finditer(completion))
    if len(boxes) != 1 or boxes[0].start() < start:
        return False
    box = boxes[0]
    end = _box_end(completion, box.end())
    if end is None or not _BOX_TAIL.match(completion, end):
        return False
    if cfg.require_nonempty:
        reasoning = completion[: box.start()] if start == 0 else completion[:start]
        if not reasoning.strip() or not completion[box.end() : end - 1].strip():
            return False
    return True


# style -> checker; new styles register here.
FORMAT_STYLES: dict[str, Callable[[str, FormatConfig], bool]] = {
    "tags": _follows_tags,
    "boxed": _follows_boxed,
}


def follows_format(completion: str, cfg: FormatConfig | None = None) -> bool:
    """True when `completion` follows the format `cfg` (None = the defaults) describes (see the
    module docstring)."""
    cfg = cfg or FormatConfig()
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    checker = FORMAT_STYLES.get(cfg.style)
    if checker is None:
        raise ValueError(f"FormatConfig.style must be one of {sorted(FORMAT_STYLES)}, got {cfg.style!r}")
    return checker(completion, cfg)


def format_reward(completions: list[str], cfg: FormatConfig | None = None) -> list[float]:
    """R_fmt per completion: +cfg.f_pos when it follows the format, -cfg.f_neg when not, and 0.0
    for every completion when `cfg.enabled` is False (cfg None = the defaults)."""
    cfg = cfg or FormatConfig()
    if not cfg.enabled:
        return [0.0] * len(completions)
    return [cfg.f_pos if follows_format(c, cfg) else -cfg.f_neg for c in completions]
