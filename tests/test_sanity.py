"""Sanity checks: rank correlation and SSIM against SciPy and scikit-image, and the two checks' mechanics."""

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from signed_saliency.models import BasicCNN
from signed_saliency.sanity import (
    average_ranks,
    cascading_randomization,
    class_sensitivity,
    randomizable_layers,
    spearman,
    ssim,
)


def test_average_ranks_and_spearman_match_scipy_with_ties():
    values = torch.tensor([[0.0, 0.0, 1.0, 3.0, 1.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    torch.testing.assert_close(average_ranks(values), torch.from_numpy(rankdata(values.numpy(), axis=1)).float())
    a = torch.rand(4, 8, 8).round(decimals=1)  # many ties, as in sparse maps
    b = torch.rand(4, 8, 8).round(decimals=1)
    expected = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(4)]
    torch.testing.assert_close(spearman(a, b), torch.tensor(expected, dtype=torch.float32))
    assert spearman(torch.zeros(1, 4, 4), torch.rand(1, 4, 4)).isnan().all()  # a constant map has no ranks


def test_ssim_matches_scikit_image():
    a, b = torch.rand(3, 20, 24), torch.rand(3, 20, 24)
    b[0] = a[0] * 0.8 + 0.1
    expected = [structural_similarity(a[i].numpy(), b[i].numpy(), data_range=1.0) for i in range(3)]
    torch.testing.assert_close(ssim(a, b), torch.tensor(expected, dtype=torch.float32), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ssim(a, a), torch.ones(3))
    with pytest.raises(ValueError, match="smaller than the 7×7 window"):
        ssim(torch.rand(1, 5, 5), torch.rand(1, 5, 5))


class Scaled(nn.Module):
    """Logits = (1, 2, -1) × (w · x): every class's gradient is a multiple of w."""

    def __init__(self):
        super().__init__()
        self.w = nn.Linear(3 * 8 * 8, 1, bias=False)
        self.register_buffer("scale", torch.tensor([[1.0, 2.0, -1.0]]))

    def forward(self, x):
        return self.w(x.flatten(1)) * self.scale


def test_class_sensitivity_by_hand():
    torch.manual_seed(0)
    model, images = Scaled().eval(), torch.rand(2, 3, 8, 8)
    model.w.weight.data = torch.randn(1, 3 * 8 * 8) * 0.5 + 0.3  # mixed signs, but w · x > 0 for these images
    result = class_sensitivity(model, images, "gradient", ["original", "positive"])
    # |g| is |w| up to a factor for every class: the maps of the highest and lowest class rank alike.
    torch.testing.assert_close(result["original"], torch.ones(2))
    # w · x > 0 here, so class 1 is highest and class 2 lowest: positive maps are max(2w, 0) and max(-w, 0).
    assert (model(images).argmax(1) == 1).all() and (model(images).argmin(1) == 2).all()
    w = model.w.weight.view(3, 8, 8)
    high, low = (2 * w).clamp(min=0).amax(0), (-w).clamp(min=0).amax(0)
    expected = spearmanr(high.flatten().detach(), low.flatten().detach()).statistic
    torch.testing.assert_close(result["positive"], torch.full((2,), expected, dtype=torch.float32))


def test_cascading_randomization_leaves_the_model_alone_and_is_seeded():
    torch.manual_seed(0)
    model, images = BasicCNN().eval(), torch.rand(2, 3, 32, 32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    steps = cascading_randomization(model, images, "gradient", ["original", "active"], seed=3, max_steps=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [s.layers for s in steps] == [3, 6, 9, 11] and len(randomizable_layers(model)) == 11
    assert steps[-1].last_layer == "features.0"
    for step in steps:
        assert all(-1 <= v <= 1 for v in step.spearman.values()) and all(-1 <= v <= 1 for v in step.ssim.values())
    again = cascading_randomization(model, images, "gradient", ["original", "active"], seed=3, max_steps=4)
    assert again == steps
    first = cascading_randomization(model, images, "gradient", ["original"], seed=3)[0]
    assert first.layers == 1 and first.last_layer == "classifier" and first.spearman["original"] < 1
    assert np.isfinite(first.ssim["original"])


def test_randomization_of_a_constant_map_is_undefined_not_a_perfect_match():
    # RectGrad's negative map is all zero by construction: zeros against zeros would score SSIM 1.0,
    # which reads as "survives randomisation". Spearman and SSIM are both undefined (None) instead.
    torch.manual_seed(0)
    model, images = BasicCNN().eval(), torch.rand(3, 3, 32, 32)
    steps = cascading_randomization(model, images, "rectgrad", ["original", "negative"], seed=1, max_steps=2)
    for step in steps:
        assert step.spearman["negative"] is None and step.ssim["negative"] is None
        assert np.isfinite(step.ssim["original"]) and step.ssim["original"] < 1
