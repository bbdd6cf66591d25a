"""``logdigit convert``: one scan -> LAS (or CSV), optional QC overlay."""

from __future__ import annotations

import sys

import click


@click.command()
@click.argument("scan", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Output file: LAS 2.0, or CSV when it ends in .csv or with --format csv.")
@click.option("--calibration", "calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration YAML (default: SCAN.yaml beside the scan if present, else an "
                   "uncalibrated read).")
@click.option("--model", type=click.Path(dir_okay=False), default=None,
              help="ONNX segmentation model (default: the model shipped with logdigit).")
@click.option("--page", type=click.IntRange(min=0), default=None,
              help="Page of a multi-page TIFF (0-based). Default: every page in turn, "
                   "each to OUTPUT_p<N> (and QC_p<N>) when the file has several.")
@click.option("--format", "fmt", type=click.Choice(["las", "csv"]), default=None,
              help="Output format; CSV adds a confidence column per curve. Default: csv "
                   "when OUTPUT ends in .csv, else las.")
@click.option("--qc", "qc", type=click.Path(dir_okay=False), default=None,
              help="Write a QC overlay PNG: the curves read, drawn over the scan.")
@click.option("--step", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Depth step (default 0.5 FT / 0.1 M; 1 row when uncalibrated).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads (default: all cores).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar and no notes on stderr.")
def convert(scan, output, calibration, model, page, fmt, qc, step, threads, device, quiet):
    """Digitise the curves of SCAN (TIFF, PNG, JPEG) into a LAS file.

    A multi-page file without --page is converted page by page: page N goes to
    OUTPUT with _p<N> before its extension (curves_p0.las, curves_p1.las ...), its QC
    overlay likewise; a page that fails is reported and the others are still written.

    Exit status: 0 written, 1 failed (bad scan, calibration or model; for a multi-page
    file: any page), 2 bad usage.
    """
    from .._lazycli import InputError
    from ..errors import LogdigitError
    from ..io import count_pages

    if fmt is None:
        fmt = "csv" if output.lower().endswith(".csv") else "las"
    pages = [page]
    if page is None:
        try:
            n = count_pages(scan)
        except LogdigitError:
            n = 1            # the conversion below reads it and says what is wrong
        pages = list(range(n)) if n > 1 else [None]
    if len(pages) == 1:
        _convert_one(scan, output, calibration, model, pages[0], fmt, qc, step, threads, device,
                     quiet)
        return
    if not quiet:
        click.echo(f"logdigit: note: {scan}: {len(pages)} pages: page N is written to "
                   f"{_page_path(output, 'N')}{' and ' + _page_path(qc, 'N') if qc else ''} "
                   "(--page N converts one)", err=True)
    from ..segment import Segmenter

    seg = Segmenter(model, threads=threads, device=device)   # loaded once for every page
    failed = []
    for p in pages:
        try:
            _convert_one(scan, _page_path(output, p), calibration, model, p, fmt,
                         _page_path(qc, p) if qc else None, step, threads, device, quiet,
                         segmenter=seg)
        except (LogdigitError, click.ClickException) as e:
            failed.append(p)
            msg = e.format_message() if isinstance(e, click.ClickException) else str(e)
            click.echo(f"logdigit: error: page {p}: {msg}", err=True)
    if failed:
        raise InputError(f"{scan}: {len(failed)} of {len(pages)} pages failed "
                         f"({', '.join(str(p) for p in failed)}); the others were written")


def _page_path(path: str, page) -> str:
    """``path`` with ``_p<page>`` before its extension (``curves.las`` -> ``curves_p1.las``),
    as ``logdigit batch`` names pages."""
    from pathlib import Path

    from ..batch import page_stem

    q = Path(path)
    return str(q.with_name(page_stem(q.stem, page) + q.suffix))


def _convert_one(scan, output, calibration, model, page, fmt, qc, step, threads, device, quiet,
                 segmenter=None):
    from .._lazycli import InputError
    from ..pipeline import convert_file

    try:
        res = convert_file(scan, output, calibration=calibration, model=model, page=page,
                           fmt=fmt, qc_path=qc, step=step, threads=threads, device=device,
                           progress=not quiet and sys.stderr.isatty(), segmenter=segmenter)
    except OSError as e:   # e.g. an output folder that cannot be written
        where = e.filename or output
        raise InputError(f"{where}: cannot write: {e.strerror or e}") from None
    if not quiet:
        for w in res.warnings:
            click.echo(f"logdigit: note: {scan}: {w}", err=True)
        cov = ", ".join(f"{m} {100 * c:.0f}%" for m, c in res.curves) or "no curves"
        click.echo(f"logdigit: wrote {', '.join(str(p) for p in res.outputs)} ({cov})", err=True)
