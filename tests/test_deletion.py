"""Deletion and allegiance on known curves, against a slow reference, and AUC by hand."""

import pytest
import torch
from torch import nn

from signed_saliency import deletion
from signed_saliency.deletion import (
    FRACTIONS,
    allegiance_curve,
    auc,
    deleted_fraction,
    deletion_curve,
    deletion_curves,
    deletion_masks,
)

# On 4×4 images, the model predicts class 1 while more than 2.5 of the four "key" pixels
# (the top-left 2×2 block, channel 0) are bright; otherwise class 0.
KEY = torch.zeros(4, 4, dtype=torch.bool)
KEY[:2, :2] = True


class KeyPixels(nn.Module):
    def forward(self, x):
        score = x[:, 0][:, KEY].sum(dim=1) - 2.5
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_known_curve_from_a_model_that_depends_on_known_pixels():
    images = torch.ones(2, 3, 4, 4)
    key_first = torch.where(KEY, 100.0, 0.0) + torch.arange(16.0).view(4, 4)  # key pixels ranked 1st-4th
    key_last = torch.where(KEY, 0.0, 100.0) + torch.arange(1.0, 17.0).view(4, 4)  # ranked 13th-16th
    saliency = torch.stack([key_first, key_last])
    # k = round(p·16) for FRACTIONS: 0, 0, 1, 1, 2, 3, 5, 6, 8, 10, 11, 13, 14.
    # Image 0 loses its prediction once 2 key pixels go: k ≥ 2, i.e. from p = 0.1.
    # Image 1 loses it only when 2 of its last-ranked key pixels go: k ≥ 14, i.e. p = 0.9.
    expected_image0 = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    expected_image1 = [1] * 12 + [0]
    expected = torch.tensor(expected_image0, dtype=torch.float) / 2 + torch.tensor(expected_image1) / 2
    curve = deletion_curve(KeyPixels(), images, saliency, "black")
    assert torch.equal(curve.allegiance, expected)
    ks = torch.tensor([0, 0, 1, 1, 2, 3, 5, 6, 8, 10, 11, 13, 14], dtype=torch.float)
    assert torch.equal(curve.deleted, ks / 16)
    assert curve.auc == pytest.approx(auc(FRACTIONS, expected.tolist()))
    # White deletion of white pixels changes nothing.
    assert torch.equal(allegiance_curve(KeyPixels(), images, saliency, "white"), torch.ones(13))


