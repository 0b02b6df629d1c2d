"""The code-built tokenizer of the tiny built-in policy: a word-level vocabulary (the words of the
synthetic task set, with and without a leading space) over a per-character fallback, so any ASCII
text round-trips exactly and the synthetic prompts and answers cost one token per word. Nothing is
downloaded; the vocabulary is fixed in this file, so a saved tokenizer reloads identically."""

from __future__ import annotations

import string

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

# Qwen2-VL's special tokens (their text matters: the processor and chat template look them up).
PAD = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD]
# Ordinary (not special) tokens: decode(skip_special_tokens=True) keeps them, so the format
# reward sees them, and one token per tag makes the format easy to learn.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]
UNK = "<unk>"

# The words of the synthetic task set (harmo_fast.data.synth) plus a little common English.
WORDS = [
    "a",
    "an",
    "the",
    "is",
    "are",
    "there",
    "in",
    "of",
    "to",
    "and",
    "or",
    "what",
    "which",
    "how",
    "many",
    "much",
    "where",
    "color",
    "colour",
    "shape",
    "shapes",
    "image",
    "picture",
    "shown",
    "number",
    "numbers",
    "value",
    "expression",
    "result",
    "answer",
    "question",
    "first",
    "then",
    "think",
    "inside",
    "give",
    "final",
    "one",
    "two",
    "three",
    "four",
    "five",
    "zero",
    "yes",
    "no",
    "true",
    "false",
    "left",
    "right",
    "top",
    "bottom",
    "middle",
    "center",
    "up",
    "down",
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "black",
    "white",
    "gray",
    "circle",
    "circles",
    "square",
    "squares",
    "triangle",
    "triangles",
    "i",
    "see",
    "count",
    "counted",
    "it",
    "its",
    "this",
    "that",
    "read",
    "reads",
    "says",
    "equals",
    "plus",
    "minus",
    "times",
    "only",
    "choose",
    "option",
    "options",
    "letter",
    "with",
    "word",
    "words",
    "text",
    "at",
    "on",
    "by",
    "for",
    "from",
    "be",
    "as",
    "not",
    "any",
    "some",
    "all",
    "user",
    "assistant",
    "system",
    "each",
    "side",
    "half",
    "sum",
    "difference",
    "so",
]

# Qwen-style chat template: images become <|vision_start|><|image_pad|><|vision_end|>; the
# processor then expands <|image_pad|> to the image's number of merged patches.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _vocabulary() -> list[str]:
    chars = [c for c in string.printable if c not in "\x0b\x0c"]
    words = sorted({w for w in WORDS if len(w) > 1 and w.isalpha()})
    spaced = [" " + c for c in string.ascii_letters + string.digits] + [" " + w for w in words]
    return [UNK, *chars, *words, *spaced]


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny policy's tokenizer, wrapped like a hub Qwen2 tokenizer (left padding, chat template)."""
    vocab = {tok: i for i, tok in enumerate(_vocabulary())}
    words = sorted({w for w in WORDS if len(w) > 1 and w.isalpha()}, key=len, reverse=True)
    # A known word (optionally with its leading space) is one piece when no letter follows it;
    # everything else falls back to one piece per character (" x" for a spaced letter or digit).
    pattern = " ?(?:" + "|".join(words) + ")(?![A-Za-z])| ?[A-Za-z0-9]|[\\s\\S]"
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token=UNK,
        pad_token=PAD,
        eos_token=IM_END,
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    return tok
