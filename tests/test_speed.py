"""The speed-ups change nothing but rounding: fused gradients against float64, the cache against changed weights."""

import copy
from unittest import mock

import pytest
import torch
from torch import nn

from benchmarks.gradients import one_forward_c_backwards
from signed_saliency import saliency, speed
from signed_saliency.saliency import class_gradients


class Block(nn.Module):
    """A residual block like ResNet's: conv → BN → ReLU → conv → BN, plus the input."""

    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def batchnorm_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), Block(8), nn.MaxPool2d(2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))  # fmt: skip
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):  # running statistics far from 0 and 1
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.2, 3.0)
        nn.init.uniform_(bn.weight, 0.5, 2.0)
        nn.init.uniform_(bn.bias, -0.3, 0.3)
    return model.eval()


def test_fused_gradients_agree_with_float64_on_a_small_network():
    model = batchnorm_net()
    images = torch.rand(6, 3, 12, 12)
    exact_logits, exact = class_gradients(copy.deepcopy(model).double(), images.double())
    logits, fused = class_gradients(model, images, fused=True)
    plain = class_gradients(model, images)[1]
    copy_ = speed.fused_copy(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy_.modules())  # the BatchNorms really were folded
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in copy_.parameters() if p.dim() == 4)
    scale = exact.abs().max().item()
    fused_error = (fused.double() - exact).abs().max().item()
    plain_error = (plain.double() - exact).abs().max().item()
    assert scale > 0.01 and plain_error < 1e-6 * scale
    assert fused_error < 1e-6 * scale, (fused_error, plain_error, scale)
    torch.testing.assert_close(logits.double(), exact_logits, rtol=1e-5, atol=1e-6)
    assert fused.is_contiguous() and fused.shape == (6, 10, 3, 12, 12)


def test_the_model_itself_is_left_untouched():
    model = batchnorm_net()
    before = copy.deepcopy(model.state_dict())
    class_gradients(model, torch.rand(2, 3, 12, 12), fused=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad and p.is_contiguous() for p in model.parameters())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_the_fused_copy_is_cached_until_a_parameter_or_buffer_changes():
    model = batchnorm_net()
    images = torch.rand(2, 3, 12, 12)
    first = speed.fused_copy(model)
    assert speed.fused_copy(model) is first
    changes = [
        lambda: model[0].weight.mul_(2),  # in place, as an optimiser step does
        lambda: model[1].running_mean.add_(0.25),  # a buffer
        lambda: model.load_state_dict(batchnorm_net().state_dict() | {"7.bias": torch.arange(10.0)}),
        lambda: setattr(model[7].weight, "data", model[7].weight.data * -1),  # replaced, not changed in place
    ]
    previous = first
    for change in changes:
        with torch.no_grad():
            change()
        again = speed.fused_copy(model)
        assert again is not previous
        with torch.no_grad():
            torch.testing.assert_close(again(images), model(images), rtol=1e-5, atol=1e-5)
        previous = again


def test_models_that_cannot_be_fused_safely_are_used_as_they_are():
    training = batchnorm_net().train()
    assert speed.fused_copy(training) is training
    hooked = batchnorm_net()
    hooked[2].register_forward_hook(lambda module, inputs, output: output * 2)
    assert speed.fused_copy(hooked) is hooked

    class Untraceable(nn.Module):  # control flow on a tensor's value: torch.fx cannot trace it
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3 * 4 * 4, 3)

        def forward(self, x):
            return self.linear(x.flatten(1)) * (2 if x.sum() > 0 else 1)

    untraceable = Untraceable().eval()
    assert speed.fused_copy(untraceable) is untraceable
    images = torch.rand(2, 3, 4, 4)
    grads = class_gradients(untraceable, images, fused=True)[1]
    torch.testing.assert_close(grads[:, 1].flatten(1), 2 * untraceable.linear.weight[1].detach().expand(2, -1))


def test_chunks_on_the_cpu_give_the_same_gradients(monkeypatch):
    model = batchnorm_net().double()
    images = torch.rand(5, 3, 12, 12, dtype=torch.float64)
    whole = class_gradients(model, images)
    monkeypatch.setattr(saliency, "forward_batch", lambda images: 2)
    chunked = class_gradients(model, images)
    for a, b in zip(whole, chunked):  # BLAS may round a matrix product differently for another batch size
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


