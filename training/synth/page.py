"""Public renderer API: :func:`render_page`, :func:`render_tile` and their results.

Everything is a pure function of ``(seed, index)`` (and the config): pages come
from :func:`training.synth.layout.sample_page`; a tile is a window of page
``index // tiles_per_page`` rendered directly (only the pixels it needs).
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from logdigit.calibration import (Calibration, CurveCalibration, DepthCalibration, DepthTie,
                                  TrackCalibration, fraction_to_value)
from logdigit.constants import BINARY_CLASS_MAP

from .config import RenderConfig
from .degrade import scan_window
from .draw import draw_region
from .layout import PageSpec, RowModel, build_model, frac_at_depth, rng_for, sample_page

TASKS = ("binary", "multiclass")
PAD = 8  #: px drawn around a window beyond its edges (then cut off)
BAND_PIXELS = 4_000_000  #: whole pages are rendered in bands of about this many pixels


@dataclass
class CurveTruth:
    """One curve's truth on a rendered page.

    ``values``: float64 [H] true value per stored pixel row (NaN where absent or
    dropped out); ``frac``: float64 [H] unwrapped position across the track
    (0..1 on scale, outside when off-scale); ``x0, x1``: track border columns.
    """

    track: int
    style: str
    class_id: int
    mnemonic: str
    unit: str
    left: float
    right: float
    scale: str
    wrap: bool
    values: np.ndarray
    frac: np.ndarray
    x0: int
    x1: int
    width: int = 1
    colour: str | None = None


@dataclass
class Truth:
    """``depth``: float64 [H] depth at each stored row along the depth track; ``curves``."""

    depth: np.ndarray
    unit: str
    curves: list[CurveTruth] = field(default_factory=list)


@dataclass
class Page:
    """A rendered page (see the module docstring of :mod:`training.synth`)."""

    image: np.ndarray
    mask: np.ndarray
    instance: np.ndarray
    clean: np.ndarray
    truth: Truth
    calibration: Calibration
    meta: dict[str, Any]

    def truth_csv(self) -> str:
        """CSV text: ``DEPT`` + one column per curve mnemonic, one line per pixel row
        (row 0 first; ``NaN`` where a curve is absent)."""
        cols = ["DEPT"] + [c.mnemonic for c in self.truth.curves]
        data = np.column_stack([self.truth.depth] + [c.values for c in self.truth.curves])
        buf = io.StringIO()
        buf.write(",".join(cols) + "\n")
        np.savetxt(buf, data, delimiter=",", fmt="%.6g")
        return buf.getvalue().replace("nan", "NaN")


# ---------------------------------------------------------------------------
# page model cache (tiles of one page share its layout and curves)
# ---------------------------------------------------------------------------

_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 6


def page_model(seed: int, page_id: int, cfg: RenderConfig, overrides: dict[str, Any]) -> tuple[PageSpec, RowModel]:
    """(spec, per-row model) of a page; small LRU cache keyed by all inputs."""
    key = (int(seed), int(page_id), repr(cfg), repr(sorted(overrides.items())))
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    spec = sample_page(seed, page_id, cfg, overrides)
    val = (spec, build_model(spec))
    _CACHE[key] = val
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return val


# ---------------------------------------------------------------------------
# skew geometry: stored = R(theta) (unrotated - centre) + centre
# ---------------------------------------------------------------------------

def _rot(spec: PageSpec) -> tuple[float, float, float, float]:
    th = math.radians(spec.skew_deg)
    return math.cos(th), math.sin(th), spec.width / 2.0, spec.height / 2.0


def to_stored(spec: PageSpec, v: np.ndarray | float, u: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Unrotated (column v, row u) -> stored (x, y)."""
    c, s, cx, cy = _rot(spec)
    v, u = np.asarray(v, np.float64), np.asarray(u, np.float64)
    return cx + c * (v - cx) - s * (u - cy), cy + s * (v - cx) + c * (u - cy)


