"""The whole conversion: read -> layout -> deskew -> segment -> vectorise -> LAS/CSV -> QC.

:func:`convert_file` is what ``logdigit convert`` and the batch runner call;
:func:`digitise` is the pure part after segmentation (class masks in, depth table
out), used directly by tests and the tracker-only benchmark.

Frames: calibration rows/columns are pixels of the scan as stored; the layout's
skew maps them into the deskewed frame where tracks are vertical. Depth ties are
mapped at the depth track's centre column (else the image centre), track columns
at the scan's centre row (:meth:`Layout.columns_to_deskewed`). Calibrated track
edges within a few pixels of a detected track's border lines are snapped to the
detected line centres.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .calibration import (Calibration, CurveCalibration, DepthCalibration, DepthTie,
                          fraction_to_value, load_calibration)
from .constants import CLASS_TO_STYLE, DEFAULT_STEP, STYLE_TO_CLASS
from .errors import CalibrationError, LayoutError, LogdigitError
from .las import FORMATS, CurveColumn, DepthTable, write_table
from .qc import QCCurve, write_overlay
from .segment import CODE_P_MASK
from .vectorise import (TrackerConfig, code_p_level, depth_grid, follow_ink_gaps, resample_rows,
                        style_mask, trace_curves, trace_track, track_window, true_stretches)

#: named colours for the calibration ``color`` key (RGB)
NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 160, 50),
    "magenta": (210, 40, 200), "purple": (130, 40, 160), "cyan": (20, 180, 210),
    "orange": (240, 140, 20), "brown": (140, 80, 30), "grey": (128, 128, 128),
    "gray": (128, 128, 128), "darkblue": (20, 30, 130), "darkgreen": (20, 100, 30),
    "darkred": (140, 20, 20),
}
#: tracks from the calibration snap to detected border lines this close (px, or 2 %)
SNAP_PX = 6.0
#: uncalibrated reads keep a style only when read on this share of the rows
MIN_UNCALIBRATED_COVERAGE = 0.2
#: uncalibrated: two traces are compared (one curve, or apart) on at least this many
#: rows where both are observed
MIN_SHARED_ROWS = 20
#: uncalibrated: curves of one style read per track (vendor prints often hold two solid ones)
MAX_UNCALIBRATED_PER_STYLE = 2
#: ... a further one is kept when observed (not bridged) on this share of the rows,
#: apart from the first (:func:`_apart`) and continuous: at most this share of its steps
#: between observed rows jump more than a tenth of the track (on the real scans, session-5
#: model outputs: leftovers of the first curve's wide trace, hopping from piece to piece,
#: jump on 3.4 % (1_Roger T1) and 9.6 % (30-025 T2) of them; real second curves on
#: 0.8-1.4 % (33-023, 35100081) and 2.2 % (Aldwell T2, a spiky resistivity curve))
MIN_EXTRA_OBSERVED = 0.3
MAX_EXTRA_JUMP_SHARE = 0.03
#: uncalibrated: a curve is written only when seen off the grid lines at least this
#: share of the rate of a curve that crosses the grid by chance (:func:`grid_free_share`).
#: What the network calls curve on an empty track is grid. Session-13 study, shipped
#: model: such reads score 0.064-0.106 on the real scans (30-025-12481 T3 solid, RCB_2-3
#: and ALS471 T2 dashed) and 0.000-0.001 on the synthetic pages of
#: bench/uncalibrated_accuracy.py; real curves score from 0.145 (synthetic) and 0.155
#: (273101, a backup trace wrapping into the next track) up, and Aldwell's T2 dashed,
#: partly on a real curve of a dense log grid, 0.121.
MIN_GRID_FREE_SHARE = 0.11
#: uncalibrated: a read whose position and a fuller read's are joined by one pen stroke of
#: ink on this share of the rows both are observed off the grid lines is pieces of that
#: curve (:func:`same_ink_share`). Session-13 study, shipped model, real scans: such
#: pieces score 0.17 (RCB_2-3 T2 dash-dot against its second solid; 0.11 against the
#: first) and 0.53 (30-025-12481 T2 dash-dot against its solid); real pairs of curves
#: 0.000-0.062 (RCB_2-3 T1, 35100081 T2's dash-dot 6 % of the track from its solid: 0.021)
SAME_INK_SHARE = 0.15
#: ... counted only on rows where the two reads lie at least this far apart (px): closer,
#: two curves' pens touch as often as one stroke's ends do (a dotted and a dash-dot curve
#: of bench/uncalibrated_accuracy.py seed 931000 page 6, run a few px apart: 0.34)
SAME_INK_MIN_PX = 10.0
#: ... and only where the joining ink is a stroke: paper within this many rows above and
#: below it half-way between the reads (a shaded fill between curves is ink there too:
#: the same page 6, its dotted and dash-dot curves inside a fill, 0.29 without the test)
SAME_INK_STROKE_PX = 8
#: ... and the joining row ink on at least this share of its columns: a pen stroke, with
#: the odd speckle hole of a 1-bit scan; a dot screen (about half) is not
SAME_INK_FILL = 0.9
#: a wrapped curve read on a backup trace on more of its rows than this is flagged
AMBIGUOUS_BACKUP_SHARE = 0.35
#: a read whose steps between observed rows jump over a tenth of the track on more than
#: this share is flagged: it hops between curves (cached bench pages, seed 900000,
#: session 7: 6 of 103 curves, 5 of them read at R^2 -1.8..0.62; a real spiky
#: resistivity curve, Aldwell T2, jumps on 2.2 % and is flagged too: the warning only
#: asks for a look at the QC overlay)
JUMPY_SHARE = 0.02
#: rows of context segmented above and below the rows read
SEGMENT_MARGIN = 64
#: the widest vertical lines (px, as the layout measures them) of the model's training
#: pages: the renderer draws pens and grid lines 1-4 px wide, which with blur and
#: anti-aliasing measure 1-5 px (median line width over 100 rendered pages: 1 px on 51,
#: 2-4 px on 38, 5 px on 10, 6 px on 1). Scans whose lines are wider (400 dpi paper,
#: thick pens) are segmented at a reduced resolution that brings them back into range;
#: pages within it are not, since reducing them erases dotted curves.
TRAINED_LINE_PX = 5.0
#: line width (px) the reduced resolution aims at
TARGET_LINE_PX = 2.5
#: the largest reduction
MAX_SEGMENT_SCALE = 4


def segmentation_scale(layout) -> int:
    """Integer reduction (1 = full resolution) at which to segment a scan, from the
    median width of the vertical lines the layout found (``layout.lines``; at least 3
    are needed, else 1): 1 while it is at most :data:`TRAINED_LINE_PX`, else the factor
    that brings it nearest :data:`TARGET_LINE_PX` (at most :data:`MAX_SEGMENT_SCALE`).

    The model sees lines only as wide as its training pages drew them; on a 400 dpi
    scan of a thick pen it takes the trace for a filled area and reads at most its edges.
    """
    widths = [float(ln["width"]) for ln in getattr(layout, "lines", []) or []]
    if len(widths) < 3:
        return 1
    w = float(np.median(widths))
    if w <= TRAINED_LINE_PX:
        return 1
    return int(min(MAX_SEGMENT_SCALE, max(2, round(w / TARGET_LINE_PX))))


def segment_scaled(seg, grey: np.ndarray, scale: int, classes: np.ndarray, code: np.ndarray,
                   progress=None) -> None:
    """Segment ``grey`` (uint8 [h, w]) at ``1/scale`` resolution and write the class ids
    and curve code, upsampled (nearest), into ``classes`` / ``code`` (uint8 [h, w])."""
    import cv2

    h, w = grey.shape
    if scale <= 1:
        seg.predict(grey, progress=progress, out=(classes, None), code=code)
        return
    sh, sw = max(1, -(-h // scale)), max(1, -(-w // scale))
    small = cv2.resize(grey, (sw, sh), interpolation=cv2.INTER_AREA)
    c_small = np.empty((sh, sw), np.uint8)
    k_small = np.empty((sh, sw), np.uint8)
    seg.predict(small, progress=None if progress is None else (lambda n: progress(n * scale)),
                out=(c_small, None), code=k_small)
    del small
    for dst, src in ((classes, c_small), (code, k_small)):
        for r0 in range(0, h, 4096):   # in strips: no second full-size temporary
            r1 = min(h, r0 + 4096)
            rows = np.arange(r0, r1) // scale
            dst[r0:r1] = np.repeat(src[rows], scale, axis=1)[:, :w]


@dataclass
class TrackPlan:
    """A track to read, in the deskewed frame: edges ``xl``/``xr`` (pixel-index
    columns of fraction 0 and 1) and its curves (None for an uncalibrated read)."""

    index: int
    xl: float
    xr: float
    curves: list[CurveCalibration] | None
    source: str = "calibration"   # calibration | detected | snapped | whole-width
    drift_ref: float = 0.0        # layout drift (px) at the row where xl/xr hold

    def shift(self, layout, n_rows: int) -> np.ndarray | None:
        """Per-row offset (px, float [n_rows]) of the track's borders from ``xl``/``xr``
        on drifting paper (:meth:`Layout.drift_at`), or None when the paper is straight."""
        if not getattr(layout, "drift", None):
            return None
        return layout.drift_at(np.arange(n_rows, dtype=np.float64)) - self.drift_ref


@dataclass
class ReadPlan:
    """What to read and how rows map to depth (deskewed frame)."""

    tracks: list[TrackPlan]
    rows: tuple[int, int]
    calibrated: bool
    depth: DepthCalibration | None   # ties in deskewed rows (None: uncalibrated)
    notes: list[str] = field(default_factory=list)

    def depth_of_rows(self, rows: np.ndarray) -> np.ndarray:
        if self.depth is None:
            return np.asarray(rows, dtype=np.float64)
        return Calibration(depth=self.depth).depth_at(rows)

    @property
    def unit(self) -> str:
        return "PX" if self.depth is None else self.depth.unit


@dataclass
class Digitised:
    """Result of :func:`digitise`: the table, what the QC overlay draws, the plan."""

    table: DepthTable
    qc_curves: list[QCCurve]
    plan: ReadPlan
    warnings: list[str] = field(default_factory=list)


@dataclass
class ConvertResult:
    """What :func:`convert_file` did.

    ``outputs``: files written; ``curves``: (mnemonic, coverage of depth samples 0..1);
    ``timings``: stage -> seconds; ``calibrated``: read with a calibration.
    """

    scan: Path
    outputs: list[Path]
    curves: list[tuple[str, float]]
    warnings: list[str]
    timings: dict[str, float]
    calibrated: bool
    skew_deg: float = 0.0


# ---------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------

def _line_centres(layout, track: tuple[int, int]) -> tuple[float, float]:
    """Centres of a detected track's left and right border lines."""
    xl, xr = float(track[0]), float(track[1] - 1)
    for ln in layout.lines:
        if int(ln["x0"]) == track[0]:
            xl = float(ln["x"])
        if int(ln["x1"]) == track[1]:
            xr = float(ln["x"])
    return xl, xr


