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
    load_dataset,
    to_float,
)

pytestmark = pytest.mark.data


def manifest_entry(dataset_dir, split):
    manifest = json.loads((paths.archives_dir() / "MANIFEST.json").read_text())
    (entry,) = [e for e in manifest["archives"].values() if (e["dataset_dir"], e["split"]) == (dataset_dir, split)]
    return entry


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_matches_the_manifest(data_root, split):
    images = load_dataset("cifar10", split, data_root)
    entry = manifest_entry("cifar10", split)
    assert len(images) == entry["images"]
    assert images.images.shape == (entry["images"], 3, 32, 32) and images.images.dtype == torch.uint8
    assert images.classes == CIFAR10_CLASSES == tuple(entry["per_class"])
    assert images.labels.bincount().tolist() == list(entry["per_class"].values())
    assert images.images.min() == 0 and images.images.max() == 255
    assert "JPEG" in images.source and images.grayscale_count == 0


def test_cifar10_lossless_test_split_is_the_same_images_without_jpeg(data_root):
    lossless = load_dataset("cifar10", "test", data_root, source="lossless")
    jpeg = load_dataset("cifar10", "test", data_root, source="offline")
    assert len(lossless) == manifest_entry("cifar10-lossless", "test")["images"]
    assert "lossless" in lossless.source and lossless.classes == CIFAR10_CLASSES
    assert torch.equal(lossless.labels.bincount(), jpeg.labels.bincount())
    # Same pictures, different codec: per-class mean brightness within 1/255.
    for c in range(10):
        a = lossless.images[lossless.labels == c].float().mean()
        b = jpeg.images[jpeg.labels == c].float().mean()
        assert abs(a - b) < 1.0, CIFAR10_CLASSES[c]


def test_imagenette_val_with_greyscale_dropped_or_converted(data_root):
    entry = manifest_entry("imagenette", "val")
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
