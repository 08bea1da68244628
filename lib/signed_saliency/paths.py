"""Every folder the project reads or writes, derived from one place.

Inside a checkout (this file under ``lib/signed_saliency/`` beside ``pyproject.toml``), paths
are resolved from the repository root, never from the working directory, so a notebook run by
papermill from ``build/`` and a test run from ``tests/`` see the same folders. Installed as a
package (a wheel in site-packages) there is no repository: the defaults are then per-user folders,
as torch hub and torchvision users expect (``$XDG_DATA_HOME/signed-saliency``, by default
``~/.local/share/signed-saliency``; ``~/Library/Application Support`` on macOS, ``%LOCALAPPDATA%``
on Windows), and ``describe()`` says which. Three can be moved by environment variables: the data
root (``SIGNED_SALIENCY_DATA``), the checkpoints (``SIGNED_SALIENCY_CHECKPOINTS``) and the
offline dataset archives (``SIGNED_SALIENCY_ARCHIVES``). Functions take an explicit argument
first, then the variable, then the default.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parents[1]


def results_dir(figures_dir: str | Path) -> Path:
    """Where a profile's figures folder keeps its JSON records (``figures/<profile>/results/``)."""
    return Path(figures_dir) / "results"


def in_checkout() -> bool:
    """Whether the package runs from a source checkout (``lib/signed_saliency`` beside ``pyproject.toml``)."""
    return _PACKAGE.parent.name == "lib" and (_CHECKOUT / "pyproject.toml").is_file()


def user_dir() -> Path:
    """The per-user folder an installed package keeps its data, checkpoints and outputs in."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "signed-saliency"


REPO_ROOT = _CHECKOUT if in_checkout() else user_dir()
FIGURES_DIR = REPO_ROOT / "figures"
BUILD_DIR = REPO_ROOT / "build"
NOTEBOOKS_DIR = _CHECKOUT / "notebooks"  # only a checkout has the notebook chain

DATA_ENV = "SIGNED_SALIENCY_DATA"
CHECKPOINTS_ENV = "SIGNED_SALIENCY_CHECKPOINTS"
ARCHIVES_ENV = "SIGNED_SALIENCY_ARCHIVES"


def describe() -> str:
    """Where the defaults point, in words, for messages: the checkout or the per-user folder."""
    if in_checkout():
        return f"the checkout {REPO_ROOT}"
    return f"the per-user folder {REPO_ROOT} (installed package: no checkout; set {DATA_ENV} to move the data)"


def _resolve(explicit: str | os.PathLike | None, env: str, default: Path) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser().resolve()
    return default


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$SIGNED_SALIENCY_DATA``, else ``data/`` (of the checkout or
    the per-user folder)."""
    return _resolve(root, DATA_ENV, REPO_ROOT / "data")


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Where decoded uint8 tensor caches live: ``<data root>/cache``."""
    return data_root(root) / "cache"


def checkpoints_dir(directory: str | os.PathLike | None = None) -> Path:
    """Trained models: ``directory``, else ``$SIGNED_SALIENCY_CHECKPOINTS``, else ``checkpoints/`` (of the
    checkout or the per-user folder)."""
    return _resolve(directory, CHECKPOINTS_ENV, REPO_ROOT / "checkpoints")


def archives_dir(directory: str | os.PathLike | None = None) -> Path:
    """The offline dataset archives and ``materialize.py``: ``../shared/datasets`` beside a checkout,
    ``archives/`` in the per-user folder of an installed package."""
    default = REPO_ROOT.parent / "shared" / "datasets" if in_checkout() else REPO_ROOT / "archives"
    return _resolve(directory, ARCHIVES_ENV, default)