def _depth_column(cal: Calibration, width: int) -> float | None:
    """Stored column of the depth track's centre line implied by the calibrated track
    columns: the widest gap between tracks, else the margin left (or right) of them
    (None when no track has columns)."""
    xs = sorted(t.x for t in cal.tracks if t.x is not None)
    if not xs:
        return None
    gaps = [(b[0] - a[1], (a[1] + b[0]) / 2.0) for a, b in zip(xs, xs[1:])]
    gaps += [(xs[0][0], xs[0][0] / 2.0), (width - xs[-1][1], (xs[-1][1] + width) / 2.0)]
    inner = [g for g in gaps[:-2] if g[0] >= 0.03 * width]
    return (inner[0] if inner else max(gaps[-2:]))[1]


def _deskewed_rows_at_column(layout, rows: np.ndarray, col_desk: float) -> np.ndarray:
    """Deskewed rows of the stored points on stored ``rows`` that lie on the deskewed
    column ``col_desk`` (e.g. the depth track's centre line)."""
    c = np.full_like(rows, col_desk)
    for _ in range(3):   # fixed point: the stored column whose deskewed column is col_desk
        r_d, c_d = layout.to_deskewed(rows, c)
        c = c + (col_desk - c_d)
    return layout.to_deskewed(rows, c)[0]


def plan_read(calibration: Calibration | None, layout, shape: tuple[int, int],
              path: str | None = None) -> ReadPlan:
    """Map a calibration (stored pixels) into the deskewed frame, or plan an
    uncalibrated read of the detected tracks.

    Raises
    ------
    CalibrationError
        the calibration does not fit the image.
    LayoutError
        the calibration leaves track columns to detection and too few were found.
    """
    H, W = shape
    detected = [_line_centres(layout, t) for t in layout.tracks]
    notes: list[str] = []
    body = (max(0, int(layout.header_bottom)), min(H, int(layout.log_bottom) or H))
    if body[1] - body[0] < 16:
        body = (0, H)
    if calibration is None:
        tracks = [TrackPlan(i, xl, xr, None, "detected") for i, (xl, xr) in enumerate(detected)]
        if not tracks:
            tracks = [TrackPlan(0, 0.0, float(W - 1), None, "whole-width")]
            notes.append("no tracks detected: the whole width was read as one track")
        return ReadPlan(tracks, body, False, None, notes)

    calibration.validate_image(W, H, path)
    # calibration columns are read at the middle of the rows read (else the centre row)
    row_ref = (sum(calibration.depth.rows) / 2.0 if calibration.depth.rows is not None
               else (H - 1) / 2.0)

    def cols_desk(x) -> np.ndarray:
        x = np.asarray(x, np.float64)
        return layout.to_deskewed(np.full_like(x, row_ref), x)[1]

    # on drifting paper the calibrated columns hold at row_ref, the detected ones on average
    ref_drift = 0.0
    if getattr(layout, "drift", None):
        rdesk = layout.to_deskewed(np.array([row_ref]), np.array([W / 2.0]))[0]
        ref_drift = float(layout.drift_at(rdesk)[0])

    dcx = _depth_column(calibration, W)
    if dcx is not None:
        dcx = float(cols_desk([dcx])[0])
    elif layout.depth_track is not None:
        dcx = sum(layout.depth_track) / 2.0
    else:
        dcx = W / 2.0
    tie_rows = np.array([t.row for t in calibration.depth.ties], np.float64)
    r_desk = _deskewed_rows_at_column(layout, tie_rows, dcx)
    if np.any(np.diff(r_desk) <= 0):
        raise CalibrationError("depth ties are too close together to survive deskewing: "
                               "use ties further apart", path)
    ties = [DepthTie(float(r), t.depth) for r, t in zip(r_desk, calibration.depth.ties)]
    depth = DepthCalibration(unit=calibration.depth.unit, ties=ties)
    if calibration.depth.rows is not None:
        rr = np.array(calibration.depth.rows, np.float64)
        rd = layout.to_deskewed(rr, np.full_like(rr, W / 2.0))[0]
        rows = (max(0, int(math.floor(rd[0]))), min(H, int(math.ceil(rd[1]))))
    else:
        rows = body
    tracks = []
    for i, tc in enumerate(calibration.tracks):
        if not tc.curves:
            continue
        if tc.x is None:
            if i >= len(detected):
                raise LayoutError(
                    f"tracks[{i}] has no x and only {len(detected)} track(s) were detected "
                    f"on the scan: give tracks[{i}].x = [left, right] pixel columns", path)
            xl, xr = detected[i]
            src = "detected"
        else:
            xl, xr = (float(v) for v in cols_desk(tc.x))
            src, ref = "calibration", ref_drift
            tol = max(SNAP_PX, 0.02 * (xr - xl))
            al, ar = xl - ref, xr - ref      # where the calibrated borders run on average
            near = [d for d in detected if abs(d[0] - al) <= tol and abs(d[1] - ar) <= tol]
            if near:
                xl, xr = min(near, key=lambda d: abs(d[0] - al) + abs(d[1] - ar))
                src, ref = "snapped", 0.0
        tracks.append(TrackPlan(i, xl, xr, tc.curves, src, ref))
    return ReadPlan(tracks, rows, True, depth, notes)


