"""Shared text and number normalisation for the verifiers (pure string work, bounded time)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

_SMALL = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
NUMBER_WORD = re.compile(
    r"\b(?:(" + "|".join(_TENS) + r")(?:[- ](" + "|".join(k for k in _SMALL if _SMALL[k] and _SMALL[k] < 10) + r"))?"
    r"|(" + "|".join(_SMALL) + r")|(a\s+hundred|one\s+hundred))\b",
    re.IGNORECASE,
)


def number_word_value(m: re.Match[str]) -> int:
    """Value of a `NUMBER_WORD` match ("twenty-one" -> 21)."""
    tens, unit, small, hundred = m.groups()
    if hundred:
        return 100
    if small:
        return _SMALL[small.lower()]
    return _TENS[tens.lower()] + (_SMALL[unit.lower()] if unit else 0)


_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCT_KEEP_DECIMAL = re.compile(r"(?<!\d)[.,](?!\d)|[^\w\s.,]|(?<=\d),(?=\d{3}\b)")


def normalize_text(text: str, *, number_words: bool = True) -> str:
    """Exact-match form of a short answer: NFKC, lower case, punctuation and articles removed,
    number words as digits, single spaces. Decimal points inside numbers are kept."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = t.replace("_", " ")
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # thousands separators
    t = re.sub(r"[^\w\s.]|(?<!\d)\.|\.(?!\d)", " ", t)
    t = _ARTICLES.sub(" ", t)
    if number_words:
        t = NUMBER_WORD.sub(lambda m: str(number_word_value(m)), t)
    return " ".join(t.split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute), O(len(a) * len(b))."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


ANLS_MAX_CHARS = 300


def anls(pred: str, gold: str, threshold: float = 0.5) -> float:
    """Normalised Levenshtein similarity (DocVQA ANLS): 1 - dist/max_len, 0 below `threshold`.
    Compared case-insensitively with collapsed whitespace; beyond `ANLS_MAX_CHARS` only strings
    whose lengths alone keep the similarity above the threshold are scored (else 0)."""
    p = " ".join(unicodedata.normalize("NFKC", pred).lower().split())
    g = " ".join(unicodedata.normalize("NFKC", gold).lower().split())
    longest = max(len(p), len(g))
    if longest == 0:
        return 1.0
    if 1 - abs(len(p) - len(g)) / longest < threshold:
        return 0.0  # the distance is at least the length difference
    if longest > ANLS_MAX_CHARS:
        return 1.0 if p == g else 0.0
    sim = 1 - levenshtein(p, g) / longest
    return sim if sim >= threshold else 0.0


# ---------------------------------------------------------------- numbers


@dataclass(frozen=True)
class Number:
    """A number read from text. `ulp` is the unit in the last printed place of a decimal
    (None for integers and fractions, which are exact); `sig` its significant digits."""

    value: Fraction
    ulp: Fraction | None = None
    sig: int = 0
    percent: bool = False


MAX_NUMBER_DIGITS = 400
MAX_EXPONENT = 400

_CURRENCY = re.compile(r"^(?:\\\$|\$|€|£|¥|₹|US\$|USD\s*|EUR\s*)")
_PERCENT = re.compile(r"\s*(?:\\%|%|\\text\{\s*\\?%\s*\}|\s+percent|\s*pct)$", re.IGNORECASE)
_DEC = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
_PLAIN = re.compile(r"([+-]?)(" + _DEC + r")")
_SCI = re.compile(
    r"([+-]?)("
    + _DEC
    + r")\s*(?:[eE]\s*([+-]?\d+)|(?:\\times|\\cdot|×|\*|x)\s*10\s*\^\s*(?:\{\s*([+-]?\d+)\s*\}|([+-]?\d)))"
)
_REPEATING = re.compile(r"([+-]?)(\d*)\.(\d*)\\overline\s*\{(\d+)\}")  # 0.1\overline{6} = 1/6
_POW10 = re.compile(r"([+-]?)10\s*\^\s*(?:\{\s*([+-]?\d+)\s*\}|([+-]?\d))")
_FRAC = re.compile(r"([+-]?)\\[dt]?frac\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))")
_SLASH = re.compile(r"([+-]?)(\d+)\s*/\s*(\d+)")
_MIXED = re.compile(
    r"([+-]?)(\d+)\s*(?:\\[dt]?frac\s*(?:\{\s*(\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))|\s(\d+)\s*/\s*(\d+))"
)


def _clean_number_text(text: str) -> tuple[str, bool]:
    """Strip delimiters, spacing commands, currency and a percent sign; (text, had_percent)."""
    t = unicodedata.normalize("NFKC", text).strip()
    t = t.replace("{,}", ",").replace("\\!", "").replace("\\,", " ").replace("\\ ", " ").replace("~", " ")
    t = t.replace("\\;", " ").replace("\\:", " ").replace("−", "-").replace("\\left", "").replace("\\right", "")
    t = t.strip().strip("$").strip()
    if t.startswith("\\(") and t.endswith("\\)"):
        t = t[2:-2].strip()
    t = _CURRENCY.sub("", t).strip()
    percent = False
    m = _PERCENT.search(t)
    if m:
        percent = True
        t = t[: m.start()].strip()
    # `1 234` (space-grouped thousands): only groups of exactly three digits.
    if re.fullmatch(r"[+-]?\d{1,3}(?: \d{3})+(?:\.\d+)?", t):
        t = t.replace(" ", "")
    return t, percent


