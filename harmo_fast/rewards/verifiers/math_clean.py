"""LaTeX clean-up of a math answer before it is compared: delimiters, boxes, spacing
commands, `\\left`/`\\right`, degree signs, trailing units and text (never single letters)."""

from __future__ import annotations

import re
import unicodedata

UNIT_WORDS = frozenset([
    "cm", "mm", "km", "m2", "cm2", "mm2", "km2", "m3", "cm3", "meter", "meters", "metre", "metres", "centimeter",
    "centimeters", "millimeter", "millimeters", "kilometer", "kilometers", "inch", "inches", "foot", "feet", "ft",
    "yard", "yards", "yd", "mile", "miles", "mi", "gram", "grams", "kg", "kilogram", "kilograms", "mg", "pound",
    "pounds", "lb", "lbs", "ounce", "ounces", "oz", "ton", "tons", "tonne", "tonnes", "liter", "liters", "litre",
    "litres", "ml", "gallon", "gallons", "second", "seconds", "sec", "secs", "minute", "minutes", "min", "mins",
    "hour", "hours", "hr", "hrs", "day", "days", "week", "weeks", "month", "months", "year", "years", "degree",
    "degrees", "deg", "radian", "radians", "rad", "dollar", "dollars", "cent", "cents", "euro", "euros", "usd",
    "unit", "units", "sq", "square", "cubic", "mph", "kmh", "kph", "people", "person", "persons", "students",
    "student", "ways", "times", "apples", "cookies", "marbles", "items", "pieces", "point", "points", "integer",
    "integers", "number", "numbers", "outcomes", "cars", "boxes", "balls", "coins", "books", "pages",
])  # fmt: skip

_DELIMS = re.compile(r"\\[()\[\]]|\$")
_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|~|\\quad|\\qquad")
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)[lr]?(?![a-zA-Z])\.?")
_STYLE = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle)")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|operatorname|mbox)\s*\{([^{}]*)\}")
# One or more unit words in text commands, with powers, `/` and `\\cdot` between (`\\text{km/h}`,
# `\\mathrm{km} / \\mathrm{h}`, `\\text{ m}^2`). Every run of spaces can be matched one way only,
# so the repeated group cannot backtrack exponentially.
_TRAILING_TEXT_UNIT = re.compile(
    r"^(.*?[\d}.)])\s*((?:\\(?:text|mathrm|mbox)\s*\{\s*[A-Za-z][A-Za-z ./]*\}(?:\s*\^\s*\{?-?\d\}?)?"
    r"(?:\s*(?:/|\\cdot))?\s*)+)$"
)
_UNIT_TEXT = re.compile(r"\{([^{}]*)\}")
_TRAILING_WORDS = re.compile(r"^(.*?[\d}.)%])\s+([A-Za-z]{2,}(?:[ /][A-Za-z]{2,})*)(?:\s*\^\s*\{?\d\}?)?$")
_ORDINAL = re.compile(r"(\d)\s*\^?\s*\{?\s*(?:\\text\{\s*)?(?:st|nd|rd|th)\s*\}?\}?$")
_FUNCTION_WORDS = frozenset([
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "and", "or",
])  # fmt: skip


def unwrap_boxed(text: str) -> str:
    """`\\boxed{x}` / `\\fbox{x}` around the whole text -> `x` (repeatedly)."""
    t = text.strip()
    while True:
        m = re.match(r"\\(?:boxed|fbox)\s*\{", t)
        if not m or not t.endswith("}") or not _balanced(t[m.end() : -1]):
            return t
        t = t[m.end() : -1].strip()


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def clean_math(text: str) -> str:
    """A math answer without delimiters, boxes, sizing and spacing commands, degree signs,
    trailing units or a trailing period; `\\dfrac`/`\\tfrac` as `\\frac`; `\\%` as `%`."""
    t = unicodedata.normalize("NFKC", text).strip()
    t = _DELIMS.sub(" ", t)
    t = unwrap_boxed(t.strip())
    t = _STYLE.sub("", t)
    t = _SIZING.sub("", t)
    t = re.sub(r"(?<=\d),\s*\\[!,]\s*(?=\d{3}(?!\d))", ",", t)  # `42,\\! 000`: a thousands group
    t = t.replace("\\!", "").replace("{,}", ",")
    t = re.sub(r"(?<=\d)\\,(?=\d{3}\b)", "", t)
    t = _SPACING.sub(" ", t)
    t = re.sub(r"\\[dtc]frac", r"\\frac", t)
    # Shorthand arguments: `\frac12`, `\frac1{x}`, `\sqrt3` -> braced.
    t = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])", r"\\frac{\1}{\2}", t)
    t = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*(?=\{)", r"\\frac{\1}", t)
    t = re.sub(r"\\frac\s*(\{[^{}]*\})\s*([0-9a-zA-Z])", r"\\frac\1{\2}", t)
    t = re.sub(r"\\sqrt\s*([0-9a-zA-Z])", r"\\sqrt{\1}", t)
    t = _DEGREE.sub("", t)
    t = t.replace("\\%", "%").replace("−", "-").replace("\\leqslant", "\\le").replace("\\geqslant", "\\ge")
    t = t.replace("\\emptyset", "\\{\\}").replace("\\varnothing", "\\{\\}")
    t = re.sub(r"\\mathbb\s*\{?\s*R\s*\}?", r"(-\\infty,\\infty)", t)
    t = " ".join(t.split()).strip()
    while t.endswith((".", "\\")) and not t.endswith("\\\\"):
        t = t[:-1].rstrip()
    t = _strip_units(t)
    t = re.sub(r"^[A-Za-z]\s*\\in(?![a-zA-Z])\s*", "", t)  # `x \in [1, 2]`
    t = re.sub(r"^\\text\s*\{([^{}]*)\}$", r"\1", t).strip()
    while t.startswith("{") and t.endswith("}") and _balanced(t[1:-1]):
        t = t[1:-1].strip()  # a bare TeX group `{0}`
    return t


def _strip_units(t: str) -> str:
    """Drop a trailing unit or text word after a numeric-looking answer (`5\\text{ cm}`,
    `10 meters`, `12^{\\text{th}}`); single letters are never stripped (they are variables)."""
    for _ in range(2):
        m = _ORDINAL.search(t)
        if m and re.fullmatch(r"[\d,.\s+-]*\d(?:st|nd|rd|th|\^.*)", t.replace(" ", "")):
            t = t[: m.start()] + m.group(1)
        m = _TRAILING_TEXT_UNIT.match(t)
        words = " ".join(_UNIT_TEXT.findall(m.group(2))).replace("/", " ").lower().split() if m else []
        if m and not (set(words) & _FUNCTION_WORDS):
            t = m.group(1).strip()
            continue
        m = _TRAILING_WORDS.match(t)
        if m and all(
            w.lower() in UNIT_WORDS or w.lower().rstrip("s") in UNIT_WORDS for w in re.split(r"[ /]", m.group(2))
        ):
            t = m.group(1).strip()
            continue
        m = re.match(r"^(.*?\d)\s*\\?(?:cm|mm|km|m|kg|g|s|ml)\s*\^\s*\{?[23]\}?$", t)
        if m:
            t = m.group(1)
            continue
        break
    return t


def unwrap_text(t: str) -> str:
    """Every `\\text{...}`-like command replaced by its content."""
    for _ in range(3):
        t2 = _TEXT_CMD.sub(r"\1", t)
        if t2 == t:
            break
        t = t2
    return t
