"""Atomic writes: a file is either absent, the old version, or the complete new one.

Every producer in the project writes through these helpers: the bytes go to a temporary
file in the destination folder, which is flushed, synced and then renamed over the target
(``os.replace`` is atomic on one file system). An interrupted run leaves no half-written
checkpoint, cache, figure or table, only a stray ``.tmp`` file that the next run overwrites.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name ends in the target's suffix: some writers (papermill, savefig) go by it.
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(handle)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(target: str | os.PathLike, write: Callable[[IO[Any]], None], mode: str = "w") -> Path:
    """Call ``write(file)`` on a temporary file opened with ``mode``, then rename it onto ``target``."""
    with atomic_path(target) as tmp, open(tmp, mode) as file:
        write(file)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write(target, lambda f: f.write(text))


def atomic_torch_save(obj: Any, target: str | os.PathLike) -> Path:
    """``torch.save`` to ``target`` atomically."""
    return atomic_write(target, lambda f: torch.save(obj, f), mode="wb")
