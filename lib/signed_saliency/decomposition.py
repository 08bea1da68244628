"""Ranking × fill, crossed (PROTOCOL §8): does a signed map's lower AUC come from its ranking or its fill?

A signed map deleted under black or white differs from the original map in three ways at once: which
pixels it ranks first, how many it deletes, and (since its pixels' gradients share a sign) how well the
constant fill suits them. Here the count is held fixed: for a claim (map ``m`` under fill ``f``) the
*count-matched original* deletes, in each image, as many of the original map's top pixels as ``m`` deleted
there (``count_matched_original``). Both rankings are then deleted under four fills (``CELL_FILLS``): the
claim's constant fill, the *pixel-sign* fill (``pixel_sign_fill``: a pixel's three channels to 0 or 1 by the
sign of its channel-summed gradient, the constant fills' granularity), the *channel-sign* fill
(``channel_sign_fill``: each pixel-channel by its own gradient's sign) and ROAD's imputation. ``crossed_specs``
builds those curves for ``deletion.deletion_curves``; ``effect_stats`` turns per-image AUCs into the ranking
effect (signed − count-matched original, per fill) and the fill effects (pixel-sign − constant and
channel-sign − pixel-sign, per ranking), whose paired intervals ``controls`` computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from signed_saliency.checks import check_images
from signed_saliency.deletion import deleted_counts
from signed_saliency.rankings import Ranking, full_ranking

RANKINGS = ("signed", "original")
CELL_FILLS = ("constant", "pixel-sign", "channel-sign", "imputation")
# The fill effects, each the AUC difference of the first fill minus the second, for one ranking.
FILL_STEPS = (("pixel-sign", "constant"), ("channel-sign", "pixel-sign"))


class ReplacementFill:
    """A fill for ``deletion_curves`` that sets each deleted pixel of image ``i`` to ``replacement[i]``."""

    def __init__(self, replacement: torch.Tensor, name: str = "replacement"):
        self.replacement, self.name = replacement, name

    def __call__(self, altered: torch.Tensor, deleted: torch.Tensor, rows: torch.Tensor) -> None:
        torch.where(deleted, self.replacement[rows.to(self.replacement.device)].to(altered.device), altered,
                    out=altered)  # fmt: skip


def _check_gradient(images: torch.Tensor, gradient: torch.Tensor) -> None:
    check_images(images)
    if not isinstance(gradient, torch.Tensor) or gradient.shape != images.shape:
        got = tuple(gradient.shape) if isinstance(gradient, torch.Tensor) else type(gradient).__name__
        raise ValueError(f"gradient must have the images' shape {tuple(images.shape)}, got {got}")


def _by_sign(sign_of: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return torch.where(sign_of > 0, 0.0, torch.where(sign_of < 0, 1.0, images)).to(images.dtype)


def channel_sign_fill(images: torch.Tensor, gradient: torch.Tensor) -> ReplacementFill:
    """The channel-sign fill (PROTOCOL §8): a deleted pixel-channel goes to 0 where the target's gradient is
    positive, to 1 where it is negative, and stays where it is 0.

    >>> fill = channel_sign_fill(torch.full((1, 3, 1, 1), 0.5), torch.tensor([[[[2.0]], [[-1.0]], [[0.0]]]]))
    >>> fill.replacement.flatten().tolist()
    [0.0, 1.0, 0.5]
    """
    _check_gradient(images, gradient)
    return ReplacementFill(_by_sign(gradient, images), "channel-sign")


def pixel_sign_fill(images: torch.Tensor, gradient: torch.Tensor) -> ReplacementFill:
    """The pixel-sign fill (PROTOCOL §8): all channels of a deleted pixel go to 0 where the target's gradient
    summed over channels is positive, to 1 where it is negative, and stay where the sum is 0.

    >>> fill = pixel_sign_fill(torch.full((1, 3, 1, 1), 0.5), torch.tensor([[[[2.0]], [[-1.0]], [[0.0]]]]))
    >>> fill.replacement.flatten().tolist()
    [0.0, 0.0, 0.0]
    """
    _check_gradient(images, gradient)
    summed = gradient.sum(dim=1, keepdim=True).expand_as(gradient)
    return ReplacementFill(_by_sign(summed, images), "pixel-sign")


def count_matched_original(original: torch.Tensor, signed: torch.Tensor, seed: int, fractions: Sequence[float]
                           ) -> Ranking:  # fmt: skip
    """The original map's top pixels, as many in each image and fraction as ``signed`` deletes there (PROTOCOL
    §2), ties broken by the seeded permutation of ``full_ranking``: the count-matched original of §8."""
    if original.shape != signed.shape:
        raise ValueError(f"the two maps must be of the same images, got {tuple(original.shape)} and "
                         f"{tuple(signed.shape)}")  # fmt: skip
    ranks = full_ranking(original, seed).ranks
    return Ranking(ranks, deleted_counts(signed, fractions), fractions)


def curve_key(fill: str, kind: str, ranking: str, cell: str) -> str:
    """The curve of one cell of the claim (``fill``, ``kind``): the signed map under its own constant fill is
    the paper's curve ``paper/<fill>/<kind>``, measured once; every other cell is ``crossed/…``."""
    if (ranking, cell) == ("signed", "constant"):
        return f"paper/{fill}/{kind}"
    return f"crossed/{fill}/{kind}/{ranking}/{cell}"


