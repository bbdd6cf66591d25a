"""``logdigit-train``: the training command group.

Subcommands are imported lazily so that ``logdigit-train --help`` is fast and one
stage's heavy imports never slow another.
"""

from __future__ import annotations

import click

from logdigit._lazycli import LazyGroup

#: subcommand -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "synth": "training.synth.cli:synth",
    "finetune": "training.finetune:cli",
    "evaluate": "training.evaluate:cli",
    "average": "training.average:cli",
    "pretrain-inpaint": "training.pretrain_inpaint:cli",
    "pretrain-densecl": "training.pretrain_densecl:cli",
    "export": "export.cli:cli",
    "recover": "export.recover:cli",
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="logdigit")
def main():
    """Train, evaluate and export logdigit segmentation models."""


if __name__ == "__main__":
    main()
