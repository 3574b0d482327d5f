"""Checks on the local data folder, done before a job starts its work rather than after it.

A job that trains for an hour and then cannot save, or that downloads a universe into a
read-only folder, should fail in its first second with one line naming the folder and why.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

# What an errno means for someone who has to fix the folder.
_REASONS = {
    errno.EACCES: "permission denied (read-only folder?)",
    errno.EPERM: "permission denied (read-only folder?)",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "it is a file, not a folder",
}


class NotWritableError(OSError):
    """A folder the job must write to cannot be written; the message names it and the cause."""

    def __str__(self) -> str:  # the one line, without OSError's "[Errno 28]" prefix
        return self.strerror


def ensure_writable(path: str | Path) -> Path:
    """Create `path` if needed and prove it can be written (a one-byte temp file); return it.

    Raises `NotWritableError`, e.g. "cannot write to /data/prices: disk full". Call it at the
    start of every job that writes under the data folder.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # Writing one byte, not just creating the file: a full disk still has inodes.
        fd, name = tempfile.mkstemp(prefix=".write-check-", dir=path)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        reason = _REASONS.get(exc.errno, exc.strerror or str(exc))
        raise NotWritableError(exc.errno, f"cannot write to {path}: {reason}") from exc
    return path
