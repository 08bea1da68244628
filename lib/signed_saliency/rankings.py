"""Pixels in deletion order for PROTOCOL §8: seeded random maps, full rankings and count-matched deletion.

A ``Ranking`` holds, per image, every pixel's place in the deletion order (0 = deleted first) and,
optionally, how many pixels each image loses at each fraction; ``deletion.deletion_curves`` deletes by it
instead of by a map's §2 threshold. ``full_ranking`` orders all pixels by a map's value with ties broken
by one seeded permutation per image (MoRF / LeRF); ``count_matched`` deletes exactly as many pixels as a
map did, in a seeded random order; ``random_maps`` are the random-map control's maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from signed_saliency.checks import check_fractions, check_seed
from signed_saliency.deletion import FRACTIONS, deleted_counts


def _check_maps(saliency: torch.Tensor) -> torch.Tensor:
    if not isinstance(saliency, torch.Tensor) or saliency.dim() != 3 or not saliency.is_floating_point():
        shape = tuple(saliency.shape) if isinstance(saliency, torch.Tensor) else type(saliency).__name__
        raise ValueError(f"saliency must be float maps (B, H, W), got {shape}")
    if saliency.isnan().any():
        raise ValueError("saliency holds NaN values, which have no deletion order: replace them first")
    return saliency


def random_maps(batch: int, height: int, width: int, seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Maps (B, H, W) of i.i.d. uniform values in (0, 1] from ``seed``: deleted by PROTOCOL §2 they delete
    exactly ``round(p·H·W)`` pixels (ties have probability 0, and no value is 0).

    >>> random_maps(2, 4, 4, seed=0).shape
    torch.Size([2, 4, 4])
    """
    if min(batch, height, width) < 1:
        raise ValueError(f"batch, height and width must be positive, got {(batch, height, width)}")
    generator = torch.Generator().manual_seed(check_seed(seed))
    return (1 - torch.rand(batch, height, width, generator=generator)).to(device)


class Ranking:
    """Pixels in deletion order, per image, for ``deletion_curves``: ``ranks`` (B, H, W), 0 = deleted first.

    At each fraction p the first ``round(p·H·W)`` pixels of each image are deleted (MoRF / LeRF on a full
    ranking), or, with ``counts`` (F, B), exactly ``counts[f, b]`` of them (count-matched random).
    """

    def __init__(self, ranks: torch.Tensor, counts: torch.Tensor | None = None, fractions: Sequence[float] | None = None
                 ):  # fmt: skip
        if ranks.dim() != 3 or ranks.is_floating_point():
            raise ValueError(f"ranks must be integer ranks (B, H, W), got {ranks.dtype} {tuple(ranks.shape)}")
        if counts is not None and (counts.dim() != 2 or counts.shape[1] != ranks.shape[0]):
            raise ValueError(f"counts must be (fractions, {ranks.shape[0]}), got {tuple(counts.shape)}")
        self.ranks, self.counts = ranks, counts
        self.fractions = None if fractions is None else check_fractions(fractions)

    def check(self, images: torch.Tensor) -> None:
        expected = (images.shape[0], *images.shape[2:])
        if tuple(self.ranks.shape) != expected:
            raise ValueError(f"the ranking is for images {tuple(self.ranks.shape)}, not {expected}")

    def masks_and_counts(self, part: slice, fractions: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        ranks = self.ranks[part]
        pixels = ranks.shape[1] * ranks.shape[2]
        if self.counts is None:
            ks = torch.tensor([round(p * pixels) for p in fractions], dtype=torch.int32, device=ranks.device)
            ks = ks[:, None].expand(len(fractions), len(ranks))
        else:
            if self.fractions is not None and tuple(float(p) for p in fractions) != self.fractions:
                raise ValueError(f"these counts were taken at fractions {self.fractions}, not {tuple(fractions)}")
            ks = self.counts[:, part].to(device=ranks.device, dtype=torch.int32)
        masks = ranks[None] < ks[:, :, None, None]
        return masks, ks.contiguous()


def _ranks_of(order: torch.Tensor, shape) -> torch.Tensor:
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order).contiguous())
    return ranks.view(shape).to(torch.int32)


def full_ranking(saliency: torch.Tensor, seed: int, lowest_first: bool = False) -> Ranking:
    """Every pixel ranked by its map value, highest first (MoRF) or lowest first (``lowest_first``, LeRF);
    ties, zeros included, broken by one seeded random permutation per image (PROTOCOL §8).

    >>> r = full_ranking(torch.tensor([[[2.0, 0.0], [0.0, 5.0]]]), seed=0)
    >>> r.ranks[0, 1, 1].item(), r.ranks[0, 0, 0].item()
    (0, 1)
    """
    saliency = _check_maps(saliency)
    batch, height, width = saliency.shape
    generator = torch.Generator().manual_seed(check_seed(seed))
    permutation = torch.rand(batch, height * width, generator=generator).argsort(dim=1).to(saliency.device)
    values = saliency.reshape(batch, -1).gather(1, permutation)
    # A stable sort keeps tied pixels in the random order they were put in.
    by_value = (values if lowest_first else -values).sort(dim=1, stable=True).indices
    return Ranking(_ranks_of(permutation.gather(1, by_value), saliency.shape))


def random_ranking(batch: int, height: int, width: int, seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """One seeded random order of the pixels per image, as ranks (B, H, W)."""
    order = torch.rand(batch, height * width, generator=torch.Generator().manual_seed(check_seed(seed))).argsort(1)
    return _ranks_of(order, (batch, height, width)).to(device)


def count_matched(saliency: torch.Tensor, seed: int, fractions: Sequence[float] = FRACTIONS) -> Ranking:
    """Count-matched random deletion for ``saliency``: at each fraction, each image loses as many pixels as
    the map deleted there (PROTOCOL §2), taken in one seeded random order per image (sets grow with p).

    >>> maps = torch.zeros(1, 4, 4); maps[0, 0, :2] = 1.0  # a sparse map: 2 non-zero pixels
    >>> count_matched(maps, seed=0, fractions=(0.0, 0.5)).counts.tolist()
    [[0], [2]]
    """
    saliency = _check_maps(saliency)
    fractions = check_fractions(fractions)
    ranks = random_ranking(*saliency.shape, seed=seed, device=saliency.device)
    return Ranking(ranks, deleted_counts(saliency, fractions), fractions)
