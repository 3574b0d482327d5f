"""How many threads torch may use: the CPUs this process may really run on, not the host's core count.

torch sizes its OpenMP pool from the host's cores. In a container with a CPU limit (cgroup
`cpu.max`), under `taskset`, or on a machine busy with other work, that pool is larger than the
CPU time the process gets, and OpenMP threads that wait at a barrier spin, burning the slices the
working threads need: training on 2 cores at a load average of 12 ran 30-70x slower, not the ~6x
its CPU share explains. Two remedies, both here:

- `usable_cpus` reads the affinity mask and the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`)
  and `configure_threads` gives torch that many threads;
- `passive_waiting` asks OpenMP to sleep rather than spin while waiting (`OMP_WAIT_POLICY=PASSIVE`).
  OpenMP reads it once, when its runtime starts, so it must be set before torch is imported:
  `forecaster/__init__.py` does it (an explicit setting in the environment wins).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path | None = None) -> float | None:
    """CPUs' worth of time the cgroup allows (e.g. 1.5), or None when unlimited or unknown."""
    root = CGROUP_ROOT if root is None else root
    v2 = root / "cpu.max"  # "max 100000" or "<quota> <period>"
    v1_quota, v1_period = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if v1_quota.is_file() and v1_period.is_file():
            quota = int(v1_quota.read_text())
            return None if quota <= 0 else quota / int(v1_period.read_text())
    except (OSError, ValueError):
        return None  # an unreadable or odd file means no limit we can act on
    return None


def usable_cpus(root: Path | None = None) -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity API
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def passive_waiting() -> None:
    """Let idle OpenMP threads sleep instead of spinning (before torch is imported; env wins)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_threads(threads: int | None = None) -> int:
    """Give torch `threads` intra-op threads (default: `usable_cpus`), log it, return it.

    `FORECASTER_TORCH_THREADS` or `OMP_NUM_THREADS` in the environment is an explicit choice and wins
    over the default.
    """
    import torch

    explicit = os.environ.get("FORECASTER_TORCH_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if threads is None and explicit:
        threads = int(explicit)
    threads = threads or usable_cpus()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    log.info(
        "torch threads: %d (usable CPUs %d of %d, OMP_WAIT_POLICY=%s)",
        threads,
        usable_cpus(),
        os.cpu_count() or 0,
        os.environ.get("OMP_WAIT_POLICY", "default"),
    )
    return threads


_checked = False


def ensure_threads() -> int:
    """Before training on the CPU: fix torch's default thread count where it exceeds the usable CPUs.

    torch defaults to the host's cores; inside a CPU-limited container or under `taskset` that is
    too many. A count someone set (`torch.set_num_threads`, OMP_NUM_THREADS,
    FORECASTER_TORCH_THREADS) is left alone. Logs the count once per process.
    """
    global _checked
    import torch

    if not _checked:
        _checked = True
        explicit = os.environ.get("FORECASTER_TORCH_THREADS") or os.environ.get("OMP_NUM_THREADS")
        default = os.cpu_count() or 1
        if explicit or torch.get_num_threads() != default or usable_cpus() >= default:
            log.info(
                "torch threads: %d (usable CPUs %d of %d)", torch.get_num_threads(), usable_cpus(), default
            )
        else:
            configure_threads()
    return torch.get_num_threads()