class Recorder(nn.Module):
    """Predicts by channel-0 brightness and keeps every batch it saw."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.stack([x[:, 0].mean(dim=(1, 2)), torch.full((x.shape[0],), 0.5)], dim=1)


@pytest.mark.parametrize("fill, value", [("black", 0.0), ("white", 1.0)])
def test_zero_valued_pixels_are_never_deleted(fill, value):
    torch.manual_seed(0)
    images = torch.rand(3, 3, 6, 6) * 0.5 + 0.25  # no pixel is 0 or 1 before deletion
    saliency = torch.rand(3, 6, 6) + 0.01
    saliency[:, :, :3] = 0  # the left half is never deleted
    model = Recorder()
    curve = deletion_curve(model, images, saliency, fill)
    altered = torch.cat(model.seen[1:])  # the first batch is the unaltered images
    is_fill = altered == value
    assert not is_fill[..., :3].any()  # nothing on the zero-valued half was touched
    assert is_fill[..., 3:].any()
    assert torch.equal(is_fill.all(dim=1), is_fill.any(dim=1))  # a deleted pixel loses all channels
    assert curve.deleted[-1].item() == pytest.approx(0.5)  # 90% asked, only the non-zero half exists
    assert curve.deleted.max().item() == pytest.approx(0.5)


def reference_mask(saliency_map: torch.Tensor, p: float) -> torch.Tensor:
    """PROTOCOL §2 for one map, as written: sort, k = round(p·H·W), τ = s[k], delete M > τ and M ≠ 0."""
    values = sorted(saliency_map.flatten().tolist(), reverse=True)
    k = round(p * len(values))
    tau = values[k] if k < len(values) else float("-inf")
    return (saliency_map > tau) & (saliency_map != 0)


def test_masks_with_ties_match_the_protocol_written_out():
    torch.manual_seed(0)
    saliency = torch.randint(0, 4, (5, 5, 5)).float()  # many ties, many zeros
    fractions = (0, 0.03, 0.1, 0.25, 0.5, 0.9, 1.0)
    masks = deletion_masks(saliency, fractions)
    for f, p in enumerate(fractions):
        for b in range(saliency.shape[0]):
            assert torch.equal(masks[f, b], reference_mask(saliency[b], p)), (p, b)
    assert torch.equal(deleted_fraction(saliency, fractions), masks.flatten(2).float().mean(dim=(1, 2)))


def random_cnn():
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 3 * 3, 10),
    ).double()  # fmt: skip


@pytest.mark.parametrize("fill", ["black", "white"])
def test_batched_curve_equals_a_per_image_per_fraction_loop(fill):
    model = random_cnn().eval()
    torch.manual_seed(4)
    images = torch.rand(12, 3, 8, 8, dtype=torch.float64)
    saliency = torch.rand(12, 8, 8, dtype=torch.float64)
    saliency[saliency < 0.4] = 0
    value = 0.0 if fill == "black" else 1.0
    expected = []
    for p in FRACTIONS:
        agree = 0
        for b in range(images.shape[0]):
            with torch.no_grad():
                original = model(images[b : b + 1]).argmax()
                altered = images[b].clone()
                altered[:, reference_mask(saliency[b], p)] = value
                agree += int(model(altered[None]).argmax() == original)
        expected.append(agree / images.shape[0])
    curve = allegiance_curve(model, images, saliency, fill)
    assert curve.tolist() == pytest.approx(expected, abs=1e-6)  # float32 means of exact counts
    assert min(expected) < 1  # the reference does change predictions: the comparison has teeth
    for batch_size in (1, 5):
        assert torch.equal(allegiance_curve(model, images, saliency, fill, batch_size=batch_size), curve)


def test_chunked_masks_and_shared_predictions_give_the_same_curve(monkeypatch):
    model = random_cnn().eval()
    images = torch.rand(9, 3, 8, 8, dtype=torch.float64)
    saliency = torch.rand(9, 8, 8, dtype=torch.float64)
    whole = deletion_curve(model, images, saliency, "black")
    monkeypatch.setattr(deletion, "_MASK_ELEMENTS", len(FRACTIONS) * 64 * 2)
    predictions = model(images).argmax(1)
    chunked = deletion_curve(model, images, saliency, "black", original_predictions=predictions)
    assert torch.equal(whole.allegiance, chunked.allegiance)
    assert torch.equal(whole.deleted, chunked.deleted)


def test_model_mode_is_restored():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 4), nn.Dropout(0.5), nn.Linear(4, 3)).train()
    allegiance_curve(model, torch.rand(3, 3, 4, 4), torch.rand(3, 4, 4), "black")
    assert model.training


def test_auc_by_hand():
    assert auc(FRACTIONS, [1.0] * 13) == pytest.approx(0.9)
    assert auc(FRACTIONS, list(FRACTIONS)) == pytest.approx(0.9**2 / 2)  # trapezoid is exact on y = x
    assert auc((0, 0.5, 1.0), (1.0, 0.0, 1.0)) == pytest.approx(0.5)
    assert auc((0, 0.1, 0.3), torch.tensor([1.0, 0.5, 0.0])) == pytest.approx(0.1 * 0.75 + 0.2 * 0.25)
    with pytest.raises(ValueError, match="length"):
        auc((0, 0.1), (1.0,))
    with pytest.raises(ValueError, match="ascending"):
        auc((0.2, 0.1), (1.0, 1.0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fill": "gray"}, "fill"),
        ({"fractions": (0, 1.5)}, r"\[0, 1\]"),
        ({"fractions": (0.5, 0.1)}, "ascending"),
        ({"fractions": ()}, "empty"),
        ({"saliency": torch.rand(2, 4, 4)}, "shape"),
        ({"batch_size": 0}, "batch_size"),
        ({"original_predictions": torch.zeros(2, dtype=torch.long)}, "original_predictions"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    arguments = {"images": torch.rand(3, 3, 4, 4), "saliency": torch.rand(3, 4, 4), "fill": "black"}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        deletion_curve(KeyPixels(), **arguments)


def test_graded_fills_darken_or_brighten_and_reach_black_or_white():
    from signed_saliency.deletion import fill_values

    images = torch.tensor([0.0, 0.2, 0.5, 1.0]).view(1, 1, 2, 2)
    torch.testing.assert_close(fill_values("darker:0.5")(images), images * 0.5)
    torch.testing.assert_close(
        fill_values("brighter:0.25")(images), torch.tensor([0.25, 0.4, 0.625, 1.0]).view(1, 1, 2, 2)
    )
    torch.testing.assert_close(fill_values("darker:1")(images), torch.zeros_like(images))
    torch.testing.assert_close(fill_values("brighter:1")(images), torch.ones_like(images))
    for bad in ("grey", "darker", "darker:0", "darker:1.5", "brighter:x"):
        with pytest.raises(ValueError, match="fill must be"):
            fill_values(bad)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 4)).eval()
    x, maps = torch.rand(5, 3, 6, 6), torch.rand(5, 6, 6)
    for graded, extreme in (("darker:1.0", "black"), ("brighter:1.0", "white")):
        a, b = deletion_curve(model, x, maps, graded), deletion_curve(model, x, maps, extreme)
        assert torch.equal(a.allegiance, b.allegiance) and a.auc == b.auc and a.fill == graded


def test_several_curves_stream_through_full_batches_and_match_one_call_each(monkeypatch):
    model = random_cnn().eval()
    images = torch.rand(7, 3, 8, 8, dtype=torch.float64)
    torch.manual_seed(1)
    maps = {"a": torch.rand(7, 8, 8, dtype=torch.float64), "b": torch.rand(7, 8, 8, dtype=torch.float64)}
    maps["b"][:, :4] = 0  # a map with zeros: its deletion sets stop growing, so it needs fewer forwards
    wanted = {("a", "black"): (maps["a"], "black"), ("b", "white"): (maps["b"], "white"),
              ("a", "darker:0.5"): (maps["a"], "darker:0.5")}  # fmt: skip
    monkeypatch.setattr(deletion, "_MASK_ELEMENTS", len(FRACTIONS) * 64 * 3)  # masks in chunks of 3 images
    sizes = []
    model.register_forward_hook(lambda module, args, output: sizes.append(len(args[0])))
    together = deletion_curves(model, images, wanted, batch_size=5)
    calls_together = list(sizes)
    for (name, fill), (saliency, _) in wanted.items():
        alone = deletion_curve(model, images, saliency, fill, batch_size=5)
        assert torch.equal(together[(name, fill)].allegiance, alone.allegiance)
        assert torch.equal(together[(name, fill)].deleted, alone.deleted)
        assert together[(name, fill)].fill == fill and together[(name, fill)].auc == alone.auc
    assert min(c.allegiance.min() for c in together.values()) < 1  # predictions do change: the test has teeth
    altered = sum(
        int(deletion.new_deletion_sets(deletion_masks(m).flatten(2).sum(2)).sum()) for m, _ in wanted.values()
    )
    # The originals once (7 images in batches of 5), then every altered image in full batches but the last.
    assert calls_together == [5, 2] + [5] * (altered // 5) + ([altered % 5] if altered % 5 else [])
    for nothing in ({}, [(maps["a"], "black")]):
        with pytest.raises(ValueError, match="non-empty mapping"):
            deletion_curves(model, images, nothing)


def test_deletion_hands_the_model_back_contiguous_and_differentiable():
    from signed_saliency.models import BasicCNN

    torch.manual_seed(0)
    model, images = BasicCNN().eval(), torch.rand(4, 3, 32, 32)
    maps = torch.rand(4, 32, 32)
    with torch.inference_mode():  # even called inside inference mode, the weights stay ordinary tensors
        inside = deletion_curve(model, images, maps, "black")
    outside = deletion_curve(model, images, maps, "black", batch_size=3)
    assert torch.equal(inside.allegiance, outside.allegiance)
    assert all(p.is_contiguous() and not p.is_inference() for p in model.parameters())
    x = images.clone().requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None


def test_a_map_with_nothing_to_delete_keeps_every_prediction():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).eval()
    curve = deletion_curve(model, torch.rand(2, 3, 4, 4), torch.zeros(2, 4, 4), "white")
    assert torch.equal(curve.allegiance, torch.ones(len(curve.fractions))) and curve.deleted.sum() == 0


def test_the_integer_sort_orders_like_the_float_sort():
    torch.manual_seed(0)
    values = torch.randn(4, 200) * torch.logspace(-40, 38, 200)  # tiny (subnormal) to huge, both signs
    values[:, :6] = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-45, -1e-45])
    values[1] = values[1].round()  # many ties
    ours = deletion._sorted_descending(values)
    assert torch.equal(ours, values.sort(dim=1, descending=True).values)
    doubles = values.double()
    assert torch.equal(deletion._sorted_descending(doubles), doubles.sort(dim=1, descending=True).values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_counts_from_the_sorted_values_equal_the_masks_sums(dtype):
    torch.manual_seed(0)
    maps = torch.randn(5, 6, 7, dtype=dtype)
    maps[0] = maps[0].abs().round()  # ties and zeros, as in ≥ 0 saliency maps
    maps[1, :3] = torch.tensor([0.0, -0.0, float("inf")], dtype=dtype)[:, None]  # ±0 and +inf
    maps[2] = -maps[2].abs()  # all negative: the thresholds go below zero, where the zeros must not count
    maps[2, 0, :2] = 0.0
    maps[3] = float("-inf")  # nothing can be above -inf
    maps[3, 0, 0] = 1.0
    fractions = (0, 0.1, 0.33, 0.5, 0.9, 1.0)
    masks, counts = deletion._masks_and_counts(maps, fractions)
    assert counts.dtype == torch.int32 and torch.equal(counts, masks.flatten(2).sum(dim=2, dtype=torch.int32))
    assert counts[-1, 2] == 42 - 2 and counts[-1, 3] == 1  # at p = 1 every non-zero pixel above -inf goes


@pytest.mark.parametrize("fill", ["black", "white", "darker:0.3", "brighter:1"])
def test_filling_in_place_equals_torch_where(fill):
    torch.manual_seed(0)
    images = torch.rand(5, 3, 6, 7).contiguous(memory_format=torch.channels_last)
    deleted = torch.rand(5, 1, 6, 7) > 0.4
    replacement = deletion.fill_values(fill)
    expected = torch.where(deleted, replacement(images), images)
    altered = images.clone()
    deletion._filler(fill)(altered, deleted)
    assert torch.equal(altered, expected) and altered.is_contiguous(memory_format=torch.channels_last)


def test_a_map_with_nan_is_refused():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).eval()
    saliency = torch.rand(2, 4, 4)
    saliency[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="1 NaN values"):
        deletion_curve(model, torch.rand(2, 3, 4, 4), saliency, "black")
