"""What every map, attribution and deletion function checks and sets up, in one place.

The public functions take a user's model and images; before any work they call these:
``check_images`` (a float batch (B, K, H, W) of finite values in [0, 1]), ``check_methods``,
``resolve_target`` (None, an int, a list or a (B,) tensor of class indices), ``check_logits``
(the model returns logits (B, C)), and ``evaluating(model)``, which runs the model in eval mode
and hands back every submodule in the mode it came in. ``chunk_size`` sizes the chunks of images
that gradients are computed in. Each check costs one pass over its input at most: small against
the forward pass it guards (``benchmarks`` and the tests measure it).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from contextlib import contextmanager

import torch
from torch import nn

METHODS = ("original", "positive", "negative", "active", "inactive")
PIXEL_TOLERANCE = 1e-3  # values this far outside [0, 1] are rounding, not another scale
# Within this of [0, 1], values look like noise added to images (SmoothGrad), not another scale such as [-1, 1].
NOISY_MARGIN = 0.75
# Pixel-channel-class values one chunk aims at (~64 MB of fp32): cache-friendly for the datasets here.
CHUNK_ELEMENTS = 1 << 24
# The most gradient memory one image's classes may take (fp32 bytes); past it, ask for competitors=k.
GRADIENT_BUDGET_BYTES = 4 << 30


def check_images(images, in_range: bool = True) -> None:
    """Raise ``ValueError`` unless ``images`` is a non-empty float tensor (B, K, H, W) of finite values in [0, 1]
    (any finite values with ``in_range=False``: noisy copies for SmoothGrad, which leave [0, 1] by design).

    Maps of NaN images or of images on another scale (0–255, normalised) would look plausible
    and mean nothing, and a white fill (1.0) in a 0–255 image is no deletion at all.

    Example:
        >>> check_images(torch.rand(2, 3, 32, 32))  # passes
        >>> check_images(torch.rand(2, 3, 32, 32) * 255)  # ValueError: ... divide by 255 ...
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {images.dim()} dims {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floats in [0, 1], got dtype {images.dtype}; use data.to_float()")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (B = 0)")
    low, high = (v.item() for v in torch.aminmax(images.detach()))
    if low != low or high != high or abs(low) == float("inf") or abs(high) == float("inf"):
        bad = (~torch.isfinite(images)).sum().item()
        raise ValueError(f"images hold {bad} NaN or infinite values: maps and deletion curves of them mean nothing; "
                         "fix or drop those images first")  # fmt: skip
    if in_range and (low < -PIXEL_TOLERANCE or high > 1 + PIXEL_TOLERANCE):
        if low >= -PIXEL_TOLERANCE and high <= 255 + PIXEL_TOLERANCE and high > 2:
            hint = "they look like 0–255 pixel values: divide by 255 (data.to_float does it for uint8 images)"
        elif low >= -NOISY_MARGIN and high <= 1 + NOISY_MARGIN:
            hint = ("values this close to [0, 1] look like noisy copies of images (SmoothGrad, Captum's NoiseTunnel): "
                    "pass the clean images, or, for noisy copies on purpose, interop.SignedSaliency(model, "
                    "noisy_inputs=True), which skips this range check")  # fmt: skip
        else:
            hint = ("they look normalised (mean/std): pass images in [0, 1] and put the normalisation inside the "
                    "model as its first layer, as the pre-trained models here do (noisy copies on purpose, as for "
                    "SmoothGrad: interop.SignedSaliency(model, noisy_inputs=True))")  # fmt: skip
        raise ValueError(f"images must hold values in [0, 1], found min {low:.4g} and max {high:.4g}: {hint}")


def check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    """The requested map kinds as a tuple; ``ValueError`` for an unknown kind or none."""
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown or no methods {unknown or list(methods)}: choose from {METHODS}")
    return methods


