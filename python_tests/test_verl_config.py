"""RewardConfig from verl-style mappings (plain dicts here; OmegaConf nodes are covered by
integration_tests/verl): every field settable, nested sections, clear errors."""

import dataclasses

import pytest

from harmo_fast.integrations.verl_config import reward_config
from harmo_fast.rewards.config import LengthPenaltyConfig, RewardConfig


def test_none_and_instances_pass_through():
    assert reward_config(None) == RewardConfig()
    cfg = RewardConfig(w_length=0.5)
    assert reward_config(cfg) is cfg


def test_every_field_is_settable():
    values = {
        "w_hybrid": 2,
        "w_length": 0.25,
        "w_format": 0.0,
        "length": {"enabled": False, "p_max": 0.3, "tau": 0.7, "shape": "exp", "correct_threshold": 0.5},
        "format": {
            "enabled": True,
            "style": "boxed",
            "think_tag": "reason",
            "answer_tag": "final",
            "f_pos": 1.0,
            "f_neg": 0.25,
            "require_nonempty": False,
        },
        "model_rm": {
            "kind": "hf",
            "path": "some/model",
            "rescale": "affine",
            "batch_size": 8,
            "device": "cuda",
            "correct_threshold": 0.9,
        },
        "num_workers": 4,
        "timeout_s": 2,
        "model_task_types": ["open_ended", "ocr"],
        "verify_options": {"math": {"percent": "value"}},
    }
    cfg = reward_config(values)
    assert dataclasses.asdict(cfg) == {**values, "w_hybrid": 2.0, "timeout_s": 2.0}
    assert isinstance(cfg.w_hybrid, float) and isinstance(cfg.length, LengthPenaltyConfig)
    # every field of every section appears above: a new field must be added to this test
    for section in ("length", "format", "model_rm"):
        assert set(values[section]) == {f.name for f in dataclasses.fields(getattr(cfg, section))}
    assert set(values) == {f.name for f in dataclasses.fields(RewardConfig)}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"w_fmt": 1.0}, r"unknown setting 'reward_kwargs.w_fmt'; RewardConfig has format, length"),
        ({"length": {"pmax": 1.0}}, r"unknown setting 'reward_kwargs.length.pmax'"),
        ({"length": {"shape": "cube"}}, r"'reward_kwargs.length.shape' must be one of 'linear', 'exp', 'step'"),
        ({"w_format": "high"}, r"'reward_kwargs.w_format' must be float, got 'high'"),
        ({"num_workers": 1.5}, r"'reward_kwargs.num_workers' must be int"),
        ({"length": 3}, r"reward_kwargs.length must be a mapping of LengthPenaltyConfig fields"),
        ({"model_task_types": "open_ended"}, r"'reward_kwargs.model_task_types' must be list"),
        (["w_format"], r"reward_kwargs must be a mapping of RewardConfig fields"),
    ],
)
def test_bad_settings_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        reward_config(values)
