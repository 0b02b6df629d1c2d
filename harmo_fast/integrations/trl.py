"""HARMO's fused kernels inside TRL's `GRPOTrainer`.

`HarmoGRPOTrainer` takes GRPOTrainer's constructor arguments and trains the same objective:

- log-probs: on TRL 1.16, which scores completions through its fused LM head (`add_fused_lm_head`),
  the policy's and the reference model's forward with `fused_lm_head=True` goes through
  `harmo_fast.linear_log_probs` on the scored positions only (no `(N, V)` logits). On TRL 1.13,
  which takes the logits and calls `selective_log_softmax(logits, ids)`, that call goes to ours.
  Models whose head TRL scales or soft-caps (`final_logit_softcapping`, `logit_scale`, ...) and MoE
  models (router logits) keep TRL's head on 1.16, with a warning. Under autocast the head runs in
  the autocast dtype as TRL's does, but returns its gradients in that dtype (as an autocast matmul
  would; TRL keeps them in fp32): with bf16 the two trainers then agree to ~1e-3, in fp32 to ~1e-7.
- loss: `harmo_fast.grpo_loss`, with TRL's normalisation of each supported `loss_type`
  (`TRL_NORMALISATIONS`); TRL's entropy mask, off-policy mask and vLLM importance ratios weight the
  policy term as in TRL, the k3 KL term (with `use_bias_correction_kl`) is added as in TRL. On TRL
  1.16, when none of those weights applies and the model is a plain text model with our fused head
  (no PEFT, no head bias, no MoE aux loss), the training forward goes straight from the hidden
  states to the loss through `harmo_fast.linear_grpo_loss` (3 matmuls, no log-prob graph); the
  `harmo_fused_loss` attribute of the trainer turns that off.
- rewards: reward functions with a `bind_trainer` method (`harmo_fast.integrations.trl_rewards`)
  are bound to the trainer, so they know num_generations and the process placement.
- metrics: TRL's names and meanings (`kl`, `entropy`, `clip_ratio/low_mean`, `low_min`,
  `high_mean`, `high_max`, `region_mean`, `aux_loss`), reduced across processes as TRL does.

Not supported (a ValueError names the setting): loss types other than those in
`TRL_NORMALISATIONS`, the entropy bonus (`entropy_coef`, `use_adaptive_entropy`), and on TRL 1.13
`use_liger_kernel` (it bypasses `_compute_loss`). Other TRL versions raise an ImportError. Not
handled: an LM head sharded by DeepSpeed ZeRO-3 or FSDP (ours reads `lm_head.weight` as it is),
and several processes have not been run against TRL here (the metrics reduce as TRL's do).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import transformers
import trl
from accelerate.utils import is_peft_model
from packaging.version import Version
from trl import GRPOTrainer
from trl.trainer import grpo_trainer as _trl_grpo
from trl.trainer import utils as _trl_utils
from trl.trainer.utils import nanmax, nanmin

from harmo_fast.ops.grpo_loss import grpo_loss
from harmo_fast.ops.linear_grpo_loss import linear_grpo_loss
from harmo_fast.ops.linear_log_probs import linear_log_probs
from harmo_fast.ops.selective_log_softmax import selective_log_softmax

logger = logging.getLogger(__name__)

SUPPORTED_TRL = ("1.13", "1.16")


def trl_minor_version(version: str | None = None) -> str:
    """TRL's "major.minor" (the installed one by default)."""
    v = Version(version or trl.__version__)
    return f"{v.major}.{v.minor}"


def check_trl_version(version: str | None = None) -> str:
    """The "major.minor" of a supported TRL; raises ImportError naming the supported ones."""
    minor = trl_minor_version(version)
    if minor not in SUPPORTED_TRL:
        raise ImportError(
            f"harmo_fast.integrations.trl supports trl {', '.join(v + '.x' for v in SUPPORTED_TRL)}; "
            f"trl {version or trl.__version__} is installed (pip install 'trl==1.16.0')"
        )
    return minor


# --- loss normalisation per TRL loss_type


@dataclass(frozen=True)
class TrlNormalisation:
    """How one TRL loss_type turns per-token losses into the micro-batch loss.

    loss_agg and normalizer(trainer, inputs, mask, mode) are grpo_loss's arguments; with
    accumulation_scaled the result is divided by the gradient-accumulation steps in training (TRL
    turns off the HF Trainer's own scaling)."""

    loss_agg: str
    normalizer: Callable[[GRPOTrainer, dict[str, Any], torch.Tensor, str], float | None]
    accumulation_scaled: bool


