"""Thread selection follows the CPUs the process may use (affinity, cgroup quota), not the host's cores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from forecaster.runtime.threads import cgroup_cpu_quota, configure_threads, usable_cpus


def fake_cgroup(tmp_path, v2: str | None = None, v1: tuple[str, str] | None = None):
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1] + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("v2", "v1", "quota"),
    [
        ("max 100000", None, None),  # unlimited
        ("150000 100000", None, 1.5),  # a limit of 1.5 CPUs
        (None, ("-1", "100000"), None),  # cgroup v1, unlimited
        (None, ("50000", "100000"), 0.5),  # cgroup v1, half a CPU
        (None, None, None),  # no cgroup files at all (macOS, old kernels)
        ("garbage", None, None),  # an odd file is no limit we can act on
    ],
)
def test_cgroup_quota_is_read_from_v2_or_v1_files(tmp_path, v2, v1, quota):
    assert cgroup_cpu_quota(fake_cgroup(tmp_path, v2, v1)) == quota


def test_usable_cpus_is_capped_by_the_quota_rounded_up(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(fake_cgroup(tmp_path, "max 100000")) == affinity
    (tmp_path / "half").mkdir()
    assert usable_cpus(fake_cgroup(tmp_path / "half", "50000 100000")) == 1


def test_a_smaller_affinity_mask_gives_fewer_threads():
    # taskset-like: run a child pinned to one CPU and ask it what it would give torch.
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from forecaster.runtime.threads import configure_threads; print(configure_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "FORECASTER_TORCH_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_an_explicit_thread_setting_wins(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("FORECASTER_TORCH_THREADS", "1")
        assert configure_threads() == 1 and torch.get_num_threads() == 1
        assert configure_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_importing_forecaster_asks_openmp_to_wait_passively_unless_told_otherwise():
    code = "import os, forecaster; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env | {"OMP_WAIT_POLICY": "ACTIVE"}
    )
    assert out.stdout.strip() == "ACTIVE"


def test_training_under_a_cpu_quota_uses_the_cpus_the_quota_allows(tmp_path, monkeypatch):
    # torch's default is the host's cores (it follows the affinity mask, not a cgroup quota);
    # the training loop's first step fixes it, unless someone chose a count.
    import torch

    from forecaster.runtime import threads

    monkeypatch.setattr(threads, "CGROUP_ROOT", fake_cgroup(tmp_path, "100000 100000"))  # one CPU
    monkeypatch.setattr(threads, "_checked", False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("FORECASTER_TORCH_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(os.cpu_count())  # torch's default on this host
        assert threads.ensure_threads() == 1 == torch.get_num_threads()
        torch.set_num_threads(os.cpu_count())
        monkeypatch.setattr(threads, "_checked", False)
        monkeypatch.setenv("FORECASTER_TORCH_THREADS", str(os.cpu_count()))
        assert threads.ensure_threads() == os.cpu_count()  # an explicit choice is left alone
    finally:
        torch.set_num_threads(before)
