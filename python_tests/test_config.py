"""Trainer config: YAML + dotted overrides, validated against the dataclasses."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmo_fast.trainer.config import DEFAULT_CONFIG_PATH, Config, ConfigError, dump_config, load_config, parse_override

REPO = Path(__file__).resolve().parents[1]


def test_embedded_default_loads_and_is_packaged_next_to_the_module():
    cfg = load_config()
    assert DEFAULT_CONFIG_PATH.name == "default.yaml" and DEFAULT_CONFIG_PATH.parent.name == "trainer"
    assert cfg.model.name == "tiny-vlm" and cfg.data.train == "synth"
    assert cfg.algorithm.advantage_scale == "none"  # HARMO: mean-only


def test_overrides_reach_nested_sections_and_parse_numbers():
    cfg = load_config(
        None,
        [
            "trainer.lr=1e-6",
            "rewards.length.p_max=0.3",
            "rewards.format.enabled=false",
            "algorithm.eps_high=null",
            "trainer.adam_betas=[0.9, 0.95]",
        ],
    )
    assert cfg.trainer.lr == 1e-6 and isinstance(cfg.trainer.lr, float)
    assert cfg.rewards.length.p_max == 0.3
    assert cfg.rewards.format.enabled is False
    assert cfg.algorithm.eps_high is None
    assert cfg.trainer.adam_betas == [0.9, 0.95]


def test_unknown_key_lists_the_valid_keys_at_its_level():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["trainer.lrr=1e-6"])
    msg = str(e.value)
    assert "trainer.lrr" in msg and "lr" in msg and "max_grad_norm" in msg
    with pytest.raises(ConfigError, match=r"rewards.length.pmax.*p_max.*tau"):
        load_config(None, ["rewards.length.pmax=0.1"])
    with pytest.raises(ConfigError, match=r"top level.*model.*rewards.*algorithm"):
        load_config(None, ["optimizer.lr=1"])


@pytest.mark.parametrize(
    "override, key",
    [
        ("trainer.lr=fast", "trainer.lr"),
        ("algorithm.group_size=2.5", "algorithm.group_size"),
        ("algorithm.group_size=true", "algorithm.group_size"),
        ("rewards.length.shape=cubic", "rewards.length.shape"),
        ("logging.tensorboard=3", "logging.tensorboard"),
        ("trainer=5", "trainer"),
    ],
)
def test_bad_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


@pytest.mark.parametrize("text", ["trainer.lr", "=3", "trainer..lr=3", ".lr=1", "trainer.lr=[1"])
def test_bad_override_syntax(text):
    with pytest.raises(ConfigError, match="bad override"):
        parse_override(text)


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(listy)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("algorithm:\n  G: 8\n")
    with pytest.raises(ConfigError, match="algorithm.G.*group_size"):
        load_config(unknown)


def test_dump_and_reload_round_trip(tmp_path):
    cfg = load_config(
        None, ["trainer.lr=3e-5", "rewards.length.shape=exp", "model.builtin_overrides={hidden_size: 32}"]
    )
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


def test_partial_yaml_keeps_dataclass_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("trainer:\n  steps: 7\n")
    cfg = load_config(p)
    assert cfg.trainer.steps == 7 and cfg.trainer.lr == Config().trainer.lr and cfg.model.name == Config().model.name


def test_paper_recipe_loads():
    cfg = load_config(REPO / "examples" / "harmo_qwen2_5_vl_3b.yaml")
    assert cfg.model.name == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert cfg.algorithm.group_size == 8 and cfg.algorithm.advantage_scale == "none"
    assert (cfg.rewards.w_hybrid, cfg.rewards.w_length, cfg.rewards.w_format) == (1.0, 1.0, 1.0)
    assert (cfg.rewards.length.p_max, cfg.rewards.length.tau, cfg.rewards.length.shape) == (0.5, 0.5, "linear")
    assert (cfg.rewards.format.f_pos, cfg.rewards.format.f_neg) == (0.5, 0.5)
    assert cfg.model.bf16_autocast and cfg.model.gradient_checkpointing
