"""The four models of PROTOCOL §4, built by ``build(name, num_classes, pretrained)``.

``cnn`` is the authors' basic CNN, ``resnet18`` and ``convnext_tiny`` are torchvision's.
Pre-trained variants wrap torchvision's ImageNet model as a frozen backbone (ImageNet
normalisation as its first layer, so inputs stay in pixel space [0, 1]) followed by a new
Linear(1000→10) head: ``PretrainedClassifier``. ImageNet weights come through torchvision's
weights API and the torch hub cache; offline, ``MissingWeightsError`` names the file and
the folder where it must be placed.
"""

from __future__ import annotations

import os

import torch
from torch import nn

MODELS = ("cnn", "resnet18", "convnext_tiny")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class MissingWeightsError(FileNotFoundError):
    """ImageNet weights are neither in the torch hub cache nor downloadable."""


class BasicCNN(nn.Module):
    """The authors' ``CNNModel``: a 7×7 stem, three three-conv blocks, global average pooling."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, 32, 7, stride=2, padding=3),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        channels = 32
        for out in (32, 64, 128):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1), nn.ReLU(),
                nn.Conv2d(out, out, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(out, out, 3, padding=1), nn.ReLU(),
            ]  # fmt: skip
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a layer, so the model's input stays in [0, 1]."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class PretrainedClassifier(nn.Module):
    """A frozen ImageNet backbone (1000 logits) followed by a trainable Linear(1000→classes).

    The backbone stays in eval mode whatever ``train()`` is called with, and its parameters
    never require gradients: PROTOCOL §5 trains only the head, which is why the backbone's
    outputs can be computed once per image (``features``) and the head trained on them.
    """

    def __init__(self, backbone: nn.Module, num_classes: int = 10):
        super().__init__()
        self.backbone = nn.Sequential(Normalize(), backbone)
        self.backbone.requires_grad_(False)
        self.head = nn.Linear(1000, num_classes)
        self.train()

    def train(self, mode: bool = True) -> PretrainedClassifier:
        super().train(mode)
        self.backbone.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build(name: str, num_classes: int = 10, pretrained: bool = False) -> nn.Module:
    """Build ``"cnn"``, ``"resnet18"`` or ``"convnext_tiny"`` for ``num_classes`` classes.

    With ``pretrained=True`` (ResNet-18 and ConvNeXt-Tiny only) the ImageNet IMAGENET1K_V1
    weights are loaded from the torch hub cache (downloading them when possible) and the
    result is a ``PretrainedClassifier``. Raises ``ValueError`` for an unknown name, a CNN
    asked pre-trained or fewer than two classes, and ``MissingWeightsError`` when the
    weights cannot be had.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {MODELS}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (active/inactive maps compare classes), got {num_classes}")
    if name == "cnn":
        if pretrained:
            raise ValueError("the basic CNN has no pre-trained weights: use pretrained=False")
        return BasicCNN(num_classes)
    import torchvision

    constructor = getattr(torchvision.models, name)
    if not pretrained:
        return constructor(num_classes=num_classes)
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    backbone = constructor()
    backbone.load_state_dict(_imagenet_state_dict(weights))
    return PretrainedClassifier(backbone, num_classes)


def cached_weights(name: str) -> tuple[str, str]:
    """Where ``build(name, pretrained=True)`` looks for its ImageNet weights, and the URL they come from:
    (path in the torch hub cache, url), found without loading or downloading anything."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    return os.path.join(*weights_file(weights)), weights.url


def weights_file(weights) -> tuple[str, str]:
    """The hub cache folder and file name torchvision uses for ``weights``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints"), os.path.basename(weights.url)


def _imagenet_state_dict(weights) -> dict[str, torch.Tensor]:
    folder, filename = weights_file(weights)
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as error:  # noqa: BLE001 - offline, any failure here means the file is missing
        raise MissingWeightsError(
            f"ImageNet weights {weights} are not available: {filename} is not in the torch hub "
            f"cache folder {folder} and downloading it failed ({type(error).__name__}: {error}). "
            f"Download {weights.url} on a machine with internet and place it at "
            f"{os.path.join(folder, filename)} (or set TORCH_HOME to a folder whose "
            f"hub/checkpoints/ holds it)."
        ) from error
