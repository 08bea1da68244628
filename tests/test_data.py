"""Loading the real CIFAR-10 and Imagenette copies, counts from MANIFEST.json, clear errors."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from signed_saliency import paths
from signed_saliency.data import (
    CIFAR10_CLASSES,
    IMAGENETTE_NAMES,
    DataNotFoundError,
    StaleDataWarning,
    expected_count,
    load_dataset,
    to_float,
)

pytestmark = pytest.mark.data


def split_totals(dataset_dir, split):
    """The expected counts, from MANIFEST.json's split totals (format 2: a split may have several parts)."""
    manifest = json.loads((paths.archives_dir() / "MANIFEST.json").read_text())
    return manifest["splits"][f"{dataset_dir}/{split}"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_loads_the_lossless_copy_by_default(data_root, split):
    images = load_dataset("cifar10", split, data_root)
    totals = split_totals("cifar10-lossless", split)
    assert images.source == "offline lossless"
    assert len(images) == totals["images"] == {"train": 50_000, "test": 10_000}[split]
    assert images.images.shape == (totals["images"], 3, 32, 32) and images.images.dtype == torch.uint8
    assert images.classes == CIFAR10_CLASSES == tuple(totals["per_class"])
    assert images.labels.bincount().tolist() == list(totals["per_class"].values())
    assert images.images.min() == 0 and images.images.max() == 255 and images.grayscale_count == 0


def test_lossless_train_split_is_webp_decoded_exactly(data_root):
    folder = data_root / "cifar10-lossless" / "train"
    files = sorted((folder / "airplane").iterdir())[:5]
    assert files and all(f.suffix == ".webp" for f in files)
    images = load_dataset("cifar10", "train", data_root)
    for offset, path in enumerate(files):  # the first files of class 0 are the first images of the split
        with Image.open(path) as webp:
            assert webp.format == "WEBP"
            expected = torch.from_numpy(np.asarray(webp.convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(images.images[offset], expected) and images.labels[offset] == 0


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_jpeg_copy_is_still_selectable(data_root, split):
    images = load_dataset("cifar10", split, data_root, source="offline")
    totals = split_totals("cifar10", split)
    assert len(images) == totals["images"] and "JPEG" in images.source
    assert images.labels.bincount().tolist() == list(totals["per_class"].values())


def test_cifar10_lossless_test_split_is_the_same_images_without_jpeg(data_root):
    lossless = load_dataset("cifar10", "test", data_root, source="lossless")
    jpeg = load_dataset("cifar10", "test", data_root, source="offline")
    assert len(lossless) == split_totals("cifar10-lossless", "test")["images"]
    assert "lossless" in lossless.source and lossless.classes == CIFAR10_CLASSES
    assert torch.equal(lossless.labels.bincount(), jpeg.labels.bincount())
    # Same pictures, different codec: per-class mean brightness within 1/255.
    for c in range(10):
        a = lossless.images[lossless.labels == c].float().mean()
        b = jpeg.images[jpeg.labels == c].float().mean()
        assert abs(a - b) < 1.0, CIFAR10_CLASSES[c]


def test_imagenette_train_is_complete_in_two_parts(data_root):
    totals = split_totals("imagenette", "train")
    assert len(totals["archives"]) == 2 and totals["images"] == 9469 and totals["modes"]["L"] == 173
    marker = (data_root / "imagenette" / "train" / ".materialized").read_text().split()
    assert len(marker) == 2  # one sha256 per part
    train = load_dataset("imagenette", "train", data_root)
    assert len(train) == 9296 and train.grayscale_count == 173
    assert train.labels.bincount().sum() == totals["images"] - totals["modes"]["L"]
    assert expected_count("imagenette", "train") == 9469 and expected_count("imagenette", "train", "drop") == 9296
    converted = load_dataset("imagenette", "train", data_root, grayscale="convert")
    assert len(converted) == 9469 and converted.grayscale_count == 173
    assert converted.labels.bincount().tolist() == list(totals["per_class"].values())


def fake_offline_copy(tmp_path, monkeypatch, parts_in_marker, files, lossless_train=False):
    """A data root whose cifar10/test was extracted from some parts of a two-part split (3 + 2 images)."""
    archives = tmp_path / "archives"
    archives.mkdir()
    entries = {f"part{i}.tar.xz": {"sha256": f"{i}" * 64, "images": n, "dataset_dir": "cifar10", "split": "test",
                                   "part": i, "parts": 2} for i, n in ((1, 3), (2, 2))}  # fmt: skip
    splits = {"cifar10/test": {"archives": list(entries), "images": 5, "per_class": {"airplane": 5}, "modes": {}}}
    if lossless_train:
        entries["lossless.tar.xz"] = {
            "sha256": "9" * 64,
            "images": 4,
            "dataset_dir": "cifar10-lossless",
            "split": "train",
        }
        splits["cifar10-lossless/train"] = {"archives": ["lossless.tar.xz"], "images": 4, "per_class": {}, "modes": {}}
    (archives / "MANIFEST.json").write_text(json.dumps({"format": 2, "archives": entries, "splits": splits}))
    monkeypatch.setenv(paths.ARCHIVES_ENV, str(archives))
    root = tmp_path / "data"
    folder = root / "cifar10" / "test" / "airplane"
    folder.mkdir(parents=True)
    for i in range(files):
        Image.fromarray(np.full((32, 32, 3), i, dtype=np.uint8)).save(folder / f"{i}.png")
    (folder.parent / ".materialized").write_text("".join(f"{entries[name]['sha256']}\n" for name in parts_in_marker))
    return root


def test_a_copy_from_older_archives_works_and_says_to_refresh(tmp_path, monkeypatch):
    root = fake_offline_copy(tmp_path, monkeypatch, ["part1.tar.xz"], files=3)
    with pytest.warns(StaleDataWarning, match=r"3 of the 5 images.*make data"):
        images = load_dataset("cifar10", "test", root, download=False)
    assert len(images) == 3


def test_a_complete_multi_part_copy_loads_without_warning(tmp_path, monkeypatch):
    import warnings

    root = fake_offline_copy(tmp_path, monkeypatch, ["part1.tar.xz", "part2.tar.xz"], files=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_dataset("cifar10", "test", root, download=False)) == 5


def test_a_multi_part_copy_missing_files_is_an_error(tmp_path, monkeypatch):
    root = fake_offline_copy(tmp_path, monkeypatch, ["part1.tar.xz", "part2.tar.xz"], files=4)
    with pytest.raises(DataNotFoundError, match=r"holds 4 images .* hold 5: the copy is incomplete"):
        load_dataset("cifar10", "test", root, download=False)


def test_lossless_test_alone_falls_back_to_jpeg_and_says_so(tmp_path, monkeypatch):
    root = fake_offline_copy(tmp_path, monkeypatch, ["part1.tar.xz", "part2.tar.xz"], files=5, lossless_train=True)
    (root / "cifar10-lossless" / "test").mkdir(parents=True)  # filled before the lossless train split existed
    with pytest.warns(StaleDataWarning, match="holds only the test split.*make data"):
        images = load_dataset("cifar10", "test", root, download=False)
    assert "JPEG" in images.source


def test_imagenette_val_with_greyscale_dropped_or_converted(data_root):
    entry = split_totals("imagenette", "val")
    greyscale = entry["modes"].get("L", 0)
    assert greyscale > 0
    dropped = load_dataset("imagenette", "val", data_root)
    assert len(dropped) == entry["images"] - greyscale and dropped.grayscale_count == greyscale
    assert dropped.images.shape[1:] == (3, 224, 224) and dropped.images.dtype == torch.uint8
    assert dropped.classes == tuple(sorted(IMAGENETTE_NAMES)) == tuple(entry["per_class"])
    assert dropped.class_names[9] == "parachute"
    converted = load_dataset("imagenette", "test", data_root, grayscale="convert")  # "test" means val
    assert len(converted) == entry["images"] and converted.grayscale_count == greyscale
    assert converted.labels.bincount().tolist() == list(entry["per_class"].values())
    grey_like = (converted.images[:, 0] == converted.images[:, 1]).flatten(1).all(1)
    grey_like &= (converted.images[:, 1] == converted.images[:, 2]).flatten(1).all(1)
    assert grey_like.sum() >= greyscale
    assert (~grey_like).sum() <= len(dropped)  # every colour image survives dropping


def test_decoded_cache_is_reused(data_root):
    first = load_dataset("cifar10", "test", data_root)
    caches = list(paths.cache_dir(data_root).glob("cifar10-test-*.pt"))
    assert caches
    second = load_dataset("cifar10", "test", data_root)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)


def test_to_float_equals_to_tensor():
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = to_tensor(Image.fromarray(array))
    assert torch.equal(to_float(torch.from_numpy(array).permute(2, 0, 1)), expected)


def test_subset_is_seeded_and_sorted(data_root):
    images = load_dataset("cifar10", "test", data_root)
    a, b = images.subset(100, seed=1), images.subset(100, seed=1)
    assert torch.equal(a.images, b.images) and len(a) == 100
    assert not torch.equal(a.labels, images.subset(100, seed=2).labels)
    assert images.subset(None) is images
    with pytest.raises(ValueError, match="positive"):
        images.subset(0)


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar10"), ("imagenette", "imagenette")])
def test_missing_data_says_where_it_looked_and_how_to_fill(tmp_path, name, folder):
    with pytest.raises(DataNotFoundError) as error:
        load_dataset(name, "train", tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path / folder / "train") in message
    assert "materialize.py" in message and "download=True" in message


def test_incomplete_offline_copy_is_an_error(data_root, tmp_path):
    source = data_root / "cifar10" / "test"
    target = tmp_path / "cifar10" / "test"
    (target / "airplane").mkdir(parents=True)
    for image in sorted((source / "airplane").iterdir())[:3]:
        shutil.copy(image, target / "airplane")
    shutil.copy(source / ".materialized", target / ".materialized")
    with pytest.raises(DataNotFoundError, match="incomplete"):
        load_dataset("cifar10", "test", tmp_path, download=False)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("mnist", "train"), {}, "unknown dataset"),
        (("cifar10", "val"), {}, "unknown split"),
        (("imagenette", "val"), {"grayscale": "keep"}, "grayscale"),
        (("imagenette", "val"), {"source": "lossless"}, "no lossless"),
        (("cifar10", "test"), {"source": "web"}, "unknown source"),
    ],
)
def test_bad_arguments(tmp_path, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(*args, root=tmp_path, download=False, **kwargs)


def test_an_offline_torchvision_download_names_the_folders_and_leaves_nothing(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def failing_download(root, *args, **kwargs):  # as torchvision does offline: a partial file, then an error
        (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"partial")
        (tmp_path / "cifar-10-batches-py").mkdir()
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", failing_download)
    (tmp_path / "mine.txt").write_text("a file of the user's")
    for source in ("torchvision", "auto"):
        with pytest.raises(DataNotFoundError) as error:
            load_dataset("cifar10", "train", tmp_path, source=source)
        message = str(error.value)
        assert "URLError" in message and "materialize.py" in message and "download=True" in message
        assert str(tmp_path / "cifar-10-batches-py") in message
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]  # nothing half-made is left


def test_a_missing_lossless_split_names_the_folder_and_both_fixes(tmp_path):
    (tmp_path / "cifar10-lossless" / "test" / "airplane").mkdir(parents=True)
    with pytest.raises(DataNotFoundError) as error:
        load_dataset("cifar10", "train", tmp_path, source="lossless")
    message = str(error.value)
    assert str(tmp_path / "cifar10-lossless" / "train") in message
    assert "materialize.py" in message and "download=True" in message
