"""ensure_writable: a read-only, full or impossible data folder fails in one line naming it.

The read-only and full cases run on a real tmpfs mounted in a private mount namespace
(`unshare`), so nothing is simulated; they are skipped only where namespaces are unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forecaster.runtime.paths import NotWritableError, ensure_writable

REPO = Path(__file__).resolve().parents[1]


def test_a_writable_folder_is_created_and_left_clean(tmp_path):
    folder = ensure_writable(tmp_path / "a" / "b")
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_a_folder_under_a_regular_file_is_refused_naming_the_path(tmp_path):
    (tmp_path / "home").write_text("not a folder")
    with pytest.raises(NotWritableError) as caught:
        ensure_writable(tmp_path / "home" / "prices")
    assert str(caught.value) == (
        f"cannot write to {tmp_path / 'home' / 'prices'}: a part of the path is a file, not a folder"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o500; see the read-only mount test")
def test_a_chmod_500_folder_is_refused_as_permission_denied(tmp_path):
    folder = tmp_path / "prices"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(NotWritableError, match=r"prices: permission denied \(read-only folder\?\)"):
            ensure_writable(folder)
    finally:
        folder.chmod(0o700)


def in_tmpfs(tmp_path: Path, options: str, shell: str) -> subprocess.CompletedProcess:
    """Run `shell` with a tmpfs (`options`) mounted at $MNT, in a mount namespace of its own."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    flags = "-m" if os.geteuid() == 0 else "-rm"  # unprivileged: map ourselves to root in a user namespace
    script = f'mount -t tmpfs -o {options} tmpfs "$MNT" || exit 77\n{shell}'
    env = os.environ | {"MNT": str(mnt), "PY": sys.executable, "PYTHONPATH": str(REPO)}
    done = subprocess.run(["unshare", flags, "sh", "-c", script], env=env, capture_output=True, text=True)
    if done.returncode == 77 or "unshare failed" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {done.stderr.strip()}")
    return done


CHECK = 'import os; from forecaster.runtime.paths import ensure_writable; ensure_writable(os.environ["MNT"] + "/prices")'


def test_a_read_only_file_system_is_refused_in_one_line(tmp_path):
    done = in_tmpfs(tmp_path, "ro,size=1m", f"\"$PY\" -c '{CHECK}' 2>&1 | tail -1")
    mnt = tmp_path / "mnt"
    assert done.stdout.strip().endswith(f"cannot write to {mnt}/prices: read-only file system"), done


def test_a_full_disk_is_refused_as_disk_full(tmp_path):
    fill = 'head -c 1048576 /dev/zero > "$MNT/fill" 2>/dev/null; mkdir "$MNT/prices"\n'
    done = in_tmpfs(tmp_path, "size=64k", fill + f"\"$PY\" -c '{CHECK}' 2>&1 | tail -1")
    mnt = tmp_path / "mnt"
    assert done.stdout.strip().endswith(f"cannot write to {mnt}/prices: disk full"), done
