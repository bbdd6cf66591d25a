"""Click plumbing shared by ``logdigit`` and ``logdigit-train``: lazy subcommands
and one-line errors."""

from __future__ import annotations

import importlib

import click

from .errors import LogdigitError


class InputError(click.ClickException):
    """A bad input file: printed as one line ``<prog>: error: <file>: <problem>``, exit 1."""

    exit_code = 1

    def show(self, file=None):
        click.echo(f"{self.prog}: error: {self.message}", err=True)

    def __init__(self, message: str, prog: str = "logdigit"):
        super().__init__(message)
        self.prog = prog


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use, and which turns
    :class:`~logdigit.errors.LogdigitError` into a one-line message with exit 1."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            mod, attr = self.lazy[name].split(":")
            try:
                return getattr(importlib.import_module(mod), attr)
            except (ImportError, AttributeError) as e:
                raise click.ClickException(f"command {name!r} is not available: {e}") from None
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LogdigitError as e:
            raise InputError(str(e), prog=ctx.find_root().info_name or "logdigit") from None
