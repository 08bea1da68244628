"""How the library's forward and backward passes are made fast on each device.

Measured choices live here (benchmarks/results.md): batches sized per device (``forward_batch``),
since large batches fall out of a CPU's caches; convolution weights and images held channels-last
(``channels_last``, ``to_channels_last``), faster for the CPU's convolutions and, for deletion's
forward passes, with identical curves; eval-mode BatchNorm differentiated as the per-channel
multiplication it is, and the stem's input gradient by PyTorch's own transposed convolution
(``lean_input_gradients``); and an opt-in copy of a model for input gradients (``fused_copy``),
with each eval-mode BatchNorm folded into the convolution before it and channels-last weights.
Folding is exact in arithmetic but rounds differently, and in a ReLU network a unit whose input
lies within rounding of zero can then switch, which changes the gradient around it (see
``saliency.class_gradients``), so the library does not use it unless asked. The copy is cached per
model and remade whenever one of the model's parameters or buffers changes, in place or replaced;
a model in training mode, with hooks, or that torch.fx cannot trace is used as it is."""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

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

    Channels-last convolutions measured 1.56–1.70× (CNN) and 1.07–1.35× (ResNet-18) faster for the
    deletion forwards on the CPU across runs, with identical curves (benchmarks/results.md, "Lowering
    the deletion floor").
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


LEAN_PARTS = ("batch_norm", "stem")


@contextmanager
def lean_input_gradients(images: torch.Tensor, parts: Collection[str] = LEAN_PARTS) -> Iterator[None]:
    """Within the block, on the CPU, float32 layers are differentiated for their input alone, more cheaply
    than PyTorch does by default; the forward pass is untouched. Parameters get no gradient through
    them, so use it only for input gradients. ``parts`` picks which:

    - ``"batch_norm"``: eval-mode ``F.batch_norm`` as the per-channel multiplication it is, the same
      values bit for bit, without the reductions over the whole batch for the parameters' gradients
      that PyTorch's CPU kernel runs even when nobody asks for them (1.07–1.13× for all-class gradients
      of ResNet-18 at 32×32, benchmarks/results.md, "Lowering the gradients' floor");
    - ``"stem"``: ``F.conv2d`` of an input of at most four channels that requires a gradient (the first
      convolution on RGB images) by PyTorch's own transposed convolution instead of oneDNN's slower
      backward (see ``_StemConv2d``). It rounds differently: the gradients differ from PyTorch's by
      rounding alone (under 3e-7 of their largest value), and lie as close to a float64 computation.
    """
    unknown = set(parts) - set(LEAN_PARTS)
    if unknown:
        raise ValueError(f"unknown lean parts {sorted(unknown)}: choose from {LEAN_PARTS}")
    if images.device.type != "cpu" or not parts:
        yield
        return
    with _LeanInputGradients(frozenset(parts)):
        yield


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


class _LeanInputGradients(TorchFunctionMode):
    def __init__(self, parts: frozenset[str]):
        super().__init__()
        self.parts = parts

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.batch_norm and "batch_norm" in self.parts:
            call = _batch_norm_arguments(*args, **kwargs)
            if _is_lean(call):
                return _EvalBatchNorm.apply(*call[:5], call[-1])
        if func is F.conv2d and "stem" in self.parts:
            call = _conv2d_arguments(*args, **kwargs)
            if _is_stem(call):
                return _StemConv2d.apply(*call[:6])
        return func(*args, **kwargs)


def _conv2d_arguments(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> tuple:
    return input, weight, bias, stride, padding, dilation, groups


def _is_stem(call) -> bool:
    input, weight, bias, stride, padding, dilation, groups = call
    return (input.dim() == 4 and input.shape[1] <= 4 and input.requires_grad and groups == 1
            and not isinstance(padding, str) and input.dtype == weight.dtype == torch.float32)  # fmt: skip


class _StemConv2d(torch.autograd.Function):
    """A convolution of few input channels whose backward gives the input's gradient only, by PyTorch's own
    transposed convolution: oneDNN's, which ``F.conv2d`` would use, took 1.8–2.2× as long for the 7×7
    stride-2 stems of the basic CNN and ResNet-18 on 32×32 images (4.6 against 8.2 ms for 64 images)."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation):
        output = F.conv2d(input, weight, bias, stride, padding, dilation)
        ctx.weight = weight.detach()
        pairs = [(v, v) if isinstance(v, int) else tuple(v) for v in (stride, padding, dilation)]
        ctx.stride, ctx.padding, ctx.dilation = pairs
        kernel = weight.shape[2:]
        # What the transposed convolution must add at the far edge to give back the input's size.
        ctx.output_padding = [input.shape[2 + d] - ((output.shape[2 + d] - 1) * pairs[0][d] - 2 * pairs[1][d]
                                                    + pairs[2][d] * (kernel[d] - 1) + 1) for d in (0, 1)]  # fmt: skip
        return output

    @staticmethod
    def backward(ctx, grad_output):
        weight = ctx.weight.contiguous()
        grad = torch.ops.aten.slow_conv_transpose2d(
            grad_output.contiguous(), weight, list(weight.shape[2:]), None, list(ctx.stride), list(ctx.padding),
            ctx.output_padding, list(ctx.dilation),
        )  # fmt: skip
        return grad, None, None, None, None, None


def _batch_norm_arguments(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
                          eps=1e-5) -> tuple:  # fmt: skip
    return input, running_mean, running_var, weight, bias, training, momentum, eps


def _is_lean(call) -> bool:
    input, running_mean, running_var, weight, bias, training = call[:6]
    return (not training and running_mean is not None and running_var is not None
            and input.dtype == torch.float32
            and all(t is None or (t.dtype == input.dtype and not t.requires_grad)
                    for t in (running_mean, running_var))
            and all(t is None or t.dtype == input.dtype for t in (weight, bias)))  # fmt: skip


class _EvalBatchNorm(torch.autograd.Function):
    """Eval-mode batch norm whose backward gives the input's gradient only, rounded as PyTorch's CPU kernel
    rounds it: (dy · invstd) · weight, with invstd = 1 / sqrt(var + eps) taken in float64."""

    @staticmethod
    def forward(ctx, input, running_mean, running_var, weight, bias, eps):
        shape = (-1,) + (1,) * (input.dim() - 2)
        ctx.invstd = (1 / torch.sqrt(running_var.double() + eps)).to(input.dtype).view(shape)
        ctx.weight = None if weight is None else weight.detach().view(shape)
        return F.batch_norm(input, running_mean, running_var, weight, bias, False, 0.0, eps)

    @staticmethod
    def backward(ctx, grad_output):
        grad = grad_output * ctx.invstd
        if ctx.weight is not None:
            grad = grad.mul_(ctx.weight)
        return grad, None, None, None, None, None


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
