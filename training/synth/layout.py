"""Page sampler: everything random about one page, drawn from ``(seed, page_id)``.

:func:`sample_page` returns a :class:`PageSpec` (layout, curves, print and scan
parameters); :func:`build_model` adds the per-row curve positions the drawing
code needs. Coordinates here are the *unrotated* page frame (rows ``u``,
columns ``v``); the scan skew is applied when a window is rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from logdigit.constants import CURVE_STYLES, STYLE_TO_CLASS

from .config import RenderConfig
from .earth import FAMILIES, LINEAR_GROUPS, LOG_GROUP, MODEL_STEP_FT, family_fraction, sample_beds

FT_PER_M = 1.0 / 0.3048

#: named print colours (RGB) for colour pages; the name goes into the calibration
CURVE_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20), "red": (210, 30, 30), "blue": (30, 50, 200), "green": (20, 140, 40),
    "magenta": (180, 30, 160), "brown": (140, 80, 20), "orange": (235, 120, 10),
}
GRID_COLOURS: tuple[tuple[int, int, int], ...] = (
    (120, 120, 120), (230, 140, 60), (90, 170, 90), (110, 140, 210), (220, 110, 110), (60, 60, 60))

#: recognised ``render_page`` overrides
OVERRIDES = frozenset({
    "height", "width", "px_per_ft", "n_tracks", "curves_per_track", "styles", "skew_deg",
    "binarize", "colour", "degrade", "wraps", "dropouts", "header", "metric", "line_width",
    "stretch", "same_style_colour",
})


def rng_for(seed: int, page_id: int, stream: int, *extra: int) -> np.random.Generator:
    """Independent generator for one random stream of one page (pure in its inputs)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(page_id) & 0xFFFFFFFF, stream, *extra])


@dataclass
class CurveSpec:
    """One curve: where, how it is drawn and its scale (position per model sample)."""

    track: int
    style: str
    family: str
    mnemonic: str
    unit: str
    left: float
    right: float
    scale: str
    wrap: bool
    width: int
    pattern: tuple[float, ...]          # on/off lengths (px) along the arc; () = solid
    colour: str | None                  # colour name on colour prints
    rgb: tuple[int, int, int]
    frac_model: np.ndarray              # float64 [N] position on the model depth grid (NaN = absent)

    @property
    def class_id(self) -> int:
        return STYLE_TO_CLASS[self.style]


@dataclass
class TrackSpec:
    """A track: border columns ``x0 < x1`` (unrotated frame) and its grid."""

    x0: int
    x1: int
    grid: str                           # "linear" or "log"
    decades: int = 0
    log_subdiv: tuple[int, ...] = ()
    minor_div: int = 0                  # linear: minor lines per major division (0 none)
    curves: list[int] = field(default_factory=list)   # indices into PageSpec.curves


@dataclass
class PageSpec:
    """Everything random about one page (see module docstring for the frame)."""

    seed: int
    page_id: int
    height: int
    width: int
    px_per_ft: float
    unit: str
    rows_per_unit: float                # pixel rows per depth unit (incl. stretch)
    stretch: float
    body_top: int
    body_bottom: int
    depth_top: float                    # depth at row body_top
    header_rows: int
    tracks: list[TrackSpec]
    curves: list[CurveSpec]
    depth_x: tuple[int, int]            # depth track columns
    label_step: float                   # depth label interval (depth unit)
    label_rotated: bool
    label_px: int                       # depth label text height
    hgrid: tuple[float, float, float]   # minor, mid, heavy line spacing (depth unit)
    hgrid_width: tuple[int, int, int]
    vgrid_width: tuple[int, int]        # minor, major vertical line widths
    border_width: int
    depth_ticks: bool
    model_top_ft: float
    colour: bool
    binarize: bool
    degrade: bool
    skew_deg: float
    ink: dict[str, Any]                 # darkness / colour of grid, text, curves
    header_items: list[tuple]           # (text, v, u, scale, thickness)
    header_lines: list[tuple]           # (v0, u0, v1, u1, thickness)
    legend: list[tuple]                 # (curve index, v0, v1, u)
    labels: list[tuple]                 # (text, v, u, scale, thickness) in-track curve names
    marks: list[tuple]                  # handwriting/stamps: (kind, payload)
    scan: dict[str, Any]                # degradation parameters
    meta: dict[str, Any] = field(default_factory=dict)
    leaders: list[tuple] = field(default_factory=list)  # (v0, u0, v1, u1, dashed, thickness): label arrows
    shading: list[tuple] = field(default_factory=list)  # (curve index, fill to right edge?, level, rgb)

    # -- depth <-> unrotated row --------------------------------------------
    def depth_of_u(self, u: np.ndarray | float) -> np.ndarray:
        return self.depth_top + (np.asarray(u, dtype=np.float64) - self.body_top) / self.rows_per_unit

    def u_of_depth(self, d: np.ndarray | float) -> np.ndarray:
        return self.body_top + (np.asarray(d, dtype=np.float64) - self.depth_top) * self.rows_per_unit

    def to_ft(self, d: np.ndarray | float) -> np.ndarray:
        return np.asarray(d, dtype=np.float64) * (FT_PER_M if self.unit == "M" else 1.0)

    @property
    def depth_bottom(self) -> float:
        return float(self.depth_of_u(self.body_bottom))


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------

