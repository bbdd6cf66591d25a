"""``logdigit batch``: convert an archive of scans, resumable, on a process pool or Dask."""

from __future__ import annotations

import shlex
import signal
import sys

import click

from ..batch import FORMAT_EXTENSIONS, ConvertSettings, run_batch


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: outputs mirror the input tree; holds manifest.sqlite "
                   "and index.csv.")
@click.option("--calibration", "template", type=click.Path(exists=True, dir_okay=False),
              help="Template calibration YAML for scans without a sidecar scan.yaml.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local worker processes (default: CPU cores; 0: in this process).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="onnxruntime threads per worker (default: cores / workers).")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Dask scheduler address (tcp://HOST:8786): run on that cluster.")
@click.option("--qc", is_flag=True, help="Also write a QC overlay (.qc.png) per page.")
@click.option("--retry-failed", is_flag=True, help="Convert again inputs that failed before.")
@click.option("--rehash", is_flag=True,
              help="Re-hash every scan, even when size and mtime are unchanged.")
@click.option("--model", type=click.Path(exists=True, dir_okay=False), default=None,
              help="ONNX model (default: the shipped model).")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMAT_EXTENSIONS)), default="las",
              show_default=True, help="Output format.")
@click.option("--step", type=float, default=None, help="Output depth step (default per unit).")
@click.option("--page", type=click.IntRange(min=0), default=None,
              help="Convert only this page of multi-page files (default: every page).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="onnxruntime device (cuda needs the gpu extra).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Record a scan as failed when it takes longer "
                                      "(local workers; default: no limit).")
@click.option("--dry-run", is_flag=True,
              help="Only say what would be converted or skipped, and why.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, summary only.")
def batch(inputs, out_dir, template, workers, threads, scheduler, qc, retry_failed, rehash,
          model, fmt, step, page, device, timeout, dry_run, quiet):
    """Convert folders, globs or list files of scans into OUT_DIR.

    Per scan the calibration is its sidecar YAML (scan.yaml beside scan.tif), else
    --calibration, else none (uncalibrated output). A rerun skips what is done and
    unchanged. Exits 1 if any scan failed (see the summary and OUT_DIR/index.csv).
    """
    settings = ConvertSettings(model=model, device=device, threads=threads, fmt=fmt, step=step,
                               qc=qc, page=page, timeout=timeout)
    progress = not quiet and sys.stderr.isatty()
    # a queue's walltime SIGTERM ends the run like Ctrl-C: manifest closed, summary printed
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run_batch(inputs, out_dir, calibration=template, workers=workers,
                           scheduler=scheduler, retry_failed=retry_failed, rehash=rehash,
                           settings=settings, progress=progress, dry_run=dry_run,
                           argv=shlex.join(["logdigit", "batch", *sys.argv[2:]]),
                           log=None if quiet else (lambda m: click.echo(m, err=True)))
    finally:
        signal.signal(signal.SIGTERM, old)
    if dry_run:
        click.echo(report.plan_summary())
        return
    click.echo(report.summary())
    if report.interrupted:
        sys.exit(130)
    if not report.ok:
        sys.exit(1)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
