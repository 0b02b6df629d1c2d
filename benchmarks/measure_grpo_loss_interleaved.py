"""grpo_loss forward + backward against torch.compile of the TRL-style loss, call by call.

pytest-benchmark times one entry after the other, so a neighbour that is busy for a minute skews
one entry of a ratio; here the entries alternate call by call (each warmed up first, the compiled
one compiled), so both sides see the same machine. Inputs and implementations are
bench_grpo_loss.py's. Prints, per shape / dtype / beta, each side's median wall time and the
ratio of medians (compile / ours), with the ratio of the fastest rounds in brackets.

    python benchmarks/measure_grpo_loss_interleaved.py [--threads 2] [--rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

try:
    from benchmarks.bench_grpo_loss import step_callable
except ImportError:  # run as a script from the repository root
    from bench_grpo_loss import step_callable

IMPLS = ("harmo_cpu", "trl_style_torch_compile")
SHAPES = ((64, 1024), (256, 4096))


def measure(dtype: str, beta: float, n: int, t: int, rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each implementation's forward + backward, `rounds` alternating calls each."""
    calls = {impl: step_callable(impl, dtype, beta, n, t) for impl in IMPLS}
    for call in calls.values():
        for _ in range(3):  # the compiled loss compiles on its first call
            call()
    times: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for _ in range(rounds):
        for impl, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[impl].append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=200, help="alternating calls per entry (a quarter at 256x4096)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; ratio = compile median / ours median (fastest / fastest)")
    print("| shape | dtype | beta | ours | torch.compile | vs compile |")
    print("|---|---|---|---|---|---|")
    for n, t in SHAPES:
        rounds = args.rounds if n * t <= 64 * 1024 else max(args.rounds // 4, 10)
        for dtype in ("fp32", "bf16"):
            for beta in (0.0, 0.04):
                times = measure(dtype, beta, n, t, rounds)
                ours, compiled = (statistics.median(times[i]) for i in IMPLS)
                best = min(times[IMPLS[1]]) / min(times[IMPLS[0]])
                print(
                    f"| {n} x {t} | {dtype} | {beta} | {ours * 1e6:.0f} us | {compiled * 1e6:.0f} us "
                    f"| **{compiled / ours:.2f}x** ({best:.2f}x) |"
                )


if __name__ == "__main__":
    main()
