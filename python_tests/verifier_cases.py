"""Our own labelled corpus of free-form verifier cases: (category, completion, gold, task_type,
expected verdict). Written for this project, one category per equivalence or location feature
of issue 12, with false-positive traps next to the true matches. Used by
test_verifiers_free_form.py and benchmarks/bench_verifiers.py (agreement with math-verify)."""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    category: str
    completion: str
    gold: str
    task_type: str
    expected: bool


def _cases(category: str, rows: list[tuple[str, str, bool]], task_type: str = "math") -> list[Case]:
    return [Case(category, c, g, task_type, e) for c, g, e in rows]


# Answers in free text: no tag, no box.
FREE_TEXT = [
    ("The result is $ 14 $", "14", True),
    ("The result is $ 14 $", "15", False),
    ("Hence $y \\geq 2$ holds.", "y \\ge 2", True),
    ("Hence $y \\geq 2$ holds.", "y \\ge 3", False),
    ("We compute the sum.\n\\[ x = \\frac{3}{4} \\]", "\\frac34", True),
    ("We compute the sum.\n\\[ x = \\frac{3}{4} \\]", "0.75", True),
    ("We compute the sum.\n\\[ x = \\frac{3}{4} \\]", "\\frac43", False),
    ("So there are \\( 7 \\) apples left.", "7", True),
    ("So there are \\( 7 \\) apples left.", "8", False),
    ("Summing up:\n$$ 12 $$", "12", True),
    ("Summing up:\n$$ 12 $$", "21", False),
    ("First $a = 3$, then $b = 4$, and finally $c = \\sqrt{a^2+b^2} = 5$.", "5", True),
    ("First $a = 3$, then $b = 4$, and finally $c = \\sqrt{a^2+b^2} = 5$.", "3", False),
    ("Adding the two numbers, 19 + 29 = 48.", "48", True),
    ("19+29 = 48", "48", True),
    ("19+29 = 48", "47", False),
    ("First 19+29. That gives 48 in total.", "48", True),
    ("First 19+29. That gives 48 in total.", "19", False),
    ("The area of the square is $s^2 = 36$ square units.", "36", True),
    ("The area of the square is $s^2 = 36$ square units.", "6", False),
    ("Therefore, the probability is $\\frac{1}{6}$.", "\\frac{1}{6}", True),
    ("Therefore, the probability is $\\frac{1}{6}$.", "\\frac{1}{3}", False),
    ("We solve and get \\(x = -2\\).", "-2", True),
    ("We solve and get \\(x = -2\\).", "2", False),
    ("The roots of $x^2-5x+6$ are $2$ and $3$.", "2, 3", True),
    ("The roots of $x^2-5x+6$ are $2$ and $3$.", "2", False),
    ("So the distance is 150 km after 3 hours.", "3", True),
    ("The total cost comes to 42 dollars.", "42", True),
    ("The total cost comes to 42 dollars.", "24", False),
    ("Its derivative is $3x^2 + 2x$.", "2x+3x^2", True),
    ("Its derivative is $3x^2 + 2x$.", "3x^2+2", False),
    ("Simplifying, we obtain \\[\\sqrt{12} = 2\\sqrt{3}.\\]", "2\\sqrt3", True),
    ("The average speed is 2.5 m/s overall.", "2.5", True),
    ("The average speed is 2.5 m/s overall.", "25", False),
    ("It takes her 3/4 of an hour.", "0.75", True),
    ("Then the slope is $m = -\\frac{1}{2}$, as expected.", "-0.5", True),
    ("Then the slope is $m = -\\frac{1}{2}$, as expected.", "0.5", False),
]

