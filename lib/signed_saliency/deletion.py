"""Black and white deletion, allegiance curves and their AUC (PROTOCOL §2).

For each image and fraction p, the pixels whose map value is above the k-th largest (k =
round(p·H·W)) and non-zero are set to 0 (black) or 1 (white) in every channel; allegiance is the
share of images whose prediction is unchanged. The paper's proposed graded variants replace them
instead with a darker (``"darker:δ"``, x·(1−δ)) or brighter (``"brighter:δ"``, x + δ·(1−x))
version of themselves; δ = 1 is black or white again. Everything is batched over images and
fractions, and ``deletion_curves`` batches the curves of one model together. Deletion sets grow
with p, so an image whose deleted count does not grow from one fraction to the next is the same
altered image: its prediction is reused instead of recomputed, as is the original prediction for
an image with nothing deleted. The forward passes of genuinely new images are the whole cost.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn

from signed_saliency.checks import check_fractions, check_images, check_logits, evaluating
from signed_saliency.speed import channels_last, forward_batch, to_channels_last

FRACTIONS = (0, 0.03, 0.05, 0.07, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FILLS = {"black": 0.0, "white": 1.0}
GRADED = ("darker", "brighter")
# Mask elements (fraction × image × pixel) built at once; chunks of images keep memory flat.
_MASK_ELEMENTS = 1 << 26


class DeletionCurve(NamedTuple):
    """One allegiance curve: ``allegiance[i]`` and the mean fraction of pixels actually
    ``deleted[i]`` at ``fractions[i]``, the curve's ``auc`` and its ``fill``; ``agreement``
    (F, B) says per image whether its prediction held (the intervals of ``controls`` are
    resampled from it, so they need no further forward passes)."""

    fractions: tuple[float, ...]
    allegiance: torch.Tensor
    deleted: torch.Tensor
    auc: float
    fill: str
    agreement: torch.Tensor | None = None


def deletion_masks(saliency: torch.Tensor, fractions: Sequence[float] = FRACTIONS) -> torch.Tensor:
    """Boolean masks (F, B, H, W) of the pixels deleted at each fraction (PROTOCOL §2)."""
    return _masks_and_counts(saliency, fractions)[0]


def _masks_and_counts(saliency: torch.Tensor, fractions: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The deletion masks (F, B, H, W) and how many pixels each deletes (F, B), as int32."""
    fractions = check_fractions(fractions)
    if saliency.dim() != 3:
        raise ValueError(f"saliency must be maps (B, H, W), got shape {tuple(saliency.shape)}")
    batch, height, width = saliency.shape
    pixels = height * width
    flat = saliency.reshape(batch, pixels)
    ordered = _sorted_descending(flat)
    ks = [round(p * pixels) for p in fractions]
    # τ = s[k]; at k = H·W (p = 1) nothing is left above it, so every non-zero pixel goes.
    padded = torch.cat([ordered, torch.full_like(ordered[:, :1], float("-inf"))], dim=1)
    thresholds = padded[:, ks]  # (B, F)
    # (F, B) contiguous, so that the masks are laid out (F, B, H·W).
    masks = (flat[None] > thresholds.T.contiguous()[..., None]) & (flat != 0)[None]
    # Counted from the sorted values rather than the masks, which would take a pass over all of them: the
    # values above τ, less the zeros among them (there are any only when τ < 0).
    above = torch.searchsorted(-ordered, -thresholds, out_int32=True)
    zeros = (flat == 0).sum(dim=1, keepdim=True, dtype=torch.int32)
    counts = above - torch.where(thresholds < 0, zeros, 0)
    return masks.view(len(fractions), batch, height, width), counts.T.contiguous()


