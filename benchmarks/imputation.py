"""ROAD's linear imputation of 256 CIFAR-10 images at the 13 fractions: ours against Quantus, per image.

Ours: ``signed_saliency.imputation.linear_imputation`` on every image × fraction at once (the exact
nested-dissection Cholesky of ``cholesky``, on this process's threads). Theirs: Quantus'
``noisy_linear_imputation`` with ``noise=0`` (the code of tleemann/road_evaluation), one image at a
time as ROAD and Quantus call it: a sparse system built with ``lil_matrix`` and solved by
``scipy.sparse.linalg.spsolve``. The masks are the full MoRF rankings (PROTOCOL §8) of a CNN's
original gradient maps, so the holes are the blobs real maps delete, not scattered pixels. Both
fill the same pixels; the largest difference between their images is reported with the times."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.timing import interleaved_medians
from signed_saliency import cholesky
from signed_saliency.deletion import FRACTIONS
from signed_saliency.imputation import linear_imputation
from signed_saliency.rankings import full_ranking
from signed_saliency.saliency import saliency_maps

FRACTIONS_224 = (0.05, 0.1, 0.3, 0.5, 0.7, 0.9)  # six fractions for the 224-px row


def workload(model, images, fractions=FRACTIONS):
    """The (image × fraction) batch and its masks: every non-empty MoRF deletion set of the original map."""
    maps = saliency_maps(model, images, methods=("original",))["original"]
    masks, counts = full_ranking(maps, seed=0).masks_and_counts(slice(None), fractions)
    keep = counts.flatten() > 0  # fraction 0 deletes nothing: there is nothing to impute
    repeated = images[None].expand(len(fractions), *images.shape).reshape(-1, *images.shape[1:])
    return repeated[keep].contiguous(), masks.reshape(-1, *masks.shape[2:])[keep].contiguous()


def quantus_imputation(images, masks):
    from quantus.functions.perturb_func import noisy_linear_imputation

    x, m = images.double().numpy(), masks.numpy()
    return np.stack([noisy_linear_imputation(x[i], np.flatnonzero(m[i]), noise=0.0) for i in range(len(x))])


def run(model, images, what: str, repeats: int = 3, fractions=FRACTIONS) -> dict:
    """Ours against Quantus on every non-empty MoRF mask of ``images`` at ``fractions``, timed in turn; with the
    time of one system, and of the forward passes a deletion curve runs on the imputed images, so that the
    solver's share of an imputation-fill deletion curve is measured beside it."""
    batch, masks = workload(model, images, fractions)
    ours = linear_imputation(batch, masks).double().numpy()
    theirs = quantus_imputation(batch, masks)
    filled = torch.from_numpy(ours).float()
    with torch.inference_mode():
        times = interleaved_medians({"ours": lambda: linear_imputation(batch, masks),
                                     "quantus": lambda: quantus_imputation(batch, masks),
                                     "forward": lambda: model(filled)}, repeats)  # fmt: skip
    return {"what": what, "images": len(images), "fractions": len(fractions), "systems": len(batch),
            "ours": times["ours"], "quantus": times["quantus"], "forward": times["forward"],
            "per_system": times["ours"] / len(batch), "threads": torch.get_num_threads(),
            "workspace_bytes": cholesky.workspace_bytes(*images.shape[-2:], images.shape[1]),
            "solver_share": times["ours"] / (times["ours"] + times["forward"]),
            "max_abs_difference": float(np.abs(ours - theirs).max())}  # fmt: skip


if __name__ == "__main__":
    import sys

    from signed_saliency.data import load_dataset
    from signed_saliency.models import build

    torch.manual_seed(0)
    cifar = load_dataset("cifar10", "test").subset(256, 0).batch(slice(None))
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    row = run(build("cnn").eval(), cifar, "CNN (random weights), CIFAR-10", repeats)
    print(row, f"speed-up {row['quantus'] / row['ours']:.1f}×")
