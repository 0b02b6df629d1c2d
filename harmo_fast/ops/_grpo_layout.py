"""The fused grpo_loss kernels' per-row partial sums and bad-input flags, named once for the Python
side (the Triton kernel, the CUDA scratch, the finish step). csrc/grpo_loss/grpo_loss_math.h holds
the C++ originals (GrpoRowSlot, GrpoBadInput); the compiled modules export them as
grpo_row_slot_codes / grpo_bad_input_codes and python_tests/test_code_tables.py checks they agree."""

from __future__ import annotations

import enum


class RowSlot(enum.IntEnum):
    """Index of each partial sum in a row's slots."""

    LOSS = 0  # sum m L
    COUNT = 1  # sum m
    KL = 2  # sum m kl
    CLIP_LOW = 3  # sum m clip_low
    CLIP_HIGH = 4  # sum m clip_high
    RATIO = 5  # sum m r
    BAD_ADV = 6  # non-finite advantages read (CPU kernel)
    BAD_WEIGHT = 7  # non-finite importance weights read (CPU kernel)


ROW_SLOTS = len(RowSlot)
# The slots whose batch means are the metrics, in harmo_fast.ops.grpo_loss.METRICS order.
METRIC_SLOTS = (RowSlot.KL, RowSlot.CLIP_LOW, RowSlot.CLIP_HIGH, RowSlot.RATIO)


class BadInput(enum.IntFlag):
    """Bits of the CPU forward's return value: which inputs held a NaN or inf."""

    ADVANTAGES = 1
    IS_WEIGHTS = 2
