"""Sanity checks for saliency maps (PROTOCOL §6): class sensitivity and cascading randomisation.

``class_sensitivity`` compares, per image, the map explaining the highest-logit class with
the map explaining the lowest-logit class by Spearman rank correlation: near 1 means the
map hardly depends on the class it claims to explain. ``cascading_randomization``
re-initialises the model's Conv2d and Linear layers from the output towards the input, one
more at a time, on a deep copy (the trained weights are never touched), and after each
step compares the maps with the trained model's by Spearman rank correlation and SSIM: a
map that stays similar while the model is destroyed does not explain the model. Both run
batched over images and all classes, for any attribution method and map kind of
``signed_saliency.attribution``. ``spearman`` (average ranks for ties, as SciPy) and
``ssim`` (skimage's default: 7×7 uniform window, sample covariance) are batched too.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from signed_saliency.attribution import attribution_maps_for
from signed_saliency.checks import evaluating
from signed_saliency.deletion import predict
from signed_saliency.saliency import METHODS, scale_for_display


class RandomizationStep(NamedTuple):
    """The maps' similarity to the trained model's after re-initialising ``layers`` (output first)."""

    layers: int
    last_layer: str
    spearman: dict[str, float]
    ssim: dict[str, float | None]


def class_sensitivity(
    model: nn.Module, images: torch.Tensor, method: str = "gradient", kinds: Sequence[str] = METHODS, **options
) -> dict[str, torch.Tensor]:
    """Per map kind, each image's Spearman correlation between its highest- and lowest-logit class maps (B,).

    An image whose map is constant for either class has no rank correlation: NaN.
    """
    highest, lowest = attribution_maps_for(model, images, method, kinds, ("highest", "lowest"), **options)
    return {kind: spearman(highest[kind], lowest[kind]) for kind in kinds}


def randomizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The Conv2d and Linear layers of ``model`` in the order they are defined (input first)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def cascading_randomization(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "gradient",
    kinds: Sequence[str] = METHODS,
    seed: int = 0,
    max_steps: int | None = None,
    **options,
) -> list[RandomizationStep]:
    """Similarity of each map kind to the trained model's, after re-initialising ever more layers.

    Layers are re-initialised from the output towards the input, each by its own
    ``reset_parameters`` under a seed derived from ``seed`` and its position; with
    ``max_steps``, maps are compared only after every ⌈layers / max_steps⌉-th layer (and after
    the last), to bound the cost on deep models. Returns one ``RandomizationStep`` per comparison.
    """
    layers = randomizable_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to re-initialise")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be positive or None, got {max_steps}")
    (trained,) = attribution_maps_for(model, images, method, kinds, (None,), **options)
    targets = _predicted(model, images)  # the trained model's prediction stays the explained class
    randomized = copy.deepcopy(model)
    randomized_layers = randomizable_layers(randomized)
    every = 1 if max_steps is None else math.ceil(len(layers) / max_steps)
    steps = []
    for position in range(1, len(layers) + 1):
        name = _reinitialize(randomized_layers, position, seed)
        if position % every and position != len(layers):
            continue
        (maps,) = attribution_maps_for(randomized, images, method, kinds, (targets,), **options)
        steps.append(RandomizationStep(
            position, name,
            {k: finite_mean(spearman(trained[k], maps[k])) for k in kinds},
            {k: finite_mean(_defined_ssim(trained[k], maps[k])) for k in kinds},
        ))  # fmt: skip
    return steps


def _defined_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per image, NaN where either map is constant: two all-zero maps compare as 1.0, which would read
    as "survives randomisation" for a map that holds no information (RectGrad's negative map)."""
    constant = (a.flatten(1).amax(1) == a.flatten(1).amin(1)) | (b.flatten(1).amax(1) == b.flatten(1).amin(1))
    return ssim(scale_for_display(a), scale_for_display(b)).masked_fill(constant, float("nan"))


def randomized_copy(model: nn.Module, layers: int | None = None, seed: int = 0) -> nn.Module:
    """A deep copy of ``model`` with its last ``layers`` Conv2d/Linear layers re-initialised (None: all),
    exactly as ``cascading_randomization`` leaves it after that many steps."""
    total = len(randomizable_layers(model))
    layers = total if layers is None else layers
    if not 0 <= layers <= total:
        raise ValueError(f"layers must be between 0 and {total}, got {layers}")
    randomized = copy.deepcopy(model)
    randomized_layers = randomizable_layers(randomized)
    for position in range(1, layers + 1):
        _reinitialize(randomized_layers, position, seed)
    return randomized


def _reinitialize(layers: list[tuple[str, nn.Module]], position: int, seed: int) -> str:
    """Re-initialise the ``position``-th of ``layers`` counted from the output; return its name."""
    name, layer = layers[-position]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + position)
        layer.reset_parameters()
    return name


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each pair of maps (B, ...) → (B,), ties given their average rank."""
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = average_ranks(a.flatten(1).double()), average_ranks(b.flatten(1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    denominator = (ra.square().sum(1) * rb.square().sum(1)).sqrt()
    return ((ra * rb).sum(1) / denominator).float()  # 0 / 0 = NaN for a constant map


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..N of each row of (B, N), tied values sharing the mean of their ranks."""
    ordered, order = values.sort(dim=1, stable=True)
    rows, count = ordered.shape
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.cumsum(1) - 1  # tie group of each sorted position, 0-based within its row
    position = torch.arange(1, count + 1, dtype=values.dtype, device=values.device).expand(rows, count)
    flat_group = (group + torch.arange(rows, device=values.device)[:, None] * count).flatten()
    zeros = torch.zeros(rows * count, dtype=values.dtype, device=values.device)
    sums = zeros.index_add(0, flat_group, position.flatten())
    sizes = zeros.index_add(0, flat_group, torch.ones_like(position.flatten()))
    mean_rank = (sums / sizes.clamp(min=1))[flat_group].view(rows, count)
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity of each pair of images (B, H, W) → (B,), as skimage's default.

    A uniform ``window``×``window`` filter, K1 = 0.01, K2 = 0.03, sample covariances, and the mean
    over the positions where the window fits inside the image.
    """
    if a.shape != b.shape or a.dim() != 3:
        raise ValueError(f"expected two (B, H, W) batches of the same shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    if min(a.shape[1:]) < window:
        raise ValueError(f"images of {tuple(a.shape[1:])} are smaller than the {window}×{window} window")
    x, y = a[:, None].double(), b[:, None].double()

    def mean(t):
        return nn.functional.avg_pool2d(t, window, stride=1)

    correction = window**2 / (window**2 - 1)
    mx, my = mean(x), mean(y)
    vx, vy = (mean(x * x) - mx * mx) * correction, (mean(y * y) - my * my) * correction
    cxy = (mean(x * y) - mx * my) * correction
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).float()


def _predicted(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``deletion.predict`` in eval mode, the model handed back in the mode it came in."""
    with evaluating(model):
        return predict(model, images)


def finite_mean(values: torch.Tensor) -> float | None:
    """Mean over the images whose correlation exists (a constant map has none); None when no image has one."""
    finite = values[~values.isnan()]
    return finite.mean().item() if len(finite) else None