# Longer derivations: the last statement carries the answer.
DERIVATIONS = [
    ("Let $x$ be the number of apples. Then $2x + 3 = 11$, so $x = 4$.", "4", True),
    ("Let $x$ be the number of apples. Then $2x + 3 = 11$, so $x = 4$.", "11", False),
    ("The minimum is attained at $x=1$, where $f(1) = -3$.", "-3", True),
    ("The minimum is attained at $x=1$, where $f(1) = -3$.", "1", False),
    ("There are 5 red and 3 blue, so 8 balls.", "8", True),
    ("There are 5 red and 3 blue, so 8 balls.", "3", False),
    ("So we need 3.5 hours. Let me double check: 7/2 = 3.5. Yes.", "3.5", True),
    ("So the greatest common divisor is 6, since 6 divides both.", "6", True),
    ("The largest is 1,000,000.", "1000000", True),
    ("We get 2.50 dollars.", "2.5", True),
    ("We have $$x^2 = 9$$ thus $$x = \\pm 3.$$", "\\pm 3", True),
    ("We have $$x^2 = 9$$ thus $$x = \\pm 3.$$", "3", False),
    ("The value is $3$ meters, i.e. $300$ cm.", "3", False),  # the last statement is what counts
    ("The expression equals $\\frac{a+b}{2}$.", "\\frac{b+a}{2}", True),
    ("The expression equals $\\frac{a+b}{2}$.", "\\frac{a-b}{2}", False),
    ("The point is $(3, 4)$.", "(3,4)", True),
    ("Therefore the probability is 0.35, or 35%.", "0.35", True),
    ("Thus the answer is **17**.", "17", True),
    ("Thus the answer is **17**.", "71", False),
]

GSM8K = [
    ("Natalia sold 48 clips in April and half as many in May.\n48 / 2 = 24\n48 + 24 = 72\n#### 72", "72", True),
    ("Natalia sold 48 clips in April and half as many in May.\n48 / 2 = 24\n48 + 24 = 72\n#### 72", "24", False),
    ("He earns 12 per hour for 50 minutes: 12 / 60 * 50 = 10.\n#### 10", "10", True),
    ("He earns 12 per hour for 50 minutes: 12 / 60 * 50 = 10.\n#### 10", "12", False),
    ("Total: 1,000 + 250 = 1,250\n#### 1,250", "1250", True),
    ("Total: 1,000 + 250 = 1,250\n#### 1,250", "1000", False),
    ("#### 5\nSo five cookies are left for Tom.", "5", True),
    ("3 * 4 = 12 eggs are used.\n#### 12 eggs", "12", True),
    ("3 * 4 = 12 eggs are used.\n#### 12 eggs", "13", False),
    ("Half of 9 is 4.5\n#### 4.5", "4.5", True),
    ("Half of 9 is 4.5\n#### 4.5", "4", False),
    ("The price is $20 - $5 = $15.\n#### 15", "15", True),
]

FINAL_ANSWER = [
    ("Final Answer: The final answer is 58. I hope it is correct.", "58", True),
    ("Final Answer: The final answer is 58. I hope it is correct.", "85", False),
    ("Final Answer: The final answer is $\\frac{3}{5}$. I hope it is correct.", "0.6", True),
    ("Final Answer: The final answer is $\\frac{3}{5}$. I hope it is correct.", "\\frac{5}{3}", False),
    ("We add them. The final answer is 7.", "7", True),
    ("We add them. The final answer is 7.", "8", False),
    ("The answer is 14. Then we double-check by adding 15 to it.", "14", True),
    ("The answer is 14. Then we double-check by adding 15 to it.", "15", False),
    ("**Final Answer:** $x = 4$", "4", True),
    ("**Final Answer:** $x = 4$", "-4", False),
    ("The answer is $(3, -1)$ because both equations hold there.", "(3,-1)", True),
    ("The answer is $(3, -1)$ because both equations hold there.", "(-1,3)", False),
    ("Answer: 1,234", "1234", True),
    ("Answer: 1,234", "1243", False),
    ("So the final answer is therefore $\\sqrt{2}$.", "\\sqrt{2}", True),
    ("So the final answer is therefore $\\sqrt{2}$.", "2", False),
    ("Final answer: 0.125", "\\frac18", True),
    ("Final answer: 0.125", "\\frac14", False),
    ("The answer is 14 because 3 + 11 = 14", "14", True),
    ("The answer is 14 because 3 + 11 = 14", "11", False),
    ("The answer is 12 and 13", "12", False),
    ("Answer: 7 or 8 apples", "7", False),
]

