"""Ranking × fill, crossed (PROTOCOL §8): the fills by hand, matched counts from the masks, a map against
itself, and planted cases where only the fill or only the ranking matters."""

import pytest
import torch
from torch import nn

from signed_saliency import controls
from signed_saliency.decomposition import (
    channel_sign_fill,
    count_matched_original,
    crossed_specs,
    curve_key,
    effect_stats,
    pixel_sign_fill,
)
from signed_saliency.deletion import FRACTIONS, deleted_counts, deletion_curves
from signed_saliency.imputation import ImputationFill
from signed_saliency.saliency import saliency_maps, target_gradient
from signed_saliency.verdicts import carriers


def _model_and_images(n=12, side=8, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * side * side, 10))
    return model.eval(), torch.rand(n, 3, side, side)


def test_sign_fills_by_hand_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    with torch.no_grad():
        model[1].weight[:, :5] = 0.0  # pixel-channels with no gradient: the channel-sign fill leaves them alone
        model[1].weight[:, 16:21] = 0.0  # channel 1 of pixels 0-4 too: a zero channel sum where channel 2 is 0
        model[1].weight[:, 32:37] = 0.0
    images = torch.rand(2, 3, 4, 4)
    _, gradient = target_gradient(model, images, None)
    weights = model[1].weight.detach()[model(images).argmax(1)].view(2, 3, 4, 4)  # a linear model's gradient
    assert torch.equal(gradient, weights)
    by_channel = torch.where(weights > 0, 0.0, torch.where(weights < 0, 1.0, images))
    summed = weights.sum(1, keepdim=True).expand_as(weights)
    by_pixel = torch.where(summed > 0, 0.0, torch.where(summed < 0, 1.0, images))
    assert torch.equal(channel_sign_fill(images, gradient).replacement, by_channel)
    assert torch.equal(pixel_sign_fill(images, gradient).replacement, by_pixel)
    # Each pixel of the pixel-sign fill is one value across its channels (or the image where the sum is 0).
    flat = by_pixel.flatten(2)[:, :, 5:]
    assert torch.equal(flat.amin(1), flat.amax(1))
    assert torch.equal(by_pixel[:, :, 0, :5], images[:, :, 0, :5])
    altered, deleted = images.clone(), torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    deleted[:, :, :2] = True
    pixel_sign_fill(images, gradient)(altered, deleted, torch.arange(2))
    assert torch.equal(altered[:, :, :2], by_pixel[:, :, :2]) and torch.equal(altered[:, :, 2:], images[:, :, 2:])
    with pytest.raises(ValueError, match="shape"):
        channel_sign_fill(images, gradient[:, :1])
    with pytest.raises(ValueError, match="same images"):
        count_matched_original(torch.rand(2, 4, 4), torch.rand(3, 4, 4), seed=0, fractions=FRACTIONS)


def test_every_cell_of_a_claim_deletes_the_same_pixel_count_in_each_image():
    model, images = _model_and_images()
    maps = saliency_maps(model, images)
    for _, kind in controls.CLAIMS:
        signed_counts = deleted_counts(maps[kind], FRACTIONS)
        assert int(signed_counts[-1].min()) < 0.9 * 64  # sparse maps: the counts differ from round(p·H·W)
        ranking = count_matched_original(maps["original"], maps[kind], seed=0, fractions=FRACTIONS)
        masks, counts = ranking.masks_and_counts(slice(None), FRACTIONS)
        assert torch.equal(masks.flatten(2).sum(2, dtype=torch.int32), signed_counts)  # counted from the masks
        assert torch.equal(counts, signed_counts)
        # The sets grow with the fraction and are the original map's top pixels.
        assert (masks[1:] >= masks[:-1]).all()
        for f in range(len(FRACTIONS)):
            for b in range(len(images)):
                chosen = maps["original"][b][masks[f, b]]
                if 0 < len(chosen) < 64:
                    assert chosen.min() >= maps["original"][b][~masks[f, b]].max()
    _, gradient = target_gradient(model, images, None)
    specs = crossed_specs(images, maps, gradient, controls.CLAIMS, FRACTIONS, seed=0, imputation=ImputationFill())
    curves = deletion_curves(model, images, specs, FRACTIONS)
    assert len(curves) == 4 * 7  # eight cells a claim, the paper's own curve measured elsewhere
    paper = deletion_curves(model, images, {f"{f}/{k}": (maps[k], f) for f, k in controls.CLAIMS}, FRACTIONS)
    for fill, kind in controls.CLAIMS:
        for key in (k for k in curves if k.startswith(f"crossed/{fill}/{kind}/")):
            assert torch.allclose(curves[key].deleted, paper[f"{fill}/{kind}"].deleted)


