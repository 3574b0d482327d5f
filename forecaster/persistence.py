"""The saved-model directory format: what is written where, its version, and reading it back.

A model directory holds `config.json`, `weights.pt` (a plain state dict), `fcm.npz`, `scaler.npz`,
`calibration.npz` and `metadata.json`. Arrays go to .npz and weights to a state dict loaded with
`weights_only=True`, so loading never unpickles code; `map_location="cpu"` lets a model trained on
a GPU serve anywhere. This module knows the files, not the model: `FuzzyLSTMForecaster.save/load`
map their fitted state to and from a `ModelFiles`.

`calibration.npz` holds the calibrator of the configured gate under its own array names (all a
format-2 directory had), and the calibrator of every other fusion rule under "<rule>.<name>".
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from forecaster.runtime.paths import NotWritableError, ensure_writable

# The files of a model directory; other entries (plots/) are the user's and are kept.
MODEL_FILES = ("config.json", "weights.pt", "fcm.npz", "scaler.npz", "calibration.npz", "metadata.json")
# Temporary sibling folders of a save: .<name>.saving-<pid>-<id>, and the old model set aside
# (".old" added) where the folders cannot be exchanged in one step.
_SAVING = ".saving-"
_REASONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied (read-only folder?)",
}

# Of the saved model directory; bump when a reader of the old one would break.
# 2: quantile experts as one block-diagonal LSTM, calibration.npz (format 1: K separate MSE experts).
# 3: regimes that matter: market context (window.market), learned gates (their network in fcm.npz),
#    per-regime calibration. A format-2 directory is a format-3 model without them, so it loads;
#    a reader of format 2 refuses format 3 with "Upgrade forecaster".
FORMAT_VERSION = 3
OLDEST_READABLE = 2


def data_fingerprint(bars: pd.DataFrame) -> dict:
    """What the model was trained on: tickers, dates, row counts and a content hash."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(bars, index=False).to_numpy().tobytes()).hexdigest()
    return {
        "tickers": sorted(bars["ticker"].unique().tolist()),
        "start": str(bars["date"].min().date()),
        "end": str(bars["date"].max().date()),
        "rows": int(len(bars)),
        "rows_per_ticker": {str(t): int(n) for t, n in bars.groupby("ticker").size().items()},
        "sha256": digest,
    }


@dataclass
class ModelFiles:
    """The contents of a model directory, as plain data."""

    config: dict[str, Any]  # ForecasterConfig.to_dict()
    weights: dict[str, torch.Tensor]  # the experts' state dict
    fcm: dict[str, np.ndarray]  # the clusterer's to_arrays() (FuzzyCMeans by default)
    scaler: dict[str, np.ndarray]  # FeatureScaler.to_arrays()
    calibration: dict[str, np.ndarray]  # calibrators' to_arrays(), see `pack_calibrations`
    metadata: dict[str, Any]  # fingerprint, metrics, history, sizes; versions are added on write


