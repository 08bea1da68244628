"""Other gradient-based attributions, each split into the five map kinds (PROTOCOL §1, §6).

``class_attributions(model, images, method)`` gives every class's attribution at every
pixel-channel, (B, C, K, H, W), from batched passes: the plain ``gradient``; ``smoothgrad``
(the mean gradient over noisy copies, noise drawn as Captum's ``NoiseTunnel`` draws it);
``integrated_gradients`` (from a black baseline, Gauss–Legendre steps as Captum's default);
``gradient_x_input``; ``guided_backprop`` (at each ReLU the backward keeps only positive
signal where the activation is positive) and ``rectgrad`` (Rectified Gradient: at each ReLU
the backward keeps signal only where activation × signal exceeds its q-th percentile over
that layer, per image and class; the attribution is input × signal, clipped at 0). The last
two work by forward hooks on the model's ``nn.ReLU`` modules, whatever their reuse (ResNet
calls one module twice per block) or in-place flag; a model without ReLU modules is
refused. ``attribution_maps`` turns any of them into the original / positive / negative /
active / inactive maps, with the attribution in place of the gradient.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from signed_saliency.saliency import (
    CLASS_WIDE,
    METHODS,
    _check_images,
    _check_methods,
    _chunk_size,
    _logits,
    _resolve_target,
    _target_slice,
    class_gradients,
    maps_from_gradients,
    replicated_class_gradients,
)

ATTRIBUTIONS = ("gradient", "smoothgrad", "integrated_gradients", "gradient_x_input", "guided_backprop", "rectgrad")
RELU_RULES = frozenset({"guided_backprop", "rectgrad"})
SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_NOISE = 0.15  # standard deviation, a fraction of the [0, 1] input range (SmoothGrad: 10–20 %)
IG_STEPS = 16
RECTGRAD_PERCENTILE = 98.0  # the RectGrad authors' default (PROTOCOL §6)


def class_attributions(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "gradient",
    *,
    samples: int = SMOOTHGRAD_SAMPLES,
    noise: float = SMOOTHGRAD_NOISE,
    steps: int = IG_STEPS,
    percentile: float = RECTGRAD_PERCENTILE,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, C) of the unaltered images and every class's attribution (B, C, K, H, W).

    ``samples`` and ``noise`` are SmoothGrad's, ``steps`` Integrated Gradients', ``percentile``
    RectGrad's q; ``generator`` seeds SmoothGrad's noise (the global one when None). The model
    is used as it is: call ``model.eval()`` first.
    """
    _check_method(method)
    _check_images(images)
    if samples < 1 or steps < 1 or noise < 0 or not 0 <= percentile <= 100:
        raise ValueError(f"need samples ≥ 1, steps ≥ 1, noise ≥ 0 and 0 ≤ percentile ≤ 100; got {samples}, "
                         f"{steps}, {noise}, {percentile}")  # fmt: skip
    if method == "gradient":
        return class_gradients(model, images)
    if method == "gradient_x_input":
        logits, grads = class_gradients(model, images)
        return logits, grads * images[:, None]
    if method == "smoothgrad":
        return _smoothgrad(model, images, samples, noise, generator)
    if method == "integrated_gradients":
        return _integrated_gradients(model, images, steps)
    with relu_rule(model, method, percentile):
        # The rule is a custom autograd Function, which the vmapped backward cannot run: replicate instead.
        classes = _logits_without_grad(model, images[:1]).shape[1]
        logits, signal = replicated_class_gradients(model, images, classes)
    if method == "rectgrad":
        signal = (signal * images[:, None]).clamp(min=0)
    return logits, signal


def attribution_maps(
    model: nn.Module,
    images: torch.Tensor,
    method: str = "gradient",
    kinds: Sequence[str] = METHODS,
    target: int | str | torch.Tensor | None = None,
    **options,
) -> dict[str, torch.Tensor]:
    """The requested map kinds (B, H, W) of one attribution method; ``target`` as in ``attribution_maps_for``."""
    return attribution_maps_for(model, images, method, kinds, (target,), **options)[0]


def attribution_maps_for(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    kinds: Sequence[str],
    targets: Sequence[int | str | torch.Tensor | None],
    **options,
) -> list[dict[str, torch.Tensor]]:
    """Maps for several targets from one computation of every class's attribution.

    Each target is None or ``"highest"`` (the predicted class), ``"lowest"`` (the lowest
    logit), a class index, or a (B,) tensor of them. Images are processed in chunks sized so
    that all classes' attributions (times SmoothGrad's samples or IG's steps, which are
    batched too) stay within memory.
    """
    kinds = _check_methods(kinds)
    _check_method(method)
    _check_images(images)
    for target in targets:
        if isinstance(target, str) and target not in ("highest", "lowest"):
            raise ValueError(f"target must be None, 'highest', 'lowest', an int or a tensor; got {target!r}")
    was_training = model.training
    model.eval()
    chunk = _chunk_size(images, class_wide=True, copies=_copies(method, options))
    parts: list[list[dict[str, torch.Tensor]]] = [[] for _ in targets]
    try:
        for start in range(0, len(images), chunk):
            logits, attributions = class_attributions(model, images[start : start + chunk], method, **options)
            for maps, target in zip(parts, targets):
                if target == "lowest":
                    index = logits.argmin(dim=1)
                else:
                    chosen = None if target == "highest" else _target_slice(target, start, chunk, images)
                    index = _resolve_target(chosen, logits)
                own = attributions[torch.arange(len(index), device=index.device), index]
                class_wide = attributions if CLASS_WIDE & set(kinds) else None
                maps.append(maps_from_gradients(own, kinds, class_wide, index))
    finally:
        model.train(was_training)
    return [{kind: torch.cat([p[kind] for p in part]) for kind in kinds} for part in parts]


