"""The five saliency maps of PROTOCOL §1: original, positive, negative, active, inactive.

``saliency_maps(model, images, methods, target)`` returns raw per-pixel maps (B, H, W).
Original, positive and negative need only the target's gradient (one forward, one
backward). Active and inactive compare the target's gradient with every other class's at
each pixel-channel, so ``class_gradients`` gets all classes' gradients from one forward,
never a fresh forward per class: by one class-batched (vmapped) backward or by one backward
per class through the same graph, whichever measured faster for the device and image size. Images
are processed in chunks sized so the class-batched backward stays within memory and, on the CPU,
within the caches.
``scale_for_display`` is the per-image min–max scaling used only for pictures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from signed_saliency.speed import forward_batch, fused_copy, lean_input_gradients, to_channels_last

METHODS = ("original", "positive", "negative", "active", "inactive")
CLASS_WIDE = frozenset({"active", "inactive"})
# Pixel-channel-class values one chunk may hold in the class-batched backward (~64 MB of fp32).
_CHUNK_ELEMENTS = 1 << 24


def saliency_maps(
    model: nn.Module,
    images: torch.Tensor,
    methods: Sequence[str] = METHODS,
    target: int | torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Compute the requested saliency maps for a batch of images.

    Args:
        model: a classifier returning logits (B, C) with C ≥ 2, for images in [0, 1]. It is
            run in eval mode and handed back in the mode it came in; no gradient is
            accumulated in its parameters.
        images: float tensor (B, K, H, W), values in [0, 1].
        methods: any of ``"original"``, ``"positive"``, ``"negative"``, ``"active"``,
            ``"inactive"``; only these are computed.
        target: None for the predicted class, an int for one class for all images, or a
            (B,) integer tensor of class indices.

    Returns:
        ``{method: map}``, each map float (B, H, W), ≥ 0, raw (not rescaled), on the
        images' device.

    Example:
        >>> maps = saliency_maps(model, images, methods=("positive", "active"))
        >>> maps["active"].shape  # (B, H, W)
    """
    methods = _check_methods(methods)
    _check_images(images)
    was_training = model.training
    model.eval()
    try:
        chunk = _chunk_size(images, bool(CLASS_WIDE & set(methods)))
        parts = [
            _maps_for_chunk(model, images[i : i + chunk], methods, _target_slice(target, i, chunk, images))
            for i in range(0, images.shape[0], chunk)
        ]
    finally:
        model.train(was_training)
    return {m: torch.cat([p[m] for p in parts]) for m in methods}


def class_gradients(
    model: nn.Module, images: torch.Tensor, strategy: str = "auto", fused: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, C) and every class's input gradient (B, C, K, H, W), from one forward per chunk of images.

    ``strategy``: ``"batched"`` runs one class-batched (vmapped) backward; ``"sequential"`` runs
    one plain backward per class through the same forward graph; both give the same values.
    ``"auto"`` takes what measured faster (benchmarks/results.md): sequential on the CPU, where
    batched took 1.26× (CNN, 32 px) to 1.55× (ResNet-18, 224 px) as long; on a GPU, batched for
    small images (0.46× the time for the CNN and 0.60× for ResNet-18 at 32 px on an H100) and
    sequential from 128×128 pixels up (batched took 1.17× as long for ResNet-18 at 224 px).
    On the CPU, images go in chunks of ``speed.forward_batch`` to stay within the caches (1.44× faster
    for ResNet-18 at 224×224 in a batch of 64, with the same values), BatchNorm's backward is the
    per-channel multiplication it reduces to, and the stem's input gradient comes from PyTorch's own
    transposed convolution (``speed.lean_input_gradients``: the same values but for rounding).
    ``fused=True`` differentiates ``speed.fused_copy(model)`` instead (BatchNorm folded, channels-last):
    another 1.03× there, but it rounds differently, and a ReLU whose input lies within rounding of zero
    may then switch, which changes the gradient around it. On a trained CIFAR-10 ResNet-18, one image in
    64 had a region off by up to 4 % of its map's maximum against float64, where the plain model had
    none; so it is off by default.
    The model is used as it is (call ``model.eval()`` first).
    """
    if strategy not in ("auto", "batched", "sequential"):
        raise ValueError(f"strategy must be 'auto', 'batched' or 'sequential', got {strategy!r}")
    if strategy == "auto":
        small = images.shape[-2] * images.shape[-1] < 128 * 128
        strategy = "batched" if images.device.type != "cpu" and small else "sequential"
    model, chunks = gradient_passes(model, images, fused)
    parts = [_class_gradients(model, chunk, strategy) for chunk in chunks]
    # One chunk (any GPU batch, small CPU batches) is returned as it is: concatenating would copy it.
    logits, grads = parts[0] if len(parts) == 1 else (torch.cat(p) for p in zip(*parts))
    return logits, grads.contiguous()


def gradient_passes(
    model: nn.Module, images: torch.Tensor, fused: bool = False
) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The model ``class_gradients`` differentiates and the chunks of images it passes through it."""
    if fused:
        model, images = fused_copy(model), to_channels_last(images)
    return model, images.split(forward_batch(images)) if images.device.type == "cpu" else (images,)


