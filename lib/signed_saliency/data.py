"""CIFAR-10 and Imagenette as uint8 tensors, decoded once and cached.

``load_dataset(name, split)`` returns an ``ImageSet``: all images of a split as one uint8
tensor (N, 3, H, W) plus labels, class names, and where the pixels came from. Images become
floats in [0, 1] only per batch (``to_float``, the same values as torchvision's
``ToTensor``), so 50 epochs never decode a JPEG twice. Sources, in the order of
PROTOCOL §3: torchvision's own files in the data root (downloaded when no local copy
exists), then the offline copies that ``shared/datasets/materialize.py`` writes. Decoded
image folders are cached in ``<data root>/cache/`` under a key that changes whenever the
files do; expected image counts come from the offline copy's ``MANIFEST.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from signed_saliency import paths
from signed_saliency.io import atomic_torch_save

DATASETS = ("cifar10", "imagenette")
SPLITS = {"cifar10": ("train", "test"), "imagenette": ("train", "val")}
TEST_SPLIT = {"cifar10": "test", "imagenette": "val"}
IMAGE_SIZE = {"cifar10": 32, "imagenette": 224}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
IMAGENETTE_NAMES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
GRAYSCALE_MODES = ("drop", "convert")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
SOURCE_NAMES = {
    "cifar10-lossless": "offline lossless",
    "cifar10": "offline JPEG q75 (lossy)",
    "imagenette": "offline 160px JPEG q90",
}


class DataNotFoundError(FileNotFoundError):
    """A dataset is neither in the data root nor downloadable; the message says how to fill it."""


class StaleDataWarning(UserWarning):
    """The data root was filled from older archives than MANIFEST.json lists; ``make data`` refreshes it."""


@dataclass(frozen=True)
class ImageSet:
    """One split of a dataset held in memory.

    ``images`` is uint8 (N, 3, H, W), ``labels`` int64 (N,), ``classes`` the folder names in
    class-index order (CIFAR-10 names or Imagenette WordNet ids), ``class_names`` readable
    names, ``source`` which copy the pixels came from, ``grayscale_count`` how many
    greyscale images the split held (dropped or converted, per ``grayscale``).
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    grayscale: str = "drop"
    grayscale_count: int = 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(IMAGENETTE_NAMES.get(c, c) for c in self.classes)

    def subset(self, n: int | None, seed: int = 0) -> ImageSet:
        """A seeded random subset of ``n`` images (all of them, in order, when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"subset size must be positive, got {n}")
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(self), generator=generator)[:n].sort().values
        return ImageSet(
            self.name, self.split, self.images[index], self.labels[index], self.classes,
            self.source, self.grayscale, self.grayscale_count,
        )  # fmt: skip

    def batch(self, index: torch.Tensor | slice, device: str | torch.device = "cpu") -> torch.Tensor:
        """Images at ``index`` as floats in [0, 1] on ``device``."""
        return to_float(self.images[index].to(device, non_blocking=True))


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1], exactly as ``ToTensor`` computes them."""
    return images.float().div_(255)