def crossed_specs(images: torch.Tensor, maps: Mapping[str, torch.Tensor], gradient: torch.Tensor,
                  claims: Sequence[tuple[str, str]], fractions: Sequence[float], seed: int, imputation=None
                  ) -> dict:  # fmt: skip
    """The ``deletion_curves`` specs of every crossed cell of ``claims`` but the paper's own curves: both
    rankings under the constant, pixel-sign and channel-sign fills, and under ``imputation`` when given (an
    ``ImputationFill``). ``gradient`` is the target's (B, K, H, W)."""
    fills = {"pixel-sign": pixel_sign_fill(images, gradient), "channel-sign": channel_sign_fill(images, gradient)}
    if imputation is not None:
        fills["imputation"] = imputation
    specs = {}
    for fill, kind in claims:
        rankings = {"signed": maps[kind], "original": count_matched_original(maps["original"], maps[kind], seed,
                                                                             fractions)}  # fmt: skip
        for ranking, order in rankings.items():
            for cell, how in {"constant": fill, **fills}.items():
                key = curve_key(fill, kind, ranking, cell)
                if not key.startswith("paper/"):
                    specs[key] = (order, how)
    return specs


def cells(per_image: Mapping[str, torch.Tensor], fill: str, kind: str) -> list[str]:
    """The fills of ``CELL_FILLS`` measured for the claim in ``per_image`` (imputation may be left out)."""
    return [c for c in CELL_FILLS if all(curve_key(fill, kind, r, c) in per_image for r in RANKINGS)]


def effect_stats(per_image: Mapping[str, torch.Tensor], claims: Sequence[tuple[str, str]]) -> dict:
    """Per-image statistics of the crossed design, from each curve's per-image AUCs (``per_image``, keyed by
    ``curve_key``), for paired bootstrap intervals: the ranking effect per fill
    (``diff ranking <kind>/<fill>/<cell>`` = signed − count-matched original) and the fill effects per ranking
    (``diff fill <kind>/<fill>/<ranking>/<a>-<b>`` = AUC under ``a`` − AUC under ``b``). Claims whose crossed
    curves were not measured are left out."""
    stats = {}
    for fill, kind in claims:
        measured = cells(per_image, fill, kind)
        if not {"constant", "pixel-sign", "channel-sign"} <= set(measured):
            continue
        aucs = {(r, c): per_image[curve_key(fill, kind, r, c)] for r in RANKINGS for c in measured}
        for cell in measured:
            stats[f"diff ranking {kind}/{fill}/{cell}"] = aucs["signed", cell] - aucs["original", cell]
        for ranking in RANKINGS:
            for a, b in FILL_STEPS:
                stats[f"diff fill {kind}/{fill}/{ranking}/{a}-{b}"] = aucs[ranking, a] - aucs[ranking, b]
    return stats
