"""``logdigit-train export CKPT -o model.onnx``: thin click wrapper of
:func:`export.build.export_checkpoint`."""

from __future__ import annotations

import json

import click

from .build import ExportOptions, export_checkpoint, variant_path
from .onnx_export import DEFAULT_OPSET, EXPORTERS, MIN_OPSET
from .samples import EXPORT_SEED, SOURCES


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="ONNX file to write (variants and the report go next to it).")
@click.option("--opset", default=DEFAULT_OPSET, show_default=True,
              type=click.IntRange(min=MIN_OPSET), help="ONNX opset.")
@click.option("--exporter", type=click.Choice(EXPORTERS), default="torchscript",
              show_default=True, help="torch.onnx exporter (parity is checked either way).")
@click.option("--tile", type=click.IntRange(min=1), default=None,
              help="Recommended tile edge in px [default: from the halo].")
@click.option("--halo", type=click.IntRange(min=0), default=None,
              help="Halo in px [default: half the measured receptive field].")
@click.option("--int8", "int8", is_flag=True,
              help="Also write MODEL.int8.onnx (static QDQ), kept only if IoU drop <= 0.01 "
                   "and faster on this CPU.")
@click.option("--fp16", "fp16", is_flag=True, help="Also write MODEL.fp16.onnx (for the CUDA EP).")
@click.option("--data", "source", type=click.Choice(SOURCES), default="synth", show_default=True,
              help="Tiles for parity, calibration and the int8 check.")
@click.option("--seed", default=EXPORT_SEED, show_default=True, help="Renderer seed of those tiles.")
@click.option("--calib-tiles", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--eval-tiles", default=24, show_default=True, type=click.IntRange(min=1))
@click.option("--tile-size", "tile_size", default=256, show_default=True,
              type=click.IntRange(min=16), help="Edge of calibration / evaluation tiles.")
@click.option("--threads", default=0, show_default=True, help="onnxruntime threads (0: all).")
@click.option("-q", "--quiet", is_flag=True)
def cli(checkpoint, output, opset, exporter, tile, halo, int8, fp16, source, seed, calib_tiles,
        eval_tiles, tile_size, threads, quiet):
    """Export CHECKPOINT (a logdigit-train checkpoint) to a checked ONNX model."""
    from logdigit.errors import LogdigitError

    opts = ExportOptions(opset=opset, exporter=exporter, tile=tile, halo=halo, int8=int8,
                         fp16=fp16, source=source, seed=seed, calib_tiles=calib_tiles,
                         calib_size=tile_size, eval_tiles=eval_tiles, eval_size=tile_size,
                         threads=threads)
    log = (lambda s: None) if quiet else (lambda s: click.echo(s, err=True))
    try:
        report = export_checkpoint(checkpoint, output, opts, log=log)
    except LogdigitError as e:
        raise click.ClickException(str(e)) from None
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(f"{checkpoint}: {e}") from None
    if not quiet:
        click.echo(json.dumps({"output": report["output"],
                               "report": str(variant_path(output, "export")),
                               "parity_ok": report["parity"]["ok"],
                               "int8_kept": report.get("int8", {}).get("kept"),
                               "fp16": report.get("fp16", {}).get("path")}))
