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

With the segmenter's curve code (calibrated tracks, :func:`trace_track`) the candidates
are the runs of likely-curve pixels of any style, and a run of another style costs
``style_cost`` per row; stretches after long drop-outs of wrapped curves are re-levelled
(:func:`relevel_segments`); on drifting paper (``shift``) rows are straightened first.

The sub-pixel centre of a run ``[s, e)`` is ``(s + e - 1) / 2`` in pixel-index
coordinates (pixel ``c`` is centred on ``c``). Gaps up to ``max_gap_px`` rows are
bridged linearly; longer gaps stay NaN (NULL in the output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .constants import STYLE_TO_CLASS
from .segment import CODE_P_LEVELS, CODE_P_MASK


#: Rows of context either side of a gap for the second read that fills it
#: (:func:`trace_track`): enough for its path to settle on the curve before the anchor.
FILL_MARGIN_ROWS: int = 100

#: A wrapped curve's stretch that resumes after a long gap within this share of the
#: track width of where it left keeps its level (:func:`relevel_segments`).
RELEVEL_NEAR: float = 0.08


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
    wide_run_factor: float = 3.0  #: runs wider than this x the pen width ...
    wide_run_px: float = 4.0      #: ... + this many px hold other ink (0 factor: off) ...
    wide_run_rows: int = 8        #: ... and stretches of them this short are interpolated
    max_gap_px: int = 60          #: bridge NaN gaps up to this many rows
    blip_rows: int = 4            #: isolated stretches this short may be specks ...
    blip_px: float = 3.0          #: ... dropped when this far off their neighbours' line
    min_rows: int = 20            #: a curve read on fewer rows is dropped (noise)
    cross_share: float = 0.6      #: isolated one-way strokes across this share of the track ...
    cross_px_per_row: float = 8.0  #: ... moving at least this many px per row on average ...
    cross_gap: int = 8            #: ... with this many NaN rows on both sides are dropped (0 share: off; not on wrapped curves)
    line_spike_share: float = 0.04  #: samples on grid-line rows this far (share of the track) off ... (0: off)
    line_spike_rows: int = 3      #: ... the line between the off-line samples this near either side are dropped
    line_spike_longest: int = 20  #: ... on stretches of line rows up to this long
    # reading the network's curve code (calibrated tracks; see trace_track)
    curve_p_min: float = 0.35     #: least P(curve) of a pixel read
    joint_styles: bool = True     #: a track's curves read jointly over all curve pixels
    style_cost: float = 3.5       #: per row on a run none of whose pixels has the curve's style
    same_curve_share: float = 0.05  #: uncalibrated: styles read this near (share of the track) are one curve
    code_miss_busy_cost: float = 5.0   #: miss_busy_cost there (other curves' pixels abound)
    code_teleport_cost: float = 20.0   #: teleport_cost there (jumps to other curves dearer)
    curve_p_weak: float = 0.05    #: also read pixels down to this P(curve) (0: off; 0.05: any nonzero code level) ...
    weak_cost: float = 1.5        #: ... at this cost per row times the run's weak share
    fill_style_cost: float = 2.9  #: style_cost of a second read that fills anchored gaps (0: off)
    fill_anchor: float = 0.01     #: ... where both reads agree this near (share of width) at both ends
    detour_tol: float = 0.02      #: a curve on another's line this near (share of width) in that one's gap gives it back (0: off)
    ink_follow: bool = True       #: fill gaps longer than max_gap_px that one line of ink spans (with the scan; follow_ink_gaps)


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


def code_p_level(p_min: float) -> int:
    """The curve code's P(curve) level (0..``CODE_P_LEVELS``) at or above which a pixel
    has P(curve) >= ``p_min``: ``(code & CODE_P_MASK) >= code_p_level(p_min)``."""
    return int(math.ceil(p_min * CODE_P_LEVELS - 1e-9))


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
    level = code_p_level(p_min)
    best = (code >> 4) & 3
    if len(allowed) == 1:      # the one style takes every curve pixel
        return (code & CODE_P_MASK) >= level
    held = np.zeros(best.shape, bool)
    for a in allowed:
        held |= best == a - 1
    own = np.where(held, best, code >> 6) == cls - 1
    return ((code & CODE_P_MASK) >= level) & own


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
                 emit: np.ndarray | None = None, busy_rows: np.ndarray | None = None
                 ) -> np.ndarray:
    """The cheapest path through the runs: int [H], the chosen run index per row or -1.

    ``period`` > 0 measures distances around a track of that width; ``emit`` [K] adds
    a cost for choosing each run (e.g. for backup-trace levels of unrolled runs, or
    for runs of another style); ``busy_rows`` bool [H]: rows where skipping costs
    ``cfg.miss_busy_cost`` (default: rows with any run).
    """
    from ._tracker_jit import kernel

    jit = kernel()
    if jit is not None and len(runs.starts):
        back, end_node = _viterbi_compiled(jit, runs, cfg, period, emit, busy_rows)
    else:
        back, end_node = _viterbi_python(runs, cfg, period, emit, busy_rows)
    out = np.full(runs.n_rows, -1, np.int64)
    rows = runs.rows
    j = end_node
    while j >= 0:
        out[rows[j]] = j
        j = back[j]
    return out


def _viterbi_compiled(jit, runs: Runs, cfg: TrackerConfig, period: int,
                      emit: np.ndarray | None, busy_rows: np.ndarray | None
                      ) -> tuple[np.ndarray, int]:
    """:func:`_viterbi_python` through the compiled kernel ``jit``."""
    em = np.zeros(len(runs.starts)) if emit is None else np.ascontiguousarray(emit, np.float64)
    brow = np.zeros(0, bool) if busy_rows is None else np.ascontiguousarray(busy_rows, bool)
    return jit(np.ascontiguousarray(runs.starts, np.int64),
               np.ascontiguousarray(runs.ends, np.int64),
               np.ascontiguousarray(runs.ptr, np.int64), em, brow, busy_rows is not None,
               int(period), float(cfg.miss_cost), float(cfg.jump_cost), float(cfg.slack_px),
               float(cfg.slack_width), float(cfg.smooth_cost), float(cfg.teleport_cost),
               float(cfg.gap_drift_px), float(cfg.start_cost), float(cfg.miss_busy_cost),
               int(cfg.gap_hypotheses))


