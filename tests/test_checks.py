"""The shared checks: every submodule's mode handed back, images in [0, 1] only, targets of any integer kind."""

import time

import numpy as np
import pytest
import torch
from torch import nn

from signed_saliency import deletion_curve, saliency_maps
from signed_saliency.attribution import attribution_maps
from signed_saliency.checks import PIXEL_TOLERANCE, check_images, evaluating
from signed_saliency.deletion import deletion_curves
from signed_saliency.models import BasicCNN
from signed_saliency.sanity import cascading_randomization, class_sensitivity


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )


def modes(model):
    return [m.training for m in model.modules()]


CALLS = {
    "saliency_maps": lambda m, x: saliency_maps(m, x),
    "deletion_curve": lambda m, x: deletion_curve(m, x, x.mean(1), "black"),
    "deletion_curves": lambda m, x: deletion_curves(m, x, {"a": (x.mean(1), "white")}),
    "attribution_maps": lambda m, x: attribution_maps(m, x, "smoothgrad", samples=2),
    "class_sensitivity": lambda m, x: class_sensitivity(m, x, "gradient", ["original"]),
    "cascading_randomization": lambda m, x: cascading_randomization(m, x, "gradient", ["original"], max_steps=1),
}


@pytest.mark.parametrize("call", CALLS)
def test_every_submodule_comes_back_in_its_own_mode(call):
    images = torch.rand(2, 3, 8, 8)
    # A model being fine-tuned with its BatchNorm frozen: train() at the top, eval() below.
    fine_tuning = small_model().train()
    fine_tuning[1].eval()
    before = modes(fine_tuning)
    CALLS[call](fine_tuning, images)
    assert modes(fine_tuning) == before and not fine_tuning[1].training
    # An eval model with one Dropout left in train mode (MC dropout): it stays in train mode.
    mc_dropout = small_model().eval()
    mc_dropout[3].train()
    before = modes(mc_dropout)
    CALLS[call](mc_dropout, images)
    assert modes(mc_dropout) == before and mc_dropout[3].training


def test_evaluating_runs_in_eval_mode_and_restores_after_an_error():
    model = small_model().train()
    model[1].eval()
    before = modes(model)
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating(model):
            assert not any(modes(model))
            raise RuntimeError("inside")
    assert modes(model) == before


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x: x.masked_fill(x > 0.9, float("nan")), "NaN or infinite"),
        (lambda x: torch.where(x > 0.9, float("inf"), x), "NaN or infinite"),
        (lambda x: x * 255, "divide by 255"),
        (lambda x: x * 2 - 1, "normalised"),
        (lambda x: (x - 0.45) / 0.22, "normalised"),
    ],
)
@pytest.mark.parametrize("call", ["saliency_maps", "deletion_curve", "attribution_maps"])
def test_images_outside_0_1_or_not_finite_are_refused(make, message, call):
    images = make(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=message):
        CALLS[call](small_model().eval(), images)


def test_values_within_rounding_of_0_and_1_pass():
    images = torch.rand(2, 3, 8, 8)
    images[0, 0, 0, 0], images[1, 0, 0, 0] = 1 + PIXEL_TOLERANCE / 2, -PIXEL_TOLERANCE / 2
    check_images(images)
    images[0, 0, 0, 0] = 1 + 2 * PIXEL_TOLERANCE
    with pytest.raises(ValueError, match=r"found min .* and max 1.002"):
        check_images(images)


def test_the_image_check_is_cheap_against_one_forward_pass():
    model, images = BasicCNN().eval(), torch.rand(64, 3, 224, 224)
    with torch.inference_mode():
        model(images)  # warm-up

        def best(f, repeats=3):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                f()
                times.append(time.perf_counter() - start)
            return min(times)

        forward = best(lambda: model(images))
        check = best(lambda: check_images(images))
    assert check < 0.1 * forward, f"check {check * 1e3:.1f} ms against a forward pass of {forward * 1e3:.1f} ms"


def test_targets_may_be_numpy_integers_or_lists_of_ints():
    model, images = small_model().eval(), torch.rand(3, 3, 8, 8)
    expected = saliency_maps(model, images, target=torch.tensor([2, 0, 1]))
    for target in ([2, 0, 1], np.array([2, 0, 1]), (2, 0, 1)):
        maps = saliency_maps(model, images, target=target)
        assert all(torch.equal(maps[k], expected[k]) for k in expected)
    one = saliency_maps(model, images, target=torch.tensor([1, 1, 1]))
    for target in (np.int64(1), np.int32(1), 1):
        maps = saliency_maps(model, images, target=target)
        assert all(torch.equal(maps[k], one[k]) for k in one)
    for bad, message in ((1.0, "must be None, an int"), ([0.5, 1, 2], "integer class indices"), (True, "an int"),
                         ([0, 1], r"shape \(3,\)"), ([0, 1, 3], "out of range")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            saliency_maps(model, images, target=bad)


def test_a_model_returning_a_tuple_is_told_how_to_fix_it():
    class TupleModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = small_model()

        def forward(self, x):
            return self.inner(x), x

    with pytest.raises(ValueError, match="returns a tuple or dict"):
        saliency_maps(TupleModel().eval(), torch.rand(2, 3, 8, 8))


def linear_model(classes, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, classes, bias=False)).eval()


