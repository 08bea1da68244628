"""Whole profiles end to end: the smoke profile rerun from scratch, the quick profile from its records.

The smoke run uses a temporary checkpoint, figures and build folder, so it trains and
computes everything afresh (only the decoded data caches are reused). Rerunning the quick
profile takes about an hour here, so by default its wall time is read from the run records
that its last ``make reproduce`` wrote (``figures/quick/results/run_*.json``);
``--quick`` reruns it instead.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from signed_saliency import paths, reproduce


def rerun(profile: str, device: str = "auto") -> float:
    """Seconds to run ``profile``'s whole chain with fresh checkpoints, figures and caches."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        previous = os.environ.get(paths.CHECKPOINTS_ENV)
        os.environ[paths.CHECKPOINTS_ENV] = str(folder / "checkpoints")  # the notebooks' kernels inherit it
        try:
            started = time.perf_counter()
            reproduce.run(profile, figures_dir=folder / "figures", build_dir=folder / "build", device=device)
            return time.perf_counter() - started
        finally:
            if previous is None:
                os.environ.pop(paths.CHECKPOINTS_ENV, None)
            else:
                os.environ[paths.CHECKPOINTS_ENV] = previous


def recorded(profile: str) -> tuple[float, list[str]] | None:
    """Total recorded wall seconds of ``profile``'s last run, and the device(s) it names, if every column has one."""
    records = [json.loads(p.read_text()) for p in sorted((paths.FIGURES_DIR / profile / "results").glob("run_*.json"))]
    if not records:
        return None
    return sum(r["wall_seconds"] for r in records), sorted({r.get("device", "unknown") for r in records})
