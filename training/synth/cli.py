"""``logdigit-train synth``: write training instances or whole pages to disk.

Instances: ``NNNNNN.png`` (grey image), ``NNNNNN_mask.png`` (class ids; binary
task 0/1) and ``NNNNNN.json`` (metadata). Pages (``--pages``): ``NNNNNN.tif``
(1-bit CCITT G4 when binarized, else 8-bit grey / RGB, LZW), ``NNNNNN.yaml``
(calibration), ``NNNNNN_truth.csv`` and ``NNNNNN.json``. The resolved renderer
config is saved as ``config.yaml`` next to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from training.config import ConfigError, resolve, save_resolved

from .config import RenderConfig
from .page import TASKS, render_page, render_tile
from .writer import write_page, write_tile


@click.command()
@click.option("--task", type=click.Choice(TASKS), default="multiclass", show_default=True,
              help="instance masks: multiclass class ids or binary 0/1")
@click.option("--pages", is_flag=True, help="write whole pages (TIFF + calibration YAML + truth CSV)")
@click.option("--count", "-n", type=click.IntRange(min=1), required=True, help="number of instances / pages")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="output folder (created)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True,
              help="first index (to extend a set or split work)")
@click.option("--size", type=click.IntRange(min=16), default=512, show_default=True, help="tile edge (px)")
@click.option("--tiles-per-page", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="YAML with RenderConfig fields")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="RenderConfig override, e.g. --set binarize_prob=1.0 (repeatable)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def synth(task, pages, count, out_dir, seed, start, size, tiles_per_page, config_path, overrides, quiet):
    """Render synthetic well-log instances (or whole pages with --pages) into OUT."""
    from tqdm.auto import tqdm

    try:
        cfg = resolve(RenderConfig(), config_path, overrides)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--config/--set") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, out_dir)
    bar = tqdm(range(start, start + count), desc="pages" if pages else "instances", unit="page" if pages else "it",
               disable=quiet or not sys.stderr.isatty(), file=sys.stderr)
    for i in bar:
        stem = f"{i:06d}"
        if pages:
            write_page(render_page(seed, i, cfg), out_dir, stem)
        else:
            write_tile(render_tile(seed, i, task=task, size=size, cfg=cfg, tiles_per_page=tiles_per_page),
                       out_dir, stem)
    click.echo(f"wrote {count} {'pages' if pages else task + ' instances'} to {out_dir}", err=True)