DECIMAL_SEPARATORS = [
    ("$\\boxed{2500,75}$", "2500.75", True),
    ("$\\boxed{2500,75}$", "250075", False),
    ("$\\boxed{2,500.75}$", "2500.75", True),
    ("$\\boxed{2,500.75}$", "2500.57", False),
    ("$\\boxed{42,\\! 000}$", "42000", True),
    ("$\\boxed{42,\\!000}$", "42000", True),
    ("$\\boxed{42,\\! 000}$", "42", False),
    ("$\\boxed{1{,}000{,}000}$", "1000000", True),
    ("$\\boxed{1\\,000}$", "1000", True),
    ("$\\boxed{12 345}$", "12345", True),
    ("$\\boxed{3,5}$", "3.5", True),
    ("$\\boxed{3,5}$", "3, 5", True),
    ("$\\boxed{3,5}$", "35", False),
    ("$\\boxed{0,25}$", "\\frac14", True),
    ("$\\boxed{1,234}$", "1234", True),
    ("$\\boxed{1,234}$", "1.234", False),
    ("The total is 12,000 people.", "12000", True),
    ("The total is 12,000 people.", "12", False),
    ("$\\boxed{-1,5}$", "-1.5", True),
    ("$\\boxed{10,000.5}$", "10000.5", True),
]

UNITS_CURRENCY = [
    ("$\\boxed{5\\text{ km}}$", "5", True),
    ("$\\boxed{5\\text{ km}}$", "50", False),
    ("$\\boxed{12\\mathrm{kg}}$", "12", True),
    ("$\\boxed{12\\mathrm{kg}}$", "1.2", False),
    ("$\\boxed{\\$ 5}$", "5", True),
    ("$\\boxed{\\$5.50}$", "5.5", True),
    ("$\\boxed{\\$5.50}$", "55", False),
    ("The volume is 5 cm³.", "5", True),
    ("$\\boxed{5\\text{ cm}^3}$", "5", True),
    ("$\\boxed{5\\text{ cm}^3}$", "125", False),
    ("$\\boxed{30^\\circ}$", "30", True),
    ("$\\boxed{30^{\\circ}}$", "60", False),
    ("$\\boxed{45°}$", "45", True),
    ("$\\boxed{10 \\text{ meters}}$", "10", True),
    ("$\\boxed{3 \\text{ hours}}$", "3", True),
    ("$\\boxed{3 \\text{ hours}}$", "180", False),
    ("$\\boxed{€20}$", "20", True),
    ("$\\boxed{£ 7.25}$", "7.25", True),
    ("$\\boxed{25\\%}$", "25", True),
    ("$\\boxed{25\\%}$", "0.25", True),
    ("$\\boxed{25\\%}$", "2.5", False),
    ("$\\boxed{8 \\text{ cm}^2}$", "8", True),
    ("$\\boxed{8 \\mathrm{~cm}^2}$", "8", True),
    ("$\\boxed{100 \\text{ dollars}}$", "100", True),
    ("$\\boxed{6\\text{ inches}}$", "6", True),
    ("$\\boxed{6\\text{ inches}}$", "0.5", False),
    ("The perimeter is $24\\text{ cm}$.", "24", True),
    ("The answer is $\\$ 1,250$.", "1250", True),
    ("It costs $\\$12.50$ per ticket.", "12.5", True),
    ("It costs $\\$12.50$ per ticket.", "1250", False),
    ("The speed is $60\\,\\text{km/h}$.", "60", True),
    ("The speed is $60 \\mathrm{~km} / \\mathrm{h}$.", "60", True),
    ("The speed is $60 \\mathrm{~km} / \\mathrm{h}$.", "6", False),
    ("$\\boxed{2500,75 \\text{ euros}}$", "2500.75", True),
    ("$\\boxed{5 \\text{ km}^2}$", "5", True),
]

