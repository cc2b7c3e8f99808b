"""Boxes at every CAM threshold at once: a sweep over the uint8 levels of a score map.

The published box protocol thresholds a uint8 map ``g`` at level ``l`` (``mask = g > l``) and
takes the bounding rectangles of the mask's contours as an OpenCV contour search in tree mode
returns them: one *outer* contour per 8-connected foreground component and one *hole* contour
per 4-connected background component that does not reach the image border. Their rectangles,
written ``(x, y, w, h) -> [x, y, x + w, y + h]`` as the protocol writes them, are

    outer component C:  [min x, min y, max x + 1, max y + 1]
    hole H:             [min x - 1, min y - 1, max x + 2, max y + 2]

(a hole's contour runs through the foreground pixels around it), the right and bottom ends
clipped to ``W - 1`` and ``H - 1``. An empty mask has no contour and gets ``[0, 0, 0, 0]``.

Instead of one contour search per threshold, union-find sweeps build every level's components:
foreground pixels are added from the brightest level down (8-connected), and, only when some
level has holes, background pixels from the darkest level up (4-connected). After each wanted
level the live components are that level's contours and their best IoU with the ground-truth
boxes is recorded. Which levels have holes is known from the first sweep alone: the Euler number
``E = components - holes`` is kept up to date from the 2x2 neighbourhoods each new pixel changes.
A pixel unites only with one neighbour per run of already-added neighbours around it (neighbours
that touch each other are already one component), so a pixel costs about one find.

The equality with the per-threshold contour search is proved by the tests on random maps.
"""

from __future__ import annotations

import numpy as np

from camloc.boxes.iou import iou_coords

try:  # the compiled sweep; without numba the exact per-level contour search is used instead
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency; kept for minimal installs
    HAVE_NUMBA = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        def wrap(f):
            return f

        return wrap


# The 8 neighbours of a pixel as a ring (consecutive entries touch each other), as (dx, dy).
RING_DX = (-1, 0, 1, 1, 1, 0, -1, -1)
RING_DY = (-1, -1, -1, 0, 1, 1, 1, 0)
EDGE = (False, True, False, True, False, True, False, True)  # the 4-neighbours


