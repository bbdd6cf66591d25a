"""``logdigit inspect``: read a scan, find its layout, print it and draw it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..errors import LayoutError, LogdigitError


def picture_path(scan_path: str, page: int, n_pages: int, picture: str | None) -> Path:
    """Where the picture of ``page`` goes: ``picture`` (a page suffix is added before the
    extension when the file has several pages), default ``<scan stem>.inspect.png`` in
    the current folder."""
    if picture is None:
        p = Path(Path(scan_path).stem + ".inspect.png")
    else:
        p = Path(picture)
    if n_pages > 1:
        p = p.with_name(f"{p.stem}.p{page}{p.suffix or '.png'}")
    return p


def inspect_page(path: str, page: int, picture: Path | None) -> dict:
    """Read and analyse one page; write the picture; return a JSON-able report."""
    from ..io import read_scan
    from ..layout import analyse

    scan = read_scan(path, page)
    try:
        lay = analyse(scan.grey)
    except LogdigitError:
        raise
    except Exception as e:  # noqa: BLE001 - a bug must still be one line for the user
        raise LayoutError(f"page {page}: layout analysis failed ({type(e).__name__}: {e}); "
                          f"please report this scan", path) from None
    rep = {"scan": scan.describe(), "layout": lay.to_dict(), "picture": None}
    if picture is not None:
        from ..layoutviz import inspect_picture, write_png
        img = inspect_picture(scan.grey, lay, title=f"{os.path.basename(path)}  page {page}")
        try:
            write_png(picture, img)
        except OSError as e:
            raise LogdigitError(f"cannot write picture: {e.strerror or e}", picture) from None
        rep["picture"] = str(picture)
    return rep


def format_report(rep: dict) -> str:
    """Human-readable lines for one page report."""
    s, L = rep["scan"], rep["layout"]
    out = [f"{s['path']}  page {s['page'] + 1}/{s['n_pages']}: {s['width']} x {s['height']} px, "
           f"{s['mode']}, {s['compression'] or '?'}, "
           f"{'%g dpi' % s['dpi'] if s['dpi'] else 'dpi unknown'}"
           + (f", turned by its orientation tag {s['orientation']}"
              if s.get("orientation", 1) != 1 else ""),
           f"  skew           {L['skew_deg']:+.3f} deg (clockwise positive; confidence "
           f"{L['skew_confidence']:.2f})",
           f"  log body rows  {L['header_bottom']} - {L['log_bottom']} (header above; "
           f"{len(L['sections'])} section{'s' if len(L['sections']) != 1 else ''}"
           + (": " + ", ".join(f"{a}-{b}" for a, b in L['sections']) if len(L['sections']) > 1
              else "") + ")"]
    if L["tracks"]:
        for i, (a, b) in enumerate(L["tracks"]):
            out.append(f"  track {i + 1}        columns {a} - {b} ({b - a} px)")
    else:
        out.append("  tracks         none found")
    dt = L["depth_track"]
    out.append(f"  depth track    {'columns %d - %d' % tuple(dt) if dt else 'not found'}")
    gm, gM = L["grid_minor_px"], L["grid_major_px"]
    out.append(f"  grid           minor {'%.3f px' % gm if gm else '-'}, "
               f"major {'%.3f px' % gM if gM else '-'}")
    if L.get("drift"):
        out.append(f"  drift          track lines wander up to "
                   f"{max(abs(v) for _, v in L['drift']):.0f} px sideways (per-row offsets in "
                   f"the JSON 'drift')")
    for n in L["notes"]:
        out.append(f"  note: {n}")
    if rep.get("picture"):
        out.append(f"  picture        {rep['picture']}")
    return "\n".join(out)


@click.command("inspect")
@click.argument("scan", type=click.Path(dir_okay=False))
@click.option("--page", type=click.IntRange(min=0), default=None,
              help="Page to inspect (0-based); default: every page in turn.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--picture", type=click.Path(dir_okay=False), default=None,
              help="Picture of what was found (PNG); default <scan stem>.inspect.png here. "
                   "Multi-page files get .p<N> before the extension.")
@click.option("--no-picture", is_flag=True, help="Do not write a picture.")
def inspect(scan, page, as_json, picture, no_picture):
    """Find and print the layout of SCAN: skew, tracks, depth track, grid, header.

    Columns and rows are pixels of the deskewed scan; the skew is a clockwise rotation
    of the stored scan about its centre (see docs/layout.md).
    """
    from ..io import count_pages

    n = count_pages(scan)
    pages = list(range(n)) if page is None else [page]
    if page is not None and page >= n:
        from ..errors import ImageReadError
        raise ImageReadError(f"page {page} does not exist: the file has {n} page"
                             f"{'s' if n != 1 else ''} (pages are numbered from 0)", scan)
    reports = []
    for p in pages:
        pic = None if no_picture else picture_path(scan, p, n, picture)
        rep = inspect_page(scan, p, pic)
        reports.append(rep)
        if not as_json:
            click.echo(format_report(rep))
    if as_json:
        json.dump({"path": scan, "n_pages": n, "pages": reports}, sys.stdout, indent=2)
        sys.stdout.write("\n")
