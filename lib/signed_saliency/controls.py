"""Controls for the deletion metric (PROTOCOL §8): is a lower AUC a better ranking of pixels?

Here live the pieces that ask it, all batched over images and fed through
``deletion.deletion_curves`` so that every control of one model shares its forward batches:
seeded random maps, count-matched random deletion and full rankings for MoRF / LeRF (``rankings``) with
their symmetric relevance gain (``srg``); ROAD's noisy linear imputation as a fill
(``imputation.ImputationFill``); the ranking × fill design at matched counts (``decomposition``); percentile-bootstrap
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

from signed_saliency.checks import check_fractions, check_seed
from signed_saliency.decomposition import crossed_specs, effect_stats
from signed_saliency.deletion import FRACTIONS, DeletionCurve, auc, deletion_curves
from signed_saliency.imputation import ImputationFill
from signed_saliency.rankings import count_matched, full_ranking, random_maps

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


def srg(morf_auc, lerf_auc):
    """Symmetric relevance gain ``AUC(LeRF) − AUC(MoRF)`` (Blücher et al., TMLR 2024): larger is better.

    >>> srg(0.25, 0.75)
    0.5
    """
    return lerf_auc - morf_auc


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
    ``crossed/<fill>/<kind>/<ranking>/<cell>`` the ranking × fill design of each claim (``decomposition``;
    ``gradient``: the target's, (B, K, H, W)).
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
    specs |= crossed_specs(images, maps, gradient, CLAIMS, fractions, seeds[0], fills.get("imputation"))
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
    stats["diff positive-active/black"] = per_image["paper/black/positive"] - per_image["paper/black/active"]
    stats["diff negative-inactive/white"] = per_image["paper/white/negative"] - per_image["paper/white/inactive"]
    fills = sorted({key.split("/")[1] for key in curves if key.startswith("morf/")}, key=SRG_FILLS.index)
    for fill in fills:
        for kind in KINDS:
            stats[f"srg {fill}/{kind}"] = srg(per_image[f"morf/{fill}/{kind}"], per_image[f"lerf/{fill}/{kind}"])
        for _, kind in CLAIMS:
            stats[f"diff srg {kind}-original/{fill}"] = stats[f"srg {fill}/{kind}"] - stats[f"srg {fill}/original"]
    stats |= effect_stats(per_image, CLAIMS)
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
        if key.startswith(("paper/", "crossed/", "morf/", "lerf/")):
            record["curves"][key] = {"allegiance": c.allegiance.tolist(), "deleted": c.deleted.tolist(), "auc": c.auc}
    record["verdicts"] = verdicts(record)
    return record


def verdicts(record: Mapping) -> dict:
    """Per claim (``"black/positive"`` …), from a ``summarize`` record: is it resolved at 95 %, does it beat
    the count-matched random control, does it survive the imputation fill and SRG (the map's SRG above the
    original's, resolved). Where the record holds the ranking × fill design (``decomposition``), also: is
    the ranking effect under the claim's own fill resolved below 0 (``ranking``), does it stay so when both
    rankings get the pixel-sign fill (``ranking_given_sign``), and do the original ranking's fill effects
    resolve below 0 (``sign_fill``: pixel-sign − constant; ``channel_fill``: channel-sign − pixel-sign).
    Every verdict is ``None`` on fewer than ``MIN_IMAGES`` images (``too_few_images``), and
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
        }
        if f"diff ranking {kind}/{fill}/constant" in intervals:
            verdict |= {
                "ranking": resolved_below(intervals[f"diff ranking {kind}/{fill}/constant"]),
                "ranking_given_sign": resolved_below(intervals[f"diff ranking {kind}/{fill}/pixel-sign"]),
                "sign_fill": resolved_below(intervals[f"diff fill {kind}/{fill}/original/pixel-sign-constant"]),
                "channel_fill": resolved_below(intervals[f"diff fill {kind}/{fill}/original/channel-sign-pixel-sign"]),
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