def _rows(trainer: GRPOTrainer, inputs: dict[str, Any], mask: torch.Tensor, mode: str) -> float:
    return float(mask.shape[0])


def _no_normalizer(trainer: GRPOTrainer, inputs: dict[str, Any], mask: torch.Tensor, mode: str) -> None:
    return None


def _rows_times_max_length(trainer: GRPOTrainer, inputs: dict[str, Any], mask: torch.Tensor, mode: str) -> float:
    return float(mask.shape[0] * trainer.max_completion_length)


def _dapo_items(trainer: GRPOTrainer, inputs: dict[str, Any], mask: torch.Tensor, mode: str) -> float:
    # num_items_in_batch counts the tokens of the whole generation batch on all processes: one
    # process's share of one accumulation window is that / processes * accumulation / steps_per_generation.
    norm = inputs["num_items_in_batch"].clamp(min=1.0) / trainer.accelerator.num_processes
    if mode == "train":
        norm = norm * trainer.current_gradient_accumulation_steps / trainer.args.steps_per_generation
    return float(norm)


TRL_NORMALISATIONS: dict[str, TrlNormalisation] = {
    # mean over the rows of each row's token mean (rows without tokens count as 0)
    "grpo": TrlNormalisation("seq_mean_token_mean", _rows, True),
    # token mean over the micro-batch
    "bnpo": TrlNormalisation("token_mean", _no_normalizer, True),
    # token sum / (rows * max_completion_length)
    "dr_grpo": TrlNormalisation("token_mean", _rows_times_max_length, True),
    # token sum / the window's share of the generation batch's token count
    "dapo": TrlNormalisation("token_mean", _dapo_items, False),
    # mean over the rows of each row's token sum
    "luspo": TrlNormalisation("token_mean", _rows, True),
}


def resolve_normalisation(loss_type: str) -> TrlNormalisation:
    """TRL_NORMALISATIONS[loss_type]; raises ValueError naming the supported loss types."""
    norm = TRL_NORMALISATIONS.get(loss_type)
    if norm is None:
        raise ValueError(
            f"HarmoGRPOTrainer: loss_type={loss_type!r} is not supported; use one of {sorted(TRL_NORMALISATIONS)}"
        )
    return norm


# --- log-probs on TRL 1.16: the fused LM head through linear_log_probs

# Config fields (of the text config) with which TRL's head scales or soft-caps the logits; a model
# that sets any of them keeps TRL's head.
_HEAD_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)


def _trl_head_reason(text_config: Any) -> str | None:
    """Why this model must keep TRL's fused head (None: ours computes the same thing)."""
    for name in _HEAD_TRANSFORMS:
        value = getattr(text_config, name, None)
        if value is not None and not (name != "final_logit_softcapping" and value == 1.0):
            return f"its config sets {name}={value!r}"
    if getattr(text_config, "output_router_logits", False):
        return "it returns router logits (MoE load-balancing loss)"
    return None