def _sorted_descending(flat: torch.Tensor) -> torch.Tensor:
    """Each row from its largest value down. float32 rows are sorted as int32 keys, which order like the
    floats themselves once negative values have their magnitude bits flipped: the same values, in 0.6× the
    time of a float sort on the CPU."""
    if flat.dtype != torch.float32:
        return flat.sort(dim=1, descending=True).values
    bits = flat.contiguous().view(torch.int32)
    flip = (bits >> 31) & 0x7FFFFFFF  # all magnitude bits for negative values, none otherwise
    keys = (bits ^ flip).sort(dim=1, descending=True).values
    return (keys ^ ((keys >> 31) & 0x7FFFFFFF)).view(torch.float32)


def deleted_counts(saliency: torch.Tensor, fractions: Sequence[float] = FRACTIONS) -> torch.Tensor:
    """How many pixels (F, B), int32, PROTOCOL §2 deletes from each map at each fraction (in chunks of
    images, so that the masks never sit in memory at once)."""
    fractions = check_fractions(fractions)
    pixels = saliency.shape[-2] * saliency.shape[-1] if saliency.dim() == 3 else 1
    chunk = max(1, _MASK_ELEMENTS // (len(fractions) * pixels))
    return torch.cat([_masks_and_counts(saliency[i : i + chunk], fractions)[1]
                      for i in range(0, len(saliency), chunk)], dim=1)  # fmt: skip


def deleted_fraction(saliency: torch.Tensor, fractions: Sequence[float] = FRACTIONS) -> torch.Tensor:
    """The mean fraction of pixels actually deleted at each fraction (F,); it stops growing
    once only zero-valued (or tied) pixels remain."""
    return deletion_masks(saliency, fractions).flatten(2).float().mean(dim=(1, 2))


def allegiance_curve(
    model: nn.Module,
    images: torch.Tensor,
    saliency: torch.Tensor,
    fill: str,
    fractions: Sequence[float] = FRACTIONS,
    batch_size: int | None = None,
    original_predictions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Allegiance at each fraction (F,): the share of images whose predicted class after
    deleting the most salient pixels equals the prediction on the unaltered image.

    Args:
        model: classifier returning logits (B, C); run in eval mode without gradients and
            handed back in the mode it came in.
        images: float (B, K, H, W) in [0, 1].
        saliency: maps (B, H, W); higher = deleted first; zero = never deleted.
        fill: ``"black"`` (deleted pixels set to 0 in every channel), ``"white"`` (to 1), or
            ``"darker:δ"`` / ``"brighter:δ"`` with 0 < δ ≤ 1 (x·(1−δ) / x + δ·(1−x)).
        fractions: ascending fractions in [0, 1] (default ``FRACTIONS``).
        batch_size: altered images per forward pass; None sizes it for the device (``forward_batch``).
        original_predictions: (B,) predictions on the unaltered images, if already known
            (share them between the curves of one model to save a forward pass).
    """
    return deletion_curve(model, images, saliency, fill, fractions, batch_size, original_predictions).allegiance


def deletion_curve(
    model: nn.Module,
    images: torch.Tensor,
    saliency: torch.Tensor,
    fill: str,
    fractions: Sequence[float] = FRACTIONS,
    batch_size: int | None = None,
    original_predictions: torch.Tensor | None = None,
) -> DeletionCurve:
    """Like ``allegiance_curve`` but returns a ``DeletionCurve`` with the fraction actually
    deleted and the AUC."""
    curves = deletion_curves(model, images, {fill: (saliency, fill)}, fractions, batch_size, original_predictions)
    return curves[fill]


def deletion_curves(
    model: nn.Module,
    images: torch.Tensor,
    curves: Mapping[Hashable, tuple[torch.Tensor, str]],
    fractions: Sequence[float] = FRACTIONS,
    batch_size: int | None = None,
    original_predictions: torch.Tensor | None = None,
) -> dict[Hashable, DeletionCurve]:
    """Several curves of one model on the same images, say the paper's six: ``curves`` maps a key to
    ``(saliency, fill)`` (as in ``allegiance_curve``) and the result maps it to its ``DeletionCurve``.
    Beyond §2, ``saliency`` may be any object with ``masks_and_counts(part, fractions)`` and
    ``check(images)`` (``controls.Ranking``: exact counts, full rankings), and ``fill`` any callable
    ``(altered, deleted, rows)`` that fills the deleted pixels of ``altered`` in place, ``rows`` being
    the images they came from (``imputation.ImputationFill``, ``controls.ReplacementFill``).

    The original predictions are computed once for all the curves, curves on the same map tensor share
    its masks, and the altered images of every curve go through the model together, in full batches:
    the same curves as one ``deletion_curve`` call each, in fewer forward calls.
    """
    fractions = check_fractions(fractions)
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(
            f"curves must be a non-empty mapping of key -> (saliency, fill), such as "
            f"{{'black/positive': (maps['positive'], 'black')}}; got {'an empty ' * isinstance(curves, Mapping)}"
            f"{type(curves).__name__}"
        )
    fillers = {key: fill if callable(fill) else _filler(fill) for key, (_, fill) in curves.items()}
    check_images(images)
    for saliency, _ in curves.values():
        if hasattr(saliency, "masks_and_counts"):
            saliency.check(images)
        else:
            _check_pair(images, saliency)
    batch_size = forward_batch(images) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    pixels = images.shape[-2] * images.shape[-1]
    with evaluating(model), torch.inference_mode(), channels_last(model, images):
        images = to_channels_last(images)  # once, so that every altered batch gathered from it is channels-last
        if original_predictions is None:
            original_predictions = predict(model, images, batch_size)
        elif original_predictions.shape != (images.shape[0],):
            raise ValueError(
                f"original_predictions must have shape ({images.shape[0]},), got {tuple(original_predictions.shape)}"
            )
        original_predictions = original_predictions.to(images.device)
        batches = _AlteredBatches(model, images, min(batch_size, len(images) * len(fractions) * len(curves)))
        chunk = max(1, _MASK_ELEMENTS // (len(fractions) * pixels))
        deleted, waiting = {key: [] for key in curves}, {key: [] for key in curves}
        by_map = {}  # curves on the same map (black and white, say) share its masks
        for key, (saliency, _) in curves.items():
            by_map.setdefault(id(saliency), (saliency, []))[1].append(key)
        for saliency, keys in by_map.values():
            for start in range(0, images.shape[0], chunk):
                part = slice(start, start + chunk)
                if hasattr(saliency, "masks_and_counts"):
                    masks, counts = saliency.masks_and_counts(part, fractions)
                else:
                    masks, counts = _masks_and_counts(saliency[part], fractions)
                for key in keys:
                    deleted[key].append(counts)
                    waiting[key].append((part, *batches.add(part, masks, counts, fillers[key])))
        batches.flush()
        predictions = {key: torch.cat([_carry_forward(grew, fresh, original_predictions[part])
                                       for part, grew, fresh in waiting[key]], dim=1)
                       for key in curves}  # fmt: skip
    result = {}
    for key, (_, fill) in curves.items():
        agreement = predictions[key] == original_predictions[None]
        agree = agreement.float().mean(dim=1)
        share = torch.cat(deleted[key], dim=1).float().mean(dim=1) / pixels
        name = fill if isinstance(fill, str) else getattr(fill, "name", type(fill).__name__)
        result[key] = DeletionCurve(fractions, agree.cpu(), share.cpu(), auc(fractions, agree.tolist()), name,
                                    agreement.cpu())  # fmt: skip
    return result


def predict(model: nn.Module, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Predicted classes (B,) in batches, without gradients (and channels-last, see ``channels_last``)."""
    batch_size = forward_batch(images) if batch_size is None else batch_size
    with torch.inference_mode(), channels_last(model, images):
        return torch.cat([check_logits(model(to_channels_last(images[i : i + batch_size])),
                                       len(images[i : i + batch_size])).argmax(1)
                          for i in range(0, len(images), batch_size)])  # fmt: skip


def auc(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Area under the curve by the trapezoid rule, fractions as x (not normalised)."""
    xs = [float(x) for x in fractions]
    ys = [float(y) for y in (values.tolist() if isinstance(values, torch.Tensor) else values)]
    if len(xs) != len(ys):
        raise ValueError(f"fractions and values differ in length: {len(xs)} vs {len(ys)}")
    if len(xs) < 2:
        raise ValueError(f"an area needs at least two points, got {len(xs)}")
    if any(v != v for v in xs + ys):
        raise ValueError(f"fractions and values must not hold NaN, got {xs} and {ys}")
    if any(b < a for a, b in zip(xs, xs[1:])):
        raise ValueError(f"fractions must be ascending, got {xs}")
    return sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))


def fill_values(fill: str):
    """What deleted pixels become under ``fill``: a function of the images (B, K, H, W)."""
    if fill in FILLS:
        return lambda images: torch.tensor(FILLS[fill], dtype=images.dtype, device=images.device)
    kind, _, amount = fill.partition(":") if isinstance(fill, str) else ("", "", "")
    try:
        delta = float(amount)
    except ValueError:
        delta = float("nan")
    if kind not in GRADED or not 0 < delta <= 1:
        raise ValueError(f"fill must be 'black', 'white', 'darker:δ' or 'brighter:δ' with 0 < δ ≤ 1, got {fill!r}")
    if kind == "darker":
        return lambda images: images * (1 - delta)
    return lambda images: images + delta * (1 - images)


def new_deletion_sets(counts: torch.Tensor) -> torch.Tensor:
    """Where (F, B) an image's deletion set grows, given its deleted-pixel ``counts`` (F, B): only
    there is the altered image a new one that needs a forward pass."""
    return torch.cat([counts[:1] > 0, counts[1:] > counts[:-1]])


class _AlteredBatches:
    """Altered images of any number of curves, gathered into full batches for the model.

    ``add`` writes one part's new altered images into a batch buffer, sending the buffer through the
    model whenever it is full, and returns where their predictions will be; ``flush`` sends the rest.
    One buffer each for the altered images and their masks serves every batch: on the CPU a fresh
    allocation of this size is returned to the system when freed, and touching it again costs page faults.
    """

    def __init__(self, model: nn.Module, images: torch.Tensor, size: int):
        self.model, self.images = model, images
        self.altered = to_channels_last(images.new_empty((size, *images.shape[1:])))
        self.masks = torch.empty((size, 1, *images.shape[2:]), dtype=torch.bool, device=images.device)
        self.filled = 0
        self.waiting = []  # (predictions, their first position, position in the buffer, count)

    def add(self, part: slice, masks, counts, fill_in) -> tuple[torch.Tensor, torch.Tensor]:
        """Queue the altered images of ``images[part]`` whose deletion set grows; returns that pattern
        (F, B) and the tensor their predictions will fill, in its order, once they have been through."""
        n_fractions, batch = masks.shape[:2]
        grew = new_deletion_sets(counts)
        f_index, i_index = grew.nonzero(as_tuple=True)
        rows = f_index * batch + i_index  # of the masks seen as (F·B, 1, H, W)
        flat_masks = masks.view(n_fractions * batch, 1, *masks.shape[2:])
        i_index = i_index + part.start
        fresh = torch.empty(len(rows), dtype=torch.long, device=self.images.device)
        done = 0
        while done < len(rows):
            n = min(len(rows) - done, len(self.altered) - self.filled)
            altered, mask = self.altered[self.filled : self.filled + n], self.masks[self.filled : self.filled + n]
            torch.index_select(self.images, 0, i_index[done : done + n], out=altered)
            torch.index_select(flat_masks, 0, rows[done : done + n], out=mask)
            fill_in(altered, mask, i_index[done : done + n])
            self.waiting.append((fresh, done, self.filled, n))
            self.filled, done = self.filled + n, done + n
            if self.filled == len(self.altered):
                self.flush()
        return grew, fresh

    def flush(self) -> None:
        if self.filled:
            predictions = self.model(self.altered[: self.filled]).argmax(1)
            for fresh, at, offset, n in self.waiting:
                fresh[at : at + n] = predictions[offset : offset + n]
        self.filled, self.waiting = 0, []


def _carry_forward(grew: torch.Tensor, fresh: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """Predictions (F, B) on every altered image from those on the new ones (``fresh``, where ``grew``)."""
    # Carry each image's latest prediction forward through fractions that deleted nothing new: the
    # running maximum of the fresh positions (they grow with the fraction) finds it without a loop,
    # and without asking a GPU whether anything grew.
    unchanged = original[None].expand(grew.shape)
    if len(fresh) == 0:
        return unchanged.clone()
    position = torch.where(grew, grew.flatten().cumsum(0).view(grew.shape) - 1, -1)
    latest = position.cummax(dim=0).values
    return torch.where(latest >= 0, fresh[latest.clamp(min=0)], unchanged)


def _filler(fill: str):
    """A function ``(altered, deleted, rows)`` that replaces, in place, the deleted pixels (B, 1, H, W) of
    the altered images (B, K, H, W) as ``fill`` says (``rows``, the images they came from, is unused here).

    Black and white multiply by the kept pixels instead of calling ``torch.where``: on channels-last
    images, where the mask repeats over an innermost dimension of K = 3, that measured 3× faster on the
    CPU, and for finite images it gives the same numbers (x·1 = x, x·0 + 1 = 1).
    """
    replacement = fill_values(fill)  # checks the fill

    def black(altered: torch.Tensor, deleted: torch.Tensor, rows=None) -> None:
        altered.mul_(deleted.logical_not())

    def white(altered: torch.Tensor, deleted: torch.Tensor, rows=None) -> None:
        kept = deleted.logical_not().to(altered.dtype)
        torch.addcmul(1 - kept, altered, kept, out=altered)

    def graded(altered: torch.Tensor, deleted: torch.Tensor, rows=None) -> None:
        torch.where(deleted, replacement(altered), altered, out=altered)

    return {"black": black, "white": white}.get(fill, graded)


class NothingToDeleteWarning(UserWarning):
    """Some maps are constant (all zero, say): no pixel ranks above another, so nothing is deleted from them."""


def _check_pair(images: torch.Tensor, saliency: torch.Tensor) -> None:
    expected = (images.shape[0], *images.shape[2:])
    if not isinstance(saliency, torch.Tensor):
        raise ValueError(f"saliency must be a torch.Tensor of shape {expected}, got {type(saliency).__name__}"
                         + (": use torch.from_numpy(...)" if hasattr(saliency, "__array__") else ""))  # fmt: skip
    if tuple(saliency.shape) != expected:
        raise ValueError(f"saliency must have shape {expected} to match the images, got {tuple(saliency.shape)}")
    if not saliency.is_floating_point():
        raise ValueError(f"saliency must be a float tensor, got dtype {saliency.dtype}: its values rank the pixels, "
                         "so convert it with .float() if an integer or boolean map is what you mean")  # fmt: skip
    if nans := int(saliency.isnan().sum()):
        raise ValueError(f"saliency holds {nans} NaN values, which have no deletion order: replace them first")
    low, high = saliency.flatten(1).aminmax(dim=1)
    if constant := int((low == high).sum()):
        warnings.warn(f"{constant} of {len(saliency)} maps are constant (all zero, say): no pixel ranks above another, "
                      "so nothing is deleted from those images and their allegiance stays 1", NothingToDeleteWarning,
                      stacklevel=4)  # fmt: skip
