"""ROAD's noisy linear imputation (Rong et al. 2022), the fill of PROTOCOL §8's imputation control.

Every deleted pixel-channel becomes the weighted mean of its 8 in-image neighbours (1/6 edge, 1/12
diagonal), kept pixels fixed: one sparse linear system per image and channel. ``linear_imputation``
solves all of them at once: small images on the CPU exactly, by the compiled envelope Cholesky of
``cholesky``; larger images and GPU tensors by float64 iterative refinement around float32 conjugate
gradients with a symmetric multigrid V-cycle as preconditioner (``_vcycle``). ``ImputationFill`` adds ROAD's
seeded Gaussian noise and is the fill that ``deletion.deletion_curves`` and ``controls.control_curves`` call.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from signed_saliency import cholesky
from signed_saliency.checks import check_images, check_seed

NOISE = 0.01  # ROAD's standard deviation, on the [0, 1] pixel scale
_IMPUTATION_PIXELS = 128 * 32 * 32  # pixels per imputation solve: 128 CIFAR-10 images
# Images of at most this many pixels are solved directly on the CPU (``cholesky``): measured on 3,072 CIFAR-10
# systems 0.62 s against 5.1 s by refined CG; at 224 px, where an image row's envelope is 224 wide, the direct
# solve costs 16 / 304 / 924 ms a system with 10 / 50 / 90 % of a blob deleted, refined CG 234 / 309 / 675 ms.
DIRECT_PIXELS = 64 * 64
TOLERANCE = 1e-10  # the float64 residual (pixel units) at which refinement stops: 6e-8 from spsolve, measured
_INNER = 1e-5  # each float32 CG solve's residual, relative to the residual it is given
_REFINEMENTS = 8
# ROAD's weights: 1/6 for the 4 edge neighbours, 1/12 for the 4 diagonal ones.
_STENCIL = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))


def _neighbour_mean(values: torch.Tensor) -> torch.Tensor:
    """Σ weight × neighbour over the 8 in-image neighbours of each pixel of every plane of (1, N, H, W).

    The planes are the channels of one grouped convolution: measured 24× faster on the CPU than the same
    planes as a batch of single-channel images."""
    weights = torch.tensor(_STENCIL, dtype=values.dtype, device=values.device)[None, None]
    return F.conv2d(values, weights.expand(values.shape[1], 1, 3, 3), padding=1, groups=values.shape[1])


class _Level(NamedTuple):
    """One grid of the multigrid hierarchy, with what its operator and Jacobi sweeps need precomputed."""

    unknown: torch.Tensor  # 1 where a pixel is imputed, 0 where it is kept
    diagonal: torch.Tensor  # the operator's diagonal: scale × the in-image neighbours' weight sum (× unknown)
    scaled_unknown: torch.Tensor  # scale × unknown
    jacobi: torch.Tensor  # ω / diagonal where unknown, 0 elsewhere


def _level(unknown: torch.Tensor, scale: float) -> _Level:
    weight_sums = _neighbour_mean(torch.ones_like(unknown[:, :1])).expand_as(unknown)
    return _Level(unknown, scale * unknown * weight_sums, scale * unknown, (2 / 3) * unknown / (scale * weight_sums))


def _apply(values: torch.Tensor, level: _Level) -> torch.Tensor:
    """The system's operator on ``values`` (zero on kept pixels): diagonal × v − scale × Σ weight × neighbour."""
    return torch.addcmul(level.diagonal * values, level.scaled_unknown, _neighbour_mean(values), value=-1)


def _vcycle(residual: torch.Tensor, levels: Sequence[_Level], depth: int = 0, coarsest_sweeps: int = 3):
    """One symmetric multigrid V-cycle (weighted Jacobi, sum restriction, nearest prolongation): a fixed
    linear, symmetric approximate inverse, so conjugate gradients stays exact with it as preconditioner."""
    level = levels[depth]
    error = level.jacobi * residual
    if depth == len(levels) - 1:
        for _ in range(coarsest_sweeps - 1):
            error.addcmul_(level.jacobi, residual - _apply(error, level))
        return error
    planes, height, width = residual.shape[1], residual.shape[2] // 2, residual.shape[3] // 2
    blocks = (1, planes, height, 2, width, 2)  # each coarse pixel's four fine ones, as views: no copies
    coarse = (residual - _apply(error, level)).view(blocks).sum(dim=(3, 5))
    correction = _vcycle(coarse, levels, depth + 1, coarsest_sweeps).view(1, planes, height, 1, width, 1)
    error.view(blocks).addcmul_(level.unknown.view(blocks), correction)
    return error.addcmul_(level.jacobi, residual - _apply(error, level))


