"""The clock: median wall time of repeated calls after a warm-up, and the machine's description.

CUDA work is asynchronous, so every timed call ends with a device synchronisation. The
median, not the mean, is reported because this shared 2-core machine has occasional slow
outliers; ratios between implementations are what the results stand on, so the rows that compare
implementations time them in turn within each repetition (``interleaved_medians``).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from signed_saliency.training import describe_device


def median_seconds(function: Callable[[], object], repeats: int = 3, warmup: int = 1, device=None) -> float:
    """Median wall time of ``repeats`` calls of ``function`` after ``warmup`` untimed ones."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0, got {repeats} and {warmup}")

    def sync():
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        function()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved_medians(
    functions: dict[str, Callable[[], object]], repeats: int = 3, warmup: int = 1, device=None
) -> dict[str, float]:
    """Median wall time of each function, timed in turn within every repetition after ``warmup`` untimed
    rounds, so that the machine's slow spells fall on all of them alike and their ratios stay fair."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0, got {repeats} and {warmup}")
    times = {name: [] for name in functions}
    for round_ in range(warmup + repeats):
        for name, function in functions.items():
            seconds = median_seconds(function, 1, 0, device)
            if round_ >= warmup:
                times[name].append(seconds)
    return {name: statistics.median(values) for name, values in times.items()}


def machine(device: str | torch.device) -> str:
    """One line naming the processor or GPU, the cores, torch and Python."""
    return (f"{describe_device(device)}; {os.cpu_count()} logical CPU cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")  # fmt: skip
