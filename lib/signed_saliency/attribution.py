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

import inspect
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from signed_saliency.checks import (
    METHODS,
    check_images,
    check_logits,
    check_methods,
    chunk_size,
    count_classes,
    evaluating,
    resolve_target,
    target_slice,
)
from signed_saliency.saliency import CLASS_WIDE, class_gradients, maps_from_gradients, replicated_class_gradients

RELU_RULES = frozenset({"guided_backprop", "rectgrad"})
SMOOTHGRAD_SAMPLES = 16
SMOOTHGRAD_NOISE = 0.15  # standard deviation, a fraction of the [0, 1] input range (SmoothGrad: 10–20 %)
IG_STEPS = 16
RECTGRAD_PERCENTILE = 98.0  # the RectGrad authors' default (PROTOCOL §6)


def options_for(method: str, options: dict) -> dict:
    """The part of ``options`` that ``method`` takes: for code that runs several methods with one set of options."""
    _check_method(method)
    return {name: value for name, value in options.items() if name in method_options(method)}


def _check_options(method: str, options: dict) -> None:
    ignored = sorted(set(options) - set(method_options(method)))
    if ignored:
        takes = ", ".join(method_options(method)) or "no options"
        raise ValueError(f"{method} takes {takes}; {', '.join(ignored)} would be ignored: leave it out "
                         "(options_for picks a method's own options)")  # fmt: skip
    for name in ("samples", "steps"):
        value = options.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
    noise, percentile = options.get("noise", 0.0), options.get("percentile", 50.0)
    if not (isinstance(noise, (int, float)) and 0 <= noise < float("inf")):
        raise ValueError(f"noise must be a finite number ≥ 0, got {noise!r}")
    if not (isinstance(percentile, (int, float)) and 0 <= percentile <= 100):
        raise ValueError(f"percentile must lie in [0, 100], got {percentile!r}")
    if options.get("generator") is not None and not isinstance(options["generator"], torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(options['generator']).__name__}")


def class_attributions(model: nn.Module, images: torch.Tensor, method: str = "gradient", **options):
    """Logits (B, C) of the unaltered images and every class's attribution (B, C, K, H, W).

    ``options`` are the method's own (``method_options(method)``; any other is refused): SmoothGrad's
    ``samples``, ``noise`` and ``generator`` (seeds its noise; the global one when None),
    Integrated Gradients' ``steps``, RectGrad's ``percentile`` (q), and ``other_activations``
    (``relu_rule``'s) for Guided Backpropagation and RectGrad. The model is used as it is: call
    ``model.eval()`` first. A new method is one function ``(model, images, **its options) ->
    (logits, attributions)`` and one entry in ``REGISTRY``.
    """
    _check_method(method)
    _check_options(method, options)
    check_images(images)
    return REGISTRY[method](model, images, **options)


def _gradient(model, images):
    return class_gradients(model, images)


def _gradient_x_input(model, images):
    logits, grads = class_gradients(model, images)
    return logits, grads * images[:, None]


def _guided_backprop(model, images, other_activations: str = "refuse"):
    return _with_relu_rule(model, images, "guided_backprop", RECTGRAD_PERCENTILE, other_activations)


def _rectgrad(model, images, percentile: float = RECTGRAD_PERCENTILE, other_activations: str = "refuse"):
    logits, signal = _with_relu_rule(model, images, "rectgrad", percentile, other_activations)
    return logits, (signal * images[:, None]).clamp(min=0)


def _with_relu_rule(model, images, method, percentile, other_activations):
    with relu_rule(model, method, percentile, other_activations):
        # The rule is a custom autograd Function, which the vmapped backward cannot run: replicate instead.
        classes = _logits_without_grad(model, images[:1]).shape[1]
        return replicated_class_gradients(model, images, classes)


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
    kinds = check_methods(kinds)
    _check_method(method)
    _check_options(method, options)
    check_images(images)
    for target in targets:
        if isinstance(target, str) and target not in ("highest", "lowest"):
            raise ValueError(f"target must be None, 'highest', 'lowest', an int or a tensor; got {target!r}")
    parts: list[list[dict[str, torch.Tensor]]] = [[] for _ in targets]
    with evaluating(model):
        chunk = chunk_size(images, True, count_classes(model, images), _copies(method, options))
        for start in range(0, len(images), chunk):
            logits, attributions = class_attributions(model, images[start : start + chunk], method, **options)
            for maps, target in zip(parts, targets):
                if target == "lowest":
                    index = logits.argmin(dim=1)
                else:
                    chosen = None if target == "highest" else target_slice(target, start, chunk, images)
                    index = resolve_target(chosen, logits)
                own = attributions[torch.arange(len(index), device=index.device), index]
                class_wide = attributions if CLASS_WIDE & set(kinds) else None
                maps.append(maps_from_gradients(own, kinds, class_wide, index))
    return [{kind: torch.cat([p[kind] for p in part]) for kind in kinds} for part in parts]


