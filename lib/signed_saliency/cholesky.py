"""Exact solves of ROAD's imputation systems: a nested-dissection multifrontal Cholesky, compiled with numba.

For one image and mask, the deleted pixels are the unknowns of a symmetric positive definite system: each
one's weighted in-image neighbour sum (1/6 edge, 1/12 diagonal) on the diagonal, minus the weights of its
deleted neighbours off it, and the kept neighbours' weighted values on the right, one column per channel
(PROTOCOL §8). The image's rectangle is cut in two by a one-pixel line across its longer side, each half
again, down to 4 × 4 leaves (``_dissection``, once per image size): eliminating each part's deleted pixels
before its separator's keeps the factor small (about 10 N^1.5 operations for N unknowns, against N·width²
in row order). Each part is one dense *front*: its own deleted pixels, then the deleted pixels of the
one-pixel ring around its rectangle, the only unknowns they touch that are not yet eliminated. A front
receives its children's Schur complements, eliminates its own pixels and hands its ring's complement to its
parent; back substitution runs root first. One factorisation serves the three channels. ``impute`` solves
every image of a batch in one compiled call, images spread over numba's threads, each image by one thread in
a fixed order: without fast-math the compiler keeps every sum's order (and fuses no multiply-add), so the bits
depend neither on the thread count nor on the CPU's vector width. Memory: each running thread holds one
image's factor, at most 25 MB at 224 × 224 and 0.4 MB at 32 × 32 (``workspace_bytes``).
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

EDGE, DIAGONAL = 1.0 / 6.0, 1.0 / 12.0
LEAF = 4  # the side below which a part is not cut: 4, 6 and 8 measured within 5 % of each other, 4 fastest
SOLVER = f"nested-dissection multifrontal Cholesky, {LEAF} x {LEAF} leaves"  # in cache keys: other solver, other bits


@functools.lru_cache(maxsize=8)
def _dissection(height: int, width: int) -> tuple:
    """The nested dissection of a height × width image, children before parents (the root last): per part its
    own pixels (a separator line, or a whole leaf) and its ring's (the in-image pixels around its rectangle),
    each as offsets into a flat pixel array, and its number of children."""
    own, ring, children = [], [], []

    def ring_of(y0, y1, x0, x1):
        rows = [y for y in (y0 - 1, y1) if 0 <= y < height]
        columns = [x for x in (x0 - 1, x1) if 0 <= x < width]
        return [y * width + x for y in rows for x in range(max(x0 - 1, 0), min(x1 + 1, width))] + [
            y * width + x for x in columns for y in range(y0, y1)]  # fmt: skip

    def cut(y0, y1, x0, x1) -> int:
        if y1 <= y0 or x1 <= x0:
            return 0
        if y1 - y0 <= LEAF and x1 - x0 <= LEAF:
            count, mine = 0, [y * width + x for y in range(y0, y1) for x in range(x0, x1)]
        elif y1 - y0 >= x1 - x0:
            middle = (y0 + y1) // 2
            count = cut(y0, middle, x0, x1) + cut(middle + 1, y1, x0, x1)
            mine = [middle * width + x for x in range(x0, x1)]
        else:
            middle = (x0 + x1) // 2
            count = cut(y0, y1, x0, middle) + cut(y0, y1, middle + 1, x1)
            mine = [y * width + middle for y in range(y0, y1)]
        own.append(mine)
        ring.append(ring_of(y0, y1, x0, x1))
        children.append(count)
        return 1

    cut(0, height, 0, width)

    def flat(lists):
        return (np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64),
                np.array([p for x in lists for p in x], np.int64))  # fmt: skip

    return (*flat(own), *flat(ring), np.array(children, np.int64))


@functools.lru_cache(maxsize=8)
def _bounds(height: int, width: int, channels: int) -> np.ndarray:
    """What any mask of a height × width image can need (``_dissection``): the largest front, the factor's
    total size (its kept rows, plus the largest front beyond them), the right-hand sides' (likewise) and the
    stack of Schur complements at its highest."""
    own_at, _, ring_at, _, children = _dissection(height, width)
    own, ring = np.diff(own_at), np.diff(ring_at)
    fronts = own + ring
    largest = int(fronts.max())
    stack, sizes, highest = 0, [], 0
    for part, count in enumerate(children):
        for _ in range(count):
            stack -= sizes.pop()
        sizes.append(int(ring[part]) * (int(ring[part]) + channels))
        stack += sizes[-1]
        highest = max(highest, stack)
    factor = int((own * fronts).sum()) + largest**2
    return np.array([largest, factor, (height * width + largest) * channels, highest], np.int64)


def workspace_bytes(height: int, width: int, channels: int = 3) -> int:
    """The bytes one thread of ``impute`` allocates for any mask of a height × width image with ``channels``:
    the arrays of ``_workspaces`` themselves, made for one thread (untouched pages cost no memory)."""
    parts = len(_dissection(height, width)[-1])
    return sum(a.nbytes for a in _workspaces(1, channels, height, width, _bounds(height, width, channels), parts))


@numba.njit(cache=True)
def _subtract_four(front, row, first, second, third, fourth, start, stop, a, b, c, d):
    # Unsigned offsets: numba then drops its negative-index wraparound, and the loop vectorises. The four
    # subtractions keep the order of four single ones, so the bits are those of the unblocked algorithm.
    for i in range(start, stop):
        front[row + i] = (
            front[row + i] - a * front[first + i] - b * front[second + i] - c * front[third + i] - d * front[fourth + i]
        )


@numba.njit(cache=True)
def _subtract_one(front, row, pivot, start, stop, a):
    for i in range(start, stop):
        front[row + i] -= a * front[pivot + i]


@numba.njit(cache=True)
def _eliminate(front, rhs, base, m, own, channels):
    """Eliminate the first ``own`` of the ``m`` unknowns of the front stored row-major (upper triangle) at
    ``front[base:]``, its right-hand sides at ``rhs``: rows become Lᵀ's, the rest the Schur complement."""
    u = np.uint64
    k = 0
    while k < own:
        block = min(4, own - k)
        for p in range(k, k + block):  # the block's pivots, among themselves
            pivot = base + p * m
            d = math.sqrt(front[pivot + p])
            front[pivot + p] = d
            for i in range(p + 1, m):
                front[pivot + i] /= d
            for c in range(channels):
                rhs[p * channels + c] /= d
            for j in range(p + 1, k + block):
                a = front[pivot + j]
                _subtract_one(front, u(base + j * m), u(pivot), u(j), u(m), a)
                for c in range(channels):
                    rhs[j * channels + c] -= a * rhs[p * channels + c]
        first = base + k * m
        for j in range(k + block, m):  # the block's updates of every later row, four in one pass
            row = base + j * m
            if block == 4:
                a, b = front[first + j], front[first + m + j]
                c, d = front[first + 2 * m + j], front[first + 3 * m + j]
                if a != 0.0 or b != 0.0 or c != 0.0 or d != 0.0:
                    _subtract_four(front, u(row), u(first), u(first + m), u(first + 2 * m), u(first + 3 * m), u(j),
                                   u(m), a, b, c, d)  # fmt: skip
            else:
                for p in range(k, k + block):
                    a = front[base + p * m + j]
                    if a != 0.0:
                        _subtract_one(front, u(row), u(base + p * m), u(j), u(m), a)
            for p in range(k, k + block):
                a = front[base + p * m + j]
                for c in range(channels):
                    rhs[j * channels + c] -= a * rhs[p * channels + c]
        k += block


