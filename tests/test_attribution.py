"""Attribution methods: equal to Captum where Captum has them, and to hand computations otherwise."""

import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from signed_saliency.attribution import (
    ATTRIBUTIONS,
    attribution_maps,
    attribution_maps_for,
    class_attributions,
    options_for,
    row_percentile,
)
from signed_saliency.models import BasicCNN, build
from signed_saliency.saliency import class_gradients, saliency_maps


@pytest.fixture
def small():
    torch.manual_seed(0)
    return BasicCNN().eval(), torch.rand(3, 3, 32, 32)


def per_class(attribute, images, classes=10):
    return torch.stack([attribute(c) for c in range(classes)], dim=1)


def test_gradient_and_gradient_x_input(small):
    model, images = small
    logits, grads = class_attributions(model, images, "gradient")
    torch.testing.assert_close(grads, class_gradients(model, images)[1])
    _, gxi = class_attributions(model, images, "gradient_x_input")
    expected = per_class(lambda c: InputXGradient(model).attribute(images, target=c), images)
    torch.testing.assert_close(gxi, expected, rtol=1e-5, atol=1e-7)


def test_smoothgrad_equals_captum_noise_tunnel_with_the_same_draws(small):
    model, images = small
    _, ours = class_attributions(model, images, "smoothgrad", samples=4, noise=0.2,
                                 generator=torch.Generator().manual_seed(7))  # fmt: skip

    def captum(c):
        torch.manual_seed(7)  # Captum draws from the global generator, all samples at once
        return NoiseTunnel(Saliency(model)).attribute(images, nt_type="smoothgrad", nt_samples=4, stdevs=0.2,
                                                      target=c, abs=False)  # fmt: skip

    torch.testing.assert_close(ours, per_class(captum, images), rtol=1e-4, atol=1e-6)


def test_integrated_gradients_equals_captum(small):
    model, images = small
    _, ours = class_attributions(model, images, "integrated_gradients", steps=8)
    expected = per_class(lambda c: IntegratedGradients(model).attribute(images, baselines=0.0, target=c, n_steps=8,
                                                                        method="gausslegendre"), images)  # fmt: skip
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)


def test_guided_backprop_equals_captum_on_the_cnn(small):
    model, images = small
    _, ours = class_attributions(model, images, "guided_backprop")
    expected = per_class(lambda c: GuidedBackprop(model).attribute(images, target=c), images)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-7)


def resnet_with_unshared_relus(model):
    """A copy whose every ReLU use is its own non-in-place module: a reference free of module reuse."""
    import copy

    from torchvision.models.resnet import BasicBlock

    clone = copy.deepcopy(model)
    clone.relu = nn.ReLU()

    def forward(block, x):
        identity = x if block.downsample is None else block.downsample(x)
        out = block.relu_a(block.bn1(block.conv1(x)))
        return block.relu_b(block.bn2(block.conv2(out)) + identity)

    for module in clone.modules():
        if isinstance(module, BasicBlock):
            module.relu_a, module.relu_b = nn.ReLU(), nn.ReLU()
            module.forward = forward.__get__(module)
    return clone


def test_guided_backprop_on_resnet_handles_the_relu_used_twice_per_block():
    torch.manual_seed(0)
    model, images = build("resnet18").eval(), torch.rand(2, 3, 32, 32)
    _, ours = class_attributions(model, images, "guided_backprop")
    reference = resnet_with_unshared_relus(model)
    torch.testing.assert_close(reference(images), model(images))
    expected = per_class(lambda c: GuidedBackprop(reference).attribute(images, target=c), images)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    _, plain = class_attributions(model, images, "gradient")
    assert not torch.allclose(ours, plain)  # the rule really applied at every use


class TwoLayer(nn.Module):
    def __init__(self, w1, w2):
        super().__init__()
        self.hidden, self.relu, self.out = nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False)
        self.hidden.weight.data, self.out.weight.data = w1, w2

    def forward(self, x):
        return self.out(self.relu(self.hidden(x.flatten(1))))


def test_guided_backprop_and_rectgrad_by_hand():
    w1 = torch.tensor([[1.0, -1.0, 0.5, 0.0], [0.5, 1.0, -1.0, 2.0], [-1.0, 0.0, 1.0, 1.0]])
    w2 = torch.tensor([[2.0, -1.0, 0.5], [-1.0, 1.0, 3.0]])
    model = TwoLayer(w1, w2).eval()
    x = torch.tensor([[0.9, 0.2, 0.6, 0.3]]).view(1, 1, 2, 2)
    a = torch.relu(w1 @ x.flatten())  # [1.0, 0.65, 0.0]: the third unit is off
    _, guided = class_attributions(model, x, "guided_backprop")
    for c in range(2):
        expected = w1.T @ (w2[c].clamp(min=0) * (a > 0))
        torch.testing.assert_close(guided[0, c].flatten(), expected)
    _, rect = class_attributions(model, x, "rectgrad", percentile=50.0)
    for c in range(2):
        relevance = (a * w2[c]).numpy()
        keep = torch.from_numpy(relevance > np.percentile(relevance, 50))
        expected = (x.flatten() * (w1.T @ (w2[c] * keep))).clamp(min=0)
        torch.testing.assert_close(rect[0, c].flatten(), expected)


