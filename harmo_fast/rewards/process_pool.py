"""Worker processes that verify samples with a hard per-sample timeout (`ProcessPool`), and the
process-wide pool that `verify(..., timeout_s=...)` uses (`shared_pool`).

Signals cannot stop sympy stuck in C code and do not work outside the main thread, so a sample
that runs past `timeout_s` is stopped by killing its worker process, which is then replaced.
Workers are forked from a warm "zygote", itself a fresh interpreter (like the "spawn" start
method: the parent may hold torch threads, so forking the parent is unsafe) that imports only the
reward verifiers, never the caller's `__main__` (see pool_worker.py), so a killed worker is
replaced by a warm fork at once. Every item given to `ProcessPool.verify_many` runs in a worker; the
in-process fast path for cheap cases is `VerifierPool`'s (pool.py)."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import recv_handle
from typing import Any

from harmo_fast.rewards.types import Verdict

Item = tuple[str, "str | list[str]", str, dict]


class _Zygote:
    """The warm process that forks workers (see pool_worker.py)."""

    def __init__(self, preload: Sequence[str], memory_limit_mb: int | None) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        # The zygote must find the same modules (e.g. a `preload` module next to the caller).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from harmo_fast.rewards.pool_worker import zygote_main; zygote_main()",
                    str(theirs.fileno()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            theirs.close()
        self.ctrl = Connection(ours.detach())
        self.ctrl.send({"preload": tuple(preload), "memory_limit_mb": memory_limit_mb})
        self.ready = False

    def wait_ready(self, timeout_s: float) -> None:
        if self.ready:
            return
        if not self.ctrl.poll(timeout_s):
            raise RuntimeError(f"verifier zygote not ready after {timeout_s:g} s")
        try:
            msg = self.ctrl.recv()
        except (EOFError, OSError):
            msg = None
        if msg != ("ready",):
            raise RuntimeError(f"verifier zygote failed to start (exit code {self.proc.poll()}); see its stderr")
        self.ready = True

    def fork(self) -> tuple[Connection, int]:
        """A new warm worker: (connection to it, pid)."""
        self.ctrl.send("spawn")
        fd = recv_handle(self.ctrl)
        pid = self.ctrl.recv()
        return Connection(fd), pid

    def close(self) -> None:
        self.ctrl.close()  # the zygote exits on EOF once warm; one still warming up is killed
        if not self.ready:
            self.proc.kill()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=2)


class _Worker:
    """One forked worker: its connection, pid (and pidfd, so a kill never hits a reused pid)."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn, self.pid = conn, pid
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.task: int | None = None
        self.started_at = 0.0

    def send(self, msg: Any) -> bool:
        try:
            self.conn.send(msg)
            return True
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        try:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass  # already gone
        self.close()

    def close(self) -> None:
        self.conn.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class ProcessPool:
    """Verify samples in worker processes with a hard per-sample timeout.

    `verify_many(items)` takes (completion, gold, task_type, options) tuples and returns one
    `Verdict` per item, in order. A sample still running after `timeout_s` gets reason
    "timeout"; an exception in a worker, or a worker that dies (segfault, os._exit, out of
    memory), gives reason "error" for that sample only. Killed or dead workers are replaced.
    At most `num_workers` samples run at a time, except that a sample running longer than
    `soft_s` (a quarter of the timeout) no longer counts: an extra worker, up to 2 * num_workers
    in all, takes up the queue meanwhile, so hostile samples delay a batch by about one timeout.
    `preload` names modules each worker imports (e.g. one that registers custom verifiers);
    `memory_limit_mb` caps each worker's address space (None = no cap).
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout_s: float = 5.0,
        *,
        preload: Sequence[str] = (),
        memory_limit_mb: int | None = 4096,
        startup_timeout_s: float = 120.0,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self.soft_s = max(0.25, self.timeout_s / 4)  # past this a sample is a straggler
        self.max_workers = 2 * num_workers  # stragglers included
        self.startup_timeout_s = float(startup_timeout_s)
        self._preload = tuple(preload)
        self._memory_limit_mb = memory_limit_mb
        self._lock = threading.Lock()
        # The zygote warms up in the background; workers are forked when first needed.
        self._zygote = _Zygote(self._preload, memory_limit_mb)
        self._workers: list[_Worker] = []
        self._closed = False
        self.restarts = 0  # workers replaced after a timeout or a death
        self.dispatched = 0  # samples sent to workers (in a VerifierPool, the rest took the fast path)

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers and the zygote (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            w.send(None)
            w.close()  # a worker exits on None or on EOF
        self._workers = []
        self._zygote.close()

    def start(self) -> ProcessPool:
        """Block until the workers are up (otherwise the first batch that needs them waits)."""
        with self._lock:
            self._ensure_workers()
        return self

    def verify_many(self, items: Sequence[Item]) -> list[Verdict]:
        """Verdicts for `items` ((completion, gold, task_type, options) tuples), in order, each
        computed in a worker process."""
        self._check_open()
        for i, item in enumerate(items):
            unpack_item(item, i)
        return self._dispatch(items, deque(range(len(items))), [None] * len(items))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    def _dispatch(self, items: Sequence[Item], pending: deque[int], results: list[Verdict | None]) -> list[Verdict]:
        """Run `items[i]` for i in `pending` in the workers, filling `results`; return `results`."""
        if pending:
            with self._lock:
                self._ensure_workers()
                self._run(items, pending, results)
        return results  # type: ignore[return-value]

    def _ensure_workers(self) -> None:
        self._zygote.wait_ready(self.startup_timeout_s)
        while len(self._workers) < self.num_workers:
            self._workers.append(self._fork())

    def _fork(self) -> _Worker:
        try:
            return _Worker(*self._zygote.fork())
        except (EOFError, OSError):
            # The zygote itself died (killed from outside): start a new one, once per call.
            self._zygote.close()
            self._zygote = _Zygote(self._preload, self._memory_limit_mb)
            self._zygote.wait_ready(self.startup_timeout_s)
            return _Worker(*self._zygote.fork())

    def _replace(self, k: int) -> None:
        self._workers[k].kill()
        self._workers[k] = self._fork()
        self.restarts += 1

    def _run(self, items: Sequence[Item], pending: deque[int], results: list[Verdict | None]) -> None:
        inflight = 0
        while pending or inflight:
            now = time.monotonic()
            # A straggler (running past the soft limit, likely until its timeout) stops counting
            # toward the concurrency: an extra worker takes up the queue, so k hostile samples
            # delay a batch by about one timeout, not k timeouts.
            active = sum(w.task is not None and now - w.started_at < self.soft_s for w in self._workers)
            for k in range(self.max_workers):
                if not pending or active >= self.num_workers:
                    break
                if k == len(self._workers):
                    self._workers.append(self._fork())
                w = self._workers[k]
                if w.task is not None:
                    continue
                i = pending.popleft()
                completion, gold, task_type, options = items[i]
                if not w.send((i, completion, gold, task_type, dict(options))):
                    pending.appendleft(i)  # broken pipe: the worker died while idle
                    self._replace(k)
                    continue
                w.task, w.started_at = i, now
                self.dispatched += 1
                inflight += 1
                active += 1
            events = [
                w.started_at + (self.soft_s if now - w.started_at < self.soft_s else self.timeout_s)
                for w in self._workers
                if w.task is not None
            ]
            wait_s = max(0.0, min(events) - time.monotonic()) if events else 0.0
            ready = set(wait([w.conn for w in self._workers], timeout=wait_s))
            for k, w in enumerate(list(self._workers)):
                if w.conn not in ready:
                    continue
                try:
                    index, verdict = w.conn.recv()
                except (EOFError, OSError):
                    if w.task is not None:
                        results[w.task] = Verdict(
                            0.0,
                            False,
                            "error",
                            None,
                            confident=False,
                            detail="verifier worker died (crash, os._exit or out of memory)",
                        )
                        inflight -= 1
                    self._replace(k)
                    continue
                if index == w.task:
                    results[index] = verdict
                    w.task = None
                    inflight -= 1
            now = time.monotonic()
            for k, w in enumerate(self._workers):
                if w.task is not None and now - w.started_at >= self.timeout_s:
                    results[w.task] = Verdict(
                        0.0, False, "timeout", None, confident=False, detail=f"no verdict within {self.timeout_s:g} s"
                    )
                    inflight -= 1
                    w.task = None
                    self._replace(k)
        # Give back the extra workers forked for stragglers.
        while len(self._workers) > self.num_workers:
            w = self._workers.pop()
            w.send(None)
            w.close()


def unpack_item(item: Any, i: int) -> Item:
    """`items[i]` as (completion, gold, task_type, options); ValueError naming `items[i]` otherwise."""
    try:
        completion, gold, task_type, options = item
    except (TypeError, ValueError):
        raise ValueError(f"items[{i}] must be (completion, gold, task_type, options), got {item!r:.80}") from None
    if not isinstance(options, dict):
        raise ValueError(f"items[{i}] options must be a dict, got {type(options).__name__}")
    return completion, gold, task_type, options


_SHARED: dict[float, ProcessPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(timeout_s: float = 5.0) -> ProcessPool:
    """The process-wide pool `verify(..., timeout_s=...)` uses (one per timeout, closed at exit);
    `verify` takes the fast path itself before it sends a sample here."""
    with _SHARED_LOCK:
        pool = _SHARED.get(timeout_s)
        if pool is None or pool._closed:
            pool = _SHARED[timeout_s] = ProcessPool(num_workers=1, timeout_s=timeout_s)
        return pool


@atexit.register
def _close_shared() -> None:
    for pool in _SHARED.values():
        pool.close()
