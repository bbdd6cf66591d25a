"""Class masks -> per-row curve positions -> values on a regular depth step.

Per track and line style, every image row offers *candidates*: the runs of pixels of
that class in the row (runs closer than ``merge_px`` merged). A continuity-aware
tracker (Viterbi dynamic programming over the candidates, row by row) picks at most
one candidate per row so that the path is cheap:

- moving from one row's run to the next costs ``jump_cost`` per pixel of gap between
  the two runs beyond ``slack_px`` (runs that touch or overlap cost nothing, so steep
  stretches drawn as long horizontal runs are free), plus ``smooth_cost`` per pixel
  of centre displacement (breaks ties at crossings);
- a row without a chosen candidate costs ``miss_cost`` (dash and dot gaps, crossings
  where another class was drawn on top, grid lines); after a gap of ``n`` rows the
  slack grows by ``gap_drift_px`` per row;
- any jump costs at most ``teleport_cost``, so a curve that reappears far away after
  a drop-out is picked up again, while an isolated blob shorter than about
  ``teleport_cost / miss_cost`` rows far from the path is ignored.

For a curve with backup traces (``wrap``) distances are measured around the track
(period = track width), and the chosen positions are unwrapped to fractions < 0 or
> 1. Several curves of one style in a track are read one after another, each on the
candidates the earlier ones did not take (crossing rows become short gaps).

The sub-pixel centre of a run ``[s, e)`` is ``(s + e - 1) / 2`` in pixel-index
coordinates (pixel ``c`` is centred on ``c``). Gaps up to ``max_gap_px`` rows are
bridged linearly; longer gaps stay NaN (NULL in the output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .constants import STYLE_TO_CLASS
from .segment import CODE_P_LEVELS, CODE_P_MASK


@dataclass
class TrackerConfig:
    """Tracker costs and gap rules (pixels / rows of the deskewed scan)."""

    merge_px: int = 2             #: runs in one row closer than this are one candidate
    merge_broken_px: int = 12     #: the same for dashed, dotted and dash-dot classes
    max_run_share: float = 0.9    #: runs wider than this share of the track are grid lines
    vline_share: float = 0.5      #: columns inked on more rows than this share are lines ...
    vline_max_px: int = 5         #: ... and runs this narrow wholly on them are dropped
    slack_px: float = 2.0         #: free gap between consecutive rows' runs
    slack_width: float = 1.0      #: ... plus this times the narrower run's width
    jump_cost: float = 0.5        #: cost per px of gap beyond slack
    smooth_cost: float = 0.02     #: cost per px of centre displacement
    miss_cost: float = 3.0        #: cost per row without a candidate on the path
    miss_busy_cost: float = 10.0   #: ... when the row has candidates the path skips
    gap_drift_px: float = 1.5     #: extra slack per row of gap
    teleport_cost: float = 12.0   #: the most any single jump costs
    level_cost: float = 0.005      #: per row on a backup trace (wrapped curves)
    start_cost: float = 5.0       #: cost to begin the path
    gap_hypotheses: int = 4       #: paths in a gap kept per row (distinct last runs)
    refine_extremes: bool = True  #: vertex at the run's end at turning points
    max_gap_px: int = 60          #: bridge NaN gaps up to this many rows
    blip_rows: int = 4            #: isolated stretches this short may be specks ...
    blip_px: float = 3.0          #: ... dropped when this far off their neighbours' line
    min_rows: int = 20            #: a curve read on fewer rows is dropped (noise)
    curve_p_min: float = 0.35     #: with the curve code: least P(curve) of a pixel read


@dataclass
class Runs:
    """Horizontal runs of one class, sorted by row then column.

    ``rows``, ``starts``, ``ends`` : int [K] (run = columns ``[start, end)``);
    ``ptr`` : int [H + 1], the runs of row ``r`` are ``ptr[r]:ptr[r + 1]``.
    """

    rows: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    ptr: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.ptr) - 1

    def subset(self, keep: np.ndarray) -> "Runs":
        """The runs where bool ``keep`` [K] is true."""
        rows = self.rows[keep]
        return Runs(rows, self.starts[keep], self.ends[keep],
                    np.searchsorted(rows, np.arange(self.n_rows + 1)))


def find_runs(mask: np.ndarray, merge_px: int = 2) -> Runs:
    """Runs of true pixels per row of ``mask`` (bool [H, W]); runs separated by fewer
    than ``merge_px`` false pixels are merged."""
    H, W = mask.shape
    m = np.zeros((H, W + 2), np.int8)
    m[:, 1:-1] = mask
    d = np.diff(m, axis=1)
    r0, s = np.nonzero(d == 1)
    _, e = np.nonzero(d == -1)
    if len(s) and merge_px > 0:
        new = np.ones(len(s), bool)
        new[1:] = (r0[1:] != r0[:-1]) | (s[1:] - e[:-1] >= merge_px)
        idx = np.flatnonzero(new)
        last = np.append(idx[1:], len(s)) - 1
        r0, s, e = r0[idx], s[idx], e[last]
    return Runs(r0, s, e, np.searchsorted(r0, np.arange(H + 1)))


def style_mask(classes: np.ndarray, cls: int, code: np.ndarray | None = None,
               allowed: frozenset[int] | None = None, p_min: float = 0.5) -> np.ndarray:
    """Pixels read as class ``cls``: bool, the shape of ``classes``.

    Without ``code`` / ``allowed`` (uncalibrated reads): ``classes == cls``. With the
    curve code (:func:`logdigit.segment.logits_to_codes`) and the class ids a track
    holds (``allowed``): pixels whose P(curve) is at least ``p_min`` (also where
    background won the argmax: faint curves) and whose best *allowed* curve class is
    ``cls`` (the runner-up stands in where the best curve class is one the track does
    not hold).
    """
    if code is None or allowed is None:
        return classes == cls
    if cls not in allowed:
        return np.zeros(classes.shape, bool)
    level = int(math.ceil(p_min * CODE_P_LEVELS - 1e-9))
    best = (code >> 4) & 3
    pick = np.where(np.isin(best, [a - 1 for a in allowed]), best, code >> 6)
    return ((code & CODE_P_MASK) >= level) & (pick == cls - 1)


def find_class_runs(classes: np.ndarray, cls: int, rows: tuple[int, int],
                    cols: tuple[int, int], merge_px: int, block: int = 8192,
                    code: np.ndarray | None = None, allowed: frozenset[int] | None = None,
                    p_min: float = 0.5) -> Runs:
    """:func:`find_runs` of :func:`style_mask` (default ``classes == cls``) over
    ``rows`` x ``cols``, made in blocks of rows so the temporaries stay small on tall
    scans. Rows are relative to ``rows[0]``."""
    top, bottom = rows
    c0, c1 = cols
    parts = []
    for r0 in range(top, bottom, block):
        r1 = min(bottom, r0 + block)
        m = style_mask(classes[r0:r1, c0:c1], cls,
                       None if code is None else code[r0:r1, c0:c1], allowed, p_min)
        rr = find_runs(m, merge_px)
        parts.append((rr.rows + (r0 - top), rr.starts, rr.ends))
    if not parts:
        z = np.zeros(0, np.int64)
        return Runs(z, z, z, np.zeros(bottom - top + 1, np.int64))
    r = np.concatenate([p[0] for p in parts])
    return Runs(r, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                np.searchsorted(r, np.arange(bottom - top + 1)))


def _gap(s1: int, e1: int, s2: int, e2: int, period: int) -> float:
    d = max(0, s2 - e1, s1 - e2)
    if period and d:
        d = min(d, max(0, s2 + period - e1, s1 - e2 - period),
                max(0, s2 - period - e1, s1 - e2 + period))
    return d


def viterbi_path(runs: Runs, cfg: TrackerConfig, period: int = 0,
                 emit: np.ndarray | None = None) -> np.ndarray:
    """The cheapest path through the runs: int [H], the chosen run index per row or -1.

    ``period`` > 0 measures distances around a track of that width; ``emit`` [K] adds
    a cost for choosing each run (e.g. for backup-trace levels of unrolled runs).
    """
    H = runs.n_rows
    s = runs.starts.tolist()
    e = runs.ends.tolist()
    ptr = runs.ptr.tolist()
    n = len(s)
    cen = [(a + b - 1) * 0.5 for a, b in zip(s, e)]
    cost = [0.0] * n
    back = [-1] * n
    em = [0.0] * n if emit is None else [float(v) for v in emit]
    miss, jc, slack = cfg.miss_cost, cfg.jump_cost, cfg.slack_px
    sm, tele, drift, start = cfg.smooth_cost, cfg.teleport_cost, cfg.gap_drift_px, cfg.start_cost
    sw = cfg.slack_width
    busy = cfg.miss_busy_cost
    wid = [b - a for a, b in zip(s, e)]
    inf = math.inf
    nkeep = cfg.gap_hypotheses
    gaps: list[list] = []                   # [cost, last node, rows since] best first
    plo = phi = 0                           # previous row's runs
    for r in range(H):
        lo, hi = ptr[r], ptr[r + 1]
        if lo < hi:
            free = miss * r + start
            for j in range(lo, hi):
                sj, ej, cj, wj = s[j], e[j], cen[j], wid[j]
                best, bk = free, -1
                for i in range(plo, phi):
                    d = _gap(s[i], e[i], sj, ej, period)
                    dc = abs(cj - cen[i])
                    if period and dc > period / 2:
                        dc = period - dc
                    sl = slack + sw * (wj if wj < wid[i] else wid[i])
                    t = jc * (d - sl) if d > sl else 0.0
                    t = (tele if t > tele else t) + sm * dc
                    c = cost[i] + t
                    if c < best:
                        best, bk = c, i
                for gc, i, gl in gaps:
                    if gc >= best:
                        break
                    d = _gap(s[i], e[i], sj, ej, period)
                    allow = slack + drift * gl
                    t = jc * (d - allow) if d > allow else 0.0
                    c = gc + min(tele, t)
                    if c < best:
                        best, bk = c, i
                cost[j], back[j] = best + em[j], bk
        # gap hypotheses at row r (row r on no node): from row r-1's nodes or older gaps;
        # skipping a row that has candidates costs more than an empty row
        mr = miss if lo == hi else busy
        for g in gaps:
            g[0] += mr
            g[2] += 1
        if plo < phi:
            for i in range(plo, phi):
                gaps.append([cost[i] + mr, i, 1])
            gaps.sort()
            del gaps[nkeep:]
        plo, phi = lo, hi
    # end: best of last row's nodes and the gap hypotheses
    end_node, end_cost = -1, inf
    if plo < phi:
        bi = min(range(plo, phi), key=cost.__getitem__)
        end_node, end_cost = bi, cost[bi]
    if gaps and gaps[0][0] < end_cost:
        end_node = gaps[0][1]
    out = np.full(H, -1, np.int64)
    rows = runs.rows
    j = end_node
    while j >= 0:
        out[rows[j]] = j
        j = back[j]
    return out


def path_centres(runs: Runs, path: np.ndarray) -> np.ndarray:
    """Sub-pixel column centre (pixel-index coords) per row of a path; NaN where none."""
    x = np.full(len(path), np.nan)
    ok = path >= 0
    j = path[ok]
    x[ok] = (runs.starts[j] + runs.ends[j] - 1) * 0.5
    return x


def path_line_width(runs: Runs, path: np.ndarray) -> float:
    """Pen width (px) of a traced curve: the 20th percentile of its chosen runs' widths
    (runs where the curve is steep are as wide as the pen)."""
    j = path[path >= 0]
    if not len(j):
        return 1.0
    return float(max(1.0, np.percentile(runs.ends[j] - runs.starts[j], 20)))


def refine_extremes(runs: Runs, path: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sub-pixel positions at turning points: where the chosen run of a row sticks out
    past both neighbouring rows' centres on one side, the curve's vertex is at that
    end of the run (less half the pen width), not at the run's middle."""
    x = x.copy()
    ok = path >= 0
    if ok.sum() < 3:
        return x
    hw = (path_line_width(runs, path) - 1) / 2.0
    j = np.where(ok, path, 0)
    s = runs.starts[j].astype(np.float64)
    e = runs.ends[j].astype(np.float64) - 1
    prev = np.concatenate([[np.nan], x[:-1]])
    nxt = np.concatenate([x[1:], [np.nan]])
    right = ok & (prev < x - 0.5) & (nxt < x - 0.5)
    left = ok & (prev > x + 0.5) & (nxt > x + 0.5)
    x[right] = np.maximum(x[right], e[right] - hw)
    x[left] = np.minimum(x[left], s[left] + hw)
    return x