def _class_gradients(model, images, strategy) -> tuple[torch.Tensor, torch.Tensor]:
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), lean_input_gradients(x):
        logits = _logits(model, x)
        batch, classes = logits.shape
        if strategy == "sequential":
            grads = torch.stack([
                torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c < classes - 1)[0] for c in range(classes)
            ], dim=1)  # fmt: skip
            return logits.detach(), grads
        one_hot = torch.eye(classes, dtype=logits.dtype, device=logits.device)
        grad_outputs = one_hot[:, None, :].expand(classes, batch, classes)
        try:
            (grads,) = torch.autograd.grad(logits, x, grad_outputs=grad_outputs, is_grads_batched=True)
            grads = grads.transpose(0, 1)
        except RuntimeError:
            # Some operators have no vmap rule for their backward: fall back to one backward
            # over the batch replicated once per class (same values, more memory).
            grads = replicated_class_gradients(model, images, classes)[1]
    return logits.detach(), grads


def target_gradient(model: nn.Module, images: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, C) and the gradient of the target logit (B, K, H, W): one forward, one backward."""
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), lean_input_gradients(x):
        logits = _logits(model, x)
        index = _resolve_target(target, logits)
        (grad,) = torch.autograd.grad(logits.gather(1, index[:, None]).sum(), x)
    return logits.detach(), grad


def maps_from_gradients(
    target_grad: torch.Tensor, methods: Iterable[str], all_grads: torch.Tensor | None = None, target=None
) -> dict[str, torch.Tensor]:
    """Reduce gradients to maps. ``all_grads`` (B, C, K, H, W) and ``target`` (B,) are needed
    only for active and inactive; ``target_grad`` is (B, K, H, W)."""
    maps = {}
    magnitude = target_grad.abs()
    for method in methods:
        if method == "original":
            value = magnitude
        elif method == "positive":
            value = target_grad.clamp(min=0)
        elif method == "negative":
            value = (-target_grad).clamp(min=0)
        else:
            if all_grads is None or target is None:
                raise ValueError(f"{method!r} needs every class's gradient and the target")
            value = torch.where(_beats_every_other_class(all_grads, target, method), magnitude, 0)
        # amax over channels; adding 0.0 turns any -0.0 into +0.0 so maps are plainly ≥ 0.
        maps[method] = value.amax(dim=1) + 0.0
    return maps


def scale_for_display(saliency: torch.Tensor) -> torch.Tensor:
    """Min–max scale each image's map (B, H, W) or one map (H, W) to [0, 1]; a constant map gives zeros."""
    if saliency.dim() not in (2, 3):
        raise ValueError(f"expected a map (H, W) or maps (B, H, W), got shape {tuple(saliency.shape)}")
    flat = saliency.reshape(-1, saliency.shape[-2] * saliency.shape[-1]).float()
    low = flat.amin(1, keepdim=True)
    span = flat.amax(1, keepdim=True) - low
    scaled = torch.where(span > 0, (flat - low) / torch.where(span > 0, span, 1), 0)
    return scaled.reshape(saliency.shape)