#: "nice" horizontal grid spacings (depth units) the grid refinement snaps to
NICE_SPACINGS = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0)
#: a row is on a horizontal grid line when this share of the track columns is ink
GRID_ROW_FILL = 0.5
#: rows either side of a grid line's centre where track-wide runs are taken for it
GRID_ROW_PAD = 2
#: rows inked across at least this share of a track hold a heavy line (thick or tilted
#: ones too, which the grid-line test leaves out): a wide run there is the curve merged
#: with the line and is settled (:func:`logdigit.vectorise.settle_wide_runs`)
HEAVY_ROW_FILL = 0.4


def row_ink_counts(grey: np.ndarray, tracks: list[TrackPlan], rows: tuple[int, int],
                   threshold: int, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Ink pixels (darker than ``threshold``) per row of ``rows`` in each track's columns
    (borders left out; no tracks: every column), in one pass over the scan: (int64
    [max(1, len(tracks)), rows[1] - rows[0]] counts, int64 [same first axis] columns
    counted)."""
    H, W = grey.shape
    top, bottom = rows
    spans = ([(max(0, int(t.xl) + 3), min(W, int(t.xr) - 2)) for t in tracks]
             if tracks else [(0, W)])
    ncols = np.array([max(0, c1 - c0) for c0, c1 in spans], np.int64)
    counts = np.zeros((len(spans), max(0, bottom - top)), np.int64)
    for r0 in range(top, bottom, block):
        r1 = min(bottom, r0 + block)
        for k, (c0, c1) in enumerate(spans):
            if c1 > c0:
                counts[k, r0 - top:r1 - top] = (grey[r0:r1, c0:c1] < threshold).sum(1)
    return counts, ncols


def row_ink_fill(grey: np.ndarray, tracks: list[TrackPlan], rows: tuple[int, int],
                 threshold: int, block: int = 8192,
                 counts: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """float [rows[1] - rows[0]]: share of the tracks' columns (borders left out) that
    are ink (darker than ``threshold``) on each row of ``rows``. ``counts``: the
    :func:`row_ink_counts` of these tracks and rows when already made."""
    c, n = counts if counts is not None else row_ink_counts(grey, tracks, rows, threshold, block)
    total = int(n.sum())
    return c.sum(0) / total if total else np.zeros(c.shape[1])


def grid_line_rows(grey: np.ndarray, tracks: list[TrackPlan], rows: tuple[int, int],
                   threshold: int, block: int = 8192, fill: np.ndarray | None = None
                   ) -> np.ndarray:
    """Sub-pixel centres (deskewed rows) of horizontal lines running across the tracks:
    rows where at least GRID_ROW_FILL of the track columns are ink, grouped, weighted.
    ``fill``: :func:`row_ink_fill` of these rows when already made."""
    top, bottom = rows
    if fill is None:
        fill = row_ink_fill(grey, tracks, rows, threshold, block)
    if not len(fill):
        return np.zeros(0)
    a, b = true_stretches(fill >= GRID_ROW_FILL)
    keep = (b - a) <= 6                     # thicker: a band or a block of text, not a line
    out = []
    for s0, s1 in zip(a[keep], b[keep]):
        w = fill[s0:s1]
        out.append(top + float((np.arange(s0, s1) * w).sum() / w.sum()))
    return np.array(out)


def periodic_lines(lines: np.ndarray, tol: float = 1.5) -> np.ndarray:
    """The horizontal lines (row centres, increasing) that sit on the grid's lattice: a
    line one spacing (the median gap) away, above or below, within ``tol`` rows. A
    curve sweeping across the track (one-off) is not kept; with too few lines to tell,
    all are kept."""
    if len(lines) < 4:
        return lines
    sp = float(np.median(np.diff(lines)))
    ok = np.zeros(len(lines), bool)
    for sign in (-1.0, 1.0):      # nearest line to y +- sp (lines are sorted)
        want = lines + sign * sp
        j = np.clip(np.searchsorted(lines, want), 1, len(lines) - 1)
        near = np.minimum(np.abs(lines[j] - want), np.abs(lines[j - 1] - want))
        ok |= near <= tol
    return lines[ok]


#: vertical grid lines: cleared when their band (detected width + this on each side) ...
VLINE_PAD = 2
#: ... holds the only curve pixels of the row within this many px outside it
VLINE_CLEAR_PX = 2
#: only lines present on at least this share of the rows are cleared
VLINE_MIN_PRESENCE = 0.6


def clear_vertical_lines(classes: np.ndarray, code: np.ndarray | None, layout,
                         tracks: list[TrackPlan], rows: tuple[int, int],
                         p_min: float = 0.35, grey: np.ndarray | None = None) -> int:
    """Remove vertical grid lines that the network took for curve, IN PLACE.

    For each vertical line the layout found inside or on the border of a track
    (``layout.lines``, present on at least ``VLINE_MIN_PRESENCE`` of the rows; following
    the paper's drift), the
    line's band (width + ``VLINE_PAD`` each side) is set to background on every row
    where no curve pixel lies within ``VLINE_CLEAR_PX`` outside the band: there the
    only "curve" is the line itself. A curve crossing the line or running along it
    keeps its pixels (they reach past the band). Without this, heavy division lines on
    paper scans pull the tracker into vertical staircases, and a broken track border
    that the network calls dashed draws a curve onto it in its own dash gaps.

    With the deskewed scan ``grey`` (uint8 [H, W]), a row is cleared only when its ink in
    the band is no wider than the line itself (+1 px): a curve running along the line,
    or crossing it inside the band, adds ink there and keeps its pixels.

    classes : uint8 [H, W] class ids (deskewed); code : uint8 [H, W] curve code or None
    (its P(curve) is zeroed on the cleared pixels, and it is what counts as a curve
    pixel when given: P >= ``p_min``). Returns the number of line bands cleared.
    """
    H, W = classes.shape
    top, bottom = rows
    if bottom <= top:
        return 0
    r = np.arange(top, bottom)
    rr = r[:, None]
    drift = np.rint(layout.drift_at(r)).astype(np.int64)   # zeros on straight paper
    p_lvl = code_p_level(p_min)
    n = 0
    for ln in layout.lines:
        if float(ln.get("presence", 0.0)) < VLINE_MIN_PRESENCE:
            continue
        x = float(ln["x"])
        if not any(tp.xl - VLINE_PAD - 2 <= x <= tp.xr + VLINE_PAD + 2 for tp in tracks):
            continue   # a line outside every track read (a border or rule of another part)
        b0 = int(ln["x0"]) - VLINE_PAD
        b1 = int(ln["x1"]) + VLINE_PAD          # band [b0, b1) at row_ref
        lo = b0 - VLINE_CLEAR_PX
        c = np.arange(lo, b1 + VLINE_CLEAR_PX)[None, :] + drift[:, None]
        if c.min() < 0 or c.max() >= W:
            continue
        band = slice(b0 - lo, b1 - lo)          # the band's columns within c
        curve = (classes[rr, c] > 0) if code is None else ((code[rr, c] & CODE_P_MASK) >= p_lvl)
        outside = curve[:, :band.start].any(1) | curve[:, band.stop:].any(1)
        clear = ~outside & curve[:, band].any(1)
        if grey is not None:   # nothing inked in the band but the line
            ink = (grey[rr, c[:, band]] < layout.threshold).sum(1)
            clear &= ink <= int(ln["x1"]) - int(ln["x0"]) + 1
        if not clear.any():
            continue
        cr = rr[clear]
        cb = c[clear][:, band]
        classes[cr, cb] = 0
        if code is not None:
            code[cr, cb] &= np.uint8(0xFF ^ CODE_P_MASK)
        n += 1
    return n


def refine_depth(grey: np.ndarray, plan: ReadPlan, threshold: int,
                 lines: np.ndarray | None = None) -> tuple[DepthCalibration, str]:
    """Refine the ties' depth scale with the horizontal depth grid.

    Grid lines lie on multiples of a round depth spacing; each detected line is matched
    to the nearest multiple under the ties' mapping, and depth is fitted linearly to
    all matched lines (outliers dropped). The fit is used only when it agrees with the
    ties (within a quarter grid spacing) and fits the lines to 0.5 row RMS; otherwise
    the ties are kept. Returns (depth calibration, a note saying what was done).
    ``lines``: the :func:`grid_line_rows` of ``plan`` when already found.
    """
    dep = plan.depth
    if lines is None:
        lines = grid_line_rows(grey, plan.tracks, plan.rows, threshold)
    if len(lines) < 6:
        return dep, "depth from the ties (too few horizontal grid lines to refine)"
    tr = np.array([t.row for t in dep.ties])
    td = np.array([t.depth for t in dep.ties])
    rpu = (tr[-1] - tr[0]) / (td[-1] - td[0])          # rows per depth unit
    sp_rows = float(np.median(np.diff(lines)))
    sp = sp_rows / rpu
    nice = min(NICE_SPACINGS, key=lambda v: abs(math.log(v / sp)))
    if abs(math.log(nice / sp)) > 0.08:
        return dep, f"depth from the ties (grid spacing {sp:.3g} {dep.unit} is not a round value)"
    d_coarse = Calibration(depth=dep).depth_at(lines)
    k = np.round(d_coarse / nice)
    resid = (d_coarse - k * nice) * rpu                   # rows
    ok = np.abs(resid) < 0.25 * nice * rpu
    for _ in range(3):
        if ok.sum() < 6:
            return dep, "depth from the ties (grid lines do not match the ties)"
        a, b = np.polyfit(lines[ok], k[ok] * nice, 1)
        res_rows = (np.polyval([a, b], lines) - k * nice) / a
        ok = ok & (np.abs(res_rows) < 1.0)
    rms = float(np.sqrt(np.mean(res_rows[ok] ** 2)))
    tie_err = float(np.max(np.abs(np.polyval([a, b], tr) - td)) * rpu)
    if rms > 0.5 or tie_err > 0.25 * nice * rpu:
        return dep, (f"depth from the ties (grid fit RMS {rms:.2f} rows, {tie_err:.2f} rows "
                     "from the ties)")
    H0, H1 = plan.rows
    ties = [DepthTie(float(H0), float(np.polyval([a, b], H0))),
            DepthTie(float(H1), float(np.polyval([a, b], H1)))]
    return (DepthCalibration(unit=dep.unit, ties=ties, rows=dep.rows),
            f"depth refined to {int(ok.sum())} horizontal grid lines every {nice:g} {dep.unit} "
            f"(RMS {rms:.2f} rows; ties within {tie_err:.2f} rows)")


# ---------------------------------------------------------------------------
# digitising (pure: masks in, table out)
# ---------------------------------------------------------------------------

def _colour_masks(rgb: np.ndarray, classes: np.ndarray, cid: int, colours: list[str],
                  rows: tuple[int, int], win: tuple[int, int], block: int = 4096, *,
                  code: np.ndarray | None = None, allowed: frozenset[int] | None = None,
                  p_min: float = 0.5) -> list[np.ndarray]:
    """Per curve: the pixels of class ``cid`` (:func:`style_mask`) whose colour is
    nearest that curve's colour."""
    top, bottom = rows
    c0, c1 = win
    ref = np.array([NAMED_COLOURS[c] for c in colours], np.int32)   # [K, 3]
    out = [np.zeros((bottom - top, c1 - c0), bool) for _ in colours]
    for r0 in range(top, bottom, block):
        r1 = min(bottom, r0 + block)
        px = rgb[r0:r1, c0:c1].astype(np.int32)
        d = ((px[:, :, None, :] - ref[None, None]) ** 2).sum(-1)     # [h, w, K]
        near = d.argmin(-1)
        mine = style_mask(classes[r0:r1, c0:c1], cid,
                          None if code is None else code[r0:r1, c0:c1], allowed, p_min)
        for k in range(len(colours)):
            out[k][r0 - top:r1 - top] = mine & (near == k)
    return out


def digitise(classes: np.ndarray, calibration: Calibration | None, layout, *,
             confidence: np.ndarray | None = None, rgb: np.ndarray | None = None,
             step: float | None = None, binary: bool = False,
             tracker: TrackerConfig | None = None, path: str | None = None,
             plan: ReadPlan | None = None, grey: np.ndarray | None = None,
             code: np.ndarray | None = None) -> Digitised:
    """Class masks -> curves on a regular depth step.

    Parameters
    ----------
    classes : uint8 [H, W]
        Class ids of the **deskewed** scan (CLASS_MAP, or BINARY_CLASS_MAP when
        ``binary``).
    calibration : Calibration or None
        Stored-pixel calibration (None: uncalibrated read of the detected tracks).
    layout : logdigit.layout.Layout
        Skew, detected tracks and log body of the scan.
    confidence : uint8 [H, W] or None
        Per-pixel confidence (255 = sure).
    rgb : uint8 [H, W, 3] or None
        Deskewed colour scan: curves of one style with ``color`` keys are split by it.
    step : float or None
        Output depth step (calibration unit; rows when uncalibrated); default
        DEFAULT_STEP by unit, 1 row uncalibrated.
    binary : bool
        Model without styles: all curves of a track are read from class 1.
    tracker : TrackerConfig or None
    path : str or None
        Calibration file named in errors.
    plan : ReadPlan or None
        A plan from :func:`plan_read` (made here when None).
    grey : uint8 [H, W] or None
        The deskewed scan: when given, the depth scale is refined to the horizontal
        grid (:func:`refine_depth`).
    code : uint8 [H, W] or None
        Curve code of the segmenter (:func:`logdigit.segment.logits_to_codes`). On
        calibrated tracks the pixels read for a style are then those likely curve
        (``tracker.curve_p_min``) whose best style *among the track's listed styles* is
        it (:func:`logdigit.vectorise.style_mask`); uncalibrated reads use the argmax.
        Also the confidence when ``confidence`` is None.

    Returns
    -------
    Digitised
    """
    H, W = classes.shape
    cfg = tracker or TrackerConfig()
    plan = plan or plan_read(calibration, layout, (H, W), path)
    warnings = list(plan.notes)
    top, bottom = plan.rows
    depth_note = "depth from the ties"
    threshold = getattr(layout, "threshold", 128)
    line_rows = ink_rows = ink = None
    if grey is not None:   # one pass over the scan: grid lines (depth, wide runs), heavy rows
        ink = row_ink_counts(grey, plan.tracks, plan.rows, threshold)
        lines = grid_line_rows(grey, plan.tracks, plan.rows, threshold,
                               fill=row_ink_fill(grey, plan.tracks, plan.rows, threshold,
                                                 counts=ink))
        if plan.calibrated:
            plan.depth, depth_note = refine_depth(grey, plan, threshold, lines=lines)
        line_rows = np.zeros(H, bool)   # wide runs are grid lines only on the grid's rows
        for y in periodic_lines(lines):
            line_rows[max(0, int(math.floor(y)) - GRID_ROW_PAD):
                      min(H, int(math.ceil(y)) + GRID_ROW_PAD + 1)] = True
    vlines = [(float(ln["x"]), float(ln.get("width", 1.0)))
              for ln in getattr(layout, "lines", []) or []
              if float(ln.get("presence", 0.0)) >= VLINE_MIN_PRESENCE]
    curves_out: list[tuple[str, str, str, np.ndarray, np.ndarray, CurveCalibration | None]] = []
    qc: list[QCCurve] = []
    for t_i, tp in enumerate(plan.tracks):
        shift = tp.shift(layout, H)
        if shift is not None and not np.any(np.abs(shift[top:bottom]) >= 0.5):
            shift = None
        if ink is not None:   # + heavy, thick or tilted lines across this track
            ink_rows = line_rows.copy()
            counts, ncols = ink
            heavy = np.flatnonzero(counts[t_i] / max(1, ncols[t_i]) >= HEAVY_ROW_FILL) + top
            for d in range(-GRID_ROW_PAD, GRID_ROW_PAD + 1):
                ink_rows[np.clip(heavy + d, 0, H - 1)] = True
        if tp.curves is None:   # uncalibrated: every style present
            seen: dict[str, int] = {}
            read = _uncalibrated_traces(classes, code, tp, plan.rows, binary, cfg, confidence,
                                        shift, line_rows, ink_rows)
            read = _drop_grid_reads(read, tp, plan.rows, vlines, ink_rows, binary, warnings)
            read = _drop_same_ink_reads(read, grey, threshold, tp, shift, plan.rows, ink_rows,
                                        binary, warnings)
            filled = _follow_ink([tr for _, tr in read], grey, threshold, tp, shift, layout, cfg)
            for (cid, _), tr in zip(read, filled):
                name = f"T{tp.index + 1}_{'CURVE' if binary else CLASS_TO_STYLE[cid].upper()}"
                seen[name] = seen.get(name, 0) + 1
                if seen[name] > 1:   # a second curve of the style: T2_SOLID_2
                    name = f"{name}_{seen[name]}"
                _warn_jumpy(warnings, name, tr)
                curves_out.append((name, "FRAC", f"track {tp.index + 1} "
                                   f"{'curve' if binary else CLASS_TO_STYLE[cid]}, fraction of "
                                   "track width", tr.frac, tr.confidence, None))
                qc.append(QCCurve(name, tr.frac, tr.observed, tp.xl, tp.xr, shift))
            continue
        groups: dict[int, list[CurveCalibration]] = {}
        for c in tp.curves:
            groups.setdefault(1 if binary else STYLE_TO_CLASS[c.style], []).append(c)
        allowed = frozenset(groups) if code is not None else None
        group_masks: dict[int, list[np.ndarray] | None] = {}
        for cid, cs in groups.items():
            masks = None
            if len(cs) > 1 or binary:
                coloured = rgb is not None and all(c.color for c in cs) and len(cs) > 1
                if coloured:
                    unknown = [c.color for c in cs if c.color.lower() not in NAMED_COLOURS]
                    if unknown:
                        raise CalibrationError(
                            f"color {unknown[0]!r} is unknown: use one of "
                            f"{', '.join(sorted(NAMED_COLOURS))}", path)
                    masks = _colour_masks(
                        rgb, classes, cid, [c.color.lower() for c in cs], plan.rows,
                        track_window(tp.xl, tp.xr, W, None if shift is None
                                     else shift[top:bottom]),
                        code=code, allowed=allowed, p_min=cfg.curve_p_min)
                elif len(cs) > 1:
                    warnings.append(
                        f"track {tp.index + 1}: {len(cs)} {cs[0].style if not binary else ''} "
                        f"curves ({', '.join(c.mnemonic for c in cs)}) not told apart by "
                        "colour (grey scan or no color keys): assigned in reading order; "
                        "check the QC overlay")
            group_masks[cid] = masks
        joint: dict[int, list] = {}
        if code is not None and cfg.joint_styles and all(m is None for m in group_masks.values()):
            flat = [(cid, c) for cid, cs in groups.items() for c in cs]
            got = trace_track(code, [(cid, c.wrap) for cid, c in flat], tp.xl, tp.xr, cfg,
                              rows=plan.rows, confidence=confidence, shift=shift,
                              line_rows=line_rows, ink_rows=ink_rows)
            got = _follow_ink(got, grey, threshold, tp, shift, layout, cfg)
            for (cid, _), tr in zip(flat, got):
                joint.setdefault(cid, []).append(tr)
        for cid, cs in groups.items():
            if cid in joint:
                traces = joint[cid]
            else:
                traces = trace_curves(classes, cid, tp.xl, tp.xr, len(cs), cfg,
                                      wrap=[c.wrap for c in cs], confidence=confidence,
                                      rows=plan.rows, masks=group_masks[cid], code=code,
                                      allowed=allowed, shift=shift, line_rows=line_rows,
                                      ink_rows=ink_rows)
                traces = _follow_ink(traces, grey, threshold, tp, shift, layout, cfg)
            for c, tr in zip(cs, traces):
                if tr is None:
                    warnings.append(f"{c.mnemonic}: no {c.style} curve found in track "
                                    f"{tp.index + 1}: written as NULL")
                    frac = np.full(H, np.nan)
                    conf = np.zeros(H)
                    obs = np.zeros(H, bool)
                else:
                    frac, conf, obs = tr.frac, tr.confidence, tr.observed
                    _warn_jumpy(warnings, c.mnemonic, tr)
                    if c.wrap and obs.any():
                        off = float(np.mean(np.floor(frac[obs]) != 0))
                        if off > AMBIGUOUS_BACKUP_SHARE:
                            warnings.append(
                                f"{c.mnemonic}: read on a backup trace on {100 * off:.0f}% of "
                                "its rows: which trace is the main one cannot be told from "
                                "the picture (values may be one track width off); check "
                                "the QC overlay")
                descr = (f"track {tp.index + 1} {c.style}, {c.left:g}..{c.right:g} "
                         f"{c.scale}{', wrapped' if c.wrap else ''}")
                curves_out.append((c.mnemonic, c.unit, descr, frac, conf, c))
                qc.append(QCCurve(c.mnemonic, frac, obs, tp.xl, tp.xr, shift))

    # resample to the regular depth step
    rows_idx = np.arange(H, dtype=np.float64)
    unit, step = plan.unit, output_step(plan, step)
    if plan.calibrated:
        d_all = plan.depth_of_rows(rows_idx)
        grid = depth_grid(float(d_all[top]), float(d_all[bottom - 1]), step)
    else:
        d_all = rows_idx
        grid = depth_grid(float(top), float(bottom - 1), step)
    columns = []
    for mnem, cunit, descr, frac, conf, c in curves_out:
        fr = resample_rows(d_all, frac, grid)
        cf = resample_rows(d_all, conf, grid)
        vals = fr if c is None else _values(fr, c)
        cf = np.where(np.isfinite(vals), np.nan_to_num(cf), 0.0)
        columns.append(CurveColumn(mnem, cunit, vals, cf, descr))
    table = DepthTable(depth=grid, depth_unit=unit, step=step, curves=columns)
    if plan.calibrated:
        table.notes.append(depth_note)
    else:
        table.notes.append("UNCALIBRATED: no calibration was given; DEPT is the (deskewed) "
                           "pixel row and curves are fractions of the track width "
                           "(0 = left edge, 1 = right edge)")
    for col in columns if plan.calibrated else []:
        if col.coverage < 0.5:
            warnings.append(f"{col.mnemonic}: read on only {100 * col.coverage:.0f}% of the "
                            "depth samples")
    return Digitised(table, qc, plan, warnings)


def _follow_ink(traces: list, grey: np.ndarray | None, threshold: int, tp: TrackPlan,
                shift: np.ndarray | None, layout, cfg: TrackerConfig) -> list:
    """The traces of one track (CurveTrace or None) with the long gaps that one line of
    ink spans filled (:func:`logdigit.vectorise.follow_ink_gaps`; each curve's others
    are the rest of ``traces``); as they are without ``grey`` or with
    ``cfg.ink_follow`` off."""
    if grey is None or not cfg.ink_follow:
        return traces
    vlines = np.array([float(ln["x"]) + tp.drift_ref for ln in getattr(layout, "lines", []) or []])
    out = list(traces)
    for k, tr in enumerate(traces):
        if tr is None:
            continue
        others = [o.frac for j, o in enumerate(out) if j != k and o is not None]
        out[k] = follow_ink_gaps(tr, grey, threshold, tp.xl, tp.xr, shift, cfg.max_gap_px,
                                 others, vlines)
    return out


def _warn_jumpy(warnings: list[str], name: str, tr) -> None:
    """Flag a read that jumps across the track too often (:data:`JUMPY_SHARE`)."""
    if int(tr.observed.sum()) < MIN_SHARED_ROWS:
        return
    share = _jump_share(tr)
    if share > JUMPY_SHARE:
        warnings.append(f"{name}: jumps over a tenth of the track width on {100 * share:.1f}% "
                        "of its steps: it may hop between curves; check the QC overlay")


def _read_share(tr, rows: tuple[int, int]) -> float:
    return float(np.isfinite(tr.frac[rows[0]:rows[1]]).mean()) if tr is not None else 0.0


def _observed_share(tr, rows: tuple[int, int]) -> float:
    return float(tr.observed[rows[0]:rows[1]].mean()) if tr is not None else 0.0


def _jump_share(tr, step: float = 0.1) -> float:
    """Share of a trace's steps between consecutive observed rows longer than ``step``
    (share of the track width)."""
    x = tr.frac[tr.observed]
    return float((np.abs(np.diff(x)) > step).mean()) if len(x) > 1 else 1.0


def _median_gap(a, b) -> float | None:
    """Median distance (share of the track width) between two traces on the rows both are
    observed; None when they share fewer than :data:`MIN_SHARED_ROWS`."""
    both = a.observed & b.observed
    if int(both.sum()) < MIN_SHARED_ROWS:
        return None
    return float(np.median(np.abs(a.frac[both] - b.frac[both])))


def _interleaved_gap(a, b) -> float | None:
    """Median distance (share of the track width) between two traces that take turns:
    on the rows one is observed and the other is only bridged (a curve the network
    labels with one style, then another, in pieces shorter than the bridge). None when
    such rows number fewer than :data:`MIN_SHARED_ROWS` on either side."""
    fa, fb = np.isfinite(a.frac), np.isfinite(b.frac)
    ra, rb = a.observed & fb & ~b.observed, b.observed & fa & ~a.observed
    if int(ra.sum()) < MIN_SHARED_ROWS or int(rb.sum()) < MIN_SHARED_ROWS:
        return None
    both = ra | rb
    return float(np.median(np.abs(a.frac[both] - b.frac[both])))


def _apart(a, b, tol: float) -> bool:
    """Two traces run apart: their :func:`_median_gap` is known and over ``tol``."""
    gap = _median_gap(a, b)
    return gap is not None and gap > tol


def _uncalibrated_traces(classes, code, tp: TrackPlan, rows: tuple[int, int], binary: bool,
                         cfg: TrackerConfig, confidence, shift, line_rows,
                         ink_rows=None) -> list[tuple[int, Any]]:
    """(class id, CurveTrace) of the curves of a track read without a calibration.

    A style counts as present when its argmax pixels alone carry a curve over
    ``MIN_UNCALIBRATED_COVERAGE`` of the rows. With the curve code, present styles whose
    argmax traces run within ``cfg.same_curve_share`` of the track width of each other
    on the rows both are read (:func:`same_curve_groups`) are taken for ONE curve that
    the network labelled several ways along its length (noisy paper); the track is then
    read jointly (:func:`trace_track`), each curve over the pixels of all its styles, and
    named by its style with most evidence. Apart, the styles stay separate curves.

    Each style may add a second curve (up to :data:`MAX_UNCALIBRATED_PER_STYLE`), read
    from the runs the first left, when it is observed on :data:`MIN_EXTRA_OBSERVED` of
    the rows, runs apart from the first and jumps on at most
    :data:`MAX_EXTRA_JUMP_SHARE` of its steps.
    """
    present = []
    for cid in ([1] if binary else sorted(CLASS_TO_STYLE)):
        first, *more = trace_curves(classes, cid, tp.xl, tp.xr, MAX_UNCALIBRATED_PER_STYLE, cfg,
                                    confidence=confidence, rows=rows, shift=shift,
                                    line_rows=line_rows, code=code, ink_rows=ink_rows)
        if _read_share(first, rows) < MIN_UNCALIBRATED_COVERAGE:
            continue
        present.append((cid, first))
        for tr in more:   # a second curve of the style: its own line, seen on much of the log
            if (_observed_share(tr, rows) >= MIN_EXTRA_OBSERVED
                    and _apart(tr, first, cfg.same_curve_share)
                    and _jump_share(tr) <= MAX_EXTRA_JUMP_SHARE):
                present.append((cid, tr))
    if code is None or binary or not cfg.joint_styles or len(present) < 2:
        return present
    groups = same_curve_groups([tr for _, tr in present], cfg.same_curve_share,
                               [cid for cid, _ in present])
    if all(len(g) == 1 for g in groups):
        return present
    curves = [(tuple(present[i][0] for i in g), False) for g in groups]
    got = trace_track(code, curves, tp.xl, tp.xr, cfg, rows=rows, confidence=confidence,
                      shift=shift, line_rows=line_rows, ink_rows=ink_rows)
    out = []
    for g, tr in zip(groups, got):
        if _read_share(tr, rows) >= MIN_UNCALIBRATED_COVERAGE:
            main = max(g, key=lambda i: int(present[i][1].observed.sum()))
            out.append((present[main][0], tr))
    return out


def grid_free_share(tr, tp: TrackPlan, rows: tuple[int, int],
                    vlines: list[tuple[float, float]], line_rows: np.ndarray | None) -> float:
    """How much of trace ``tr`` (CurveTrace) is seen away from the grid, against chance.

    Off the grid: not on a row of ``line_rows`` (bool [H], horizontal lines and heavy
    rows; None: none known) and farther than half the width + ``VLINE_PAD`` + 1 px from
    every vertical line of ``vlines`` ((x, width) px in the deskewed frame at zero
    drift; the track's ``xl``/``xr`` hold at ``tp.drift_ref``, so the trace is compared
    there and drift cancels). Returns the share of ``rows`` on which the trace is
    observed off the grid, over the share of the track (columns x rows) that is off it:
    about 1 for a curve that crosses the grid as it comes, 0 for one seen only on its
    lines, whatever the grid's density (a log-scale track's lines crowd its decades)."""
    top, bottom = rows
    if bottom <= top:
        return 0.0
    free_rows = 1.0 if line_rows is None else 1.0 - float(line_rows[top:bottom].mean())
    cols = np.arange(math.floor(tp.xl), math.ceil(tp.xr) + 1, dtype=np.float64) - tp.drift_ref
    obs = tr.observed[top:bottom].copy()
    if line_rows is not None:
        obs &= ~line_rows[top:bottom]
    x = tp.xl - tp.drift_ref + tr.frac[top:bottom][obs] * (tp.xr - tp.xl)
    near, near_cols = np.zeros(len(x), bool), np.zeros(len(cols), bool)
    for lx, w in vlines:
        reach = w / 2 + VLINE_PAD + 1
        near |= np.abs(x - lx) <= reach
        near_cols |= np.abs(cols - lx) <= reach
    obs[np.flatnonzero(obs)[near]] = False
    chance = free_rows * ((1.0 - float(near_cols.mean())) if len(cols) else 1.0)
    return float(obs.sum() / (bottom - top)) / max(chance, 1e-3)


def _style_name(cid: int, binary: bool) -> str:
    """The style of class ``cid`` in words ("curve" for a model without styles)."""
    return "curve" if binary else CLASS_TO_STYLE[cid]


def _drop_grid_reads(read: list, tp: TrackPlan, rows: tuple[int, int],
                     vlines: list[tuple[float, float]], line_rows: np.ndarray | None,
                     binary: bool, warnings: list[str]) -> list:
    """``read`` ((class id, CurveTrace) of an uncalibrated track) without the curves seen
    almost only on grid lines (:data:`MIN_GRID_FREE_SHARE`), each dropped one named in
    ``warnings``."""
    keep = []
    for cid, tr in read:
        share = grid_free_share(tr, tp, rows, vlines, line_rows)
        if share >= MIN_GRID_FREE_SHARE:
            keep.append((cid, tr))
            continue
        style = _style_name(cid, binary)
        warnings.append(f"track {tp.index + 1}: a {style} read left out: seen off the grid "
                        f"lines {share:.3f}x as often as a curve crossing the grid by chance "
                        "(the network took grid for curve); a calibration naming the curve "
                        "reads it anyway")
    return keep


def same_ink_share(a, b, grey: np.ndarray, threshold: int, tp: TrackPlan,
                   shift: np.ndarray | None, rows: tuple[int, int],
                   line_rows: np.ndarray | None) -> float | None:
    """Share of the rows where traces ``a`` and ``b`` (CurveTrace) are both observed, off
    ``line_rows`` (bool [H]) and at least :data:`SAME_INK_MIN_PX` apart, on which the scan
    ``grey`` (uint8 [H, W], deskewed) is ink all the way from one's position to the
    other's (in the row or a row beside it, on :data:`SAME_INK_FILL` of the columns), and
    that ink is a stroke, with paper within
    :data:`SAME_INK_STROKE_PX` rows above and below it half-way: one pen stroke, so one
    curve read twice. None below :data:`MIN_SHARED_ROWS` such rows."""
    top, bottom = rows
    both = a.observed[top:bottom] & b.observed[top:bottom]
    if line_rows is not None:
        both &= ~line_rows[top:bottom]
    r = np.flatnonzero(both) + top
    if len(r) < MIN_SHARED_ROWS:
        return None
    H, W = grey.shape
    w = tp.xr - tp.xl
    apart = np.abs(a.frac[r] - b.frac[r]) * w >= SAME_INK_MIN_PX
    r = r[apart]
    if len(r) < MIN_SHARED_ROWS:
        return None
    off = 0.0 if shift is None else shift[r]
    xa = tp.xl + a.frac[r] * w + off
    xb = tp.xl + b.frac[r] * w + off
    lo = np.clip(np.rint(np.minimum(xa, xb)).astype(np.int64), 0, W - 1)
    hi = np.clip(np.rint(np.maximum(xa, xb)).astype(np.int64), 0, W - 1) + 1
    joined = 0
    k = SAME_INK_STROKE_PX
    for y, c0, c1 in zip(r.tolist(), lo.tolist(), hi.tolist()):
        ink = grey[max(0, y - 1):min(H, y + 2), c0:c1] < threshold
        if ink.mean(1).max() < SAME_INK_FILL:   # one row inked (nearly) right across
            continue
        col = grey[max(0, y - k):min(H, y + k + 1), (c0 + c1) // 2] < threshold
        mid = y - max(0, y - k)
        if not (col[:mid].all() or col[mid + 1:].all()):   # paper above and below: a stroke
            joined += 1
    return joined / len(r)


def _drop_same_ink_reads(read: list, grey: np.ndarray | None, threshold: int, tp: TrackPlan,
                         shift: np.ndarray | None, rows: tuple[int, int],
                         line_rows: np.ndarray | None, binary: bool,
                         warnings: list[str]) -> list:
    """``read`` ((class id, CurveTrace) of an uncalibrated track) without the reads that
    are pieces of a fuller one: joined to it by one pen stroke on
    :data:`SAME_INK_SHARE` of their shared rows (:func:`same_ink_share`; the network
    labelled part of a wide or fast stroke with another style). Each dropped read is
    named in ``warnings``; as it is without the scan."""
    if grey is None or len(read) < 2:
        return read
    order = sorted(range(len(read)), key=lambda k: -int(read[k][1].observed.sum()))
    kept: list[int] = []
    for k in order:
        cid, tr = read[k]
        host = None
        for m in kept:
            share = same_ink_share(read[m][1], tr, grey, threshold, tp, shift, rows, line_rows)
            if share is not None and share >= SAME_INK_SHARE:
                host = (m, share)
                break
        if host is None:
            kept.append(k)
            continue
        style, other = _style_name(cid, binary), _style_name(read[host[0]][0], binary)
        warnings.append(f"track {tp.index + 1}: a {style} read left out: on {100 * host[1]:.0f}% "
                        f"of the rows one pen stroke joins it to the {other} curve, "
                        f"of which it is pieces the network labelled {style}")
    return [read[k] for k in sorted(kept)]


def same_curve_groups(traces: list, tol: float, styles: list[int] | None = None
                      ) -> list[list[int]]:
    """Indices of ``traces`` (CurveTrace) grouped into curves: two traces are one curve
    when, on the rows both are observed (at least ``MIN_SHARED_ROWS``), their positions
    differ by at most ``tol`` (share of the track width) at the median, or, when they are
    seldom observed together, on the rows where one is observed and the other bridged
    (:func:`_interleaved_gap`: one curve whose style flickers); groups are the unions of
    such pairs, nearest pairs first.

    ``styles`` (class id per trace): a group holds at most one trace of each style. Two
    curves of one style were read apart on purpose, and a fragment of a third style
    running near both must not chain them into one."""
    n = len(traces)
    sty = list(range(n)) if styles is None else list(styles)
    parent = list(range(n))
    members = {i: {sty[i]} for i in range(n)}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            gap = _median_gap(traces[i], traces[j])
            if gap is None:
                gap = _interleaved_gap(traces[i], traces[j])
            if gap is not None and gap <= tol:
                pairs.append((gap, i, j))
    for _, i, j in sorted(pairs):
        ri, rj = root(i), root(j)
        if ri != rj and not (members[ri] & members[rj]):
            parent[rj] = ri
            members[ri] |= members.pop(rj)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())


def _values(frac: np.ndarray, c: CurveCalibration) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return fraction_to_value(frac, c)


def deskew_mask(mask: np.ndarray, angle_deg: float) -> np.ndarray:
    """Deskew a class (or any label) mask with nearest-neighbour sampling; areas from
    outside the scan become 0."""
    import cv2

    from . import layout as lay
    out = np.empty_like(mask)
    h = mask.shape[0]
    if abs(angle_deg) < lay.MIN_SKEW_DEG:
        out[...] = mask
        return out
    # _deskew_rows fills outside the scan with 255: map that to background
    for r0 in range(0, h, 2048):
        r1 = min(h, r0 + 2048)
        blk = lay._deskew_rows(mask, angle_deg, r0, r1, interpolation=cv2.INTER_NEAREST)
        out[r0:r1] = np.where(blk == 255, 0, blk)
    return out


# ---------------------------------------------------------------------------
# the whole conversion
# ---------------------------------------------------------------------------

def resolve_calibration(scan_path: Path, calibration) -> tuple[Calibration | None, str]:
    """(calibration, how it was found): a path, a Calibration, the sidecar
    ``scan.yaml`` / ``scan.yml`` beside the scan, or none."""
    if isinstance(calibration, Calibration):
        return calibration, "given"
    if calibration is not None:
        return load_calibration(calibration), os.fspath(calibration)
    for suf in (".yaml", ".yml"):
        side = scan_path.with_suffix(suf)
        if side.is_file():
            return load_calibration(side), os.fspath(side)
    return None, "none"


class _Bar:
    """tqdm progress over rows, or nothing."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="row", leave=False, file=sys.stderr)

    def __call__(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def segment_plan(seg, grey: np.ndarray, layout, plan: ReadPlan, progress: bool = False,
                 desc: str = "") -> tuple[np.ndarray, np.ndarray, int]:
    """Segment the rows a plan reads (plus :data:`SEGMENT_MARGIN` of context) of the
    deskewed scan ``grey`` (uint8 [H, W]) at :func:`segmentation_scale`.

    Returns (classes uint8 [H, W], curve code uint8 [H, W], scale); rows outside are 0.
    Only uint8 arrays of the whole scan are made (no float copy)."""
    H, W = grey.shape
    top, bottom = plan.rows
    s0, s1 = max(0, top - SEGMENT_MARGIN), min(H, bottom + SEGMENT_MARGIN)
    classes = np.zeros((H, W), np.uint8)
    code = np.zeros((H, W), np.uint8)   # curve code (also the confidence)
    scale = segmentation_scale(layout)
    bar = _Bar(progress, s1 - s0, desc)
    try:
        segment_scaled(seg, grey[s0:s1], scale, classes[s0:s1], code[s0:s1], progress=bar)
    finally:
        bar.close()
    return classes, code, scale


def convert_file(scan_path, out_path, *, calibration=None, model=None, segmenter=None,
                 page: int | None = None, fmt: str = "las", qc_path=None,
                 step: float | None = None, threads: int | None = None, device: str = "cpu",
                 progress: bool = False, tracker: TrackerConfig | None = None) -> ConvertResult:
    """Convert one page of a scan to LAS (or CSV), optionally with a QC overlay.

    Parameters
    ----------
    scan_path, out_path : path
    calibration : path, Calibration or None
        None: the sidecar ``scan.yaml`` beside the scan if any, else an uncalibrated
        read (curves T1_SOLID ... as fractions of track width by pixel row).
    model : path or None
        ONNX model (None: the shipped model). Ignored when ``segmenter`` is given.
    segmenter : logdigit.segment.Segmenter or None
        A loaded model to reuse across scans.
    page : int or None
        Page of a multi-page file (0-based; None = 0).
    fmt : "las" or "csv"
    qc_path : path or None
        Write the QC overlay PNG here.
    step : float or None
        Depth step (default DEFAULT_STEP by unit).
    threads, device :
        For the segmenter built here.
    progress : bool
        Show a progress bar on stderr.

    Raises
    ------
    LogdigitError
        (ImageReadError, CalibrationError, ModelError, LayoutError) naming the file.
    """
    from . import layout as lay
    from .io import read_scan
    from .segment import Segmenter

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    scan_path, out_path = Path(scan_path), Path(out_path)
    _check_outputs(scan_path, out_path, None if qc_path is None else Path(qc_path))
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t
        t = now

    cal, cal_src = resolve_calibration(scan_path, calibration)
    seg = segmenter or Segmenter(model, threads=threads, device=device)
    lap("model")
    scan = read_scan(scan_path, 0 if page is None else page)
    grey, rgb = scan.grey, scan.rgb
    H, W = grey.shape
    lap("read")
    layout = lay.analyse(grey)
    plan = plan_read(cal, layout, (H, W), None if cal_src in ("none", "given") else cal_src)
    plan.notes.extend(check_step(plan, step, str(scan_path)))
    lap("layout")
    if abs(layout.skew_deg) >= lay.MIN_SKEW_DEG:
        grey = lay.deskew(grey, layout.skew_deg)
        if rgb is not None and cal is not None and any(
                c.color for tc in cal.tracks for c in tc.curves):
            rgb = np.stack([lay.deskew(np.ascontiguousarray(rgb[..., k]), layout.skew_deg)
                            for k in range(3)], -1)
        scan.grey = None  # free the stored copy
    lap("deskew")
    top, bottom = plan.rows
    classes, code, scale = segment_plan(seg, grey, layout, plan, progress=progress,
                                        desc=scan_path.name)
    lap("segment")
    clear_vertical_lines(classes, code, layout, plan.tracks, plan.rows,
                         (tracker or TrackerConfig()).curve_p_min, grey=grey)
    dig = digitise(classes, cal, layout, rgb=rgb, step=step, binary=seg.binary,
                   tracker=tracker, plan=plan, grey=grey, code=code)
    del classes, code
    lap("vectorise")
    table = dig.table
    table.source = os.fspath(scan_path)
    table.params.update({
        "MODEL": (seg.info.describe(), "segmentation model (ONNX)"),
        "CALIB": (cal_src, "calibration used"),
        "MODE": ("calibrated" if dig.plan.calibrated else "uncalibrated", "read mode"),
        "PAGE": (str(scan.page), "page of the scan file (0-based)"),
        "SKEW": (f"{layout.skew_deg:.3f}", "deskew angle applied (deg)"),
        "ROWS": (f"{top}-{bottom}", "deskewed pixel rows read"),
        "SEGSC": (f"1/{scale}", "resolution segmented at (thick lines: reduced)"),
        "SRCV": (f"logdigit {__version__}", "digitiser"),
    })
    table.notes.insert(0, f"Digitised by logdigit {__version__} from {scan_path.name} "
                          f"page {scan.page} with model {seg.info.path.name}; "
                          f"calibration: {cal_src}")
    if scale > 1:
        table.notes.append(f"lines {scale}x wider than the model's training pages: "
                           f"segmented at 1/{scale} resolution")
    for tp in dig.plan.tracks:
        table.notes.append(f"track {tp.index + 1}: columns {tp.xl:.1f}..{tp.xr:.1f} "
                           f"(deskewed, {tp.source})")
    for w in dig.warnings:   # the file keeps what stderr said about it
        table.notes.append(f"WARNING: {w}")
    outputs = [write_table(table, out_path, fmt)]
    lap("write")
    if qc_path is not None:
        outputs.append(write_overlay(qc_path, grey, dig.qc_curves, dig.plan.rows,
                                     title=f"{scan_path.name} p{scan.page}: "
                                           f"{'calibrated' if dig.plan.calibrated else 'UNCALIBRATED'}"))
        lap("qc")
    warnings = list(dig.warnings)
    if not dig.plan.calibrated:
        warnings.insert(0, "no calibration (no --calibration and no sidecar "
                           f"{scan_path.with_suffix('.yaml').name}): curves are fractions of "
                           "track width indexed by pixel row")
    return ConvertResult(scan_path, outputs, [(c.mnemonic, c.coverage) for c in table.curves],
                         warnings, timings, dig.plan.calibrated, float(layout.skew_deg))


#: a requested depth step finer than this share of one pixel row's depth gets a warning
FINE_STEP_SHARE = 0.1


def output_step(plan: ReadPlan, step: float | None) -> float:
    """The depth step written: ``step``, else DEFAULT_STEP by the plan's unit (1 row
    uncalibrated)."""
    if step:
        return float(step)
    return DEFAULT_STEP[plan.unit] if plan.calibrated else 1.0


def check_step(plan: ReadPlan, step: float | None, path: str) -> list[str]:
    """Refuse a depth ``step`` (plan's unit; rows when uncalibrated; None: the default,
    DEFAULT_STEP by unit or 1 row) that does not fit twice into the depth range read (the
    LAS would hold no sample, or one); a step finer than :data:`FINE_STEP_SHARE` of a
    pixel row's depth gives a warning (returned), since it only repeats interpolated
    values."""
    top, bottom = plan.rows
    d = plan.depth_of_rows(np.array([top, bottom - 1], np.float64))
    span = float(d[1] - d[0])
    unit = plan.unit
    given = bool(step)
    step = output_step(plan, step)
    if step > span / 2:
        if given:
            raise LogdigitError(f"--step {step:g} {unit} leaves fewer than 3 samples in the "
                                f"{span:.6g} {unit} read ({d[0]:.6g} - {d[1]:.6g}): use a "
                                f"step under {span / 2:.3g}", path)
        raise LogdigitError(f"the depth read, rows {top}-{bottom} ({span:.6g} {unit}), holds "
                            f"fewer than 3 samples at the default step {step:g} {unit}: "
                            "widen depth.rows or pass a smaller --step", path)
    per_row = span / max(1, bottom - 1 - top)
    if step < FINE_STEP_SHARE * per_row:
        return [f"--step {step:g} {unit} is finer than a tenth of a pixel row "
                f"({per_row:.3g} {unit} per row): the samples between rows are interpolated "
                f"({(span / step):.0f} of them)"]
    return []


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_outputs(scan: Path, out: Path, qc: Path | None) -> None:
    """Refuse outputs that would overwrite the scan, or each other, before any work."""
    for p, what, eg in ((out, "output", ".las"), (qc, "QC overlay", ".qc.png")):
        if p is not None and (_same_file(p, scan) or p.resolve() == scan.resolve()):
            raise LogdigitError(f"the {what} path is the scan itself: writing it would destroy "
                                f"the scan; choose another name (e.g. {scan.stem}{eg})", p)
    if qc is not None and (qc.resolve() == out.resolve() or _same_file(qc, out)):
        raise LogdigitError("the QC overlay and the output are the same file: give the overlay "
                            "its own name (e.g. overlay.png)", qc)


def result_summary(res: ConvertResult) -> dict[str, Any]:
    """JSON-able summary of a :class:`ConvertResult`."""
    return {"scan": os.fspath(res.scan), "outputs": [os.fspath(p) for p in res.outputs],
            "curves": [[m, round(c, 4)] for m, c in res.curves], "warnings": res.warnings,
            "timings": {k: round(v, 3) for k, v in res.timings.items()},
            "calibrated": res.calibrated, "skew_deg": res.skew_deg}
