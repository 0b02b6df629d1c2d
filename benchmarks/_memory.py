"""Peak extra memory of a callable, as the Linux kernel accounts it.

The callable runs in a fresh Python subprocess, so nothing cached by earlier benchmarks (allocator
pools, other tensors) hides or inflates its footprint. There:
  1. `builder(*args)` creates the inputs and returns a zero-argument callable;
  2. the callable runs once to warm up (thread pools, lazy imports), its result is dropped, and
     freed heap pages are handed back to the OS (malloc_trim);
  3. the resident set size is read (the baseline: interpreter + inputs), the kernel's peak-RSS
     counter is reset (`echo 5 > /proc/self/clear_refs`), the callable runs again, and the new peak
     (VmHWM) minus the baseline is reported.
The result counts everything the call allocates and keeps alive at its peak, outputs included
(e.g. the gradient it returns), and nothing that existed before it. Page granularity: 4 KiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_SCRIPT = r"""
import ctypes, gc, importlib, json, sys

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field + " not in /proc/self/status")

def release():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass

module, name = sys.argv[1].split(":")
args = json.loads(sys.argv[2])
warmup = sys.argv[3] == "1"
call = getattr(importlib.import_module(module), name)(*args)
if warmup:
    call()
release()
baseline = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
result = call()
peak = status("VmHWM")
print(json.dumps({"peak_extra_bytes": peak - baseline, "baseline_bytes": baseline}))
"""


def peak_extra_bytes(builder: str, *args: object, warmup: bool = True, timeout: float = 900.0) -> int:
    """Peak resident memory added by one call of `builder(*args)()` (builder = "module:function",
    importable with the benchmarks folder on sys.path); args must be JSON-serialisable."""
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, builder, json.dumps(list(args)), "1" if warmup else "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {builder}{args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_extra_bytes"]


def time_fresh_calls_and_peak_mib(
    benchmark: Any, make_call: Callable[..., Callable[[], object]], builder: str, *args: object, compiles: bool
) -> float:
    """Time `make_call(*args)()` over two rounds, each on a fresh call, then return the peak extra
    memory of one such call in MiB (`peak_extra_bytes(builder, *args)`). A compiling method warms up
    once first, outside both the timed rounds and the memory measurement."""
    benchmark.pedantic(
        lambda call: call(),
        setup=lambda: ((make_call(*args),), {}),
        rounds=2,
        iterations=1,
        warmup_rounds=int(compiles),
    )
    return peak_extra_bytes(builder, *args, warmup=compiles) / (1 << 20)