def _viterbi_python(runs: Runs, cfg: TrackerConfig, period: int, emit: np.ndarray | None,
                    busy_rows: np.ndarray | None) -> tuple[list[int], int]:
    """The dynamic programming of :func:`viterbi_path` in Python: (back pointer per run,
    the path's last run or -1). :mod:`logdigit._tracker_jit` compiles the same steps."""
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
    brow = None if busy_rows is None else np.asarray(busy_rows, bool).tolist()
    gaps: list[list] = []                   # [cost, last node, rows since] best first
    plo = phi = 0                           # previous row's runs
    prev: list[int] = []                    # ... cheapest first
    for r in range(H):
        lo, hi = ptr[r], ptr[r + 1]
        if lo < hi:
            free = miss * r + start
            for j in range(lo, hi):
                sj, ej, cj, wj = s[j], e[j], cen[j], wid[j]
                best, bk = free, -1
                for i in prev:          # cheapest first: a step never costs less than 0
                    ci = cost[i]
                    if ci >= best:
                        break
                    if period:
                        d = _gap(s[i], e[i], sj, ej, period)
                    else:
                        d = sj - e[i] if sj > e[i] else (s[i] - ej if s[i] > ej else 0)
                    dc = abs(cj - cen[i])
                    if period and dc > period / 2:
                        dc = period - dc
                    sl = slack + sw * (wj if wj < wid[i] else wid[i])
                    t = jc * (d - sl) if d > sl else 0.0
                    t = (tele if t > tele else t) + sm * dc
                    c = ci + t
                    if c < best:
                        best, bk = c, i
                for gc, i, gl in gaps:
                    if gc >= best:
                        break
                    if period:
                        d = _gap(s[i], e[i], sj, ej, period)
                    else:
                        d = sj - e[i] if sj > e[i] else (s[i] - ej if s[i] > ej else 0)
                    allow = slack + drift * gl
                    t = jc * (d - allow) if d > allow else 0.0
                    c = gc + (tele if t > tele else t)
                    if c < best:
                        best, bk = c, i
                cost[j], back[j] = best + em[j], bk
        # gap hypotheses at row r (row r on no node): from row r-1's nodes or older gaps;
        # skipping a row that has candidates costs more than an empty row
        mr = busy if (lo < hi if brow is None else brow[r]) else miss
        for g in gaps:
            g[0] += mr
            g[2] += 1
        if plo < phi:
            for i in range(plo, phi):
                gaps.append([cost[i] + mr, i, 1])
            gaps.sort()
            del gaps[nkeep:]
        plo, phi = lo, hi
        prev = sorted(range(lo, hi), key=cost.__getitem__)
    # end: best of last row's nodes and the gap hypotheses
    end_node, end_cost = -1, inf
    if plo < phi:
        bi = min(range(plo, phi), key=cost.__getitem__)
        end_node, end_cost = bi, cost[bi]
    if gaps and gaps[0][0] < end_cost:
        end_node = gaps[0][1]
    return back, end_node


def path_centres(runs: Runs, path: np.ndarray) -> np.ndarray:
    """Sub-pixel column centre (pixel-index coords) per row of a path; NaN where none."""
    x = np.full(len(path), np.nan)
    ok = path >= 0
    j = path[ok]
    x[ok] = (runs.starts[j] + runs.ends[j] - 1) * 0.5
    return x


#: Following ink through a gap the network left (:func:`follow_ink_gaps`): the most the
#: line's centre moves from one row to the next (px) ...
INK_STEP_PX: float = 1.5
#: ... a run wider than the pen at the gap's ends by this much (px; or by half) is other
#: ink across the line (a grid line, a crossing curve) or a jog of the line (a stair
#: step), stepped over; the line resumes within that run's extent, at most this far
#: (px) from where it was ...
INK_WIDER_PX: float = 3.0
INK_JOG_PX: float = 40.0
#: ... after at most this many such rows in a row; rows without ink near the line (1-bit
#: drop-outs, breaks in an old pen line) are stepped over for at most this many ...
INK_LINE_ROWS: int = 12
INK_MISS_ROWS: int = 12
#: ... and ink must lie on the line (a run taken or stepped over) on at least this share
#: of the rows
INK_MIN_SHARE: float = 0.75
#: the line read this near (px) a vertical grid line of the layout is that line
INK_VLINE_PX: float = 3.0
#: confidence of a row read from the ink alone (the network did not label it)
INK_CONFIDENCE: float = 0.25


def _ink_runs(runs: Runs, r: int, lo: float, hi: float) -> list[tuple[int, int]]:
    """The runs [s, e) of row ``r`` of ``runs`` that reach into columns [lo, hi]."""
    a, b = int(runs.ptr[r]), int(runs.ptr[r + 1])
    st, en = runs.starts[a:b], runs.ends[a:b]
    keep = (en > lo) & (st <= hi)
    return list(zip(st[keep].tolist(), en[keep].tolist()))


def _run_at(runs: Runs, r: int, c: float) -> tuple[int, int] | None:
    """The run [s, e) of row ``r`` within 1 px of column ``c`` whose centre is nearest
    it; None when there is none."""
    at = _ink_runs(runs, r, c - 1, c + 1)
    return min(at, key=lambda v: abs((v[0] + v[1] - 1) / 2 - c)) if at else None


def follow_ink(dark: np.ndarray, c_start: float, c_end: float) -> np.ndarray | None:
    """Follow one line of ink through a gap: ``dark`` bool [n + 2, W] is the scan's ink
    from the last row read before the gap to the first row read after it, where the
    curve was read at columns ``c_start`` and ``c_end`` (px).

    The pen width is that of the ink runs at those two ends (the narrower). Each gap row
    takes the centre of the run of about that width (+ :data:`INK_WIDER_PX`, or by
    half) nearest the line's last centre, within :data:`INK_STEP_PX`; a wider run there
    (ink across the line, or the jog of a stair step) and rows without ink are stepped
    over, and after a wider run the line may resume anywhere within its extent
    (:data:`INK_JOG_PX` at most; likewise it may start anywhere along the run read
    before the gap). More than :data:`INK_LINE_ROWS` / :data:`INK_MISS_ROWS` such rows in
    a row, ink on the line (a run taken or stepped over) in fewer than
    :data:`INK_MIN_SHARE` of the rows, or a line that does not reach the run read after
    the gap (nor jogs into it in the last rows), and there is no line. Returns the centres
    (float [n] px; NaN on stepped-over rows) or None."""
    n = dark.shape[0] - 2
    ink = find_runs(dark, merge_px=0)
    ends = [_run_at(ink, 0, c_start), _run_at(ink, n + 1, c_end)]
    if None in ends:
        return None
    pen = float(max(1, min(e - s for s, e in ends)))
    wide = max(pen + INK_WIDER_PX, 1.5 * pen)
    reach = INK_STEP_PX + pen / 2
    out = np.full(n, np.nan)
    cur, across, miss, inked = float(c_start), 0, 0, 0
    s0, e0 = ends[0]        # a jog read before the gap: the line may leave from any of it
    span = (max(s0, cur - INK_JOG_PX) - reach, min(e0 - 1, cur + INK_JOG_PX) + reach)
    for r in range(1, n + 1):
        runs = _ink_runs(ink, r, *span)
        at = [(s, e) for s, e in runs if s <= cur + reach and e - 1 >= cur - reach]
        # ink where the line was: it goes on there (or is crossed); elsewhere in the span
        # only where nothing is (the far end of a jog, after a drop-out)
        cand = [(abs((s + e - 1) / 2 - cur), s, e) for s, e in (at or runs) if e - s <= wide]
        cand = [v for v in cand if span[0] <= (v[1] + v[2] - 1) / 2 <= span[1]]
        # a stair step's jogs are wide runs on the line: ink of the line all the same
        inked += bool(cand or at)
        if cand:
            _, s, e = min(cand)
            out[r - 1] = cur = (s + e - 1) / 2
            across = miss = 0
            span = (cur - reach, cur + reach)
        elif at:                              # a wider run over the line: step over it
            across, miss = across + 1, 0
            s, e = min(at, key=lambda v: v[0])
            span = (max(min(span[0], s - reach), cur - INK_JOG_PX),
                    min(max(span[1], e - 1 + reach), cur + INK_JOG_PX))
            if across > INK_LINE_ROWS:
                return None
        else:                                 # no ink: the line may drift on as in a gap
            miss, across = miss + 1, 0
            span = (span[0] - INK_STEP_PX, span[1] + INK_STEP_PX)
            if miss > INK_MISS_ROWS:
                return None
    s1, e1 = ends[1]        # ... and must reach the run read after it (or jog into it)
    reached = s1 - reach <= cur <= e1 - 1 + reach or \
        (across > 0 and span[0] <= (s1 + e1 - 1) / 2 <= span[1])
    if not reached or inked < INK_MIN_SHARE * n:
        return None
    return out


