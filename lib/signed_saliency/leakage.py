"""The mask-leakage test of PROTOCOL §8: can the class be read off the deletion masks alone?

``mask_leakage`` trains a small seeded CNN (``_MaskNet``) on binary deletion masks, labelled with the
model's predicted classes, and returns its test accuracy: well above the most frequent prediction's
share means that the mask's shape, not the pixels the deletion leaves, tells the class, and a deletion
curve may then measure the mask rather than the map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from signed_saliency.checks import check_seed


class _MaskNet(nn.Module):
    """The small CNN of the mask-leakage test: masks pooled to 32×32, two convolutions, a linear layer."""

    def __init__(self, classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(32 * 8 * 8, classes)

    def forward(self, masks):
        return self.head(self.features(F.adaptive_avg_pool2d(masks, 32)).flatten(1))


def mask_leakage(
    train_masks: torch.Tensor,
    train_labels: torch.Tensor,
    test_masks: torch.Tensor,
    test_labels: torch.Tensor,
    classes: int = 10,
    epochs: int = 15,
    seed: int = 0,
) -> float:
    """Test accuracy of a small CNN trained on binary deletion masks alone (B, H, W; True = deleted) to
    predict ``train_labels`` (the model's predicted classes): well above chance (1/classes) means the
    mask's shape tells the class (PROTOCOL §8).

    >>> masks = torch.zeros(20, 8, 8, dtype=torch.bool); labels = torch.arange(20) % 2
    >>> masks[labels == 1, :4] = True  # class 1 deletes the top half
    >>> mask_leakage(masks, labels, masks, labels, classes=2) > 0.9
    True
    """
    for name, masks, labels in (("train", train_masks, train_labels), ("test", test_masks, test_labels)):
        if masks.dtype != torch.bool or masks.dim() != 3 or labels.shape != (len(masks),):
            raise ValueError(f"{name} masks must be bool (B, H, W) with one label each, got {masks.dtype} "
                             f"{tuple(masks.shape)} and labels {tuple(labels.shape)}")  # fmt: skip
    if len(train_masks) < 2 or len(test_masks) < 1:
        raise ValueError(f"mask leakage needs at least 2 train masks and 1 test mask, got {len(train_masks)} "
                         f"and {len(test_masks)}")  # fmt: skip
    torch.manual_seed(check_seed(seed))
    net = _MaskNet(classes)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    x = train_masks[:, None].float()
    y = train_labels.long()
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=order).split(64):
            optimiser.zero_grad()
            F.cross_entropy(net(x[batch]), y[batch]).backward()
            optimiser.step()
    with torch.no_grad():
        predicted = torch.cat([net(b[:, None].float()).argmax(1) for b in test_masks.split(256)])
    return float((predicted == test_labels.long()).float().mean())