def _decimal(sign: str, digits: str) -> tuple[Fraction, Fraction | None, int] | None:
    digits = digits.replace(",", "")
    if len(digits) > MAX_NUMBER_DIGITS:
        return None
    if "." in digits:
        whole, frac = digits.split(".", 1)
        value = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
        ulp = Fraction(1, 10 ** len(frac))
        sig = len((whole + frac).lstrip("0")) or 1
    else:
        value, ulp, sig = Fraction(int(digits)), None, len(digits.lstrip("0")) or 1
    return (-value if sign == "-" else value), ulp, sig


def parse_number(text: str) -> Number | None:
    """A plain number written as text, or None.

    Accepts integers and decimals with thousands separators (`1,234`, `1{,}234`, `1\\,234`,
    `1 234`), `.5`, repeating decimals (`0.\\overline{3}`), scientific notation (`1.2e3`,
    `1.2\\times 10^{3}`), fractions (`3/4`, `\\frac{3}{4}`), mixed numbers (`1 1/2`,
    `1\\frac{1}{2}`), number words, a currency prefix and a trailing percent sign (recorded,
    not applied).
    """
    if len(text) > 2 * MAX_NUMBER_DIGITS:
        return None
    t, percent = _clean_number_text(text)
    if not t:
        return None
    m = _PLAIN.fullmatch(t)
    if m:
        parsed = _decimal(m.group(1), m.group(2))
        return None if parsed is None else Number(parsed[0], parsed[1], parsed[2], percent)
    m = _SCI.fullmatch(t)
    if m:
        exp = int(m.group(3) or m.group(4) or m.group(5))
        parsed = _decimal(m.group(1), m.group(2))
        if parsed is None or abs(exp) > MAX_EXPONENT:
            return None
        scale = Fraction(10) ** exp
        ulp = (parsed[1] or Fraction(1)) * scale
        return Number(parsed[0] * scale, ulp, parsed[2], percent)
    m = _REPEATING.fullmatch(t)
    if m and max(len(g) for g in m.groups()[1:]) <= MAX_NUMBER_DIGITS // 4:
        sign, whole, head, rep = m.groups()
        scale = 10 ** len(head)
        value = int(whole or "0") + Fraction(int(head or "0"), scale) + Fraction(int(rep), scale * (10 ** len(rep) - 1))
        return Number(-value if sign == "-" else value, None, 0, percent)
    m = _POW10.fullmatch(t)
    if m:
        exp = int(m.group(2) or m.group(3))
        if abs(exp) > MAX_EXPONENT:
            return None
        value = Fraction(10) ** exp
        return Number(-value if m.group(1) == "-" else value, None, 1, percent)
    m = _MIXED.fullmatch(t)
    if m:
        sign, whole = m.group(1), int(m.group(2))
        num = int(m.group(3) or m.group(4) or m.group(7))
        den = int(m.group(5) or m.group(6) or m.group(8))
        if den == 0 or num >= den:
            return None  # `2 5/3` is not a mixed number
        value = whole + Fraction(num, den)
        return Number(-value if sign == "-" else value, None, 0, percent)
    m = _FRAC.fullmatch(t) or _SLASH.fullmatch(t)
    if m:
        groups = [g for g in m.groups()[1:] if g is not None]
        num, den = int(groups[0]), int(groups[1])
        if den == 0 or max(len(groups[0]), len(groups[1])) > MAX_NUMBER_DIGITS:
            return None
        value = Fraction(num, den)
        return Number(-value if m.group(1) == "-" else value, None, 0, percent)
    m = NUMBER_WORD.fullmatch(t)
    if m:
        return Number(Fraction(number_word_value(m)), None, 0, percent)
    return None


PERCENT_POLICIES = ("either", "value", "number")


def number_readings(n: Number, percent: str) -> list[Fraction]:
    """Values a number may mean under the percent policy: "value" reads `p%` as p/100,
    "number" ignores the sign (p), "either" accepts both. Numbers without a sign mean themselves."""
    if not n.percent:
        return [n.value]
    if percent == "value":
        return [n.value / 100]
    if percent == "number":
        return [n.value]
    return [n.value / 100, n.value]


MIN_APPROX_SIG = 6


def numbers_equal(pred: Number, gold: Number, *, percent: str = "either", rel_tol: float | None = None) -> bool:
    """Whether `pred` states `gold`.

    Integers and fractions compare exactly. A decimal gold allows half a unit in its last
    printed place (so the tolerance scales with scientific notation). A decimal prediction of
    an exact gold that is not exactly equal must round to it at its own printed precision and
    carry at least `MIN_APPROX_SIG` significant digits. `rel_tol` replaces all of this with a
    relative tolerance.
    """
    for g in number_readings(gold, percent if gold.percent else "value"):
        for p in number_readings(pred, percent if pred.percent else "value"):
            if _close(p, g, pred, gold, rel_tol):
                return True
    return False


def _close(p: Fraction, g: Fraction, pred: Number, gold: Number, rel_tol: float | None) -> bool:
    if p == g:
        return True
    diff = abs(p - g)
    if rel_tol is not None:
        return diff <= Fraction(rel_tol) * max(abs(p), abs(g))
    if gold.ulp is not None:
        return diff <= gold.ulp / 2
    if pred.ulp is not None and pred.sig >= MIN_APPROX_SIG:
        return diff <= pred.ulp / 2
    return False