_WORDS = ("COMPANY", "WELL", "FIELD", "COUNTY", "STATE", "LOCATION", "ELEV", "K.B.", "D.F.", "G.L.",
          "DATE", "RUN NO", "DEPTH-DRILLER", "DEPTH-LOGGER", "BTM LOG INTERVAL", "TOP LOG INTERVAL",
          "CASING-DRILLER", "BIT SIZE", "TYPE FLUID", "DENS", "VISC", "PH", "FLUID LOSS", "RM @ MEAS TEMP",
          "RMF", "RMC", "BHT", "RECORDED BY", "WITNESSED BY", "PERMANENT DATUM", "LOG MEASURED FROM",
          "API NO", "SEC", "TWP", "RGE", "MAX REC TEMP", "SOURCE OF SAMPLE", "TIME SINCE CIRC")
_NAMES = ("PETROLEUM", "OIL CO", "ENERGY", "EXPLORATION", "RESOURCES", "OPERATING", "UNIT", "FEDERAL",
          "STATE", "RANCH", "ESTATE", "WILDCAT", "NORTH", "SOUTH", "EAST", "WEST", "CREEK", "DOME")
_TITLES = ("INDUCTION ELECTRICAL LOG", "GAMMA RAY NEUTRON", "COMPENSATED DENSITY LOG",
           "BOREHOLE COMPENSATED SONIC LOG", "DUAL INDUCTION LATEROLOG", "ELECTRICAL LOG",
           "COMPENSATED NEUTRON LOG", "DUAL LATEROLOG", "SPECTRAL DENSITY DUAL SPACED NEUTRON")
_HAND = ("TD", "TOP", "PERF", "SAND", "SH", "CORE", "DST #1", "LS", "BASE", "OWC", "GOC", "?", "PAY",
         "SQZ", "CSG", "KOP", "MARKER", "X", "OK", "check")
_STAMPS = ("CONFIDENTIAL", "COPY", "RECEIVED", "FILE COPY", "FIELD PRINT", "PRELIMINARY", "LIBRARY")