def _conjugate_gradients(rhs: torch.Tensor, levels: Sequence[_Level], tolerance: float, max_iterations: int):
    """Solve the float32 system on ``levels[0]`` for ``rhs`` by CG preconditioned with ``_vcycle``, until every
    recursive residual is at most ``tolerance``."""
    solution, residual = torch.zeros_like(rhs), rhs.clone()
    z = _vcycle(residual, levels)
    direction, rz = z.clone(), (residual * z).sum(dim=(0, 2, 3), keepdim=True)
    for _ in range(max_iterations):
        if residual.abs().amax() <= tolerance:
            return solution
        step = _apply(direction, levels[0])
        curvature = (direction * step).sum(dim=(0, 2, 3), keepdim=True)
        alpha = torch.where(curvature > 0, rz / curvature.clamp(min=1e-30), 0)
        solution += alpha * direction
        residual -= alpha * step
        z = _vcycle(residual, levels)
        rz_next = (residual * z).sum(dim=(0, 2, 3), keepdim=True)
        direction = z + torch.where(rz > 0, rz_next / rz.clamp(min=1e-30), 0) * direction
        rz = rz_next
    raise RuntimeError(f"the imputation did not converge in {max_iterations} iterations "
                       f"(largest residual {float(residual.abs().amax()):.1e})")  # fmt: skip


def linear_imputation(
    images: torch.Tensor, deleted: torch.Tensor, tolerance: float = TOLERANCE, max_iterations: int = 500
) -> torch.Tensor:
    """ROAD's linear imputation without noise: every deleted pixel-channel becomes the weighted mean of
    its in-image 8 neighbours (1/6 edge, 1/12 diagonal, renormalised at borders), kept pixels fixed.

    Images of at most ``DIRECT_PIXELS`` pixels on the CPU are solved exactly, one envelope Cholesky per image
    (``cholesky.impute``, on ``torch.get_num_threads()`` threads; ``tolerance`` and ``max_iterations`` do not
    apply). The others are solved at once by mixed-precision iterative refinement: the residual in float64,
    each correction by float32 conjugate gradients with a multigrid V-cycle as preconditioner, until every
    float64 residual is below ``tolerance`` (pixel units). Measured: both within 1e-8 of
    ``scipy.sparse.linalg.spsolve`` even where every pixel but one is deleted at 224 px (a float32 solve
    alone is off by 1e-2 there), and equal to Quantus' ``noisy_linear_imputation`` with ``noise=0``.

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
    deleted = deleted.reshape(batch, 1, height, width)
    if (all_gone := deleted.flatten(1).all(dim=1)).any():
        raise ValueError(f"{int(all_gone.sum())} images have every pixel deleted: there is nothing to impute them "
                         "from, so keep the fractions below 1 for the imputation fill")  # fmt: skip
    if not deleted.any():
        return images.clone()
    if images.device.type == "cpu" and height * width <= DIRECT_PIXELS:
        # The exact direct solve (cholesky), every image in one compiled call on this process's threads.
        filled = cholesky.impute(images.numpy(), deleted[:, 0].numpy(), torch.get_num_threads())
        return torch.from_numpy(filled).to(images.dtype)
    chunk = max(1, _IMPUTATION_PIXELS // (height * width))
    if batch > chunk:  # measured fastest: larger tensors spend their time in page faults, smaller in overheads
        return torch.cat([linear_imputation(images[i : i + chunk], deleted[i : i + chunk], tolerance, max_iterations)
                          for i in range(0, batch, chunk)])  # fmt: skip
    # Every channel of every image is one plane of a single (1, B·K, H, W) tensor (see _neighbour_mean).
    x = images.double().contiguous().view(1, batch * channels, height, width)
    unknown = deleted.double().expand(batch, channels, height, width).reshape(1, batch * channels, height, width)
    # Coarser grids: a coarse pixel is unknown where any of its four is; the operator's scale grows by 1.5 per
    # level (measured: fewest iterations on CIFAR-10 and Imagenette masks among 0.5, 1, 1.5 and 2).
    levels = [_level(unknown.float(), 1.0)]
    while not (levels[-1].unknown.shape[-2] % 2 or levels[-1].unknown.shape[-1] % 2
               or min(levels[-1].unknown.shape[-2:]) < 8):  # fmt: skip
        levels.append(_level(F.max_pool2d(levels[-1].unknown, 2), 1.5 ** len(levels)))
    exact = _level(unknown, 1.0)
    rhs = unknown * _neighbour_mean((1 - unknown) * x)
    solution, residual = torch.zeros_like(x), rhs
    for _ in range(_REFINEMENTS):
        scale = float(residual.abs().amax())
        if scale <= tolerance:
            break
        # Each float32 solve gains about _INNER digits on the residual it is given, whatever its size.
        correction = _conjugate_gradients((residual / scale).float(), levels, _INNER, max_iterations)
        solution += scale * correction.double()
        residual = rhs - _apply(solution, exact)
    else:
        raise RuntimeError(f"the imputation did not refine to {tolerance:.0e} in {_REFINEMENTS} rounds "
                           f"(largest residual {float(residual.abs().amax()):.1e})")  # fmt: skip
    filled = x + unknown * (solution - x)
    return filled.view(batch, channels, height, width).to(images.dtype)


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