def _maps_for_chunk(model, images, methods, target) -> dict[str, torch.Tensor]:
    if CLASS_WIDE & set(methods):
        logits, all_grads = class_gradients(model, images)
        index = _resolve_target(target, logits)
        target_grad = all_grads[torch.arange(len(index), device=index.device), index]
        return maps_from_gradients(target_grad, methods, all_grads, index)
    _, target_grad = target_gradient(model, images, target)
    return maps_from_gradients(target_grad, methods)


def _beats_every_other_class(all_grads: torch.Tensor, target: torch.Tensor, method: str) -> torch.Tensor:
    """Where the target's gradient is strictly above (active) or below (inactive) every other class's."""
    batch, classes = all_grads.shape[:2]
    is_target = torch.zeros(batch, classes, dtype=torch.bool, device=all_grads.device)
    is_target[torch.arange(batch, device=all_grads.device), target] = True
    is_target = is_target.view(batch, classes, *([1] * (all_grads.dim() - 2)))
    target_grad = all_grads[torch.arange(batch, device=all_grads.device), target]
    if method == "active":
        others = all_grads.masked_fill(is_target, float("-inf")).amax(dim=1)
        return target_grad > others
    others = all_grads.masked_fill(is_target, float("inf")).amin(dim=1)
    return target_grad < others


def replicated_class_gradients(model, images, classes) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, C) and all classes' gradients from one plain backward over the batch repeated
    once per class: more memory than the vmapped backward, but any autograd rule (a hook, a
    custom Function) applies to it unchanged."""
    batch = images.shape[0]
    x = images.detach().repeat(classes, 1, 1, 1).requires_grad_(True)
    with torch.enable_grad():
        logits = model(x).view(classes, batch, classes)
        (grads,) = torch.autograd.grad(logits.diagonal(dim1=0, dim2=2).sum(), x)
    return logits[0].detach(), grads.view(classes, batch, *images.shape[1:]).transpose(0, 1)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits of shape (B, classes) = ({x.shape[0]}, C); got {shape}")
    if logits.shape[1] < 2:
        raise ValueError(f"the model returns {logits.shape[1]} class; active/inactive maps need at least 2 classes")
    return logits


def _resolve_target(target, logits: torch.Tensor) -> torch.Tensor:
    batch, classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise ValueError(f"target must be None, an int or a (B,) integer tensor, got {type(target).__name__}")
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


def _target_slice(target, start: int, chunk: int, images: torch.Tensor):
    if isinstance(target, torch.Tensor) and target.dim() == 1:
        if target.shape[0] != images.shape[0]:
            raise ValueError(f"target must have shape ({images.shape[0]},), got {tuple(target.shape)}")
        return target[start : start + chunk]
    return target


def _chunk_size(images: torch.Tensor, class_wide: bool, classes: int = 10, copies: int = 1) -> int:
    """Images per chunk; class-wide gradients hold one copy per class (sized for ten classes,
    the datasets here: more classes only make chunks proportionally larger), and methods that
    batch ``copies`` inputs per image (SmoothGrad's samples, IG's steps) that many times more."""
    per_image = images[0].numel() * (classes if class_wide else 1) * copies
    return max(1, min(images.shape[0], _CHUNK_ELEMENTS // per_image))


def _check_methods(methods: Sequence[str]) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown or no methods {unknown or list(methods)}: choose from {METHODS}")
    return methods


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {images.dim()} dims {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floats in [0, 1], got dtype {images.dtype}; use data.to_float()")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch (B = 0)")
