"""Drawing one rectangular region of a page (unrotated frame) with OpenCV.

:func:`draw_region` draws rows ``ua..ua+h`` and columns ``va..va+w`` of the page
into four aligned canvases: print darkness (what the scan degrades), the clean
ink render, the class mask and the curve instance map. Drawing a region gives
the same pixels as cropping the whole page drawn at once (all coordinates are
page coordinates shifted by the region origin), so tiles and pages agree.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .layout import PageSpec, RowModel
from .degrade import lowfreq
from .textures import hole_field

SHIFT = 4                  # cv2 fixed-point bits: 1/16 px
_ONE = 1 << SHIFT
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_PLAIN = cv2.FONT_HERSHEY_PLAIN
FONT_HAND = cv2.FONT_HERSHEY_SCRIPT_SIMPLEX


class Canvases:
    """The four aligned canvases of a region.

    ``dark``: uint8 [h, w, C] print darkness per channel (0 none, 255 full ink;
    C = 3 on colour prints, else 1); ``clean``: uint8 [h, w] ink coverage (255 ink);
    ``mask``: uint8 [h, w] class ids; ``inst``: uint8 [h, w] curve instance ids.
    """

    def __init__(self, h: int, w: int, channels: int):
        self.dark = np.zeros((h, w, channels), np.uint8)
        self.clean = np.zeros((h, w), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)
        self.inst = np.zeros((h, w), np.uint8)


def _dark_colour(spec: PageSpec, level: float, rgb: tuple[int, int, int] | None = None):
    """Darkness value(s) for cv2 drawing at ink ``level`` (0..1)."""
    if spec.colour:
        r, g, b = rgb if rgb is not None else (20, 20, 20)
        return (float((255 - r) * level), float((255 - g) * level), float((255 - b) * level))
    return (float(255 * level),)


def _fill(cv: Canvases, spec: PageSpec, r0: int, r1: int, c0: int, c1: int, val,
          rows_on: np.ndarray | None = None, cols_on: np.ndarray | None = None) -> None:
    """Ink a rectangle (region coords, clipped); ``rows_on`` / ``cols_on`` (bool over
    the region's rows / columns) print it dashed: only where True."""
    h, w = cv.clean.shape
    r0, r1, c0, c1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    if r0 >= r1 or c0 >= c1:
        return
    sl = cv.dark[r0:r1, c0:c1]
    v = np.asarray(val, dtype=np.float64).astype(np.uint8)
    if rows_on is None and cols_on is None:
        np.maximum(sl, v, out=sl)
        cv.clean[r0:r1, c0:c1] = 255
        return
    on = rows_on[r0:r1, None] if rows_on is not None else cols_on[None, c0:c1]
    np.maximum(sl, v * on[..., None].astype(np.uint8), out=sl)
    np.maximum(cv.clean[r0:r1, c0:c1], on.astype(np.uint8) * 255, out=cv.clean[r0:r1, c0:c1])


def draw_grid(cv: Canvases, spec: PageSpec, ua: int, va: int) -> None:
    """Track borders, vertical (linear / log) and horizontal depth grid lines."""
    h, w = cv.clean.shape
    top, bot = max(spec.body_top, ua) - ua, min(spec.body_bottom, ua + h) - ua
    if bot <= top:
        return
    grid_rgb = spec.ink.get("grid_rgb")
    # vertical lines run along the paper feed: printed and scanned darker than horizontal ones
    g_minor = _dark_colour(spec, max(spec.ink["grid"], 0.5), grid_rgb)
    g_major = _dark_colour(spec, spec.ink["grid_major"], grid_rgb)
    g_border = _dark_colour(spec, max(spec.ink["grid_major"], 0.85), grid_rgb)
    vmin, vmaj = spec.vgrid_width
    dash = spec.ink.get("minor_dash")     # minor grid printed dashed / dotted: (on, period, phase)
    rows_on = cols_on = None
    if dash:
        on, period, ph = dash
        rows_on = ((np.arange(ua, ua + h) + ph) % period) < on
        cols_on = ((np.arange(va, va + w) + ph) % period) < on
    for tr in spec.tracks:
        if tr.x1 < va or tr.x0 > va + w:
            continue
        width = tr.x1 - tr.x0
        cols: list[tuple[float, int, tuple]] = []
        if tr.grid == "linear":
            for k in range(1, 10):
                cols.append((tr.x0 + width * k / 10, vmaj if k == 5 else vmin, g_major if k == 5 else g_minor))
            if tr.minor_div:
                for k in range(10 * tr.minor_div):
                    if k % tr.minor_div:
                        cols.append((tr.x0 + width * k / (10 * tr.minor_div), 1, g_minor))
        else:
            for j in range(tr.decades):
                if j:
                    cols.append((tr.x0 + width * j / tr.decades, vmaj, g_major))
                for m in tr.log_subdiv:
                    cols.append((tr.x0 + width * (j + math.log10(m)) / tr.decades, vmin, g_minor))
        for x, t, val in cols:
            c0 = int(round(x)) - va - t // 2
            _fill(cv, spec, top, bot, c0, c0 + t, val, rows_on=rows_on if val is g_minor else None)
        for x in (tr.x0, tr.x1):
            c0 = x - va - spec.border_width // 2
            _fill(cv, spec, top, bot, c0, c0 + spec.border_width, g_border)
    # horizontal lines: depth multiples of the minor spacing
    gh = spec.ink.get("grid_h", 1.0)
    g_minor = _dark_colour(spec, spec.ink["grid"] * gh, grid_rgb)   # horizontal lines
    g_major = _dark_colour(spec, spec.ink["grid_major"] * (0.5 + 0.5 * gh), grid_rgb)
    minor, mid, heavy = spec.hgrid
    hbreak = spec.scan.get("hbreak", 0.0) if spec.degrade else 0.0
    d0 = float(spec.depth_of_u(ua - 4))
    d1 = float(spec.depth_of_u(ua + h + 4))
    k0, k1 = math.floor(d0 / minor), math.ceil(d1 / minor)
    spans = [(tr.x0, tr.x1) for tr in spec.tracks]
    dx0, dx1 = spec.depth_x
    for k in range(k0, k1 + 1):
        d = k * minor
        if d < spec.depth_top - 1e-6 or d > spec.depth_bottom + 1e-6:
            continue
        if _is_multiple(d, heavy):
            t, val, tick = spec.hgrid_width[2], g_major, 12
        elif mid > minor and _is_multiple(d, mid):
            t, val, tick = spec.hgrid_width[1], g_major, 8
        else:
            t, val, tick = spec.hgrid_width[0], g_minor, 0
        r0 = int(round(float(spec.u_of_depth(d)))) - ua - t // 2
        on = cols_on if tick == 0 else None
        if hbreak > 0 and tick == 0:   # 1-bit scans break thin horizontal lines into dashes
            gaps = hole_field(spec.scan["tex_off"], r0 + ua, va, 1, w, hbreak)[0]
            on = ~gaps if on is None else (on & ~gaps)
        for x0, x1 in spans:
            _fill(cv, spec, r0, r0 + t, x0 - va, x1 - va + 1, val, cols_on=on)
        if spec.depth_ticks and tick and dx1 > dx0:
            _fill(cv, spec, r0, r0 + t, dx0 - va, dx0 - va + tick, val)
            _fill(cv, spec, r0, r0 + t, dx1 - va - tick, dx1 - va, val)


def _is_multiple(d: float, step: float) -> bool:
    q = d / step
    return abs(q - round(q)) < 1e-6


def break_lines(cv: Canvases, spec: PageSpec, ua: int, va: int) -> None:
    """Faint / broken grid: knock holes into what is drawn so far (the grid), and lose
    it altogether in patches (faint grid the scanner dropped)."""
    if not spec.degrade:
        return
    h, w = cv.clean.shape
    amount = spec.scan["broken"]
    if amount > 0:
        holes = hole_field(spec.scan["tex_off"], ua, va, h, w, amount)
        np.right_shift(cv.dark, 2, out=cv.dark, where=holes[..., None])
    drop = spec.scan.get("grid_drop", 0.0)
    if drop > 0:
        gone = lowfreq(spec.seed, spec.page_id + 613, ua, va, h, w, 256) > 1.0 - drop
        np.right_shift(cv.dark, 4, out=cv.dark, where=gone[..., None])


def _text(cv: Canvases, spec: PageSpec, text: str, v: int, u: int, scale: float, thick: int,
          ua: int, va: int, font=None, level: float | None = None, rgb=None) -> None:
    h, w = cv.clean.shape
    px = 30 * scale
    if u + px < ua or u - 2 * px > ua + h or v > va + w or v + len(text) * px < va:
        return
    val = _dark_colour(spec, spec.ink["text"] if level is None else level, rgb)
    font = spec.ink.get("font", FONT) if font is None else font
    org = (int(v - va), int(u - ua))
    cv2.putText(cv.dark, text, org, font, scale, val, thick, cv2.LINE_AA)
    cv2.putText(cv.clean, text, org, font, scale, 255, thick, cv2.LINE_8)


def draw_text(cv: Canvases, spec: PageSpec, ua: int, va: int) -> None:
    """Header text and rules, track-header labels, in-track curve names."""
    h, w = cv.clean.shape
    val = _dark_colour(spec, spec.ink["text"])
    for v0, u0, v1, u1, t in spec.header_lines:
        if max(u0, u1) + t < ua or min(u0, u1) - t > ua + h:
            continue
        cv2.line(cv.dark, (v0 - va, u0 - ua), (v1 - va, u1 - ua), val, t, cv2.LINE_8)
        cv2.line(cv.clean, (v0 - va, u0 - ua), (v1 - va, u1 - ua), 255, t, cv2.LINE_8)
    for text, v, u, sc, t in spec.header_items:
        _text(cv, spec, text, v, u, sc, t, ua, va)
    for text, v, u, sc, t in spec.labels:
        _text(cv, spec, text, v, u, sc, t, ua, va)
    for v0, u0, v1, u1, dashed, t in spec.leaders:
        if max(u0, u1) + 8 < ua or min(u0, u1) - 8 > ua + h:
            continue
        p0, p1 = np.array([v0 - va, u0 - ua], float), np.array([v1 - va, u1 - ua], float)
        n = max(1, int(np.hypot(*(p1 - p0)) // 8)) if dashed else 1
        for i in range(n):
            a = p0 + (p1 - p0) * i / n
            b = p0 + (p1 - p0) * (i + (0.6 if dashed else 1.0)) / n
            ia, ib = tuple(int(round(x)) for x in a), tuple(int(round(x)) for x in b)
            cv2.line(cv.dark, ia, ib, val, t, cv2.LINE_8)
            cv2.line(cv.clean, ia, ib, 255, t, cv2.LINE_8)
        tip, back = (v1 - va, u1 - ua), int(np.sign(v0 - v1)) * 7
        for d in (-4, 4):
            cv2.line(cv.dark, tip, (tip[0] + back, tip[1] + d), val, t, cv2.LINE_8)
            cv2.line(cv.clean, tip, (tip[0] + back, tip[1] + d), 255, t, cv2.LINE_8)


def draw_depth_labels(cv: Canvases, spec: PageSpec, ua: int, va: int) -> None:
    """Depth numbers every ``label_step`` in the depth track, upright or rotated."""
    h, w = cv.clean.shape
    dx0, dx1 = spec.depth_x
    if dx1 <= dx0 or dx1 < va or dx0 > va + w:
        return
    pad = spec.label_px * 4
    d0 = float(spec.depth_of_u(ua - pad))
    d1 = float(spec.depth_of_u(ua + h + pad))
    step = spec.label_step
    scale = spec.label_px / 22.0
    thick = 1 if spec.label_px < 20 else 2
    cx = (dx0 + dx1) // 2
    for k in range(math.floor(d0 / step), math.ceil(d1 / step) + 1):
        d = k * step
        if d < spec.depth_top or d > spec.depth_bottom:
            continue
        u = float(spec.u_of_depth(d))
        text = f"{int(round(d))}"
        font = spec.ink.get("font", FONT)
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        if not spec.label_rotated:
            _text(cv, spec, text, cx - tw // 2, int(round(u + th / 2)), scale, thick, ua, va)
            continue
        patch_d = np.zeros((th + base + 4, tw + 4), np.uint8)
        cv2.putText(patch_d, text, (2, th + 2), font, scale, 255, thick, cv2.LINE_AA)
        patch_c = np.zeros_like(patch_d)
        cv2.putText(patch_c, text, (2, th + 2), font, scale, 255, thick, cv2.LINE_8)
        patch_d, patch_c = np.rot90(patch_d), np.rot90(patch_c)
        ph, pw = patch_d.shape
        r0, c0 = int(round(u)) - ph // 2 - ua, cx - pw // 2 - va
        rs, cs = slice(max(r0, 0), min(r0 + ph, h)), slice(max(c0, 0), min(c0 + pw, w))
        if rs.start >= rs.stop or cs.start >= cs.stop:
            continue
        pr, pc = slice(rs.start - r0, rs.stop - r0), slice(cs.start - c0, cs.stop - c0)
        lvl = spec.ink["text"]
        dv = (patch_d[pr, pc].astype(np.float32) * lvl).astype(np.uint8)
        np.maximum(cv.dark[rs, cs], dv[..., None], out=cv.dark[rs, cs])
        np.maximum(cv.clean[rs, cs], patch_c[pr, pc], out=cv.clean[rs, cs])


# ---------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------

def _fixed(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """int32 [n, 2] cv2 fixed-point (SHIFT bits) points from float columns / rows."""
    return np.round(np.stack([x, u], axis=1) * _ONE).astype(np.int32)


def _runs(on: np.ndarray, extend: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Start / stop (exclusive) indices of the True runs of ``on``; stops extended by
    ``extend`` samples (clipped)."""
    d = np.diff(on.astype(np.int8), prepend=0, append=0)
    starts = np.flatnonzero(d == 1)
    stops = np.minimum(np.flatnonzero(d == -1) + extend, len(on))
    return starts, stops


def dash_paths(xs: np.ndarray, us: np.ndarray, s: np.ndarray, pattern: tuple[float, ...]) -> list[np.ndarray]:
    """Cut one continuous path into the pen-down pieces of a dash pattern.

    Parameters
    ----------
    xs, us : float64 [n] path columns and rows (region px)
    s : float64 [n] arc length along the path (px, increasing, page-global phase)
    pattern : on/off lengths (px), repeating

    Returns
    -------
    list of int32 [m, 2] fixed-point polylines (m >= 2), one per dash.
    """
    if len(xs) < 2:
        return []
    period = float(sum(pattern))
    step = 0.5
    sn = np.arange(math.ceil(s[0] / step) * step, s[-1], step)
    if len(sn) < 2:
        return []
    ph = np.mod(sn, period)
    on = np.zeros(len(sn), dtype=bool)
    acc = 0.0
    for j, length in enumerate(pattern):
        if j % 2 == 0:
            on |= (ph >= acc) & (ph < acc + length)
        acc += length
    if not on.any():
        return []
    pts = _fixed(np.interp(sn, s, xs), np.interp(sn, s, us))
    starts, stops = _runs(on, extend=1)     # each dash reaches the next sample: >= 2 points
    return [pts[a:b] for a, b in zip(starts.tolist(), stops.tolist()) if b - a >= 2]


def curve_paths(spec: PageSpec, model: RowModel, k: int, ua: int, va: int, h: int) -> list[np.ndarray]:
    """Pen-down polylines of curve ``k`` in rows ua..ua+h: int32 [m, 2] fixed-point (x, u)
    in region coordinates."""
    H = spec.height
    m = 3 + spec.curves[k].width        # rows beyond the region whose thick strokes reach into it
    r0, r1 = max(ua - m, 0), min(ua + h + m, H)
    if r1 - r0 < 2:
        return []
    x = model.x[k, r0:r1]
    valid = np.isfinite(x)
    if not valid.any():
        return []
    brk = model.brk[k, r0:r1]
    # a run is a stretch of valid rows with no break inside it
    starts = np.flatnonzero(valid & (brk | np.concatenate([[True], ~valid[:-1]])))
    bounds = np.append(starts, len(x))
    u = np.arange(r0, r1, dtype=np.float64) - ua
    xs = x - va
    c = spec.curves[k]
    paths: list[np.ndarray] = []
    if not c.pattern:
        pts = _fixed(np.where(valid, xs, 0.0), u)
    s = model.arc[k, r0:r1]
    f = model.frac[k, r0:r1]
    tr = spec.tracks[c.track]
    n = len(x)
    for a, nxt in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        b = a + int(np.argmin(np.append(valid[a:nxt], False)))   # valid prefix of the run
        head = tail = None
        if c.wrap:   # a backup trace: run to the track edge, re-enter from the other edge
            if a > 0 and valid[a - 1] and np.floor(f[a - 1]) != np.floor(f[a]):
                head = _edge_point(f[a - 1], f[a], u[a - 1], tr, va, enter=True)
            if b < n and valid[b] and np.floor(f[b - 1]) != np.floor(f[b]):
                tail = _edge_point(f[b - 1], f[b], u[b - 1], tr, va, enter=False)
        if head is None and tail is None:
            if b - a < 2:
                continue
            if not c.pattern:
                paths.append(pts[a:b])
            else:
                paths.extend(dash_paths(xs[a:b], u[a:b], s[a:b], c.pattern))
            continue
        rx, ru, rs = xs[a:b], u[a:b], s[a:b]
        if head is not None:
            d = math.hypot(rx[0] - head[0], ru[0] - head[1])
            rx, ru, rs = np.r_[head[0], rx], np.r_[head[1], ru], np.r_[rs[0] - max(d, 1e-3), rs]
        if tail is not None:
            d = math.hypot(rx[-1] - tail[0], ru[-1] - tail[1])
            rx, ru, rs = np.r_[rx, tail[0]], np.r_[ru, tail[1]], np.r_[rs, rs[-1] + max(d, 1e-3)]
        if len(rx) < 2:
            continue
        paths.extend([_fixed(rx, ru)] if not c.pattern else dash_paths(rx, ru, rs, c.pattern))
    return paths


def _edge_point(f0: float, f1: float, u0: float, tr, va: int, enter: bool) -> tuple[float, float]:
    """Where a wrapped trace crosses the track edge between rows u0 and u0 + 1.

    ``f0, f1``: unwrapped positions at the two rows (different wrap cycles). The
    trace leaving (``enter=False``) ends on the edge it runs into; the backup
    entering (``enter=True``) starts on the opposite edge. Returns region (x, u).
    """
    m = max(math.floor(f0), math.floor(f1))      # the integer position crossed
    t = (m - f0) / (f1 - f0) if f1 != f0 else 0.5
    rising = f1 > f0
    at_right = rising != enter                   # leaving rightwards or entering from the right
    return (float((tr.x1 if at_right else tr.x0) - va), float(u0 + t))


def draw_curves(cv: Canvases, spec: PageSpec, model: RowModel, ua: int, va: int) -> None:
    """All curves in index order (later curves win crossings) and header legend lines.

    Each curve is rasterised once, into an id canvas; darkness, clean ink, class
    mask and instance map are derived from it with lookup tables.
    """
    h, w = cv.clean.shape
    K = len(spec.curves)
    ids = np.zeros((h, w), np.uint8)
    drawn = False
    for j, (ci, v0, v1, uu) in enumerate(spec.legend):
        if uu + 8 < ua or uu - 8 > ua + h:
            continue
        c = spec.curves[ci]
        xs = np.array([v0, v0 + 1, v1], dtype=np.float64) - va
        us = np.full(3, uu, dtype=np.float64) - ua
        paths = [_fixed(xs, us)] if not c.pattern else dash_paths(xs, us, xs + va - v0, c.pattern)
        if paths:
            cv2.polylines(ids, paths, False, K + 1 + j, c.width, cv2.LINE_8, SHIFT)
            drawn = True
    for k, c in enumerate(spec.curves):
        tr = spec.tracks[c.track]
        if tr.x1 + 4 < va or tr.x0 - 4 > va + w:
            continue
        paths = curve_paths(spec, model, k, ua, va, h)
        if paths:
            cv2.polylines(ids, paths, False, k + 1, c.width, cv2.LINE_8, SHIFT)
            drawn = True
    if not drawn:
        return
    luts = _curve_luts(spec)
    cv.mask[...] = cv2.LUT(ids, luts["mask"])
    cv.inst[...] = cv2.LUT(ids, luts["inst"])
    np.maximum(cv.clean, cv2.LUT(ids, luts["cov"]), out=cv.clean)
    if cv.dark.shape[2] == 1:
        np.maximum(cv.dark[..., 0], cv2.LUT(ids, luts["dark"][:, 0]), out=cv.dark[..., 0])
    else:
        dk = cv2.LUT(cv2.merge([ids, ids, ids]), luts["dark"].reshape(256, 1, 3))
        np.maximum(cv.dark, dk, out=cv.dark)


def _curve_luts(spec: PageSpec) -> dict[str, np.ndarray]:
    """id -> class / instance / coverage / darkness tables (id k+1 = curve k; above K:
    header legend line j = id K+1+j, class of its curve, instance 0)."""
    luts = spec.meta.get("_luts")
    if luts is not None:
        return luts
    K = len(spec.curves)
    C = 3 if spec.colour else 1
    m, i, cov = (np.zeros(256, np.uint8) for _ in range(3))
    dk = np.zeros((256, C), np.uint8)
    lvl = spec.ink["curve"]
    owners = [(k + 1, k, True) for k in range(K)] + [(K + 1 + j, leg[0], False) for j, leg in enumerate(spec.legend)]
    for cid, k, is_curve in owners:
        if cid > 255:
            continue
        c = spec.curves[k]
        m[cid] = c.class_id
        i[cid] = k + 1 if is_curve else 0
        cov[cid] = 255
        dk[cid] = np.asarray(_dark_colour(spec, lvl, c.rgb)).astype(np.uint8)
    luts = {"mask": m, "inst": i, "cov": cov, "dark": dk}
    spec.meta["_luts"] = luts
    return luts


# ---------------------------------------------------------------------------
# handwriting and stamps (ink, but background class)
# ---------------------------------------------------------------------------

def draw_marks(cv: Canvases, spec: PageSpec, ua: int, va: int) -> None:
    """Handwritten picks, notes, strokes and stamps."""
    h, w = cv.clean.shape
    hand_rgb = (30, 40, 160) if spec.colour else None
    for kind, p in spec.marks:
        if kind == "pick":
            v0, u0, v1, u1, txt, sc, t = p
            if max(u0, u1) + 60 < ua or min(u0, u1) - 60 > ua + h:
                continue
            val = _dark_colour(spec, 0.9, hand_rgb)
            cv2.line(cv.dark, (v0 - va, u0 - ua), (v1 - va, u1 - ua), val, t, cv2.LINE_AA)
            cv2.line(cv.clean, (v0 - va, u0 - ua), (v1 - va, u1 - ua), 255, t, cv2.LINE_8)
            _text(cv, spec, txt, v1 - 60, u1 - 6, sc, t, ua, va, FONT_HAND, 0.9, hand_rgb)
        elif kind == "note":
            v, u, txt, sc, t = p
            _text(cv, spec, txt, v, u, sc, t, ua, va, FONT_HAND, 0.9, hand_rgb)
        elif kind == "stroke":
            pts, t = p
            if pts[:, 1].max() + 5 < ua or pts[:, 1].min() - 5 > ua + h:
                continue
            q = np.round((pts - [va, ua]) * _ONE).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(cv.dark, [q], False, _dark_colour(spec, 0.85, hand_rgb), t, cv2.LINE_AA, SHIFT)
            cv2.polylines(cv.clean, [q], False, 255, t, cv2.LINE_8, SHIFT)
        elif kind == "hatch":
            v0, u0, v1, u1, step, t = p
            if u1 + 2 < ua or u0 - 2 > ua + h or v1 < va or v0 > va + w:
                continue
            bh, bw = u1 - u0 + 1, v1 - v0 + 1
            patch = np.zeros((bh, bw), np.uint8)
            cv2.rectangle(patch, (0, 0), (bw - 1, bh - 1), 255, t)
            for k in range(-bh, bw, step):
                cv2.line(patch, (k, bh - 1), (k + bh, 0), 255, 1)
            _paste(cv, spec, patch, u0 - ua, v0 - va, 0.9)
        elif kind == "stamp":
            v, u, txt, sc, t = p
            (tw, th), _ = cv2.getTextSize(txt, FONT, sc, t)
            if u + th + 30 < ua or u - 30 > ua + h:
                continue
            rgb = (200, 40, 40) if spec.colour else None
            val = _dark_colour(spec, 0.7, rgb)
            for img, col, lt in ((cv.dark, val, cv2.LINE_AA), (cv.clean, 255, cv2.LINE_8)):
                cv2.rectangle(img, (v - 12 - va, u - 12 - ua), (v + tw + 12 - va, u + th + 14 - ua), col, t, lt)
                cv2.putText(img, txt, (v - va, u + th - ua), FONT, sc, col, t, lt)


def _paste(cv: Canvases, spec: PageSpec, patch: np.ndarray, r0: int, c0: int, level: float, rgb=None,
           clean: bool = True) -> None:
    """Max-composite an ink coverage patch (uint8, 255 = ink) at region (r0, c0)."""
    h, w = cv.clean.shape
    ph, pw = patch.shape
    rs, cs = slice(max(r0, 0), min(r0 + ph, h)), slice(max(c0, 0), min(c0 + pw, w))
    if rs.start >= rs.stop or cs.start >= cs.stop:
        return
    p = patch[rs.start - r0:rs.stop - r0, cs.start - c0:cs.stop - c0]
    col = np.asarray(_dark_colour(spec, level, rgb), np.float32) / 255.0
    np.maximum(cv.dark[rs, cs], (p[..., None].astype(np.float32) * col).astype(np.uint8), out=cv.dark[rs, cs])
    if clean:
        np.maximum(cv.clean[rs, cs], p, out=cv.clean[rs, cs])


def draw_shading(cv: Canvases, spec: PageSpec, model: RowModel, ua: int, va: int) -> None:
    """Tint between a curve and its track's left or right edge (print only: not in ``clean``)."""
    h, w = cv.clean.shape
    for k, to_right, level, rgb in spec.shading:
        tr = spec.tracks[spec.curves[k].track]
        if tr.x1 < va or tr.x0 > va + w:
            continue
        r0, r1 = max(ua - 1, 0), min(ua + h + 1, spec.height)
        if r1 - r0 < 2:
            continue
        x = model.x[k, r0:r1]
        valid = np.isfinite(x)
        if not valid.any():
            continue
        u = np.arange(r0, r1, dtype=np.float64) - ua
        edge = float((tr.x1 if to_right else tr.x0) - va)
        patch = np.zeros((h, w), np.uint8)
        d = np.diff(valid.astype(np.int8), prepend=0, append=0)
        for a, b in zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()):
            if b - a < 2:
                continue
            xs, us = x[a:b] - va, u[a:b]
            poly = np.concatenate([[[edge, us[0]]], np.stack([xs, us], 1), [[edge, us[-1]]]])
            cv2.fillPoly(patch, [np.round(poly * _ONE).astype(np.int32)], 255, cv2.LINE_8, SHIFT)
        if spec.colour:
            _paste(cv, spec, patch, 0, 0, level, rgb, clean=False)
        else:
            patch &= dot_screen(ua, va, h, w, level)
            _paste(cv, spec, patch, 0, 0, SCREEN_INK, None, clean=False)


#: darkness of a screen dot (monochrome shading)
SCREEN_INK = 0.85


def dot_screen(u0: int, v0: int, h: int, w: int, level: float) -> np.ndarray:
    """Halftone dots covering about ``level`` of the area, uint8 [h, w] (255 = dot), in
    page coordinates (rows ``u0..``, columns ``v0..``), so windows of a page agree.

    Monochrome prints shade with a dot screen, not a flat tint: a flat tint that a 1-bit
    scan thresholds to black hides every curve under it, which no print does.
    The cell (4-7 px along the diagonals) follows from the level so that the page's random stream is untouched.
    """
    period = 4 + int(level * 1000) % 4
    u = np.arange(u0, u0 + h, dtype=np.float64)[:, None]
    v = np.arange(v0, v0 + w, dtype=np.float64)[None, :]
    # a 45-degree screen (the usual angle for black): dots on a lattice along the
    # diagonals, so no column or row of dots lines up into a false grid line
    da = np.mod(u + v + 0.5, period) - period / 2
    db = np.mod(u - v + 0.5, period) - period / 2
    r2 = min(level, 0.6) * period * period / math.pi
    return np.where(da * da + db * db <= r2, 255, 0).astype(np.uint8)


def draw_region(spec: PageSpec, model: RowModel, ua: int, va: int, h: int, w: int) -> Canvases:
    """Draw page rows ``ua..ua+h`` x columns ``va..va+w`` (unrotated frame)."""
    cv = Canvases(h, w, 3 if spec.colour else 1)
    draw_grid(cv, spec, ua, va)
    break_lines(cv, spec, ua, va)
    draw_text(cv, spec, ua, va)
    draw_depth_labels(cv, spec, ua, va)
    if spec.shading:
        draw_shading(cv, spec, model, ua, va)
    draw_curves(cv, spec, model, ua, va)
    draw_marks(cv, spec, ua, va)
    return cv