def to_unrot(spec: PageSpec, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Stored (x, y) -> unrotated (column v, row u)."""
    c, s, cx, cy = _rot(spec)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return cx + c * (x - cx) + s * (y - cy), cy - s * (x - cx) + c * (y - cy)


def render_window(spec: PageSpec, model: RowModel, y0: int, x0: int, h: int, w: int) -> dict[str, np.ndarray]:
    """Stored-scan window ``[y0:y0+h, x0:x0+w]``: image, clean, mask, instance.

    Returns
    -------
    dict with ``image`` uint8 [h, w] (or [h, w, 3] colour), ``clean`` uint8 [h, w]
    (255 paper, 0 ink), ``mask`` / ``instance`` uint8 [h, w].
    """
    if spec.skew_deg == 0.0:
        # a margin keeps cv2's line clipping at the region edge out of the window
        P = PAD
        cv = draw_region(spec, model, y0 - P, x0 - P, h + 2 * P, w + 2 * P)
        win = (slice(P, P + h), slice(P, P + w))
        dark, clean, mask, inst = cv.dark[win], cv.clean[win], cv.mask[win], cv.inst[win]
    else:
        xs = np.array([x0, x0 + w, x0, x0 + w], np.float64)
        ys = np.array([y0, y0, y0 + h, y0 + h], np.float64)
        vs, us = to_unrot(spec, xs, ys)
        va, ua = int(math.floor(vs.min())) - PAD, int(math.floor(us.min())) - PAD
        vb, ub = int(math.ceil(vs.max())) + PAD + 1, int(math.ceil(us.max())) + PAD + 1
        cv = draw_region(spec, model, ua, va, ub - ua, vb - va)
        c, s, cx, cy = _rot(spec)
        M = np.array([[c, s, cx + c * (x0 - cx) + s * (y0 - cy) - va],
                      [-s, c, cy - s * (x0 - cx) + c * (y0 - cy) - ua]], np.float64)
        flags_l = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        flags_n = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        dark = cv2.warpAffine(cv.dark, M, (w, h), flags=flags_l, borderValue=0)
        if dark.ndim == 2:
            dark = dark[..., None]
        clean = cv2.warpAffine(cv.clean, M, (w, h), flags=flags_n, borderValue=0)
        mask = cv2.warpAffine(cv.mask, M, (w, h), flags=flags_n, borderValue=0)
        inst = cv2.warpAffine(cv.inst, M, (w, h), flags=flags_n, borderValue=0)
    image = scan_window(spec, dark, y0, x0)
    return {"image": image, "clean": 255 - clean, "mask": mask, "instance": inst}


def render_bands(spec: PageSpec, model: RowModel, band_pixels: int = BAND_PIXELS) -> dict[str, np.ndarray]:
    """The whole page, rendered as horizontal bands of about ``band_pixels`` each
    (memory bounded by the band, not the page height).

    Each band is a window with a 16-row margin above and below (cut off), so
    masks, instances and the clean render equal a one-piece render exactly and
    the scan (blur, noise) agrees except for JPEG blocks near band seams.
    """
    H, W = spec.height, spec.width
    if H * W <= band_pixels:
        return render_window(spec, model, 0, 0, H, W)
    band = max(256, (band_pixels // W) // 16 * 16)
    margin = 16
    outs: dict[str, np.ndarray] = {}
    for b0 in range(0, H, band):
        b1 = min(H, b0 + band)
        a0, a1 = max(0, b0 - margin), min(H, b1 + margin)
        r = render_window(spec, model, a0, 0, a1 - a0, W)
        if not outs:
            outs = {k: np.empty((H,) + v.shape[1:], v.dtype) for k, v in r.items()}
        for k, v in r.items():
            outs[k][b0:b1] = v[b0 - a0:b1 - a0]
    return outs


# ---------------------------------------------------------------------------
# truth and calibration
# ---------------------------------------------------------------------------

def _depth_line_u(spec: PageSpec, rows: np.ndarray) -> np.ndarray:
    """Unrotated row u of the depth-track centre line at stored rows ``rows``."""
    c, s, cx, cy = _rot(spec)
    vdc = (spec.depth_x[0] + spec.depth_x[1]) / 2.0
    return cy + (np.asarray(rows, np.float64) - cy - s * (vdc - cx)) / c


def _stored_row_on_depth_line(spec: PageSpec, u: np.ndarray | float) -> np.ndarray:
    vdc = (spec.depth_x[0] + spec.depth_x[1]) / 2.0
    return to_stored(spec, vdc, u)[1]


def curve_calibration(spec: PageSpec, k: int) -> CurveCalibration:
    c = spec.curves[k]
    return CurveCalibration(style=c.style, mnemonic=c.mnemonic, unit=c.unit, left=c.left, right=c.right,
                            scale=c.scale, color=c.colour, wrap=c.wrap)


def make_truth(spec: PageSpec) -> Truth:
    """Per stored row: depth along the depth track and every curve's value there."""
    rows = np.arange(spec.height, dtype=np.float64)
    depth = spec.depth_of_u(_depth_line_u(spec, rows))
    ymid = (spec.body_top + spec.body_bottom) / 2.0
    curves = []
    for k, c in enumerate(spec.curves):
        tr = spec.tracks[c.track]
        frac = frac_at_depth(spec, k, depth)
        values = fraction_to_value(frac, curve_calibration(spec, k))
        x0 = int(round(float(to_stored(spec, tr.x0, ymid)[0])))
        x1 = int(round(float(to_stored(spec, tr.x1, ymid)[0])))
        curves.append(CurveTruth(track=c.track, style=c.style, class_id=c.class_id, mnemonic=c.mnemonic,
                                 unit=c.unit, left=c.left, right=c.right, scale=c.scale, wrap=c.wrap,
                                 values=values, frac=frac, x0=x0, x1=x1, width=c.width, colour=c.colour))
    return Truth(depth=depth, unit=spec.unit, curves=curves)


def make_calibration(spec: PageSpec, truth: Truth) -> Calibration:
    """The calibration a person would write for the page (stored-scan pixels)."""
    step = spec.label_step
    d0, d1 = spec.depth_top, spec.depth_bottom
    ties = []
    for k in range(math.ceil(d0 / step), math.floor(d1 / step) + 1):
        d = k * step
        row = int(round(float(_stored_row_on_depth_line(spec, spec.u_of_depth(d)))))
        if 0 <= row < spec.height:
            ties.append(DepthTie(row=row, depth=float(d)))
    if len(ties) < 2:  # short page: read the depths at the top and bottom of the log body
        r0 = int(math.ceil(float(_stored_row_on_depth_line(spec, spec.body_top))))
        r1 = int(math.floor(float(_stored_row_on_depth_line(spec, spec.body_bottom))))
        r0, r1 = max(r0, 0), min(r1, spec.height - 1)
        ties = [DepthTie(row=r0, depth=round(float(truth.depth[r0]), 3)),
                DepthTie(row=r1, depth=round(float(truth.depth[r1]), 3))]
    top = int(math.ceil(float(_stored_row_on_depth_line(spec, spec.body_top))))
    bottom = int(math.floor(float(_stored_row_on_depth_line(spec, spec.body_bottom))))
    depth = DepthCalibration(unit=spec.unit, ties=ties,
                             rows=(max(top, 0), min(bottom, spec.height)))
    tracks = []
    for t, tr in enumerate(spec.tracks):
        cts = [ct for ct in truth.curves if ct.track == t]
        x0 = cts[0].x0 if cts else tr.x0
        x1 = cts[0].x1 if cts else tr.x1
        tracks.append(TrackCalibration(x=(x0, x1), curves=[curve_calibration(spec, k) for k in tr.curves]))
    return Calibration(depth=depth, tracks=tracks)


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------

def _meta(spec: PageSpec) -> dict[str, Any]:
    return {
        "seed": spec.seed, "index": spec.page_id, "height": spec.height, "width": spec.width,
        "px_per_ft": spec.px_per_ft, "unit": spec.unit, "rows_per_unit": spec.rows_per_unit,
        "stretch": spec.stretch, "skew_deg": spec.skew_deg, "binarized": spec.binarize,
        "colour": spec.colour, "degraded": spec.degrade, "header_rows": spec.header_rows,
        "body_rows": [spec.body_top, spec.body_bottom], "depth_track_x": list(spec.depth_x),
        "label_step": spec.label_step, "label_rotated": spec.label_rotated,
        "n_tracks": len(spec.tracks), "n_curves": len(spec.curves),
        "grids": [t.grid for t in spec.tracks],
        "styles": [c.style for c in spec.curves],
    }


def render_page(seed: int, index: int, cfg: RenderConfig | None = None, **overrides: Any) -> Page:
    """Render one whole page, deterministically from ``(seed, index)``.

    Parameters
    ----------
    seed, index : the page identity
    cfg : random ranges (defaults: :class:`RenderConfig`)
    **overrides : force page properties: height, width, px_per_ft, n_tracks,
        curves_per_track, styles (one list of styles, used for every track), skew_deg, binarize, colour,
        degrade, wraps, dropouts, header, metric, line_width, stretch.

    Returns
    -------
    Page with image uint8 [H, W] (or [H, W, 3]), mask / instance / clean uint8 [H, W],
    truth, calibration and meta.
    """
    cfg = cfg or RenderConfig()
    spec, model = page_model(seed, index, cfg, overrides)
    out = render_bands(spec, model)
    truth = make_truth(spec)
    return Page(image=out["image"], mask=out["mask"], instance=out["instance"], clean=out["clean"],
                truth=truth, calibration=make_calibration(spec, truth), meta=_meta(spec))


def tile_window(spec: PageSpec, model: RowModel, rng: np.random.Generator, size: int,
                body_prob: float) -> tuple[int, int, bool]:
    """Pick a tile origin (y0, x0) in stored coordinates; mostly over the log body, and
    there mostly centred near a curve (so few body tiles are empty track)."""
    H, W = spec.height, spec.width
    in_body = rng.random() < body_prob
    if in_body:
        lo, hi = spec.body_top, max(spec.body_top, spec.body_bottom - size)
        y0 = int(rng.integers(lo, hi + 1))
        xa = min(t.x0 for t in spec.tracks)
        xb = max(t.x1 for t in spec.tracks)
        lo_x, hi_x = max(0, xa - size // 4), max(0, min(W - size, xb - 3 * size // 4))
        lo_x, hi_x = min(lo_x, hi_x), max(lo_x, hi_x)
        x0 = int(rng.integers(lo_x, hi_x + 1))
        if spec.curves and rng.random() < 0.75:
            k = int(rng.integers(0, len(spec.curves)))
            xc = model.x[k, min(y0 + size // 2, H - 1)]
            if np.isfinite(xc):
                x0 = int(np.clip(xc - size // 2 + rng.integers(-size // 3, size // 3 + 1), lo_x, hi_x))
    else:
        y0 = int(rng.integers(0, max(0, H - size) + 1)) if rng.random() < 0.5 else \
            int(rng.integers(0, max(0, min(H - size, spec.body_top + size // 2)) + 1))
        x0 = int(rng.integers(0, max(0, W - size) + 1))
    return y0, x0, in_body


def render_tile(seed: int, index: int, task: str = "multiclass", size: int = 512,
                cfg: RenderConfig | None = None, tiles_per_page: int = 8, **overrides: Any) -> dict[str, Any]:
    """One training instance: a ``size`` x ``size`` window of page ``index // tiles_per_page``.

    Returns
    -------
    dict(image uint8 [S, S] grey, mask uint8 [S, S] (binary task: 0/1), clean uint8 [S, S],
    instance uint8 [S, S], meta dict(page_id, y0, x0, in_body, px_per_ft, ...)).
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r} is unknown: use one of {', '.join(TASKS)}")
    cfg = cfg or RenderConfig()
    page_id = int(index) // int(tiles_per_page)
    spec, model = page_model(seed, page_id, cfg, overrides)
    rng = rng_for(seed, page_id, 3, int(index))
    y0, x0, in_body = tile_window(spec, model, rng, size, cfg.body_tile_prob)
    out = render_window(spec, model, y0, x0, size, size)
    image = out["image"]
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    mask = out["mask"]
    if task == "binary":
        mask = (mask > 0).astype(np.uint8)
    meta = {"page_id": page_id, "index": int(index), "seed": int(seed), "y0": y0, "x0": x0,
            "size": size, "task": task, "in_body": in_body, "px_per_ft": spec.px_per_ft,
            "skew_deg": spec.skew_deg, "binarized": spec.binarize, "colour": spec.colour,
            "degraded": spec.degrade,
            "class_map": {str(k): v for k, v in BINARY_CLASS_MAP.items()} if task == "binary" else None}
    if meta["class_map"] is None:
        del meta["class_map"]
    return {"image": image, "mask": mask, "clean": out["clean"], "instance": out["instance"], "meta": meta}
