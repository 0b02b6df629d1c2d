"""linear_grpo_loss: the GRPO loss straight from the last hidden states, with the gradients of the
hidden states and the LM head computed in the forward, chunk by chunk (docs/SPEC.md §2).

    logits = hidden @ weight.T;  logp = logits[y]/tau - logsumexp(logits/tau);  loss = grpo_loss(logp, ...)

The fused backends never hold more than one chunk of logits (at most `chunk_size` tokens by the
whole vocabulary). Per chunk, in one reused buffer:
  1. logits_c = h_c W^T                                   (matmul 1)
  2. logp, logsumexp (and the entropy) per token          (the selective_log_softmax kernels)
  3. dLoss/dlogp per token from the GRPO math             (the grpo_loss kernels), with the
     aggregation's batch-wide divisors (token count, non-empty rows) taken from the mask up front
  4. dlogits_c = dLoss/dlogp * (onehot - softmax) / tau   (the selective_log_softmax backward, in place)
  5. dh_c = dlogits_c W,  dW += dlogits_c^T h_c           (matmuls 2 and 3)
so the whole op costs 3 matmuls, the backward only scales the saved gradients by grad_output (in
place), and the peak extra memory is one chunk of logits plus the gradients themselves.

Chunks are rectangles of the (N, T) token grid: whole rows when a row fits the chunk (several rows
per chunk when they fit), else (token-level ratio only) spans of one row. The sequence-level
(GSPO) ratio needs every token of its row, so at ratio_level="sequence" a chunk always holds whole
rows (a row longer than chunk_size makes a larger chunk). Tokens after a row's last masked-in
token contribute nothing to the loss, the metrics or the gradients (their gradient is exactly 0),
so chunks stop there and padding costs no matmul.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from harmo_fast import _checks, _dispatch
from harmo_fast.ops import grpo_loss as gl
from harmo_fast.ops import selective_log_softmax as sls
from harmo_fast.ops._loss_agg import AggPlan
from harmo_fast.ops.linear_log_probs import linear_log_probs_reference

OP = "linear_grpo_loss"
METRICS = (*gl.METRICS, "entropy_mean")
# Budget for one chunk of logits in the parameters' dtype when chunk_size is not given.
CHUNK_BYTES = 32 << 20


def linear_grpo_loss_reference(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    ids: torch.Tensor,
    old_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    is_weights: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    entropy_metric: bool = False,
    return_logp: bool = False,
    **grpo_options: object,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """The definition of correct: the full (N, T, V) logits in the parameters' dtype, the reference
    log-probs and entropy, then grpo_loss_reference(**grpo_options), all by plain autograd;
    return_logp appends the log-probs (fp32, detached, every position computed)."""
    logp, entropy = linear_log_probs_reference(hidden, weight, ids, temperature=temperature, return_entropy=True)
    loss, metrics = gl.grpo_loss_reference(logp, old_logp, advantages, mask, ref_logp, is_weights, **grpo_options)
    if entropy_metric:
        with torch.no_grad():
            m = mask.to(entropy.dtype)
            on = m != 0
            metrics["entropy_mean"] = torch.where(on, m * entropy, 0.0).sum() / m.sum().clamp(min=1.0)
    return (loss, metrics, logp.detach().float()) if return_logp else (loss, metrics)


# --- validation


def _validate(hidden, weight, ids, temperature, chunk_size, grpo_args: tuple) -> torch.device:
    """hidden (N, T, H), weight (V, H) of one float dtype, ids (N, T); the GRPO arguments are checked
    by grpo_loss's own rules against the (N, T) token grid."""
    _checks.check_tensor(OP, "hidden", hidden, ndim=3, dtypes=_checks.FLOAT_DTYPES)
    _checks.check_tensor(OP, "weight", weight, ndim=2, dtypes=_checks.FLOAT_DTYPES)
    _checks.check_tensor(OP, "ids", ids, ndim=2, dtypes=_checks.INDEX_DTYPES)
    if weight.shape[0] < 1 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"{OP}: weight must have shape (V, {hidden.shape[-1]}) with V >= 1 to match hidden, "
            f"got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype:
        raise TypeError(f"{OP}: weight dtype {weight.dtype} must match hidden dtype {hidden.dtype}")
    _checks.check_shape(OP, "ids", ids, hidden.shape[:2])
    _checks.check_positive_float(OP, "temperature", temperature)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"{OP}: chunk_size must be None or an int >= 1, got {chunk_size!r}")
    stand_in = hidden.new_empty(()).expand(ids.shape)  # the log-probs' shape, dtype and device
    try:
        gl._validate(stand_in, *grpo_args)
    except (TypeError, ValueError) as exc:  # same rules, reported under this op's name
        raise type(exc)(str(exc).replace(f"{gl.OP}:", f"{OP}:", 1)) from None
    return _checks.check_same_device(OP, hidden=hidden, weight=weight, ids=ids, mask=grpo_args[2])