RELATIONS = [
    ("$\\boxed{x \\geq 2}$", "x >= 2", True),
    ("$\\boxed{x \\geq 2}$", "x > 2", False),
    ("$\\boxed{x \\lt 2}$", "x < 2", True),
    ("$\\boxed{x \\lt 2}$", "x <= 2", False),
    ("$\\boxed{x \\gt -1}$", "x > -1", True),
    ("$\\boxed{x \\neq 2}$", "x != 2", True),
    ("$\\boxed{x \\ne 2}$", "x \\neq 2", True),
    ("$\\boxed{x \\neq 2}$", "x \\neq 3", False),
    ("$\\boxed{x \\leq 5}$", "5 \\geq x", True),
    ("$\\boxed{x \\leq 5}$", "x \\geq 5", False),
    ("$\\boxed{x \\geqslant 0}$", "x \\ge 0", True),
    ("$\\boxed{a \\le b}$", "a \\leq b", True),
    ("$\\boxed{a \\le b}$", "a \\geq b", False),
    ("$\\boxed{2 < x < 3}$", "2 < x < 3", True),
    ("$\\boxed{2 < x < 3}$", "2 < x \\le 3", False),
    ("$\\boxed{x ≥ 1}$", "x \\ge 1", True),
]

INEQUALITY_INTERVAL = [
    ("$\\boxed{t \\in [1,4]}$", "1 \\le t \\le 4", True),
    ("$\\boxed{[1,4]}$", "1 \\le t \\le 4", True),
    ("$\\boxed{(1,4]}$", "1 \\le t \\le 4", False),
    ("$\\boxed{(2,5)}$", "2<g(x)<5", True),
    ("$\\boxed{[2,5)}$", "2<g(x)<5", False),
    ("$\\boxed{[2, \\infty)}$", "x \\geq 2", True),
    ("$\\boxed{(2, \\infty)}$", "x \\geq 2", False),
    ("$\\boxed{(-\\infty, 3)}$", "x < 3", True),
    ("$\\boxed{(-\\infty,-1)\\cup(2,\\infty)}$", "x<-1 \\text{ or } x>2", True),
    ("$\\boxed{(-\\infty,-1]\\cup(2,\\infty)}$", "x<-1 \\text{ or } x>2", False),
    ("$\\boxed{x \\in (0, 1)}$", "(0,1)", True),
    ("$\\boxed{x \\in (0, 1)}$", "[0,1]", False),
    ("Hence $y \\geq 2$ holds.", "[2,\\infty)", False),  # a restated inequality is not the interval
    ("$\\boxed{1 < x < 2}$", "(1, 2)", False),
    ("$\\boxed{\\left(-3, \\frac{1}{2}\\right]}$", "-3 < x \\le 0.5", True),
    ("$\\boxed{\\mathbb{R}}$", "(-\\infty, \\infty)", True),
    ("$\\boxed{1 \\leq t \\leq 4}$", "t \\in [1, 4]", False),  # directional, as above
    ("Answer: $x \\in [-2, 2]$", "[-2,2]", True),
    ("Answer: $x \\in [-2, 2]$", "(-2,2)", False),
]

