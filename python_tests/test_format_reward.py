"""R_fmt: the tags and boxed formats, their violations, and the reward values."""

import pytest

from harmo_fast.rewards.config import FormatConfig
from harmo_fast.rewards.format import follows_format, format_reward

TAGS = FormatConfig()
BOXED = FormatConfig(style="boxed")


@pytest.mark.parametrize(
    "text",
    [
        "<think>reason</think><answer>42</answer>",
        "<think>\nline one\nline two\n</think>\n<answer>\n42\n</answer>\n",  # multi-line needs DOTALL
        "  \n<think>r</think>   \n\n  <answer>x</answer>  \n",
        "< think >r</ think ><answer >x</answer>",  # spaced tags as Qwen2.5-VL writes them
        "<think>a < b and c > d</think><answer>yes</answer>",  # angle brackets that are not tags
    ],
)
def test_tags_accepted(text):
    assert follows_format(text, TAGS)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "42",
        "<think>r</think>",  # answer missing
        "<answer>42</answer>",  # think missing
        "<think>r<answer>42</answer>",  # think never closed
        "<think>r</think><answer>42",  # answer never closed
        "<answer>42</answer><think>r</think>",  # out of order
        "<think>r</think><answer>42</answer> and more text",  # trailing text
        "<think>r</think><answer>42</answer>\nSo the answer is 42.",
        "Sure! <think>r</think><answer>42</answer>",  # leading text
        "<think>r</think> so <answer>42</answer>",  # text between the blocks
        "<think>r</think><answer>1</answer><answer>2</answer>",  # duplicated answer
        "<think>a</think><think>b</think><answer>2</answer>",  # duplicated think
        "<think>a<think>b</think></think><answer>2</answer>",  # nested think
        "<think>r</think><answer>4<answer>2</answer></answer>",  # nested answer
        "<think></think><answer>42</answer>",  # empty think
        "<think>r</think><answer>  \n </answer>",  # empty answer
        "</think>r<think><answer>42</answer>",  # closing before opening
        "<THINK>r</THINK><answer>42</answer>",  # tags are case-sensitive
    ],
)
def test_tags_rejected(text):
    assert not follows_format(text, TAGS)


def test_empty_blocks_allowed_when_configured():
    cfg = FormatConfig(require_nonempty=False)
    assert follows_format("<think></think><answer></answer>", cfg)
    assert not follows_format("<think></think><answer></answer> x", cfg)


def test_custom_tag_names():
    cfg = FormatConfig(think_tag="reasoning", answer_tag="final")
    assert follows_format("<reasoning>because</reasoning>\n<final>B</final>", cfg)
    assert not follows_format("<think>because</think><answer>B</answer>", cfg)
    assert not follows_format("<reasoning>x</reasoning><final>B</final><final>C</final>", cfg)
    # regex metacharacters in a tag name are literal
    dotted = FormatConfig(think_tag="a.b", answer_tag="c+")
    assert follows_format("<a.b>x</a.b><c+>y</c+>", dotted)
    assert not follows_format("<aXb>x</aXb><c+>y</c+>", dotted)


def test_same_tag_names_raise():
    with pytest.raises(ValueError, match="think_tag"):
        follows_format("<t>x</t>", FormatConfig(think_tag="t", answer_tag="t"))


@pytest.mark.parametrize(
    "text",
    [
        "We add 2 and 2, so the answer is \\boxed{4}",
        "Reasoning...\nThe result is $\\boxed{\\frac{1}{2}}$.",
        "Steps.\n\\[\\boxed{x^{2} + \\{1\\}}\\]\n",  # nested and escaped braces
        "Work.\n**\\boxed{A}**",
        "<think>compute</think> The answer is \\boxed{7}.",
        "thus \\boxed {12}",
    ],
)
def test_boxed_accepted(text):
    assert follows_format(text, BOXED)


@pytest.mark.parametrize(
    "text",
    [
        "The answer is 4.",  # no box
        "\\boxed{4}",  # no reasoning before the box
        "so \\boxed{}",  # empty box
        "so \\boxed{4} and then I double-check it",  # substantive trailing text
        "so \\boxed{4} or \\boxed{5}",  # two boxes
        "so \\boxed{\\frac{1}{2}",  # unbalanced braces
        "<think>it is \\boxed{4}</think> done",  # box only inside the think block
        "<think>a</think><think>b</think> so \\boxed{4}",  # duplicated think
        "<think>never closed, so \\boxed{4}",  # think block unterminated
        "hello <think>late</think> so \\boxed{4}",  # think block not leading
        "<think> </think> \\boxed{4}",  # empty think
    ],
)
def test_boxed_rejected(text):
    assert not follows_format(text, BOXED)


def test_reward_values_and_disabled():
    cfg = FormatConfig(f_pos=1.0, f_neg=0.25)
    comps = ["<think>r</think><answer>a</answer>", "nope"]
    assert format_reward(comps, cfg) == [1.0, -0.25]
    assert format_reward(comps) == [0.5, -0.5]
    assert format_reward(comps, FormatConfig(enabled=False)) == [0.0, 0.0]
    assert format_reward([]) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="style"):
        follows_format("x", FormatConfig(style="xml"))
    with pytest.raises(TypeError, match="completion"):
        follows_format(None, TAGS)