def follow_ink_gaps(t: CurveTrace, grey: np.ndarray, threshold: int, xl: float, xr: float,
                    shift: np.ndarray | None = None, min_gap: int = 0,
                    others: list[np.ndarray] = (), vlines: np.ndarray | None = None,
                    max_shared: float = 0.25) -> CurveTrace:
    """``t`` with NaN stretches longer than ``min_gap`` rows filled where one line of ink
    (:func:`follow_ink`) runs from the column read before the stretch to the column read
    after it: a stretch the network did not label, mostly a curve held straight down the
    track, which it takes for a grid line.

    Left as they are: stretches whose ends lie off the main trace (backup traces of a
    wrapped curve, fractions outside [0, 1]), whose line runs within :data:`INK_VLINE_PX`
    of a vertical grid line of the layout (``vlines``: float [L] columns, in the
    straight frame) on more than ``max_shared`` of its rows, or along one of ``others``
    (the other curves' reads, float [H] fractions) within half the pen + 1 px: there
    the ink is the grid or another curve, and the curve may have gone anywhere. Rows
    read so are observed, at :data:`INK_CONFIDENCE`.

    Parameters
    ----------
    t : CurveTrace
        One curve of the track ([H] arrays).
    grey : uint8 [H, W]
        The deskewed scan; ink is ``grey < threshold``.
    xl, xr : float
        Columns of fractions 0 and 1; ``shift`` float [H] or None: the borders' drift.
    """
    H, W = grey.shape
    width = float(xr - xl)
    frac, obs, conf = t.frac.copy(), t.observed.copy(), t.confidence.copy()
    sh = np.zeros(H) if shift is None else np.asarray(shift, np.float64)
    vl = np.zeros(0) if vlines is None else np.asarray(vlines, np.float64)
    for a, b in nan_gaps(t.frac):
        n = b - a - 1
        if n <= min_gap or not (0.0 <= frac[a] <= 1.0 and 0.0 <= frac[b] <= 1.0):
            continue
        ca, cb = xl + frac[a] * width + sh[a], xl + frac[b] * width + sh[b]
        c0 = max(0, int(math.floor(xl + sh[a:b + 1].min())))      # the track's columns
        c1 = min(W, int(math.ceil(xr + sh[a:b + 1].max())) + 1)
        if c1 - c0 < 2:
            continue
        dark = grey[a:b + 1, c0:c1] < threshold
        line = follow_ink(dark, ca - c0, cb - c0)
        if line is None:
            continue
        s0, e0 = _run_at(find_runs(dark[:1], merge_px=0), 0, ca - c0)   # follow_ink found it
        pen = float(e0 - s0)
        got = np.isfinite(line)
        if not got.any():
            continue
        straight = line + c0 - sh[a + 1:b]            # columns in the track's straight frame
        if len(vl):
            near = np.abs(straight[got][:, None] - vl[None, :]).min(1) <= INK_VLINE_PX
            if near.mean() > max_shared:
                continue
        f = (straight - xl) / width
        shared = np.zeros(n, bool)
        with np.errstate(invalid="ignore"):
            for o in others:
                shared |= np.abs(f - o[a + 1:b]) * width <= pen / 2 + 1
        if shared[got].mean() > max_shared:
            continue
        idx = np.concatenate([[-1], np.flatnonzero(got), [n]])   # the gap's ends anchor it
        val = np.concatenate([[frac[a]], f[got], [frac[b]]])
        frac[a + 1:b] = np.interp(np.arange(n), idx, val)
        obs[a + 1:b] = got
        conf[a + 1:b] = np.where(got, INK_CONFIDENCE, 0.0)
    return CurveTrace(frac, obs, conf)


def path_line_width(runs: Runs, path: np.ndarray) -> float:
    """Pen width (px) of a traced curve: the 20th percentile of its chosen runs' widths
    (runs where the curve is steep are as wide as the pen)."""
    j = path[path >= 0]
    if not len(j):
        return 1.0
    return float(max(1.0, np.percentile(runs.ends[j] - runs.starts[j], 20)))


def wide_rows(runs: Runs, path: np.ndarray, factor: float, extra_px: float) -> np.ndarray:
    """bool [n]: rows whose chosen run is wider than ``factor`` x the pen width
    (:func:`path_line_width`) + ``extra_px``. 0 ``factor``: none."""
    wide = np.zeros(len(path), bool)
    ok = path >= 0
    if factor <= 0 or ok.sum() < 3:
        return wide
    lw = path_line_width(runs, path)
    j = path[ok]
    wide[ok] = (runs.ends[j] - runs.starts[j]) > factor * lw + extra_px
    return wide


#: a stretch of wide runs is a line blob when consecutive rows' runs overlap this much
#: (intersection over union of their extents) ...
BLOB_OVERLAP = 0.6
#: ... and the curve leaves it this near (share of the mean run width) where it entered
BLOB_THROUGH = 0.25