def test_row_percentile_is_numpys():
    values = torch.randn(5, 101)
    for q in (0, 37.5, 98, 100):
        torch.testing.assert_close(
            row_percentile(values, q), torch.from_numpy(np.percentile(values.numpy(), q, 1)).float()
        )


def test_relu_rules_refuse_a_model_without_relu():
    model = build("convnext_tiny").eval()
    for method in ("guided_backprop", "rectgrad"):
        with pytest.raises(ValueError, match=f"{method} .* ConvNeXt has none \\(it uses GELU\\): the method does not"):
            class_attributions(model, torch.rand(1, 3, 32, 32), method)


def test_maps_of_every_method_and_kind(small):
    model, images = small
    for method in ATTRIBUTIONS:
        maps = attribution_maps(model, images, method, **options_for(method, {"samples": 2, "steps": 2}))
        assert set(maps) == {"original", "positive", "negative", "active", "inactive"}
        assert all(m.shape == (3, 32, 32) and (m >= 0).all() for m in maps.values()), method
    torch.testing.assert_close(attribution_maps(model, images, "gradient"), saliency_maps(model, images))
    highest, lowest = attribution_maps_for(model, images, "gradient", ["original"], ("highest", "lowest"))
    lowest_class = model(images).argmin(1)
    torch.testing.assert_close(lowest["original"], saliency_maps(model, images, ["original"], lowest_class)["original"])
    torch.testing.assert_close(highest["original"], saliency_maps(model, images, ["original"])["original"])
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribution_maps(model, images, "lrp")


def test_options_a_method_ignores_or_cannot_use_are_refused(small):
    model, images = small
    with pytest.raises(ValueError, match="gradient takes no options; steps would be ignored"):
        attribution_maps(model, images, "gradient", steps=4)
    with pytest.raises(ValueError, match="integrated_gradients takes steps; samples would be ignored"):
        attribution_maps(model, images, "integrated_gradients", samples=4)
    refused = [
        ("smoothgrad", {"samples": 0}, "samples must be a whole number ≥ 1, got 0"),
        ("smoothgrad", {"samples": 2.5}, "samples must be a whole number"),
        ("smoothgrad", {"noise": -0.1}, "noise must be a finite number ≥ 0"),
        ("integrated_gradients", {"steps": 0}, "steps must be a whole number ≥ 1"),
        ("rectgrad", {"percentile": 101}, r"percentile must lie in \[0, 100\]"),
        ("smoothgrad", {"generator": 3}, "generator must be a torch.Generator"),
    ]
    for method, option, message in refused:
        with pytest.raises(ValueError, match=message):
            attribution_maps(model, images, method, **option)
    assert options_for("smoothgrad", {"samples": 2, "steps": 3, "noise": 0.1}) == {"samples": 2, "noise": 0.1}
    assert options_for("gradient", {"samples": 2}) == {}


def test_relu_rules_on_mixed_activations_refuse_or_warn_by_an_explicit_parameter():
    import warnings
    from collections import Counter

    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    counts = Counter(type(m).__name__ for m in model.modules())
    assert counts["ReLU"] and counts["Hardswish"]  # the mix the rule was silently half-applied to
    images = torch.rand(2, 3, 32, 32)
    for method in ("guided_backprop", "rectgrad"):
        with pytest.raises(ValueError, match=f"{counts['ReLU']} ReLU modules .* not at its .*{counts['Hardswish']} "
                                             "Hardswish.*other_activations='warn'"):  # fmt: skip
            attribution_maps(model, images, method)
        with pytest.warns(UserWarning, match=f"not at its .*{counts['Hardswish']} Hardswish"):
            maps = attribution_maps(model, images, method, other_activations="warn")
        assert all(torch.isfinite(m).all() for m in maps.values())
    with pytest.raises(ValueError, match="other_activations must be 'refuse' or 'warn'"):
        attribution_maps(model, images, "guided_backprop", other_activations="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attribution_maps(build("resnet18"), images, "guided_backprop")  # ReLUs only: neither refused nor warned


def test_a_new_method_is_one_function_and_one_registry_entry(small, monkeypatch):
    from signed_saliency import attribution

    def doubled_gradient(model, images, factor: float = 2.0):
        logits, grads = class_gradients(model, images)
        return logits, factor * grads

    monkeypatch.setitem(attribution.REGISTRY, "doubled_gradient", doubled_gradient)
    model, images = small
    assert attribution.method_options("doubled_gradient") == ("factor",)
    maps = attribution_maps(model, images, "doubled_gradient", factor=3.0)
    plain = saliency_maps(model, images)
    for kind in ("original", "positive", "negative", "active", "inactive"):
        torch.testing.assert_close(maps[kind], 3.0 * plain[kind])
    with pytest.raises(ValueError, match="doubled_gradient takes factor; steps would be ignored"):
        attribution_maps(model, images, "doubled_gradient", steps=2)
