"""Chaos drill for saved models: kill -9 a process saving over an existing model directory.

Usage:
    python benchmarks/chaos_save.py                    # 20 kills, 32 MB of weights a save
    python benchmarks/chaos_save.py --kills 50 --mb 64 --dir /data/models
    python benchmarks/chaos_save.py --old              # the in-place writer it replaced, for comparison

A child process saves models tagged 1, 2, 3, ... over one directory, every file carrying the tag
(`forecaster.persistence.write_model_dir`, so a directory mixing two saves shows as tags that
differ). After its first save it is SIGKILLed at a random offset within the time of one save;
then the directory is read (`read_model_dir`). Prints, per kill, the offset and what was left
(loadable with tag N, or why not), and at the end how many directories stayed loadable and
whole (goal: all) and how many leftovers the next save removed.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ENV = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

import numpy as np  # noqa: E402
import torch  # noqa: E402

from forecaster.persistence import ModelFiles, read_model_dir, write_model_dir  # noqa: E402

SAVER = """
import json, sys, time, numpy as np, torch
from pathlib import Path
from forecaster.persistence import ModelFiles, write_model_dir
path, size, old = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "old"

def in_place(path, files):  # the writer before atomic saves: each file over the old one
    path = Path(path)
    (path / "config.json").write_text(json.dumps(files.config))
    torch.save(files.weights, path / "weights.pt")
    for name in ("fcm", "scaler", "calibration"):
        np.savez(path / f"{name}.npz", **getattr(files, name))
    (path / "metadata.json").write_text(json.dumps({"format_version": 2, **files.metadata}))

for tag in range(1, 10**6):
    a = {"tag": np.array([tag])}
    files = ModelFiles({"tag": tag}, {"w": torch.full((size,), float(tag))}, a, a, a, {"tag": tag})
    started = time.perf_counter()
    (in_place if old else write_model_dir)(path, files)
    print(tag, time.perf_counter() - started, flush=True)
"""


def tagged(tag: int, size: int) -> ModelFiles:
    a = {"tag": np.array([tag])}
    return ModelFiles({"tag": tag}, {"w": torch.full((size,), float(tag))}, a, a, a, {"tag": tag})


def inspect(path: Path) -> tuple[bool, str]:
    """(loadable and whole, what was found)."""
    try:
        files = read_model_dir(path)
    except Exception as exc:  # what a reader of a broken directory gets
        return False, f"unloadable: {type(exc).__name__}: {str(exc)[:80]}"
    tags = {
        files.config["tag"],
        files.metadata["tag"],
        int(files.weights["w"][0]),
        int(files.weights["w"][-1]),
    }
    tags |= {int(a["tag"][0]) for a in (files.fcm, files.scaler, files.calibration)}
    if len(tags) > 1:
        return False, f"mixed: files of saves {sorted(tags)}"
    return True, f"loadable, save {tags.pop()}"


def drill(folder: Path, kills: int, size: int, old: bool, seed: int) -> None:
    rng = random.Random(seed)
    path = folder / "model"
    write_model_dir(path, tagged(0, size))
    ok, leftovers = 0, 0
    for i in range(kills):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path), str(size), "old" if old else "new"],
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        save_s = float(child.stdout.readline().split()[1])  # the first save is done
        offset = rng.uniform(0, save_s)
        time.sleep(offset)
        child.send_signal(signal.SIGKILL)
        child.wait()
        whole, found = inspect(path)
        ok += whole
        leftovers += sum(1 for p in folder.iterdir() if p.name != "model")
        print(
            f"kill {i + 1:3d} at {offset * 1000:6.1f} ms of a {save_s * 1000:.0f} ms save: {found}",
            flush=True,
        )
        if not whole:  # start the next kill from a good model again
            shutil.rmtree(path, ignore_errors=True)
            write_model_dir(path, tagged(0, size))
    write_model_dir(path, tagged(-1, size))
    left_after = sorted(p.name for p in folder.iterdir() if p.name != "model")
    print(
        f"\n{'in-place' if old else 'atomic'} saves of {size * 4 / 2**20:.0f} MB on {folder}: "
        f"{ok} of {kills} directories loadable and whole after kill -9; {leftovers} leftover folders "
        f"seen after the kills, {len(left_after)} after the next save {left_after or ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--mb", type=int, default=32, help="size of the weights of one save")
    parser.add_argument("--dir", type=Path, help="where to save (default: a temporary folder)")
    parser.add_argument("--old", action="store_true", help="the in-place writer, for comparison")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        drill(Path(tmp), args.kills, args.mb * 2**20 // 4, args.old, args.seed)


if __name__ == "__main__":
    main()
