"""``logdigit-train average``: the mean of several checkpoints' weights (a model soup).

    logdigit-train average runs/a/best.pt runs/b/best.pt -o runs/ab/best.pt
"""

from __future__ import annotations

import sys

import click


@click.command("average")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="averaged checkpoint (its config.yaml is written beside it)")
def cli(checkpoints, out):
    """Average the weights of CHECKPOINTS (one network) into OUT."""
    from training.checkpoint import average_checkpoints

    try:
        path = average_checkpoints(list(checkpoints), out)
    except (ValueError, FileNotFoundError) as e:
        click.echo(f"logdigit-train average: {e}", err=True)
        sys.exit(1)
    click.echo(f"wrote {path} (mean of {len(checkpoints)} checkpoints)")
