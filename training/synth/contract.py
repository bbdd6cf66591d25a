"""Checking the calibration contract of a rendered page.

From the class mask and the calibration alone, each curve's per-row position
(mean mask column of its class inside its track) converted to a value with
:func:`logdigit.calibration.fraction_to_value` must match the truth within 0.5 %
of the track width. :func:`contract_errors` measures it; the tests and
``bench/render_contract.py`` use it.
"""

from __future__ import annotations

import numpy as np

from logdigit.calibration import fraction_to_value, value_to_fraction

from .page import CurveTruth, Page

TOLERANCE = 0.005  #: fraction of the track width
EDGE_PX = 3  #: columns next to each track border not read (half the widest pen + the border)


def row_positions(mask: np.ndarray, class_id: int, x: tuple[int, int]) -> np.ndarray:
    """Mean column of ``class_id`` pixels per row inside track border columns ``x``
    (``EDGE_PX`` columns next to each border left out): float64 [H].

    NaN where the row holds no full cross-section of the line (no pixels, or only
    a dash's end cap: fewer pixels than the curve's median per row) or more than
    one run of pixels (a wrapped trace leaving one edge while its backup enters at
    the other: ambiguous for a single row).
    """
    # border columns and the pen reach next to them excluded: neighbouring tracks share the
    # border, and a wrapped trace of the next track running along it paints a column or two here
    x0, x1 = x[0] + EDGE_PX, x[1] - EDGE_PX
    band = mask[:, x0:x1 + 1] == class_id
    cols = np.arange(x0, x1 + 1, dtype=np.float64)
    n = band.sum(1)
    if not (n > 0).any():
        return np.full(len(n), np.nan)
    full = n >= max(1, np.median(n[n > 0]))
    one_run = (np.diff(band.astype(np.int8), axis=1, prepend=0) == 1).sum(1) == 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(full & one_run, (band * cols).sum(1) / np.maximum(n, 1), np.nan)


def well_defined_rows(ct: CurveTruth, width: int, tol_px: float = 2.0) -> np.ndarray:
    """bool [H]: rows where the true curve has one position to read: it moves less
    than ``tol_px`` within ``2 + pen width`` rows (a steep stroke spans many columns
    of a row, and a thick pen paints it into the rows around it)."""
    f = ct.frac
    ok = np.isfinite(f)
    reach = 2 + int(ct.width)
    for j in range(1, reach + 1):
        for s in (j, -j):
            ok &= np.abs(np.roll(f, s) - f) * width < tol_px
    return ok


def contract_errors(page: Page) -> list[dict]:
    """Per curve: position errors (fraction of track width) on its well-defined rows
    inside ``calibration.depth.rows``, read from the mask and the calibration only.

    Returns a list of dicts ``mnemonic, style, wrap, rows, err`` (float64 [rows],
    signed; wrapped curves compared modulo one track width).
    """
    cal = page.calibration
    top, bottom = cal.depth.rows
    out = []
    k = 0
    for tr in cal.tracks:
        width = tr.x[1] - tr.x[0]
        for cc in tr.curves:
            ct = page.truth.curves[k]
            k += 1
            pos = row_positions(page.mask, ct.class_id, tr.x)
            ok = well_defined_rows(ct, width) & np.isfinite(pos)
            ok[:top] = False
            ok[bottom:] = False
            v_hat = fraction_to_value((pos[ok] - tr.x[0]) / width, cc)
            err = value_to_fraction(v_hat, cc) - value_to_fraction(ct.values[ok], cc)
            if cc.wrap:
                err = (err + 0.5) % 1.0 - 0.5
            out.append({"mnemonic": cc.mnemonic, "style": cc.style, "wrap": cc.wrap,
                        "rows": int(ok.sum()), "err": err})
    return out