def settle_wide_runs(runs: Runs, path: np.ndarray, x: np.ndarray, wide: np.ndarray,
                     max_rows: int, line_rows: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``x`` [n] with stretches of :func:`wide_rows` (at most ``max_rows`` rows,
    ordinary rows either side) where the curve is merged with other ink moved onto the
    straight line between those ordinary rows, clamped into each row's run (less half
    the pen width). Returns ``(x, settled)``, ``settled`` bool [n].

    A stretch is settled when it touches ``line_rows`` (bool [n], rows on horizontal
    grid lines; None: every stretch), or when it is a line blob: 2 or more rows whose
    runs cover nearly the same columns (:data:`BLOB_OVERLAP`) while the curve leaves
    near where it entered (:data:`BLOB_THROUGH`): a heavy, thick or tilted line that the
    network labelled curve along part of its length. A curve sweeping across the track
    (it leaves far from where it entered) or a spike (each row's run starts where the
    last one ended) keeps its runs' middles. Without this a curve crossing a heavy line
    gets a spike towards the middle of the labelled part of the line (and
    :func:`refine_extremes` would push it to the end)."""
    x = x.copy()
    settled = np.zeros(len(x), bool)
    if not wide.any():
        return x, settled
    hw = (path_line_width(runs, path) - 1) / 2.0
    for a, b in zip(*true_stretches(wide)):   # stretch [a, b)
        r0, r1 = a - 1, b
        if b - a > max_rows or r0 < 0 or r1 >= len(x) or not (
                np.isfinite(x[r0]) and np.isfinite(x[r1])):
            continue
        rr = np.arange(a, b)
        j = path[rr]
        lo = runs.starts[j] + hw
        hi = np.maximum(lo, runs.ends[j] - 1 - hw)
        if line_rows is not None and not np.asarray(line_rows, bool)[a:b].any():
            if len(j) < 2:     # one row: a spike's tip as likely as a thin line
                continue
            s, e = runs.starts[j], runs.ends[j]
            overlap = ((np.minimum(e[1:], e[:-1]) - np.maximum(s[1:], s[:-1]))
                       / (np.maximum(e[1:], e[:-1]) - np.minimum(s[1:], s[:-1]))).min()
            through = abs(x[r1] - x[r0]) < BLOB_THROUGH * float(np.mean(e - s))
            if not (overlap >= BLOB_OVERLAP and through):
                continue
        line = x[r0] + (rr - r0) / (r1 - r0) * (x[r1] - x[r0])
        x[rr] = np.clip(line, lo, hi)
        settled[rr] = True
    return x, settled


def refine_extremes(runs: Runs, path: np.ndarray, x: np.ndarray,
                    skip: np.ndarray | None = None) -> np.ndarray:
    """Sub-pixel positions at turning points: where the chosen run of a row sticks out
    past both neighbouring rows' centres on one side, the curve's vertex is at that
    end of the run (less half the pen width), not at the run's middle. Rows in ``skip``
    (bool [n], e.g. settled by :func:`settle_wide_runs`) are left as they are."""
    x = x.copy()
    ok = path >= 0
    if skip is not None:
        ok &= ~skip
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


def true_stretches(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal stretches of true values of a bool [N] ``mask``: (starts, ends) int
    arrays, each stretch ``[start, end)``."""
    d = np.diff(np.concatenate([[0], np.asarray(mask).astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def drop_blips(x: np.ndarray, max_len: int, tol: float) -> np.ndarray:
    """Drop short isolated stretches (at most ``max_len`` rows, NaN on both sides) that
    lie more than ``tol`` px off the straight line between their neighbours: specks
    next to the curve picked up inside dash gaps. Dots that lie on the curve stay."""
    x = np.asarray(x, dtype=np.float64).copy()
    ok = np.isfinite(x)
    if ok.sum() < 3 or max_len <= 0:
        return x
    a, b = true_stretches(ok)   # segments [a, b)
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


def drop_cross_strokes(x: np.ndarray, width: float, share: float, px_per_row: float,
                       gap: int) -> np.ndarray:
    """Drop isolated strokes that cross the track one way in a few rows: slanted grid
    lines, not curves.

    A stretch of ``x`` [N] (columns, px) is dropped when it has at least ``gap`` NaN rows
    (or the array's end) on both sides, spans at least ``share`` x ``width`` px, moves
    at least ``px_per_row`` px per row on average, and runs one way (its ends at least
    70 % of its span apart). On a scan whose paper slid at an angle the "horizontal"
    grid lines slope by a few degrees; the network can take one for a curve crossing
    the track in a dozen rows, and the tracker, bridging the gaps between successive
    lines, then draws a saw-tooth where the real curve runs outside the track. A real
    curve that crosses the track this fast is joined to the rest of its trace, and a
    spike comes back to where it started: neither is dropped.
    """
    x = np.asarray(x, dtype=np.float64).copy()
    if share <= 0 or width <= 0:
        return x
    ok = np.isfinite(x)
    a, b = true_stretches(ok)
    for k in range(len(a)):
        before = a[k] - b[k - 1] if k > 0 else gap      # the scan's ends count as gaps
        after = a[k + 1] - b[k] if k + 1 < len(a) else gap
        if before < gap or after < gap:
            continue
        seg = x[a[k]:b[k]]
        span = float(seg.max() - seg.min())
        if (span >= share * width and span >= px_per_row * len(seg)
                and abs(seg[-1] - seg[0]) >= 0.7 * span):
            x[a[k]:b[k]] = np.nan
    return x


def drop_line_spikes(x: np.ndarray, line_rows: np.ndarray | None, tol: float,
                     reach: int, longest: int = TrackerConfig.line_spike_longest) -> np.ndarray:
    """Drop samples on horizontal grid-line rows that jump off the curve.

    ``x`` [n] columns (px, NaN where unread); ``line_rows`` bool [n]. A stretch of
    line rows is judged against the straight line between the nearest finite samples
    off the line rows, at most ``reach`` rows before and after it; its samples more
    than ``tol`` px off that line are set to NaN (and bridged later). Where a curve
    meets a heavy horizontal line on paper, the network often labels the line curve
    beside the crossing, and the path steps out along it for a row or two and back
    (BUR99, 30-025-12481): a spike at every heavy line. A real peak on a line
    row is kept when the slope on either side carries on to it. Stretches longer than
    ``longest`` rows are left alone: a dot screen or shading marks every row heavy.
    """
    x = np.asarray(x, dtype=np.float64).copy()
    if line_rows is None or tol <= 0 or reach <= 0:
        return x
    lr = np.asarray(line_rows, bool)[:len(x)]
    if not lr.any():
        return x
    ok = np.isfinite(x)
    a, b = true_stretches(lr)
    for s0, s1 in zip(a, b):
        if not ok[s0:s1].any():
            continue
        lo = np.flatnonzero(ok[max(0, s0 - reach):s0])
        hi = np.flatnonzero(ok[s1:s1 + reach])
        if len(lo) == 0 or len(hi) == 0:
            continue
        r0, r1 = max(0, s0 - reach) + lo[-1], s1 + hi[0]
        # out along the line and back: the two sides agree (a step is left to the path)
        if lr[r0] or lr[r1] or s1 - s0 > longest or abs(x[r1] - x[r0]) > tol:
            continue
        rr = np.arange(s0, s1)
        seg = x[s0:s1]
        off = ok[s0:s1] & (np.abs(seg - (x[r0] + (rr - r0) / (r1 - r0) * (x[r1] - x[r0])))
                           > tol)
        # a sharp real peak that happens to fall on a line row is met by steep flanks:
        # the samples carried on from either side predict it, so it is kept
        for r, nb in ((r0, r0 - 1), (r1, r1 + 1)):
            if 0 <= nb < len(x) and ok[nb] and not lr[nb]:
                off &= np.abs(seg - (x[r] + (rr - r) * (x[r] - x[nb]))) > tol
        x[rr[off]] = np.nan
    return x


def nan_gaps(x: np.ndarray, longest: int | None = None) -> list[tuple[int, int]]:
    """The NaN stretches of ``x`` [N] that have finite values on both sides, as
    ``(a, b)``: ``a`` the last finite sample before the stretch, ``b`` the first after
    it; only stretches of at most ``longest`` samples when given."""
    idx = np.flatnonzero(np.isfinite(x))
    if len(idx) < 2:
        return []
    n = np.diff(idx) - 1
    sel = (n > 0) if longest is None else (n > 0) & (n <= longest)
    return [(int(idx[k]), int(idx[k + 1])) for k in np.flatnonzero(sel)]


def bridge_gaps(x: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly fill NaN gaps of at most ``max_gap`` samples between finite values.

    Returns ``(filled, bridged)``: float [N] and bool [N] (true where filled here).
    """
    x = np.asarray(x, dtype=np.float64).copy()
    bridged = np.zeros(len(x), bool)
    for a, b in nan_gaps(x, max_gap):
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


def _narrow_keep(runs: Runs, cfg: TrackerConfig, width: float,
                 line_rows: np.ndarray | None = None,
                 counted: np.ndarray | None = None) -> np.ndarray:
    """bool [K]: runs kept, grid lines taken for curve pixels dropped: runs spanning more than
    ``cfg.max_run_share`` of the track width (horizontal lines; when ``line_rows`` bool
    [n_rows] is given, only on the rows it marks as horizontal grid lines, so a curve
    sweeping across the track elsewhere is kept), and narrow runs lying wholly in
    columns covered on more than ``cfg.vline_share`` of the rows (vertical lines: a
    curve does not sit on one column for most of a log). ``counted`` bool [K]: the runs
    that count towards a column's coverage (default all; weak runs are left out, as
    faint paper texture would make every column a line)."""
    drop = (runs.ends - runs.starts) > cfg.max_run_share * width
    if line_rows is not None and len(runs.rows):
        drop &= np.asarray(line_rows, bool)[runs.rows]
    n_rows = max(1, runs.n_rows)
    if len(runs.rows) and cfg.vline_share < 1:
        w = int(runs.ends.max()) + 1
        d = np.zeros(w + 1, np.int64)
        cst, cen = (runs.starts, runs.ends) if counted is None else \
            (runs.starts[counted], runs.ends[counted])
        np.add.at(d, cst, 1)
        np.add.at(d, cen, -1)
        core = np.cumsum(d)[:w] > cfg.vline_share * n_rows            # [w] bool
        line = core.copy()                                              # +-1 px tolerance
        line[1:] |= core[:-1]
        line[:-1] |= core[1:]
        cs = np.concatenate([[0], np.cumsum(~line)])                    # non-line columns
        inside = (cs[runs.ends] - cs[runs.starts]) == 0                 # wholly on a line
        drop |= inside & ((runs.ends - runs.starts) <= cfg.vline_max_px)
    return ~drop


def _narrow(runs: Runs, cfg: TrackerConfig, width: float,
            line_rows: np.ndarray | None = None) -> Runs:
    """:func:`_narrow_keep` applied."""
    keep = _narrow_keep(runs, cfg, width, line_rows)
    return runs if keep.all() else runs.subset(keep)


def track_window(xl: float, xr: float, width: int,
                 shift: np.ndarray | None = None) -> tuple[int, int]:
    """Columns ``[c0, c1)`` searched for a track whose edges are at ``xl``, ``xr``
    (widened by the extremes of the per-row border ``shift`` when given)."""
    lo = hi = 0
    if shift is not None and len(shift):
        lo, hi = int(np.floor(np.min(shift))), int(np.ceil(np.max(shift)))
    return (max(0, int(math.floor(xl)) + min(0, lo)),
            min(width, int(math.ceil(xr)) + 1 + max(0, hi)))


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


def relevel_segments(x: np.ndarray, period: float, min_gap: int,
                     near: float = RELEVEL_NEAR) -> np.ndarray:
    """Backup level of each stretch of a wrapped curve that no bridge joins to the rest.

    ``x`` float [n]: unrolled positions (window columns, level ``floor(x / period)``),
    NaN where not read. Across a gap longer than ``min_gap`` rows the tracker carries
    the level over by nearness alone, which says little after a long drop-out when the
    curve comes back far from where it left; such a stretch is moved by whole periods
    to spend the fewest rows off the main trace (the same prior the tracker's
    ``level_cost`` applies). A stretch that resumes within ``near`` x ``period`` of
    where the stretch before it ended (at some level) keeps that continuity instead:
    a curve that left at the middle of the track and comes back there has not wrapped,
    however long the gap or however long it later stays on a backup trace."""
    x = np.asarray(x, np.float64).copy()
    ok = np.flatnonzero(np.isfinite(x))
    if len(ok) < 2 or period <= 0:
        return x
    cut = np.flatnonzero(np.diff(ok) > min_gap + 1) + 1
    end = None
    for seg in np.split(ok, cut):
        lv = np.floor(x[seg] / period)
        ks = (-1, 0, 1)
        jump = {k: abs(x[seg[0]] + k * period - end) for k in ks} if end is not None else {}
        if jump and min(jump.values()) < near * period:
            k = min(ks, key=lambda v: jump[v])
        else:
            cost = {k: float(np.abs(lv + k).sum()) for k in ks}
            k = min(cost, key=lambda v: (cost[v], abs(v)))
        if k:
            x[seg] += k * period
        end = x[seg[-1]]
    return x


@dataclass
class _Frame:
    """Where a track is read: rows ``[top, bottom)``, track window ``[c0, c1)``, search
    window ``[w0, w1)`` (wider on drifting paper), integer drift per row ``ish`` [n]
    (None: straight paper) and its sub-pixel rest ``sub`` [n]."""

    top: int
    bottom: int
    c0: int
    c1: int
    w0: int
    w1: int
    ish: np.ndarray | None
    sub: np.ndarray

    def straight(self, runs: Runs) -> tuple[Runs, np.ndarray]:
        """Runs found over the search window, in the straight frame of the track
        window; with the index of each kept run in ``runs``."""
        if self.ish is None:
            return runs, np.arange(len(runs.rows))
        d = (self.c0 - self.w0) + self.ish[runs.rows]
        st = np.clip(runs.starts - d, 0, self.c1 - self.c0)
        en = np.clip(runs.ends - d, 0, self.c1 - self.c0)
        keep = np.flatnonzero(en > st)
        rows = runs.rows[keep]
        return Runs(rows, st[keep], en[keep],
                    np.searchsorted(rows, np.arange(runs.n_rows + 1))), keep


def _window_rows(rows_mask: np.ndarray | None, fr: "_Frame") -> np.ndarray | None:
    """A bool [H] row mask cut to the frame's rows (None stays None)."""
    return None if rows_mask is None else rows_mask[fr.top:fr.bottom]


def _frame(shape: tuple[int, int], xl: float, xr: float, rows: tuple[int, int] | None,
           shift: np.ndarray | None) -> _Frame:
    H, W = shape
    top, bottom = (0, H) if rows is None else (max(0, rows[0]), min(H, rows[1]))
    c0, c1 = track_window(xl, xr, W)
    sh = None if shift is None else np.asarray(shift, np.float64)[top:bottom]
    if sh is not None and not np.any(np.abs(sh) >= 0.5):
        sh = None
    w0, w1 = track_window(xl, xr, W, sh)
    ish = None if sh is None else np.rint(sh).astype(np.int64)
    sub = np.zeros(bottom - top) if sh is None else sh - ish
    return _Frame(top, bottom, c0, c1, w0, w1, ish, sub)


def _positions(runs: Runs, path: np.ndarray, cfg: TrackerConfig,
               line_rows: np.ndarray | None = None) -> np.ndarray:
    """Sub-pixel column per row of a Viterbi path: run middles, wide runs where the
    curve meets a line settled (:func:`settle_wide_runs`), vertices at turning points
    (:func:`refine_extremes`)."""
    x = path_centres(runs, path)
    wide = wide_rows(runs, path, cfg.wide_run_factor, cfg.wide_run_px)
    x, settled = settle_wide_runs(runs, path, x, wide, cfg.wide_run_rows, line_rows)
    if cfg.refine_extremes:   # a wide run on a line's rows is no vertex: its end is the line's
        on_line = wide if line_rows is None else wide & np.asarray(line_rows, bool)[:len(path)]
        x = refine_extremes(runs, path, x, skip=settled | on_line)
    return x


def _follow(runs: Runs, cfg: TrackerConfig, wrap: bool, width: float,
            emit: np.ndarray | None = None, busy_rows: np.ndarray | None = None,
            line_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Trace one curve through ``runs`` (window columns): (x float [n] sub-pixel column
    or NaN, indices of the runs used). Wrapped curves are traced in unrolled columns.
    ``line_rows`` bool [n]: rows on horizontal grid lines (:func:`_positions`)."""
    em = np.zeros(len(runs.rows)) if emit is None else np.asarray(emit, np.float64)
    if wrap:  # track in unrolled columns: levels -1, 0, +1 of backup traces
        uruns, lv, src = unroll(runs, int(round(width)))
        upath = viterbi_path(uruns, cfg, 0, cfg.level_cost * np.abs(lv) + em[src], busy_rows)
        x = _positions(uruns, upath, cfg, line_rows)
        used = src[upath[upath >= 0]]
        x = relevel_segments(x, period=float(round(width)), min_gap=cfg.max_gap_px)
    else:
        path = viterbi_path(runs, cfg, 0, None if emit is None else em, busy_rows)
        x = _positions(runs, path, cfg, line_rows)
        used = path[path >= 0]
    x = drop_blips(x, cfg.blip_rows, cfg.blip_px)
    x = drop_line_spikes(x, line_rows, cfg.line_spike_share * width, cfg.line_spike_rows,
                         cfg.line_spike_longest)
    if not wrap:   # a wrapped curve's unrolled trace jumps by design
        x = drop_cross_strokes(x, width, cfg.cross_share, cfg.cross_px_per_row, cfg.cross_gap)
    return x, used


def _result(x: np.ndarray, fr: _Frame, xl: float, width: float, shape: tuple[int, int],
            cfg: TrackerConfig, confidence: np.ndarray | None, conf_mask: int,
            conf_scale: float) -> CurveTrace | None:
    """Window-column positions ``x`` [n] of a traced curve -> :class:`CurveTrace` over the
    whole scan (fractions follow the drifting borders); None when read on too few rows."""
    H, W = shape
    x = x + fr.c0
    if int(np.isfinite(x).sum()) < cfg.min_rows:
        return None
    frac = (x - fr.sub - xl) / width
    frac, bridged = bridge_gaps(frac, cfg.max_gap_px)
    observed = np.isfinite(frac) & ~bridged
    conf = np.zeros(len(frac))
    if confidence is not None:
        rr = np.flatnonzero(observed)
        xs = x[rr] if fr.ish is None else x[rr] + fr.ish[rr]
        cc = np.clip(np.rint(xs).astype(np.int64), 0, W - 1)
        conf[rr] = (confidence[rr + fr.top, cc] & conf_mask) / conf_scale
    else:
        conf[observed] = 1.0
    full = np.full(H, np.nan)
    full[fr.top:fr.bottom] = frac
    fobs = np.zeros(H, bool)
    fobs[fr.top:fr.bottom] = observed
    fconf = np.zeros(H)
    fconf[fr.top:fr.bottom] = conf
    return CurveTrace(full, fobs, fconf)


def _conf_source(confidence: np.ndarray | None, code: np.ndarray | None):
    """(array, bit mask, full scale) the per-sample confidence is read from."""
    if confidence is None and code is not None:
        return code, CODE_P_MASK, float(CODE_P_LEVELS)
    return confidence, 0xFF, 255.0


def _merge_for(cls: int, cfg: TrackerConfig) -> int:
    return cfg.merge_px if cls == STYLE_TO_CLASS["solid"] else cfg.merge_broken_px


def trace_curves(classes: np.ndarray, cls: int, xl: float, xr: float, n_curves: int = 1,
                 cfg: TrackerConfig | None = None, wrap: list[bool] | None = None,
                 confidence: np.ndarray | None = None, rows: tuple[int, int] | None = None,
                 masks: list[np.ndarray] | None = None, code: np.ndarray | None = None,
                 allowed: frozenset[int] | None = None, shift: np.ndarray | None = None,
                 line_rows: np.ndarray | None = None,
                 ink_rows: np.ndarray | None = None) -> list[CurveTrace | None]:
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
    masks : list of bool [bottom - top, w1 - w0] or None
        Per-curve masks over the window ``(w0, w1) = track_window(xl, xr, W,
        shift[top:bottom])`` (e.g. split by colour), used instead of the class pixels.
    code : uint8 [H, W] or None
        Curve code of the segmenter; with ``allowed`` (class ids the track holds) the
        pixels read are :func:`style_mask` (P(curve) >= ``cfg.curve_p_min``, best
        allowed style), not the argmax.
    allowed : frozenset of int or None
    shift : float [H] or None
        Paper drift: the track's borders run ``shift[r]`` px right of ``xl``/``xr`` at
        row ``r`` (:meth:`logdigit.layout.Layout.drift_at`); fractions follow them.
    line_rows : bool [H] or None
        Rows on horizontal grid lines: runs wider than ``cfg.max_run_share`` of the
        track are dropped only there (None: everywhere).
    ink_rows : bool [H] or None
        Rows inked across much of the tracks (heavy lines, also thick or tilted ones
        that ``line_rows`` leaves out): wide runs there are settled
        (:func:`settle_wide_runs`); None: ``line_rows``.

    Returns
    -------
    list of CurveTrace or None (None: fewer than ``cfg.min_rows`` rows read).
    """
    cfg = cfg or TrackerConfig()
    fr = _frame(classes.shape, xl, xr, rows, shift)
    wrap = list(wrap or [False] * n_curves)
    width = float(xr - xl)
    merge = _merge_for(cls, cfg)
    conf_src = _conf_source(confidence, code)
    lrows = _window_rows(line_rows, fr)
    srows = _window_rows(ink_rows if ink_rows is not None else line_rows, fr)
    shared = None
    if masks is None:
        found = find_class_runs(classes, cls, (fr.top, fr.bottom), (fr.w0, fr.w1), merge,
                                code=code, allowed=allowed, p_min=cfg.curve_p_min)
        shared = _narrow(fr.straight(found)[0], cfg, width, lrows)
    out: list[CurveTrace | None] = []
    for k in range(n_curves):
        runs = shared if masks is None else _narrow(fr.straight(find_runs(masks[k], merge))[0],
                                                    cfg, width, lrows)
        x, used = _follow(runs, cfg, wrap[k], width, line_rows=srows)
        if masks is None:  # the next curve of this style uses what this one left
            keep = np.ones(len(runs.rows), bool)
            keep[used] = False
            shared = runs.subset(keep)
        out.append(_result(x, fr, xl, width, classes.shape, cfg, *conf_src))
    return out


def find_curve_runs(code: np.ndarray, rows: tuple[int, int], cols: tuple[int, int],
                    p_min: float, styles: list[int], merge_px: int = 2,
                    merge_broken_px: int = 12, block: int = 8192,
                    p_strong: float | None = None) -> tuple[Runs, np.ndarray, np.ndarray]:
    """Runs of likely-curve pixels (P(curve) >= ``p_min``, any style) over ``rows`` x
    ``cols`` (rows relative to ``rows[0]``), and per run the share of its curve pixels
    whose best allowed style (:func:`style_mask` with ``styles``) is each of
    ``styles``: float32 [K, len(styles)]; and the share of each run's pixels with
    P(curve) >= ``p_strong``: float32 [K] (all 1 when ``p_strong`` is None or not above
    ``p_min``).

    Runs closer than ``merge_px`` are merged; runs closer than ``merge_broken_px`` too
    when both are mostly of the same broken style (dashes of one curve in a flat
    stretch), but not when they are of different styles (two curves side by side)."""
    top, bottom = rows
    c0, c1 = cols
    allowed = frozenset(styles)
    level = code_p_level(p_min)
    broken = np.array([st != STYLE_TO_CLASS["solid"] for st in styles])
    parts = []
    for r0 in range(top, bottom, block):
        r1 = min(bottom, r0 + block)
        cb = code[r0:r1, c0:c1]
        pm = (cb & CODE_P_MASK) >= level
        rr = find_runs(pm, merge_px)
        n_pm = _row_cumsum(pm)
        tot = n_pm[rr.rows, rr.ends] - n_pm[rr.rows, rr.starts]
        if p_strong is not None and code_p_level(p_strong) > level:
            ns = _row_cumsum((cb & CODE_P_MASK) >= code_p_level(p_strong))
            strong = ns[rr.rows, rr.ends] - ns[rr.rows, rr.starts]
        else:
            strong = tot
        cnt = np.empty((len(rr.rows), len(styles)), np.int64)
        for k, st in enumerate(styles):
            cs = _row_cumsum(style_mask(cb, st, cb, allowed, p_min))
            cnt[:, k] = cs[rr.rows, rr.ends] - cs[rr.rows, rr.starts]
        r, st_, en = rr.rows, rr.starts, rr.ends
        if len(r) > 1 and merge_broken_px > merge_px:
            dom = np.argmax(cnt, axis=1)
            join = ((r[1:] == r[:-1]) & (st_[1:] - en[:-1] < merge_broken_px)
                    & (dom[1:] == dom[:-1]) & broken[dom[1:]] & (cnt.max(1)[1:] > 0))
            first = np.flatnonzero(np.concatenate([[True], ~join]))
            last = np.append(first[1:], len(r)) - 1
            cnt = np.add.reduceat(cnt, first, axis=0)
            tot = np.add.reduceat(tot, first)
            strong = np.add.reduceat(strong, first)
            r, st_, en = r[first], st_[first], en[last]
        share = (cnt / np.maximum(tot, 1)[:, None]).astype(np.float32)
        parts.append((r + (r0 - top), st_, en, share,
                      (strong / np.maximum(tot, 1)).astype(np.float32)))
    if not parts:
        z = np.zeros(0, np.int64)
        return (Runs(z, z, z, np.zeros(bottom - top + 1, np.int64)),
                np.zeros((0, len(styles)), np.float32), np.zeros(0, np.float32))
    r = np.concatenate([p[0] for p in parts])
    runs = Runs(r, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
                np.searchsorted(r, np.arange(bottom - top + 1)))
    return runs, np.concatenate([p[3] for p in parts]), np.concatenate([p[4] for p in parts])


def _row_cumsum(m: np.ndarray) -> np.ndarray:
    """int32 [h, w + 1]: count of true pixels left of each column, per row."""
    out = np.zeros((m.shape[0], m.shape[1] + 1), np.int32)
    np.cumsum(m, axis=1, dtype=np.int32, out=out[:, 1:])
    return out


def trace_track(code: np.ndarray, curves: list[tuple[int, bool]], xl: float, xr: float,
                cfg: TrackerConfig | None = None, rows: tuple[int, int] | None = None,
                confidence: np.ndarray | None = None, shift: np.ndarray | None = None,
                line_rows: np.ndarray | None = None,
                ink_rows: np.ndarray | None = None) -> list[CurveTrace | None]:
    """Read all curves of a calibrated track from the curve code, jointly.

    Every curve is traced through the runs of likely-curve pixels of *any* style
    (:func:`find_curve_runs`, P(curve) >= ``cfg.curve_p_min``), and of weak ones down to
    ``cfg.curve_p_weak`` at ``cfg.weak_cost`` per row times the run's share of weak pixels
    (cheaper than a miss, dearer than any strong run: where the network barely sees a
    faded stretch the path still follows it, but it never leaves a strong run for a
    weak one); a run costs
    ``cfg.style_cost`` per row times the share of its pixels that are not of the
    curve's style (by the best style the track lists), so a curve keeps its line
    through stretches the network labelled with a wrong style instead of losing it,
    while another curve's line stays expensive. Curves are read in order of their
    style's evidence in the track, each on the runs the earlier ones did not take
    (crossings become short gaps). Skipping a row with candidates and jumping cost
    ``cfg.code_miss_busy_cost`` / ``cfg.code_teleport_cost`` here: the other curves'
    pixels are everywhere, and jumping onto them is the typical failure.

    Parameters
    ----------
    code : uint8 [H, W]
        Curve code (:func:`logdigit.segment.logits_to_codes`) of the deskewed scan.
    curves : list of (class id or tuple of class ids, wrap)
        The track's curves in output order; a tuple: a curve drawn in any of these
        styles (an uncalibrated curve the network labels several ways).
    xl, xr, cfg, rows, confidence, shift, line_rows, ink_rows
        As in :func:`trace_curves`.

    Gaps longer than ``cfg.max_gap_px`` that the read leaves are filled from a second
    read at ``cfg.fill_style_cost`` (below the cost of a miss, so it follows runs of
    another style rather than skip them: a curve the network labels with a wrong style
    for a long stretch), but only where that read meets the first one, within
    ``cfg.fill_anchor`` of the track width, at both ends of the gap, and does not run
    along another curve's read (:func:`fill_anchored_gaps`); elsewhere the cheaper
    read would as soon follow a neighbouring curve. The second read covers only the
    gaps and :data:`FILL_MARGIN_ROWS` either side of each.

    Returns
    -------
    list of CurveTrace or None, in the order of ``curves``.
    """
    cfg = cfg or TrackerConfig()
    out = _trace_track_once(code, curves, xl, xr, cfg, rows, confidence, shift, line_rows,
                            ink_rows=ink_rows)
    out = reassign_detours(out, cfg.detour_tol, cfg.max_gap_px)
    if not 0 < cfg.fill_style_cost < cfg.style_cost:
        return out
    H = code.shape[0]
    top, bottom = (0, H) if rows is None else rows
    fill_cfg = replace(cfg, style_cost=cfg.fill_style_cost, fill_style_cost=0.0)
    filled = list(out)
    for k, t in enumerate(out):
        windows = [] if t is None else _gap_windows(t, FILL_MARGIN_ROWS, (top, bottom))
        if not windows:
            continue
        others = [o.frac for j, o in enumerate(out) if j != k and o is not None]
        second = CurveTrace(np.full(H, np.nan), np.zeros(H, bool), np.zeros(H))
        for w0, w1 in windows:   # the second read only around the curve's gaps
            got = _trace_track_once(code, curves, xl, xr, fill_cfg, (w0, w1), confidence,
                                    shift, line_rows, only=k, claimed=others,
                                    ink_rows=ink_rows)[k]
            if got is not None:
                for dst, src in zip((second.frac, second.observed, second.confidence),
                                    (got.frac, got.observed, got.confidence)):
                    dst[w0:w1] = src[w0:w1]
        filled[k] = fill_anchored_gaps(t, second, cfg.fill_anchor, others)
    return filled


def _gap_windows(t: CurveTrace, margin: int, rows: tuple[int, int]) -> list[tuple[int, int]]:
    """Row windows [w0, w1) holding every inner NaN stretch of ``t`` with ``margin`` rows
    either side (within ``rows``), overlapping ones merged."""
    out: list[tuple[int, int]] = []
    for s, e in nan_gaps(t.frac):
        a, b = max(rows[0], s - margin), min(rows[1], e + 1 + margin)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


#: a detour is this many rows at least ...
DETOUR_MIN_ROWS = 10
#: ... and runs along the other curve's line on this share of that curve's gap
DETOUR_MIN_SHARE = 0.6
#: rows either side of a detour searched for where the detouring curve came from
DETOUR_MARGIN = 12
#: (x tol) how near B's straight line A must run (B wiggles inside its gap) ...
DETOUR_LINE = 2.5
#: ... and how far away A came from and went back to
DETOUR_FROM = 4.0


def reassign_detours(traces: list[CurveTrace | None], tol: float,
                     max_gap: int = 0) -> list[CurveTrace | None]:
    """Give back stretches one curve read on another curve's line while that one went
    unread: the joint read takes curves one after the other, and the first may leave its
    own line (where the network labels it poorly) for a neighbour's, which is then left
    with a gap exactly there.

    For each unobserved stretch of curve B (NaN or bridged, observed rows either side,
    at least :data:`DETOUR_MIN_ROWS`), a curve A whose read runs within
    :data:`DETOUR_LINE` ``x tol`` (share of the track width) of the straight line between
    B's ends on :data:`DETOUR_MIN_SHARE` of the stretch, starts and ends there within
    ``tol`` of B's ends, and on both sides came from (and went back to) somewhere at least
    :data:`DETOUR_FROM` ``x tol`` away from them (within
    :data:`DETOUR_MARGIN` rows; a curve merely crossing or running along B does not), hands
    those rows to B and is left NaN there (the gap fill may then find its own line);
    gaps of at most ``max_gap`` rows this leaves are bridged (:func:`bridge_gaps`).
    ``traces``: one track's curves ([H] fractions, unwrapped), returned as new objects
    where changed; ``tol`` 0: unchanged.
    """
    out = list(traces)
    if tol <= 0:
        return out
    for b, B in enumerate(out):
        if B is None:
            continue
        for g0, g1 in zip(*true_stretches(~B.observed)):   # [g0, g1)
            s, e = g0 - 1, g1
            if g1 - g0 < DETOUR_MIN_ROWS or s < 0 or e >= len(B.frac) or not (
                    B.observed[s] and B.observed[e]):
                continue
            rr = np.arange(g0, g1)
            bline = B.frac[s] + (rr - s) / (e - s) * (B.frac[e] - B.frac[s])
            for a, A in enumerate(out):
                if a == b or A is None:
                    continue
                with np.errstate(invalid="ignore"):
                    near = np.abs(A.frac[rr] - bline) < DETOUR_LINE * tol   # bridged rows count
                if near.sum() < DETOUR_MIN_SHARE * len(rr):
                    continue
                i0, i1 = int(rr[near][0]), int(rr[near][-1])
                if abs(A.frac[i0] - B.frac[s]) > tol or abs(A.frac[i1] - B.frac[e]) > tol:
                    continue
                pre = A.frac[max(0, i0 - DETOUR_MARGIN):i0]
                post = A.frac[i1 + 1:i1 + 1 + DETOUR_MARGIN]
                pre, post = pre[np.isfinite(pre)], post[np.isfinite(post)]
                if not (len(pre) and len(post) and abs(pre[0] - B.frac[s]) > DETOUR_FROM * tol
                        and abs(post[-1] - B.frac[e]) > DETOUR_FROM * tol):
                    continue
                fa, oa, ca = A.frac.copy(), A.observed.copy(), A.confidence.copy()
                fb, ob, cb = B.frac.copy(), B.observed.copy(), B.confidence.copy()
                sl = slice(i0, i1 + 1)
                fb[sl], ob[sl], cb[sl] = fa[sl], oa[sl], ca[sl]
                fb[g0:i0] = fb[i1 + 1:g1] = np.nan   # the rest of B's gap: bridged below
                ob[g0:i0] = ob[i1 + 1:g1] = False
                fa[sl], oa[sl], ca[sl] = np.nan, False, 0.0
                fa, fb = bridge_gaps(fa, max_gap)[0], bridge_gaps(fb, max_gap)[0]
                out[a], out[b] = CurveTrace(fa, oa, ca), CurveTrace(fb, ob, cb)
                B = out[b]
                break
    return out


def fill_anchored_gaps(a: CurveTrace, b: CurveTrace, tol: float,
                       others: list[np.ndarray] = (), max_shared: float = 0.25
                       ) -> CurveTrace:
    """``a`` with each NaN stretch that has readings on both sides filled from ``b``
    where ``b`` is within ``tol`` (fraction of width) of ``a`` on both bordering rows
    and runs along none of ``others`` (the other curves' reads, float [H] fractions)
    on more than ``max_shared`` of the stretch's rows (crossings aside, such a fill
    has left its curve for a neighbour's line and come back).

    ``a``, ``b``: two reads of one curve over the same rows ([H] each)."""
    frac, obs, conf = a.frac.copy(), a.observed.copy(), a.confidence.copy()
    for s, e in nan_gaps(a.frac):          # last read row before the gap, first after
        if not (np.isfinite(b.frac[s]) and np.isfinite(b.frac[e])
                and abs(b.frac[s] - frac[s]) < tol and abs(b.frac[e] - frac[e]) < tol):
            continue
        fill = b.frac[s + 1:e]
        shared = np.zeros(len(fill), bool)
        with np.errstate(invalid="ignore"):
            for o in others:    # distance around the track: wrapped reads are unrolled
                d = np.abs((fill - o[s + 1:e] + 0.5) % 1.0 - 0.5)
                shared |= d < tol
        if shared.sum() > max_shared * len(fill):
            continue
        frac[s + 1:e] = fill
        obs[s + 1:e] = b.observed[s + 1:e]
        conf[s + 1:e] = b.confidence[s + 1:e]
    return CurveTrace(frac, obs, conf)


def _trace_track_once(code, curves, xl, xr, cfg, rows, confidence, shift, line_rows,
                      only: int | None = None, claimed: list[np.ndarray] = (),
                      ink_rows: np.ndarray | None = None) -> list[CurveTrace | None]:
    """One joint read of a track's curves (:func:`trace_track` without the gap fill).

    ``only``: read just that curve, from the runs that none of ``claimed`` (the other
    curves' reads, fractions [H]) passes through: the others' lines are taken as read."""
    cfg = replace(cfg)
    cfg.miss_busy_cost, cfg.teleport_cost = cfg.code_miss_busy_cost, cfg.code_teleport_cost
    fr = _frame(code.shape, xl, xr, rows, shift)
    width = float(xr - xl)
    own_ids = [tuple(c) if isinstance(c, (tuple, list)) else (int(c),) for c, _ in curves]
    styles = sorted({c for ids in own_ids for c in ids})
    conf_src = _conf_source(confidence, code)
    found, share, strong = find_curve_runs(
        code, (fr.top, fr.bottom), (fr.w0, fr.w1), min(cfg.curve_p_weak or 1.0, cfg.curve_p_min),
        styles, cfg.merge_px, cfg.merge_broken_px, p_strong=cfg.curve_p_min)
    runs, kept = fr.straight(found)
    strong = strong[kept]
    keep = _narrow_keep(runs, cfg, width, _window_rows(line_rows, fr), strong >= 0.5)
    runs, share, strong = runs.subset(keep), share[kept][keep], strong[keep]
    if only is not None and claimed:
        free = np.ones(len(runs.rows), bool)
        rr = runs.rows + fr.top
        with np.errstate(invalid="ignore"):
            for f in claimed:    # window column of the other read on each run's row
                xc = (f[rr] % 1.0) * width + xl + fr.sub[runs.rows] - fr.c0
                free &= ~((xc >= runs.starts - 2) & (xc <= runs.ends + 1))
        runs, share, strong = runs.subset(free), share[free], strong[free]
    size = (runs.ends - runs.starts)[:, None]
    evidence = (share * size).sum(0)
    cols = [[styles.index(c) for c in ids] for ids in own_ids]
    srows = _window_rows(ink_rows if ink_rows is not None else line_rows, fr)   # settling rows
    order = ([only] if only is not None else
             sorted(range(len(curves)), key=lambda k: -float(evidence[cols[k]].sum())))
    out: list[CurveTrace | None] = [None] * len(curves)
    for k in order:
        wrap = curves[k][1]
        own = share[:, cols[k]].sum(1)
        busy = np.zeros(runs.n_rows, bool)
        busy[runs.rows[(own >= 0.5) & (strong >= 0.5)]] = True
        emit = cfg.style_cost * (1.0 - own) + cfg.weak_cost * (1.0 - strong)
        x, used = _follow(runs, cfg, wrap, width, emit, busy, srows)
        out[k] = _result(x, fr, xl, width, code.shape, cfg, *conf_src)
        left = np.ones(len(runs.rows), bool)   # the next curves use what this one left
        left[used] = False
        runs, share, strong = runs.subset(left), share[left], strong[left]
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