def test_the_ranking_effect_of_a_map_against_itself_is_exactly_zero():
    model, images = _model_and_images(seed=3)
    maps = saliency_maps(model, images)
    assert (maps["original"] > 0).all() and maps["original"].flatten(1).unique(dim=1).shape[1] == 64  # no ties
    as_itself = {**maps, "positive": maps["original"]}
    _, gradient = target_gradient(model, images, None)
    claims = (("black", "positive"),)
    specs = crossed_specs(images, as_itself, gradient, claims, FRACTIONS, seed=0, imputation=ImputationFill())
    specs[curve_key("black", "positive", "signed", "constant")] = (as_itself["positive"], "black")
    curves = deletion_curves(model, images, specs, FRACTIONS)
    per_image = {k: controls.image_aucs(c.agreement, FRACTIONS) for k, c in curves.items()}
    stats = effect_stats(per_image, claims)
    rankings = [k for k in stats if k.startswith("diff ranking ")]
    assert len(rankings) == 4
    for name in rankings:
        assert torch.equal(stats[name], torch.zeros(len(images), dtype=torch.float64)), name


def _planted(ranking_gap: float, fill_gap: float, n: int = 60) -> dict:
    """Per-image AUCs of the claim black/positive: the signed ranking ``ranking_gap`` below the original in every
    fill, and every sign-aware fill ``fill_gap`` below the constant one, each with per-image noise."""
    generator = torch.Generator().manual_seed(0)
    base = 0.3 + 0.05 * torch.rand(n, generator=generator, dtype=torch.float64)
    per_image = {}
    for ranking in ("signed", "original"):
        for cell in ("constant", "pixel-sign", "channel-sign", "imputation"):
            value = base - (ranking == "signed") * ranking_gap * (1 + 0.2 * torch.rand(n, generator=generator))
            value = value - (cell != "constant") * fill_gap * (1 + 0.2 * torch.rand(n, generator=generator))
            per_image[curve_key("black", "positive", ranking, cell)] = value
    return per_image


def _verdict(per_image: dict) -> dict:
    claims = (("black", "positive"),)
    found = controls.bootstrap(effect_stats(per_image, claims), 2000, 0)
    intervals = {name: [float(v) for v in interval] for name, interval in found.items()}
    record = {"images": 60, "intervals": intervals}
    for fill, kind in controls.CLAIMS:  # the claims' own comparisons, unused here
        for other in ("original", "matched"):
            record["intervals"][f"diff {kind}-{other}/{fill}"] = [-0.1, -0.2, -0.05]
    return controls.verdicts(record)["black/positive"]


def test_a_planted_fill_effect_is_resolved_and_the_ranking_effect_is_not():
    verdict = _verdict(_planted(ranking_gap=0.0, fill_gap=0.1))
    assert verdict["sign_fill"] is True and verdict["ranking"] is False and verdict["ranking_given_sign"] is False
    assert carriers(verdict).startswith("carried by the sign-aware fill")
    assert "the ranking (" not in carriers(verdict)


def test_a_planted_ranking_effect_is_resolved_and_the_fill_effects_are_not():
    verdict = _verdict(_planted(ranking_gap=0.1, fill_gap=0.0))
    assert verdict["ranking"] is True and verdict["ranking_given_sign"] is True
    assert verdict["sign_fill"] is False and verdict["channel_fill"] is False
    assert carriers(verdict) == "carried by the ranking (it still wins when both rankings get the pixel-sign fill)"


def test_the_decomposition_figure_draws_both_rankings_under_every_fill_inside_its_canvas():
    import matplotlib

    matplotlib.use("Agg")
    from signed_saliency.plotting import ORIGINAL_RANKING, SIGNED_RANKING, plot_decomposition

    model, images = _model_and_images(n=10)
    maps = saliency_maps(model, images)
    curves = controls.control_curves(model, images, maps, target_gradient(model, images, None)[1], seeds=(0,))
    record = controls.summarize(curves, resamples=50)
    fig = plot_decomposition(record, "tiny")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["positive (black)", "active (black)", "negative (white)",
                                                 "inactive (white)"]  # fmt: skip
    for ax in panels:  # the claim's constant fill, then the three others
        assert [t.get_text() for t in ax.get_xticklabels()][1:] == ["pixel-sign", "channel-sign", "imputation"]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [SIGNED_RANKING, ORIGINAL_RANKING]
    assert fig._suptitle.get_position()[1] <= 1 and "n = 10" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="no ranking × fill"):
        plot_decomposition({"intervals": {}, "images": 3})
