"""HARMO's reward settings from verl's YAML: `RewardConfig` built from a plain or OmegaConf mapping.

verl hands user settings over as OmegaConf nodes (`reward.reward_kwargs` for a reward manager,
`reward.custom_reward_function.reward_kwargs` for a reward function). Every `RewardConfig` field is
a key, nested sections (`length`, `format`, `model_rm`) as nested mappings, e.g. on the command line
`+reward.reward_kwargs.w_format=0.0 +reward.reward_kwargs.length.p_max=0.3`. Unknown keys and values
of the wrong kind raise `ValueError` naming the key and the known ones.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from harmo_fast.rewards.config import RewardConfig


def plain(value: Any) -> Any:
    """`value` with OmegaConf containers turned into dicts and lists (resolved); other values as is."""
    if hasattr(value, "_get_node"):  # any OmegaConf container, without importing omegaconf
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _fits(value: Any, kind: Any) -> bool:
    """Whether a YAML value fits a field annotation (the annotations RewardConfig uses)."""
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return value in typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, Mapping)
    return True


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(kind))
    return getattr(kind, "__name__", None) or str(kind)


def _build(cls: type, values: Any, where: str) -> Any:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a mapping of {cls.__name__} fields, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{where}.{key}"
        if key not in fields:
            raise ValueError(f"unknown setting {name!r}; {cls.__name__} has {', '.join(sorted(fields))}")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            kwargs[key] = value if isinstance(value, kind) else _build(kind, value, name)
        elif not _fits(value, kind):
            raise ValueError(f"setting {name!r} must be {_describe(kind)}, got {value!r}")
        else:
            kwargs[key] = float(value) if kind is float else value
    return cls(**kwargs)


def reward_config(values: RewardConfig | Mapping[str, Any] | None, where: str = "reward_kwargs") -> RewardConfig:
    """A `RewardConfig` from None (the defaults), a RewardConfig, or a (nested) mapping of its fields,
    plain or OmegaConf. `where` names the mapping in error messages."""
    if values is None or isinstance(values, RewardConfig):
        return values or RewardConfig()
    return _build(RewardConfig, plain(values), where)


REWARD_KWARGS = "reward.reward_kwargs"  # where a verl trainer config holds the HARMO reward settings


def trainer_reward_config(config: Any, relative: bool = False) -> RewardConfig:
    """The RewardConfig at `reward.reward_kwargs` of a verl trainer config (defaults where unset).
    relative: `config` is a section of the trainer config (verl hands the advantage estimator
    `algorithm`), so the key is looked up from its parent. A config that is not an OmegaConf node
    (or a section detached from its trainer config) gives the defaults."""
    if not hasattr(config, "_get_node"):
        return RewardConfig()
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        values = OmegaConf.select(config, ".." + REWARD_KWARGS if relative else REWARD_KWARGS)
    except OmegaConfBaseException:
        values = None
    return reward_config(values, REWARD_KWARGS)
