"""Training throughput: our uint8-tensor loop against a DataLoader of PIL images, and
cached frozen-backbone features against running the backbone every epoch.

Ours (``signed_saliency.training``, its own epoch loop) decodes the split once into a uint8
tensor and feeds batches by indexing it. The reference is the authors' style: ``ImageFolder`` over the JPEG
files with ``ToTensor``, a shuffling ``DataLoader`` (as many workers as cores), the same
model, AdamW and batch. Both are timed over the same number of steps after a warm-up step,
so the one-time decode of ours is left out (it is reported beside). For a frozen
pre-trained backbone (random weights here: timing does not depend on them), ours computes
the backbone's outputs once and trains the head on them; the reference runs the backbone
in every epoch.
"""

from __future__ import annotations

import os
import time

import torch
from torch import nn

from benchmarks.timing import median_seconds
from signed_saliency.data import load_dataset
from signed_saliency.models import PretrainedClassifier, build
from signed_saliency.training import TrainConfig, _run_epoch


def _step(model, optimizer, images, labels):
    loss = nn.functional.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def ours_images_per_second(data_root, steps: int, batch: int, device, model_name: str = "cnn") -> tuple[float, float]:
    """Images per second of our loop over ``steps`` batches, and the seconds the split took to load."""
    started = time.perf_counter()
    train = load_dataset("cifar10", "train", data_root)
    load_seconds = time.perf_counter() - started
    torch.manual_seed(0)
    model = build(model_name).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # The library's own epoch over exactly ``steps`` batches: shuffling, device-side sums and all.
    images, labels = train.images[: steps * batch].to(device), train.labels[: steps * batch].to(device)
    config = TrainConfig("cifar10", model_name, batch_size=batch)

    def run():
        _run_epoch(model, optimizer, images, labels, config, epoch=0)

    seconds = median_seconds(run, repeats=1, warmup=1, device=device)
    return steps * batch / seconds, load_seconds


def reference_images_per_second(data_root, steps: int, batch: int, device, model_name: str = "cnn") -> float:
    """Images per second of a plain loop over a DataLoader of PIL images decoded from the JPEG files."""
    from torchvision import datasets, transforms

    folder = datasets.ImageFolder(os.path.join(data_root, "cifar10", "train"), transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(folder, batch_size=batch, shuffle=True, num_workers=os.cpu_count() or 1,
                                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    torch.manual_seed(0)
    model = build(model_name).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def run():
        for s, (images, labels) in enumerate(loader):
            _step(model, optimizer, images.to(device), labels.to(device))
            if s + 1 == steps:
                break

    seconds = median_seconds(run, repeats=1, warmup=1, device=device)
    return steps * batch / seconds


def frozen_backbone(images: int, epochs: int, size: int, device, batch: int = 128) -> dict:
    """Seconds to train a head for ``epochs`` on cached backbone outputs vs through the frozen backbone."""
    torch.manual_seed(0)
    import torchvision

    model = PretrainedClassifier(torchvision.models.resnet18(), 10).to(device).eval()
    data = torch.rand(images, 3, size, size, device=device)
    labels = torch.randint(0, 10, (images,), device=device)

    def head_epoch(inputs, through_backbone: bool):
        optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-3)
        for start in range(0, images, batch):
            chunk = inputs[start : start + batch]
            if through_backbone:
                with torch.no_grad():
                    chunk = model.features(chunk)
            _step(model.head, optimizer, chunk, labels[start : start + batch])

    def cached():
        with torch.inference_mode():
            features = torch.cat([model.features(data[i : i + batch]) for i in range(0, images, batch)])
        for _ in range(epochs):
            head_epoch(features.clone(), False)

    def through():
        for _ in range(epochs):
            head_epoch(data, True)

    return {"cached": median_seconds(cached, repeats=1, device=device),
            "through": median_seconds(through, repeats=1, device=device)}  # fmt: skip
