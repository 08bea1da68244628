"""ROAD's noisy linear imputation (Rong et al. 2022), the fill of PROTOCOL §8's imputation control.

Every deleted pixel-channel becomes the weighted mean of its 8 in-image neighbours (1/6 edge, 1/12
diagonal), kept pixels fixed: one sparse linear system per image, one right-hand side per channel.
``linear_imputation`` solves all of them exactly, on the CPU, by the compiled nested-dissection Cholesky of
``cholesky``; ``ImputationFill`` adds ROAD's seeded Gaussian noise and is the fill that
``deletion.deletion_curves`` and ``controls.control_curves`` call.
"""

from __future__ import annotations

import numbers

import torch

from signed_saliency import cholesky
from signed_saliency.checks import check_images, check_seed

NOISE = 0.01  # ROAD's standard deviation, on the [0, 1] pixel scale


def linear_imputation(images: torch.Tensor, deleted: torch.Tensor) -> torch.Tensor:
    """ROAD's linear imputation without noise: every deleted pixel-channel becomes the weighted mean of
    its in-image 8 neighbours (1/6 edge, 1/12 diagonal, renormalised at borders), kept pixels fixed.

    Each image's system is solved exactly (``cholesky.impute``: one factorisation per image, in float64, on
    ``torch.get_num_threads()`` threads), on the CPU whatever the images' device, and rounded once to their
    dtype. Tested within 1e-14 of ``scipy.sparse.linalg.spsolve`` at 32 and 224 px, edge cases included (every
    pixel but one deleted, the whole border, the corners), and equal to Quantus' ``noisy_linear_imputation``
    with ``noise=0``.

    Args:
        images: (B, K, H, W) in [0, 1].
        deleted: bool (B, H, W) or (B, 1, H, W): the pixels to impute; each image keeps at least one.

    >>> images = torch.tensor([[[[0.0, 1.0, 0.0]]]])
    >>> linear_imputation(images, torch.tensor([[[False, True, False]]])).flatten().tolist()
    [0.0, 0.0, 0.0]
    """
    check_images(images)
    batch, channels, height, width = images.shape
    if deleted.dtype != torch.bool or deleted.reshape(batch, -1).shape[1] != height * width:
        raise ValueError(f"deleted must be a bool mask ({batch}, {height}, {width}), got {deleted.dtype} "
                         f"{tuple(deleted.shape)}")  # fmt: skip
    deleted = deleted.reshape(batch, height, width)
    if (all_gone := deleted.flatten(1).all(dim=1)).any():
        raise ValueError(f"{int(all_gone.sum())} images have every pixel deleted: there is nothing to impute them "
                         "from, so keep the fractions below 1 for the imputation fill")  # fmt: skip
    if not deleted.any():
        return images.clone()
    solvable = images.detach().cpu()
    if solvable.dtype not in (torch.float32, torch.float64):
        solvable = solvable.double()
    filled = cholesky.impute(solvable.numpy(), deleted.cpu().numpy(), torch.get_num_threads())
    return torch.from_numpy(filled).to(device=images.device, dtype=images.dtype)


class ImputationFill:
    """The ROAD fill for ``deletion_curves``: deleted pixels linearly imputed (``linear_imputation``), plus
    Gaussian noise of standard deviation ``noise`` on the imputed values, seeded per image (``seed``, image
    index + ``first_image``), so that an image gets the same noise in whatever batch or chunk it travels."""

    name = "imputation"

    def __init__(self, noise: float = NOISE, seed: int = 0, first_image: int = 0):
        if not isinstance(noise, numbers.Real) or not noise >= 0:
            raise ValueError(f"noise must be a standard deviation >= 0, got {noise!r}")
        self.noise, self.seed, self.first_image = float(noise), check_seed(seed), int(first_image)

    def noise_for(self, rows: torch.Tensor, shape) -> torch.Tensor:
        """The noise (N, K, H, W) of the images ``rows``: standard normal × ``noise``, one generator per image."""
        return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(
            self.seed * 1_000_003 + self.first_image + r)) for r in rows.tolist()]) * self.noise  # fmt: skip

    def __call__(self, altered: torch.Tensor, deleted: torch.Tensor, rows: torch.Tensor) -> None:
        filled = linear_imputation(altered, deleted)
        if self.noise:
            filled += deleted * self.noise_for(rows, altered.shape[1:]).to(filled.device)
        altered.copy_(filled)
