"""Temporary files that a killed process cannot leave behind for good.

A file is written under a temporary name beside its target and renamed into place, so a
reader never sees half of it. A process killed with ``kill -9`` skips its own clean-up; its
temporary stays. Each temporary here is held under an exclusive ``flock`` by the process that
writes it, for as long as it writes. The kernel drops the lock when that process dies, however
it dies, so the next run that writes into the same directory removes every temporary of this
kind whose lock it can take: exactly those whose writer is gone, whatever process ids were
reused since, and never one another live process is still writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TEMPORARY_SUFFIX", "held_lock", "locked_temporary", "remove_stale_temporaries"]

TEMPORARY_SUFFIX = ".conveyor.tmp"
"""How every temporary made here ends: ``.<target name>.<random>.conveyor.tmp``."""


@contextlib.contextmanager
def held_lock(path: Path, *, create: bool) -> Iterator[bool]:
    """Try to hold an exclusive ``flock`` on ``path`` for the block; yield whether it was taken.

    Parameters
    ----------
    path : Path
        The file to lock.
    create : bool
        Create the file when missing; otherwise a missing file yields ``False``.
    """
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked_temporary(target: Path) -> Iterator[Path]:
    """A new temporary path beside ``target``, locked by this process for the block.

    Write it, then ``os.replace`` it onto ``target`` inside the block; whatever is left of it
    is removed at the end of the block, and by :func:`remove_stale_temporaries` if this
    process is killed first.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with locked_temporary(target) as tmp:
    ...     _ = tmp.write_text("done")
    ...     os.replace(tmp, target)
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('done', ['out.txt'])
    """
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.close(fd)


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporaries in ``directory`` whose writer is gone; return what was removed."""
    removed = []
    for tmp in sorted(Path(directory).glob(f".*{TEMPORARY_SUFFIX}")):
        with held_lock(tmp, create=False) as stale:
            if stale:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                    removed.append(tmp)
    return removed
