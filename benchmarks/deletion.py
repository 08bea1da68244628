"""The six deletion curves of one model: ours against Quantus' PixelFlipping and the floor.

Ours: ``signed_saliency.deletion.deletion_curves`` for the paper's six curves (original,
positive, active with black; original, negative, inactive with white) at the 13 fractions,
the original predictions computed once and shared, the altered images of all six streamed
through full batches. Quantus: ``PixelFlipping`` per curve,
configured as close to the same work as it allows: baseline 0.0 (black) or 1.0 (white),
the map repeated over the channels so that a pixel's channels go together,
``features_in_step`` set so that it takes 12 steps (as many as our non-zero fractions; it
must divide H·W, so a step is 1/12 of the pixel-channels, not always whole pixels), no
normalisation, no absolute value, the whole batch per call. What still differs: its steps
are uniform and reach 100 % of the pixels (ours stop at 90 % and never delete zero-valued
pixels), it evaluates every step even when nothing new was deleted, it records the softmax
probability of the predicted class rather than agreement with it, and it converts to and
from NumPy at every step.
The floor: bare eager fp32 forward passes over exactly as many altered images as our
curves evaluate, in the same batches and with the same settings as ours (inference mode,
channels-last), with the inputs made in advance. ``floor_variants`` measures what each way
of lowering the floor gains against plain ``no_grad`` contiguous forwards: ``inference_mode``,
channels-last memory, the originals shared by the six curves, and bfloat16 (which the
library would take only if the curves stayed identical).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from benchmarks.timing import interleaved_medians
from signed_saliency.deletion import FRACTIONS, deletion_curves, deletion_masks, new_deletion_sets, predict
from signed_saliency.evaluation import PAPER_CURVES
from signed_saliency.saliency import METHODS, saliency_maps
from signed_saliency.speed import channels_last, forward_batch


def ours(model, images, maps, original=None):
    original = predict(model, images) if original is None else original
    curves = {f"{fill}/{method}": (maps[method], fill) for fill, method in PAPER_CURVES}
    return deletion_curves(model, images, curves, original_predictions=original)


def quantus_curves(model, images, maps, device):
    import quantus

    x = images.cpu().numpy()
    y = predict(model, images).cpu().numpy()
    channels, height, width = x.shape[1:]
    # Quantus needs a step that divides H·W; H·W/4 of the 3·H·W pixel-channels gives 12 steps, as many
    # as our non-zero fractions.
    steps = len(FRACTIONS) - 1
    step = channels * height * width // steps
    if (height * width) % step:
        raise ValueError(f"Quantus cannot take {steps} equal steps over {channels}×{height}×{width} images")
    out = {}
    for fill, method in PAPER_CURVES:
        metric = quantus.PixelFlipping(features_in_step=step, perturb_baseline=0.0 if fill == "black" else 1.0,
                                       normalise=False, abs=False, disable_warnings=True)  # fmt: skip
        a = np.repeat(maps[method].cpu().numpy()[:, None], channels, axis=1)
        out[f"{fill}/{method}"] = metric(model=model, x_batch=x, y_batch=y, a_batch=a, device=str(device),
                                         batch_size=len(x))  # fmt: skip
    return out


def forwards_needed(maps) -> int:
    """Altered images our curves evaluate: one per image and fraction whose deletion set grows."""
    return sum(int(new_deletion_sets(deletion_masks(maps[method]).flatten(2).sum(dim=2)).sum())
               for _, method in PAPER_CURVES)  # fmt: skip


def bare_forwards(model, inputs, count, mode=torch.no_grad, dtype=None, last=False):
    """``count`` forward passes in batches of ``len(inputs)``, cycling over the prepared ``inputs``."""
    batch = len(inputs)
    if last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with channels_last(model, inputs) if last else contextlib.nullcontext(), mode():
        with torch.autocast(inputs.device.type, dtype=dtype, enabled=dtype is not None):
            for start in range(0, count, batch):
                model(inputs[: min(batch, count - start)]).argmax(1)


def _inputs(images, count):
    """One batch of the size our curves use, made of the images themselves."""
    batch = min(forward_batch(images), count)
    return images.repeat(math.ceil(batch / len(images)), 1, 1, 1)[:batch]


def run(model, images, name: str, device, repeats: int = 3) -> dict:
    """One row: ours, Quantus and the floor for the six curves on ``images`` (float, on ``device``)."""
    model = model.to(device).eval()
    images = images.to(device)
    maps = saliency_maps(model, images, methods=METHODS)
    count = len(images) + forwards_needed(maps)
    inputs = _inputs(images, count)
    seconds = interleaved_medians({
        "ours": lambda: ours(model, images, maps),
        "quantus": lambda: quantus_curves(model, images, maps, device),
        "floor": lambda: bare_forwards(model, inputs, count, torch.inference_mode, last=True),
    }, repeats, device=device)  # fmt: skip
    return {"what": f"six deletion curves, {name}", "batch": len(images), **seconds, "forwards": count,
            "forwards_naive": len(images) * len(PAPER_CURVES) * len(FRACTIONS)}  # fmt: skip


def floor_variants(model, images, name: str, device, repeats: int = 3) -> list[dict]:
    """Each way of lowering the floor, timed alone against the plain floor, and whether the curves stay identical."""
    model = model.to(device).eval()
    images = images.to(device)
    maps = saliency_maps(model, images, methods=METHODS)
    count = len(images) + forwards_needed(maps)
    inputs = _inputs(images, count)
    reference = {k: c.allegiance for k, c in ours(model, images, maps).items()}
    unshared = count + (len(PAPER_CURVES) - 1) * len(images)
    seconds = interleaved_medians({
        "plain": lambda: bare_forwards(model, inputs, count),
        "inference": lambda: bare_forwards(model, inputs, count, torch.inference_mode),
        "last": lambda: bare_forwards(model, inputs, count, last=True),
        "per_curve": lambda: bare_forwards(model, inputs, unshared),
        "bf16": lambda: bare_forwards(model, inputs, count, dtype=torch.bfloat16),
    }, repeats, device=device)  # fmt: skip
    plain = seconds["plain"]
    with torch.no_grad():  # the same curves from contiguous forwards: the library's channels-last switched off
        contiguous = ours_contiguous(model, images, maps)
    with torch.autocast(images.device.type, dtype=torch.bfloat16):
        same = _same_curves(reference, ours(model, images, maps))
    rows = [
        {"what": f"floor, {name}: plain (no_grad, fp32, contiguous)", "seconds": plain, "gain": 1.0, "identical": True},
        {"what": "inference_mode instead of no_grad", "seconds": seconds["inference"],
         "gain": plain / seconds["inference"], "identical": True},
        {"what": "channels-last memory", "seconds": seconds["last"], "gain": plain / seconds["last"],
         "identical": _same_curves(reference, contiguous)},
        {"what": f"originals shared by the six curves ({len(PAPER_CURVES) - 1} × {len(images)} forwards saved)",
         "seconds": plain, "gain": seconds["per_curve"] / plain, "identical": True},
        {"what": "bfloat16 autocast", "seconds": seconds["bf16"], "gain": plain / seconds["bf16"], "identical": same},
    ]  # fmt: skip
    return rows


def ours_contiguous(model, images, maps):
    """Our curves with channels-last switched off, to check that it changes nothing."""
    from unittest import mock

    import signed_saliency.deletion as library

    with mock.patch.object(library, "channels_last", lambda m, x: contextlib.nullcontext()), \
            mock.patch.object(library, "to_channels_last", lambda batch: batch):  # fmt: skip
        return ours(model, images, maps)


def _same_curves(reference, curves) -> bool:
    return all(torch.equal(reference[k], curves[k].allegiance) for k in reference)
