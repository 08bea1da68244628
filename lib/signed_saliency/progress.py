"""Progress bars that both a reader in JupyterLab and a batch job in a terminal can see.

Every long loop of the library (epochs, map and deletion chunks, decoding) takes its bar from
``progress``. In a notebook or a terminal that is ``tqdm.auto``'s bar. A notebook executed by a
workflow job runs in a kernel whose output only reaches the executed notebook, so the job sets
``$SIGNED_SALIENCY_PROGRESS`` to a log file and a label: each bar then appends one plain line per
update (at most every ``INTERVAL`` seconds, with tqdm's rate and estimate of the time left) to that
file, and the job (``follow``) prints the new lines to its own stderr, prefixed with the label, so
parallel jobs interleave whole lines instead of overwriting each other's bars.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

PROGRESS_ENV = "SIGNED_SALIENCY_PROGRESS"
INTERVAL = 15.0  # seconds between two lines of one bar in a job's log
AFTER_PASSES = 200  # backward passes in one call from which a bar is shown unasked


class _Lines:
    """A file-like object for tqdm that turns its carriage-return redraws into appended whole lines."""

    def __init__(self, path: str):
        self.path = path
        self.last = ""

    def write(self, text: str) -> None:
        for piece in text.replace("\r", "\n").split("\n"):
            line = piece.strip()
            if line and line != self.last:
                self.last = line
                with open(self.path, "a") as log:
                    log.write(line + "\n")

    def flush(self) -> None:
        pass


def progress(iterable=None, **options):
    """A tqdm bar over ``iterable`` (tqdm's options): ``tqdm.auto`` unless a workflow job asked for lines."""
    target = os.environ.get(PROGRESS_ENV)
    if not target:
        from tqdm.auto import tqdm

        return tqdm(iterable, **options)
    from tqdm.std import tqdm

    return tqdm(iterable, **{"file": _Lines(target), "mininterval": INTERVAL, "ncols": 100, "ascii": True, **options})


def seen() -> bool:
    """Whether a bar would be seen: a terminal, a notebook kernel or a workflow job's log."""
    return bool(os.environ.get(PROGRESS_ENV)) or sys.stderr.isatty() or "ipykernel" in sys.modules


def wanted(asked: bool | None, passes: int) -> bool:
    """Whether to show a bar: as ``asked``, or (None) for calls of at least ``AFTER_PASSES`` passes where seen."""
    if asked is not None:
        return bool(asked)
    return passes >= AFTER_PASSES and seen()


@contextlib.contextmanager
def follow(log: Path, label: str, stream=None, poll: float = 1.0):
    """While the block runs, the kernels it starts write their bars to ``log`` and this prints each new line
    to ``stream`` (stderr) as ``[label] line``; the last lines are printed when the block ends."""
    stream = stream or sys.stderr
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    stop = threading.Event()

    def tail():
        with open(log) as source:
            while True:
                finished = stop.is_set()
                for line in source.readlines():
                    stream.write(f"[{label}] {line}")
                stream.flush()
                if finished:
                    return
                stop.wait(poll)

    previous = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = str(log)
    thread = threading.Thread(target=tail, daemon=True)
    thread.start()
    try:
        yield log
    finally:
        stop.set()
        thread.join()
        if previous is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous
