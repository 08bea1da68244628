"""Atomic writes: a file is either absent, the old version, or the complete new one.

Every producer in the project writes through these helpers: the bytes go to a temporary
file in the destination folder, which is flushed, synced and then renamed over the target
(``os.replace`` is atomic on one file system). An interrupted run leaves no half-written
checkpoint, cache, figure or table. A run killed mid-write (no ``finally`` runs) leaves a hidden
``.<name>.<pid>.tmp<suffix>`` file; the next write of the same target removes the temporary files
of writers that are no longer running, and ``is_temporary`` tells listings to skip them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of ``atomic_path``'s temporary files (hidden, ``.tmp`` before the suffix)."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name


def _remove_stale_temporaries(target: Path) -> None:
    for stale in target.parent.glob(f".{target.name}.*.tmp{target.suffix}"):
        pid = stale.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            stale.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    # The temporary name ends in the target's suffix: some writers (papermill, savefig) go by it.
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=f".tmp{target.suffix}",
                                   dir=target.parent)  # fmt: skip
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
    import torch  # here, not at the top: a workflow job that only runs a notebook never needs torch

    return atomic_write(target, lambda f: torch.save(obj, f), mode="wb")
