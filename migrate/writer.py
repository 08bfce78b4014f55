"""Write results without ever leaving a half-written file.

Every write goes to a temporary file in the destination's own directory and
is renamed over the destination (atomic on POSIX), keeping the original's mode
bits. In place, a symlink is written through to the file it points to, so the
link stays a link.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Optional

TEMP_SUFFIX = ".tf-migrate.tmp"


def atomic_write(path: Path, data: bytes, mode: Optional[int] = None) -> None:
    path = Path(path)
    try:
        existing = path.stat()
    except FileNotFoundError:
        existing = None
    if mode is None:
        mode = stat.S_IMODE(existing.st_mode) if existing else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if existing is not None:
            _keep_owner(tmp, existing)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _keep_owner(tmp: str, original: os.stat_result) -> None:
    """Give the new file the replaced file's owner and group (root rewriting a user's file).

    Best effort: an unprivileged user can only give away nothing, and then the file
    simply belongs to them, as any editor's save would make it.
    """
    if (original.st_uid, original.st_gid) == (os.getuid(), os.getgid()) or not hasattr(os, "chown"):
        return
    try:
        os.chown(tmp, original.st_uid, original.st_gid)
    except OSError:
        pass


def write_in_place(path: Path, data: bytes) -> None:
    atomic_write(Path(os.path.realpath(path)), data)


def copy_file(source: Path, dest: Path) -> None:
    """Byte-for-byte copy with mode bits and times, atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def copy_symlink(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dest):
        if dest.is_dir() and not dest.is_symlink():
            raise IsADirectoryError(f"{dest} exists and is a directory")
        os.unlink(dest)
    os.symlink(os.readlink(source), dest)


def make_dir(source: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        os.chmod(dest, stat.S_IMODE(source.stat().st_mode) | stat.S_IWUSR | stat.S_IXUSR)
    except OSError:
        pass


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