def _head_operands(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, fp32: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The LM head's operands in the dtype its matmul would run in: fp32 with cast_lm_head_to_fp32,
    else the autocast dtype when autocast is on (the custom op is not autocast), else a common dtype."""
    device = hidden.device.type
    if fp32:
        dtype = torch.float32
    elif torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
    else:
        dtype = torch.promote_types(hidden.dtype, weight.dtype)
    return hidden.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)


def _backbone(model: transformers.PreTrainedModel) -> torch.nn.Module:
    # Before transformers 5, vision-language models expose the language backbone as `model`.
    if model.config.get_text_config() is not model.config and Version(transformers.__version__) < Version("5.0.0"):
        return model.model
    return model.base_model


def install_fused_head(model: transformers.PreTrainedModel, temperature: float, fp32: bool, entropy: bool) -> bool:
    """Route `model(..., labels=..., fused_lm_head=True)` (the forward TRL 1.16 patched in) through
    linear_log_probs; every other call goes to TRL's forward unchanged (generation included). With
    `fused_lm_head=True, harmo_loss=f` the forward returns f(last hidden states, LM head) instead.
    Returns False when the model keeps TRL's head."""
    reason = _trl_head_reason(model.config.get_text_config())
    if reason is not None:
        logger.warning("HarmoGRPOTrainer: keeping TRL's fused LM head for %s: %s", type(model).__name__, reason)
        return False
    trl_forward = model.forward
    output_type = _trl_utils.FusedCausalLMOutput

    # The original signature is kept: generate() checks its keyword arguments against it.
    @functools.wraps(type(model).forward)
    def forward(
        self,
        *args,
        fused_lm_head=False,
        labels=None,
        shift_labels=None,
        num_items_in_batch=None,
        harmo_loss=None,
        **kwargs,
    ):
        if not fused_lm_head:
            return trl_forward(
                *args, labels=labels, shift_labels=shift_labels, num_items_in_batch=num_items_in_batch, **kwargs
            )
        kwargs["use_cache"] = False
        states = _backbone(self)(*args, **kwargs).last_hidden_state
        if harmo_loss is not None:
            # inside the forward, so a wrapper (DDP) sees the whole computation
            head = self.get_output_embeddings()
            return harmo_loss(states.to(head.weight.device), head)
        if shift_labels is None:
            states, labels = states[:, :-1], labels[:, 1:]
        else:
            labels = shift_labels
        head = self.get_output_embeddings()
        states, labels = states.to(head.weight.device), labels.to(head.weight.device)
        scored = labels != -100
        with contextlib.ExitStack() as stack:
            if fp32:
                stack.enter_context(torch.autocast(states.device.type, enabled=False))
            h, w, b = _head_operands(states[scored], head.weight, head.bias, fp32)
            out = linear_log_probs(h, w, labels[scored], b, temperature=temperature, return_entropy=entropy)
        logp, ent = out if entropy else (out, None)
        # masked_scatter keeps a batch without any scored token connected to the graph.
        log_probs = logp.new_zeros(scored.shape).masked_scatter(scored, logp)
        entropies = None if ent is None else ent.new_zeros(scored.shape).masked_scatter(scored, ent)
        count = scored.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return output_type(loss=-log_probs.sum() / count, log_probs=log_probs, entropy=entropies, label_mask=scored)

    model.forward = types.MethodType(forward, model)
    return True


def _install_fused_heads(trainer: GRPOTrainer) -> bool:
    policy = trainer.model.get_base_model() if is_peft_model(trainer.model) else trainer.model
    installed = install_fused_head(policy, trainer.temperature, trainer.args.cast_lm_head_to_fp32, entropy=True)
    if trainer.ref_model is not None:
        install_fused_head(trainer.ref_model, trainer.temperature, trainer.args.cast_lm_head_to_fp32, entropy=False)
    return installed


# --- log-probs on TRL 1.13: its selective_log_softmax(logits, index) call


def _selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """TRL's `selective_log_softmax(logits, index)` (index of logits' leading shape) by our kernel."""
    return selective_log_softmax(logits, index)


@contextlib.contextmanager
def _ours_as_trl_selective_log_softmax() -> Iterator[None]:
    """For the duration of the block, grpo_trainer's module-level `selective_log_softmax` is ours
    (scoped, so a stock GRPOTrainer used outside the block is untouched)."""
    original = _trl_grpo.selective_log_softmax
    _trl_grpo.selective_log_softmax = _selective_log_softmax
    try:
        yield
    finally:
        _trl_grpo.selective_log_softmax = original


@dataclass(frozen=True)
class LogProbRoute:
    """How the log-probs reach our kernels on one TRL version: `install` runs after TRL's __init__
    (True: the policy's forward takes `harmo_loss`), `scoped` wraps each
    `_get_per_token_logps_and_entropies` call."""

    kernel: str
    install: Callable[[GRPOTrainer], bool]
    scoped: Callable[[], contextlib.AbstractContextManager]


LOGPROB_ROUTES: dict[str, LogProbRoute] = {
    "1.16": LogProbRoute("linear_log_probs", _install_fused_heads, contextlib.nullcontext),
    "1.13": LogProbRoute("selective_log_softmax", lambda trainer: False, _ours_as_trl_selective_log_softmax),
}


# --- the trainer

# The multimodal inputs TRL passes to the model's forward.
_IMAGE_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


def _check_settings(args: Any, minor: str) -> None:
    if args is None:  # TRL's default GRPOConfig: loss_type dapo, no entropy bonus
        return
    resolve_normalisation(args.loss_type)
    if getattr(args, "entropy_coef", 0.0) != 0.0 or getattr(args, "use_adaptive_entropy", False):
        raise ValueError("HarmoGRPOTrainer does not support the entropy bonus (entropy_coef, use_adaptive_entropy)")
    if minor == "1.13" and getattr(args, "use_liger_kernel", False):
        raise ValueError("HarmoGRPOTrainer replaces the loss: use_liger_kernel=True is not supported on trl 1.13")


class HarmoGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with HARMO's fused log-prob and GRPO-loss kernels (see the module
    docstring); same constructor arguments, same logged metrics."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        minor = check_trl_version()
        bound = inspect.signature(GRPOTrainer.__init__).bind(None, *args, **kwargs)
        _check_settings(bound.arguments.get("args"), minor)
        super().__init__(*args, **kwargs)
        _check_settings(self.args, minor)
        self._harmo_route = LOGPROB_ROUTES[minor]
        self._harmo_fused_head = self._harmo_route.install(self)
        self.harmo_fused_loss = True
        # HARMO's reward functions (integrations.trl_rewards) read the group size and the process
        # placement from the trainer.
        for func in self.reward_funcs:
            bind = getattr(func, "bind_trainer", None)
            if callable(bind):
                bind(self)

    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):
        with self._harmo_route.scoped():
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)

    def _policy_weights(
        self,
        inputs: dict[str, Any],
        logp: torch.Tensor,
        old: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        entropies: torch.Tensor,
    ) -> torch.Tensor | None:
        """The product of what TRL multiplies the policy term by (not the KL term): the entropy
        mask, the off-policy sequence mask and vLLM's importance-sampling ratios; None if none."""
        factors = []
        if self.off_policy_mask_threshold is not None:
            factors.append(
                self.get_off_policy_mask(
                    advantages=advantages.reshape(advantages.shape[0], -1),
                    per_token_logps=logp,
                    sampling_per_token_logps=inputs.get("sampling_per_token_logps", old),
                    mask=mask,
                    off_policy_threshold=self.off_policy_mask_threshold,
                )
            )
        if self.top_entropy_quantile < 1.0:
            factors.append(self.get_high_entropy_mask(entropies, mask, 1 - self.top_entropy_quantile))
        if self.use_vllm and self.vllm_importance_sampling_correction:
            factors.append(inputs["importance_sampling_ratio"])
        if not factors:
            return None
        weights = torch.ones_like(logp, dtype=torch.float32)
        for f in factors:
            weights = weights * f.float()
        return weights

    def _fused_loss_applies(self, inputs: dict[str, Any]) -> bool:
        """Whether this batch's loss can run as one linear_grpo_loss from the hidden states: our head
        is on the policy and nothing needs the log-probs before the loss (no entropy / off-policy
        mask, no vLLM importance ratios, no aux loss), a text model without PEFT or head bias."""
        if not (self.harmo_fused_loss and self._harmo_fused_head) or is_peft_model(self.model):
            return False
        if self.aux_loss_enabled or any(inputs.get(k) is not None for k in _IMAGE_KEYS):
            return False
        if self.off_policy_mask_threshold is not None or self.top_entropy_quantile < 1.0:
            return False
        if self.use_vllm and self.vllm_importance_sampling_correction:
            return False
        return self.accelerator.unwrap_model(self.model).get_output_embeddings().bias is None

    def _fused_loss(
        self,
        model: torch.nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        inputs: dict[str, Any],
        mask: torch.Tensor,
        ref: torch.Tensor | None,
        options: dict[str, Any],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(loss, metrics with entropy_mean, detached log-probs) from one backbone forward and
        linear_grpo_loss on the completion positions."""
        completion_ids = inputs["completion_ids"]
        k = completion_ids.size(1)
        fp32 = self.args.cast_lm_head_to_fp32

        def loss_from_hidden(states: torch.Tensor, head: torch.nn.Module):
            with contextlib.ExitStack() as stack:
                if fp32:
                    stack.enter_context(torch.autocast(states.device.type, enabled=False))
                # the state at position j predicts token j + 1
                h, w, _ = _head_operands(states[:, -k - 1 : -1], head.weight, None, fp32)
                return linear_grpo_loss(
                    h,
                    w,
                    completion_ids,
                    inputs.get("old_per_token_logps"),
                    inputs["advantages"],
                    mask,
                    ref,
                    temperature=self.temperature,
                    entropy_metric=True,
                    return_logp=True,
                    **options,
                )

        with self.accelerator.autocast():
            return model(
                input_ids=input_ids, attention_mask=attention_mask, fused_lm_head=True, harmo_loss=loss_from_hidden
            )

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        mode = "train" if self.model.training else "eval"
        advantages = inputs["advantages"]
        old = inputs.get("old_per_token_logps")
        ref = inputs.get("ref_per_token_logps") if self.beta != 0.0 else None
        norm = resolve_normalisation(self.loss_type)
        options = dict(
            eps_low=self.epsilon_low,
            eps_high=self.epsilon_high,
            delta=self.args.delta,
            beta=self.beta,
            kl_estimator="k3",
            kl_bias_corrected=bool(self.args.use_bias_correction_kl),
            ratio_level=self.importance_sampling_level,
            loss_agg=norm.loss_agg,
            normalizer=norm.normalizer(self, inputs, mask, mode),
        )
        aux_loss = None
        if self._fused_loss_applies(inputs):
            loss, stats, logp = self._fused_loss(model, input_ids, attention_mask, inputs, mask, ref, options)
            entropy_sum = stats["entropy_mean"] * mask.sum()
            old_or_current = logp if old is None else old
        else:
            logp, entropies, aux_loss = self._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                completion_ids.size(1),
                compute_entropy=True,
                compute_aux_loss=self.aux_loss_enabled,
                **{k: inputs.get(k) for k in _IMAGE_KEYS},
            )
            old_or_current = logp.detach() if old is None else old
            weights = self._policy_weights(inputs, logp, old_or_current, advantages, mask, entropies)
            loss, stats = grpo_loss(logp, old, advantages, mask, ref, weights, **options)
            entropy_sum = (entropies * mask).sum()
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1
        if norm.accumulation_scaled:
            loss = loss / accumulation
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss / accumulation
            self._metrics[mode]["aux_loss"].append(self.accelerator.gather_for_metrics(aux_loss).mean().item())
        self._log_loss_metrics(mode, logp.detach(), old_or_current, advantages, mask, entropy_sum, stats)
        return loss

    def _global_mean(self, local_sum: torch.Tensor, local_count: torch.Tensor) -> float:
        totals = self.accelerator.reduce(torch.stack([local_sum.float(), local_count.float()]), reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()

    @torch.no_grad()
    def _log_loss_metrics(
        self,
        mode: str,
        logp: torch.Tensor,
        old: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        entropy_sum: torch.Tensor,
        stats: dict[str, torch.Tensor],
    ) -> None:
        """TRL's loss metrics with TRL's meanings: token means over all processes' tokens, except at
        the sequence level, where the clip fractions count sequences; low_min/high_max are the
        extremes of the per-sequence clipped fractions."""
        m = mask.float()
        tokens = m.sum()
        metrics = self._metrics[mode]
        if self.beta != 0.0:
            metrics["kl"].append(self._global_mean(stats["kl_mean"] * tokens, tokens))
        metrics["entropy"].append(self._global_mean(entropy_sum, tokens))
        log_ratio = logp - old
        if self.importance_sampling_level == "sequence":
            log_ratio = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)
        ratio = torch.exp(log_ratio)
        if self.args.delta is not None:
            ratio = ratio.clamp(max=self.args.delta)
        adv = advantages.reshape(advantages.shape[0], -1)
        low = ((ratio < 1 - self.epsilon_low) & (adv < 0)).float()
        high = ((ratio > 1 + self.epsilon_high) & (adv > 0)).float()
        region = torch.maximum(low, high)
        per_sequence = ratio.shape[1] == 1 and adv.shape[1] == 1

        def token_mean(x: torch.Tensor) -> float:
            if per_sequence:
                return self._global_mean(x.sum(), torch.tensor(float(x.shape[0]), device=x.device))
            return self._global_mean((x * m).sum(), tokens)

        def row_means(x: torch.Tensor) -> torch.Tensor:
            return x.squeeze(1) if per_sequence else (x * m).sum(-1) / m.sum(-1)

        metrics["clip_ratio/low_mean"].append(token_mean(low))
        metrics["clip_ratio/high_mean"].append(token_mean(high))
        metrics["clip_ratio/region_mean"].append(token_mean(region))
        metrics["clip_ratio/low_min"].append(nanmin(self.accelerator.gather(row_means(low))).item())
        metrics["clip_ratio/high_max"].append(nanmax(self.accelerator.gather(row_means(high))).item())