def _run_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per 8-bit mask of already-added neighbours, the ring positions a new pixel must unite
    with: one per maximal run of consecutive added neighbours (the members of a run touch each
    other, so they are one component already). Row 0: 8-connected foreground (any member);
    row 1: 4-connected background (a 4-neighbour of the run; runs without one do not touch).
    ``-1`` pads the rows.
    """
    table = np.full((2, 256, 4), -1, np.int64)
    for mask in range(256):
        on = [(mask >> i) & 1 for i in range(8)]
        if all(on):
            runs = [list(range(8))]
        else:
            runs = []
            first = next((i for i in range(8) if not on[i]), 0)
            run: list[int] = []
            for k in range(1, 9):
                i = (first + k) % 8
                if on[i]:
                    run.append(i)
                elif run:
                    runs.append(run)
                    run = []
            if run:
                runs.append(run)
        fg = [r[0] for r in runs]
        bg = [next(i for i in r if EDGE[i]) for r in runs if any(EDGE[i] for i in r)]
        table[0, mask, : len(fg)] = fg
        table[1, mask, : len(bg)] = bg
    return table[0], table[1]


RUNS_FG, RUNS_BG = _run_tables()


def _euler_delta_table() -> np.ndarray:
    """``4 * dE`` (8-connected foreground) when a pixel is added, per 8-bit ring mask.

    E = (Q1 - Q3 - 2 QD) / 4 over all 2x2 windows (Q1: one pixel set, Q3: three, QD: two on a
    diagonal); adding a pixel changes the four windows that contain it.
    """

    def quad(bits: tuple[int, ...]) -> int:  # (tl, tr, br, bl)
        s = sum(bits)
        if s == 1:
            return 1
        if s == 3:
            return -1
        if s == 2 and bits[0] == bits[2]:
            return -2
        return 0

    pos = {(dx, dy): i for i, (dx, dy) in enumerate(zip(RING_DX, RING_DY))}
    table = np.zeros(256, np.int64)
    for mask in range(256):

        def at(dx: int, dy: int, new: int, mask: int = mask) -> int:
            return new if (dx, dy) == (0, 0) else (mask >> pos[(dx, dy)]) & 1

        d = 0
        for ox, oy in ((-1, -1), (0, -1), (0, 0), (-1, 0)):  # windows whose top-left is (ox, oy)
            cells = ((ox, oy), (ox + 1, oy), (ox + 1, oy + 1), (ox, oy + 1))
            d += quad(tuple(at(x, y, 1) for x, y in cells)) - quad(tuple(at(x, y, 0) for x, y in cells))
        table[mask] = d
    return table


EULER_DELTA = _euler_delta_table()


def _area_delta_table() -> np.ndarray:
    """``2 * dA`` when a pixel joins a component, per 8-bit ring mask, where
    ``A = #(2x2 windows with 4 pixels set) + 0.5 #(windows with 3 set)`` is the area of the
    polygon through the centres of the component's outer border pixels -- its outer contour's
    ``contourArea`` -- for a component without holes. A window's pixels are 8-adjacent, so each
    window belongs to one component and ``A`` adds up when components merge.
    """
    pos = {(dx, dy): i for i, (dx, dy) in enumerate(zip(RING_DX, RING_DY))}
    table = np.zeros(256, np.int64)
    for mask in range(256):
        d = 0
        for ox, oy in ((-1, -1), (0, -1), (0, 0), (-1, 0)):
            cells = [(ox, oy), (ox + 1, oy), (ox + 1, oy + 1), (ox, oy + 1)]
            before = sum((mask >> pos[c]) & 1 for c in cells if c != (0, 0))
            d += {4: 2, 3: 1}.get(before + 1, 0) - {4: 2, 3: 1}.get(before, 0)
        table[mask] = d
    return table


AREA_DELTA = _area_delta_table()


_iou = njit(cache=True, nogil=True)(iou_coords)  # the one IoU formula, compiled


@njit(cache=True, nogil=True)
def _iou_best(x0, y0, x1, y1, gt):
    """Best IoU of one box against the rows of ``gt`` (:func:`camloc.boxes.iou_coords`)."""
    best = 0.0
    for j in range(gt.shape[0]):
        iou = _iou(x0, y0, x1, y1, gt[j, 0], gt[j, 1], gt[j, 2], gt[j, 3])
        if iou > best:
            best = iou
    return best


@njit(cache=True, nogil=True)
def _find(parent, q):
    """Root of ``q``, halving the path on the way."""
    while parent[q] != q:
        parent[q] = parent[parent[q]]
        q = parent[q]
    return q


@njit(cache=True, nogil=True)
def _sweep(gray, gt, want, foreground, runs, euler_delta, area_delta, last, ox, oy, fw, fh):
    """One union-find sweep over the levels.

    ``foreground``: 8-connected components of ``g > l``, pixels added from 255 down to 1.
    Otherwise: 4-connected components of ``g <= l`` that do not touch the border (holes), pixels
    added from 0 up to 254. Returns per level 0..255 ``(best IoU or -1, number of boxes,
    4 * Euler number, IoU of the component of largest hole-free outer-contour area, whether that
    area is tied, the bounding rectangle of the components with holes at the wanted levels)``
    (the last four only for the foreground sweep); stops after level ``last``. ``gray`` may be a
    crop at ``(ox, oy)`` of a ``fw x fh`` map: boxes are given and clipped in the full map.

    Pixels live in a frame one pixel wider on each side that is never added, so neighbours need
    no bounds checks. Only roots carry a component's box, size, border flag and area; a pixel
    that touches one component just joins it.
    """
    h, w = gray.shape
    s = w + 2  # stride of the framed image
    n = h * w
    counts = np.zeros(257, np.int64)
    for y in range(h):
        for x in range(w):
            counts[gray[y, x] + 1] += 1
    start = np.cumsum(counts)  # pixels of value v are order[start[v]:start[v + 1]], raster order
    fill = start.copy()
    order = np.empty(n, np.int32)  # each pixel as y << 16 | x
    for y in range(h):
        for x in range(w):
            v = gray[y, x]
            order[fill[v]] = (y << 16) | x
            fill[v] += 1

    offs = np.array([-s - 1, -s, -s + 1, 1, s + 1, s, s - 1, -1], np.int64)  # the ring
    big = (h + 2) * s
    added = np.zeros(big, np.uint8)
    parent = np.empty(big, np.int32)
    size = np.empty(big, np.int32)
    x0 = np.empty(big, np.int16)
    y0 = np.empty(big, np.int16)
    x1 = np.empty(big, np.int16)
    y1 = np.empty(big, np.int16)
    border = np.empty(big, np.bool_)
    area2 = np.empty(big, np.int64)
    e4 = np.empty(big, np.int64)  # 4 * Euler number of each component (1 - holes)
    holed = np.array([fw, fh, -1, -1], np.int64)  # rectangle of the components with holes
    alive = np.empty(n, np.int32)
    n_alive = 0
    euler4 = 0
    best = np.full(256, -1.0)
    count = np.zeros(256, np.int64)
    euler = np.zeros(256, np.int64)
    largest = np.full(256, -1.0)
    tied = np.zeros(256, np.bool_)
    decided = np.zeros(256, np.bool_)

    for step in range(255):
        v = 255 - step if foreground else step
        for k in range(start[v], start[v + 1]):
            py = order[k] >> 16
            px = order[k] & 0xFFFF
            p = (py + 1) * s + px + 1
            added[p] = 1
            mask = 0
            for i in range(8):
                mask |= added[p + offs[i]] << i
            if foreground:
                euler4 += euler_delta[mask]
            j = runs[mask, 0]
            if j < 0:  # a new component
                parent[p] = p
                size[p] = 1
                x0[p] = px
                x1[p] = px
                y0[p] = py
                y1[p] = py
                border[p] = px == 0 or py == 0 or px == w - 1 or py == h - 1
                area2[p] = 0
                e4[p] = 4
                alive[n_alive] = p
                n_alive += 1
                continue
            r = _find(parent, p + offs[j])  # join the first touching component
            parent[p] = r
            size[r] += 1
            if px < x0[r]:
                x0[r] = px
            elif px > x1[r]:
                x1[r] = px
            if py < y0[r]:
                y0[r] = py
            elif py > y1[r]:
                y1[r] = py
            if px == 0 or py == 0 or px == w - 1 or py == h - 1:
                border[r] = True
            for t in range(1, 4):  # and merge the other touching ones
                j = runs[mask, t]
                if j < 0:
                    break
                q = _find(parent, p + offs[j])
                if q == r:
                    continue
                if size[r] < size[q]:
                    r, q = q, r
                parent[q] = r
                size[r] += size[q]
                x0[r] = min(x0[r], x0[q])
                y0[r] = min(y0[r], y0[q])
                x1[r] = max(x1[r], x1[q])
                y1[r] = max(y1[r], y1[q])
                border[r] = border[r] or border[q]
                area2[r] += area2[q]
                e4[r] += e4[q]
            if foreground:
                area2[r] += area_delta[mask]
                e4[r] += euler_delta[mask]
        level = v - 1 if foreground else v
        euler[level] = euler4
        if want[level]:
            b = -1.0
            m = 0
            c = 0
            top = -1
            ntop = 0
            topiou = -1.0
            toproot = -1
            for i in range(n_alive):
                r = alive[i]
                if parent[r] != r:
                    continue
                alive[m] = r
                m += 1
                if foreground:
                    iou = _iou_best(x0[r], y0[r], min(x1[r] + 1, w - 1), min(y1[r] + 1, h - 1), gt)
                    if e4[r] < 4:
                        holed[0] = min(holed[0], x0[r])
                        holed[1] = min(holed[1], y0[r])
                        holed[2] = max(holed[2], x1[r])
                        holed[3] = max(holed[3], y1[r])
                    if area2[r] > top:
                        top = area2[r]
                        ntop = 1
                        topiou = iou
                        toproot = r
                    elif area2[r] == top:
                        ntop += 1
                elif border[r]:
                    continue
                else:
                    iou = _iou_best(x0[r] + ox - 1, y0[r] + oy - 1, min(x1[r] + ox + 2, fw - 1), min(y1[r] + oy + 2, fh - 1), gt)
                c += 1
                if iou > b:
                    b = iou
            n_alive = m
            best[level] = b
            count[level] = c
            largest[level] = topiou
            tied[level] = ntop > 1
            if foreground and ntop == 1:
                # A component with holes has an outer-contour area between its own area (holes
                # left out) and that of its box of pixel centres; the top one is surely the
                # largest (a hole's contour is smaller than its component's outer one) when its
                # area beats every other component's upper bound.
                upper = -1
                for i in range(m):
                    r = alive[i]
                    if r == toproot:
                        continue
                    u = area2[r] if e4[r] >= 4 else 2 * (np.int64(x1[r]) - x0[r]) * (np.int64(y1[r]) - y0[r])
                    if u > upper:
                        upper = u
                decided[level] = top > upper
        if level == last:
            break
    return best, count, euler, largest, tied, decided, holed


def level_sweep(gray: np.ndarray, gt: np.ndarray, levels: np.ndarray, holes_too: bool = True) -> dict[str, np.ndarray]:
    """Per uint8 level ``l`` (``mask = gray > l``, ``0 <= l <= 254``), over the mask's contours:

    - ``best``: best IoU of any contour's box with any ground-truth box (the protocol's rectangle
      and inclusive IoU; the box ``[0, 0, 0, 0]`` when the mask is empty);
    - ``outer_best``: best IoU over the outer contours only (-1 when there is none);
    - ``outer`` / ``holes``: how many outer and hole contours the level has;
    - ``largest``: IoU of the component whose hole-free outer-contour area is largest, and
      ``tied``: whether several share that area (meaningful where the level has no holes);
    - ``decided``: whether that component is the largest contour for sure even where components
      have holes (its area without holes beats every other component's largest possible
      outer-contour area).

    With ``holes_too=False`` the hole boxes are not searched (``best`` then covers the outer
    contours only; the counts are still exact).

    Arrays have 256 entries; only the entries of ``levels`` are meaningful.
    """
    if not HAVE_NUMBA:  # pragma: no cover
        raise RuntimeError("the level sweep needs numba")
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    gt = np.ascontiguousarray(gt, dtype=np.int64).reshape(-1, 4)
    levels = np.asarray(levels, dtype=np.int64)
    want = np.zeros(256, np.bool_)
    want[levels] = True
    want[255] = False
    h, w = gray.shape
    ob, oc, e4, largest, tied, decided, holed = _sweep(gray, gt, want, True, RUNS_FG, EULER_DELTA, AREA_DELTA,
                                              int(levels.min()), 0, 0, w, h)
    holes = oc - e4 // 4  # components - Euler number
    hb = np.full(256, -1.0)
    if holes_too and (holes[levels] > 0).any():
        # Every hole lies strictly inside the box of a component with holes, so the background
        # sweep runs on the rectangle around those boxes, whose border stands for the image's.
        want_h = want & (holes > 0)
        last = int(np.flatnonzero(want_h).max())
        x0, y0, x1, y1 = (int(v) for v in holed)
        crop = np.ascontiguousarray(gray[y0 : y1 + 1, x0 : x1 + 1])
        hb = _sweep(crop, gt, want_h, False, RUNS_BG, EULER_DELTA, AREA_DELTA, last, x0, y0, w, h)[0]
    empty_iou = _iou_best(0, 0, 0, 0, gt)
    best = np.where(oc == 0, empty_iou, np.maximum(ob, hb))
    return {"best": best, "outer_best": ob, "outer": oc, "holes": holes, "largest": largest, "tied": tied,
            "decided": decided}