def test_forward_batch_is_sized_per_device():
    assert speed.forward_batch(torch.rand(2, 3, 224, 224)) == 6
    assert speed.forward_batch(torch.rand(2, 3, 32, 32)) == 341
    assert speed.forward_batch(torch.rand(1, 3, 2048, 2048)) == 1


@pytest.mark.parametrize("fused", [True, False])
def test_the_fused_flag_is_honoured_for_any_dtype(fused):
    model = batchnorm_net().double()
    images = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    expected = class_gradients(model, images, fused=False)[1]
    torch.testing.assert_close(class_gradients(model, images, fused=fused)[1], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("strategy", ["sequential", "batched"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_lean_batch_norm_backward_gives_pytorchs_gradients_bit_for_bit(strategy, channels_last):
    model = batchnorm_net()
    images = torch.rand(4, 3, 12, 12)
    if channels_last:
        model, images = model.to(memory_format=torch.channels_last), speed.to_channels_last(images)
    expected = one_forward_c_backwards(model, images)  # PyTorch's own backward, no lean mode
    with mock.patch.object(saliency, "lean_input_gradients", lambda x: speed.lean_input_gradients(x, ["batch_norm"])):
        assert torch.equal(class_gradients(model, images, strategy)[1], expected)


def test_the_lean_batch_norm_backward_is_the_per_channel_scale_and_leaves_other_cases_to_pytorch():
    bn = nn.BatchNorm1d(3).eval()
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    nn.init.constant_(bn.weight, 3.0)
    x = torch.rand(5, 3, requires_grad=True)
    by_hand = (3.0 / torch.tensor([4.0, 0.25, 1.0]).add(bn.eps).sqrt()).expand(5, 3)  # weight / sqrt(var + eps)
    with speed.lean_input_gradients(x):
        out = bn(x)
        assert type(out.grad_fn).__name__ == "_EvalBatchNormBackward"
        (grad,) = torch.autograd.grad(out.sum(), x)
        stats = bn.running_mean.clone(), bn.running_var.clone()
        bn.train()  # training mode uses the batch's statistics: PyTorch's own backward
        assert type(bn(x).grad_fn).__name__ != "_EvalBatchNormBackward"
        bn.eval()
        assert type(copy.deepcopy(bn).double()(x.double()).grad_fn).__name__ != "_EvalBatchNormBackward"  # float32 only
    torch.testing.assert_close(grad, by_hand)
    assert torch.equal(out, nn.functional.batch_norm(x, *stats, bn.weight, bn.bias, eps=bn.eps))  # PyTorch's forward
    assert type(bn(x).grad_fn).__name__ != "_EvalBatchNormBackward"  # nothing outside the block


@pytest.mark.parametrize("stride, padding, size", [(2, 3, 32), (2, 3, 31), (1, 1, 9), ((2, 1), (0, 2), 10)])
def test_the_lean_stem_gives_pytorchs_input_gradient_but_for_rounding(stride, padding, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, (7, 5), stride=stride, padding=padding)
    x = torch.rand(4, 3, size, size + 1, requires_grad=True)
    weights = torch.randn_like(conv(x))
    (expected,) = torch.autograd.grad((conv(x) * weights).sum(), x)
    with speed.lean_input_gradients(x, ["stem"]):
        out = conv(x)
        assert type(out.grad_fn).__name__ == "_StemConv2dBackward"
        (lean,) = torch.autograd.grad((out * weights).sum(), x)
        wide = torch.rand(2, 5, 9, 9, requires_grad=True)  # more than four channels: PyTorch's own
        assert type(nn.Conv2d(5, 2, 3)(wide).grad_fn).__name__ == "ConvolutionBackward0"
    assert torch.equal(out, conv(x))  # the forward is PyTorch's own
    (exact,) = torch.autograd.grad((copy.deepcopy(conv).double()(x.double()) * weights.double()).sum(), x)
    scale = exact.abs().max()
    assert lean.shape == x.shape and (lean - expected).abs().max() < 1e-6 * scale
    assert (lean.double() - exact).abs().max() < 2 * (expected.double() - exact).abs().max() + 1e-7 * scale
    with pytest.raises(ValueError, match="unknown lean parts"):
        with speed.lean_input_gradients(x, ["batchnorm"]):
            pass


def test_both_strategies_agree_with_every_lean_part():
    model, images = batchnorm_net(), torch.rand(3, 3, 12, 12)
    assert torch.equal(class_gradients(model, images, "batched")[1], class_gradients(model, images, "sequential")[1])
