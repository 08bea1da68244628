"""Which floating-point kernels a number comes from: pinned for the workflow's jobs, and recorded beside it.

PyTorch (ATen), oneDNN and MKL each pick their kernels by the CPU's instruction set when torch is
imported, and AVX-512 kernels add in another order than AVX2 ones: the same code, seed and torch give
other weights on another x86-64 CPU, and the thread count changes them too. The ``reproducible`` mode
(the workflow's default) caps all three at AVX2, which every x86-64 CPU the project runs on has
(``PINNED``: ``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, and ``MKL_CBWR``, since this torch build's
BLAS is MKL: ``torch.__config__.show()`` says ``BLAS_INFO=mkl``); ``fast`` leaves the choice to the
libraries. The variables act only if set before torch is imported, so ``apply`` writes them into an
environment that jobs are started from, and ``check_active`` refuses a process whose torch did not get
them. ``describe`` is what every training and run record notes: the mode, the CPU and its instruction
sets, the kernels torch chose, the thread count and the library versions.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import MutableMapping
from pathlib import Path

MODES = ("reproducible", "fast")
DEFAULT_MODE = "reproducible"
MODE_ENV = "SIGNED_SALIENCY_NUMERICS"
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
FLAGS = {"avx2": "avx2", "avx512f": "avx512f", "amx": "amx_tile"}  # what a record names: the /proc/cpuinfo flag


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"numerics must be one of {MODES}, got {mode!r}: 'reproducible' pins the kernels to AVX2 so that any "
            "x86-64 machine gives the same bits, 'fast' lets the libraries choose"
        )
    return mode


def apply(mode: str, environ: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set ``mode``'s variables in ``environ`` (``os.environ`` by default), for processes started from it."""
    environ = os.environ if environ is None else environ
    environ[MODE_ENV] = check_mode(mode)
    for name, value in PINNED.items():
        if mode == "reproducible":
            environ[name] = value
        else:
            environ.pop(name, None)
    return environ


def mode(environ: MutableMapping[str, str] | None = None) -> str:
    """The mode a process runs under: ``reproducible`` exactly when every pinned variable has its value."""
    environ = os.environ if environ is None else environ
    return "reproducible" if all(environ.get(k) == v for k, v in PINNED.items()) else "fast"


def cpu() -> dict:
    """The CPU's model name and which of the instruction sets that choose kernels it has."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", text, re.M).group(1).split()) if "flags" in text else set()
    return {"cpu": model.group(1).strip() if model else platform.processor() or platform.machine(),
            **{name: flag in flags for name, flag in FLAGS.items()}}  # fmt: skip


def check_active() -> None:
    """Refuse a ``reproducible`` process whose torch chose other kernels (it was imported before ``apply``)."""
    import torch

    if mode() == "reproducible" and cpu()["avx2"] and torch.backends.cpu.get_cpu_capability() != "AVX2":
        raise RuntimeError(f"numerics 'reproducible' asks for AVX2 kernels but torch runs "
                           f"{torch.backends.cpu.get_cpu_capability()}: torch was imported before the variables "
                           f"{sorted(PINNED)} were set; set them in the environment that starts Python")  # fmt: skip


def describe(threads: int | None = None) -> dict:
    """The numerics of this process, for a record: mode, CPU, kernels, threads, versions."""
    import torch

    onednn = re.search(r"MKL-DNN v([\d.]+)", torch.__config__.show())
    return {"mode": mode(), **cpu(), "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads() if threads is None else threads, "torch": torch.__version__,
            "onednn": onednn.group(1) if onednn else None}  # fmt: skip


def summary(record: dict | None) -> str:
    """One record's numerics in a few words: ``reproducible, AVX2 kernels, 2 threads, AMD EPYC (AVX-512)``."""
    if not record:
        return "not recorded"
    extensions = [label for key, label in (("avx512f", "AVX-512"), ("amx", "AMX")) if record.get(key)]
    machine = record["cpu"] + (f" ({', '.join(extensions)})" if extensions else " (AVX2, no AVX-512)")
    threads = f"{record['threads']} thread" + "s" * (record["threads"] != 1)
    return f"{record['mode']}, {record['capability']} kernels, {threads}, {machine}"


def weights_sha256(model) -> str:
    """The sha256 of a model's weights, parameter by parameter in ``state_dict`` order: equal exactly when
    every bit of every weight is."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
