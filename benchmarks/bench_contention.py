"""Training throughput on a busy machine, relative to a quiet one: does torch collapse under contention?

    python benchmarks/bench_contention.py                   # 0 and 2 busy processes, 20 s per run
    python benchmarks/bench_contention.py --busy 0 2 4 --seconds 30

Each run is a fresh child process training the expert ensemble (K=3, hidden 64, window 30,
7 features, 9 quantiles x H 5, pinball + Adam, batch 256) on random data for `--seconds`, while
this script keeps N pure-Python busy loops running beside it. Two set-ups per N:

- `torch defaults`: torch imported before forecaster, so OpenMP keeps its default (spinning) wait
  policy and torch its default thread count (the host's cores): how the code ran before;
- `forecaster`: forecaster imported first, so OpenMP waits passively (`OMP_WAIT_POLICY=PASSIVE`)
  and `configure_threads` picks the threads from the CPUs this process may use.

Prints windows/s per run and the ratio to the same set-up's quiet run. Figures depend on the
machine and on whatever else runs on it: state the load when you quote them.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time

CHILD = r"""
import sys, time
if sys.argv[1] == "defaults":
    import torch  # before forecaster: OpenMP starts with its own wait policy
    import forecaster  # noqa: F401
    threads = torch.get_num_threads()
else:
    import forecaster  # noqa: F401  sets OMP_WAIT_POLICY=PASSIVE before torch loads
    import torch
    from forecaster.runtime.threads import configure_threads
    threads = configure_threads()
from forecaster.experts.losses import pinball
from forecaster.experts.network import ExpertEnsemble

torch.manual_seed(0)
K, L, F, H, Q, B = 3, 30, 7, 5, 9, 256
net = ExpertEnsemble(K, F, H, n_outputs=Q, median_index=Q // 2, hidden_size=64)
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
levels = torch.linspace(0.05, 0.95, Q)
x, y = torch.randn(B, L, F), torch.randn(B, 1, H)
seconds, done, start = float(sys.argv[2]), 0, None
while True:
    loss = pinball(net(x), y, levels).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    done += B
    if start is None:  # the first step warms oneDNN up: time from the second on
        start, done = time.perf_counter(), 0
    elif time.perf_counter() - start >= seconds:
        break
print(threads, done / (time.perf_counter() - start))
"""


def spin() -> None:
    while True:
        pass


def run(setup: str, busy: int, seconds: float) -> tuple[int, float]:
    hogs = [mp.Process(target=spin, daemon=True) for _ in range(busy)]
    for h in hogs:
        h.start()
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, setup, str(seconds)],
            capture_output=True,
            text=True,
            env=env,
            timeout=seconds * 20 + 120,
            check=True,
        )
    finally:
        for h in hogs:
            h.terminate()
    threads, rate = out.stdout.split()
    return int(threads), float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2], help="busy processes beside training")
    parser.add_argument("--seconds", type=float, default=20.0, help="training time per run")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, affinity {len(os.sched_getaffinity(0))}, load {os.getloadavg()[0]:.1f}")
    print(
        f"command: python benchmarks/bench_contention.py --busy {' '.join(map(str, args.busy))} "
        f"--seconds {args.seconds:g}"
    )
    for setup in ("defaults", "forecaster"):
        quiet = None
        for busy in sorted(args.busy):
            started = time.perf_counter()
            threads, rate = run(setup, busy, args.seconds)
            quiet = rate if busy == 0 else quiet
            ratio = f"{rate / quiet:.0%} of quiet" if quiet else ""
            name = "torch defaults" if setup == "defaults" else "forecaster"
            print(
                f"{name:>14}: {busy} busy, {threads} threads: {rate:8,.0f} windows/s  {ratio}"
                f"  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