def write_model_dir(path: str | Path, files: ModelFiles) -> Path:
    """Write the model directory `path` atomically: readers see the old model or the new one.

    The files go to a temporary sibling folder (`.<name>.saving-<pid>-<id>`), each fsynced, then
    the folder replaces `path` in one rename (Linux: an atomic exchange; elsewhere two renames,
    which a crash between them leaves undone until the next save restores the old model). Other
    entries of an existing model directory (its plots/) are carried over as hard links. Raises
    `NotWritableError` (one line naming the folder) when the disk lacks room, before writing,
    or fills up while writing; the old model is then left as it was.
    """
    target = Path(path)
    folder = Path(os.path.abspath(target))
    ensure_writable(folder.parent)
    recover_interrupted_saves(folder)
    _refuse_foreign(folder, target)
    blobs = _serialise(files)
    ensure_room(target, sum(_on_disk(len(blob)) for blob in blobs.values()))
    temp = folder.with_name(f".{folder.name}{_SAVING}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        temp.mkdir()
        for name, blob in blobs.items():
            _write_synced(temp / name, blob)
        _carry_extras(folder, temp)
        _fsync(temp)
        _swap(temp, folder)  # `temp` now holds the old model, if there was one
        _fsync(folder.parent)
    except OSError as exc:
        reason = _REASONS.get(exc.errno, exc.strerror or str(exc))
        raise NotWritableError(exc.errno, f"cannot save the model to {target}: {reason}") from exc
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return target


def _serialise(files: ModelFiles) -> dict[str, bytes]:
    """The bytes of each file of the directory (in memory first: their size is known before writing)."""

    def npz(arrays: dict[str, np.ndarray]) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()

    weights = io.BytesIO()
    torch.save(files.weights, weights)
    metadata = {
        "format_version": FORMAT_VERSION,
        **files.metadata,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }
    return {
        "config.json": json.dumps(files.config, indent=2).encode(),
        "weights.pt": weights.getvalue(),
        "fcm.npz": npz(files.fcm),
        "scaler.npz": npz(files.scaler),
        "calibration.npz": npz(files.calibration),
        "metadata.json": json.dumps(metadata, indent=2, default=float).encode(),
    }


def ensure_room(path: str | Path, size: int) -> None:
    """Fail now, in one line naming the folder, when `size` bytes would not fit beside `path`.

    Call it before training (with `estimated_size`) so that an hour of work is not lost to a
    full disk; `write_model_dir` calls it again with the exact size before it writes.
    """
    folder = Path(os.path.abspath(path)).parent
    ensure_writable(folder)
    free = shutil.disk_usage(folder).free
    needed = size + _SLACK
    if needed > free:
        raise NotWritableError(
            errno.ENOSPC,
            f"cannot save the model to {path}: it needs about {_mib(needed)} and {folder} has "
            f"{_mib(free)} free",
        )


_SLACK = 64 * 1024  # the folder's own blocks, and a margin
_BLOCK = 4096


def _on_disk(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def estimated_size(config: dict[str, Any]) -> int:
    """A generous estimate, in bytes, of the directory of a model of `config` (`to_dict()`).

    From the experts' shapes (one block-diagonal LSTM over K experts and a head per expert,
    float32), doubled for what the estimate cannot know before training (the features of the
    market context, a learned gate), plus the per-epoch history in metadata.json.
    """
    window, cluster, expert, train = (config[k] for k in ("window", "cluster", "expert", "train"))
    k = 6 if cluster["n_clusters"] == "auto" else int(cluster["n_clusters"])
    hidden, features = k * expert["hidden_size"], len(window["features"]) + 16
    outputs = window["horizon"] * (len(expert["levels"]) if expert["head"] == "quantile" else 1)
    lstm = sum(
        4 * hidden * ((features if i == 0 else hidden) + hidden + 2) for i in range(expert["num_layers"])
    )
    head = k * (expert["hidden_size"] + 1) * outputs
    epochs = train["epochs"] + train["fine_tune_epochs"]
    return 2 * 4 * (lstm + head) + 1024 * epochs + 256 * 1024


def recover_interrupted_saves(folder: Path) -> None:
    """Clean what a save killed midway left beside `folder`; put back an old model set aside.

    Leftovers of a save still running in another process are left alone.
    """
    prefix = f".{folder.name}{_SAVING}"
    for entry in sorted(folder.parent.glob(f"{prefix}*")):
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        if entry.name.endswith(".old") and not os.path.lexists(folder):
            os.rename(entry, folder)  # killed between its two renames: the old model comes back
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _refuse_foreign(folder: Path, target: Path) -> None:
    """A save replaces a model directory or fills an empty folder, never another folder."""
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise ValueError(f"cannot save the model to {target}: it is a file, not a folder")
    entries = [e.name for e in folder.iterdir()]
    if entries and not set(entries) & set(MODEL_FILES):
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise ValueError(
            f"cannot save the model to {target}: the folder holds other files ({shown}) and no "
            "model; use a new or empty folder"
        )


def _write_synced(path: Path, blob: bytes) -> None:
    with open(path, "wb") as out:
        out.write(blob)
        out.flush()
        os.fsync(out.fileno())


def _fsync(folder: Path) -> None:
    """Make a folder's entries (new files, renames) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _carry_extras(folder: Path, temp: Path) -> None:
    """Hard-link (else copy) the entries of the old directory that are not the model's files."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name in MODEL_FILES:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, temp / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, temp / entry.name)


def _link_or_copy(source, destination) -> None:
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)


def _swap(new: Path, folder: Path) -> None:
    """Put the folder `new` at `folder` in one step; the old one, if any, ends at `new`."""
    if not os.path.lexists(folder):
        os.rename(new, folder)
        return
    if _exchange(new, folder):
        return
    aside = new.with_name(new.name + ".old")
    os.rename(folder, aside)
    try:
        os.rename(new, folder)
    except OSError:
        os.rename(aside, folder)
        raise
    os.rename(aside, new)


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # glibc before 2.28, musl
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a file system that cannot
        return False
    raise OSError(code, os.strerror(code), str(b))


def read_model_dir(path: str | Path) -> ModelFiles:
    """Read a model directory on the CPU; refuse a format newer than this code reads.

    All files are read through one handle on the folder, so a save that replaces it meanwhile
    yields the old files or (read again) the new ones, never some of each.
    """
    path = Path(path)
    for attempt in range(3):
        try:
            blobs = _read_files(path)
            break
        except _Vanished as gone:
            if attempt == 2:
                raise FileNotFoundError(f"{path} is an incomplete model directory (no {gone})") from None
    metadata = json.loads(blobs["metadata.json"])
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was saved in model format {version!r}; this version of forecaster reads "
            f"format {FORMAT_VERSION}. Upgrade forecaster to load it."
        )
    if version < OLDEST_READABLE:
        raise ValueError(
            f"{path} was saved in model format {version} (point-forecast experts); this version of "
            f"forecaster reads formats {OLDEST_READABLE}-{FORMAT_VERSION} (quantile experts). Retrain the model "
            "(forecaster train, or python -m pipelines.train) to serve it with this version."
        )
    arrays = lambda name: dict(np.load(io.BytesIO(blobs[name])))  # noqa: E731
    return ModelFiles(
        config=json.loads(blobs["config.json"]),
        weights=torch.load(io.BytesIO(blobs["weights.pt"]), map_location="cpu", weights_only=True),
        fcm=arrays("fcm.npz"),
        scaler=arrays("scaler.npz"),
        calibration=arrays("calibration.npz"),
        metadata=metadata,
    )