# --- chunks of the token grid


class Chunk(NamedTuple):
    """Rows [r0, r1) by columns [t0, t1) of the (N, T) token grid."""

    r0: int
    r1: int
    t0: int
    t1: int


def plan_chunks(lengths: list[int], tokens: int, whole_rows: bool) -> list[Chunk]:
    """Rectangles covering every row's first lengths[b] tokens, each at most `tokens` tokens
    (whole_rows: a row is never split, a longer one makes one chunk of its own). Consecutive rows
    share a chunk as long as rows x (their longest length) fits; empty rows are skipped."""
    chunks: list[Chunk] = []
    start, width = 0, 0
    for b, length in enumerate([*lengths, 0]):
        if width and (length == 0 or (b + 1 - start) * max(width, length) > tokens):
            if b - start == 1 and width > tokens and not whole_rows:
                chunks.extend(Chunk(start, b, t0, min(width, t0 + tokens)) for t0 in range(0, width, tokens))
            else:
                chunks.append(Chunk(start, b, 0, width))
            width = 0
        if length == 0:
            start = b + 1
            continue
        if width == 0:
            start = b
        width = max(width, length)
    return chunks


def _row_lengths(mask: torch.Tensor) -> list[int]:
    """Per row: one past its last masked-in token (0 for an empty row)."""
    t = mask.shape[1]
    cols = torch.arange(1, t + 1, device=mask.device)
    return torch.where(mask != 0, cols, 0).amax(1).tolist() if t else [0] * mask.shape[0]


def _global_divisor(plan: AggPlan, mask: torch.Tensor) -> float:
    """The plan's batch-wide factors (base, total token count, non-empty rows) as one number; the
    per-row count stays with the kernels, which see whole rows (or get it folded in, _chunk_plan)."""
    div = plan.base
    counts = mask.sum(1, dtype=torch.float64)
    if plan.total_count:
        div *= max(float(counts.sum()), 1.0)
    if plan.nonempty_rows:
        div *= max(float((counts > 0).sum()), 1.0)
    return div


def _chunk_settings(settings: gl.GrpoSettings, divisor: float, row_count: float | None) -> gl.GrpoSettings:
    """The grpo_loss kernels' settings for one chunk: the aggregation weight alpha_b of the whole
    batch. row_count: the row's token count when the chunk is (part of) one row, folded into the
    divisor, since a span of a row shows the kernel only that span's tokens."""
    per_row = settings.agg_per_row_count
    if per_row and row_count is not None:
        divisor, per_row = divisor * max(row_count, 1.0), False
    return settings._replace(
        agg_base=divisor, agg_per_row_count=per_row, agg_total_count=False, agg_nonempty_rows=False
    )


def _block(t: torch.Tensor | None, c: Chunk) -> torch.Tensor | None:
    """The chunk's block of an (N,), (N, T) or (N, T, H) tensor, contiguous (a copy only when the
    chunk covers part of several rows)."""
    if t is None:
        return None
    if t.dim() == 1:
        return t[c.r0 : c.r1]
    return t[c.r0 : c.r1, c.t0 : c.t1].contiguous()


# --- the custom op


