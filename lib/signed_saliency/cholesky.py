"""Exact solves of ROAD's imputation systems: an envelope Cholesky, compiled with numba, many systems at once.

For one image and mask, the deleted pixels (row-major order) are the unknowns of a symmetric positive definite
system: each one's weighted in-image neighbour sum (1/6 edge, 1/12 diagonal) on the diagonal, minus the
weights of its deleted neighbours off it, and the kept neighbours' weighted values on the right, one column
per channel (PROTOCOL §8). In row-major order a row's non-zeros lie within one image row of the diagonal, so
its Cholesky factor fits in the same *envelope* (each row from its first non-zero to the diagonal): one
factorisation per image, three right-hand sides, no pivoting, no ordering. ``impute`` runs every image of a
batch in one compiled call, images spread over numba's threads; each image is solved by one thread in a fixed
order, so the bits do not depend on the thread count, and without fast-math the compiler keeps the order of
every sum, so they do not depend on the CPU's vector width either. Memory: the factor of an image with n
deleted pixels and rows of width w holds at most n·(w + 2) float64 values (224 px, everything deleted:
50,176 × 226 × 8 B = 91 MB), one per running thread.
"""

from __future__ import annotations

import math

import numba
import numpy as np

EDGE, DIAGONAL = 1.0 / 6.0, 1.0 / 12.0


@numba.njit(cache=True)
def _solve_one(image: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
    channels, height, width = image.shape
    pixels = height * width
    number = np.full(pixels, -1, np.int64)
    n = 0
    for p in range(pixels):
        if mask[p // width, p % width]:
            number[p] = n
            n += 1
    out[:] = image  # the kept pixels; the deleted ones are overwritten below
    if n == 0:
        return
    where = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    start = np.empty(n + 1, np.int64)
    diagonal = np.zeros(n)
    rhs = np.zeros((n, channels))
    start[0] = 0
    for p in range(pixels):
        i = number[p]
        if i < 0:
            continue
        where[i] = p
        y, x = p // width, p % width
        lowest = i
        for dy in range(-1, 2):
            for dx in range(-1, 2):
                yy, xx = y + dy, x + dx
                if (dy == 0 and dx == 0) or yy < 0 or yy >= height or xx < 0 or xx >= width:
                    continue
                weight = EDGE if dy == 0 or dx == 0 else DIAGONAL
                diagonal[i] += weight
                j = number[yy * width + xx]
                if j < 0:
                    for k in range(channels):
                        rhs[i, k] += weight * np.float64(image[k, yy, xx])
                elif j < lowest:
                    lowest = j
        first[i] = lowest
        start[i + 1] = start[i] + i - lowest + 1
    # The lower triangle in envelope storage: entry (i, j) at factor[start[i] + j - first[i]].
    factor = np.zeros(start[n])
    for i in range(n):
        p = where[i]
        y, x = p // width, p % width
        for dy in range(-1, 1):
            for dx in range(-1, 2):
                if dy == 0 and dx >= 0:
                    continue
                yy, xx = y + dy, x + dx
                if yy < 0 or xx < 0 or xx >= width:
                    continue
                j = number[yy * width + xx]
                if j >= 0:
                    factor[start[i] + j - first[i]] = -(EDGE if dy == 0 or dx == 0 else DIAGONAL)
        factor[start[i] + i - first[i]] = diagonal[i]
    for i in range(n):
        row = start[i] - first[i]
        for j in range(first[i], i):
            column = start[j] - first[j]
            total = factor[row + j]
            for k in range(max(first[i], first[j]), j):
                total -= factor[row + k] * factor[column + k]
            factor[row + j] = total / factor[column + j]
        total = factor[row + i]
        for k in range(first[i], i):
            total -= factor[row + k] * factor[row + k]
        factor[row + i] = math.sqrt(total)
    for i in range(n):  # L y = b
        row = start[i] - first[i]
        for k in range(channels):
            total = rhs[i, k]
            for j in range(first[i], i):
                total -= factor[row + j] * rhs[j, k]
            rhs[i, k] = total / factor[row + i]
    for i in range(n - 1, -1, -1):  # Lᵀ x = y, column by column of Lᵀ (row i of L)
        row = start[i] - first[i]
        for k in range(channels):
            rhs[i, k] /= factor[row + i]
            value = rhs[i, k]
            for j in range(first[i], i):
                rhs[j, k] -= factor[row + j] * value
    for i in range(n):
        p = where[i]
        for k in range(channels):
            out[k, p // width, p % width] = rhs[i, k]


@numba.njit(parallel=True, cache=True)
def _solve_all(images: np.ndarray, masks: np.ndarray, out: np.ndarray, threads: int) -> None:
    # Thread t takes images t, t + threads, …: batches come ordered by fraction (small systems first), and
    # prange's contiguous halves would give one thread all the large ones.
    for t in numba.prange(threads):
        for b in range(t, images.shape[0], threads):
            _solve_one(images[b], masks[b], out[b])


def impute(images: np.ndarray, masks: np.ndarray, threads: int = 1) -> np.ndarray:
    """Every deleted pixel-channel of ``images`` (B, K, H, W) replaced by the exact solution of its image's
    system, ``masks`` (B, H, W) bool marking the deleted pixels, on ``threads`` threads. The solve is in float64
    whatever the images' dtype (float32 or float64), and its result is rounded once to that dtype: float32
    images give the same bits as solving their float64 copy and rounding, without the copy's time and memory."""
    images = np.ascontiguousarray(images)
    if images.dtype not in (np.float32, np.float64):
        images = images.astype(np.float64)
    masks = np.ascontiguousarray(masks, dtype=np.bool_)
    out = np.empty_like(images)
    threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    _solve_all(images, masks, out, threads)
    return out
