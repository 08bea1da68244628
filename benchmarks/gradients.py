"""Every class's input gradient for a batch: ours against a per-class loop and Captum.

Active and inactive maps need the gradient of every class at every pixel-channel. Ours
(``signed_saliency.saliency.class_gradients``) runs one forward, then on a GPU one
class-batched backward of the input gradients, on the CPU one backward per class through
that forward, which measured faster there (the row also shows the batched one's time). The
authors' code runs a fresh forward and a ``.backward()`` per class in a Python loop, with the
model's parameters requiring gradients as built, so every backward also computes the weights'
gradients; the same loop asking for the input gradient alone is its best case. Captum users
call ``Saliency(model).attribute(x, target=c, abs=False)`` once per class. The floor is one
forward kept alive for C plain backward passes of the input gradient, the least eager fp32
autograd can do, run with ours' settings (on the CPU: chunks of images and the lean backward of
``speed.lean_input_gradients``), prepared in advance.
All give the same numbers to fp32 rounding (the row reports the largest absolute difference from ours).
``floor_variants`` measures what each setting gains alone against the plain floor (the whole
batch through the model as it is), with each one's distance from a float64 computation.
"""

from __future__ import annotations

import copy

import torch
from torch.fx.experimental.optimization import fuse

from benchmarks.timing import interleaved_medians
from signed_saliency.models import build
from signed_saliency.saliency import class_gradients, gradient_passes
from signed_saliency.speed import LEAN_PARTS, lean_input_gradients, to_channels_last


def per_class_loop(model, images):
    """The authors' way: for each class, a fresh forward and ``.backward()`` of that class's score."""
    grads = []
    for c in range(_classes(model, images)):
        x = images.detach().clone().requires_grad_(True)
        model(x)[:, c].sum().backward()
        grads.append(x.grad)
    model.zero_grad(set_to_none=True)
    return torch.stack(grads, dim=1)


def per_class_loop_input_only(model, images):
    """The loop's best case: a fresh forward per class, differentiated for the input alone."""
    grads = []
    for c in range(_classes(model, images)):
        x = images.detach().requires_grad_(True)
        grads.append(torch.autograd.grad(model(x)[:, c].sum(), x)[0])
    return torch.stack(grads, dim=1)


def captum_per_class(model, images):
    from captum.attr import Saliency

    saliency = Saliency(model)
    return torch.stack([saliency.attribute(images, target=c, abs=False) for c in range(_classes(model, images))], 1)


def one_forward_c_backwards(model, images):
    """The floor: one forward, then one plain backward per class through the same graph."""
    x = images.detach().requires_grad_(True)
    logits = model(x)
    classes = logits.shape[1]
    return torch.stack([
        torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c < classes - 1)[0] for c in range(classes)
    ], 1)  # fmt: skip


def ours(model, images):
    return class_gradients(model, images)[1]


def _classes(model, images) -> int:
    with torch.no_grad():
        return model(images[:1]).shape[1]


def chunked_floor(model, chunks, lean=LEAN_PARTS):
    """The floor over prepared chunks of images, with the ``lean`` parts of ``speed.lean_input_gradients``
    (all of them, as ours, by default)."""
    with lean_input_gradients(chunks[0], lean):
        return torch.cat([one_forward_c_backwards(model, chunk) for chunk in chunks])


def _model_and_images(model_name, size, batch, device, classes):
    torch.manual_seed(0)
    model = build(model_name, num_classes=classes).to(device).eval()  # timing does not depend on the weights
    return model, torch.rand(batch, 3, size, size, device=device)


def run(model_name: str, size: int, batch: int, device, repeats: int = 3, classes: int = 10) -> dict:
    """One row: median seconds of ours, the loop, Captum and the floor, and the largest difference."""
    device = torch.device(device)
    model, images = _model_and_images(model_name, size, batch, device, classes)
    prepared, chunks = gradient_passes(model, images)  # made here, untimed, as ours finds them cached
    functions = {"ours": ours, "loop": per_class_loop, "loop_input_only": per_class_loop_input_only,
                 "captum": captum_per_class, "floor": lambda m, x: chunked_floor(prepared, chunks),
                 "batched": lambda m, x: class_gradients(m, x, "batched")[1]}  # fmt: skip
    results = {name: function(model, images) for name, function in functions.items()}
    difference = max((results[name] - results["ours"]).abs().max().item() for name in functions)
    seconds = interleaved_medians({name: lambda f=function: f(model, images) for name, function in functions.items()},
                                  repeats, device=device)  # fmt: skip
    return {"what": f"all-class gradients, {model_name} {size}×{size}", "batch": batch, **seconds,
            "max_abs_difference": difference, "scale": results["ours"].abs().max().item()}  # fmt: skip


def floor_variants(model_name: str, size: int, batch: int, device, repeats: int = 3, classes: int = 10,
                   checked: int = 2) -> list[dict]:  # fmt: skip
    """Each of ours' settings alone against the plain floor, with the largest difference from float64 on
    the first ``checked`` images."""
    device = torch.device(device)
    model, images = _model_and_images(model_name, size, batch, device, classes)
    exact = one_forward_c_backwards(copy.deepcopy(model).double(), images[:checked].double())
    folded = fuse(model).requires_grad_(False)
    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    _, chunks = gradient_passes(model, images)
    last_chunks = [to_channels_last(chunk) for chunk in chunks]
    split = f"chunks of {len(chunks[0])} images" if len(chunks) > 1 else "whole batch"
    # what: (model, chunks of images, the parts of lean_input_gradients used)
    variants = {f"floor, {model_name} {size}×{size}, batch {batch}: plain (whole batch, the model as it is)":
                (model, [images], ())}  # fmt: skip
    if len(chunks) > 1:
        variants[split] = (model, chunks, ())
    variants |= {
        f"{split}, BatchNorm's backward as a per-channel multiply": (model, chunks, ("batch_norm",)),
        f"{split}, lean BatchNorm, stem's input gradient by PyTorch's transposed convolution (ours)":
            (model, chunks, LEAN_PARTS),
        f"{split}, lean BatchNorm and stem, channels-last": (last, last_chunks, LEAN_PARTS),
        f"{split}, BatchNorm folded into the convolutions": (folded, chunks, ()),
        f"{split}, BatchNorm folded, channels-last, lean stem (ours with fused=True)":
            (*gradient_passes(model, images, fused=True), LEAN_PARTS),
    }  # fmt: skip
    seconds = interleaved_medians({what: lambda v=variant: chunked_floor(*v) for what, variant in variants.items()},
                                  repeats, device=device)  # fmt: skip
    plain = seconds[next(iter(variants))]
    rows = []
    for what, (network, parts, lean) in variants.items():
        check = parts[0][:checked]  # the first images, in the variant's own memory format
        error = (chunked_floor(network, [check], lean).double() - exact[: len(check)]).abs().max().item()
        rows.append({"what": what, "seconds": seconds[what], "gain": plain / seconds[what], "error": error,
                     "scale": exact.abs().max().item()})  # fmt: skip
    return rows
