"""Controls for the deletion metric (PROTOCOL §8): is a lower AUC a better ranking of pixels?

Here live the pieces that ask it, all batched over images and fed through
``deletion.deletion_curves`` so that every control of one model shares its forward batches:
seeded random maps and count-matched random deletion (``random_maps``, ``count_matched``);
full rankings with seeded tie-breaks for MoRF / LeRF and their symmetric relevance gain
(``full_ranking``, ``srg``); ROAD's noisy linear imputation as a fill (``imputation.ImputationFill``);
the sign-aware directed fill for the original map (``directed_fill``); percentile-bootstrap
intervals, paired where two maps are compared, resampled from each image's stored agreement
(``bootstrap``); the mask-leakage test lives in ``leakage``. ``control_curves`` runs them all for one model and
``summarize`` turns the curves into the intervals and verdicts of Table C.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from signed_saliency.checks import check_fractions, check_images, check_seed
from signed_saliency.deletion import FRACTIONS, DeletionCurve, auc, deleted_counts, deletion_curves
from signed_saliency.imputation import ImputationFill

SEEDS = (0, 1, 2, 3, 4)
RESAMPLES = 2000
LEAKAGE_FRACTIONS = (0.1, 0.3, 0.5)
# The paper's four claims: the map's curve lies below the original's under the same fill.
CLAIMS = (("black", "positive"), ("black", "active"), ("white", "negative"), ("white", "inactive"))
KINDS = ("original", "positive", "negative", "active", "inactive")
SRG_FILLS = ("black", "white", "imputation")
# PROTOCOL §8: a verdict word (resolved, beats, survives, holds) only on a comparison of at least this many
# images. A percentile bootstrap over 2 images has 3 distinct resampled means: no 95 % interval of anything.
MIN_IMAGES = 30


def enough_images(n: int) -> bool:
    """Whether a comparison on ``n`` images may carry a verdict word (PROTOCOL §8, ``MIN_IMAGES``)."""
    return n >= MIN_IMAGES


def too_few_text(n: int) -> str:
    return f"too few images (n = {n}) to resolve"


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


def srg(morf_auc, lerf_auc):
    """Symmetric relevance gain ``AUC(LeRF) − AUC(MoRF)`` (Blücher et al., TMLR 2024): larger is better.

    >>> srg(0.25, 0.75)
    0.5
    """
    return lerf_auc - morf_auc


class ReplacementFill:
    """A fill for ``deletion_curves`` that sets each deleted pixel of image ``i`` to ``replacement[i]``."""

    def __init__(self, replacement: torch.Tensor, name: str = "replacement"):
        self.replacement, self.name = replacement, name

    def __call__(self, altered: torch.Tensor, deleted: torch.Tensor, rows: torch.Tensor) -> None:
        torch.where(deleted, self.replacement[rows.to(self.replacement.device)].to(altered.device), altered,
                    out=altered)  # fmt: skip


def directed_fill(images: torch.Tensor, gradient: torch.Tensor) -> ReplacementFill:
    """The directed fill (PROTOCOL §8): a deleted pixel-channel goes to 0 where the target's gradient is
    positive, to 1 where it is negative, and stays where it is 0: the sign-aware fill for the original map.

    >>> fill = directed_fill(torch.full((1, 1, 1, 3), 0.5), torch.tensor([[[[2.0, -1.0, 0.0]]]]))
    >>> fill.replacement.flatten().tolist()
    [0.0, 1.0, 0.5]
    """
    check_images(images)
    if not isinstance(gradient, torch.Tensor) or gradient.shape != images.shape:
        got = tuple(gradient.shape) if isinstance(gradient, torch.Tensor) else type(gradient).__name__
        raise ValueError(f"gradient must have the images' shape {tuple(images.shape)}, got {got}")
    target = torch.where(gradient > 0, 0.0, torch.where(gradient < 0, 1.0, images)).to(images.dtype)
    return ReplacementFill(target, "directed")


def image_aucs(agreement: torch.Tensor, fractions: Sequence[float]) -> torch.Tensor:
    """Each image's AUC (B,) from its agreement (F, B) by the trapezoid rule: their mean is the curve's AUC."""
    fractions = check_fractions(fractions)
    if agreement.dim() != 2 or agreement.shape[0] != len(fractions):
        raise ValueError(f"agreement must be ({len(fractions)}, images), got {tuple(agreement.shape)}")
    xs = torch.tensor(fractions, dtype=torch.float64)
    ys = agreement.to(torch.float64)
    return ((xs[1:] - xs[:-1])[:, None] * (ys[1:] + ys[:-1]) / 2).sum(dim=0)


def bootstrap(values: Mapping[str, torch.Tensor], resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95):
    """Percentile-bootstrap intervals of the mean of each per-image statistic in ``values`` (name → (B,) or
    (B, F)), every one resampled with the same image indices, so that an interval of a difference of two
    statistics taken per image is the paired interval. Returns name → (mean, low, high), as tensors of the
    statistic's trailing shape.

    >>> ones = torch.ones(10)
    >>> [float(v) for v in bootstrap({"x": ones}, resamples=100)["x"]]
    [1.0, 1.0, 1.0]
    """
    if not isinstance(resamples, numbers.Integral) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    sizes = {len(v) for v in values.values()}
    if len(sizes) != 1:
        raise ValueError(f"every statistic needs one value per image of the same images, got lengths {sorted(sizes)}")
    (n,) = sizes
    index = torch.randint(0, n, (resamples, n), generator=torch.Generator().manual_seed(check_seed(seed)))
    weights = torch.zeros(resamples, n, dtype=torch.float64).scatter_add_(
        1, index, torch.ones(resamples, n, dtype=torch.float64)
    )
    tail = (1 - level) / 2
    out = {}
    for name, v in values.items():
        v = v.to(torch.float64)
        means = weights @ v.reshape(n, -1) / n  # (R, ·)
        low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64), dim=0)
        out[name] = (v.mean(dim=0), low.reshape(v.shape[1:]), high.reshape(v.shape[1:]))
    return out


def resolved_below(interval) -> bool:
    """A claim "A is below B" is resolved when the interval of AUC(A) − AUC(B) lies below 0 (PROTOCOL §8)."""
    return float(interval[2]) < 0


def control_curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    gradient: torch.Tensor,
    fractions: Sequence[float] = FRACTIONS,
    seeds: Sequence[int] = SEEDS,
    imputation: bool = True,
    original_predictions: torch.Tensor | None = None,
    first_image: int = 0,
) -> dict[str, DeletionCurve]:
    """Every §8 curve of one model on ``images``, in one ``deletion_curves`` call (shared batches), keyed:

    ``paper/<fill>/<kind>`` the paper's six curves; ``random/<fill>/<seed>`` random maps;
    ``matched/<fill>/<kind>/<seed>`` count-matched random for the paper's sparse curves;
    ``morf|lerf/<fill>/<kind>`` full rankings under black, white and (``imputation``) the ROAD fill;
    ``directed/original`` the original map with the directed fill (``gradient``: the target's, (B, K, H, W)).
    ``first_image`` is the index of ``images[0]`` in a larger set cut into chunks: it keeps the imputation
    noise of each image its own.
    """
    fractions = check_fractions(fractions)
    missing = [k for k in KINDS if k not in maps]
    if missing:
        raise ValueError(f"maps lacks {missing}: pass all five kinds (saliency_maps(model, images))")
    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty: the random controls need at least one")
    batch, _, height, width = images.shape
    specs = {}
    for fill, kind in (("black", "original"), ("black", "positive"), ("black", "active"),
                       ("white", "original"), ("white", "negative"), ("white", "inactive")):  # fmt: skip
        specs[f"paper/{fill}/{kind}"] = (maps[kind], fill)
        if kind != "original":
            for seed in seeds:
                specs[f"matched/{fill}/{kind}/{seed}"] = (count_matched(maps[kind], seed, fractions), fill)
    for seed in seeds:
        noise_map = random_maps(batch, height, width, seed, images.device)
        for fill in ("black", "white"):
            specs[f"random/{fill}/{seed}"] = (noise_map, fill)
    fills = {"black": "black", "white": "white"}
    if imputation:
        fills["imputation"] = ImputationFill(seed=seeds[0], first_image=first_image)
    for kind in KINDS:
        morf, lerf = full_ranking(maps[kind], seeds[0]), full_ranking(maps[kind], seeds[0], lowest_first=True)
        for name, fill in fills.items():
            specs[f"morf/{name}/{kind}"] = (morf, fill)
            specs[f"lerf/{name}/{kind}"] = (lerf, fill)
    specs["directed/original"] = (maps["original"], directed_fill(images, gradient))
    return deletion_curves(model, images, specs, fractions, original_predictions=original_predictions)


def summarize(curves: Mapping[str, DeletionCurve], resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Table C's numbers from ``control_curves``' curves (possibly concatenated over chunks of images):
    every AUC and AUC difference with its paired 95 % bootstrap interval, random controls as mean ± sd
    over seeds, SRG per kind and fill, per-fraction bands of the paper's curves, and per claim the
    verdicts of PROTOCOL §8. JSON-ready (floats and lists)."""
    first = next(iter(curves.values()))
    fractions = first.fractions
    per_image = {key: image_aucs(c.agreement, fractions) for key, c in curves.items()}
    seeds = sorted({key.rsplit("/", 1)[1] for key in curves if key.startswith("random/black/")}, key=int)
    stats = {f"auc {key}": v for key, v in per_image.items() if not key.startswith(("matched/", "random/"))}
    for fill in ("black", "white"):
        stats[f"auc random/{fill}"] = torch.stack([per_image[f"random/{fill}/{s}"] for s in seeds]).mean(0)
    for fill, kind in CLAIMS:
        matched = torch.stack([per_image[f"matched/{fill}/{kind}/{s}"] for s in seeds]).mean(0)
        mine = per_image[f"paper/{fill}/{kind}"]
        stats[f"auc matched/{fill}/{kind}"] = matched
        stats[f"diff {kind}-original/{fill}"] = mine - per_image[f"paper/{fill}/original"]
        stats[f"diff {kind}-matched/{fill}"] = mine - matched
        stats[f"diff {kind}-directed"] = mine - per_image["directed/original"]
    stats["diff positive-active/black"] = per_image["paper/black/positive"] - per_image["paper/black/active"]
    stats["diff negative-inactive/white"] = per_image["paper/white/negative"] - per_image["paper/white/inactive"]
    fills = sorted({key.split("/")[1] for key in curves if key.startswith("morf/")}, key=SRG_FILLS.index)
    for fill in fills:
        for kind in KINDS:
            stats[f"srg {fill}/{kind}"] = srg(per_image[f"morf/{fill}/{kind}"], per_image[f"lerf/{fill}/{kind}"])
        for _, kind in CLAIMS:
            stats[f"diff srg {kind}-original/{fill}"] = stats[f"srg {fill}/{kind}"] - stats[f"srg {fill}/original"]
    bands = {f"band {key}": c.agreement.T.double() for key, c in curves.items() if key.startswith("paper/")}
    intervals = bootstrap({**stats, **bands}, resamples, seed)
    record = {"fractions": list(fractions), "images": len(first.agreement[0]), "resamples": resamples,
              "seeds": [int(s) for s in seeds], "intervals": {}, "bands": {}, "random": {}, "curves": {}}  # fmt: skip
    for name, (mean, low, high) in intervals.items():
        if name.startswith("band "):
            record["bands"][name[5:]] = {"mean": mean.tolist(), "low": low.tolist(), "high": high.tolist()}
        else:
            record["intervals"][name] = [float(mean), float(low), float(high)]
    for fill in ("black", "white"):
        aucs = torch.tensor([curves[f"random/{fill}/{s}"].auc for s in seeds], dtype=torch.float64)
        record["random"][fill] = {"mean": float(aucs.mean()), "sd": float(aucs.std()) if len(aucs) > 1 else 0.0,
                                  "allegiance": torch.stack([curves[f"random/{fill}/{s}"].allegiance
                                                             for s in seeds]).mean(0).tolist()}  # fmt: skip
    for fill, kind in CLAIMS:
        aucs = torch.tensor([curves[f"matched/{fill}/{kind}/{s}"].auc for s in seeds], dtype=torch.float64)
        record["random"][f"matched/{fill}/{kind}"] = {
            "mean": float(aucs.mean()), "sd": float(aucs.std()) if len(aucs) > 1 else 0.0,
            "allegiance": torch.stack([curves[f"matched/{fill}/{kind}/{s}"].allegiance
                                       for s in seeds]).mean(0).tolist(),
        }  # fmt: skip
    for key, c in curves.items():
        if key.startswith(("paper/", "directed/", "morf/", "lerf/")):
            record["curves"][key] = {"allegiance": c.allegiance.tolist(), "deleted": c.deleted.tolist(), "auc": c.auc}
    record["verdicts"] = verdicts(record)
    return record


def verdicts(record: Mapping) -> dict:
    """Per claim (``"black/positive"`` …), from a ``summarize`` record: is it resolved at 95 %, does it beat
    the count-matched random control, does it survive the imputation fill and SRG (the map's SRG above the
    original's, resolved), and does the directed-fill original close the gap (the map no longer resolved
    below it). Every verdict is ``None`` on fewer than ``MIN_IMAGES`` images (``too_few_images``), and
    ``survives_imputation_srg`` is ``None`` where the record lacks the imputation fill. Each claim also
    carries its ``images`` (n)."""
    intervals, n = record["intervals"], int(record["images"])
    out = {}
    for fill, kind in CLAIMS:
        srg_gain = intervals.get(f"diff srg {kind}-original/imputation")
        verdict = {
            "resolved": resolved_below(intervals[f"diff {kind}-original/{fill}"]),
            "beats_matched_random": resolved_below(intervals[f"diff {kind}-matched/{fill}"]),
            "survives_imputation_srg": None if srg_gain is None else float(srg_gain[1]) > 0,
            "directed_closes_gap": not resolved_below(intervals[f"diff {kind}-directed"]),
        }
        if not enough_images(n):
            verdict = dict.fromkeys(verdict)
        out[f"{fill}/{kind}"] = {**verdict, "images": n, "too_few_images": not enough_images(n)}
    return out


def across_seeds(values: Sequence[float]) -> dict | None:
    """Mean, sample sd and count of one number measured once per training seed (None with fewer than two).

    >>> across_seeds([0.1, 0.2, 0.3])
    {'mean': 0.2, 'sd': 0.1, 'n': 3}
    """
    values = [float(v) for v in values if v is not None]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return {"mean": round(mean, 12), "sd": round(sd, 12), "n": len(values)}


def seed_verdicts(records: Sequence[Mapping]) -> dict:
    """Per claim, from the ``summarize`` records of several training seeds of one column: the AUC difference
    (map − original) across seeds (``across_seeds``), in how many seeds the within-run bootstrap resolves it,
    and whether it ``holds``: resolved in every seed and mean + 2 sd below 0, so that a new training run is
    also expected below 0. ``holds`` and ``resolved_in`` are ``None`` when a seed rests on fewer than
    ``MIN_IMAGES`` images (``images`` is the smallest n). {} with fewer than two records.

    >>> one = {"images": 30, "intervals": {f"diff {k}-original/{f}": [-0.1, -0.12, -0.08] for f, k in CLAIMS}}
    >>> seed_verdicts([one, one])["black/positive"]
    {'difference': {'mean': -0.1, 'sd': 0.0, 'n': 2}, 'resolved_in': 2, 'seeds': 2, 'holds': True, 'images': 30}
    """
    if len(records) < 2:
        return {}
    n = min(int(r["images"]) for r in records)
    out = {}
    for fill, kind in CLAIMS:
        intervals = [r["intervals"][f"diff {kind}-original/{fill}"] for r in records]
        spread = across_seeds([i[0] for i in intervals])
        resolved = sum(resolved_below(i) for i in intervals)
        holds = resolved == len(records) and spread["mean"] + 2 * spread["sd"] < 0
        if not enough_images(n):
            resolved = holds = None
        out[f"{fill}/{kind}"] = {"difference": spread, "resolved_in": resolved, "seeds": len(records), "holds": holds,
                                 "images": n}  # fmt: skip
    return out


def concatenate(parts: Sequence[Mapping[str, DeletionCurve]]) -> dict[str, DeletionCurve]:
    """The curves of several chunks of images as one set of curves over all of them (per-image agreement
    concatenated; allegiance, deleted share and AUC recomputed as over all images)."""
    if not parts:
        raise ValueError("no curves to concatenate")
    out = {}
    for key in parts[0]:
        chunks = [p[key] for p in parts]
        agreement = torch.cat([c.agreement for c in chunks], dim=1)
        sizes = torch.tensor([c.agreement.shape[1] for c in chunks], dtype=torch.float64)
        deleted = (torch.stack([c.deleted.double() for c in chunks]) * sizes[:, None]).sum(0) / sizes.sum()
        allegiance = agreement.float().mean(dim=1)
        out[key] = DeletionCurve(chunks[0].fractions, allegiance, deleted.float(),
                                 auc(chunks[0].fractions, allegiance.tolist()), chunks[0].fill, agreement)  # fmt: skip
    return out