def check_logits(logits, batch: int) -> torch.Tensor:
    """``logits`` if the model returned a (B, C ≥ 2) tensor for a batch of ``batch`` images, else ``ValueError``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != batch:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"the model must return logits of shape (B, classes) = ({batch}, C); got {shape}. Wrap a model that "
            "returns a tuple or dict so that it returns the logits tensor alone"
        )
    if logits.shape[1] < 2:
        raise ValueError(f"the model returns {logits.shape[1]} class; active/inactive maps need at least 2 classes")
    return logits


def resolve_target(target, logits: torch.Tensor) -> torch.Tensor:
    """The explained class per image (B,): the prediction for None, else ``target`` (an int, a list of ints,
    or a (B,) integer tensor or array), checked against the model's classes."""
    batch, classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if isinstance(target, (list, tuple)) and all(isinstance(t, numbers.Integral) for t in target):
        target = torch.tensor([int(t) for t in target], dtype=torch.long)
    elif isinstance(target, numbers.Integral) and not isinstance(target, bool):
        target = int(target)  # numpy integers too
    elif hasattr(target, "__array__") and not isinstance(target, torch.Tensor):
        target = torch.as_tensor(target)
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise ValueError(f"target must be None, an int, a list of ints or a (B,) integer tensor, got "
                         f"{type(target).__name__}")  # fmt: skip
    index = torch.as_tensor(target, device=logits.device)
    if index.is_floating_point() or index.is_complex() or index.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {index.dtype}")
    if index.dim() == 0:
        index = index.expand(batch)
    if index.shape != (batch,):
        raise ValueError(f"target must be an int or have shape ({batch},), got {tuple(index.shape)}")
    if index.min() < 0 or index.max() >= classes:
        raise ValueError(f"target class out of range: the model has classes 0..{classes - 1}, got {index.tolist()}")
    return index.long()


def target_slice(target, start: int, chunk: int, images: torch.Tensor):
    """The part of a per-image ``target`` for the images ``start:start + chunk``; any other target as it is."""
    if isinstance(target, (list, tuple)) or (hasattr(target, "__array__") and not isinstance(target, torch.Tensor)):
        target = torch.as_tensor(target)
    if isinstance(target, torch.Tensor) and target.dim() == 1:
        if target.shape[0] != images.shape[0]:
            raise ValueError(f"target must have shape ({images.shape[0]},), got {tuple(target.shape)}")
        return target[start : start + chunk]
    return target


def chunk_size(images: torch.Tensor, class_wide: bool, classes: int = 10, copies: int = 1) -> int:
    """Images per chunk: ``CHUNK_ELEMENTS`` pixel-channel values of gradients, at least one image.

    Class-wide gradients hold one copy per class compared (pass the model's real count, see
    ``count_classes``: a 1000-class head at 224×224 gets chunks of one image, 0.6 GB, not the
    ten-class chunk of eleven), and methods that batch ``copies`` inputs per image (SmoothGrad's
    samples, IG's steps) that many times more. One image whose gradients alone exceed
    ``GRADIENT_BUDGET_BYTES`` (4 GB) is a ``ValueError`` that suggests ``competitors=k``.
    """
    per_image = images[0].numel() * (classes if class_wide else 1) * copies
    if per_image * 4 > GRADIENT_BUDGET_BYTES:
        raise ValueError(
            f"one image's {classes} class gradients need {per_image * 4 / 2**30:.1f} GB, over the "
            f"{GRADIENT_BUDGET_BYTES / 2**30:.0f} GB budget: pass competitors=k to compare the target with its k "
            "strongest competitors only, or use smaller images"
        )
    return max(1, min(images.shape[0], CHUNK_ELEMENTS // per_image))


def count_classes(model: nn.Module, images: torch.Tensor) -> int:
    """How many logits ``model`` returns, from one forward pass of one image (checked as logits)."""
    with torch.no_grad():
        return check_logits(model(images[:1]), 1).shape[1]


def check_competitors(competitors, classes: int) -> int | None:
    """``competitors`` checked against the class count; None (every other class, PROTOCOL §1) when it covers all."""
    if competitors is None:
        return None
    if isinstance(competitors, bool) or not isinstance(competitors, numbers.Integral) or competitors < 1:
        raise ValueError(f"competitors must be None (every other class) or a whole number ≥ 1, got {competitors!r}")
    return None if competitors >= classes - 1 else int(competitors)


@contextmanager
def evaluating(model: nn.Module):
    """Run ``model`` in eval mode, then hand back every submodule in its own mode.

    ``model.train(was_training)`` alone would put a frozen (eval) BatchNorm of a training model back
    in train mode, or a Dropout left in train mode in an eval model into eval.

    Example:
        >>> with evaluating(model):
        ...     logits = model(images)
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """``fractions`` as a tuple of floats, or a ValueError unless they are ascending and in [0, 1]."""
    fractions = tuple(float(p) for p in fractions)
    if not fractions:
        raise ValueError("fractions is empty")
    if any(not 0.0 <= p <= 1.0 for p in fractions):
        raise ValueError(f"fractions must lie in [0, 1], got {fractions}")
    if any(b < a for a, b in zip(fractions, fractions[1:])):
        raise ValueError(f"fractions must be ascending, got {fractions}")
    return fractions


def check_seed(seed) -> int:
    """``seed`` as an int, or a ValueError: a float or a string would seed something else than meant."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int, got {seed!r} ({type(seed).__name__})")
    return int(seed)