@torch.library.custom_op("harmo_fast::linear_grpo_loss", mutates_args=())
def _linear_grpo_loss_op(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    ids: torch.Tensor,
    old_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None,
    is_weights: torch.Tensor | None,
    settings: list[float],
    temperature: float,
    entropy_metric: bool,
    chunk_tokens: int,
    backend: str,
    need_hidden: bool,
    need_weight: bool,
    want_logp: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, metric means (len(METRICS),), d loss/d hidden or empty, d loss/d weight or empty,
    the per-token log-probs (N, T) fp32 or empty: 0 after a row's last masked-in token).

    Token tensors arrive contiguous: old/ref fp32 (N, T), advantages and is_weights fp32 (N,) or
    (N, T), ids int64."""
    size = hidden.shape[2]
    vocab = weight.shape[0]
    _checks.check_index_range(OP, "ids", ids, vocab)
    s = gl.GrpoSettings.from_floats(settings)
    dev, f64 = hidden.device, torch.float64
    need_grad = need_hidden or need_weight
    grad_hidden = torch.zeros_like(hidden) if need_hidden else hidden.new_empty(0)
    # d weight: written by the first chunk's matmul (zeros only when there is no chunk)
    grad_weight = torch.empty_like(weight) if need_weight else hidden.new_empty(0)
    loss = torch.zeros((), dtype=f64, device=dev)
    sums = torch.zeros(len(METRICS), dtype=f64, device=dev)
    logp_out = torch.zeros(ids.shape, dtype=torch.float32, device=dev) if want_logp else hidden.new_empty(0)
    lengths = _row_lengths(mask)
    chunks = plan_chunks(lengths, chunk_tokens, s.sequence)
    if not chunks and need_weight:
        grad_weight.zero_()
    if chunks:
        divisor = _global_divisor(s.plan, mask)
        row_counts = mask.sum(1, dtype=f64).tolist() if s.agg_per_row_count else None
        launcher = gl._LAUNCHERS[backend]
        one = torch.ones((), dtype=torch.float32, device=dev)
        buf = hidden.new_empty(max((c.r1 - c.r0) * (c.t1 - c.t0) for c in chunks), vocab)
        first_weight_chunk = True
        for c in chunks:
            rows, cols = c.r1 - c.r0, c.t1 - c.t0
            h = hidden[c.r0 : c.r1, c.t0 : c.t1].reshape(-1, size)
            y = _block(ids, c).reshape(-1)
            z = torch.mm(h, weight.t(), out=buf[: rows * cols])
            logp, lse, entropy = sls.forward_rows(z, y, temperature, entropy_metric, backend)
            logp = logp.view(rows, cols)
            if want_logp:
                logp_out[c.r0 : c.r1, c.t0 : c.t1] = logp
            m = _block(mask, c)
            partial_row = row_counts[c.r0] if row_counts is not None and rows == 1 else None
            loss_c, stats, coef, row_scale = launcher.forward(
                logp,
                logp if old_logp is None else _block(old_logp, c),
                _block(advantages, c),
                m,
                _block(ref_logp, c),
                _block(is_weights, c),
                _chunk_settings(s, divisor, partial_row),
                need_grad,
            )
            count = m.sum(dtype=f64).clamp(min=1.0)
            loss += loss_c
            sums[: len(gl.METRICS)] += stats * count
            if entropy is not None:
                sums[-1] += torch.where(m != 0, m * entropy.view(rows, cols), 0.0).sum(dtype=f64)
            if not need_grad:
                continue
            launcher.scale_(coef, row_scale, one)  # dLoss/dlogp with the aggregation weight
            sls.backward_rows(coef.reshape(-1), None, z, y, lse, None, temperature, backend, out=z)
            if need_hidden:
                block = grad_hidden[c.r0 : c.r1, c.t0 : c.t1]
                if block.is_contiguous():  # whole rows, or a span of one row: no temporary
                    torch.mm(z, weight, out=block.view(-1, size))
                else:
                    block.copy_(torch.mm(z, weight).view(rows, cols, size))
            if need_weight:
                # fp32: BLAS accumulates into the gradient; half: each product is accumulated in
                # fp32 by BLAS, the running sum is rounded to the weight's dtype once per chunk.
                if first_weight_chunk:
                    torch.mm(z.t(), h, out=grad_weight)
                    first_weight_chunk = False
                else:
                    grad_weight.addmm_(z.t(), h)
    total = mask.sum(dtype=f64).clamp(min=1.0)
    return loss.float(), (sums / total).float(), grad_hidden, grad_weight, logp_out


@_linear_grpo_loss_op.register_fake
def _linear_grpo_loss_fake(
    hidden,
    weight,
    ids,
    old_logp,
    advantages,
    mask,
    ref_logp,
    is_weights,
    settings,
    temperature,
    entropy_metric,
    chunk_tokens,
    backend,
    need_hidden,
    need_weight,
    want_logp,
):
    f32 = torch.float32
    return (
        hidden.new_empty((), dtype=f32),
        hidden.new_empty(len(METRICS), dtype=f32),
        torch.empty_like(hidden) if need_hidden else hidden.new_empty(0),
        torch.empty_like(weight) if need_weight else hidden.new_empty(0),
        ids.new_empty(ids.shape, dtype=f32) if want_logp else hidden.new_empty(0),
    )


@torch.library.custom_op("harmo_fast::linear_grpo_loss_scale_", mutates_args=("grad_hidden", "grad_weight"))
def _scale_op(grad_hidden: torch.Tensor, grad_weight: torch.Tensor, grad_loss: torch.Tensor) -> None:
    """Both saved gradients *= grad_loss, in place (an empty one is left alone)."""
    if grad_loss.device.type == "cpu" and grad_loss.item() == 1.0:
        return  # the usual loss.backward(): reading the scalar costs nothing on the CPU, a pass does
    for g in (grad_hidden, grad_weight):
        if g.numel():
            g.mul_(grad_loss.to(g.dtype))


@_scale_op.register_fake
def _scale_fake(grad_hidden, grad_weight, grad_loss) -> None:
    return None


_NO_GRADIENTS = (None,) * len(torch.ops.harmo_fast.linear_grpo_loss.default._schema.arguments)


def _setup_context(ctx, inputs, output) -> None:
    _, stats, grad_hidden, grad_weight, logp = output
    ctx.mark_non_differentiable(stats, grad_hidden, grad_weight, logp)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(grad_hidden, grad_weight)


def _backward(ctx, grad_loss, grad_stats, grad_h, grad_w, grad_logp):
    # A second backward through the same graph finds the gradients already scaled: autograd's
    # version check of the saved tensors raises then.
    grad_hidden, grad_weight = ctx.saved_tensors
    _scale_op(grad_hidden, grad_weight, grad_loss)
    need_hidden, need_weight = ctx.needs_input_grad[:2]
    return (grad_hidden if need_hidden else None, grad_weight if need_weight else None, *_NO_GRADIENTS[2:])


_linear_grpo_loss_op.register_autograd(_backward, setup_context=_setup_context)


# --- public function


def linear_grpo_loss(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    ids: torch.Tensor,
    old_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_logp: torch.Tensor | None = None,
    is_weights: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    delta: float | None = None,
    beta: float = 0.0,
    kl_estimator: str = "k3",
    kl_clamp_log_ratio: float | None = None,
    kl_clamp_value: float | None = None,
    kl_bias_corrected: bool = False,
    ratio_level: str = "token",
    loss_agg: str = "token_mean",
    normalizer: float | None = None,
    entropy_metric: bool = False,
    chunk_size: int | None = None,
    return_logp: bool = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """grpo_loss(logp, ...) with logp = log_softmax((hidden @ weight.T) / temperature)[ids], without
    the (N, T, V) logits and with 3 matmuls in all (the module docstring has the chunking).

    hidden (N, T, H) and weight (V, H) of one float dtype (fp32/bf16/fp16; the softmax and loss math
    in fp32), ids (N, T) int64/int32 in [0, V): the token at [b, t] and the hidden state that
    predicts it. Every other argument is grpo_loss's, with the same meaning and default.
    entropy_metric adds "entropy_mean" (the masked mean entropy of the softmax, no gradient) to the
    metrics. chunk_size: tokens per chunk of logits (None: as many as fit 32 MiB). Returns (loss:
    0-dim fp32, differentiable w.r.t. hidden and weight; metrics, 0-dim fp32, detached). The
    gradients are computed in the forward (when hidden or weight requires grad), so a forward under
    torch.no_grad() costs one matmul per chunk and a backward only scales them. return_logp appends
    the per-token log-probs (N, T) fp32, detached (for metrics; 0 after a row's last masked-in
    token, which no chunk computes).
    """
    grpo_args = (old_logp, advantages, mask, ref_logp, is_weights, eps_low, eps_high, delta, beta, normalizer)
    device = _validate(hidden, weight, ids, temperature, chunk_size, (*grpo_args, ratio_level))
    options = gl.grpo_options(locals())
    n, t = ids.shape
    settings = gl.grpo_settings(OP, n, t, **options)
    resolved = _dispatch.resolve_backend(backend, device, OP)
    gl._check_finite_inputs(advantages, is_weights)
    if resolved == "torch":
        return linear_grpo_loss_reference(
            hidden,
            weight,
            ids,
            old_logp,
            advantages,
            mask,
            ref_logp,
            is_weights,
            temperature=temperature,
            entropy_metric=entropy_metric,
            return_logp=return_logp,
            **options,
        )
    tokens = chunk_size if chunk_size is not None else max(1, CHUNK_BYTES // (weight.shape[0] * weight.element_size()))
    w = gl.weights_input(is_weights, n, t)
    f32 = lambda x: None if x is None else x.float().contiguous()  # noqa: E731
    grad_on = torch.is_grad_enabled()
    loss, stats, _, _, logp = _linear_grpo_loss_op(
        hidden.contiguous(),
        weight.contiguous(),
        ids.to(torch.int64).contiguous(),
        f32(old_logp),
        f32(advantages),
        mask.contiguous(),
        f32(ref_logp),
        w,
        settings.as_floats(),
        float(temperature),
        bool(entropy_metric),
        int(tokens),
        resolved,
        grad_on and hidden.requires_grad,
        grad_on and weight.requires_grad,
        bool(return_logp),
    )
    names = METRICS if entropy_metric else gl.METRICS
    metrics = dict(zip(names, stats.unbind(0)))
    return (loss, metrics, logp) if return_logp else (loss, metrics)
