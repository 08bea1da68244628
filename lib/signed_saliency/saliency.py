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

from signed_saliency.checks import (
    METHODS,
    check_competitors,
    check_images,
    check_logits,
    check_methods,
    chunk_size,
    count_classes,
    evaluating,
    resolve_target,
    target_slice,
)
from signed_saliency.progress import progress as progress_bar
from signed_saliency.progress import wanted
from signed_saliency.speed import forward_batch, fused_copy, lean_input_gradients, to_channels_last

CLASS_WIDE = frozenset({"active", "inactive"})


class SaliencyMaps(dict):
    """``{method: map}`` as ``saliency_maps`` returns it, plus ``metadata``: the model's class count, how many
    other classes active/inactive compared the target with, and whether that is PROTOCOL §1 (all of them)."""

    def __init__(self, maps: dict[str, torch.Tensor], metadata: dict):
        super().__init__(maps)
        self.metadata = metadata


def saliency_maps(
    model: nn.Module,
    images: torch.Tensor,
    methods: Sequence[str] = METHODS,
    target: int | torch.Tensor | None = None,
    *,
    competitors: int | None = None,
    progress: bool | None = None,
    noisy_inputs: bool = False,
) -> SaliencyMaps:
    """Compute the requested saliency maps for a batch of images.

    Args:
        model: a classifier returning logits (B, C) with C ≥ 2, for images in [0, 1]. It is
            run in eval mode and handed back with every submodule in the mode it came in; no gradient is
            accumulated in its parameters.
        images: float tensor (B, K, H, W) of finite values in [0, 1] (``ValueError`` otherwise, naming
            what was found: 0–255 values, normalised values, NaN or Inf).
        methods: any of ``"original"``, ``"positive"``, ``"negative"``, ``"active"``,
            ``"inactive"``; only these are computed.
        target: None for the predicted class, an int for one class for all images, or a
            list of B ints or a (B,) integer tensor of class indices.
        competitors: None (the default, PROTOCOL §1) compares the target's gradient with every other
            class's for active and inactive: one backward pass per class, so the cost grows with C
            (README, "Any number of classes", gives measured times for 10, 100 and 1000 classes).
            An int k compares it only with the k classes of highest logit besides the target: k + 1
            backward passes whatever C is, for ImageNet-size heads. That is **not** PROTOCOL §1 when
            k < C − 1 (a pixel may be "active" against those k and not against all), and
            ``metadata["protocol"]`` says so.
        progress: show a progress bar over the chunks of images; None shows one for long calls
            (at least ``progress.AFTER_PASSES`` backward passes) in a terminal or notebook.
        noisy_inputs: the images are noisy copies (SmoothGrad), so values outside [0, 1] are expected:
            only their finiteness is checked.

    Returns:
        ``SaliencyMaps``: a dict ``{method: map}``, each map float (B, H, W), ≥ 0, raw (not
        rescaled), on the images' device; its ``metadata`` says how active/inactive were made
        (``classes`` and ``competitors`` are None when neither was asked for).

    Example:
        >>> maps = saliency_maps(model, images, methods=("positive", "active"))
        >>> maps["active"].shape  # (B, H, W)
        >>> saliency_maps(model, images, competitors=5).metadata["protocol"]  # on a 1000-class model
        'top-5 competitors (not PROTOCOL §1)'
    """
    methods = check_methods(methods)
    check_images(images, in_range=not noisy_inputs)
    class_wide = bool(CLASS_WIDE & set(methods))
    with evaluating(model):
        # The class count sizes class-wide chunks; maps of the target's gradient alone need no extra forward pass.
        classes = count_classes(model, images) if class_wide else None
        competitors = check_competitors(competitors, classes) if class_wide else None
        compared = (classes - 1 if competitors is None else competitors) if class_wide else 0
        chunk = chunk_size(images, class_wide, compared + 1)
        starts = range(0, images.shape[0], chunk)
        passes = len(starts) * (compared + 1 if class_wide else 1)
        parts = [
            _maps_for_chunk(model, images[i : i + chunk], methods, target_slice(target, i, chunk, images), competitors)
            for i in progress_bar(
                starts,
                desc=f"maps ({compared + 1 if class_wide else 1} backward passes per chunk)",
                unit="chunk",
                disable=not wanted(progress, passes),
            )  # fmt: skip
        ]
    exact = competitors is None
    metadata = {"classes": classes, "competitors": compared if class_wide else None,
                "protocol": "PROTOCOL §1" if exact else f"top-{competitors} competitors (not PROTOCOL §1)"}  # fmt: skip
    return SaliencyMaps({m: torch.cat([p[m] for p in parts]) for m in methods}, metadata)


def competitor_gradients(
    model: nn.Module, images: torch.Tensor, target, competitors: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits (B, C), the gradients (B, 1 + k, K, H, W) of the target (slot 0) and of its ``competitors`` = k
    classes of highest logit, and those classes (B, 1 + k): one forward, k + 1 backward passes."""
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), lean_input_gradients(x):
        logits = check_logits(model(x), x.shape[0])
        index = resolve_target(target, logits)
        others = logits.detach().scatter(1, index[:, None], float("-inf")).topk(competitors, dim=1).indices
        slots = torch.cat([index[:, None], others], dim=1)
        chosen = logits.gather(1, slots)
        grads = torch.stack([
            torch.autograd.grad(chosen[:, j].sum(), x, retain_graph=j < competitors)[0] for j in range(competitors + 1)
        ], dim=1)  # fmt: skip
    return logits.detach(), grads, slots


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
        logits = check_logits(model(x), x.shape[0])
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
        logits = check_logits(model(x), x.shape[0])
        index = resolve_target(target, logits)
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
    """Min–max scale each image's map (B, H, W) or one map (H, W) to [0, 1], for pictures only.

    A constant map gives zeros. The scale comes from the finite values alone; +Inf shows as 1,
    −Inf and NaN as 0, so one bad pixel neither blanks nor saturates the rest. Floating maps keep
    their dtype; integer and boolean maps become float32.
    """
    if saliency.dim() not in (2, 3):
        raise ValueError(f"expected a map (H, W) or maps (B, H, W), got shape {tuple(saliency.shape)}")
    dtype = saliency.dtype if saliency.is_floating_point() else torch.float32
    flat = saliency.reshape(-1, saliency.shape[-2] * saliency.shape[-1]).to(dtype)
    finite = torch.isfinite(flat)
    low = torch.where(finite, flat, float("inf")).amin(1, keepdim=True)
    span = torch.where(finite, flat, float("-inf")).amax(1, keepdim=True) - low
    spread = finite.any(1, keepdim=True) & (span > 0)
    scaled = torch.where(spread & finite, (flat - low) / torch.where(spread, span, 1), 0)
    scaled = torch.where(flat == float("inf"), 1, scaled)
    return scaled.to(dtype).reshape(saliency.shape)


def _maps_for_chunk(model, images, methods, target, competitors=None) -> dict[str, torch.Tensor]:
    if CLASS_WIDE & set(methods) and competitors is not None:
        _, grads, _ = competitor_gradients(model, images, target, competitors)
        slot = torch.zeros(images.shape[0], dtype=torch.long, device=grads.device)  # the target is slot 0
        return maps_from_gradients(grads[:, 0], methods, grads, slot)
    if CLASS_WIDE & set(methods):
        logits, all_grads = class_gradients(model, images)
        index = resolve_target(target, logits)
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