@contextmanager
def relu_rule(
    model: nn.Module, method: str, percentile: float = RECTGRAD_PERCENTILE, other_activations: str = "refuse"
) -> Iterator[None]:
    """Within the block, every ``nn.ReLU`` of ``model`` backpropagates by ``method``'s rule.

    The rule exists for ReLUs only. A model with other activation modules as well (MobileNetV3:
    ReLU and Hardswish) would get it at some of its non-linearities and not others, so
    ``other_activations="refuse"`` (the default) raises a ``ValueError`` naming them, and ``"warn"``
    applies the rule at the ReLUs with a ``UserWarning`` that names the activations left out.
    Activations called as functions in ``forward`` (``F.relu``) are invisible here: use modules.
    """
    if method not in RELU_RULES:
        raise ValueError(f"relu_rule takes {sorted(RELU_RULES)}, got {method!r}")
    if other_activations not in ("refuse", "warn"):
        raise ValueError(f"other_activations must be 'refuse' or 'warn', got {other_activations!r}")
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    others = Counter(type(m).__name__ for m in model.modules() if type(m).__name__ in _ACTIVATIONS)
    if not relus:
        raise ValueError(
            f"{method} rewrites the backward pass at ReLU modules, and {type(model).__name__} has none"
            + (f" (it uses {', '.join(sorted(others))})" if others else "")
            + ": the method does not apply to this model"
        )
    if others:
        listed = ", ".join(f"{count} {name}" for name, count in sorted(others.items()))
        what = (f"{method} applies its rule at the {len(relus)} ReLU modules of {type(model).__name__} only, not at "
                f"its {listed}")  # fmt: skip
        if other_activations == "refuse":
            raise ValueError(f"{what}: pass other_activations='warn' to apply it at the ReLUs anyway")
        warnings.warn(f"{what}: those backpropagate as plain gradients", UserWarning, stacklevel=3)
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


_ACTIVATIONS = {
    "GELU",
    "SiLU",
    "ELU",
    "LeakyReLU",
    "Tanh",
    "Sigmoid",
    "Hardswish",
    "Hardsigmoid",
    "Mish",
    "PReLU",
    "ReLU6",
    "Hardtanh",
    "SELU",
    "CELU",
    "Softplus",
    "Softsign",
    "RReLU",
    "LogSigmoid",
    "Tanhshrink",
}


def _smoothgrad(model, images, samples: int = SMOOTHGRAD_SAMPLES, noise: float = SMOOTHGRAD_NOISE,
                generator: torch.Generator | None = None):  # fmt: skip
    logits = _logits_without_grad(model, images)
    # Drawn as Captum's NoiseTunnel draws it: images repeated sample-minor, one normal draw for all.
    repeated = images.repeat_interleave(samples, dim=0)
    std = torch.full(repeated.shape, float(noise), device=images.device)
    noisy = repeated + torch.normal(0.0, std, generator=generator)
    _, grads = class_gradients(model, noisy)
    return logits, grads.view(len(images), samples, *grads.shape[1:]).mean(dim=1)


def _integrated_gradients(model, images, steps: int = IG_STEPS):
    logits = _logits_without_grad(model, images)
    alphas, weights = gauss_legendre(steps)
    path = torch.cat([alpha * images for alpha in alphas])  # baseline 0 (black), step-major as Captum
    _, grads = class_gradients(model, path)
    weight = torch.tensor(weights, dtype=grads.dtype, device=grads.device).view(steps, 1, *([1] * (grads.dim() - 1)))
    integral = (grads.view(steps, len(images), *grads.shape[1:]) * weight).sum(dim=0)
    return logits, integral * images[:, None]


def _logits_without_grad(model, images):
    with torch.no_grad():
        return check_logits(model(images), images.shape[0])


def _copies(method: str, options: dict) -> int:
    if method == "smoothgrad":
        return options.get("samples", SMOOTHGRAD_SAMPLES)
    if method == "integrated_gradients":
        return options.get("steps", IG_STEPS)
    return 1


def _check_method(method: str) -> None:
    if method not in REGISTRY:
        raise ValueError(f"unknown attribution method {method!r}: choose from {tuple(REGISTRY)}")


# Every method: one function (model, images, **its options) -> (logits, attributions). Its options are its
# keyword parameters; one it does not take is refused, not silently dropped.
REGISTRY = {
    "gradient": _gradient,
    "smoothgrad": _smoothgrad,
    "integrated_gradients": _integrated_gradients,
    "gradient_x_input": _gradient_x_input,
    "guided_backprop": _guided_backprop,
    "rectgrad": _rectgrad,
}
ATTRIBUTIONS = tuple(REGISTRY)  # the methods the chain runs and the tables list


def method_options(method: str) -> tuple[str, ...]:
    """The options ``method`` takes: its function's parameters after ``model`` and ``images``."""
    _check_method(method)
    return tuple(list(inspect.signature(REGISTRY[method]).parameters)[2:])