@numba.njit(cache=True)
def _front(part, deleted, own_at, own, ring_at, ring, pixels):
    """The front of ``part`` into ``pixels``: its own deleted pixels, then its ring's; returns both counts."""
    n = 0
    for t in range(own_at[part], own_at[part + 1]):
        if deleted[own[t]]:
            pixels[n] = own[t]
            n += 1
    mine = n
    for t in range(ring_at[part], ring_at[part + 1]):
        if deleted[ring[t]]:
            pixels[n] = ring[t]
            n += 1
    return mine, n


@numba.njit(cache=True)
def _solve_one(image, deleted, out, own_at, own, ring_at, ring, children, work):
    channels, height, width = image.shape
    local, pixels, factor, rhs, stack, solution, values, at, offsets, entry_at, entry_part = work
    out[:] = image  # the kept pixels; the deleted ones are overwritten below
    parts = len(children)
    entries, used, used_rhs = 0, 0, 0
    entry_at[0] = 0
    for part in range(parts):
        mine, n = _front(part, deleted, own_at, own, ring_at, ring, pixels)
        for a in range(n):
            local[pixels[a]] = a
        front = factor[used : used + n * n]
        right = rhs[used_rhs : used_rhs + n * channels]
        for a in range(n):  # only the upper triangle is ever read
            front[a * n + a : (a + 1) * n] = 0.0
        right[:] = 0.0
        for a in range(mine):  # the system's own rows; neighbours elsewhere are a child's, eliminated already
            y, x = pixels[a] // width, pixels[a] % width
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    yy, xx = y + dy, x + dx
                    if (dy == 0 and dx == 0) or yy < 0 or yy >= height or xx < 0 or xx >= width:
                        continue
                    weight = EDGE if dy == 0 or dx == 0 else DIAGONAL
                    front[a * n + a] += weight
                    q = yy * width + xx
                    if not deleted[q]:
                        for c in range(channels):
                            right[a * channels + c] += weight * np.float64(image[c, yy, xx])
                    elif local[q] > a:
                        front[a * n + local[q]] -= weight
        for e in range(entries - children[part], entries):  # the children's complements, top of the stack
            child, at_e = entry_part[e], entry_at[e]
            m = 0
            for t in range(ring_at[child], ring_at[child + 1]):
                if deleted[ring[t]]:
                    at[m] = local[ring[t]]
                    m += 1
            for i in range(m):
                for c in range(channels):
                    right[at[i] * channels + c] += stack[at_e + m * m + i * channels + c]
                for j in range(i, m):
                    low, high = min(at[i], at[j]), max(at[i], at[j])
                    front[low * n + high] += stack[at_e + i * m + j]
        entries -= children[part]
        _eliminate(factor, right, used, n, mine, channels)
        m, at_e = n - mine, entry_at[entries]  # the ring's complement, onto the stack
        for i in range(m):
            for j in range(i, m):
                stack[at_e + i * m + j] = front[(mine + i) * n + mine + j]
            for c in range(channels):
                stack[at_e + m * m + i * channels + c] = right[(mine + i) * channels + c]
        entry_part[entries] = part
        entry_at[entries + 1] = at_e + m * m + m * channels
        entries += 1
        for a in range(n):
            local[pixels[a]] = -1
        offsets[2 * part], offsets[2 * part + 1] = used, used_rhs
        used += mine * n  # the rows of Lᵀ stay; the complement's rows are overwritten by the next front
        used_rhs += mine * channels
    for part in range(parts - 1, -1, -1):  # Lᵀ x = y, root first
        base, base_rhs = offsets[2 * part], offsets[2 * part + 1]
        mine, n = _front(part, deleted, own_at, own, ring_at, ring, pixels)
        for i in range(mine, n):  # the ring's values, solved by an ancestor, next to each other
            for c in range(channels):
                values[i * channels + c] = solution[c, pixels[i]]
        for k in range(mine - 1, -1, -1):
            row = base + k * n
            if channels == 3:  # three running sums at once: each waits on its own previous subtraction only
                red, green, blue = rhs[base_rhs + 3 * k], rhs[base_rhs + 3 * k + 1], rhs[base_rhs + 3 * k + 2]
                for i in range(k + 1, n):
                    weight = factor[row + i]
                    red -= weight * values[3 * i]
                    green -= weight * values[3 * i + 1]
                    blue -= weight * values[3 * i + 2]
                diagonal = factor[row + k]
                values[3 * k], values[3 * k + 1], values[3 * k + 2] = red / diagonal, green / diagonal, blue / diagonal
                continue
            for c in range(channels):
                total = rhs[base_rhs + k * channels + c]
                for i in range(k + 1, n):
                    total -= factor[row + i] * values[i * channels + c]
                values[k * channels + c] = total / factor[row + k]
        for k in range(mine):
            for c in range(channels):
                solution[c, pixels[k]] = values[k * channels + c]
    for p in range(height * width):
        if deleted[p]:
            for c in range(channels):
                out[c, p // width, p % width] = solution[c, p]


@numba.njit(cache=True)
def _workspaces(threads, channels, height, width, bounds, parts):
    # One row per thread, padded: buffers of two threads that shared a cache line measured 1.3x slower.
    pad = 64
    return (np.full((threads, height * width + pad), -1, np.int64), np.empty((threads, bounds[0] + pad), np.int64),
            np.empty((threads, bounds[1] + pad)), np.empty((threads, bounds[2] + pad)),
            np.empty((threads, bounds[3] + pad)), np.empty((threads, channels, height * width + pad)),
            np.empty((threads, bounds[0] * channels + pad)), np.empty((threads, bounds[0] + pad), np.int64),
            np.empty((threads, 2 * parts + pad), np.int64), np.empty((threads, parts + 1 + pad), np.int64),
            np.empty((threads, parts + pad), np.int64))  # fmt: skip


@numba.njit(cache=True)
def _row(spaces, t):
    return (spaces[0][t], spaces[1][t], spaces[2][t], spaces[3][t], spaces[4][t], spaces[5][t], spaces[6][t],
            spaces[7][t], spaces[8][t], spaces[9][t], spaces[10][t])  # fmt: skip


@numba.njit(parallel=True, cache=True)
def _solve_all(images, masks, out, threads, own_at, own, ring_at, ring, children, bounds):
    # Thread t takes images t, t + threads, …: batches come ordered by fraction (small systems first), and
    # prange's contiguous halves would give one thread all the large ones.
    spaces = _workspaces(threads, *images.shape[1:], bounds, len(children))
    for t in numba.prange(threads):
        work = _row(spaces, t)
        for b in range(t, images.shape[0], threads):
            _solve_one(images[b], masks[b].ravel(), out[b], own_at, own, ring_at, ring, children, work)


@numba.njit(cache=True)
def _solve_serially(images, masks, out, own_at, own, ring_at, ring, children, bounds):
    # One thread without a parallel region: OpenMP's idle workers spin between regions, and a job given one core
    # that calls the solver at every deletion step kept a second core busy (measured: two such jobs ran 2x slower).
    work = _row(_workspaces(1, *images.shape[1:], bounds, len(children)), 0)
    for b in range(images.shape[0]):
        _solve_one(images[b], masks[b].ravel(), out[b], own_at, own, ring_at, ring, children, work)


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
    threads = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS, len(images)))
    height, width = images.shape[-2:]
    dissection, bounds = _dissection(height, width), _bounds(height, width, images.shape[1])
    if threads == 1:
        _solve_serially(images, masks, out, *dissection, bounds)
    else:
        numba.set_num_threads(threads)
        _solve_all(images, masks, out, threads, *dissection, bounds)
    return out