class _Vanished(Exception):
    """A file of the folder went missing while it was read (a save replaced the folder)."""


def _read_files(path: Path) -> dict[str, bytes]:
    """The bytes of every model file, read through one open handle on the folder."""
    try:
        folder = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{path} is not a model directory (no metadata.json)") from None
    try:
        blobs = {}
        for name in ("metadata.json", *(n for n in MODEL_FILES if n != "metadata.json")):
            try:
                fd = os.open(name, os.O_RDONLY, dir_fd=folder)
            except FileNotFoundError:
                if not blobs and not (path / name).is_file():  # not a folder that was replaced
                    raise FileNotFoundError(f"{path} is not a model directory (no metadata.json)") from None
                raise _Vanished(name) from None
            with os.fdopen(fd, "rb") as file:
                blobs[name] = file.read()
        return blobs
    finally:
        os.close(folder)


def pack_calibrations(calibrations: dict[str, dict[str, np.ndarray]], gate: str) -> dict[str, np.ndarray]:
    """{rule: arrays} -> the arrays of calibration.npz: the gate's as they are, others prefixed."""
    packed = dict(calibrations[gate])
    for rule, arrays in calibrations.items():
        if rule != gate:
            packed.update({f"{rule}.{name}": a for name, a in arrays.items()})
    return packed


def unpack_calibrations(packed: dict[str, np.ndarray], gate: str) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of calibration.npz -> {rule: arrays}; an old file gives the gate's alone."""
    calibrations: dict[str, dict[str, np.ndarray]] = {gate: {}}
    for key, a in packed.items():
        rule, dot, name = key.partition(".")
        rule, name = (rule, name) if dot else (gate, key)
        calibrations.setdefault(rule, {})[name] = a
    return calibrations
