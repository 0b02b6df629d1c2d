"""The trainer's settings: typed dataclasses, loaded from YAML and overridden from the command line
with dotted keys (`trainer.lr=1e-6 rewards.length.p_max=0.3`). Every key and value is checked: an
unknown key lists the valid keys at its level, a value of the wrong type names the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harmo_fast.rewards.config import RewardConfig

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yaml")


@dataclass
class ModelConfig:
    """The policy: a hub id or local path of a causal LM or Qwen2-VL-family model, or a built-in
    tiny model ("tiny-vlm", "tiny-lm"), or a checkpoint directory written by `harmo train`."""

    name: str = "tiny-vlm"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # parameter dtype
    bf16_autocast: bool = True  # bf16 autocast of fp32 weights, applied on CUDA only
    gradient_checkpointing: bool = True  # applied on CUDA only
    # keep the vision tower's weights fixed in the warm-up and GRPO (the projector and LM still train)
    freeze_vision: bool = False
    logprobs: Literal["auto", "linear", "logits"] = "auto"  # fused LM-head path or logits path
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    min_pixels: int | None = None  # Qwen-VL image processor resolution bounds
    max_pixels: int | None = None
    builtin_overrides: dict[str, int] = field(default_factory=dict)  # size settings of tiny-vlm / tiny-lm


@dataclass
class DataConfig:
    """Where the prompts come from: a JSONL file (docs/SPEC.md §4), a Hugging Face dataset
    ("hf:name[:split]"), or "synth" (the synthetic task set, written into the run directory)."""

    train: str = "synth"
    test: str | None = "synth"
    synth_train: int = 512
    synth_test: int = 128
    synth_seed: int = 0
    prompt_template: str = "{prompt}"
    system_prompt: str | None = None
    skip_bad_samples: bool = False
    shuffle: bool = True


@dataclass
class RolloutConfig:
    """Sampling of the G completions per prompt."""

    engine: str = "hf"
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class AlgorithmConfig:
    """GRPO as HARMO runs it (docs/SPEC.md §2): mean-only advantage, clipped loss, optional KL."""

    group_size: int = 8  # G, completions per prompt
    prompts_per_step: int = 4
    advantage_scale: Literal["none", "group", "batch"] = "none"
    advantage_eps: float = 1e-6
    eps_low: float = 0.2
    eps_high: float | None = None
    delta: float | None = None
    beta: float = 0.0
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    ratio_level: Literal["token", "sequence"] = "token"
    # docs/SPEC.md §2 names; seq_mean_token_sum_norm (Dr. GRPO) normalizes by rollout.max_new_tokens
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"] = (
        "token_mean"
    )
    num_iterations: int = 1  # PPO epochs over each generation batch
    num_minibatches: int = 1  # optimizer steps per epoch


@dataclass
class TrainerConfig:
    """The run and its optimizer: AdamW, linear warm-up then cosine decay, gradient clipping."""

    steps: int = 100  # generation batches
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None  # torch CPU threads; None = all cores
    lr: float = 1e-6
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-8
    lr_warmup_steps: int = 0  # optimizer steps
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    micro_batch_size: int | None = None  # responses per forward/backward; None = whole minibatch


@dataclass
class WarmupConfig:
    """A short supervised stage before GRPO that teaches the answer format (0 steps = off)."""

    steps: int = 0
    lr: float = 1e-3
    batch_size: int = 8


@dataclass
class LoggingConfig:
    progress_bar: bool = True
    tensorboard: bool = True  # used when the tensorboard package is installed
    entropy: bool = True
    sample_every: int = 10  # write sample completions every k steps (0 = never)
    num_samples: int = 4
    plots: bool = True


@dataclass
class CheckpointConfig:
    every: int = 0  # steps between checkpoints (0 = only at the end and on Ctrl-C)
    keep_last: int = 2
    save_final_model: bool = True  # a Hugging Face model directory at <out>/final_model


@dataclass
class EvalConfig:
    at_start: bool = True
    at_end: bool = True
    max_samples: int | None = None
    batch_size: int = 32
    max_new_tokens: int | None = None  # None = rollout.max_new_tokens


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


class ConfigError(ValueError):
    """A bad configuration key, value or override; the message names the key."""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of str to {_describe(typing.get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """`value` checked against the annotation `tp` (ints are accepted where floats are expected)."""
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(
                f"{key}: expected a mapping of {sorted(f.name for f in dataclasses.fields(tp))}, got {value!r}"
            )
        return _build(tp, value, key)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            try:
                return _convert(value, arm, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r}")
        return {k: _convert(v, typing.get_args(tp)[1], f"{key}.{k}") for k, v in value.items()}
    if tp is type(None):
        if value is None:
            return None
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bool):
        if isinstance(value, tp):
            return value
    elif tp is Any:
        return value
    raise ConfigError(f"{key}: expected {_describe(tp)}, got {value!r} ({type(value).__name__})")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if name not in valid:
            where = f"'{prefix}'" if prefix else "the top level"
            raise ConfigError(f"unknown config key '{key}'; valid keys at {where}: {', '.join(valid)}")
        kwargs[name] = _convert(value, hints[name], key)
    return cls(**kwargs)


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(values: dict[str, Any] | None) -> Config:
    """A Config from a (possibly partial) nested mapping; missing keys keep their defaults."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(values).__name__}")
    return _build(Config, values)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value); the value is read as YAML (`1e-6`, `true`, `[1, 2]`, `null`)."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or any(not p.strip() for p in parts):
        raise ConfigError(f"bad override {text!r}: expected dotted.key=value, e.g. trainer.lr=1e-6")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"bad override {text!r}: value is not valid YAML ({exc})") from None
    # YAML 1.1 reads 1e-6 as a string (it wants 1.0e-6); numbers written either way should work.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") and value.strip() else value
        except ValueError:
            pass
    return [p.strip() for p in parts], value


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for p in reversed(parts):
        out = {p: out}
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return _yaml_floats(data)


def _yaml_floats(node: Any) -> Any:
    """YAML 1.1 leaves `1e-6` (no dot) a string; read such scientific numbers as floats."""
    if isinstance(node, dict):
        return {k: _yaml_floats(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_yaml_floats(v) for v in node]
    if isinstance(node, str):
        try:
            return float(node) if ("e" in node.lower() and node.strip()[0] in "+-.0123456789") else node
        except ValueError:
            return node
    return node


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The embedded default (path None) or the YAML at `path` (on top of the dataclass defaults),
    then each `dotted.key=value` override, all validated."""
    values = read_yaml(DEFAULT_CONFIG_PATH if path is None else path)
    for text in overrides:
        parts, value = parse_override(text)
        values = _merge(values, _nest(parts, value))
    return from_dict(values)


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    values = to_dict(cfg)
    for text in overrides:
        parts, value = parse_override(text)
        values = _merge(values, _nest(parts, value))
    return from_dict(values)


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
