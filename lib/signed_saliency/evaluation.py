"""What one model × dataset column computes for the paper: examples and deletion curves.

``pick_examples`` draws, per class, seeded random test images the model classifies
correctly (the paper's qualitative figures). ``paper_curves`` runs the six curves of
PROTOCOL §2 (black: original, positive, active; white: original, negative, inactive) on a
split, in chunks of images so that maps of a 224×224 split never have to sit in memory at
once: per chunk, one all-class gradient pass gives all five maps, one forward gives the
original predictions shared by all six curves, and agreement and deletion counts are summed
across chunks, so the result equals one pass over all images. ``cached`` stores a result
under a key (checkpoint, split, sizes, seed) and reuses it when nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from signed_saliency.attribution import attribution_maps, options_for
from signed_saliency.checks import evaluating
from signed_saliency.data import ImageSet
from signed_saliency.deletion import FRACTIONS, DeletionCurve, auc, deletion_curves, predict
from signed_saliency.io import atomic_torch_save
from signed_saliency.progress import progress as progress_bar

PAPER_CURVES = (
    ("black", "original"), ("black", "positive"), ("black", "active"),
    ("white", "original"), ("white", "negative"), ("white", "inactive"),
)  # fmt: skip
# The paper's future work: deleted pixels made darker (x·(1−δ)) or brighter (x + δ·(1−x)), not black or white.
BEYOND_FILLS = ("black", "darker:0.75", "darker:0.5", "white", "brighter:0.75", "brighter:0.5")


class Examples(NamedTuple):
    """Chosen image indices (classes, per_class) and whether the model classifies each correctly."""

    index: torch.Tensor
    correct: torch.Tensor
    predicted: torch.Tensor


def pick_examples(
    model: nn.Module, images: ImageSet, per_class: int = 1, seed: int = 0, device: str | torch.device = "cpu"
) -> Examples:
    """Per class, ``per_class`` seeded random images the model classifies correctly.

    Images are visited in a seeded random order and predicted in batches only until every
    class is filled. A class with too few correctly classified images (a weak model) is
    filled with the first misclassified images of that class in the same order, flagged in
    ``correct``, rather than failing: figures then say what the model predicted instead.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    classes = len(images.classes)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    chosen: list[list[int]] = [[] for _ in range(classes)]
    fallback: list[list[int]] = [[] for _ in range(classes)]
    predicted_of: dict[int, int] = {}
    with evaluating(model):
        for start in range(0, len(order), 256):
            index = order[start : start + 256]
            predictions = predict(model, images.batch(index, device)).cpu()
            for i, label, prediction in zip(index.tolist(), images.labels[index].tolist(), predictions.tolist()):
                predicted_of[i] = prediction
                pool = chosen[label] if label == prediction else fallback[label]
                if len(pool) < per_class:
                    pool.append(i)
            if all(len(c) == per_class for c in chosen):
                break
    rows, correct = [], []
    for c in range(classes):
        picked = (chosen[c] + fallback[c])[:per_class]
        if len(picked) < per_class:
            raise ValueError(f"class {images.class_names[c]!r} has fewer than {per_class} images in this split")
        rows.append(picked)
        correct.append([i in chosen[c] for i in picked])
    index = torch.tensor(rows)
    predicted = torch.tensor([[predicted_of[i] for i in row] for row in rows])
    return Examples(index, torch.tensor(correct), predicted)


def paper_curves(
    model: nn.Module,
    images: ImageSet,
    fractions=FRACTIONS,
    chunk: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, DeletionCurve]:
    """The six curves of PROTOCOL §2 on every image of ``images``, keyed ``"black/original"`` etc."""
    specs = [("gradient", fill, kind) for fill, kind in PAPER_CURVES]
    curves = method_curves(model, images, specs, fractions, chunk, device, progress)
    return {key.split("/", 1)[1]: curve for key, curve in curves.items()}


def method_curves(
    model: nn.Module,
    images: ImageSet,
    specs: Sequence[tuple[str, str, str]],
    fractions=FRACTIONS,
    chunk: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    **options,
) -> dict[str, DeletionCurve]:
    """Deletion curves for (attribution method, fill, map kind) triples, keyed ``"method/fill/kind"``.

    Per chunk of images: one forward gives the original predictions that every curve shares,
    and one all-class attribution pass per method gives all its map kinds. ``options`` go to
    ``attribution.class_attributions`` (SmoothGrad's samples, IG's steps, ...).
    """
    if chunk is None:
        chunk = max(1, (1 << 20) // images.images[0].numel() * 4)  # ~4M pixel-channels per chunk
    kinds = {m: tuple(dict.fromkeys(k for mm, _, k in specs if mm == m)) for m, _, _ in specs}
    agree = {"/".join(spec): torch.zeros(len(fractions)) for spec in specs}
    deleted = {key: torch.zeros(len(fractions)) for key in agree}
    with evaluating(model):
        for start in progress_bar(range(0, len(images), chunk), desc="deletion curves", disable=not progress):
            batch = images.batch(slice(start, start + chunk), device)
            original = predict(model, batch)
            for method, method_kinds in kinds.items():
                maps = attribution_maps(model, batch, method, method_kinds, **options_for(method, options))
                wanted = {"/".join(spec): (maps[spec[2]], spec[1]) for spec in specs if spec[0] == method}
                curves = deletion_curves(model, batch, wanted, fractions, original_predictions=original)
                for key, curve in curves.items():
                    agree[key] += curve.allegiance * len(batch)
                    deleted[key] += curve.deleted * len(batch)
    n = len(images)
    return {
        key: DeletionCurve(tuple(fractions), agree[key] / n, deleted[key] / n, auc(fractions, agree[key] / n),
                           key.split("/")[1])
        for key in agree
    }  # fmt: skip


def curves_to_record(curves: dict[str, DeletionCurve]) -> dict[str, Any]:
    """A JSON-ready record of curves: fractions, allegiance, deleted fraction and AUC per curve."""
    first = next(iter(curves.values()))
    return {
        "fractions": list(first.fractions),
        "curves": {
            key: {"allegiance": c.allegiance.tolist(), "deleted": c.deleted.tolist(), "auc": c.auc}
            for key, c in curves.items()
        },
    }


def cached(path: str | Path, key: dict, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per ``key``: reuse ``path`` when it holds a result for the same key."""
    path = Path(path)
    if path.exists():
        stored = torch.load(path, weights_only=False)
        if stored.get("key") == key:
            return stored["value"]
    value = compute()
    atomic_torch_save({"key": key, "value": value}, path)
    return value