MATRICES = [
    ("$\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}$", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}", True),
    ("$\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}$", "\\begin{bmatrix}1&2\\\\4&3\\end{bmatrix}", False),
    (
        "$\\boxed{\\left[\\begin{array}{cc}1&2\\\\3&4\\end{array}\\right]}$",
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        True,
    ),
    (
        "$\\boxed{\\left[\\begin{array}{cc}1&2\\\\3&5\\end{array}\\right]}$",
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        False,
    ),
    (
        "$\\boxed{\\begin{pmatrix}0.333333&0.5\\end{pmatrix}}$",
        "\\begin{pmatrix}\\frac13&\\frac12\\end{pmatrix}",
        True,
    ),
    ("$\\boxed{\\begin{pmatrix}0.33&0.5\\end{pmatrix}}$", "\\begin{pmatrix}\\frac13&\\frac12\\end{pmatrix}", False),
    ("$\\boxed{\\begin{pmatrix}\\frac12\\\\-1\\end{pmatrix}}$", "\\begin{pmatrix}0.5\\\\-1\\end{pmatrix}", True),
    ("$\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}$", "\\begin{pmatrix}1&2\\end{pmatrix}", False),
    ("$\\boxed{\\begin{bmatrix}2&0\\\\0&2\\end{bmatrix}}$", "\\begin{pmatrix}2&0\\\\0&2\\end{pmatrix}", True),
    ("$\\boxed{\\begin{bmatrix}2&0\\\\0&2\\end{bmatrix}}$", "\\begin{pmatrix}2&0&0\\\\0&2&0\\end{pmatrix}", False),
    (
        "The matrix is \\[\\begin{pmatrix} 3 & 1 \\\\ 1 & 3 \\end{pmatrix}.\\]",
        "\\begin{pmatrix}3&1\\\\1&3\\end{pmatrix}",
        True,
    ),
    ("$\\boxed{\\begin{pmatrix}\\sqrt{2}&1\\end{pmatrix}}$", "\\begin{pmatrix}1.414214&1\\end{pmatrix}", True),
    ("$\\boxed{\\begin{pmatrix}1\\\\2\\\\3\\end{pmatrix}}$", "(1,2,3)", True),
    ("$\\boxed{\\begin{pmatrix}1\\\\2\\\\3\\end{pmatrix}}$", "(1,3,2)", False),
]

LABELLED = [
    ("$\\boxed{(a,b)=(5,1)}$", "(5,1)", True),
    ("$\\boxed{(a,b)=(5,1)}$", "(1,5)", False),
    ("$\\boxed{PQ=6,RS=9}$", "6, 9", True),
    ("$\\boxed{PQ=6,RS=9}$", "6, 8", False),
    ("$\\boxed{S_1:S_2=3:8}$", "3:8", True),
    ("$\\boxed{S_1:S_2=3:8}$", "8:3", False),
    ("$\\boxed{x = 2/7 \\approx 0.2857}$", "\\frac27", True),
    ("$\\boxed{x = 2/7 \\approx 0.2857}$", "\\frac72", False),
    ("$\\boxed{\\frac{22}{7} \\approx 3.14}$", "\\frac{22}{7}", True),
    ("$\\boxed{x \\approx 0.2857}$", "0.2857", True),
    ("$\\boxed{k = 3}$", "3", True),
    ("$\\boxed{k = 3}$", "k = 4", False),
    ("$\\boxed{f(2) = 7}$", "7", True),
    ("$\\boxed{x=3, y=4}$", "(3, 4)", True),
    ("$\\boxed{x=3, y=4}$", "(4, 3)", False),
    ("$\\boxed{a_1 = 5}$", "5", True),
    ("$\\boxed{n = 10}$", "m = 10", False),
    ("The area is $A = 12\\text{ cm}^2$.", "12", True),
]

SEVERAL_ANSWERS = [
    ("$\\boxed{4}$ and $\\boxed{9}$", "4, 9", True),
    ("$\\boxed{4}$ and $\\boxed{9}$", "4", False),
    ("\\boxed{4} and \\boxed{9}", "\\{4,9\\}", True),
    ("\\boxed{4}, \\boxed{9}", "9, 4", True),
    ("$\\boxed{(2,5),(5,2)}$", "(5,2),(2,5)", True),
    ("$\\boxed{(2,5),(5,2)}$", "(2,5)", False),
    ("$\\boxed{\\pm 17}$", "\\{-17,17\\}", True),
    ("$\\boxed{\\pm 17}$", "17", False),
    ("$\\boxed{x = \\pm 3}$", "3, -3", True),
    ("The solutions are $(2,5)$ or $(5,2)$.", "(2,5),(5,2)", True),
    ("The solutions are $(2,5)$ or $(5,2)$.", "(2,5)", False),
    ("$\\boxed{\\{1, 2, 3\\}}$", "\\{3, 2, 1\\}", True),
    ("$\\boxed{\\{1, 2, 3\\}}$", "\\{1, 2\\}", False),
    ("$\\boxed{1, 2, 3}$", "3, 1, 2", True),
    ("$\\boxed{(1, 2, 3)}$", "(3, 2, 1)", False),
    ("$\\boxed{x = 1 \\text{ or } x = -1}$", "\\pm 1", True),
    ("\\boxed{5} or \\boxed{7}", "5", False),
    ("\\boxed{5} or \\boxed{7}", "7", False),
    ("\\boxed{5} or \\boxed{7}", "5, 7", True),
    ("So $x=2$ or $x=3$.", "2, 3", True),
    ("So $x=2$ or $x=3$.", "3", False),
    ("$\\boxed{1331 \\text{ and } 1728}$", "1331, 1728", True),
    ("$\\boxed{1728}$", "1331, 1728", False),
    ("$\\boxed{2 \\pm \\sqrt{3}}$", "2+\\sqrt3, 2-\\sqrt3", True),
]

