"""Layout analysis of a log scan: skew, track borders, depth track, horizontal grid,
header/log boundary.

Everything here works on the uint8 grey scan (0 = ink, 255 = paper) by row strips,
so memory is bounded by a strip plus a few per-row / per-column profiles, never a
float copy of the scan. A 2,000 x 150,000 scan is analysed in a few seconds.

Skew model
----------
The stored scan is the straight log rotated **clockwise** by ``skew_deg`` degrees
(as seen on screen, rows growing downwards) about the image centre
``(cx, cy) = ((W - 1) / 2, (H - 1) / 2)``; positive ``skew_deg`` means the top of a
vertical track border leans to the right. Deskewing rotates back, counter-clockwise,
about the same centre, into an image of the same size. In (x = column, y = row)::

    stored    = R(+skew) @ (deskewed - c) + c
    deskewed  = R(-skew) @ (stored   - c) + c        R(a) = [[cos a, -sin a],
                                                             [sin a,  cos a]]

Both directions are exact (a rotation, no small-angle approximation), see
:meth:`Layout.to_deskewed` and :meth:`Layout.to_stored`. All columns and rows in a
:class:`Layout` (``tracks``, ``depth_track``, ``header_bottom`` ...) are in
**deskewed** pixels; calibration files hold **stored** pixels and are mapped with
:meth:`Layout.to_deskewed` (a calibration column ``x`` is read at the scan's
centre row, see :meth:`Layout.columns_to_deskewed`).

Algorithm (see docs/layout.md)
------------------------------
1. Ink = grey below a threshold (128 for 1-bit, Otsu on a subsample otherwise).
2. Skew: in up to 24 bands of 1,024 rows, the angle in [-2.5, 2.5] deg that makes the
   sheared column profile (vertical lines) and row profile (horizontal grid lines)
   sharpest; the weighted median over bands.
3. One pass over the deskewed scan in strips of 256 rows: ink per column per strip,
   and ink per row per column bin.
4. Vertical lines = columns inked through (almost) whole strips; strips that carry
   most of the lines are log body; runs of body strips are sections; the first starts
   at ``header_bottom``, the last ends at ``log_bottom``.
5. Gaps between lines with horizontal grid lines belong to tracks; gaps without are
   separators; groups of grid gaps are tracks (a group twice as wide as the others
   is split at its heaviest middle line); the separator with text (depth numbers) is
   the depth track.
6. Grid: the autocorrelation of the row profile inside the tracks gives the minor
   spacing; a heavier line every n-th minor line gives the major spacing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: analysis parameters (pixels unless stated)
SKEW_MAX_DEG = 2.5          # search range for the skew, +- degrees
SKEW_STEP_DEG = 0.05        # coarse search step
SKEW_BAND_ROWS = 1024       # rows per skew band
SKEW_MAX_BANDS = 24
STRIP_ROWS = 256            # rows per analysis strip
FINE_ROWS = 64              # rows per sub-strip for following bent / wandering lines
LINE_FILL = 0.5             # a column is a vertical line in a strip if inked in >= this share
LINE_EXCESS = 0.3           # ... and in this share more than the columns beside it
LINE_PRESENCE = 0.5         # a track line runs through >= this share of the body strips
MIN_SKEW_DEG = 0.005        # below this the scan is treated as straight
MIN_GRID_PX = 3.0           # smallest horizontal grid spacing searched
GRID_GAP_MIN = 0.02         # a gap is inside a track if its grid contrast is >= this ...
GRID_GAP_REL = 0.1          # ... and >= this share of the best gap's
HEAVY_PCT = 75              # a border is heavy against this percentile of the group's other inner
                            # lines (not the top: those include the other tracks' borders)
NARROW_END_SHARE = 0.5      # narrow gaps ending a grid group join it at this share of its grid
CROSSED_GAP_SHARE = 0.5     # a gap with less than this share of both neighbours' grid
                            # contrast is a depth track crossed by the major lines only


@dataclass
class Layout:
    """What :func:`analyse` found. Rows/columns are **deskewed** pixels.

    Attributes
    ----------
    shape : (H, W)
        Scan size in pixels (stored and deskewed images have the same size).
    skew_deg : float
        Clockwise rotation of the stored scan (degrees); see the module docstring.
    tracks : list of (x0, x1)
        Curve tracks, left to right: deskewed columns of the left and right border
        lines (x1 exclusive).
    depth_track : (x0, x1) or None
        The depth track (between the tracks that hold curves), if found.
    grid_minor_px, grid_major_px : float or None
        Horizontal grid spacing in deskewed rows (None where not found).
    header_bottom : int
        First row of the log body (end of the header).
    log_bottom : int
        Row after the last row of the log body.
    sections : list of (r0, r1)
        Runs of log body (main pass, repeat section ...), top to bottom.
    lines : list of dict
        Vertical lines found: ``{"x": centre, "x0", "x1", "width", "presence"}``.
    threshold : int
        Grey level below which a pixel counted as ink.
    skew_confidence : float
        0..1, how many bands agreed on the skew.
    notes : list of str
        What could not be found, in words.
    drift : list of (row, dx)
        Sideways wander of the track lines (paper drift), sampled down the scan: at
        deskewed row ``row`` the lines run ``dx`` px right of the columns in ``tracks``.
        Empty when the lines are straight (within 2 px). See :meth:`drift_at`.
    """

    shape: tuple[int, int]
    skew_deg: float = 0.0
    tracks: list[tuple[int, int]] = field(default_factory=list)
    depth_track: tuple[int, int] | None = None
    grid_minor_px: float | None = None
    grid_major_px: float | None = None
    header_bottom: int = 0
    log_bottom: int = 0
    sections: list[tuple[int, int]] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    threshold: int = 128
    skew_confidence: float = 0.0
    notes: list[str] = field(default_factory=list)
    drift: list[tuple[int, float]] = field(default_factory=list)

    # -- coordinates ----------------------------------------------------------
    @property
    def centre(self) -> tuple[float, float]:
        """Rotation centre ``(cy, cx)`` in pixels."""
        h, w = self.shape
        return (h - 1) / 2.0, (w - 1) / 2.0

    def to_deskewed(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Stored pixel coordinates -> deskewed (float arrays, same shapes)."""
        return _rotate(rows, cols, -self.skew_deg, self.centre)

    def to_stored(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        """Deskewed pixel coordinates -> stored (inverse of :meth:`to_deskewed`)."""
        return _rotate(rows, cols, self.skew_deg, self.centre)

    def columns_to_deskewed(self, cols) -> np.ndarray:
        """Stored columns read at the centre row (how calibration ``x`` is meant) ->
        deskewed columns."""
        cy, _ = self.centre
        c = np.asarray(cols, dtype=np.float64)
        return self.to_deskewed(np.full_like(c, cy), c)[1]

    def columns_to_stored(self, cols) -> np.ndarray:
        """Deskewed columns -> stored columns at the centre row (inverse of
        :meth:`columns_to_deskewed`; exact, since the centre row maps onto a line
        through the centre)."""
        cy, cx = self.centre
        c = np.asarray(cols, dtype=np.float64)
        # the stored point on row cy whose deskewed column is c: x - cx = (c - cx) / cos
        return cx + (c - cx) / math.cos(math.radians(self.skew_deg))

    def drift_at(self, rows) -> np.ndarray:
        """Sideways offset (px, deskewed) of the track lines at deskewed ``rows``:
        a border listed at column x runs at x + drift_at(row). Zeros when no drift."""
        r = np.asarray(rows, dtype=np.float64)
        if not self.drift:
            return np.zeros_like(r)
        rr, dd = zip(*self.drift)
        return np.interp(r, rr, dd)

    # -- output ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (tuples become lists, floats rounded to 0.001 px)."""
        d = asdict(self)
        d["shape"] = [int(v) for v in self.shape]
        d["skew_deg"] = round(float(self.skew_deg), 4)
        d["tracks"] = [[int(a), int(b)] for a, b in self.tracks]
        d["depth_track"] = None if self.depth_track is None else [int(v) for v in self.depth_track]
        d["sections"] = [[int(a), int(b)] for a, b in self.sections]
        d["drift"] = [[int(r), round(float(v), 2)] for r, v in self.drift]
        for k in ("grid_minor_px", "grid_major_px"):
            d[k] = None if d[k] is None else round(float(d[k]), 3)
        d["skew_confidence"] = round(float(self.skew_confidence), 3)
        d["lines"] = [{k: (round(float(v), 2) if isinstance(v, float) else int(v))
                       for k, v in ln.items()} for ln in self.lines]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Layout":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        d["tracks"] = [tuple(t) for t in d.get("tracks", [])]
        d["depth_track"] = None if d.get("depth_track") is None else tuple(d["depth_track"])
        d["sections"] = [tuple(s) for s in d.get("sections", [])]
        d["drift"] = [tuple(v) for v in d.get("drift", [])]
        return cls(**d)


def _rotate(rows, cols, angle_deg: float, centre: tuple[float, float]):
    """Rotate points (rows, cols) by ``angle_deg`` clockwise-on-screen about centre."""
    r = np.asarray(rows, dtype=np.float64)
    c = np.asarray(cols, dtype=np.float64)
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    cy, cx = centre
    dx, dy = c - cx, r - cy
    return cy + sa * dx + ca * dy, cx + ca * dx - sa * dy


# ---------------------------------------------------------------------------
# deskew
# ---------------------------------------------------------------------------

def deskew(grey: np.ndarray, angle_deg: float, out: np.ndarray | None = None,
           block_rows: int = 2048) -> np.ndarray:
    """Rotate the scan back by ``angle_deg`` (the :attr:`Layout.skew_deg` of the scan).

    Parameters
    ----------
    grey : uint8 [H, W]
    angle_deg : float
        Skew of the stored scan (clockwise positive), as found by :func:`analyse`.
    out : uint8 [H, W], optional
        Where to write (must not be ``grey``).
    block_rows : int
        Output rows made per warp (bounds the temporary memory).

    Returns
    -------
    uint8 [H, W]
        Deskewed scan, same size, areas from outside the scan filled white (255).
        Memory: the output plus one block.
    """
    h, w = grey.shape[:2]
    if out is None:
        out = np.empty_like(grey)
    if abs(angle_deg) < MIN_SKEW_DEG:
        out[...] = grey
        return out
    for r0 in range(0, h, block_rows):
        r1 = min(h, r0 + block_rows)
        out[r0:r1] = _deskew_rows(grey, angle_deg, r0, r1)
    return out


def _deskew_rows(grey: np.ndarray, angle_deg: float, r0: int, r1: int,
                 interpolation: int | None = None) -> np.ndarray:
    """Deskewed rows ``[r0, r1)`` (all columns) of ``grey``: uint8 [r1 - r0, W]."""
    import cv2
    h, w = grey.shape[:2]
    if abs(angle_deg) < MIN_SKEW_DEG:
        return grey[r0:r1]
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    # stored row of deskewed (r', c'): cy + sa (c' - cx) + ca (r' - cy)
    ys = [cy + sa * (c - cx) + ca * (r - cy) for r in (r0, r1 - 1) for c in (0, w - 1)]
    s0 = max(0, int(math.floor(min(ys))) - 2)
    s1 = min(h, int(math.ceil(max(ys))) + 3)
    if s1 <= s0:
        return np.full((r1 - r0, w), 255, np.uint8)
    # matrix from output (x', y'' = r' - r0) to source block (x, y - s0)
    m = np.array([[ca, -sa, cx - ca * cx + sa * cy - sa * r0],
                  [sa, ca, cy - sa * cx - ca * cy + ca * r0 - s0]], np.float64)
    flags = (cv2.INTER_LINEAR if interpolation is None else interpolation) | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(np.ascontiguousarray(grey[s0:s1]), m, (w, r1 - r0), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=255)


# ---------------------------------------------------------------------------
# analysis
# ---------------------------------------------------------------------------

def ink_threshold(grey: np.ndarray) -> int:
    """Grey level below which a pixel counts as ink for layout analysis.

    128 for two-level scans. Otherwise the paper level ``P`` (median of the pixels above
    Otsu's threshold, on a row subsample) and its noise ``s`` (1.4826 MAD) give
    ``P - max(10, 2.5 s)``, so faint grey grid lines count as ink; never below Otsu's
    threshold, clamped to [64, 245].
    """
    import cv2
    h = grey.shape[0]
    step = max(1, h // 2048)
    sub = np.ascontiguousarray(grey[::step])
    hist = np.bincount(sub.ravel(), minlength=256)
    if np.count_nonzero(hist) <= 2:
        return 128
    t, _ = cv2.threshold(sub.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    t = int(t)
    paper = hist[t + 1:]
    if paper.sum() == 0:
        return int(min(245, max(64, t)))
    vals = np.arange(t + 1, 256)
    cum = np.cumsum(paper)
    p_level = float(vals[np.searchsorted(cum, cum[-1] / 2)])
    dev = np.abs(vals - p_level)
    order = np.argsort(dev)
    cdev = np.cumsum(paper[order])
    mad = float(dev[order][np.searchsorted(cdev, cdev[-1] / 2)])
    line_t = p_level - max(10.0, 2.5 * 1.4826 * mad)
    return int(min(245, max(64, t, line_t)))


def analyse(grey: np.ndarray, skew: float | None = None) -> Layout:
    """Find the layout of a scan.

    Parameters
    ----------
    grey : uint8 [H, W]
        The scan as stored (0 = ink, 255 = paper).
    skew : float, optional
        Known skew (degrees, clockwise positive); estimated when None.

    Returns
    -------
    Layout
        Never raises on a readable image: what cannot be found is left empty/None
        and explained in ``notes``.
    """
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise ValueError(f"analyse needs a uint8 [H, W] grey image, got {grey.dtype} {grey.shape}")
    h, w = grey.shape
    thr = ink_threshold(grey)
    notes: list[str] = []
    estimate = skew is None
    if estimate:
        skew, conf = estimate_skew(grey, thr)
    else:
        conf = 1.0
    prof = _profiles(grey, skew, thr)
    if estimate:
        for _ in range(3):  # long-baseline refinement: lines must stay put over the height
            delta = _residual_skew(prof)
            if delta is None or abs(delta) < 2e-4:
                break
            skew = float(np.clip(skew + delta, -SKEW_MAX_DEG, SKEW_MAX_DEG))
            prof = _profiles(grey, skew, thr)
    lay = Layout(shape=(h, w), skew_deg=float(skew), threshold=thr, skew_confidence=conf,
                 log_bottom=h, notes=notes)
    fine = _fine_view(prof)
    drift = _track_drift(fine)
    shifts = None
    if drift is not None:  # paper wander: measure everything on straightened rows
        centres = np.arange(len(drift)) * FINE_ROWS + fine.strip_h // 2
        sharp0 = _line_sharpness(prof)
        del prof, fine  # at most two profile sets alive at once (memory on tall scans)
        shifts = np.round(np.interp(np.arange(h), centres, drift)).astype(np.int32)
        prof = _profiles(grey, skew, thr, shifts)
        sharp = _line_sharpness(prof)
        # once more on the straightened scan: lines that moved too fast to follow, or
        # were lost at a paper join, now run straight and link the pieces up
        rest = _track_drift(_fine_view(prof), min_px=1.0)
        if rest is not None:
            shifts2 = np.round(np.interp(np.arange(h), centres, drift + rest)).astype(np.int32)
            prof2 = _profiles(grey, skew, thr, shifts2)
            sharp2 = _line_sharpness(prof2)
            if sharp2 > sharp:
                drift, shifts, prof, sharp = drift + rest, shifts2, prof2, sharp2
            del prof2
        # kept only if the lines come out straighter than they were (a straight scan
        # with a few stray pieces in its header must stay as it is)
        if sharp > 1.02 * sharp0:
            lay.drift = _thin_drift(centres, drift)
            notes.append(f"track lines wander sideways by up to {np.abs(drift).max():.0f} px "
                         f"along the scan: columns are where the lines run on average; see "
                         f"Layout.drift_at")
        else:
            shifts = None
            prof = _profiles(grey, skew, thr)
    lines, sections, presence = _find_lines_and_sections(prof, h)
    if not lines:
        notes.append("no vertical track lines found: tracks not detected")
    lay.lines = lines
    if sections:
        sections = _refine_sections(grey, skew, thr, lines, sections, shifts)
    body = sections or [(0, h)]
    lay.sections = sections
    lay.header_bottom, lay.log_bottom = body[0][0], body[-1][1]
    if not sections and lines:
        notes.append("no log body with continuous track lines found: header boundary unknown")
    rows_mask = np.zeros(h, bool)
    for a, b in body:
        rows_mask[a:b] = True
    tracks, depth = _find_tracks(lines, prof, rows_mask, w)
    lay.tracks, lay.depth_track = tracks, depth
    if lines and not tracks:
        notes.append("vertical lines found but no track with a horizontal grid")
    if depth is None and tracks:
        notes.append("no depth track found")
    minor, major, grid_rows = _find_grid(prof, tracks, rows_mask)
    lay.grid_minor_px, lay.grid_major_px = minor, major
    if minor is not None and tracks:
        lay.tracks, moved = _extend_open_edges(tracks, depth, lines, presence, prof,
                                               rows_mask, minor, w)
        notes.extend(moved)
    if minor is None:
        notes.append("no regular horizontal grid found")
    if sections and grid_rows is not None:
        lay.header_bottom = _refine_header(grid_rows, minor, sections[0])
        lay.sections[0] = (lay.header_bottom, lay.sections[0][1])
        lay.log_bottom = _extend_bottom(grid_rows, minor, lay.sections[-1])
        lay.sections[-1] = (lay.sections[-1][0], lay.log_bottom)
    if abs(skew) > SKEW_MAX_DEG - SKEW_STEP_DEG:
        notes.append(f"skew {skew:.2f} deg is at the end of the search range: check the scan")
    return lay


# -- skew --------------------------------------------------------------------

def estimate_skew(grey: np.ndarray, thr: int | None = None) -> tuple[float, float]:
    """Skew of the scan in degrees (clockwise positive) and a 0..1 confidence.

    Each of up to :data:`SKEW_MAX_BANDS` bands of :data:`SKEW_BAND_ROWS` rows votes for
    the angle whose shear makes vertical lines (column profile) and horizontal lines
    (row profile) sharpest; the result is the weighted median of the votes.
    """
    h, w = grey.shape
    thr = ink_threshold(grey) if thr is None else thr
    hb = min(SKEW_BAND_ROWS, h)
    nb = max(1, min(SKEW_MAX_BANDS, h // hb))
    starts = np.linspace(0, h - hb, nb).astype(int) if nb > 1 else [0]
    angles = np.arange(-SKEW_MAX_DEG, SKEW_MAX_DEG + 1e-9, SKEW_STEP_DEG)
    votes, weights = [], []
    for s in starts:
        ink = grey[s:s + hb] < thr
        if ink.mean() < 1e-4:
            continue
        score = _shear_scores(ink, angles)
        k = int(np.argmax(score))
        base = float(np.median(score))
        if score[k] <= base * 1.02:
            continue
        a = float(angles[k])
        if 0 < k < len(angles) - 1:  # parabolic refinement
            y0, y1, y2 = score[k - 1], score[k], score[k + 1]
            den = y0 - 2 * y1 + y2
            if den < 0:
                a += float(0.5 * (y0 - y2) / den) * SKEW_STEP_DEG
        # refine on a fine grid around the coarse peak
        fine = np.linspace(a - SKEW_STEP_DEG, a + SKEW_STEP_DEG, 21)
        fs = _shear_scores(ink, fine)
        j = int(np.argmax(fs))
        a = float(fine[j])
        if 0 < j < len(fine) - 1:
            y0, y1, y2 = fs[j - 1], fs[j], fs[j + 1]
            den = y0 - 2 * y1 + y2
            if den < 0:
                a += float(0.5 * (y0 - y2) / den) * (fine[1] - fine[0])
        votes.append(a)
        weights.append(score[k] / base - 1.0)
    if not votes:
        return 0.0, 0.0
    v = np.array(votes)
    wt = np.array(weights)
    order = np.argsort(v)
    cw = np.cumsum(wt[order])
    med = float(v[order][np.searchsorted(cw, cw[-1] / 2.0)])
    agree = float(wt[np.abs(v - med) <= 0.1].sum() / wt.sum())
    return med, agree


def _shear_scores(ink: np.ndarray, angles: np.ndarray, chunks: int = 16) -> np.ndarray:
    """Sharpness (sum of squared profile) of the column profile and row profile of
    ``ink`` [h, w] bool after undoing a clockwise rotation by each angle (shear
    approximation within the band)."""
    h, w = ink.shape
    m = max(1, min(chunks, h // 16))
    hh = (h // m) * m
    colp = ink[:hh].reshape(m, hh // m, w).sum(1, dtype=np.float32)  # [m, w]
    rc = (np.arange(m) + 0.5) * (hh / m) - hh / 2.0                  # chunk row offsets
    n = max(1, min(chunks, w // 16))
    ww = (w // n) * n
    rowp = ink[:, :ww].reshape(h, n, ww // n).sum(2, dtype=np.float32).T  # [n, h]
    cc = (np.arange(n) + 0.5) * (ww / n) - ww / 2.0
    out = np.empty(len(angles), np.float64)
    for i, ang in enumerate(angles):
        t = math.tan(math.radians(ang))
        # clockwise rotation: a vertical line drifts left going down (x = x0 - t dy),
        # a horizontal line drifts down going right (y = y0 + t dx)
        out[i] = _shifted_sq(colp, rc * t) + _shifted_sq(rowp, -cc * t)
    return out


def _shifted_sq(prof: np.ndarray, shifts: np.ndarray) -> float:
    """Sum over positions of (sum_k prof[k] shifted by shifts[k])^2, linear interp."""
    m, n = prof.shape
    acc = np.zeros(n + 2 * (int(np.abs(shifts).max()) + 2), np.float32)
    off = (len(acc) - n) // 2
    for k in range(m):
        s = shifts[k]
        i = int(math.floor(s))
        f = s - i
        a0 = off + i
        acc[a0:a0 + n] += (1 - f) * prof[k]
        acc[a0 + 1:a0 + 1 + n] += f * prof[k]
    return float(np.dot(acc, acc))


# -- one pass over the deskewed scan ---------------------------------------------

@dataclass
class _Profiles:
    strip_rows: int
    col: np.ndarray       # [n_strips, W] uint16: ink per column per strip
    strip_h: np.ndarray   # [n_strips] rows in each strip
    rowbins: np.ndarray   # [H, nbins] uint16: ink per row per column bin
    bin_w: int
    rowink: np.ndarray    # [H] int32 ink per row (whole width)
    dark: np.ndarray      # [n_strips, W] uint32: sum of (255 - grey) per column per strip
    fine_col: np.ndarray | None = None   # [n_fine, W] uint16: ink per column per sub-strip
    fine_h: np.ndarray | None = None     # [n_fine] rows in each sub-strip (FINE_ROWS)


def _line_sharpness(prof: _Profiles) -> float:
    """How straight the vertical lines run down the scan: sum of squares of the column
    ink profile of the whole scan (high when every strip inks the same columns)."""
    c = prof.col.sum(0, dtype=np.float64)
    return float(np.dot(c, c))


def _fine_view(prof: _Profiles) -> _Profiles:
    """The column profiles of ``prof`` by sub-strips of :data:`FINE_ROWS` rows, as a
    :class:`_Profiles` (only ``strip_rows``, ``col`` and ``strip_h`` are meaningful):
    lines that bend or wander several px per strip stay straight within a sub-strip."""
    return _Profiles(FINE_ROWS, prof.fine_col, prof.fine_h, prof.rowbins, prof.bin_w,
                     prof.rowink, prof.fine_col)


def _thin_drift(rows: np.ndarray, drift: np.ndarray, tol: float = 0.5) -> list[tuple[int, float]]:
    """(row, dx) samples of a drift curve, thinned so that linear interpolation between
    the kept samples stays within ``tol`` px of every dropped one (first and last kept)."""
    n = len(rows)
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = np.arange(a + 1, b)
        lin = drift[a] + (drift[b] - drift[a]) * (rows[seg] - rows[a]) / max(1, rows[b] - rows[a])
        err = np.abs(drift[seg] - lin)
        k = int(np.argmax(err))
        if err[k] > tol:
            m = int(seg[k])
            keep[m] = True
            stack += [(a, m), (m, b)]
    return [(int(rows[i]), round(float(drift[i]), 2)) for i in np.flatnonzero(keep)]


def _shift_cols(a: np.ndarray, d: int, fill) -> np.ndarray:
    """``a`` [rows, W] moved left by ``d`` columns (right for d < 0), ``fill`` coming in."""
    if d == 0:
        return a
    out = np.full_like(a, fill)
    if d > 0:
        out[:, :-d] = a[:, d:]
    else:
        out[:, -d:] = a[:, :d]
    return out


def _shift_rows(a: np.ndarray, d: np.ndarray, fill) -> np.ndarray:
    """``a`` [rows, W] with row i moved left by ``d[i]`` columns (right for d < 0)."""
    vals = np.unique(d)
    if len(vals) == 1:
        return _shift_cols(a, int(vals[0]), fill)
    out = np.empty_like(a)
    for v in vals:
        idx = np.flatnonzero(d == v)
        out[idx] = _shift_cols(a[idx], int(v), fill)
    return out


def _profiles(grey: np.ndarray, skew: float, thr: int,
              shifts: np.ndarray | None = None) -> _Profiles:
    """One pass over the deskewed scan in strips: ink per column per strip (and per
    :data:`FINE_ROWS` sub-strip), darkness per column per strip, ink per row per column
    bin. ``shifts`` [H] int moves each row left by that many columns first (undoing
    sideways drift and bending of the paper)."""
    h, w = grey.shape
    s = STRIP_ROWS
    ns = (h + s - 1) // s
    bw = max(4, int(math.ceil(w / 256)))
    nb = (w + bw - 1) // bw
    col = np.zeros((ns, w), np.uint16)
    dark = np.zeros((ns, w), np.uint32)
    strip_h = np.zeros(ns, np.int32)
    nf = (h + FINE_ROWS - 1) // FINE_ROWS
    fine_col = np.zeros((nf, w), np.uint16)
    fine_h = np.zeros(nf, np.int32)
    rowbins = np.zeros((h, nb), np.uint16)
    big = 8 * s  # deskew 8 strips per warp
    for b0 in range(0, h, big):
        b1 = min(h, b0 + big)
        blk = _deskew_rows(grey, skew, b0, b1)
        for r0 in range(b0, b1, s):
            r1 = min(b1, r0 + s)
            si = r0 // s
            sub = blk[r0 - b0:r1 - b0]
            if shifts is not None:
                sub = _shift_rows(sub, shifts[r0:r1], 255)
            ink = sub < thr
            col[si] = ink.sum(0, dtype=np.uint16)
            for f0 in range(r0, r1, FINE_ROWS):
                f1 = min(r1, f0 + FINE_ROWS)
                fine_col[f0 // FINE_ROWS] = ink[f0 - r0:f1 - r0].sum(0, dtype=np.uint16)
                fine_h[f0 // FINE_ROWS] = f1 - f0
            dark[si] = np.subtract(255, sub).sum(0, dtype=np.uint32)
            strip_h[si] = r1 - r0
            pad = np.zeros((r1 - r0, nb * bw), bool)
            pad[:, :w] = ink
            rowbins[r0:r1] = pad.reshape(r1 - r0, nb, bw).sum(2, dtype=np.uint16)
    rowink = rowbins.sum(1, dtype=np.int32)
    return _Profiles(s, col, strip_h, rowbins, bw, rowink, dark, fine_col, fine_h)


def _line_columns(prof: _Profiles) -> np.ndarray:
    """[n_strips, W] bool: columns that run as a line through a strip: inked in at least
    :data:`LINE_FILL` of its rows and in :data:`LINE_EXCESS` more of them than the
    paper beside it (the lighter of 3-12 px to the left and to the right), so faint
    grey lines on mottled paper count and dense text or hatching does not."""
    fill = prof.col.astype(np.float32) / np.maximum(prof.strip_h, 1)[:, None]
    ns, w = fill.shape
    cs = np.zeros((ns, w + 1), np.float32)
    np.cumsum(fill, 1, out=cs[:, 1:])
    idx = np.arange(w)

    def side_mean(lo, hi):  # mean of fill over columns [c + lo, c + hi), clipped
        a = np.clip(idx + lo, 0, w)
        b = np.clip(idx + hi, 0, w)
        n = np.maximum(b - a, 1)
        return (cs[:, b] - cs[:, a]) / n

    bg = np.minimum(side_mean(-12, -2), side_mean(3, 13))
    return (fill >= LINE_FILL) & (fill - bg >= LINE_EXCESS)


def _bridge_jumps(pieces: list[dict], max_gap: int = 2, max_jump: int = 12) -> list[dict]:
    """Join line pieces across a sideways jump of the paper (a join, a fold, a sudden
    turn): where several pieces (>= 3 strips) start within 2 strips of each other
    and others ended up to ``max_gap`` strips before, the jump (<= ``max_jump`` px
    from where the ended pieces were heading) that pairs up most of them is taken, if
    it pairs at least 3 and half of the pieces on each side, and the pairs are joined. Ties go to the smaller jump (grid lines repeat, so a jump
    is only known modulo their spacing). Returns the tracks, joined pieces merged."""
    pcs = [p for p in pieces if len(p["s"]) >= 3]
    rest = [p for p in pieces if len(p["s"]) < 3]
    by_end: dict[int, list[int]] = {}
    for qi, q in enumerate(pcs):
        by_end.setdefault(q["s"][-1], []).append(qi)
    order = sorted(range(len(pcs)), key=lambda i: pcs[i]["s"][0])
    root = list(range(len(pcs)))
    used_q: set[int] = set()
    i = 0
    while i < len(order):
        b0 = pcs[order[i]]["s"][0]
        j = i
        while j < len(order) and pcs[order[j]]["s"][0] <= b0 + 2:
            j += 1
        cluster = order[i:j]
        i = j
        links = []   # (delta, p index, q index)
        for pi in cluster:
            p = pcs[pi]
            b = p["s"][0]
            for e in range(b - max_gap, b):
                for qi in by_end.get(e, ()):
                    if qi in used_q or qi == pi:
                        continue
                    q = pcs[qi]
                    k = min(4, len(q["s"]))
                    v = (q["x"][-1] - q["x"][-k]) / max(1, q["s"][-1] - q["s"][-k])
                    delta = p["x"][0] - (q["x"][-1] + v * (b - e))
                    if abs(delta) <= max_jump:
                        links.append((delta, pi, qi))
        if not links:
            continue
        best, best_n = None, 0
        for dstar in range(-max_jump, max_jump + 1):
            n = len({pi for dl, pi, _ in links if abs(dl - dstar) <= 2})
            if n > best_n or (n == best_n and best is not None and abs(dstar) < abs(best)):
                best, best_n = dstar, n
        ended = {qi for e in range(b0 - max_gap, b0 + 2) for qi in by_end.get(e, ())
                 if qi not in used_q}
        # a slip breaks most lines at once: most pieces on both sides must pair up
        if best_n < 3 or best_n < 0.5 * len(cluster) or best_n < 0.5 * len(ended):
            continue
        done_p: set[int] = set()
        for dl, pi, qi in sorted(links, key=lambda t: abs(t[0] - best)):
            if abs(dl - best) > 2 or pi in done_p or qi in used_q:
                continue
            done_p.add(pi)
            used_q.add(qi)
            rq = qi
            while root[rq] != rq:
                rq = root[rq]
            pcs[rq]["s"] = pcs[rq]["s"] + pcs[pi]["s"]
            pcs[rq]["x"] = pcs[rq]["x"] + pcs[pi]["x"]
            root[pi] = rq
    return [p for k, p in enumerate(pcs) if root[k] == k] + rest


def _track_drift(prof: _Profiles, min_px: float = 2.0) -> np.ndarray | None:
    """Sideways drift of the vertical lines down the scan (paper wander), per strip.

    Line pieces found in each strip are linked into tracks (a piece continues a track
    within 3 px of where the track's recent sideways speed puts it, +1 px per skipped
    strip; pieces broken at a jump are joined by :func:`_bridge_jumps`); within each
    part of the scan whose long tracks overlap in time, the drift of a strip is the
    median offset of the tracks there from their own position (:func:`_align_tracks`);
    parts that no line links are joined without a jump. Returns [n_strips] float px (median 0; positive = lines
    to the right), or None when the lines stay within ``min_px``.
    """
    s = prof.strip_rows
    full = prof.strip_h >= s // 2
    cont = _line_columns(prof) & full[:, None]
    ns = len(cont)
    finished, active = [], []
    for si in range(ns):
        dets = [0.5 * (a + b - 1) for a, b in _runs(cont[si]) if b - a <= 12]
        pairs = []
        for ti, t in enumerate(active):
            tol = 3 + (si - t["s"][-1] - 1)
            # predicted position: the track's recent sideways speed carried on
            k = min(4, len(t["s"]))
            v = (t["x"][-1] - t["x"][-k]) / (t["s"][-1] - t["s"][-k]) if k > 1 else 0.0
            xp = t["x"][-1] + v * (si - t["s"][-1])
            for di, x in enumerate(dets):
                dd = abs(x - xp)
                if dd <= tol:
                    pairs.append((dd, ti, di))
        used_t, used_d = set(), set()
        for dd, ti, di in sorted(pairs):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            active[ti]["s"].append(si)
            active[ti]["x"].append(dets[di])
        for di, x in enumerate(dets):
            if di not in used_d:
                active.append({"s": [si], "x": [x]})
        keep = []
        for t in active:
            (keep if si - t["s"][-1] <= 4 else finished).append(t)
        active = keep
    # long enough not to be text or a curve: 15 % of the scan, at most 4,096 rows
    min_len = max(6, int(min(0.15 * max(1, full.sum()), 4096 // s)))
    tracks = [t for t in _bridge_jumps(finished + active) if len(t["s"]) >= min_len]
    if len(tracks) < 2:
        return None
    # parts of the scan linked by lines: a new part starts where most lines on one
    # side of a strip boundary end or begin there (a new log, a header between
    # sections). Within a part the drift aligns its tracks; between parts nothing links
    # them, so no jump is assumed.
    present = np.zeros(ns + 1, int)
    for t in tracks:
        present[t["s"][0]] += 1
        present[t["s"][-1] + 1] -= 1
    present = np.cumsum(present)[:ns]
    crossing = np.zeros(ns + 1, int)   # tracks running on across boundary si-1 | si
    for t in tracks:
        crossing[t["s"][0] + 1] += 1
        crossing[t["s"][-1] + 1] -= 1
    crossing = np.cumsum(crossing)[:ns]
    cuts = [0] + [si for si in range(1, ns) if present[si] and present[si - 1]
                  and crossing[si] < 0.5 * max(present[si], present[si - 1])] + [ns]
    parts: list[list[dict]] = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        part = []
        for t in tracks:
            keep = [(si, x) for si, x in zip(t["s"], t["x"]) if a <= si < b]
            if len(keep) >= 2:
                part.append({"s": [k[0] for k in keep], "x": [k[1] for k in keep]})
        if part:
            parts.append(part)
    d = np.zeros(ns)
    level = 0.0
    ref = None
    for part in parts:
        a = min(t["s"][0] for t in part)
        b = max(t["s"][-1] for t in part) + 1
        dp = _align_tracks(part, a, b, 3 if s >= STRIP_ROWS else 5)
        if dp is None:
            d[a:] = level
            continue
        d[a:b] = dp - dp[0] + level
        # the next part of the same log (repeat section, a page after a header) has
        # its lines where the parts before had theirs: line them up (within 12 px)
        pc = _straight_columns(prof.col, d, a, b)
        if ref is not None:
            d[a:b] += _best_shift(ref, pc, 12)
            pc = _straight_columns(prof.col, d, a, b)
        ref = pc if ref is None else ref + pc
        level = float(d[b - 1])
        d[b:] = level
    d -= np.median(d[full]) if full.any() else 0.0
    if np.abs(d[full]).max() < min_px:
        return None
    return d


def _straight_columns(col: np.ndarray, d: np.ndarray, a: int, b: int) -> np.ndarray:
    """[W] float64: ink per column of strips [a, b) of ``col`` [n, W], each strip moved
    left by its drift ``d`` (rounded), high-passed (a 15 px running mean taken off) so
    only lines count."""
    w = col.shape[1]
    acc = np.zeros(w)
    for si in range(a, b):
        k = int(round(d[si]))
        row = col[si].astype(np.float64)
        if k > 0:
            acc[:w - k] += row[k:]
        elif k < 0:
            acc[-k:] += row[:w + k]
        else:
            acc += row
    return acc - np.convolve(acc, np.ones(15) / 15, mode="same")


def _best_shift(ref: np.ndarray, prof: np.ndarray, max_shift: int) -> int:
    """Shift k (|k| <= ``max_shift``) that lines ``prof`` moved left by k up with ``ref``
    best; 0 unless it beats no shift by 10 % (ties: the smaller shift)."""
    w = len(ref)
    m = max_shift
    r = np.clip(ref, 0, None)[m:w - m]
    best_k, best = 0, float(np.dot(r, np.clip(prof, 0, None)[m:w - m]))
    base = best
    for k in sorted(range(-m, m + 1), key=abs):
        sc = float(np.dot(r, np.clip(prof, 0, None)[m + k:w - m + k]))
        if sc > best:
            best_k, best = k, sc
    return best_k if best > 1.1 * max(base, 1e-9) else 0


def _align_tracks(tracks: list[dict], a: int, b: int, k: int) -> np.ndarray | None:
    """Drift over strips [a, b) from line tracks that overlap in time: the offset of
    the tracks in each strip from their own position, tracks and strips fitted
    together (least squares, then two rounds of medians against stray tracks), a
    running median over ``k`` strips. None when too few strips have enough tracks."""
    n = b - a
    span = np.zeros(n + 1, int)      # tracks whose span covers each strip
    for t in tracks:
        span[t["s"][0] - a] += 1
        span[t["s"][-1] + 1 - a] -= 1
    span = np.cumsum(span)[:n]
    # robust least squares x = c_track + d_strip by alternating (Huber-)weighted means
    # (many rounds: parts linked by few tracks converge slowly), then two rounds of
    # medians
    tt = np.concatenate([np.full(len(t["s"]), i) for i, t in enumerate(tracks)])
    ss_all = np.concatenate([np.asarray(t["s"]) - a for t in tracks])
    xx_all = np.concatenate([np.asarray(t["x"], np.float64) for t in tracks])
    n_t = np.bincount(tt, minlength=len(tracks))
    n_s = np.bincount(ss_all, minlength=n)
    have = n_s >= np.maximum(2, 0.3 * span)
    if have.sum() < 2:
        return None
    idx = np.flatnonzero(have)
    d = np.zeros(n)
    wt = np.ones(len(xx_all))
    for it in range(80):
        c = np.bincount(tt, wt * (xx_all - d[ss_all]), len(tracks)) / \
            np.maximum(np.bincount(tt, wt, len(tracks)), 1e-9)
        dv = np.bincount(ss_all, wt * (xx_all - c[tt]), n) / \
            np.maximum(np.bincount(ss_all, wt, n), 1e-9)
        d = np.interp(np.arange(n), idx, dv[idx])
        if it % 10 == 9:  # Huber weights: points far off their track's line count less
            res = np.abs(xx_all - c[tt] - d[ss_all])
            wt = 1.0 / np.maximum(1.0, res / 1.5)
    for _ in range(2):
        offs = [[] for _ in range(n)]
        for t in tracks:
            ss, xx = np.array(t["s"]) - a, np.array(t["x"])
            c = float(np.median(xx - d[ss]))
            for si, x in zip(ss, xx):
                offs[si].append(x - c)
        have = np.array([len(o) >= max(2, 0.3 * m) for o, m in zip(offs, span)])
        if have.sum() < 2:
            return None
        val = np.array([float(np.median(o)) if h else 0.0 for o, h in zip(offs, have)])
        idx = np.flatnonzero(have)
        d = np.interp(np.arange(n), idx, val[idx])
        pad = np.concatenate([[d[0]] * (k // 2), d, [d[-1]] * (k // 2)])
        d = np.median(np.stack([pad[i:i + n] for i in range(k)]), 0)
    return d


def _residual_skew(prof: _Profiles, group_rows: int | None = None) -> float | None:
    """Skew (deg) left in a deskewed pass, from the drift of vertical lines down the scan.

    Column darkness profiles are summed over groups of strips; lines are seeded at the
    spikes of the group with the most line structure and followed group by group up
    and down (centroid in a +-3 px window, so slow drift is tracked over any height).
    The drift slope of each line is fitted; the span-weighted median slope gives the
    skew. None when there is not enough line structure.
    """
    s = prof.strip_rows
    ns = len(prof.strip_h)
    if group_rows is None:  # >= 8 groups on short scans, 2,048 rows on long ones
        group_rows = int(min(2048, max(s, s * (ns // 8))))
    gs = max(1, group_rows // s)
    ng = ns // gs
    if ng < 3:
        return None
    full = prof.strip_h >= s // 2
    cont = _line_columns(prof) & full[:, None]
    dark = prof.dark.astype(np.float64)
    dark[~full] = 0
    g = dark[:ng * gs].reshape(ng, gs, -1).sum(1)               # [ng, W]
    gc = cont[:ng * gs].reshape(ng, gs, -1).mean(1)             # line share per group
    ys = (np.arange(ng) + 0.5) * gs * s
    ref = int(np.argmax((gc >= 0.75).sum(1)))
    w = g.shape[1]
    seeds = [int(round((a + b - 1) / 2)) for a, b in _runs(gc[ref] >= 0.75) if b - a <= 12]
    half = 3
    slopes, weights = [], []
    for x0 in seeds:
        pts = {}
        for direction in (1, -1):
            x = float(x0)
            j = ref
            base_mass = None
            while 0 <= j < ng:
                c = int(round(x))
                lo, hi = c - half, c + half + 1
                if lo < 0 or hi > w:
                    break
                win = g[j, lo:hi]
                win = win - win.min()
                mass = win.sum()
                if base_mass is None:
                    base_mass = mass
                if mass <= 0 or mass < 0.3 * base_mass:
                    break
                x = float((np.arange(lo, hi) * win).sum() / mass)
                pts[j] = x
                j += direction
        if len(pts) >= 3:
            jj = np.array(sorted(pts))
            yy, xx = ys[jj], np.array([pts[k] for k in jj])
            slopes.append(np.polyfit(yy, xx, 1)[0])
            weights.append(float((yy[-1] - yy[0]) ** 2 * len(jj)))
    if not slopes:
        return None
    sl, wt = np.array(slopes), np.array(weights)
    order = np.argsort(sl)
    cw = np.cumsum(wt[order])
    slope = float(sl[order][np.searchsorted(cw, cw[-1] / 2.0)])
    # remaining clockwise skew d makes lines drift left going down: slope = -tan d
    return float(-math.degrees(math.atan(slope)))


# -- vertical lines and sections -------------------------------------------------

def _bin_rows_mean(rowbins: np.ndarray, b0: int, b1: int, step: int = 8192) -> np.ndarray:
    """[H] float32 mean over column bins [b0, b1) of ``rowbins``, in row blocks (no
    float copy of the whole profile)."""
    h = rowbins.shape[0]
    out = np.empty(h, np.float32)
    n = max(1, b1 - b0)
    for r0 in range(0, h, step):
        out[r0:r0 + step] = rowbins[r0:r0 + step, b0:b1].sum(1, dtype=np.int64) / n
    return out


def _bins_sum_rows(rowbins: np.ndarray, bins, step: int = 8192) -> np.ndarray:
    """[H] int64 sum over the listed column bins, in row blocks."""
    h = rowbins.shape[0]
    out = np.empty(h, np.int64)
    idx = np.asarray(bins, int)
    for r0 in range(0, h, step):
        out[r0:r0 + step] = rowbins[r0:r0 + step][:, idx].sum(1, dtype=np.int64)
    return out


def _masked_rows_mean(rowbins: np.ndarray, rows_mask: np.ndarray) -> np.ndarray:
    """[nbins] float64 mean over the rows in ``rows_mask`` (summed run by run)."""
    acc = np.zeros(rowbins.shape[1], np.int64)
    n = 0
    for a, b in _runs(rows_mask):
        acc += rowbins[a:b].sum(0, dtype=np.int64)
        n += b - a
    return acc / max(1, n)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in a 1-D bool array as (start, end) half-open."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(d[::2], d[1::2])]


def _line_presence(cont: np.ndarray) -> np.ndarray:
    """cont [n, W] bool -> the same with +-1 column tolerance."""
    d = cont.copy()
    d[:, 1:] |= cont[:, :-1]
    d[:, :-1] |= cont[:, 1:]
    return d


def _find_lines_and_sections(prof: _Profiles, h: int):
    col = prof.col.astype(np.float32)
    sh = prof.strip_h.astype(np.float32)[:, None]
    full = sh[:, 0] >= prof.strip_rows // 2          # ignore a short last strip
    cont = _line_columns(prof) & full[:, None]        # [ns, W]
    pres = _line_presence(cont)
    nfull = max(1, int(full.sum()))
    freq = pres.sum(0) / nfull
    cand = [(a, b) for a, b in _runs(freq >= 0.2) if b - a <= 40]
    if not cand:
        return [], [], freq
    # body strips: carry most candidate lines
    cols = np.array([(a + b - 1) // 2 for a, b in cand])
    per_strip = pres[:, cols].mean(1)
    body = (per_strip >= 0.5) & full
    # close 1-strip holes (a label or stamp across the lines)
    for i in range(1, len(body) - 1):
        if not body[i] and body[i - 1] and body[i + 1] and full[i]:
            body[i] = True
    # and gaps between body runs where the lines fade but do not stop (broken, dotted
    # lines on old paper): every strip there still carries a fifth of them. A header
    # or a gap between logs carries (almost) none.
    runs = _runs(body)
    for (a0, b0), (a1, b1) in zip(runs[:-1], runs[1:]):
        gap = slice(b0, a1)
        if (per_strip[gap] >= 0.2).all() and full[gap].all():
            body[gap] = True
    min_len = max(2, int(math.ceil(0.03 * h / prof.strip_rows)))
    sruns = [(a, b) for a, b in _runs(body) if b - a >= min_len]
    if not sruns:
        sruns = [(a, b) for a, b in _runs(body)]
        if not sruns:
            return [], [], freq
        sruns = [max(sruns, key=lambda r: r[1] - r[0])]
    sel = np.zeros(len(body), bool)
    for a, b in sruns:
        sel[a:b] = True
    freqb = pres[sel].mean(0)
    freqc = cont[sel].mean(0)   # without the +-1 column tolerance
    lines = []
    for a, b in _runs(freqb >= LINE_PRESENCE):
        if b - a > 40:   # a black band (scan edge, blotch), not a line
            continue
        core = np.flatnonzero(freqc[a:b] >= 0.5 * freqc[a:b].max())
        if len(core):
            a, b = a + int(core[0]), a + int(core[-1]) + 1
        seg = cont[sel, a:b]
        # thickness: median over body strips of continuous columns in this run
        width = float(np.median(seg.sum(1))) if seg.size else float(b - a)
        wts = col[sel, a:b].sum(0)
        x = float((np.arange(a, b) * wts).sum() / max(1.0, wts.sum()))
        lines.append({"x": x, "x0": a, "x1": b, "width": max(1.0, width),
                      "presence": float(freqb[a:b].max())})
    _line_weights(lines, prof, sel)
    s = prof.strip_rows
    sections = [(int(a * s), int(min(h, b * s))) for a, b in sruns]
    return lines, sections, freqb


def _refine_sections(grey, skew, thr, lines, sections, shifts=None):
    """Move strip-aligned section edges to the first / last row where most vertical
    lines are inked (``shifts``: per-row drift, as in :func:`_profiles`)."""
    h = grey.shape[0]
    s = STRIP_ROWS
    cols = np.array([int(round(ln["x"])) for ln in lines])
    out = []
    for a, b in sections:
        def coverage(r0, r1):
            r0, r1 = max(0, r0), min(h, r1)
            if r1 <= r0:
                return r0, np.zeros(0)
            blk = _deskew_rows(grey, skew, r0, r1) < thr
            hit = np.zeros((r1 - r0, len(cols)), bool)
            if shifts is None:
                off = np.zeros((r1 - r0, 1), int)
            else:
                off = shifts[r0:r1][:, None]
            rr = np.arange(r1 - r0)[:, None]
            for d in (-1, 0, 1):
                hit |= blk[rr, np.clip(cols[None, :] + d + off, 0, blk.shape[1] - 1)]
            cov = hit.mean(1)
            k = 9  # running median-ish: mean over 9 rows
            cov = np.convolve(cov, np.ones(k) / k, mode="same")
            return r0, cov
        r0, cov = coverage(a - s, a + s)
        on = np.flatnonzero(cov >= 0.5)
        na = int(r0 + on[0]) if len(on) else a
        r0, cov = coverage(b - s, b + s)
        on = np.flatnonzero(cov >= 0.5)
        nb = int(r0 + on[-1] + 1) if len(on) else b
        if nb > na:
            out.append((na, nb))
    return out or sections


# -- tracks ------------------------------------------------------------------------

def _gap_bins(x0: float, x1: float, bin_w: int) -> tuple[int, int]:
    """Column bins ``[b0, b1)`` lying fully inside columns ``[x0, x1)``."""
    return int(math.ceil(x0 / bin_w)), int(math.floor(x1 / bin_w))


def _gap_measurable(x0: float, x1: float, bin_w: int) -> bool:
    """Whether a whole column bin fits inside columns ``[x0, x1)``."""
    b0, b1 = _gap_bins(x0, x1, bin_w)
    return b1 - b0 >= 1


def _gap_stats(x0: int, x1: int, prof: _Profiles, rows_mask: np.ndarray):
    """(grid share, ink share) of columns [x0, x1) over body rows: the share of rows
    inked across >= 80 % of the bins fully inside the gap (thin horizontal lines; text
    rarely fills a row that densely), and the mean ink fraction."""
    bw = prof.bin_w
    b0, b1 = _gap_bins(x0, x1, bw)
    if b1 - b0 < 1:
        return 0.0, 0.0
    rowfrac = _bin_rows_mean(prof.rowbins, b0, b1)[rows_mask] / bw
    return float((rowfrac >= 0.8).mean()), float(rowfrac.mean())


def _grid_contrast(gaps: list[dict], prof: _Profiles, rows_mask: np.ndarray) -> None:
    """Replace each gap's ``grid`` by how much more it is inked on the horizontal grid
    rows than half-way between them (grid rows and spacing from all gaps together).
    A curve running down a gap or text in it inks grid and mid rows alike; only grid
    lines make the difference. Leaves ``grid`` as is when no grid period is found."""
    body = np.flatnonzero(rows_mask)
    sig = _span_signal(prof, [(g["x0"], g["x1"]) for g in gaps])
    if sig is None or len(body) < 64:
        return
    p = _period(sig, body)
    if p is None or p < MIN_GRID_PX:
        return
    rows, _ = _grid_line_strengths(sig, int(body[0]), int(body[-1]) + 1, p)
    if len(rows) < 8:
        return
    h = len(sig)
    on = np.clip(rows, 0, h - 1)
    mid = np.clip(np.round(rows + p / 2).astype(int), 0, h - 1)
    bw = prof.bin_w
    for g in gaps:
        b0, b1 = _gap_bins(g["x0"], g["x1"], bw)
        if b1 - b0 < 1:
            g["grid"] = 0.0
            continue
        rf = _bin_rows_mean(prof.rowbins, b0, b1) / bw
        # a line may sit one row off the lattice row
        at = np.maximum(rf[on], np.maximum(rf[np.clip(on - 1, 0, h - 1)], rf[np.clip(on + 1, 0, h - 1)]))
        g["grid"] = float(max(0.0, at.mean() - rf[mid].mean()))


def _line_weights(lines: list[dict], prof: _Profiles, sel: np.ndarray) -> None:
    """Add ``weight`` to each line: ink (px of full darkness) per row across the line,
    above the local paper level, median over the body strips ``sel``."""
    dark = prof.dark[sel].astype(np.float64) / (255.0 * np.maximum(prof.strip_h[sel], 1))[:, None]
    w = dark.shape[1]
    for ln in lines:
        a, b = max(0, ln["x0"] - 1), min(w, ln["x1"] + 1)
        lo, hi = max(0, a - 8), min(w, b + 8)
        side = np.concatenate([dark[:, lo:a], dark[:, b:hi]], 1)
        bg = np.median(side, 1) if side.shape[1] else np.zeros(len(dark))
        ln["weight"] = float(np.median((dark[:, a:b] - bg[:, None]).sum(1))) if len(dark) else 0.0


def _gap_width(g: dict) -> float:
    return g["x1"] - g["x0"]


def _widths_within(a: dict, b: dict, share: float) -> bool:
    """Whether gaps ``a`` and ``b`` differ in width by at most ``share`` of the wider."""
    wa, wb = _gap_width(a), _gap_width(b)
    return abs(wa - wb) <= share * max(wa, wb)


def _extend_weak_grid(gaps: list[dict]) -> None:
    """Mark as grid the gaps with a weak horizontal grid (``weak``: faded paper edges,
    tracks whose minor lines are only ticks) that continue the division spacing of a
    grid gap beside them (width within 20 %), outwards from the strong ones. A depth
    track with ticks on the grid rows is far wider than a division and stays out."""
    idx = [i for i, g in enumerate(gaps) if not g["narrow"]]
    changed = True
    while changed:
        changed = False
        for k, i in enumerate(idx):
            g = gaps[i]
            if g["is_grid"] or not g["weak"]:
                continue
            for kk in (k - 1, k + 1):
                if 0 <= kk < len(idx) and gaps[idx[kk]]["is_grid"]:
                    if _widths_within(g, gaps[idx[kk]], 0.2):
                        g["is_grid"] = changed = True
                        break


#: gaps whose widths differ by more than this share of the wider are of another width
#: (a depth track beside divisions)
ODD_WIDTH_SHARE = 0.25
#: a depth track is this share of the scan width (at least, at most)
DEPTH_WIDTH_SHARE = (0.02, 0.3)


def _depth_wide(g: dict, w: int) -> bool:
    """Whether gap ``g`` is as wide as a depth track (:data:`DEPTH_WIDTH_SHARE`)."""
    return DEPTH_WIDTH_SHARE[0] * w <= _gap_width(g) <= DEPTH_WIDTH_SHARE[1] * w


def _drop_crossed_gaps(gaps: list[dict]) -> None:
    """Unmark the grid gaps whose grid contrast is under :data:`CROSSED_GAP_SHARE` of the
    measurable grid gaps on both sides when their width differs from both by over 25 %,
    or under half that share whatever their width: a depth track that the heavy (major)
    lines cross while the minor lines stop at its borders. Inside one track every
    division carries the same horizontal lines (on 1-bit prints their contrast still
    varies 3:1 between equal divisions, hence the width test for the milder drop)."""
    idx = [i for i, g in enumerate(gaps) if not g["narrow"]]
    drop = []
    for k in range(1, len(idx) - 1):
        g, a, b = gaps[idx[k]], gaps[idx[k - 1]], gaps[idx[k + 1]]
        odd = not any(_widths_within(g, h, ODD_WIDTH_SHARE) for h in (a, b))
        share = CROSSED_GAP_SHARE if odd else CROSSED_GAP_SHARE / 2
        if g["is_grid"] and a["is_grid"] and b["is_grid"] and \
                g["grid"] < share * min(a["grid"], b["grid"]):
            drop.append(idx[k])
    for i in drop:
        gaps[i]["is_grid"] = False


def _narrow_runs(gaps: list[dict]):
    """Each maximal run of consecutive narrow gaps, with the gaps on either side of it
    (none at a page edge): yields (run, sides), lists of the gap dicts."""
    n = len(gaps)
    k = 0
    while k < n:
        if not gaps[k]["narrow"]:
            k += 1
            continue
        e = k
        while e < n and gaps[e]["narrow"]:
            e += 1
        yield gaps[k:e], [g for g in (gaps[k - 1] if k > 0 else None, gaps[e] if e < n else None)
                          if g is not None]
        k = e


def _join_narrow_ends(gaps: list[dict], bin_w: int) -> None:
    """Mark as grid the runs of narrow gaps between a grid gap on one side and a gap
    without grid (or the page edge) on the other, when the horizontal grid runs through
    them: every one of them wide enough to measure (a column bin) carries at least
    :data:`NARROW_END_SHARE` of the grid gap's contrast, and one is. The last division of
    a finely subdivided track, or one a faint extra line cuts, is narrower than a
    measurable gap; without this the track ends one line short of its border (10-12 px
    on the rendered pages 2 and 7 of bench/layout_accuracy.py). A doubled border (two
    lines a few px apart) has no grid between them and stays out."""
    for run, sides in _narrow_runs(gaps):
        grid_sides = [g for g in sides if g["is_grid"]]
        if not any(g["is_grid"] for g in run) and len(grid_sides) == 1:
            ref = grid_sides[0]["grid"]
            meas = [g for g in run if _gap_measurable(g["x0"], g["x1"], bin_w)]
            if meas and all(g["grid"] >= NARROW_END_SHARE * ref for g in meas):
                for g in run:
                    g["is_grid"] = True


def _join_fine_runs(gaps: list[dict], bin_w: int, min_grid: float, min_span: float) -> None:
    """Mark as grid the runs of narrow gaps between gaps without grid (or the page
    edges) that span at least ``min_span`` px, when at least :data:`FINE_RUN_MEASURED`
    of them are wide enough to measure and every one of those carries a grid gap's
    contrast (``min_grid``): a whole track divided finer than a measurable gap (50
    divisions of 12 px: rendered page 2 of ``bench/layout_accuracy.py --seed 2``), which
    had no grid gap to join and was lost. A doubled line or a scanner streak spans a
    few px; a log grid's crowded marks sit between wide grid gaps."""
    for run, sides in _narrow_runs(gaps):
        if not any(g["is_grid"] for g in run + sides) \
                and run[-1]["x1"] - run[0]["x0"] >= min_span:
            meas = [g for g in run if _gap_measurable(g["x0"], g["x1"], bin_w)]
            if len(meas) >= FINE_RUN_MEASURED and all(g["grid"] >= min_grid for g in meas):
                for g in run:
                    g["is_grid"] = True


#: a run of narrow gaps is a finely divided track only with this many measurable gaps
FINE_RUN_MEASURED = 3


def _grid_depth_gap(gaps: list[dict], prof: _Profiles, rows_mask: np.ndarray, w: int) -> bool:
    """When no depth track was found (between the tracks or in a margin), unmark the grid
    gap that is one (and say whether there was one):
    no curve runs down it (:func:`_curve_row_share` under :data:`DEPTH_CURVE_MAX`), it is
    as wide as a depth track (:data:`DEPTH_WIDTH_SHARE`) and its width differs by over
    :data:`ODD_WIDTH_SHARE` from the measurable gaps beside it (or none is measurable): a
    depth track the whole
    horizontal grid crosses, which otherwise joins a track or becomes one (rendered
    pages 6, 10, 12 of ``bench/layout_accuracy.py --seed 1``). A division of a track
    is as wide as its neighbours; a track is (nearly) always crossed by a curve."""
    pick = None
    for i, g in enumerate(gaps):
        if g["narrow"] or not g["is_grid"] or not _depth_wide(g, w):
            continue
        beside = [gaps[j] for j in (i - 1, i + 1) if 0 <= j < len(gaps) and not gaps[j]["narrow"]]
        if any(_widths_within(g, h, ODD_WIDTH_SHARE) for h in beside):
            continue
        share = _curve_row_share(g["x0"], g["x1"], prof, rows_mask)
        # of several, the one between the heaviest lines: a depth track's are track borders
        heft = min(g["left"].get("weight", 0.0), g["right"].get("weight", 0.0))
        if share < DEPTH_CURVE_MAX and (pick is None or heft > pick[0]):
            pick = (heft, g)
    if pick is not None:
        pick[1]["is_grid"] = False
    return pick is not None


#: a grid gap is a depth track only if fewer of its body rows than this share lie in
#: long inked runs (a curve)
DEPTH_CURVE_MAX = 0.1


#: a gap between border lines without a grid is a (bare) track when it is this share of
#: the scan width or wider ...
BARE_TRACK_MIN = 0.08
#: ... and this share of the body rows lies in runs of >= BARE_TRACK_RUN inked rows
BARE_TRACK_ROWS = 0.5
BARE_TRACK_RUN = 60


def _curve_row_share(x0: int, x1: int, prof: _Profiles, rows_mask: np.ndarray) -> float:
    """Share of the body rows whose columns [x0, x1) (less a bin each side: the border
    lines) hold ink, in runs of at least :data:`BARE_TRACK_RUN` consecutive rows. A curve
    down the gap inks almost every row; depth numbers, even rotated ones, leave most
    rows between labels empty, and paper speckle does not fill 60 rows running."""
    b0, b1 = _gap_bins(x0, x1, prof.bin_w)
    b0, b1 = b0 + 1, b1 - 1
    if b1 - b0 < 2 or not rows_mask.any():
        return 0.0
    inked = (_bin_rows_mean(prof.rowbins, b0, b1) > 0) & rows_mask
    long_rows = sum(b - a for a, b in _runs(inked) if b - a >= BARE_TRACK_RUN)
    return long_rows / float(rows_mask.sum())


def _find_tracks(lines: list[dict], prof: _Profiles, rows_mask: np.ndarray, w: int):
    if len(lines) < 2:
        return [], None
    gaps = []
    for a, b in zip(lines[:-1], lines[1:]):
        g0, g1 = a["x1"], b["x0"]
        grid, ink = _gap_stats(g0, g1, prof, rows_mask)
        gaps.append({"left": a, "right": b, "x0": g0, "x1": g1, "grid": grid, "ink": ink})
    _grid_contrast(gaps, prof, rows_mask)
    best = max(g["grid"] for g in gaps)
    if best <= 0.002:
        return [], None
    narrow_w = max(12, 3 * prof.bin_w)
    for g in gaps:
        g["narrow"] = g["x1"] - g["x0"] < narrow_w
        g["is_grid"] = (not g["narrow"]) and g["grid"] >= max(0.002, 0.25 * best)
        g["weak"] = (not g["narrow"]) and g["grid"] >= max(GRID_GAP_MIN, GRID_GAP_REL * best)
    _extend_weak_grid(gaps)
    _drop_crossed_gaps(gaps)
    # a gap too narrow to measure (two lines a few px apart: a doubled line, a scanner
    # streak) belongs to a track only if the measurable gaps on both sides do
    for i, g in enumerate(gaps):
        if g["narrow"]:
            left = next((h["is_grid"] for h in gaps[i - 1::-1] if not h["narrow"]), None) \
                if i > 0 else None
            right = next((h["is_grid"] for h in gaps[i + 1:] if not h["narrow"]), None)
            sides = [v for v in (left, right) if v is not None]
            g["is_grid"] = bool(sides) and all(sides)
    _join_narrow_ends(gaps, prof.bin_w)
    _join_fine_runs(gaps, prof.bin_w, max(0.002, 0.25 * best), max(40.0, 0.06 * w))
    tracks, depth = _tracks_from_gaps(gaps, prof, rows_mask, w)
    if tracks and depth is None and _grid_depth_gap(gaps, prof, rows_mask, w):
        tracks, depth = _tracks_from_gaps(gaps, prof, rows_mask, w)
    return tracks, depth


def _tracks_from_gaps(gaps: list[dict], prof: _Profiles, rows_mask: np.ndarray, w: int):
    """Tracks (groups of grid gaps split by :func:`_partition`, and bare tracks) and
    the depth track from the classified gaps of :func:`_find_tracks`."""
    groups: list[list[dict]] = []
    cur: list[dict] = []
    for g in gaps:
        if g["is_grid"]:
            cur.append(g)
        elif cur:
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    parts = []
    for grp in groups:
        glines = [grp[0]["left"]] + [g["right"] for g in grp]
        parts.append([(int(glines[i]["x0"]), int(glines[j]["x1"])) for i, j in _partition(glines, w)])
    tracks = [t for grp in _merge_half_tracks(parts) for t in grp
              if t[1] - t[0] >= max(16, 0.02 * w)]
    # a gap without grid that a curve runs down (ink on nearly every row, in long runs)
    # is a track whose grid faded or was never printed, not a depth track with text
    bare = [g for g in gaps
            if tracks and not g["is_grid"] and _gap_width(g) >= BARE_TRACK_MIN * w
            and _curve_row_share(g["x0"], g["x1"], prof, rows_mask) >= BARE_TRACK_ROWS]
    tracks += [(int(g["left"]["x0"]), int(g["right"]["x1"])) for g in bare]
    tracks.sort()
    # depth track: a non-grid gap with text, between or beside tracks
    depth = None
    cands = [g for g in gaps if not g["is_grid"] and _depth_wide(g, w)
             and g["ink"] > 0.002 and not any(g is b for b in bare)]
    if cands and tracks:
        inner = [g for g in cands if tracks[0][0] <= g["x0"] and g["x1"] <= tracks[-1][1]]
        pool = inner or cands
        g = max(pool, key=lambda g: g["ink"])
        depth = (int(g["left"]["x0"]), int(g["right"]["x1"]))
    if depth is None and tracks:
        depth = _margin_depth_track(tracks, prof, rows_mask, w)
    return tracks, depth


#: two adjacent tracks of one group are one track split at a heavy middle line when each
#: is this share of the widest track of another group ...
HALF_TRACK_SHARE = (0.35, 0.65)
#: ... and together this share of it
WHOLE_TRACK_SHARE = (0.9, 1.1)


def _merge_half_tracks(groups: list[list[tuple[int, int]]]) -> list[list[tuple[int, int]]]:
    """Undo splits of one track at a heavy middle division: within a group of adjacent
    tracks, two neighbours each about half as wide as the widest track of *another*
    group (beyond the depth track), and together about as wide, become one track.
    Track widths on a log print repeat across the page (API layout: 2.5 in tracks), and
    a heavier centre line is common on 10- and 20-division grids; two equal tracks side
    by side within one group are left alone because the reference comes from elsewhere."""
    out = [list(g) for g in groups]
    for k, grp in enumerate(out):
        others = [b - a for m, g in enumerate(out) if m != k for a, b in g]
        if not others or len(grp) < 2:
            continue
        ref = float(max(others))
        i = 0
        while i < len(grp) - 1:
            (a0, a1), (b0, b1) = grp[i], grp[i + 1]
            halves = all(HALF_TRACK_SHARE[0] * ref <= x <= HALF_TRACK_SHARE[1] * ref
                         for x in (a1 - a0, b1 - b0))
            whole = WHOLE_TRACK_SHARE[0] * ref <= b1 - a0 <= WHOLE_TRACK_SHARE[1] * ref
            if halves and whole and b0 - a1 <= 8:
                grp[i:i + 2] = [(a0, b1)]
            else:
                i += 1
    return out


def _margin_depth_track(tracks, prof: _Profiles, rows_mask: np.ndarray, w: int):
    """A depth track with no border line of its own, left of the first or right of the
    last track: the run of text-inked column bins next to the track, in the margin
    with more ink. Returns (x0, x1) or None."""
    bw = prof.bin_w
    nb = prof.rowbins.shape[1]
    share = _masked_rows_mean(prof.rowbins, rows_mask) / bw   # ink share per bin
    best = None
    for side in ("left", "right"):
        if side == "left":
            b0, b1 = 0, int(math.floor(tracks[0][0] / bw)) - 1
        else:
            b0, b1 = int(math.ceil(tracks[-1][1] / bw)) + 1, nb
        if b1 - b0 < 2 or (b1 - b0) * bw < 0.02 * w:
            continue
        sh = share[b0:b1]
        if sh.max() < 0.003:
            continue
        runs = _runs(sh >= max(0.002, 0.2 * sh.max()))
        if not runs:
            continue
        a, b = runs[-1] if side == "left" else runs[0]   # the run next to the track
        ink = float(sh[a:b].sum())
        if side == "left":
            box = (max(0, (b0 + a - 1) * bw), int(tracks[0][0]))
        else:
            box = (int(tracks[-1][1]), min(w, (b0 + b + 1) * bw))
        if box[1] - box[0] >= 0.02 * w and (best is None or ink > best[0]):
            best = (ink, box)
    return None if best is None else (int(best[1][0]), int(best[1][1]))


# grid patterns a track's vertical lines may follow: fractions of the track width
_LOG_MARKS = np.log10(np.arange(1, 10))  # 0 (decade line), log10 2 ... log10 9


def _segment_fit(xs: np.ndarray, wts: np.ndarray, a: float, b: float) -> float:
    """How well inner lines ``xs`` (weights ``wts``) of a track spanning [a, b] follow
    one track grid. 1 = perfect, 0.3 for a track without inner lines.

    Grids: N equal divisions (N = 10: linear, optionally with finer
    subdivisions; 6..9 and 15 (a one-and-a-half width track) weigh 0.9; N = 2..5 (0.75): log decades whose 2..9 marks are too faint to see, or a
    linear grid with only its heavy lines visible), or a log grid of 2-5 decades with any
    subset (two kinds or more) of the 2..9 marks, starting at a decade or at a mark
    (0.2-200 ...): see :func:`_log_fit`. Faint lines may be missing, so coverage of the expected lines counts
    for half; lines the grid does not explain count fully against it.
    """
    width = b - a
    if width <= 0:
        return 0.0
    if len(xs) == 0:
        return 0.3
    f = (xs - a) / width
    tol = max(2.5 / width, 0.006)
    tol_eq = max(2.5 / width, 0.009)  # old paper stretches unevenly: ~1 % of the width
    best = 0.0
    for n_div in (*range(2, 11), 15):
        if tol_eq * n_div > 0.3:
            break  # divisions so narrow that the tolerance takes most positions for a line
        near = np.abs(f * n_div - np.round(f * n_div)) <= tol_eq * n_div
        k = {int(round(v * n_div)) for v in f[near]} & set(range(1, n_div))
        cover = len(k) / (n_div - 1)
        for md in ((1, 2, 4, 5) if n_div == 10 else (1,)):
            tf = tol_eq if md == 1 else max(1.5 / width, 0.003)  # subdivisions: 1.5 px
            if md > 1 and tf * 10 * md > 0.3:
                break  # subdivisions too fine to tell from any position in the tolerance
            fine = np.abs(f * n_div * md - np.round(f * n_div * md)) <= tf * n_div * md
            sub = fine & ~near
            # a subdivision line heavier than the divisions, and standing out from the
            # other subdivisions (not weight noise among equally faint lines): a border
            if md > 1 and sub.any() and near.any() and \
                    wts[sub].max() > max(1.25 * np.median(wts[near]), 1.5 * np.median(wts[sub])):
                continue  # subdivision lines heavier than the divisions: not one track
            fit = fine.mean() * (0.5 + 0.5 * cover)
            # finer subdivisions are rarer than two adjacent tracks, a few equal
            # divisions (2-5) are a weaker explanation than the 6-10 of a linear grid,
            # and 10 (the linear grid of nearly every log) beats 6-9
            # 15 (a 1.5-width linear track) takes the 0.9 of 6-9: its split into 10 + 5
            # equal divisions scores 2/3 + 1/3 * 0.75 = 0.92, + 0.02 for a heavy middle
            # line, so the split wins only at such a line; 20 is left out: it is also two
            # adjacent standard tracks
            prior = 1.0 if n_div == 10 else (0.9 if n_div >= 6 else 0.75)
            if 6 <= n_div <= 9 and _two_spacings(sorted(k), n_div):
                prior *= 0.8
            best = max(best, fit * (0.9 if md > 1 else 1.0) * prior)
    for d in range(2, 6):  # log grid with its marks
        for m0 in (1, 2):  # the left border on a decade line or its 2 mark (0.2-200 ...)
            best = max(best, _log_fit(f, wts, d, float(_LOG_MARKS[m0 - 1]), tol))
    return best


def _two_spacings(k: list[int], n_div: int) -> bool:
    """Whether the division lines ``k`` (indices 1..n_div-1) found of an ``n_div`` grid
    step by one spacing on one side and by another on the other (1,1,1,2,2): two
    adjacent tracks of different grids (3 + 2 log decades read as 7 divisions), not one
    track with faint lines missing here and there."""
    steps = np.diff([0, *k, n_div])
    vals = sorted(set(steps.tolist()))
    if len(vals) != 2:
        return False
    for a, b in ((vals[0], vals[1]), (vals[1], vals[0])):
        m = int(np.argmax(steps != a))
        if m >= 2 and len(steps) - m >= 2 and (steps[:m] == a).all() and (steps[m:] == b).all():
            return True
    return False


@functools.lru_cache(maxsize=64)
def _log_marks_inside(d: int, phi: float) -> tuple[int, ...]:
    """How many lines of each kind (index 0: decade, 1..8: the 2..9 marks) a log grid of
    ``d`` decades starting ``phi`` into a decade has strictly inside the track (a tuple:
    the cached value cannot be changed by a caller)."""
    return tuple(sum(1 for jj in range(0, d + 2)
                     if 1e-6 < jj + _LOG_MARKS[mm] - phi < d - 1e-6) for mm in range(9))


def _log_fit(f: np.ndarray, wts: np.ndarray, d: int, phi: float, tol: float) -> float:
    """Fit of inner lines at track fractions ``f`` (weights ``wts``) to a log grid of
    ``d`` decades whose left border sits ``phi`` (log10 of a 1..9 mark) into a decade.

    Decade lines must weigh at least as much as the 2..9 marks, and at least two mark
    kinds must be seen: a single kind (e.g. only the 3s, at 0.477 of a decade) is as
    well explained by equal divisions. 0 when the grid does not apply, and when the
    tolerance takes over 0.06 of a decade (a decade narrower than ~40 px): there every
    position lies near one of the crowded 6..9 marks, so any narrow piece of a grid fits.
    """
    if tol * d > 0.06:
        return 0.0
    p = f * d + phi                        # position in decades from the decade below
    j = np.floor(p + tol * d)
    r = p - j
    dist = np.abs(r[:, None] - _LOG_MARKS[None, :])
    m = np.argmin(dist, 1)
    ok = dist[np.arange(len(f)), m] <= tol * d
    hits: dict[int, set] = {}
    for jj, mm in zip(j[ok].astype(int), m[ok]):
        hits.setdefault(int(mm), set()).add(int(jj))
    want_n = _log_marks_inside(d, phi)
    used = [mm for mm in range(1, 9) if want_n[mm] and
            len(hits.get(mm, ())) >= max(1, want_n[mm] / 2)]
    if len(used) < 2:
        return 0.0
    dec = ok & (m == 0)
    marks = ok & (m > 0)
    if dec.any() and marks.any() and wts[marks].max() > 1.25 * np.median(wts[dec]):
        return 0.0  # 2..9 marks heavier than the decade lines: not one track
    got = sum(len(hits[mm]) for mm in used) + len(hits.get(0, ()))
    want = sum(want_n[mm] for mm in used) + want_n[0]
    return float(ok.mean() * (0.5 + 0.5 * min(1.0, got / max(1, want))))


def _partition(glines: list[dict], w: int) -> list[tuple[int, int]]:
    """Split a group of adjacent tracks at the lines that make each part follow one
    track grid best (dynamic programming over the lines); heavy lines are preferred
    as borders. Returns (i, j) index pairs into ``glines``."""
    n = len(glines)
    if n <= 2:
        return [(0, n - 1)]
    x = np.array([ln["x"] for ln in glines])
    wt = np.array([ln.get("weight", ln["width"]) for ln in glines], np.float64)
    wb = max(1e-6, 0.5 * (float(wt[0]) + float(wt[-1])))   # weight of a border line
    inner = wt[1:-1]
    other_max = np.zeros(n)
    for i in range(1, n - 1):  # heaviest other inner line of the group
        rest = np.delete(inner, i - 1)
        other_max[i] = float(np.percentile(rest, HEAVY_PCT)) if len(rest) else 0.0
    total = x[-1] - x[0]
    min_w = max(40.0, 0.06 * w)
    if total < 2 * min_w:
        return [(0, n - 1)]
    fit = {}
    for i in range(n):
        for j in range(i + 1, n):
            if x[j] - x[i] >= min_w or (i == 0 and j == n - 1):
                fit[i, j] = _segment_fit(x[i + 1:j], wt[i + 1:j], x[i], x[j])
    best = np.full(n, -np.inf)
    prev = np.full(n, -1)
    best[0] = 0.0
    for j in range(1, n):
        for i in range(j):
            if (i, j) not in fit or not np.isfinite(best[i]):
                continue
            sc = best[i] + fit[i, j] * (x[j] - x[i]) / total
            if i > 0:
                # an inner border should weigh like the outer borders and more than the
                # other inner lines; else the split pays (ties go to fewer tracks), enough
                # that a 20-division track's middle line, lighter than its borders, does
                # not split it into two 10-division tracks (whose fit beats the whole's
                # subdivided 10 by 0.1)
                sim = 1.0 - abs(math.log(max(wt[i], 1e-6) / wb)) / math.log(1.5)
                heavy = wt[i] >= 1.2 * other_max[i]
                sc += 0.02 if (sim >= 0 and heavy) else 0.1 * (min(sim, 0.0) - 1.0)
                sc += 1e-3 * min(2.0, wt[i] / wb)  # equal fits: the heavier border
            if sc > best[j] + 1e-9:
                best[j], prev[j] = sc, i
    if prev[n - 1] < 0:
        return [(0, n - 1)]
    cuts, j = [], n - 1
    while j > 0:
        cuts.append((int(prev[j]), j))
        j = int(prev[j])
    return cuts[::-1]


# -- horizontal grid -----------------------------------------------------------------

def _span_signal(prof: _Profiles, spans) -> np.ndarray | None:
    """[H] float32 ink share per row over the column bins inside ``spans`` ([(x0, x1)],
    one bin kept clear of each edge); None when no bin fits."""
    bw = prof.bin_w
    bins: list[int] = []
    for a, b in spans:
        b0, b1 = int(math.ceil(a / bw)) + 1, int(math.floor(b / bw)) - 1
        bins.extend(range(b0, max(b0, b1)))
    if not bins:
        return None
    return (_bins_sum_rows(prof.rowbins, bins) / (len(bins) * bw)).astype(np.float32)


def _period(sig: np.ndarray, body: np.ndarray) -> float | None:
    """Spacing (rows) of the horizontal grid in ``sig`` over rows ``body``: the first
    strong autocorrelation peak, refined on a far multiple; None if not periodic."""
    if len(body) < 64:
        return None
    x = sig[body[0]:body[-1] + 1].astype(np.float64)
    x = x - x.mean()
    n = len(x)
    nfft = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(x, nfft)
    ac = np.fft.irfft(f * np.conj(f), nfft)[:n]
    if ac[0] <= 0:
        return None
    ac = ac / ac[0]
    maxlag = min(n // 4, 2000)
    lo = int(MIN_GRID_PX)
    if maxlag <= lo + 2:
        return None
    seg = ac[lo:maxlag]
    pk = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])) + 1
    if len(pk) == 0:
        return None
    top = seg[pk].max()
    if top < 0.1:
        return None
    # minor spacing: the first local max that reaches half the strongest one, or,
    # for faint minor lines, a weaker one (>= 0.2) of which that first strong lag is
    # a whole multiple (2..10 minor spacings to the major). (Not the strongest lag:
    # on long scans that can be a far multiple, 8 majors, of which nearly any lag is
    # a tenth.)
    k = int(pk[np.flatnonzero(seg[pk] >= 0.5 * top)[0]]) + lo
    for c in pk + lo:
        if c >= k:
            break
        ratio = k / c
        if ac[c] >= max(0.2 * top, 0.05) and 2 <= round(ratio) <= 10 and \
                abs(ratio - round(ratio)) <= 0.04 * round(ratio):
            k = int(c)
            break
    p = _parabolic(ac, k)
    # refine on ever farther multiples (2, 4, 8 ... up to ~40 spacings), each found
    # near where the previous estimate puts it, so the search window always holds it
    mult = max(1, int(min(maxlag - 2, 40 * p) // p))
    m = 2
    while m <= mult:
        j = int(round(m * p))
        lo_j, hi_j = max(1, j - max(2, int(0.15 * p))), min(n - 2, j + max(2, int(0.15 * p)))
        if hi_j <= lo_j:
            break
        jj = lo_j + int(np.argmax(ac[lo_j:hi_j + 1]))
        if not (lo_j < jj < hi_j and ac[jj] > 0.3 * ac[k]):  # a peak, not the edge
            break
        p = _parabolic(ac, jj) / m
        m *= 2
    return float(p) if math.isfinite(p) and p >= MIN_GRID_PX else None


#: an outer division without a border line belongs to the track when the horizontal
#: grid runs through both its halves with at least this share of the periodicity the
#: track's own divisions show (:func:`_grid_periodicity`) ...
OPEN_EDGE_SHARE = 0.5
#: ... and at least this much power on the grid's harmonics as between them
OPEN_EDGE_MIN = 2.5
#: at most this many divisions are added on a side
OPEN_EDGE_MAX_DIV = 20
#: the new edge lies where a faint line runs through at least this share of the body
#: strips (YM127's dashed left border: 0.19; a margin: under 0.08)
OPEN_EDGE_LINE = 0.1


def _grid_periodicity(prof: _Profiles, x0: int, x1: int, rows_mask: np.ndarray,
                      p: float) -> float:
    """How much the ink of columns [x0, x1) repeats at the grid spacing ``p`` (rows):
    the row signal's power at the first three harmonics of ``p`` over its power half-way
    between them, pooled over windows of the body rows at least 8 spacings long. The
    phase is free per window, so lines that slope differently along the scan (paper
    that slid in the scanner) still count; paper texture, text and curves put about as
    much power between the harmonics as on them (ratio ~1), a grid far more."""
    bw = prof.bin_w
    b0, b1 = int(math.ceil(x0 / bw)), int(math.floor(x1 / bw))
    if b1 - b0 < 1:
        return 0.0
    sig = _bin_rows_mean(prof.rowbins, b0, b1).astype(np.float64) / bw
    s = max(prof.strip_rows, int(math.ceil(8 * p)))
    y = np.arange(s)
    on = np.stack([np.exp(-2j * np.pi * k * y / p) for k in (1, 2, 3)], 1)
    off = np.stack([np.exp(-2j * np.pi * (k + 0.5) * y / p) for k in (1, 2, 3)], 1)
    p_on = p_off = 0.0
    for a, b in _runs(rows_mask):
        k = (b - a) // s
        if k == 0:
            continue
        z = sig[a:a + k * s].reshape(k, s)
        z = z - z.mean(1, keepdims=True)
        p_on += float((np.abs(z @ on) ** 2).sum())
        p_off += float((np.abs(z @ off) ** 2).sum())
    return p_on / p_off if p_off > 0 else 0.0


def _extend_open_edges(tracks, depth, lines, presence: np.ndarray, prof: _Profiles,
                       rows_mask: np.ndarray, minor: float, w: int):
    """(tracks, notes): the outer edges of the first and last track moved outwards over
    the divisions whose border lines were never printed or faded away, where the
    horizontal grid runs on (YM127: track 1's left half carries only ticks, no vertical
    lines, and was left out). A division is the median spacing of the track's vertical
    lines; one is added while both its halves show the grid (:func:`_grid_periodicity`
    >= :data:`OPEN_EDGE_SHARE` of the track's own divisions and >= :data:`OPEN_EDGE_MIN`),
    never into another track, the depth track or past the scan's edge. The new edge is
    the outermost of those division ends where a faint line shows (``presence`` [W]:
    share of the body strips in which a column runs as a line, >= :data:`OPEN_EDGE_LINE`
    within 0.15 of a division), snapped to it: some prints run their grid lines most
    of a division past the border (30-025-12481), and there no line shows."""
    tracks = [tuple(t) for t in tracks]
    notes: list[str] = []
    for side in (0, 1):
        i = 0 if side == 0 else len(tracks) - 1
        t0, t1 = tracks[i]
        others = [t for k, t in enumerate(tracks) if k != i] + \
            ([tuple(depth)] if depth is not None else [])
        xs = sorted(ln["x"] for ln in lines if t0 - 2 <= ln["x"] <= t1 + 2)
        if len(xs) < 3:
            continue
        div = float(np.median(np.diff(xs)))
        if div < 3 * prof.bin_w:
            continue
        own = [_grid_periodicity(prof, int(a) + 2, int(b) - 1, rows_mask, minor)
               for a, b in zip(xs[:-1], xs[1:])]
        need = max(OPEN_EDGE_MIN, OPEN_EDGE_SHARE * float(np.median(own)))
        edge = float(t0 if side == 0 else t1)
        added = 0
        best = None   # (divisions, snapped column)
        reach = max(3, int(round(0.15 * div)))
        while added < OPEN_EDGE_MAX_DIV:
            a, b = (edge - div, edge) if side == 0 else (edge, edge + div)
            if a < 0 or b > w or any(a < q1 and q0 < b for q0, q1 in others):
                break
            m = 0.5 * (a + b)
            halves = ((int(a) + 1, int(m)), (int(m), int(b) - 1))
            if not all(_grid_periodicity(prof, h0, h1, rows_mask, minor) >= need
                       for h0, h1 in halves):
                break
            edge = a if side == 0 else b
            added += 1
            c0, c1 = max(0, int(round(edge)) - reach), min(len(presence), int(round(edge)) + reach + 1)
            if c1 > c0 and presence[c0:c1].max() >= OPEN_EDGE_LINE:
                best = (added, c0 + int(np.argmax(presence[c0:c1])))
        if best is not None:
            added, col = best
            # x0 is the line's first column, x1 one past its last (as for found borders)
            new = (col, t1) if side == 0 else (t0, col + 1)
            notes.append(f"track {i + 1}'s {'left' if side == 0 else 'right'} border is not "
                         f"printed: the horizontal grid runs {added} more division"
                         f"{'s' if added > 1 else ''}, so the "
                         f"track is taken as {new[0]}-{new[1]}")
            tracks[i] = new
    return tracks, notes


def _find_grid(prof: _Profiles, tracks, rows_mask: np.ndarray):
    """(minor px, major px, per-row grid signal) from the row profile inside the tracks."""
    if not tracks:
        return None, None, None
    sig = _span_signal(prof, tracks)
    if sig is None:
        return None, None, None
    body = np.flatnonzero(rows_mask)
    minor = _period(sig, body)
    if minor is None:
        return None, None, sig
    major = _find_major(sig, body, minor)
    return minor, major, sig


def _parabolic(y: np.ndarray, k: int) -> float:
    """Sub-sample position of the peak of ``y`` at ``k`` (vertex of the parabola through
    k-1, k, k+1); ``k`` itself where ``k`` is not a local maximum (the vertex could lie
    anywhere on a slope)."""
    if 0 < k < len(y) - 1 and y[k] >= y[k - 1] and y[k] >= y[k + 1]:
        den = y[k - 1] - 2 * y[k] + y[k + 1]
        if den < 0:
            return k + 0.5 * (y[k - 1] - y[k + 1]) / den
    return float(k)


def _grid_line_strengths(sig: np.ndarray, r0: int, r1: int, p: float):
    """Strength and row of each grid line in [r0, r1): local max of ``sig`` near each
    lattice position, lattice phase from the data."""
    x = sig[r0:r1]
    n = len(x)
    nper = int(n // p)
    if nper < 4:
        return np.array([]), np.array([])
    # phase: fold onto the period
    ph = np.arange(n) % p
    hist = np.bincount(np.floor(ph).astype(int), weights=x, minlength=int(math.ceil(p)))
    phase = float(np.argmax(hist))
    half = max(1, int(0.25 * p))
    wide = max(2, int(0.4 * p))
    base = float(np.median(x))
    rows, strengths = [], []
    t = phase
    while t < n:
        c = int(round(t))
        a, b = max(0, c - half), min(n, c + half + 1)
        if b > a:
            j = a + int(np.argmax(x[a:b]))
            # line strength: ink above the paper level within +-0.4 p of the peak, so
            # a heavier line counts more even when thin lines already fill their rows
            win = x[max(0, j - wide):j + wide + 1]
            strengths.append(float(np.clip(win - base, 0, None).sum()))
            rows.append(r0 + j)
            t = t + p + 0.3 * (j - t)  # follow slow drift (paper stretch), damped
        else:
            t += p
    return np.array(rows), np.array(strengths)


def _find_major(sig: np.ndarray, body: np.ndarray, p: float) -> float | None:
    """Major spacing: the shortest period n (2, 4, 5 or 10 minor lines) whose heaviest
    phase stands out (mean strength >= 1.25 x the other phases, and nearly as much as
    the best period does)."""
    rows, st = _grid_line_strengths(sig, int(body[0]), int(body[-1]) + 1, p)
    if len(st) < 20:
        return None
    ratios = {}
    for nper in (2, 4, 5, 10):
        if len(st) < 3 * nper:
            continue
        means = np.array([st[i::nper].mean() for i in range(nper)])
        i = int(np.argmax(means))
        rest = np.delete(means, i).mean()
        ratios[nper] = float(means[i] / max(rest, 1e-6))
    if not ratios:
        return None
    best = max(ratios.values())
    for nper in sorted(ratios):
        if ratios[nper] >= max(1.25, 0.85 * best):
            return nper * p
    return None


def _grid_peaks(sig: np.ndarray, r0: int, r1: int, level: float) -> np.ndarray:
    """Rows in [r0, r1) where ``sig`` has a local maximum of at least ``level``."""
    x = sig[r0:r1]
    if len(x) < 3:
        return np.zeros(0, int)
    pk = np.flatnonzero((x[1:-1] >= x[:-2]) & (x[1:-1] > x[2:]) & (x[1:-1] >= level)) + 1
    return pk + r0


def _refine_header(sig: np.ndarray, p: float | None, section: tuple[int, int]) -> int:
    """First row of the regular grid near the top of the first section: the first grid
    line (peak of the track row profile at line strength) that starts a run of five
    lines spaced by the minor spacing ``p`` (or all by 2 ``p``, minor lines too faint)
    with no equally strong peak between them; failing that, where the profile turns
    periodic at ``p`` (:func:`_periodic_start`)."""
    r0, r1 = section
    if p is None:
        return r0
    body = sig[r0:r1]
    q = float(np.quantile(body, min(1.0, max(0.0, 1.0 - 1.0 / p)))) if len(body) else 0.0
    if q <= 0:
        return r0
    lo = max(0, r0 - STRIP_ROWS)
    hi = min(len(sig), r0 + 4 * STRIP_ROWS, r1)
    pk = _grid_peaks(sig, lo, hi, 0.5 * q)
    tol = max(1.5, 0.12 * p)
    for i in range(len(pk)):
        run, last, step = [pk[i]], pk[i], None
        for j in range(i + 1, len(pk)):
            d = pk[j] - last
            # every lattice line, or every other one where the minor lines are too
            # faint to peak (the same step all along the run)
            k = step or (2 if abs(d - 2 * p) <= tol else 1)
            if abs(d - k * p) <= tol:
                run, last, step = run + [pk[j]], pk[j], k
                if len(run) >= 5:
                    break
            elif d > k * p + tol:
                break
            elif (p >= 12 or k == 2) and sig[pk[j]] >= 0.7 * sig[last]:
                break  # as strong as a grid line but off the lattice: text, not grid
        # the first line must weigh like the others (not a text row before the grid)
        if len(run) >= 5 and sig[run[0]] >= 0.7 * float(np.min(sig[run[1:]])):
            r = int(pk[i])
            while r > lo and sig[r - 1] >= 0.5 * sig[pk[i]]:
                r -= 1
            return r
    # (not above the section: its start is where the vertical lines begin)
    return _periodic_start(sig, p, max(lo, r0 - int(p)), hi, r0)


def _periodic_start(sig: np.ndarray, p: float, lo: int, hi: int, default: int) -> int:
    """Where the track row profile turns periodic at the grid spacing ``p`` (minor lines
    too faint to peak on their own): the first of three successive windows of 4 ``p``
    rows, stepped by ``p``, whose autocorrelation at lag ``p`` is >= 0.5, moved to the
    strongest row of its first period. ``default`` when there is none in [lo, hi)."""
    win = int(round(4 * p))
    lag = int(round(p))
    if lag < 2 or hi - lo < win + lag:
        return default
    ok = []
    starts = list(range(lo, hi - win - lag, max(1, lag)))
    for r in starts:
        a = sig[r:r + win].astype(np.float64)
        best = -1.0
        for l2 in (lag - 1, lag, lag + 1):
            b = sig[r + l2:r + l2 + win].astype(np.float64)
            am, bm = a - a.mean(), b - b.mean()
            den = math.sqrt(float(np.dot(am, am) * np.dot(bm, bm)))
            if den > 0:
                best = max(best, float(np.dot(am, bm)) / den)
        ok.append(best >= 0.5)
    for i in range(len(ok) - 2):
        if ok[i] and ok[i + 1] and ok[i + 2]:
            r = starts[i]
            return int(r + int(np.argmax(sig[r:r + lag])))
    return default


def _extend_bottom(sig: np.ndarray, p: float | None, section: tuple[int, int]) -> int:
    """End row of the last section, carried down while the horizontal grid goes on at
    spacing ``p`` below it (vertical lines may fade before the grid ends)."""
    r0, r1 = section
    if p is None or r1 >= len(sig):
        return r1
    body = sig[r0:r1]
    q = float(np.quantile(body, min(1.0, max(0.0, 1.0 - 1.0 / p)))) if len(body) else 0.0
    if q <= 0:
        return r1
    pk = _grid_peaks(sig, max(r0, r1 - 4 * int(p + 1)), len(sig), 0.5 * q)
    tol = max(1.5, 0.12 * p)
    end, last, missed = r1, None, 0
    for r in pk:
        if last is None:
            if r < r1 - 2 * p:
                continue
            last = r
            continue
        k = (r - last) / p
        if k < 0.5:
            continue
        if abs(k - round(k)) * p <= tol and round(k) <= 3:
            last = r
            end = max(end, int(r + 1))
        else:
            break
    # one grid spacing after the last line still belongs to the log
    return int(min(len(sig), max(r1, end)))
