"""Every folder the project reads or writes, derived from one place.

Paths are resolved from this file's location, never from the working directory, so a
notebook run by papermill from ``build/`` and a test run from ``tests/`` see the same
folders. Three can be moved by environment variables: the data root
(``SIGNED_SALIENCY_DATA``), the checkpoints (``SIGNED_SALIENCY_CHECKPOINTS``) and the
offline dataset archives (``SIGNED_SALIENCY_ARCHIVES``). Functions take an explicit
argument first, then the variable, then the default.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_DIR = REPO_ROOT / "figures"
BUILD_DIR = REPO_ROOT / "build"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"

DATA_ENV = "SIGNED_SALIENCY_DATA"
CHECKPOINTS_ENV = "SIGNED_SALIENCY_CHECKPOINTS"
ARCHIVES_ENV = "SIGNED_SALIENCY_ARCHIVES"


def _resolve(explicit: str | os.PathLike | None, env: str, default: Path) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser().resolve()
    return default


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$SIGNED_SALIENCY_DATA``, else ``data/``."""
    return _resolve(root, DATA_ENV, REPO_ROOT / "data")


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Where decoded uint8 tensor caches live: ``<data root>/cache``."""
    return data_root(root) / "cache"


def checkpoints_dir(directory: str | os.PathLike | None = None) -> Path:
    """Trained models: ``directory``, else ``$SIGNED_SALIENCY_CHECKPOINTS``, else ``checkpoints/``."""
    return _resolve(directory, CHECKPOINTS_ENV, REPO_ROOT / "checkpoints")


def archives_dir(directory: str | os.PathLike | None = None) -> Path:
    """The offline dataset archives and ``materialize.py``: ``../shared/datasets`` by default."""
    return _resolve(directory, ARCHIVES_ENV, REPO_ROOT.parent / "shared" / "datasets")