CHAINS = [
    ("So $w = 4+4 = 8$.", "8", True),
    ("So $w = 4+4 = 8$.", "4", False),
    ("$\\boxed{a+2z=2z+a=101}$", "101", True),
    ("$\\boxed{3 \\cdot 4 = 12}$", "12", True),
    ("$\\boxed{3 \\cdot 4 = 12}$", "3", False),
    ("We get \\[ S = \\frac{n(n+1)}{2} = \\frac{10 \\cdot 11}{2} = 55. \\]", "55", True),
    ("We get \\[ S = \\frac{n(n+1)}{2} = \\frac{10 \\cdot 11}{2} = 55. \\]", "11", False),
    ("Thus $P = 2(3+4) = 14$ cm.", "14", True),
    ("$\\boxed{x = 6/2 = 3}$", "3", True),
    ("$\\boxed{x = 6/2 = 3}$", "6", False),
    ("Total: $5 \\times 3 = 15$", "15", True),
    ("Total: $5 \\times 3 = 15$", "5", False),
]

HEDGING = [
    ("The answer is B or D.", "B", False),
    ("The answer is B or D.", "D", False),
    ("The answer is B.", "B", True),
    ("It could be (A) or (C).", "A", False),
    ("Answer: (C)", "C", True),
    ("Answer: (C)", "B", False),
    ("$\\boxed{C}$", "C", True),
    ("**B**", "B", True),
    ("I would say A, but maybe B.", "A", False),
]
HEDGING_YES_NO = [
    ("Yes or no, it is hard to say.", "yes", False),
    ("The answer is yes or no.", "no", False),
    ("Yes, because the sum is even.", "yes", True),
    ("No.", "yes", False),
    ("<answer>no</answer>", "no", True),
]

# Values that look close but differ (false positives of public graders).
TRAPS = [
    ("$\\boxed{\\frac{1}{2004!}}$", "\\frac{1}{2006!}", False),
    ("$\\boxed{1 - \\frac{1}{e}}$", "1 + \\frac{1}{e}", False),
    ("$\\boxed{4\\sqrt{2}}$", "4", False),
    ("$\\boxed{3x-y+13=0}$", "3x+4y+14=0", False),
    ("$\\boxed{12:00}$", "1:00", False),
    ("$\\boxed{19, 46, 82}$", "21, 36, 82", False),
    ("$\\boxed{0.28}$", "28", False),
    ("$\\boxed{200}$", "2", False),
    ("$\\boxed{10001}$", "10000", False),
    ("$\\boxed{3.14}$", "\\pi", False),
    ("$\\boxed{2x+1}$", "2y+1", False),
    ("$\\boxed{\\{1,2\\}}$", "(1,2)", False),
    ("$\\boxed{-\\infty}$", "\\infty", False),
    ("$\\boxed{D=(0,1.5)}$", "D=(0,1)", False),
    ("$\\boxed{3-2i}$", "3+2i", False),
]

