"""The Captum-style entry point and the Quantus explain_func give the library's own maps."""

import numpy as np
import pytest
import torch
from torch import nn

from signed_saliency import saliency_maps
from signed_saliency.checks import METHODS
from signed_saliency.interop import SignedSaliency, quantus_explain_func


def small_model(channels=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)).eval()


@pytest.mark.parametrize("kind", METHODS)
def test_attribute_is_saliency_maps_in_the_inputs_shape(kind):
    model, images, target = small_model(), torch.rand(3, 3, 8, 8), torch.tensor([0, 4, 2])
    attributions = SignedSaliency(model).attribute(images, target=target, kind=kind)
    assert attributions.shape == images.shape
    expected = saliency_maps(model, images, (kind,), target)[kind]
    for channel in range(3):
        assert torch.equal(attributions[:, channel], expected)
    assert not SignedSaliency(model).has_convergence_delta()


def test_attribute_agrees_with_captum_saliency_on_one_channel():
    from captum.attr import Saliency

    model, images = small_model(channels=1), torch.rand(4, 1, 8, 8)
    target = [1, 0, 3, 2]
    ours = SignedSaliency(model)
    torch.testing.assert_close(ours.attribute(images, target=target), Saliency(model).attribute(images, target=target))
    signed = Saliency(model).attribute(images, target=target, abs=False)
    torch.testing.assert_close(ours.attribute(images, target=target, kind="positive"), signed.clamp(min=0))
    torch.testing.assert_close(ours.attribute(images, target=target, kind="negative"), (-signed).clamp(min=0))


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_gives_smoothgrad_of_the_maps_as_of_captum_saliency(nt_type):
    """On one channel the original map is |gradient|, Captum's Saliency: the same noise (same seed) must give
    the same SmoothGrad, SmoothGrad² and VarGrad; the signed maps go through NoiseTunnel as well."""
    from captum.attr import NoiseTunnel, Saliency

    model, images = small_model(channels=1), torch.rand(3, 1, 8, 8)
    target = [1, 0, 3]
    options = {"nt_type": nt_type, "nt_samples": 6, "stdevs": 0.2, "target": target}
    torch.manual_seed(5)
    ours = NoiseTunnel(SignedSaliency(model, noisy_inputs=True)).attribute(images, **options)
    torch.manual_seed(5)
    theirs = NoiseTunnel(Saliency(model)).attribute(images, **options)
    torch.testing.assert_close(ours, theirs)
    torch.manual_seed(5)
    positive = NoiseTunnel(SignedSaliency(model, noisy_inputs=True)).attribute(images, kind="positive", **options)
    assert positive.shape == images.shape and not torch.equal(positive, ours)
    # Without noisy_inputs the noisy copies are refused, with a hint that names the way out.
    with pytest.raises(ValueError, match=r"look like noisy copies .*SignedSaliency\(model, noisy_inputs=True\)"):
        NoiseTunnel(SignedSaliency(model)).attribute(images, **options)


def test_bad_use_is_refused():
    with pytest.raises(ValueError, match="unknown kind"):
        SignedSaliency(small_model()).attribute(torch.rand(1, 3, 8, 8), kind="absolute")
    with pytest.raises(ValueError, match="takes a torch.nn.Module"):
        SignedSaliency(lambda x: x)
    with pytest.raises(ValueError, match=r"got also \['steps'\]"):
        quantus_explain_func(small_model(), np.zeros((1, 3, 8, 8)), np.zeros(1), steps=4)


@pytest.mark.parametrize("kind", METHODS)
def test_quantus_explain_func_is_saliency_maps(kind):
    model, images, targets = small_model(), np.random.default_rng(0).random((3, 3, 8, 8)), np.array([1, 2, 0])
    maps = quantus_explain_func(model, images, targets, kind=kind, device="cpu")
    assert maps.shape == (3, 1, 8, 8) and maps.dtype == np.float32
    expected = saliency_maps(model, torch.as_tensor(images, dtype=torch.float32), (kind,), torch.tensor(targets))
    np.testing.assert_array_equal(maps[:, 0], expected[kind].numpy())


def test_a_quantus_metric_scores_the_maps_through_the_explain_func():
    import quantus

    model = small_model()
    x = np.random.default_rng(1).random((4, 3, 8, 8)).astype(np.float32)
    y = model(torch.as_tensor(x)).argmax(1).numpy()
    for kind in ("original", "positive", "active"):
        precomputed = quantus_explain_func(model, x, y, kind=kind)
        metric = quantus.Sparseness(disable_warnings=True)
        through = metric(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=quantus_explain_func,
                         explain_func_kwargs={"kind": kind}, device="cpu")  # fmt: skip
        given = quantus.Sparseness(disable_warnings=True)(model=model, x_batch=x, y_batch=y, a_batch=precomputed,
                                                          device="cpu")  # fmt: skip
        np.testing.assert_allclose(through, given)
        flipping = quantus.PixelFlipping(features_in_step=16, perturb_baseline="black", disable_warnings=True)
        curves = flipping(model=model, x_batch=x, y_batch=y, a_batch=None, explain_func=quantus_explain_func,
                          explain_func_kwargs={"kind": kind}, device="cpu")  # fmt: skip
        assert len(curves) == 4 and all(np.isfinite(c).all() for c in curves)


def test_the_readme_example_runs_as_it_stands():
    from signed_saliency import paths

    readme = (paths.REPO_ROOT / "README.md").read_text()
    block = readme.split("**Captum and Quantus.**", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["attributions"].shape == namespace["images"].shape == namespace["smooth"].shape
    assert len(namespace["scores"]) == 8