def _uniform_int(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    return int(rng.integers(int(lo_hi[0]), int(lo_hi[1]) + 1))


def _loguniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _rand_text(rng: np.random.Generator) -> str:
    kind = rng.integers(0, 4)
    if kind == 0:
        return f"{rng.choice(_WORDS)}  {rng.integers(1, 9999)}"
    if kind == 1:
        return f"{rng.choice(_WORDS)}: {rng.choice(_NAMES)} {rng.choice(_NAMES)} #{rng.integers(1, 40)}"
    if kind == 2:
        return f"{rng.choice(_WORDS)}  {rng.uniform(0, 300):.2f} @ {rng.integers(40, 250)} F"
    return f"{rng.choice(_NAMES)} {rng.choice(_NAMES)} {rng.integers(1, 99)}-{rng.integers(1, 36)}"


def _pattern(rng: np.random.Generator, style: str, width: int) -> tuple[float, ...]:
    w = max(1, width)
    if style == "solid":
        return ()
    if style == "dashed":
        on = rng.uniform(7, 22) + 2 * w
        return (on, rng.uniform(0.35, 0.8) * on + w)
    if style == "dotted":
        on = rng.uniform(0.5, 1.8) * (1 if w <= 2 else 0.6)
        return (on, rng.uniform(2.5, 5.5) + 1.2 * w)
    on = rng.uniform(12, 26) + 2 * w          # dash-dot / long dash
    gap = rng.uniform(3.5, 7.0) + w
    r = rng.random()
    if r < 0.2:                                 # long dash - short dash
        return (on, gap, rng.uniform(4, 7) + w, gap)
    if r < 0.35:                                # long dash only (class dashdot per the class map)
        return (1.7 * on + 8, 1.3 * gap)
    return (on, gap, rng.uniform(0.5, 2.0), gap)


def _choose_styles(rng: np.random.Generator, n: int, weights: tuple[float, ...]) -> list[str]:
    w = np.asarray(weights, dtype=np.float64)
    if (w > 0).sum() < n:
        raise ValueError(f"style_weights {weights} allow fewer than {n} distinct styles per track")
    idx = rng.choice(len(CURVE_STYLES), size=n, replace=False, p=w / w.sum())
    return [CURVE_STYLES[i] for i in idx]


def sample_page(seed: int, page_id: int, cfg: RenderConfig, ov: dict[str, Any]) -> PageSpec:
    """Sample one page's layout, curves and print/scan parameters.

    ``ov`` holds forced values (see :data:`OVERRIDES`); anything not forced is
    drawn from ``cfg`` with generators derived from ``(seed, page_id)``.
    """
    unknown = set(ov) - OVERRIDES
    if unknown:
        raise TypeError(f"unknown render override(s) {sorted(unknown)}; allowed: {sorted(OVERRIDES)}")
    rng = rng_for(seed, page_id, 0)
    H = int(ov.get("height", _uniform_int(rng, cfg.height)))
    W = int(ov.get("width", _uniform_int(rng, cfg.width)))
    ppf = float(ov.get("px_per_ft", _loguniform(rng, cfg.px_per_ft)))
    metric = bool(ov.get("metric", rng.random() < cfg.metric_prob))
    unit = "M" if metric else "FT"
    ppu = ppf * (FT_PER_M if metric else 1.0)
    stretch = float(ov.get("stretch", rng.uniform(-cfg.stretch_max, cfg.stretch_max)))
    rpu = ppu * (1.0 + stretch)
    colour = bool(ov.get("colour", rng.random() < cfg.colour_prob))
    binarize = bool(ov.get("binarize", (not colour) and rng.random() < cfg.binarize_prob))
    degrade = bool(ov.get("degrade", rng.random() < cfg.degrade_prob))
    if "skew_deg" in ov:
        skew = float(ov["skew_deg"])
    else:
        skew = float(rng.uniform(-cfg.skew_max_deg, cfg.skew_max_deg)) if rng.random() < cfg.skew_prob else 0.0
    if not degrade and "skew_deg" not in ov:
        skew = 0.0

    # -- header ---------------------------------------------------------------
    has_header = bool(ov.get("header", rng.random() < cfg.header_prob))
    header_rows = min(_uniform_int(rng, cfg.header_rows), H // 3) if has_header else 0
    # -- depth scale --------------------------------------------------------------
    if metric:
        label_step = float(rng.choice([10.0, 20.0]) if ppu * 10 >= 30 else 20.0)
        minor_opts = (0.5, 1.0, 2.0, 5.0)
        mid = 5.0
    else:
        label_step = float(rng.choice([50.0, 100.0]) if ppu * 50 >= 60 else 100.0)
        minor_opts = (1.0, 2.0, 10.0)
        mid = 10.0
    # closest thin lines: mostly 14-45 px apart (10 ft at 1"/100 ft, 2 ft at 5"/100 ft);
    # a quarter of the pages print a dense fine grid (5-12 px)
    q = rng.uniform(0.0, 1.0)
    min_px = 5.0 + 7.0 * q / 0.25 if q < 0.25 else 14.0 + 31.0 * (q - 0.25) / 0.75
    minor = next((m for m in minor_opts if m * ppu >= min_px), minor_opts[-1])
    heavy = label_step if rng.random() < 0.6 else label_step / 2
    if heavy < mid:
        heavy = label_step
    hgrid = (minor, mid if mid > minor else minor, heavy)
    # pen scale: printed line weights in pixels grow with the scan resolution
    prng = rng_for(seed, page_id, 4)     # own stream: line weights never reshuffle the layout
    pen = int(prng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    thin = max(1, pen - int(rng.random() < 0.5))
    hgrid_width = (thin, thin + int(rng.random() < 0.6), thin + 1 + int(rng.random() < 0.5))
    vgrid_width = (thin, thin + int(rng.random() < 0.35))
    border_width = min(5, int(rng.integers(1, 4)) + pen - 1)

    # -- depth track and tracks -------------------------------------------------
    label_px = int(rng.integers(12, 30))
    label_rotated = bool(rng.random() < cfg.depth_rotated_prob)
    char_w = label_px * 0.9
    depth_w = int((label_px + 16) if label_rotated else (5 * char_w + 16))
    depth_w = max(depth_w, int(rng.uniform(60, 110)))
    margin_l = int(rng.integers(10, 60))
    margin_r = int(rng.integers(10, 60))
    avail = W - margin_l - margin_r - depth_w
    max_tracks = max(1, avail // cfg.min_track_px)
    if "n_tracks" in ov:
        n_tracks = int(ov["n_tracks"])
    else:
        n_tracks = min(_uniform_int(rng, cfg.n_tracks), max_tracks)
    min_w = min(cfg.min_track_px, max(40, avail // max(n_tracks, 1) - 4))
    props = rng.uniform(0.7, 1.6, n_tracks)
    widths = np.floor(min_w + (avail - n_tracks * min_w) * props / props.sum()).astype(int)
    depth_pos = 1 if (n_tracks >= 2 and rng.random() < cfg.depth_between_prob) else 0
    x = margin_l
    tracks: list[TrackSpec] = []
    depth_x = (0, 0)
    for t in range(n_tracks):
        if t == depth_pos:
            depth_x = (x, x + depth_w)
            x += depth_w
        x0, x1 = x, x + int(widths[t])
        x = x1
        is_log = rng.random() < cfg.log_track_prob and t != 0
        if is_log:
            dec = _uniform_int(rng, cfg.decades)
            sub = (2, 3, 4, 5, 6, 7, 8, 9) if rng.random() < 0.8 else (2, 5)
            tracks.append(TrackSpec(x0, x1, "log", decades=dec, log_subdiv=sub))
        else:
            minor_div = 0
            if rng.random() < cfg.minor_vgrid_prob and (x1 - x0) / 50 >= 4:
                minor_div = int(rng.choice([2, 5]))
            tracks.append(TrackSpec(x0, x1, "linear", minor_div=minor_div))

    # -- curves ---------------------------------------------------------------
    body_top = header_rows + (int(rng.integers(50, 150)) if has_header else int(rng.integers(0, 30)))
    footer = bool(rng.random() < cfg.footer_prob) and H > 1500
    body_bottom = H - int(rng.integers(0, 40)) - (int(rng.integers(70, 160)) if footer else 0)
    depth_top = float(rng.integers(5, 1500)) * (10.0 if not metric else 2.0)
    depth_top += rng.uniform(0, label_step)     # the page starts anywhere
    top_ft = depth_top * (FT_PER_M if metric else 1.0)
    bottom_ft = top_ft + (body_bottom - body_top) / rpu * (FT_PER_M if metric else 1.0)
    erng = rng_for(seed, page_id, 1)
    beds = sample_beds(erng, top_ft, bottom_ft)
    lw_lo, lw_hi = cfg.line_width
    analogue = rng.random() < cfg.analogue_prob     # wiggly old recording vs smooth digital print
    wiggle = float(rng.uniform(0.9, 2.2) if analogue else rng.uniform(0.25, 0.8))
    curves: list[CurveSpec] = []
    used_mn: set[str] = set()
    for t, tr in enumerate(tracks):
        if "styles" in ov:
            styles = list(ov["styles"])
        else:
            k = int(ov.get("curves_per_track", _uniform_int(rng, cfg.curves_per_track)))
            styles = _choose_styles(rng, k, cfg.style_weights)
        if tr.grid == "log":
            fams = [LOG_GROUP[i % len(LOG_GROUP)] for i in range(len(styles))]
        else:
            group = LINEAR_GROUPS[int(rng.integers(0, len(LINEAR_GROUPS)))]
            order = list(rng.permutation(len(group)))
            fams = [group[order[i % len(group)]] for i in range(len(styles))]
        log_left = float(rng.choice([0.2, 0.2, 1.0, 2.0, 0.1]))
        for style, fname in zip(styles, fams):
            fam = FAMILIES[fname]
            if tr.grid == "log":
                left, right, scale = log_left, log_left * 10 ** tr.decades, "log"
            else:
                left, right, scale = fam.scales[int(rng.integers(0, len(fam.scales)))]
            mn = next((m for m in rng.permutation(fam.mnemonics) if m not in used_mn), None)
            if mn is None:
                mn = f"{fam.mnemonics[0]}{len(curves) + 1}"
            used_mn.add(str(mn))
            if "wraps" in ov:
                wrap = bool(ov["wraps"]) and fam.wrap_ok
            else:
                wrap = fam.wrap_ok and erng.random() < cfg.wrap_prob
            frac = family_fraction(erng, fam, beds, float(left), float(right), scale, wrap, wiggle)
            if analogue:    # sharp single-sample spikes of old analogue recordings (own stream)
                frac = _spikes(rng_for(seed, page_id, 8, len(curves)), frac, wrap)
            frac = _holds(rng_for(seed, page_id, 9, len(curves)), frac, cfg)
            if bool(ov.get("wraps", False)) and wrap:
                frac = _force_excursion(erng, frac)
            frac = _dropouts(erng, frac, cfg, ov, rpu / (FT_PER_M if metric else 1.0))
            if wrap:
                frac = _on_main_trace(frac, (beds.depth_ft >= top_ft) & (beds.depth_ft <= bottom_ft))
            if "line_width" in ov:
                width = int(ov["line_width"])
            else:
                width = int(np.clip(pen + np.floor(prng.exponential(0.6)) - int(prng.random() < 0.3),
                                    lw_lo, lw_hi))
            cname = None
            rgb = (20, 20, 20)
            if colour:
                cname = str(erng.choice(list(CURVE_COLOURS)))
                rgb = CURVE_COLOURS[cname]
            tr.curves.append(len(curves))
            curves.append(CurveSpec(t, style, fname, str(mn), fam.unit, float(left), float(right), scale,
                                    wrap, width, _pattern(erng, style, width), cname, rgb, frac))
    # colour prints: two curves of one style in a track, told apart only by colour
    srng = rng_for(seed, page_id, 7)
    if colour and bool(ov.get("same_style_colour", srng.random() < cfg.same_style_colour_prob)):
        for tr in tracks:
            if len(tr.curves) >= 2:
                a, b = curves[tr.curves[0]], curves[tr.curves[1]]
                b.style, b.pattern = a.style, a.pattern
                if b.colour == a.colour:
                    b.colour = next(n for n in CURVE_COLOURS if n != a.colour)
                    b.rgb = CURVE_COLOURS[b.colour]
    # -- text, legend, labels, marks ------------------------------------------------
    tsc = rng.uniform(0.4, 0.8)
    header_items, header_lines = [], []
    if has_header:
        u = int(rng.integers(10, 30))
        title_scale = tsc * 1.6
        header_items.append((str(rng.choice(_TITLES)), margin_l + int(rng.integers(0, 80)), u + int(28 * title_scale),
                             title_scale, 2))
        u += int(40 * title_scale) + 10
        header_lines.append((margin_l, u, W - margin_r, u, 2))
        line_h = int(30 * tsc) + int(rng.integers(4, 14))
        ncol = int(rng.integers(1, 3))
        while u + line_h < header_rows - 10:
            u += line_h
            for c in range(ncol):
                header_items.append((_rand_text(rng), margin_l + 8 + c * (W // ncol), u, tsc, 1))
            if rng.random() < 0.25:
                header_lines.append((margin_l, u + 6, W - margin_r, u + 6, 1))
        header_lines.append((margin_l, header_rows, W - margin_r, header_rows, 2))
        xrng = rng_for(seed, page_id, 5)
        if xrng.random() < 0.5:   # boxed header fields: column rules and a frame
            top_rule = header_lines[0][1]
            for c in range(1, ncol):
                header_lines.append((margin_l + c * (W // ncol), top_rule, margin_l + c * (W // ncol), header_rows, 1))
            for v in (margin_l, W - margin_r):
                header_lines.append((v, top_rule, v, header_rows, 2))
    legend, labels = [], []
    if has_header:   # track header band: curve names, scale values and a line sample per curve
        _scale_band(rng, tracks, curves, header_rows, body_top, legend, labels, header_lines, W, margin_l, margin_r)
    if footer:       # the same band repeated below the log
        _scale_band(rng, tracks, curves, body_bottom + 6, H - 4, legend, labels, header_lines, W, margin_l,
                    margin_r)
    # curve names repeated inside the tracks
    step = _uniform_int(rng, cfg.label_every_px)
    u = body_top + int(rng.integers(100, 600))
    while u < body_bottom - 50:
        for tr in tracks:
            for j, ci in enumerate(tr.curves):
                if rng.random() < 0.7:
                    c = curves[ci]
                    sc = 0.35 + 0.25 * rng.random()
                    v = int(rng.uniform(tr.x0 + 5, max(tr.x0 + 6, tr.x1 - 90)))
                    labels.append((c.mnemonic, v, u + 22 * j, sc, 1))
        u += step
    marks = _marks(rng, cfg, tracks, body_top, body_bottom, header_rows, W)

    # -- print and scan parameters ----------------------------------------------------
    g = float(rng.uniform(0.35, 1.0))
    ink = {
        "grid": g, "grid_major": min(1.0, g + rng.uniform(0.0, 0.4)),
        "grid_h": float(rng.uniform(0.4, 0.9) if binarize else rng.uniform(0.6, 1.0)),  # horizontal lines
                                                   # print / scan fainter than vertical ones
        "text": float(rng.uniform(0.75, 1.0)), "curve": float(rng.uniform(0.8, 1.0)),
        "grid_rgb": GRID_COLOURS[int(rng.integers(0, len(GRID_COLOURS)))] if colour else None,
        "minor_dash": None,
    }
    if rng.random() < cfg.dashed_grid_prob:   # printed dashed / dotted minor grid lines
        on = int(rng.integers(1, 7))
        ink["minor_dash"] = (on, on + int(rng.integers(2, 7)), int(rng.integers(0, 50)))
    ink["font"] = int(rng.choice([0, 0, 1, 2, 3, 4]))   # Hershey face for text and depth numbers
    scan = _scan_params(rng_for(seed, page_id, 2), cfg, H, W, binarize, colour)
    spec = PageSpec(
        seed=int(seed), page_id=int(page_id), height=H, width=W, px_per_ft=ppf, unit=unit,
        rows_per_unit=rpu, stretch=stretch, body_top=body_top, body_bottom=body_bottom,
        depth_top=depth_top, header_rows=header_rows, tracks=tracks, curves=curves, depth_x=depth_x,
        label_step=label_step, label_rotated=label_rotated, label_px=label_px, hgrid=hgrid,
        hgrid_width=hgrid_width, vgrid_width=vgrid_width, border_width=border_width,
        depth_ticks=bool(rng.random() < 0.5), model_top_ft=float(beds.depth_ft[0]), colour=colour,
        binarize=binarize, degrade=degrade, skew_deg=skew, ink=ink, header_items=header_items,
        header_lines=header_lines, legend=legend, labels=labels, marks=marks, scan=scan)
    if rng.random() < cfg.leader_prob:
        _add_leaders(spec, rng)
    _add_print_extras(spec, cfg, rng_for(seed, page_id, 6))
    return spec


def _add_print_extras(spec: PageSpec, cfg: RenderConfig, rng: np.random.Generator) -> None:
    """Shading between a curve and a track edge (vendor prints) and hatched boxes
    (perforations, cores, casing marks) in the depth track or the first track."""
    if rng.random() < (cfg.shading_prob * (2.0 if spec.colour else 0.5)):
        cand = [k for k, c in enumerate(spec.curves) if not c.wrap]
        if cand:
            k = int(rng.choice(cand))
            rgb = ((230, 200, 60), (120, 200, 120), (200, 160, 110), (140, 170, 230))[int(rng.integers(0, 4))]
            spec.shading.append((k, bool(rng.random() < 0.5), float(rng.uniform(*cfg.shading_level)), rgb))
    if rng.random() < cfg.hatch_prob:
        x0, x1 = spec.depth_x if (spec.depth_x[1] > spec.depth_x[0] and rng.random() < 0.5) else \
            (spec.tracks[0].x0, spec.tracks[0].x0 + (spec.tracks[0].x1 - spec.tracks[0].x0) // 3)
        for _ in range(int(rng.integers(1, 5))):
            u0 = int(rng.uniform(spec.body_top, max(spec.body_top + 1, spec.body_bottom - 80)))
            v0 = int(rng.uniform(x0, max(x0 + 1, x1 - 30)))
            spec.marks.append(("hatch", (v0, u0, min(x1, v0 + int(rng.uniform(20, 120))), u0 + int(rng.uniform(8, 70)),
                                         int(rng.integers(4, 10)), int(rng.integers(1, 3)))))


def _add_leaders(spec: PageSpec, rng: np.random.Generator) -> None:
    """Curve names with a leader line and arrowhead pointing at the curve ("DEEP IND ---->")."""
    span = spec.body_bottom - spec.body_top
    for _ in range(int(1 + span / 1200 * rng.uniform(0.5, 2.0))):
        if not spec.curves:
            return
        k = int(rng.integers(0, len(spec.curves)))
        c, tr = spec.curves[k], spec.tracks[spec.curves[k].track]
        u = int(rng.uniform(spec.body_top + 30, max(spec.body_top + 31, spec.body_bottom - 30)))
        f = float(frac_at_depth(spec, k, np.array([float(spec.depth_of_u(u))]))[0])
        if not np.isfinite(f):
            continue
        xc = tr.x0 + (f - np.floor(f) if c.wrap else f) * (tr.x1 - tr.x0)
        sc = float(rng.uniform(0.35, 0.6))
        text = c.mnemonic if rng.random() < 0.6 else f"{c.mnemonic} {c.unit}"
        tw = int(len(text) * 20 * sc)
        length = int(rng.uniform(25, 90))
        if xc - tr.x0 > tr.x1 - xc:        # room on the left: label  ---->  curve
            v1 = int(xc - 4)
            v0 = max(tr.x0 + 2, v1 - length)
            spec.labels.append((text, max(tr.x0 + 2, v0 - tw - 4), u + int(7 * sc), sc, 1))
        else:                               # curve  <----  label
            v1 = int(xc + 4)
            v0 = min(tr.x1 - 2, v1 + length)
            spec.labels.append((text, v0 + 4, u + int(7 * sc), sc, 1))
        spec.leaders.append((v0, u, v1, u, bool(rng.random() < 0.5), int(rng.integers(1, 3))))


def _scale_band(rng, tracks, curves, top: int, bottom: int, legend: list, labels: list, rules: list,
                W: int, margin_l: int, margin_r: int) -> None:
    """Legend band between rows ``top`` and ``bottom``: per curve a line sample in its
    style with the scale's left / right values and the curve's name and unit."""
    band = bottom - top
    rules.append((margin_l, bottom, W - margin_r, bottom, 2))
    for tr in tracks:
        nc = len(tr.curves)
        for j, ci in enumerate(tr.curves):
            c = curves[ci]
            uu = top + int((j + 1) * band / (nc + 1))
            legend.append((ci, tr.x0 + 4, tr.x1 - 4, uu))
            sc = 0.35 + 0.1 * rng.random()
            labels.append((f"{_fmt(c.left)}", tr.x0 + 3, uu - 3, sc, 1))
            rt = f"{_fmt(c.right)}"
            labels.append((rt, tr.x1 - 3 - int(len(rt) * 20 * sc), uu - 3, sc, 1))
            nm = f"{c.mnemonic} ({c.unit})"
            labels.append((nm, (tr.x0 + tr.x1) // 2 - int(len(nm) * 10 * sc), uu - 3, sc, 1))


def _fmt(v: float) -> str:
    return f"{v:g}"


def _spikes(rng: np.random.Generator, frac: np.ndarray, wrap: bool) -> np.ndarray:
    """Add sparse sharp spikes to a curve: triangular, 2-12 % of the track high and
    0.5-2.5 ft wide at the base (pen lag keeps even a sharp spike a few rows deep)."""
    n = len(frac)
    k = int(n * rng.uniform(0.002, 0.012))
    if k == 0:
        return frac
    out = frac.copy()
    at = rng.integers(0, n, k)
    amp = rng.uniform(0.02, 0.12, k) * rng.choice([-1.0, 1.0], k)
    half = np.maximum(1, (rng.uniform(0.25, 1.25, k) / MODEL_STEP_FT).astype(int))
    for a, m, h in zip(at.tolist(), amp.tolist(), half.tolist()):
        lo, hi = max(0, a - h), min(n, a + h + 1)
        out[lo:hi] += m * (1.0 - np.abs(np.arange(lo, hi) - a) / (h + 1))
    return np.clip(out, -0.95, 1.95) if wrap else np.clip(out, 0.004, 0.996)


def _holds(rng: np.random.Generator, frac: np.ndarray, cfg: RenderConfig) -> np.ndarray:
    """With ``cfg.hold_prob``, hold a curve still: either stair steps over the whole curve
    (each ``cfg.stair_ft`` the reading jumps to the current value and stays: the pen
    draws a vertical line and a short horizontal jog) or 1-3 flat stretches of
    ``cfg.hold_ft`` (a stuck reading) after which the curve jumps back to its value.
    ``frac`` [N] on the model grid (:data:`MODEL_STEP_FT` per sample)."""
    if cfg.hold_prob <= 0 or rng.random() >= cfg.hold_prob:
        return frac
    n = len(frac)
    out = frac.copy()
    if rng.random() < cfg.hold_stair_share:
        step = max(2, int(rng.uniform(*cfg.stair_ft) / MODEL_STEP_FT))
        start = np.arange(n) // step * step
        return out[start]
    for _ in range(int(rng.integers(1, 4))):
        length = max(2, int(rng.uniform(*cfg.hold_ft) / MODEL_STEP_FT))
        a = int(rng.integers(0, max(1, n - length)))
        out[a:a + length] = out[a]
    return out


def _on_main_trace(frac: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """Shift a wrapped curve by whole track widths so that at least half of the part
    the page shows (bool ``shown``, model grid) lies on the main trace (median backup
    level 0). The scale is set for the main trace and backup traces carry the
    excursions; a curve mostly on its backup would be read one track width off by
    anyone without the header's word for it."""
    lv = np.floor(frac[shown & np.isfinite(frac)])
    k = float(np.round(np.median(lv))) if len(lv) else 0.0
    return np.clip(frac - k, -0.95, 1.95) if k else frac


def _force_excursion(rng: np.random.Generator, frac: np.ndarray) -> np.ndarray:
    """Make sure a wrapped curve actually leaves its track (for ``wraps=True``)."""
    n = len(frac)
    out = frac.copy()
    for _ in range(int(rng.integers(2, 5))):
        c = int(rng.integers(0, n))
        half = int(rng.integers(20, 120))
        sl = slice(max(0, c - half), min(n, c + half))
        bump = np.hanning(sl.stop - sl.start) * rng.uniform(0.6, 0.9)
        sign = 1.0 if np.nanmean(out[sl]) > 0.4 else -1.0
        out[sl] = np.clip(out[sl] + sign * bump, -0.95, 1.95)
    return out


def _dropouts(rng: np.random.Generator, frac: np.ndarray, cfg: RenderConfig, ov: dict,
              rows_per_ft: float) -> np.ndarray:
    """NaN stretches (not recorded) and late starts / early stops."""
    n = len(frac)
    out = frac.copy()
    force = ov.get("dropouts")
    if force is False:
        return out
    if force is True or rng.random() < cfg.dropout_prob:
        for _ in range(int(rng.integers(1, 4))):
            length_ft = rng.uniform(3.0, 60.0)
            length = int(length_ft / MODEL_STEP_FT)
            start = int(rng.integers(0, max(1, n - length)))
            out[start:start + length] = np.nan
    if force is None and rng.random() < cfg.partial_prob:
        cut = int(rng.uniform(0.05, 0.3) * n)
        if rng.random() < 0.5:
            out[:cut] = np.nan
        else:
            out[n - cut:] = np.nan
    return out


def _marks(rng, cfg, tracks, body_top, body_bottom, header_rows, W) -> list[tuple]:
    marks: list[tuple] = []
    span = body_bottom - body_top
    if rng.random() < cfg.handwriting_prob:
        for _ in range(int(1 + span / 1500 * rng.uniform(0.5, 2.0))):
            tr = tracks[int(rng.integers(0, len(tracks)))]
            u = int(rng.uniform(body_top, body_bottom))
            v0 = int(rng.uniform(tr.x0, tr.x1))
            kind = int(rng.integers(0, 3))
            if kind == 0:   # pick: a hand-drawn line across the track with a note
                marks.append(("pick", (int(tr.x0 - rng.uniform(0, 40)), u, int(tr.x1 + rng.uniform(-40, 40)),
                                       u + int(rng.uniform(-8, 8)), str(rng.choice(_HAND)),
                                       float(rng.uniform(0.6, 1.2)), int(rng.integers(1, 3)))))
            elif kind == 1:  # scribble/word
                marks.append(("note", (v0, u, str(rng.choice(_HAND)), float(rng.uniform(0.6, 1.4)),
                                       int(rng.integers(1, 3)))))
            else:            # bracket or arrow stroke
                pts = np.cumsum(rng.normal(0, 6, (int(rng.integers(6, 20)), 2)), axis=0) + [v0, u]
                pts[:, 1] += np.linspace(0, rng.uniform(40, 300), len(pts))
                marks.append(("stroke", (pts.astype(np.float64), int(rng.integers(1, 3)))))
    if rng.random() < cfg.stamp_prob:
        u = int(rng.uniform(0, max(1, body_bottom - 200)))
        v = int(rng.uniform(0, max(1, W - 300)))
        marks.append(("stamp", (v, u, str(rng.choice(_STAMPS)), float(rng.uniform(0.8, 1.6)),
                                int(rng.integers(2, 4)))))
    return marks


def _scan_params(rng: np.random.Generator, cfg: RenderConfig, H: int, W: int, binarize: bool,
                 colour: bool) -> dict[str, Any]:
    p: dict[str, Any] = {
        "paper": float(rng.uniform(225, 252) if colour else rng.uniform(205, 250) if not binarize
                       else rng.uniform(215, 255)),
        "paper_tint": tuple(float(x) for x in rng.uniform([-2, -6, -22], [4, 4, -4])) if colour else (0, 0, 0),
        "ink": float(rng.uniform(0, 70)),
        "texture": float(rng.uniform(0, 12)),
        # 1-bit archives: the scanner thresholds a sharp optical image, thin lines survive
        "blur": float(rng.uniform(*cfg.blur_sigma)) * (0.55 if binarize else 1.0),
        "noise": float(rng.uniform(*cfg.noise_sigma)) * (0.35 if binarize else 1.0),
        "speckle": float(rng.uniform(0.00005, 0.0008)) if rng.random() < cfg.speckle_prob else 0.0,
        "jpeg": int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        if (rng.random() < cfg.jpeg_prob and not binarize) else 0,
        "fade": float(rng.uniform(0.2, 0.6)) if rng.random() < cfg.fade_prob else 0.0,
        "broken": float(rng.uniform(0.05, 0.35)) if rng.random() < cfg.fade_prob else 0.0,
        "grid_drop": float(rng.uniform(0.15, 0.5)) if rng.random() < cfg.grid_drop_prob else 0.0,
        "hbreak": float(rng.uniform(0.03, 0.4)) if binarize else 0.0,
        "threshold": float(rng.uniform(0.5, 0.78)),        # 1-bit: fraction from ink to paper
        "bleed": float(rng.uniform(0.08, 0.25)) if rng.random() < cfg.bleed_prob else 0.0,
        "tex_off": (int(rng.integers(0, 4096)), int(rng.integers(0, 4096))),
        "field_seed": int(rng.integers(0, 2 ** 31)),
        "bands": [], "stains": [], "folds": [], "edges": [],
    }
    if rng.random() < cfg.edge_prob:   # dark scanner / page-edge bar down one side
        x = float(rng.uniform(0, 0.12) * W) if rng.random() < 0.5 else float(W - rng.uniform(0, 0.12) * W)
        p["edges"].append((x, float(rng.uniform(2, 9)), float(rng.uniform(120, 230))))
    if rng.random() < cfg.band_prob:
        for _ in range(int(rng.integers(1, 4))):
            p["bands"].append((float(rng.uniform(0, H)), float(rng.uniform(3, 40)), float(rng.uniform(30, 140))))
    if rng.random() < cfg.stain_prob:
        for _ in range(int(rng.integers(1, 4))):
            p["stains"].append((float(rng.uniform(0, W)), float(rng.uniform(0, H)), float(rng.uniform(40, 400)),
                                float(rng.uniform(30, 250)), float(rng.uniform(15, 70 if not binarize else 45))))
    if rng.random() < cfg.fold_prob:
        for _ in range(int(rng.integers(1, 3))):
            vertical = bool(rng.random() < 0.3)
            p["folds"].append((vertical, float(rng.uniform(0, W if vertical else H)), float(rng.uniform(20, 70))))
    p["streaks"] = []
    if rng.random() < cfg.streak_prob:    # scanner streaks along the feed (dark or light)
        for _ in range(int(rng.integers(1, 5))):
            p["streaks"].append((float(rng.uniform(0, W)), float(rng.uniform(0.5, 2.5)),
                                 float(rng.uniform(25, 110) * rng.choice([1.0, -0.4]))))
    return p


# ---------------------------------------------------------------------------
# per-row model
# ---------------------------------------------------------------------------

@dataclass
class RowModel:
    """Per unrotated row ``u`` (0..H-1): curve positions for drawing.

    ``frac``: float64 [K, H] unwrapped position across the track (NaN = absent);
    ``x``: float64 [K, H] drawn column (wrapped into the track);
    ``brk``: bool [K, H] True where the polyline starts anew at row u;
    ``arc``: float64 [K, H] arc length (px) along the drawn path up to row u.
    """

    frac: np.ndarray
    x: np.ndarray
    brk: np.ndarray
    arc: np.ndarray


def frac_at_depth(spec: PageSpec, ci: int, depth: np.ndarray) -> np.ndarray:
    """Curve ``ci`` position at ``depth`` (depth unit); NaN outside the body / dropouts."""
    c = spec.curves[ci]
    pos = (spec.to_ft(depth) - spec.model_top_ft) / MODEL_STEP_FT
    n = len(c.frac_model)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n - 2)
    t = pos - i0
    f0, f1 = c.frac_model[i0], c.frac_model[i0 + 1]
    f = f0 + (f1 - f0) * t       # NaN if either neighbour is absent
    inside = (depth >= spec.depth_top - 1e-9) & (depth <= spec.depth_bottom + 1e-9)
    return np.where(inside, f, np.nan)


def build_model(spec: PageSpec) -> RowModel:
    """Per-row curve positions for the whole page (unrotated frame)."""
    H = spec.height
    u = np.arange(H, dtype=np.float64)
    depth = spec.depth_of_u(u)
    K = len(spec.curves)
    frac = np.full((K, H), np.nan)
    x = np.full((K, H), np.nan)
    brk = np.ones((K, H), dtype=bool)
    arc = np.zeros((K, H))
    for k, c in enumerate(spec.curves):
        tr = spec.tracks[c.track]
        f = frac_at_depth(spec, k, depth)
        frac[k] = f
        shown = f - np.floor(f) if c.wrap else f
        xk = tr.x0 + shown * (tr.x1 - tr.x0)
        x[k] = xk
        valid = np.isfinite(f)
        wrapped_id = np.floor(np.where(valid, f, 0.0))
        b = np.ones(H, dtype=bool)
        b[1:] = ~(valid[1:] & valid[:-1] & (wrapped_id[1:] == wrapped_id[:-1]))
        brk[k] = b
        dx = np.zeros(H)
        dx[1:] = np.where(b[1:], 0.0, np.diff(np.where(valid, xk, 0.0)))
        arc[k] = np.cumsum(np.sqrt(1.0 + dx * dx))
    return RowModel(frac, x, brk, arc)
