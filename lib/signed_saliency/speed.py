"""How the library's forward and backward passes are made fast on each device.

Measured choices live here (benchmarks/results.md): batches sized per device
(``forward_batch``), since large batches fall out of a CPU's caches; convolution weights and
images held channels-last (``channels_last``, ``to_channels_last``), faster for the CPU's
convolutions and, for deletion's forward passes, with identical curves; and an opt-in copy of
a model for input gradients (``fused_copy``), with each eval-mode BatchNorm folded into the
convolution before it and channels-last weights. Folding is exact in arithmetic but rounds
differently, and in a ReLU network a unit whose input lies within rounding of zero can then
switch, which changes the gradient around it (see ``saliency.class_gradients``), so the library
does not use it unless asked. The copy is cached per model and remade whenever one of the
model's parameters or buffers changes, in place or replaced; a model in training mode, with
hooks, or that torch.fx cannot trace is used as it is."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

# model -> (the tensors and versions the copy was made from, the copy); weak, so models are freed as usual.
_FUSED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forward_batch(images: torch.Tensor) -> int:
    """Images per pass: up to 512 on a GPU, about a million pixel-channels on the CPU.

    Measured on the CPU for ResNet-18 at 224×224: 39 images/s in forward batches of 8 against 29 in
    batches of 64, and all-class gradients 1.44× faster in chunks of 6 than in one batch of 64.
    """
    budget = 1 << 27 if images.device.type == "cuda" else 1 << 20
    return max(1, min(512, budget // max(1, images[0].numel())))


@contextmanager
def channels_last(model: nn.Module, images: torch.Tensor) -> Iterator[None]:
    """Within the block, a model on 4-D images holds its weights channels-last, and is handed back as it was.

    Channels-last convolutions measured 1.70× (CNN) and 1.23× (ResNet-18) faster for the deletion
    forwards on the CPU with identical curves (benchmarks/results.md, "Lowering the floor").
    """
    if images.dim() != 4:
        yield
        return
    formats = {name: _is_channels_last(p) for name, p in model.named_parameters()}
    # Outside inference mode, or the weights would become inference tensors that autograd refuses later.
    with torch.inference_mode(False):
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        with torch.inference_mode(False):
            for name, parameter in model.named_parameters():
                if parameter.dim() == 4 and not formats[name]:
                    parameter.data = parameter.data.contiguous()


def to_channels_last(batch: torch.Tensor) -> torch.Tensor:
    """The batch in channels-last memory when it is 4-D images, else as it is."""
    return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch


def fused_copy(model: nn.Module) -> nn.Module:
    """A channels-last copy of ``model`` with eval-mode BatchNorms folded into their convolutions, for
    input gradients (``class_gradients(..., fused=True)``); ``model`` itself when it cannot be copied
    safely (see the module's docstring).

    The copy's parameters do not require gradients, so it serves input gradients only.
    """
    state = _state(model)
    cached = _FUSED.get(model)
    if cached is not None and _same_state(cached[0], state):
        return cached[1]
    fused = _fuse(model)
    _FUSED[model] = (state, fused)
    return fused


def _fuse(model: nn.Module) -> nn.Module:
    if any(m.training for m in model.modules()) or any(_has_hooks(m) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse

    try:
        fused = fuse(model)
    except Exception:  # torch.fx cannot trace every model (data-dependent control flow, say): use it unfused
        return model
    fused.requires_grad_(False)
    return fused.to(memory_format=torch.channels_last)


def _has_hooks(module: nn.Module) -> bool:
    return any(getattr(module, name, None) for name in (
        "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))  # fmt: skip


def _state(model: nn.Module) -> tuple:
    # Holding the tensors (detach shares storage and version counter) keeps their memory from being reused
    # by a replacement, so the same storage with the same version means the same values.
    return tuple((t.detach(), t._version) for t in (*model.parameters(), *model.buffers()))


def _same_state(old: tuple, new: tuple) -> bool:
    return len(old) == len(new) and all(
        a.data_ptr() == b.data_ptr() and a.dtype == b.dtype and a.shape == b.shape and va == vb
        for (a, va), (b, vb) in zip(old, new)
    )


def _is_channels_last(tensor: torch.Tensor) -> bool:
    return tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last) and not tensor.is_contiguous()
