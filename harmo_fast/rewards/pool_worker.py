"""The processes behind `VerifierPool`.

A *zygote* is started as a fresh interpreter (no torch, no threads, never the caller's
`__main__`). It imports the verifiers (and `preload` modules), warms up sympy and the LaTeX
grammar once, then forks a warm *worker* on each request and hands the parent one end of a
socket pair to it. Forking is safe here because the zygote is single-threaded, and a replacement
worker starts warm instead of paying a fresh interpreter's imports and warm-up.

Zygote protocol (over the control socket): config dict in; ("ready",) out; then per "spawn"
request: a file descriptor (SCM_RIGHTS) followed by the worker's pid. Worker protocol: requests
(index, completion, gold, task_type, options) answered by (index, Verdict); None or EOF stops."""

from __future__ import annotations

import contextlib
import importlib
import os
import resource
import signal
import socket
import sys
import traceback
from multiprocessing.connection import Connection
from multiprocessing.reduction import send_handle

from harmo_fast.rewards.types import Verdict
from harmo_fast.rewards.verify import verify_inline

WARM_UP = [
    ("x^2+\\frac{1}{2}", "\\frac{1}{2}+x^2"),
    ("(x+1)^2", "x^2+2x+1"),
    ("(y-3)^{3}", "y^3-9y^2+27y-27"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
    ("2\\sqrt{2}+1", "1+\\sqrt{8}"),
    ("\\sqrt[3]{8}", "2"),
    ("\\frac{a+b}{c}", "\\frac{b+a}{c}"),
    ("3\\pi/4", "\\frac{3\\pi}{4}"),
    ("e^{i\\pi}", "-1"),
    ("\\sin^2 x+\\cos^2 x", "1"),
    ("\\log_2 8", "3"),
    ("\\ln(e^2)", "2"),
    ("\\tan(\\theta)", "\\frac{\\sin\\theta}{\\cos\\theta}"),
    ("2^{10}", "1024"),
    ("5!", "120"),
    ("\\binom{5}{2}", "10"),
    ("a_1+a_{n}", "a_{n}+a_1"),
    ("\\alpha+\\beta", "\\beta+\\alpha"),
    ("(1,2)", "1<x<2"),
    ("[2,\\infty)", "x \\ge 2"),
    ("(-\\infty,0)\\cup(1,\\infty)", "x<0 \\text{ or } x>1"),
    ("1 \\pm \\sqrt{2}", "1+\\sqrt{2}, 1-\\sqrt{2}"),
    ("y=2x+1", "2x-y+1=0"),
    ("3+4i", "4i+3"),
    ("\\begin{pmatrix}1&x\\\\0&\\frac12\\end{pmatrix}", "\\begin{pmatrix}1&x\\\\0&0.5\\end{pmatrix}"),
    ("0.1x", "\\frac{x}{10}"),
    ("f(x)+1", "1+f(x)"),
    ("|x-1|", "|1-x|"),
    ("\\frac{1}{x^2-1}", "\\frac{1}{(x-1)(x+1)}"),
]


def serve(conn: Connection) -> None:
    """Worker loop: verify requests until the parent closes the socket or sends None."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, completion, gold, task_type, options = msg
        try:
            verdict = verify_inline(completion, gold, task_type, **options)
        except Exception as exc:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            verdict = Verdict(0.0, False, "error", None, confident=False, detail=text[:2000])
        conn.send((index, verdict))


def _fork_worker(ctrl: Connection, memory_limit_mb: int | None) -> None:
    parent_end, child_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            ctrl.close()
            parent_end.close()
            if memory_limit_mb:
                limit = memory_limit_mb << 20
                with contextlib.suppress(ValueError, OSError):
                    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            serve(Connection(child_end.detach()))
        finally:
            os._exit(0)
    child_end.close()
    send_handle(ctrl, parent_end.fileno(), os.getppid())
    parent_end.close()
    ctrl.send(pid)


def zygote_main() -> None:
    """Warm up once, then fork workers on request until the parent goes away."""
    ctrl = Connection(int(sys.argv[1]))
    config = ctrl.recv()
    # Workers exit on their own; the kernel reaps them (the parent kills by pidfd or pid).
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for name in config.get("preload", ()):
        importlib.import_module(name)
    # Pay sympy's and the LaTeX grammar's first-use costs here, once: the ANTLR parser fills its
    # prediction caches per construct, and forked workers inherit them (otherwise each worker,
    # including every replacement of one killed after a timeout, would fill them again).
    for answer, gold in WARM_UP:
        verify_inline(f"\\boxed{{{answer}}}", gold, "math")
    ctrl.send(("ready",))
    while True:
        try:
            msg = ctrl.recv()
        except (EOFError, OSError):
            return
        if msg != "spawn":
            return
        _fork_worker(ctrl, config.get("memory_limit_mb"))


if __name__ == "__main__":
    zygote_main()
