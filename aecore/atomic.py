"""File helpers: atomic writes (a reader sees the old file or the new one, never half of one)
and bounded reads (never more than a limit in memory, whatever a file holds)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator


class WriteError(OSError):
    """A file could not be written; the previous version (if any) is untouched."""


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary file next to `path` for binary writing; on success it replaces
    `path` in one rename, on any error it is removed and `path` is left as it was."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
        raise


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, not per write
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def read_bounded(source: str | os.PathLike | bytes, limit: int, fail, what: str) -> bytes:
    """The bytes of `source` (a path, or bytes already in memory), never more than `limit`
    read: a larger one raises fail("... over the N MB limit for `what`"), an unreadable one
    fail("cannot read the file (why)"). `fail` makes the exception from a reason."""
    if isinstance(source, bytes):
        data = source
    else:
        try:
            with open(source, "rb") as f:
                data = f.read(limit + 1)
        except OSError as e:
            raise fail(f"cannot read the file ({e.strerror or e})") from e
    if len(data) > limit:
        raise fail(f"{'over' if isinstance(source, bytes) else 'the file is over'} the "
                   f"{limit // 2**20} MB limit for {what}")
    return data
