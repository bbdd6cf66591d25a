"""``logdigit``: the runtime command line (thin: parses options and calls stage functions).

Exit codes: 0 ok, 1 failed (bad input, processing error), 2 bad usage.
"""

from __future__ import annotations

import click

from ._lazycli import LazyGroup

#: subcommand -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "convert": "logdigit.commands.convert:convert",
    "inspect": "logdigit.commands.inspect:inspect",
    "calibrate": "logdigit.commands.calibrate:calibrate",
    "batch": "logdigit.commands.batch:batch",
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="logdigit")
def main():
    """Digitise scanned paper well logs into LAS curves."""


if __name__ == "__main__":
    main()
