"""Saving a model directory: a kill or a full disk midway leaves the old model or the new one.

The kill test runs a real child process that saves over and over and SIGKILLs it at random
points; the disk tests run on a real tmpfs in a private mount namespace (`unshare`, as in
tests/test_paths.py), skipped only where namespaces are unavailable.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from forecaster.persistence import ModelFiles, estimated_size, read_model_dir, write_model_dir

REPO = Path(__file__).resolve().parents[1]

# A child that saves models tagged 1, 2, 3, ... over `path` until killed; each file says its tag,
# so a directory holding files of two saves shows as tags that differ.
SAVER = """
import sys, numpy as np, torch
from forecaster.persistence import ModelFiles, write_model_dir
path, size = sys.argv[1], int(sys.argv[2])
for tag in range(1, 10**6):
    files = ModelFiles(
        config={"tag": tag}, weights={"w": torch.full((size,), float(tag))},
        fcm={"tag": np.array([tag])}, scaler={"tag": np.array([tag])},
        calibration={"tag": np.array([tag])}, metadata={"tag": tag},
    )
    write_model_dir(path, files)
    print(tag, flush=True)
"""


def tagged(tag: int, size: int = 16) -> ModelFiles:
    arrays = {"tag": np.array([tag])}
    return ModelFiles(
        {"tag": tag}, {"w": torch.full((size,), float(tag))}, arrays, arrays, arrays, {"tag": tag}
    )


def tag_of(path: Path) -> int:
    """The tag of a loadable model directory; fails when its files come from different saves."""
    files = read_model_dir(path)
    tags = {
        files.config["tag"],
        files.metadata["tag"],
        int(files.weights["w"][0]),
        int(files.weights["w"][-1]),
        *(int(a["tag"][0]) for a in (files.fcm, files.scaler, files.calibration)),
    }
    assert len(tags) == 1, f"{path} mixes the files of saves {sorted(tags)}"
    return tags.pop()


def test_a_save_killed_at_any_point_leaves_the_old_or_the_new_model(tmp_path):
    path = tmp_path / "model"
    write_model_dir(path, tagged(0))
    rng = random.Random(7)
    env = os.environ | {"PYTHONPATH": str(REPO)}
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path), str(2_000_000)],  # 8 MB of weights a save
            stdout=subprocess.PIPE,
            env=env,
        )
        assert child.stdout.readline()  # imports done and one save finished: kill the next ones
        time.sleep(rng.uniform(0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert tag_of(path) >= 1  # loadable, and one save's files only
    write_model_dir(path, tagged(99))  # the next save clears what the killed ones left
    assert tag_of(path) == 99
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_save_keeps_the_other_entries_of_a_model_directory(tmp_path):
    path = tmp_path / "model"
    write_model_dir(path, tagged(1))
    (path / "plots").mkdir()
    (path / "plots" / "a.png").write_bytes(b"png")
    write_model_dir(path, tagged(2))
    assert tag_of(path) == 2 and (path / "plots" / "a.png").read_bytes() == b"png"


def test_a_folder_holding_something_else_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files .notes.txt. and no model"):
        write_model_dir(tmp_path, tagged(1))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_the_estimate_before_training_covers_the_saved_model(tmp_path, tiny_config, two_ticker_bars):
    from forecaster.model import FuzzyLSTMForecaster

    path = FuzzyLSTMForecaster(tiny_config).fit(two_ticker_bars, progress=False).save(tmp_path / "m")
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < estimated_size(tiny_config.to_dict()) < 20 * size + 2**20


def in_tmpfs(tmp_path: Path, options: str, code: str) -> subprocess.CompletedProcess:
    """Run Python `code` with a tmpfs (`options`) mounted at $MNT, in a mount namespace of its own."""
    if not Path("/usr/bin/unshare").exists() and not Path("/bin/unshare").exists():
        pytest.skip("unshare (util-linux) is not installed")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    flags = "-m" if os.geteuid() == 0 else "-rm"
    script = f'mount -t tmpfs -o {options} tmpfs "$MNT" || exit 77\nexec "$PY" -c "$CODE"'
    env = os.environ | {"MNT": str(mnt), "PY": sys.executable, "PYTHONPATH": str(REPO), "CODE": code}
    done = subprocess.run(["unshare", flags, "sh", "-c", script], env=env, capture_output=True, text=True)
    if done.returncode == 77 or "unshare failed" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {done.stderr.strip()}")
    return done


FULL_DISK = """
import os, sys
sys.path.insert(0, {tests!r})
from test_hardening_save import tag_of, tagged
from forecaster.persistence import write_model_dir
path = os.environ["MNT"] + "/model"
write_model_dir(path, tagged(1))
try:
    write_model_dir(path, tagged(2, size={size}))
except OSError as exc:
    print(exc)
print("tag", tag_of(path), sorted(os.listdir(os.environ["MNT"])))
"""


def test_a_model_too_big_for_the_disk_fails_before_writing_and_keeps_the_old_one(tmp_path):
    done = in_tmpfs(tmp_path, "size=1m", FULL_DISK.format(tests=str(REPO / "tests"), size=400_000))
    first, second = done.stdout.strip().splitlines()
    mnt = tmp_path / "mnt"
    assert first.startswith(f"cannot save the model to {mnt}/model: it needs about 1.6 MiB and {mnt} has"), (
        done
    )
    assert second == "tag 1 ['model']", done


def test_a_disk_that_fills_up_while_saving_keeps_the_old_model(tmp_path):
    # Room for the bytes, not for the files: the save runs out of inodes after a few files.
    done = in_tmpfs(tmp_path, "size=4m,nr_inodes=12", FULL_DISK.format(tests=str(REPO / "tests"), size=16))
    first, second = done.stdout.strip().splitlines()
    assert first == f"cannot save the model to {tmp_path}/mnt/model: disk full", done
    assert second == "tag 1 ['model']", done


TRAIN = """
import os, runpy, sys
sys.argv = ["forecaster", "train", "--source", "sample", "-o", os.environ["MNT"] + "/model"]
runpy.run_module("forecaster.cli", run_name="__main__")
"""


def test_training_onto_a_disk_without_room_for_the_model_stops_before_reading_data(tmp_path):
    done = in_tmpfs(tmp_path, "size=256k", TRAIN)
    mnt = tmp_path / "mnt"
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.startswith(f"error: cannot save the model to {mnt}/model: it needs about "), done
    assert done.stderr.count("\n") == 1 and f"and {mnt} has 0.2 MiB free" in done.stderr, done
