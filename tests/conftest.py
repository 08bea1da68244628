"""Shared test set-up: headless matplotlib, a fixed thread count, and the data-root check."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from signed_saliency import paths  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_root():
    """The data root with the real datasets; `make test` materializes it first."""
    root = paths.data_root()
    if not ((root / "cifar10").is_dir() or (root / "cifar-10-batches-py").is_dir()):
        pytest.fail(
            f"no CIFAR-10 in {root}: run `make data` (offline archives) or set {paths.DATA_ENV}; "
            "deselect these tests with -m 'not data'"
        )
    return root
