"""The five maps against hand-computed values, finite differences and a slow reference loop."""

import pytest
import torch
from torch import nn

from signed_saliency import checks, saliency
from signed_saliency.saliency import METHODS, class_gradients, saliency_maps, scale_for_display

# A linear model S = W x + b on images of 2 channels × 1 × 3 pixels: g_c = W[c].
# Rows: class; inner lists: channel 0, channel 1 over the three pixels.
W = torch.tensor(
    [
        [[2.0, -1.0, 0.5], [-3.0, 1.0, -0.25]],  # class 0, the predicted class
        [[1.0, -2.0, 0.5], [-1.0, 1.0, 1.0]],
        [[0.0, -3.0, -1.0], [-4.0, 2.0, 2.0]],
    ],
    dtype=torch.float64,
)
# By hand, target 0, pixel by pixel (channel values, then max over channels):
#  pixel 0: ch0 g=2 > (1, 0) active; ch1 g=-3: neither (-1 > -3 > -4)  -> original 3, pos 2, neg 3, act 2, inact 0
#  pixel 1: ch0 g=-1 > (-2, -3) active although negative; ch1 g=1 ties class 1 -> neither
#                                                                      -> original 1, pos 1, neg 1, act 1, inact 0
#  pixel 2: ch0 g=0.5 ties class 1 -> neither; ch1 g=-0.25 < (1, 2) inactive
#                                                                      -> original .5, pos .5, neg .25, act 0, inact .25
EXPECTED_TARGET_0 = {
    "original": [3.0, 1.0, 0.5],
    "positive": [2.0, 1.0, 0.5],
    "negative": [3.0, 1.0, 0.25],
    "active": [2.0, 1.0, 0.0],
    "inactive": [0.0, 0.0, 0.25],
}


class Linear(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.weight = nn.Parameter(weight.reshape(weight.shape[0], -1).clone())
        self.bias = nn.Parameter(bias.clone())

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


def linear_model():
    return Linear(W, torch.tensor([10.0, 0.0, 0.0], dtype=torch.float64))  # class 0 wins on [0,1] inputs


def reference_maps(grads: torch.Tensor, target: int) -> dict[str, torch.Tensor]:
    """PROTOCOL §1 written as loops over pixel-channels: grads (C, K, H, W) of one image."""
    classes, channels, height, width = grads.shape
    value = {m: torch.zeros(channels, height, width, dtype=grads.dtype) for m in METHODS}
    for k in range(channels):
        for i in range(height):
            for j in range(width):
                g = grads[:, k, i, j].tolist()
                gt, others = g[target], [g[c] for c in range(classes) if c != target]
                value["original"][k, i, j] = abs(gt)
                value["positive"][k, i, j] = max(gt, 0.0)
                value["negative"][k, i, j] = max(-gt, 0.0)
                value["active"][k, i, j] = abs(gt) if all(gt > o for o in others) else 0.0
                value["inactive"][k, i, j] = abs(gt) if all(gt < o for o in others) else 0.0
    return {m: v.amax(dim=0) for m, v in value.items()}


def test_linear_model_maps_match_hand_computation():
    images = torch.rand(4, 2, 1, 3, dtype=torch.float64)
    maps = saliency_maps(linear_model(), images)
    assert set(maps) == set(METHODS)
    for method, expected in EXPECTED_TARGET_0.items():
        want = torch.tensor(expected, dtype=torch.float64).expand(4, 1, 3)
        assert torch.equal(maps[method], want), method


def test_linear_model_other_targets_match_reference():
    images = torch.rand(3, 2, 1, 3, dtype=torch.float64)
    targets = torch.tensor([1, 2, 0])
    maps = saliency_maps(linear_model(), images, target=targets)
    for b, t in enumerate(targets.tolist()):
        expected = reference_maps(W.view(3, 2, 1, 3), t)
        for method in METHODS:
            assert torch.equal(maps[method][b], expected[method]), (method, t)
    as_int = saliency_maps(linear_model(), images, target=2)
    expected = reference_maps(W.view(3, 2, 1, 3), 2)
    assert all(torch.equal(as_int[m][0], expected[m]) for m in METHODS)


def test_two_class_relu_network_matches_finite_differences():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2)).double()
    images = torch.rand(3, 3, 2, 2, dtype=torch.float64)
    maps = saliency_maps(net, images)
    eps = 1e-6
    for b in range(images.shape[0]):
        grads = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
        for index in range(12):
            step = torch.zeros(12, dtype=torch.float64)
            step[index] = eps
            step = step.view(1, 3, 2, 2)
            with torch.no_grad():
                diff = net(images[b : b + 1] + step) - net(images[b : b + 1] - step)
            grads.view(2, 12)[:, index] = diff[0] / (2 * eps)
        predicted = int(net(images[b : b + 1]).argmax())
        expected = reference_maps(grads, predicted)
        for method in METHODS:
            torch.testing.assert_close(maps[method][b], expected[method], atol=1e-6, rtol=1e-6)
        # With two classes, every pixel-channel is active or inactive unless the two gradients tie.
        assert torch.all((maps["active"][b] > 0) | (maps["inactive"][b] > 0))


