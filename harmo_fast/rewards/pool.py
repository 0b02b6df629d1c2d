"""A pool of verifier worker processes with a hard per-sample timeout.

Signals cannot stop sympy stuck in C code and do not work outside the main thread, so a sample
that runs past `timeout_s` is stopped by killing its worker process, which is then replaced.
Workers are fresh interpreters (like the "spawn" start method: the parent may hold torch threads,
so fork is unsafe) that import only the reward verifiers (`pool_worker.py`), never the caller's
`__main__`. Cheap cases (plain numbers, letters, yes/no, short
strings) never leave the calling process."""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any, Sequence

from harmo_fast.rewards.types import Verdict

Item = tuple[str, "str | list[str]", str, dict]


class _Worker:
    """One worker process and the parent's ends of its two pipes."""

    def __init__(self, preload: Sequence[str], memory_limit_mb: int | None) -> None:
        p2c_r, p2c_w = os.pipe()
        c2p_r, c2p_w = os.pipe()
        env = dict(os.environ)
        # The worker must find the same modules (e.g. a `preload` module next to the caller).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from harmo_fast.rewards.pool_worker import main; main()", str(p2c_r), str(c2p_w)],
                pass_fds=(p2c_r, c2p_w), stdin=subprocess.DEVNULL, env=env, close_fds=True,
            )
        finally:
            os.close(p2c_r)
            os.close(c2p_w)
        self.send_conn = Connection(p2c_w, readable=False)
        self.conn = Connection(c2p_r, writable=False)
        self.send_conn.send({"preload": tuple(preload), "memory_limit_mb": memory_limit_mb})
        self.ready = False
        self.task: int | None = None
        self.started_at = 0.0

    def send(self, msg: Any) -> bool:
        try:
            self.send_conn.send(msg)
            return True
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.send_conn.close()
        self.conn.close()


class VerifierPool:
    """Verify many samples in worker processes with a hard per-sample timeout.

    `verify_many(items)` takes (completion, gold, task_type, options) tuples and returns one
    `Verdict` per item, in order. A sample still running after `timeout_s` gets reason
    "timeout"; an exception in a worker, or a worker that dies (segfault, os._exit, out of
    memory), gives reason "error" for that sample only. Killed or dead workers are replaced.
    `preload` names modules each worker imports (e.g. one that registers custom verifiers);
    `memory_limit_mb` caps each worker's address space (None = no cap).
    """

    def __init__(self, num_workers: int = 2, timeout_s: float = 5.0, *, preload: Sequence[str] = (),
                 memory_limit_mb: int | None = 4096) -> None:
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self._preload = tuple(preload)
        self._memory_limit_mb = memory_limit_mb
        self._lock = threading.Lock()
        # One warm spare beyond `num_workers`: a killed worker's place is taken at once instead
        # of after a fresh interpreter's start-up (seconds); at most num_workers run at a time.
        self._workers = [self._spawn() for _ in range(num_workers + 1)]
        self._closed = False
        self.restarts = 0  # workers replaced after a timeout or a death
        self.dispatched = 0  # samples sent to workers (the rest took the in-process fast path)
        self._startup_failures = 0

    def _spawn(self) -> _Worker:
        return _Worker(self._preload, self._memory_limit_mb)

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            w.send(None)
        deadline = time.monotonic() + 1.0
        for w in self._workers:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            w.kill()

    def verify_many(self, items: Sequence[Item]) -> list[Verdict]:
        """Verdicts for `items` ((completion, gold, task_type, options) tuples), in order."""
        if self._closed:
            raise RuntimeError("VerifierPool is closed")
        from harmo_fast.rewards.verify import fast_verify

        results: list[Verdict | None] = [None] * len(items)
        pending: deque[int] = deque()
        for i, item in enumerate(items):
            completion, gold, task_type, options = _unpack(item, i)
            fast = fast_verify(completion, gold, task_type, **options)  # invalid arguments raise here
            if fast is None:
                pending.append(i)
            else:
                results[i] = fast
        if pending:
            with self._lock:
                self._results_ref = results
                self._run(items, pending, results)
        return results  # type: ignore[return-value]

    def _replace(self, k: int) -> None:
        self._workers[k].kill()
        self._workers[k] = self._spawn()
        self.restarts += 1

    def _run(self, items: Sequence[Item], pending: deque[int], results: list[Verdict | None]) -> None:
        inflight = 0
        while pending or inflight:
            now = time.monotonic()
            busy = sum(w.task is not None for w in self._workers)
            for w in self._workers:
                if w.ready and w.task is None and pending and busy < self.num_workers:
                    i = pending.popleft()
                    completion, gold, task_type, options = items[i]
                    if not w.send((i, completion, gold, task_type, dict(options))):
                        pending.appendleft(i)
                        w.ready = False  # broken pipe: its EOF reports the death below
                        continue
                    w.task, w.started_at = i, now
                    self.dispatched += 1
                    inflight += 1
                    busy += 1
            deadlines = [w.started_at + self.timeout_s for w in self._workers if w.task is not None]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 1.0
            ready = set(wait([w.conn for w in self._workers], timeout=wait_s))
            for k, w in enumerate(list(self._workers)):
                if w.conn not in ready:
                    continue
                try:
                    msg = w.conn.recv()
                except (EOFError, OSError):
                    inflight -= self._on_death(k)
                    continue
                if msg[0] == "ready":
                    w.ready = True
                elif msg[0] == w.task:
                    results[msg[0]] = msg[1]
                    w.task = None
                    inflight -= 1
            now = time.monotonic()
            for k, w in enumerate(self._workers):
                if w.task is not None and now - w.started_at >= self.timeout_s:
                    results[w.task] = Verdict(0.0, False, "timeout", None, confident=False,
                                              detail=f"no verdict within {self.timeout_s:g} s")
                    inflight -= 1
                    w.task = None
                    self._replace(k)

    def _on_death(self, k: int) -> int:
        """A worker's pipe closed: fail its sample, replace it; returns 1 if a sample was lost."""
        w = self._workers[k]
        try:
            code = w.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        lost = 0
        if w.task is not None:
            self._results_ref[w.task] = Verdict(0.0, False, "error", None, confident=False,
                                                detail=f"verifier worker died (exit code {code})")
            lost = 1
        elif not w.ready:
            # Died while starting: do not loop forever on a broken environment.
            self._startup_failures += 1
            if self._startup_failures > 3 * self.num_workers:
                raise RuntimeError(f"verifier workers fail to start (exit code {code}); see their stderr")
        self._replace(k)
        return lost


def _unpack(item: Any, i: int) -> Item:
    try:
        completion, gold, task_type, options = item
    except (TypeError, ValueError):
        raise ValueError(f"items[{i}] must be (completion, gold, task_type, options), got {item!r:.80}") from None
    if not isinstance(options, dict):
        raise ValueError(f"items[{i}] options must be a dict, got {type(options).__name__}")
    return completion, gold, task_type, options


_SHARED: dict[float, VerifierPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(timeout_s: float = 5.0) -> VerifierPool:
    """The process-wide pool `verify(..., timeout_s=...)` uses (one per timeout, closed at exit)."""
    with _SHARED_LOCK:
        pool = _SHARED.get(timeout_s)
        if pool is None or pool._closed:
            pool = _SHARED[timeout_s] = VerifierPool(num_workers=1, timeout_s=timeout_s)
        return pool


@atexit.register
def _close_shared() -> None:
    for pool in _SHARED.values():
        pool.close()