def test_competitors_k_compares_with_the_k_strongest_other_classes_by_hand():
    model, images = linear_model(6), torch.rand(3, 3, 4, 4)
    k = 2
    maps = saliency_maps(model, images, methods=("active", "inactive", "original"), competitors=k)
    weights = model[1].weight.detach().view(6, 3, 4, 4)  # a linear model's gradient of class c is its row c
    logits = model(images).detach()
    for i in range(3):
        target = int(logits[i].argmax())
        others = [c for c in logits[i].argsort(descending=True).tolist() if c != target][:k]
        own, rivals = weights[target], weights[others]
        active = torch.where(own > rivals.amax(0), own.abs(), 0).amax(0)
        inactive = torch.where(own < rivals.amin(0), own.abs(), 0).amax(0)
        torch.testing.assert_close(maps["active"][i], active)
        torch.testing.assert_close(maps["inactive"][i], inactive)
        torch.testing.assert_close(maps["original"][i], own.abs().amax(0))
    assert maps.metadata == {"classes": 6, "competitors": 2, "protocol": "top-2 competitors (not PROTOCOL §1)"}


def test_competitors_covering_every_class_is_the_protocol_itself():
    model, images = linear_model(5), torch.rand(2, 3, 4, 4)
    exact = saliency_maps(model, images)
    assert exact.metadata == {"classes": 5, "competitors": 4, "protocol": "PROTOCOL §1"}
    for k in (4, 10):
        maps = saliency_maps(model, images, competitors=k)
        assert maps.metadata["protocol"] == "PROTOCOL §1" and all(torch.equal(maps[m], exact[m]) for m in exact)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="competitors must be None"):
            saliency_maps(model, images, competitors=bad)


def test_chunks_are_sized_by_the_real_number_of_classes():
    from signed_saliency.checks import chunk_size, count_classes

    images = torch.rand(12, 3, 224, 224)
    assert chunk_size(images, True, 10) == 11  # the datasets here: as before
    assert chunk_size(images, True, 1000) == 1  # 0.6 GB of gradients, not 11 images' 6.6 GB
    assert chunk_size(images, False, 1000) == 12
    assert 1 * 1000 * images[0].numel() * 4 < 4 << 30
    with pytest.raises(ValueError, match="competitors=k"):
        chunk_size(images, True, 10_000)
    assert count_classes(linear_model(7), torch.rand(2, 3, 4, 4)) == 7


def test_a_long_call_shows_a_progress_bar(capsys):
    model, images = linear_model(4), torch.rand(4, 3, 4, 4)
    saliency_maps(model, images, progress=True)
    assert "backward passes per chunk" in capsys.readouterr().err
    saliency_maps(model, images, progress=False)
    assert capsys.readouterr().err == ""


def test_deletion_errors_say_what_is_wrong():
    import warnings

    from signed_saliency.deletion import NothingToDeleteWarning, auc

    model, images = small_model().eval(), torch.rand(4, 3, 8, 8)
    maps = torch.rand(4, 8, 8)
    with pytest.raises(ValueError, match="dtype torch.uint8; use data.to_float"):
        deletion_curve(model, (images * 255).to(torch.uint8), maps, "black")
    with pytest.raises(
        ValueError, match=r"must be a torch.Tensor of shape \(4, 8, 8\), got ndarray: use torch.from_numpy"
    ):
        deletion_curve(model, images, maps.numpy(), "black")
    for dtype in (torch.int64, torch.bool):
        with pytest.raises(ValueError, match=f"float tensor, got dtype {dtype}"):
            deletion_curve(model, images, (maps > 0.5).to(dtype), "black")
    with pytest.raises(ValueError, match=r"empty batch \(B = 0\)"):
        deletion_curve(model, images[:0], maps[:0], "black")
    for output, shape in (
        (lambda y: (y, y), "tuple"),
        (lambda y: {"logits": y}, "dict"),
        (lambda y: y[:, 0], r"\(4,\)"),
    ):

        class Odd(nn.Module):
            def __init__(self, wrap=output):
                super().__init__()
                self.inner, self.wrap = small_model(), wrap

            def forward(self, x):
                return self.wrap(self.inner(x))

        with pytest.raises(ValueError, match=f"must return logits of shape .* got {shape}"):
            deletion_curve(Odd().eval(), images, maps, "black")
    zero = maps.clone()
    zero[1] = 0
    with pytest.warns(NothingToDeleteWarning, match="1 of 4 maps are constant"):
        curve = deletion_curve(model, images, zero, "black")
    assert curve.deleted[-1] < 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deletion_curve(model, images, maps, "black")  # no warning for ordinary maps
    with pytest.raises(ValueError, match="at least two points"):
        auc([0.1], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        auc([0.0, 0.5], [1.0, float("nan")])
    with pytest.raises(ValueError, match="ascending"):
        auc([0.5, 0.0], [1.0, 1.0])
    assert auc([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(0.5)


def test_scale_for_display_keeps_the_dtype_and_handles_non_finite_values():
    from signed_saliency.saliency import scale_for_display

    maps = torch.tensor([[[0.0, 2.0], [4.0, float("inf")]], [[1.0, float("nan")], [float("-inf"), 3.0]]],
                        dtype=torch.float64)  # fmt: skip
    scaled = scale_for_display(maps)
    assert scaled.dtype == torch.float64
    assert scaled[0].tolist() == [[0.0, 0.5], [1.0, 1.0]]  # finite values set the scale; +Inf is the brightest
    assert scaled[1].tolist() == [[0.0, 0.0], [0.0, 1.0]]  # NaN and -Inf show as 0
    assert scale_for_display(torch.full((3, 3), 7.0, dtype=torch.float16)).dtype == torch.float16
    assert scale_for_display(torch.full((3, 3), 7.0)).eq(0).all()
    assert scale_for_display(torch.tensor([[0, 5], [10, 5]])).tolist() == [[0.0, 0.5], [1.0, 0.5]]
