"""The verifier worker process started by `VerifierPool` (a fresh interpreter: it imports only
the reward verifiers, never the caller's `__main__`, torch or CUDA state).

Protocol over two pipes (file descriptors in argv): first a config dict, then requests
(index, completion, gold, task_type, options) answered by (index, Verdict); None stops."""
from __future__ import annotations

import importlib
import sys
import traceback
from multiprocessing.connection import Connection


def main() -> None:
    """Serve verification requests until the parent closes the pipe or sends None."""
    conn_in = Connection(int(sys.argv[1]), writable=False)
    conn_out = Connection(int(sys.argv[2]), readable=False)
    config = conn_in.recv()
    limit_mb = config.get("memory_limit_mb")
    if limit_mb:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))
        except (ImportError, ValueError, OSError):
            pass
    from harmo_fast.rewards.types import Verdict
    from harmo_fast.rewards.verify import verify_inline

    for name in config.get("preload", ()):
        importlib.import_module(name)
    # Pay sympy's and the LaTeX grammar's first-use cost before taking work, so that it is
    # not charged to the first sample's timeout.
    verify_inline("\\boxed{x^2+\\frac{1}{2}}", "\\frac{1}{2}+x^2", "math")
    conn_out.send(("ready", None))
    while True:
        try:
            msg = conn_in.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, completion, gold, task_type, options = msg
        try:
            verdict = verify_inline(completion, gold, task_type, **options)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a verdict
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            verdict = Verdict(0.0, False, "error", None, confident=False, detail=text[:2000])
        conn_out.send((index, verdict))


if __name__ == "__main__":
    main()