def load_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    *,
    grayscale: str = "drop",
    source: str = "auto",
    download: bool = True,
) -> ImageSet:
    """Load one split of ``"cifar10"`` or ``"imagenette"`` as an ``ImageSet``.

    Args:
        name: ``"cifar10"`` or ``"imagenette"``.
        split: ``"train"`` or ``"test"`` (CIFAR-10), ``"train"`` or ``"val"`` (Imagenette);
            ``"test"`` is accepted for Imagenette's val split.
        root: data root; default ``$SIGNED_SALIENCY_DATA`` or ``data/``.
        grayscale: ``"drop"`` greyscale images (the authors' choice) or ``"convert"`` them to
            RGB (Imagenette has some; CIFAR-10 none).
        source: ``"auto"`` (PROTOCOL §3 order), ``"torchvision"``, ``"lossless"``
            (``cifar10-lossless/``) or ``"offline"`` (``cifar10/`` or ``imagenette/``).
        download: when no local copy exists, fetch torchvision's files into the root.

    Raises:
        ValueError: an unknown name, split, grayscale mode or source.
        DataNotFoundError: nothing to load and no download possible; the message names the
            folders looked for and both ways to fill them.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {DATASETS}")
    if name == "imagenette" and split == "test":
        split = "val"
    if split not in SPLITS[name]:
        raise ValueError(f"unknown split {split!r} for {name}: choose one of {SPLITS[name]}")
    if grayscale not in GRAYSCALE_MODES:
        raise ValueError(f"grayscale must be one of {GRAYSCALE_MODES}, got {grayscale!r}")
    if source not in ("auto", "torchvision", "lossless", "offline"):
        raise ValueError(f"unknown source {source!r}: auto, torchvision, lossless or offline")
    root = paths.data_root(root)
    if name == "cifar10":
        return _load_cifar10(split, root, source, download)
    return _load_imagenette(split, root, grayscale, source, download)


def local_copy(name: str, root: str | os.PathLike | None = None) -> tuple[str, str | None] | None:
    """Which copy ``load_dataset(name, ..., source="auto")`` reads from the data root, found without
    decoding anything: ``(source, offline folder)`` (the folder is None for torchvision's own files),
    or None when the data root holds no copy (the loader would then download).
    """
    root = paths.data_root(root)
    choice = _auto_choice(name, root)
    if choice == "torchvision":
        return "torchvision (official)", None
    if choice is None:
        return None
    folder = "cifar10-lossless" if choice == "lossless" else name
    return SOURCE_NAMES[folder], folder


def missing_data(names, root: str | os.PathLike | None = None) -> str | None:
    """None when the data root holds a copy of every dataset in ``names`` (checked without decoding anything),
    else one line: which are missing, where it looked, which offline archives would fill it, and the command."""
    root = paths.data_root(root)
    missing = [name for name in dict.fromkeys(names) if local_copy(name, root) is None]
    if not missing:
        return None
    archives, materialize = paths.archives_dir(), paths.archives_dir() / "materialize.py"
    manifest = _manifest() or {}
    expected = sorted(a for a, entry in manifest.get("archives", {}).items()
                      if str(entry.get("dataset_dir", "")).split("-")[0] in missing)  # fmt: skip
    if materialize.exists():
        fill = f"fill it with `make data` (that is: python {materialize} {root}"
        fill += f", from {', '.join(expected)})" if expected else ")"
    else:
        fill = (f"the offline archives are not in {archives} either (no materialize.py there): set "
                f"{paths.ARCHIVES_ENV} to the folder that holds MANIFEST.json, materialize.py and the archives, then "
                "run `make data`")  # fmt: skip
    return (
        f"no {' or '.join(missing)} in the data root {root}: {fill}; or set {paths.DATA_ENV} to a data root "
        "that holds them, or pass --download to let torchvision fetch the official files (online only)"
    )


def _auto_choice(name: str, root: Path) -> str | None:
    """PROTOCOL §3's order: torchvision's files, then (CIFAR-10) both lossless splits, then the offline copy."""
    if name == "cifar10":
        if (root / "cifar-10-batches-py").is_dir():
            return "torchvision"
        if all((root / "cifar10-lossless" / s).is_dir() for s in SPLITS["cifar10"]):
            return "lossless"
        return "offline" if any((root / "cifar10" / s).is_dir() for s in SPLITS["cifar10"]) else None
    if any((root / "imagenette2" / s).is_dir() for s in SPLITS["imagenette"]):
        return "torchvision"
    return "offline" if any((root / "imagenette" / s).is_dir() for s in SPLITS["imagenette"]) else None


def _load_cifar10(split: str, root: Path, source: str, download: bool) -> ImageSet:
    torchvision_dir = root / "cifar-10-batches-py"
    lossless = root / "cifar10-lossless"
    offline = root / "cifar10"
    chosen = source if source != "auto" else _auto_choice("cifar10", root)
    if chosen == "torchvision":
        if source == "torchvision" and not torchvision_dir.is_dir():
            try:
                with _removed_on_failure(root, ["cifar-10-batches-py", "cifar-10-python.tar.gz"]):
                    return _cifar10_torchvision(split, root, download=download)
            except Exception as error:  # noqa: BLE001 - offline, a proxy, a checksum: tell the user how to fill it
                raise _not_found("CIFAR-10", root, [torchvision_dir], error if download else None) from error
        return _cifar10_torchvision(split, root, download=False)
    if chosen == "lossless":
        return _decode_folder("cifar10", split, lossless / split, root, SOURCE_NAMES["cifar10-lossless"])
    if chosen == "offline" and (source == "offline" or (offline / split).is_dir()):
        if source == "auto" and (lossless / "test").is_dir() and expected_count("cifar10-lossless", "train"):
            warnings.warn(
                f"{lossless} holds only the test split, so CIFAR-10 loads from the JPEG copy {offline}; "
                f"the archives now include the lossless train split: run `make data` (or python "
                f"{paths.archives_dir() / 'materialize.py'} {root}) to use the official pixels",
                StaleDataWarning,
                stacklevel=3,
            )
        return _decode_folder("cifar10", split, offline / split, root, SOURCE_NAMES["cifar10"])
    if download:
        try:
            with _removed_on_failure(root, ["cifar-10-batches-py", "cifar-10-python.tar.gz"]):
                return _cifar10_torchvision(split, root, download=True)
        except Exception as error:  # noqa: BLE001 - any failure means: tell the user how to fill it
            raise _not_found("CIFAR-10", root, [torchvision_dir, lossless, offline / split], error) from error
    raise _not_found("CIFAR-10", root, [torchvision_dir, lossless, offline / split], None)


def _cifar10_torchvision(split: str, root: Path, download: bool) -> ImageSet:
    from torchvision.datasets import CIFAR10

    dataset = CIFAR10(str(root), train=split == "train", download=download)
    images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))
    labels = torch.tensor(dataset.targets, dtype=torch.int64)
    return ImageSet("cifar10", split, images, labels, tuple(dataset.classes), "torchvision (official)")


def _load_imagenette(split: str, root: Path, grayscale: str, source: str, download: bool) -> ImageSet:
    torchvision_dir = root / "imagenette2" / split
    offline = root / "imagenette" / split
    if source == "torchvision" or (source == "auto" and torchvision_dir.is_dir()):
        if not torchvision_dir.is_dir():
            _imagenette_download(split, root, [torchvision_dir])
        return _decode_folder("imagenette", split, torchvision_dir, root, "torchvision (official)", grayscale)
    if source == "lossless":
        raise ValueError("Imagenette has no lossless copy: use source='auto', 'torchvision' or 'offline'")
    if source == "offline" or (source == "auto" and offline.is_dir()):
        return _decode_folder("imagenette", split, offline, root, SOURCE_NAMES["imagenette"], grayscale)
    if not download:
        raise _not_found("Imagenette", root, [torchvision_dir, offline], None)
    _imagenette_download(split, root, [torchvision_dir, offline])
    return _decode_folder("imagenette", split, torchvision_dir, root, "torchvision (official)", grayscale)


def _imagenette_download(split: str, root: Path, looked_for: list[Path]) -> None:
    from torchvision.datasets import Imagenette

    try:
        with _removed_on_failure(root, ["imagenette2", "imagenette2.tgz"]):
            Imagenette(str(root), split=split, size="full", download=True)
    except Exception as error:  # noqa: BLE001
        raise _not_found("Imagenette", root, looked_for, error) from error


@contextmanager
def _removed_on_failure(root: Path, names: list[str]):
    """Remove what a failed download created under ``root`` (of ``names``), never what was there before."""
    existed = {name for name in names if (root / name).exists()}
    try:
        yield
    except BaseException:
        for name in set(names) - existed:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink(missing_ok=True)
        raise


def _not_found(title: str, root: Path, looked_for: list[Path], error: Exception | None) -> DataNotFoundError:
    folders = "\n".join(f"  - {p}" for p in looked_for)
    reason = f"the download failed ({type(error).__name__}: {error})" if error else "nothing was downloaded"
    materialize = paths.archives_dir() / "materialize.py"
    return DataNotFoundError(
        f"{title} not found in the data root {root}; looked for:\n{folders}\n"
        f"and {reason}. Fill the data root either way:\n"
        f"  - offline: python {materialize} {root}\n"
        f"  - online: load with download=True (torchvision fetches the official files into {root})\n"
        f"or point {paths.DATA_ENV} at a data root that already holds the data (the defaults are in "
        f"{paths.describe()})."
    )


def _list_folder(folder: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir()))
    if not classes:
        raise DataNotFoundError(f"{folder} holds no class folders: the copy is empty or broken")
    files = [
        (path, label)
        for label, cls in enumerate(classes)
        for path in sorted((folder / cls).iterdir())
        if path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return classes, files


def _decode_folder(name: str, split: str, folder: Path, root: Path, source: str, grayscale: str = "drop") -> ImageSet:
    if not folder.is_dir():
        raise _not_found({"cifar10": "CIFAR-10", "imagenette": "Imagenette"}[name] + f" {split} ({source})", root,
                         [folder], None)  # fmt: skip
    classes, files = _list_folder(folder)
    _check_expected_count(folder, len(files))
    size = IMAGE_SIZE[name]
    fingerprint = hashlib.sha1()
    for path, _ in files:
        fingerprint.update(f"{path.relative_to(folder)}:{path.stat().st_size};".encode())
    key = f"{name}-{split}-{folder.parent.name}-{size}px-{grayscale}-{fingerprint.hexdigest()[:12]}"
    cache_file = paths.cache_dir(root) / f"{key}.pt"
    if cache_file.exists():
        cached = torch.load(cache_file, weights_only=True)
        return ImageSet(name, split, cached["images"], cached["labels"], classes, source, grayscale,
                        int(cached["grayscale_count"]))  # fmt: skip

    images, labels, grayscale_count = _decode_files(files, size, grayscale, f"{name}/{split}")
    atomic_torch_save(
        {"images": images, "labels": labels, "grayscale_count": torch.tensor(grayscale_count)}, cache_file
    )
    return ImageSet(name, split, images, labels, classes, source, grayscale, grayscale_count)


def _decode_files(
    files: list[tuple[Path, int]], size: int, grayscale: str, what: str
) -> tuple[torch.Tensor, torch.Tensor, int]:
    from torchvision.transforms.functional import resize

    from signed_saliency.progress import progress, seen

    def decode(item: tuple[Path, int]) -> tuple[np.ndarray | None, bool]:
        with Image.open(item[0]) as image:
            is_gray = image.mode in ("L", "LA", "I", "I;16", "1")
            if is_gray and grayscale == "drop":
                return None, True
            image = image.convert("RGB")
            if image.size != (size, size):
                # torchvision's Resize((size, size)) on a PIL image: plain resize, aspect not kept.
                image = resize(image, [size, size])
            return np.asarray(image, dtype=np.uint8), is_gray

    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        decoded = list(
            progress(pool.map(decode, files, chunksize=64), total=len(files), desc=f"decoding {what}",
                     disable=not seen())
        )  # fmt: skip
    kept = [(array, label) for (array, _), (_, label) in zip(decoded, files) if array is not None]
    grayscale_count = sum(is_gray for _, is_gray in decoded)
    images = torch.from_numpy(np.stack([a for a, _ in kept]).transpose(0, 3, 1, 2).copy())
    labels = torch.tensor([label for _, label in kept], dtype=torch.int64)
    return images, labels, grayscale_count


def _manifest() -> dict | None:
    manifest_file = paths.archives_dir() / "MANIFEST.json"
    return json.loads(manifest_file.read_text()) if manifest_file.exists() else None


def split_totals(dataset_dir: str, split: str) -> dict | None:
    """MANIFEST.json's totals for ``<dataset_dir>/<split>`` (``images``, ``per_class``, ``modes``,
    ``archives``), or None without a manifest or for a split it does not list.

    Format 2 lists them under ``splits``; for a format-1 manifest they are built from its one archive.
    """
    manifest = _manifest()
    if manifest is None:
        return None
    if f"{dataset_dir}/{split}" in manifest.get("splits", {}):
        return manifest["splits"][f"{dataset_dir}/{split}"]
    for name, entry in manifest.get("archives", {}).items():
        if entry.get("dataset_dir") == dataset_dir and entry.get("split") == split:
            return {"images": entry["images"], "per_class": entry.get("per_class", {}),
                    "modes": entry.get("modes", {}), "archives": [name]}  # fmt: skip
    return None


def expected_count(dataset_dir: str, split: str, grayscale: str = "convert") -> int | None:
    """How many images the offline copy of ``<dataset_dir>/<split>`` holds in all its archives, per
    MANIFEST.json's split totals; with ``grayscale="drop"``, how many of them are colour."""
    totals = split_totals(dataset_dir, split)
    if totals is None:
        return None
    if grayscale == "drop":
        return int(totals["images"]) - int(totals.get("modes", {}).get("L", 0))
    return int(totals["images"])


