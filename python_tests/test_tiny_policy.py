"""The built-in tiny policy: code-built tokenizer, Qwen2-VL model + processor that behave like a
hub checkpoint (chat template, image tokens, left-padded generate, save/load round-trip)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from harmo_fast.trainer.tiny_policy import TinyQwen2VLProcessor, build_tiny_lm, build_tiny_vlm
from harmo_fast.trainer.tokenizer import build_tokenizer

SMALL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vision_embed_dim": 32,
    "vision_depth": 1,
    "vision_num_heads": 2,
}


def _messages(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def vlm():
    return build_tiny_vlm(seed=0, **SMALL)


def test_tokenizer_round_trips_ascii_and_keeps_tags_as_single_ordinary_tokens():
    tok = build_tokenizer()
    text = "how many circles are there? A. red B. blue\n  Zebra 37+5=-42 <think>i count 3</think><answer>3</answer>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.unk_token_id not in ids
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    # Known words cost one token (with their leading space); digits are one token each.
    assert tok.convert_ids_to_tokens(tok(" circles 42", add_special_tokens=False)["input_ids"]) == [
        " circles",
        " 4",
        "2",
    ]
    # Special (chat) tokens vanish with skip_special_tokens, the answer tags stay.
    chat = "<|im_start|>assistant\n<think>x</think><answer>B</answer><|im_end|><|endoftext|>"
    assert (
        tok.decode(tok(chat)["input_ids"], skip_special_tokens=True) == "assistant\n<think>x</think><answer>B</answer>"
    )
    assert tok.padding_side == "left" and tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_chat_template_and_image_tokens_match_qwen2_vl(vlm):
    model, proc = vlm
    assert isinstance(proc, TinyQwen2VLProcessor)
    text = proc.apply_chat_template(_messages("how many shapes are there?"), add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>how many shapes are there?"
        "<|im_end|>\n<|im_start|>assistant\n"
    )
    images = [Image.new("RGB", (56, 56), "red"), Image.new("RGB", (112, 112), "blue")]
    batch = proc(text=[text, text.replace("shapes", "red circles")], images=images, return_tensors="pt", padding=True)
    # A square image is resized to 56x56 -> 4x4 patches of 14 px -> 2x2 merged vision tokens.
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 4]]
    assert (batch["input_ids"] == model.config.image_token_id).sum(1).tolist() == [4, 4]
    # Left padding: the shorter prompt is padded at the front, the last column is real text.
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][:, -1].tolist() == [1, 1]


def test_generate_left_padded_batch_and_stop_at_eos(vlm):
    model, proc = vlm
    texts = [
        proc.apply_chat_template(_messages(t), add_generation_prompt=True, tokenize=False)
        for t in ("is there a red circle?", "what number is shown? first think then answer")
    ]
    batch = proc(text=texts, images=[Image.new("RGB", (56, 56), "white")] * 2, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=6, do_sample=True)
    assert out.shape[0] == 2 and 0 < out.shape[1] - batch["input_ids"].shape[1] <= 6
    # Greedy decoding of one prompt alone equals its row in the padded batch.
    greedy = model.generate(**batch, max_new_tokens=5, do_sample=False)[:, batch["input_ids"].shape[1] :]
    alone = proc(text=texts[:1], images=[Image.new("RGB", (56, 56), "white")], return_tensors="pt")
    single = model.generate(**alone, max_new_tokens=5, do_sample=False)[:, alone["input_ids"].shape[1] :]
    assert torch.equal(greedy[0, : single.shape[1]], single[0])
    assert model.generation_config.eos_token_id == proc.tokenizer.eos_token_id


def test_save_and_load_round_trip(vlm, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, proc = vlm
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    model2 = AutoModelForImageTextToText.from_pretrained(tmp_path)
    proc2 = AutoProcessor.from_pretrained(tmp_path)
    assert type(proc2) is TinyQwen2VLProcessor
    text = proc.apply_chat_template(_messages("what color is the square?"), add_generation_prompt=True, tokenize=False)
    img = [Image.new("RGB", (56, 56), (10, 200, 30))]
    a = proc(text=[text], images=img, return_tensors="pt")
    b = proc2(text=[text], images=img, return_tensors="pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        assert torch.equal(model(**a).logits, model2(**b).logits)


def test_seed_and_overrides():
    a, _ = build_tiny_lm(seed=1, **SMALL)
    b, _ = build_tiny_lm(seed=1, **SMALL)
    c, _ = build_tiny_lm(seed=2, **SMALL)
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.config.hidden_size == 32
    with pytest.raises(ValueError, match="hidden_sise"):
        build_tiny_vlm(hidden_sise=16)
    with pytest.raises(ValueError, match="image_size"):
        build_tiny_vlm(image_size=50)


def test_tiny_lm_generates_and_round_trips(tmp_path):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    model, tok = build_tiny_lm(seed=0, **SMALL)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "what is the value of 3+4?"}], add_generation_prompt=True, tokenize=False
    )
    batch = tok([text, "hi"], return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2 and batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 4
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    # Not AutoTokenizer: transformers forces its own Qwen2Tokenizer pipeline on model_type qwen2.
    tok2 = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert tok2(text)["input_ids"] == tok(text)["input_ids"] and tok2.padding_side == "left"
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, model2(**batch).logits)


def test_freeze_vision_freezes_exactly_the_vision_tower():
    from harmo_fast.trainer.config import ModelConfig
    from harmo_fast.trainer.policy import load_policy

    frozen = load_policy(ModelConfig(name="tiny-vlm", freeze_vision=True, builtin_overrides=SMALL)).model
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert trainable and all("visual" not in n for n in trainable)
    assert all(not p.requires_grad for p in frozen.model.visual.parameters())
    assert all(
        p.requires_grad for p in load_policy(ModelConfig(name="tiny-vlm", builtin_overrides=SMALL)).model.parameters()
    )
    with pytest.raises(ValueError, match=r"model\.freeze_vision"):
        load_policy(ModelConfig(name="tiny-lm", freeze_vision=True, builtin_overrides=SMALL))
