"""`VerifierPool`: rule verification of many samples, cheap cases in the calling process and the
rest in worker processes with a hard per-sample timeout (`ProcessPool`).

Cheap cases (plain numbers, letters, yes/no, short strings) never leave the calling process:
`verify_many` decides them on the in-process fast path first."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from harmo_fast.rewards.process_pool import Item, ProcessPool, unpack_item
from harmo_fast.rewards.types import Verdict
from harmo_fast.rewards.verify import fast_verify


class VerifierPool(ProcessPool):
    """Verify many samples: the in-process fast path first, then worker processes with a hard
    per-sample timeout for the rest (see `ProcessPool` for the timeouts, stragglers, `preload` and
    `memory_limit_mb`). `dispatched` counts the samples sent to workers."""

    def verify_many(self, items: Sequence[Item]) -> list[Verdict]:
        """Verdicts for `items` ((completion, gold, task_type, options) tuples), in order."""
        self._check_open()
        results: list[Verdict | None] = [None] * len(items)
        pending: deque[int] = deque()
        for i, item in enumerate(items):
            completion, gold, task_type, options = unpack_item(item, i)
            fast = fast_verify(completion, gold, task_type, **options)  # invalid arguments raise here
            if fast is None:
                pending.append(i)
            else:
                results[i] = fast
        return self._dispatch(items, pending, results)