@contextmanager
def relu_rule(model: nn.Module, method: str, percentile: float = RECTGRAD_PERCENTILE) -> Iterator[None]:
    """Within the block, every ``nn.ReLU`` of ``model`` backpropagates by ``method``'s rule."""
    if method not in RELU_RULES:
        raise ValueError(f"relu_rule takes {sorted(RELU_RULES)}, got {method!r}")
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        activations = sorted({type(m).__name__ for m in model.modules() if not list(m.children())} & _ACTIVATIONS)
        raise ValueError(
            f"{method} rewrites the backward pass at ReLU modules, and {type(model).__name__} has none"
            + (f" (it uses {', '.join(activations)})" if activations else "")
            + ": the method does not apply to this model"
        )
    rule = _GuidedReLU if method == "guided_backprop" else _RectifiedReLU

    def hook(module, inputs, output):
        # The output of a (possibly in-place) ReLU passes through an identity whose backward applies the
        # rule; the ReLU's own backward then zeroes where the activation was not positive. A hook fires on
        # every call, so a module used twice is handled twice.
        return rule.apply(output, percentile)

    handles = [m.register_forward_hook(hook) for m in relus]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, activation, percentile):
        return activation.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0), None


class _RectifiedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, activation, percentile):
        ctx.save_for_backward(activation)
        ctx.percentile = percentile
        return activation.clone()

    @staticmethod
    def backward(ctx, grad):
        (activation,) = ctx.saved_tensors
        relevance = (activation * grad).flatten(1)
        threshold = row_percentile(relevance, ctx.percentile)
        return grad * (relevance > threshold[:, None]).view_as(grad), None


def row_percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """The q-th percentile of each row of (N, M) values with linear interpolation (NumPy's default)."""
    count = values.shape[1]
    position = q / 100 * (count - 1)
    low, high = int(np.floor(position)), int(np.ceil(position))
    lower = values.kthvalue(low + 1, dim=1).values
    upper = lower if high == low else values.kthvalue(high + 1, dim=1).values
    return lower + (upper - lower) * (position - low)


def gauss_legendre(steps: int) -> tuple[list[float], list[float]]:
    """Points in [0, 1] and weights summing to 1 for Integrated Gradients' path integral (as Captum's default)."""
    points, weights = np.polynomial.legendre.leggauss(steps)
    return list(0.5 * (points + 1)), list(0.5 * weights)


_ACTIVATIONS = {"GELU", "SiLU", "ELU", "LeakyReLU", "Tanh", "Sigmoid", "Hardswish", "Mish", "PReLU"}


def _smoothgrad(model, images, samples, noise, generator):
    logits = _logits_without_grad(model, images)
    # Drawn as Captum's NoiseTunnel draws it: images repeated sample-minor, one normal draw for all.
    repeated = images.repeat_interleave(samples, dim=0)
    std = torch.full(repeated.shape, float(noise), device=images.device)
    noisy = repeated + torch.normal(0.0, std, generator=generator)
    _, grads = class_gradients(model, noisy)
    return logits, grads.view(len(images), samples, *grads.shape[1:]).mean(dim=1)


def _integrated_gradients(model, images, steps):
    logits = _logits_without_grad(model, images)
    alphas, weights = gauss_legendre(steps)
    path = torch.cat([alpha * images for alpha in alphas])  # baseline 0 (black), step-major as Captum
    _, grads = class_gradients(model, path)
    weight = torch.tensor(weights, dtype=grads.dtype, device=grads.device).view(steps, 1, *([1] * (grads.dim() - 1)))
    integral = (grads.view(steps, len(images), *grads.shape[1:]) * weight).sum(dim=0)
    return logits, integral * images[:, None]


def _logits_without_grad(model, images):
    with torch.no_grad():
        return _logits(model, images)


def _copies(method: str, options: dict) -> int:
    if method == "smoothgrad":
        return options.get("samples", SMOOTHGRAD_SAMPLES)
    if method == "integrated_gradients":
        return options.get("steps", IG_STEPS)
    return 1


def _check_method(method: str) -> None:
    if method not in ATTRIBUTIONS:
        raise ValueError(f"unknown attribution method {method!r}: choose from {ATTRIBUTIONS}")