def random_cnn():
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10),
    ).double()  # fmt: skip


def test_batched_maps_equal_a_per_image_per_class_loop():
    model = random_cnn()
    images = torch.rand(5, 3, 8, 8, dtype=torch.float64)
    maps = saliency_maps(model, images)
    for b in range(images.shape[0]):
        grads = []
        for c in range(10):
            x = images[b : b + 1].clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model(x)[0, c], x)
            grads.append(g[0])
        predicted = int(model(images[b : b + 1]).argmax())
        expected = reference_maps(torch.stack(grads), predicted)
        for method in METHODS:
            torch.testing.assert_close(maps[method][b], expected[method], rtol=1e-10, atol=1e-12)


def test_results_do_not_depend_on_chunking(monkeypatch):
    model = random_cnn()
    images = torch.rand(7, 3, 8, 8, dtype=torch.float64)
    whole = saliency_maps(model, images)
    monkeypatch.setattr(checks, "CHUNK_ELEMENTS", 3 * 8 * 8 * 10 * 2)  # two images per chunk
    chunked = saliency_maps(model, images, target=None)
    for method in METHODS:
        torch.testing.assert_close(chunked[method], whole[method], rtol=1e-12, atol=0)


def test_every_strategy_and_the_replicated_fallback_give_the_same_gradients():
    model = random_cnn().eval()
    images = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    logits, sequential = class_gradients(model, images, "sequential")
    _, batched = class_gradients(model, images, "batched")
    replicated = saliency.replicated_class_gradients(model, images, 10)[1]
    torch.testing.assert_close(batched, sequential, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(replicated, sequential, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(class_gradients(model, images)[1], sequential, rtol=0, atol=0)  # auto on the CPU
    torch.testing.assert_close(logits, model(images))
    with pytest.raises(ValueError, match="strategy must be"):
        class_gradients(model, images, "loop")


def test_model_left_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    model.train()
    model[3].weight.grad = torch.ones_like(model[3].weight)
    running_mean = model[1].running_mean.clone()
    saliency_maps(model, torch.rand(2, 3, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model[3].weight.grad, torch.ones_like(model[3].weight))
    assert model[0].weight.grad is None
    assert torch.equal(model[1].running_mean, running_mean)  # ran in eval mode


def test_only_requested_methods_and_no_class_wide_gradients(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("class-wide gradients computed although not asked for")

    monkeypatch.setattr(saliency, "class_gradients", forbidden)
    maps = saliency_maps(linear_model(), torch.rand(2, 2, 1, 3, dtype=torch.float64), methods=("negative",))
    assert list(maps) == ["negative"]
    assert torch.equal(maps["negative"][0], torch.tensor([[3.0, 1.0, 0.25]], dtype=torch.float64))


def test_maps_are_non_negative_without_negative_zero():
    maps = saliency_maps(random_cnn().float(), torch.rand(2, 3, 8, 8))
    for value in maps.values():
        assert value.dtype == torch.float32 and value.shape == (2, 8, 8)
        assert torch.all(value >= 0) and not torch.any(torch.signbit(value))


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        (torch.rand(2, 3, 8), {}, "shape"),
        (torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8), {}, "dtype"),
        (torch.rand(0, 3, 8, 8), {}, "empty"),
        (torch.rand(2, 3, 8, 8), {"target": 10}, "out of range"),
        (torch.rand(2, 3, 8, 8), {"target": torch.tensor([0, -1])}, "out of range"),
        (torch.rand(2, 3, 8, 8), {"target": torch.tensor([0, 1, 2])}, "shape"),
        (torch.rand(2, 3, 8, 8), {"target": torch.tensor([0.0, 1.0])}, "integer"),
        (torch.rand(2, 3, 8, 8), {"methods": ("sharp",)}, "unknown"),
    ],
)
def test_bad_input_raises_value_error(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        saliency_maps(random_cnn().float(), images, **kwargs)


@pytest.mark.parametrize("output", [lambda x: x.sum(dim=(2, 3)).unsqueeze(-1), lambda x: x.flatten(1)[:, :1]])
def test_model_with_wrong_output_is_rejected(output):
    class Odd(nn.Module):
        def forward(self, x):
            return output(x)

    with pytest.raises(ValueError, match="class"):
        saliency_maps(Odd(), torch.rand(2, 3, 4, 4))


def test_scale_for_display():
    constant = torch.full((2, 4, 4), 3.0)
    assert torch.equal(scale_for_display(constant), torch.zeros(2, 4, 4))
    ramp = torch.tensor([[[1.0, 2.0], [3.0, 5.0]]])
    assert torch.equal(scale_for_display(ramp), torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))
    assert torch.equal(scale_for_display(ramp[0]), ramp[0].sub(1).div(4))
    with pytest.raises(ValueError, match="map"):
        scale_for_display(torch.zeros(1, 1, 2, 2))