# Plain equivalences, boxed.
EQUIVALENCES = [
    ("$\\boxed{\\frac{\\sqrt{2}}{2}}$", "\\frac{1}{\\sqrt{2}}", True),
    ("$\\boxed{0.5}$", "\\frac12", True),
    ("$\\boxed{\\dfrac{6}{8}}$", "\\frac34", True),
    ("$\\boxed{1\\frac{1}{2}}$", "1.5", True),
    ("$\\boxed{(x+1)^2}$", "x^2+2x+1", True),
    ("$\\boxed{\\sqrt{12}}$", "2\\sqrt3", True),
    ("$\\boxed{e^{i\\pi}}$", "-1", True),
    ("$\\boxed{1.5 \\times 10^{3}}$", "1500", True),
    ("$\\boxed{\\log_2 8}$", "3", True),
    ("$\\boxed{\\binom{5}{2}}$", "10", True),
    ("$\\boxed{(1,2]}$", "(1, 2]", True),
    ("$\\boxed{(1,2)}$", "(1, 2]", False),
    ("$\\boxed{\\text{Monday}}$", "Monday", True),
    ("$\\boxed{\\text{even}}$", "odd", False),
    ("$\\boxed{y = 2x + 1}$", "2x - y + 1 = 0", True),
    ("$\\boxed{y = 2x + 1}$", "2x - y - 1 = 0", False),
    ("$\\boxed{\\emptyset}$", "\\{\\}", True),
    ("$\\boxed{0.\\overline{3}}$", "\\frac{1}{3}", True),
]

# One answer per row, written in each common free-text style (the answer is the same value).
_STYLES = [
    "The result is ${}$.",
    "After simplifying we obtain\n\\[ {} \\]",
    "Final Answer: The final answer is ${}$. I hope it is correct.",
    "Putting it together, \\( {} \\) is what we get.",
]
_STYLED_VALUES = [
    ("\\frac{7}{2}", "3.5"),
    ("2\\sqrt{5}", "\\sqrt{20}"),
    ("(-1, 4)", "(-1,4)"),
    ("\\{2, 3\\}", "\\{3,2\\}"),
    ("x^2 - 4", "(x-2)(x+2)"),
    ("12", "12.0"),
    ("-\\frac{5}{3}", "-5/3"),
    ("\\frac{\\pi}{4}", "\\pi/4"),
    ("[0, 1)", "0 \\le x < 1"),
    ("1,000", "1000"),
    ("x = 9", "9"),
    ("\\pm 2", "\\{2,-2\\}"),
]
_STYLED_WRONG = [
    ("\\frac{7}{3}", "3.5"),
    ("2\\sqrt{3}", "\\sqrt{20}"),
    ("(4, -1)", "(-1,4)"),
    ("x^2 + 4", "(x-2)(x+2)"),
    ("13", "12.0"),
    ("[0, 1]", "0 \\le x < 1"),
    ("2", "\\{2,-2\\}"),
    ("\\frac{\\pi}{2}", "\\pi/4"),
]


def _styled() -> list[Case]:
    out = []
    for rows, expected in ((_STYLED_VALUES, True), (_STYLED_WRONG, False)):
        for i, (answer, gold) in enumerate(rows):
            for j, style in enumerate(_STYLES):
                if (i + j) % 2 == 0 or expected:  # every wrong value in two of the styles
                    out.append(Case("styles", style.replace("{}", answer), gold, "math", expected))
    return out


CASES: list[Case] = [
    *_cases("free_text", FREE_TEXT),
    *_cases("derivations", DERIVATIONS),
    *_cases("gsm8k", GSM8K),
    *_cases("final_answer", FINAL_ANSWER),
    *_cases("decimal_separators", DECIMAL_SEPARATORS),
    *_cases("units_currency", UNITS_CURRENCY),
    *_cases("relations", RELATIONS),
    *_cases("inequality_interval", INEQUALITY_INTERVAL),
    *_cases("matrices", MATRICES),
    *_cases("labelled", LABELLED),
    *_cases("several_answers", SEVERAL_ANSWERS),
    *_cases("chains", CHAINS),
    *_cases("hedging", HEDGING, "multiple_choice"),
    *_cases("hedging", HEDGING_YES_NO, "yes_no"),
    *_cases("traps", TRAPS),
    *_cases("equivalences", EQUIVALENCES),
    *_styled(),
]