def _check_expected_count(folder: Path, found: int) -> None:
    """Compare an offline copy with MANIFEST.json: a short copy is an error, one from older archives a warning.

    The ``.materialized`` marker lists the sha256 of every archive the split was extracted from,
    one a line; a copy made before a split gained parts lists fewer of them.
    """
    manifest = _manifest()
    marker = folder / ".materialized"
    totals = split_totals(folder.parent.name, folder.name)
    if manifest is None or totals is None or not marker.exists():
        return
    digests = set(marker.read_text().split())
    archives = manifest.get("archives", {})
    by_digest = {entry["sha256"]: name for name, entry in archives.items()}
    made_from = [by_digest[d] for d in digests if d in by_digest]
    materialize = f"python {paths.archives_dir() / 'materialize.py'} {folder.parents[1]}"
    if len(made_from) < len(digests):
        warnings.warn(f"{folder} was extracted from archives that {paths.archives_dir() / 'MANIFEST.json'} "
                      f"does not list, so its image count cannot be checked; run `make data` "
                      f"(or {materialize}) to refresh it", StaleDataWarning, stacklevel=4)  # fmt: skip
        return
    expected = sum(int(archives[name]["images"]) for name in made_from)
    if found != expected:
        raise DataNotFoundError(
            f"{folder} holds {found} images but its archives ({', '.join(sorted(made_from))}) hold {expected}: "
            f"the copy is incomplete; rerun {materialize}"
        )
    if set(made_from) != set(totals["archives"]):
        warnings.warn(
            f"{folder} holds {found} of the {totals['images']} images the archives now have: it was filled "
            f"from older archives ({', '.join(sorted(made_from))}). It works as it is; run `make data` "
            f"(or {materialize}) to refresh it",
            StaleDataWarning,
            stacklevel=4,
        )
