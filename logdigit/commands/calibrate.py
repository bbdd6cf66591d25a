"""``logdigit calibrate``: write a calibration template from the detected layout.

The template follows the schema in :mod:`logdigit.calibration`. Track columns come
from the detection (stored pixels, read at the scan's centre row); the two depth ties
sit on detected major grid lines near the top and bottom of the log body with
``depth: null`` for the person to fill in; every track gets one placeholder curve
whose ``left``/``right`` are null. Until the nulls are replaced, ``load_calibration``
refuses the file with a message naming the key, so an unedited template can never
produce a LAS with made-up depths or scales.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import click
import numpy as np

from ..errors import LogdigitError


def tie_rows(lay, depth_x: float) -> list[int]:
    """Two suggested tie rows (stored pixels) on the major (else minor) grid lattice,
    about 5 % inside the top and bottom of the first log section (the main pass), read
    at column ``depth_x``."""
    top, bottom = lay.sections[0] if lay.sections else (lay.header_bottom, lay.log_bottom)
    span = max(1, bottom - top)
    want = [top + 0.05 * span, bottom - 0.05 * span]
    step = lay.grid_major_px or lay.grid_minor_px
    rows_d = []
    for r in want:
        if step:
            k = round((r - top) / step)
            r = top + k * step
        rows_d.append(min(bottom - 1, max(top, r)))
    if rows_d[1] - rows_d[0] < 2:
        rows_d = [top, max(top + 2, bottom - 1)]
    rs, _ = lay.to_stored(np.array(rows_d, float), np.full(2, float(depth_x)))
    h = lay.shape[0]
    out = [int(min(h - 1, max(0, round(v)))) for v in rs]
    if out[1] <= out[0]:
        out = [min(out), min(h - 1, min(out) + max(2, span // 2))]
    return out


def template_text(scan_path: str, page: int, lay, tracks_stored, depth_stored, ties,
                  rows_stored, unit: str) -> str:
    """The YAML template with comments saying what to fill."""
    name = os.path.basename(scan_path)
    L = [
        f"# logdigit calibration template for {name} (page {page})",
        "# Written by `logdigit calibrate` from the detected layout. All rows and columns are",
        "# pixels of the scan AS STORED (what an image viewer shows), before any deskew.",
        f"# Detected: skew {lay.skew_deg:+.3f} deg, {len(lay.tracks)} track(s), grid minor "
        f"{_fmt(lay.grid_minor_px)} px / major {_fmt(lay.grid_major_px)} px, log body rows "
        f"{lay.header_bottom}-{lay.log_bottom} (deskewed).",
        "# EDIT every `null` below (and the placeholder curve names); the preview PNG numbers",
        "# the tracks and shows each tie row next to the depth numbers.",
        "depth:",
        f"  unit: {unit}                        # FT or M: the unit of the depth numbers printed",
        "  ties:                           # >= 2 ties, top to bottom: depth printed at that row",
    ]
    for k, r in enumerate(ties):
        L.append(f"    - {{row: {r}, depth: null}}   # EDIT: depth at row {r} (tie {k + 1} in "
                 f"the preview); or move the row to any depth number you can read")
    if rows_stored:
        L.append(f"  rows: [{rows_stored[0]}, {rows_stored[1]}]           # the part of the "
                 f"scan to read (detected log body); delete to read all rows")
    L.append("tracks:")
    if not tracks_stored:
        L.append("  # No track was detected: give each track's left and right border columns.")
        L.append("  - x: [null, null]               # EDIT: left and right border columns")
        L.append("    curves:")
        L.append("      - {style: solid, mnemonic: CURVE1, unit: '', left: null, right: null}"
                 "   # EDIT")
    for i, (a, b) in enumerate(tracks_stored):
        L.append(f"  - x: [{a}, {b}]                 # track {i + 1} in the preview "
                 f"(detected border columns; correct if needed)")
        L.append("    curves:                       # one line per curve in this track")
        L.append(f"      - {{style: solid, mnemonic: CURVE{i + 1}, unit: '', left: null, "
                 f"right: null}}   # EDIT: style (solid/dashed/dotted/dashdot), name, unit, "
                 f"values at the left and right edge (add scale: log, wrap: true if so)")
    if depth_stored:
        L.append(f"# depth track (not a curve track): columns {depth_stored[0]}-"
                 f"{depth_stored[1]}")
    return "\n".join(L) + "\n"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def make_template(scan_path: str, page: int = 0, unit: str = "FT"):
    """Read and analyse the scan; return (yaml text, preview BGR image, layout)."""
    from ..io import read_scan
    from ..layout import analyse
    from ..layoutviz import calibrate_picture

    scan = read_scan(scan_path, page)
    lay = analyse(scan.grey)
    h, w = scan.shape
    rows_stored = None
    if lay.sections:
        rs, _ = lay.to_stored(np.array([lay.header_bottom, lay.log_bottom], float),
                              np.full(2, (w - 1) / 2.0))
        r0, r1 = int(max(0, math.floor(rs[0]))), int(min(h, math.ceil(rs[1])))
        if r1 > r0:
            rows_stored = (r0, r1)
    # calibration columns hold at the middle of depth.rows (else the centre row), as
    # the converter reads them; on drifting paper the lines run there at
    # column + drift_at(that row), not at the detected (average) column
    row_ref = sum(rows_stored) / 2.0 if rows_stored else (h - 1) / 2.0
    off = float(lay.drift_at(lay.to_deskewed(np.array([row_ref]), np.array([w / 2.0]))[0])[0])
    tracks_stored = []
    for a, b in lay.tracks:
        xs = lay.columns_to_stored(np.array([a, b], float) + off)
        tracks_stored.append((int(max(0, math.floor(xs[0]))), int(min(w, math.ceil(xs[1])))))
    depth_stored = None
    if lay.depth_track:
        xs = lay.columns_to_stored(np.array(lay.depth_track, float) + off)
        depth_stored = (int(max(0, math.floor(xs[0]))), int(min(w, math.ceil(xs[1]))))
    dcol = (sum(lay.depth_track) / 2.0) if lay.depth_track else w / 2.0
    ties = tie_rows(lay, dcol)
    text = template_text(scan_path, page, lay, tracks_stored, depth_stored, ties,
                         rows_stored, unit)
    pic = calibrate_picture(scan.grey, lay, tracks_stored, depth_stored, ties,
                            title=f"{os.path.basename(scan_path)} page {page}: calibration "
                                  f"template")
    return text, pic, lay


@click.command("calibrate")
@click.argument("scan", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Calibration template to write (YAML).")
@click.option("--page", type=click.IntRange(min=0), default=0, show_default=True,
              help="Page of a multi-page file (0-based).")
@click.option("--unit", type=click.Choice(["FT", "M"], case_sensitive=False), default="FT",
              show_default=True, help="Depth unit printed on the log.")
@click.option("--preview", type=click.Path(dir_okay=False), default=None,
              help="Preview PNG numbering the tracks; default <output stem>.preview.png.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def calibrate(scan, output, page, unit, preview, force):
    """Write a calibration template for SCAN, to be filled in by a person.

    Track columns are detected; depth ties and curve scales are left as `null` for
    you to fill in (the file is refused until they are). Refuses to overwrite an
    existing file unless --force.
    """
    from ..fsutil import atomic_write_text
    from ..layoutviz import write_png

    out = Path(output)
    pv = Path(preview) if preview else out.with_name(out.stem + ".preview.png")
    if not force:
        for p in (out, pv):
            if p.exists():
                raise LogdigitError("exists: refusing to overwrite; use --force or another "
                                    "name", p)
    text, pic, lay = make_template(scan, page, unit.upper())
    try:
        atomic_write_text(out, text)
        write_png(pv, pic)
    except OSError as e:
        raise LogdigitError(f"cannot write: {e.strerror or e}", out) from None
    click.echo(f"wrote {out} ({len(lay.tracks)} track(s); fill in every null) and preview {pv}")