def drop_blips(x: np.ndarray, max_len: int, tol: float) -> np.ndarray:
    """Drop short isolated stretches (at most ``max_len`` rows, NaN on both sides) that
    lie more than ``tol`` px off the straight line between their neighbours: specks
    next to the curve picked up inside dash gaps. Dots that lie on the curve stay."""
    x = np.asarray(x, dtype=np.float64).copy()
    ok = np.isfinite(x)
    if ok.sum() < 3 or max_len <= 0:
        return x
    d = np.diff(np.concatenate([[0], ok.astype(np.int8), [0]]))
    a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)  # segments [a, b)
    if len(a) < 3:
        return x
    drop = np.zeros(len(x), bool)
    for k in range(1, len(a) - 1):
        if b[k] - a[k] > max_len:
            continue
        r0, r1 = b[k - 1] - 1, a[k + 1]          # neighbours' facing ends
        rr = np.arange(a[k], b[k])
        line = x[r0] + (rr - r0) / (r1 - r0) * (x[r1] - x[r0])
        if np.abs(x[rr] - line).max() > tol:
            drop[rr] = True
    x[drop] = np.nan
    return x


def bridge_gaps(x: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly fill NaN gaps of at most ``max_gap`` samples between finite values.

    Returns ``(filled, bridged)``: float [N] and bool [N] (true where filled here).
    """
    x = np.asarray(x, dtype=np.float64).copy()
    ok = np.isfinite(x)
    bridged = np.zeros(len(x), bool)
    if ok.sum() < 2:
        return x, bridged
    idx = np.flatnonzero(ok)
    gaps = np.diff(idx) - 1
    for k in np.flatnonzero((gaps > 0) & (gaps <= max_gap)):
        a, b = idx[k], idx[k + 1]
        t = np.arange(1, b - a) / (b - a)
        x[a + 1:b] = x[a] + t * (x[b] - x[a])
        bridged[a + 1:b] = True
    return x, bridged


def unroll(runs: Runs, period: int, levels: tuple[int, ...] = (-1, 0, 1)) -> tuple[Runs, np.ndarray, np.ndarray]:
    """Copies of every run shifted by ``level * period`` (backup-trace levels), so a
    wrapped curve is one continuous path in unrolled columns.

    Returns ``(runs, level, source)``: the unrolled runs (sorted by row, then
    column), the level of each, and the index of the original run it copies.
    """
    n = len(runs.rows)
    lv = np.repeat(np.array(levels, np.int64), n)
    src = np.tile(np.arange(n), len(levels))
    rows = np.tile(runs.rows, len(levels))
    st = np.tile(runs.starts, len(levels)) + lv * period
    en = np.tile(runs.ends, len(levels)) + lv * period
    order = np.lexsort((st, rows))
    rows, st, en, lv, src = rows[order], st[order], en[order], lv[order], src[order]
    return Runs(rows, st, en, np.searchsorted(rows, np.arange(runs.n_rows + 1))), lv, src


def _narrow(runs: Runs, cfg: TrackerConfig, width: float) -> Runs:
    """Drop grid lines taken for curve pixels: runs spanning more than
    ``cfg.max_run_share`` of the track width (horizontal lines), and narrow runs lying
    wholly in columns covered on more than ``cfg.vline_share`` of the rows (vertical
    lines: a curve does not sit on one column for most of a log)."""
    drop = (runs.ends - runs.starts) > cfg.max_run_share * width
    n_rows = max(1, runs.n_rows)
    if len(runs.rows) and cfg.vline_share < 1:
        w = int(runs.ends.max()) + 1
        d = np.zeros(w + 1, np.int64)
        np.add.at(d, runs.starts, 1)
        np.add.at(d, runs.ends, -1)
        core = np.cumsum(d)[:w] > cfg.vline_share * n_rows            # [w] bool
        line = core.copy()                                              # +-1 px tolerance
        line[1:] |= core[:-1]
        line[:-1] |= core[1:]
        cs = np.concatenate([[0], np.cumsum(~line)])                    # non-line columns
        inside = (cs[runs.ends] - cs[runs.starts]) == 0                 # wholly on a line
        drop |= inside & ((runs.ends - runs.starts) <= cfg.vline_max_px)
    return runs.subset(~drop) if drop.any() else runs


def track_window(xl: float, xr: float, width: int,
                 shift: np.ndarray | None = None) -> tuple[int, int]:
    """Columns ``[c0, c1)`` searched for a track whose edges are at ``xl``, ``xr``
    (widened by the extremes of the per-row border ``shift`` when given)."""
    lo = hi = 0
    if shift is not None and len(shift):
        lo, hi = int(np.floor(np.min(shift))), int(np.ceil(np.max(shift)))
    return (max(0, int(math.floor(xl)) + min(0, lo)),
            min(width, int(math.ceil(xr)) + 1 + max(0, hi)))


def straighten_runs(runs: Runs, offset: int, ishift: np.ndarray, width: int) -> Runs:
    """Runs found in a window starting ``offset`` columns left of the track window, on
    paper whose borders run ``ishift`` [n_rows] int px right of their listed columns:
    moved to the listed (straight) frame of the track window ``[0, width)``, clipped
    to it (pieces of neighbouring tracks dropped)."""
    d = offset + ishift[runs.rows] if len(runs.rows) else np.zeros(0, np.int64)
    st = np.clip(runs.starts - d, 0, width)
    en = np.clip(runs.ends - d, 0, width)
    keep = en > st
    rows = runs.rows[keep]
    return Runs(rows, st[keep], en[keep], np.searchsorted(rows, np.arange(runs.n_rows + 1)))


@dataclass
class CurveTrace:
    """One curve read from a track, per row of the scan (deskewed frame).

    ``frac`` : float [H] fraction of track width (NaN where not read; unwrapped);
    ``observed`` : bool [H] rows with evidence (not bridged);
    ``confidence`` : float [H] in [0, 1] (0 where bridged or not read).
    """

    frac: np.ndarray
    observed: np.ndarray
    confidence: np.ndarray


def trace_curves(classes: np.ndarray, cls: int, xl: float, xr: float, n_curves: int = 1,
                 cfg: TrackerConfig | None = None, wrap: list[bool] | None = None,
                 confidence: np.ndarray | None = None, rows: tuple[int, int] | None = None,
                 masks: list[np.ndarray] | None = None, code: np.ndarray | None = None,
                 allowed: frozenset[int] | None = None,
                 shift: np.ndarray | None = None) -> list[CurveTrace | None]:
    """Read ``n_curves`` curves of class ``cls`` in the track with edges ``xl``, ``xr``.

    Parameters
    ----------
    classes : uint8 [H, W]
        Class mask of the (deskewed) scan.
    cls : int
        Class id of the style.
    xl, xr : float
        Pixel-index columns of the track's left (fraction 0) and right (fraction 1)
        edges; columns :func:`track_window` are searched.
    n_curves : int
        Curves of this style in the track (read one after another).
    wrap : list of bool
        Per curve: printed with backup traces.
    confidence : uint8 [H, W] or None
        Per-pixel confidence (255 = sure); when None and ``code`` is given, the code's
        P(curve) is used.
    rows : (top, bottom) or None
        Only rows ``[top, bottom)`` are read (others NaN).
    masks : list of bool [bottom - top, c1 - c0] or None
        Per-curve masks over the window ``track_window(xl, xr, W, shift)`` (e.g. split
        by colour), used instead of the class pixels.
    code : uint8 [H, W] or None
        Curve code of the segmenter; with ``allowed`` (class ids the track holds) the
        pixels read are :func:`style_mask` (P(curve) >= ``cfg.curve_p_min``, best
        allowed style), not the argmax.
    allowed : frozenset of int or None
    shift : float [H] or None
        Paper drift: the track's borders run ``shift[r]`` px right of ``xl``/``xr`` at
        row ``r`` (:meth:`logdigit.layout.Layout.drift_at`); fractions follow them.

    Returns
    -------
    list of CurveTrace or None (None: fewer than ``cfg.min_rows`` rows read).
    """
    cfg = cfg or TrackerConfig()
    H, W = classes.shape
    top, bottom = (0, H) if rows is None else (max(0, rows[0]), min(H, rows[1]))
    c0, c1 = track_window(xl, xr, W)
    sh = None if shift is None else np.asarray(shift, np.float64)[top:bottom]
    if sh is not None and not np.any(np.abs(sh) >= 0.5):
        sh = None
    w0, w1 = track_window(xl, xr, W, sh)
    ish = None if sh is None else np.rint(sh).astype(np.int64)
    sub = np.zeros(bottom - top) if sh is None else sh - ish   # sub-pixel rest of the drift
    wrap = list(wrap or [False] * n_curves)
    width = float(xr - xl)
    out: list[CurveTrace | None] = []
    shared = None
    merge = cfg.merge_px if cls == STYLE_TO_CLASS["solid"] else cfg.merge_broken_px

    def straight(runs: Runs) -> Runs:
        return runs if ish is None else straighten_runs(runs, c0 - w0, ish, c1 - c0)

    if masks is None:
        shared = _narrow(straight(find_class_runs(classes, cls, (top, bottom), (w0, w1), merge,
                                                  code=code, allowed=allowed,
                                                  p_min=cfg.curve_p_min)), cfg, width)
    if confidence is None and code is not None:
        confidence, conf_scale = code, CODE_P_LEVELS
        conf_mask = CODE_P_MASK
    else:
        conf_scale, conf_mask = 255, 0xFF
    for k in range(n_curves):
        runs = shared if masks is None else _narrow(straight(find_runs(masks[k], merge)), cfg,
                                                    width)
        if wrap[k]:  # track in unrolled columns: levels -1, 0, +1 of backup traces
            uruns, lv, src = unroll(runs, int(round(width)))
            upath = viterbi_path(uruns, cfg, 0, cfg.level_cost * np.abs(lv))
            x = path_centres(uruns, upath)
            if cfg.refine_extremes:
                x = refine_extremes(uruns, upath, x)
            used = src[upath[upath >= 0]]
        else:
            path = viterbi_path(runs, cfg)
            x = path_centres(runs, path)
            if cfg.refine_extremes:
                x = refine_extremes(runs, path, x)
            used = path[path >= 0]
        x = drop_blips(x, cfg.blip_rows, cfg.blip_px) + c0
        if masks is None:  # the next curve of this style uses what this one left
            keep = np.ones(len(runs.rows), bool)
            keep[used] = False
            shared = runs.subset(keep)
        n_obs = int(np.isfinite(x).sum())
        if n_obs < cfg.min_rows:
            out.append(None)
            continue
        frac = (x - sub - xl) / width
        frac, bridged = bridge_gaps(frac, cfg.max_gap_px)
        observed = np.isfinite(frac) & ~bridged
        conf = np.zeros(len(frac))
        if confidence is not None:
            rr = np.flatnonzero(observed)
            xs = x[rr] if ish is None else x[rr] + ish[rr]
            cc = np.clip(np.rint(xs).astype(np.int64), 0, W - 1)
            conf[rr] = (confidence[rr + top, cc] & conf_mask) / conf_scale
        else:
            conf[observed] = 1.0
        full = np.full(H, np.nan)
        full[top:bottom] = frac
        fobs = np.zeros(H, bool)
        fobs[top:bottom] = observed
        fconf = np.zeros(H)
        fconf[top:bottom] = conf
        out.append(CurveTrace(full, fobs, fconf))
    return out


def resample_rows(depth_of_row: np.ndarray, y: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """Values ``y`` [H] given per row (NaN = not read) at ``depths`` [N].

    Linear between the two rows around each depth; NaN when either of them is NaN or
    the depth is outside the rows. ``depth_of_row`` must increase.
    """
    pos = np.interp(depths, depth_of_row, np.arange(len(depth_of_row), dtype=np.float64),
                    left=np.nan, right=np.nan)
    out = np.full(len(depths), np.nan)
    ok = np.isfinite(pos)
    p = pos[ok]
    i0 = np.clip(np.floor(p).astype(np.int64), 0, len(y) - 1)
    i1 = np.clip(i0 + 1, 0, len(y) - 1)
    t = p - i0
    out[ok] = y[i0] * (1 - t) + y[i1] * t
    exact = ok.copy()
    exact[ok] = t == 0
    out[exact] = y[i0[t == 0]]
    return out


def depth_grid(d_top: float, d_bottom: float, step: float) -> np.ndarray:
    """Regular depths from ``d_top`` to ``d_bottom`` on multiples of ``step``."""
    a = math.ceil(d_top / step - 1e-9)
    b = math.floor(d_bottom / step + 1e-9)
    if b < a:
        return np.zeros(0)
    return np.round(np.arange(a, b + 1) * step, 10)
