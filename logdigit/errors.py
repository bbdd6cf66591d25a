"""Exceptions with messages a user can act on.

Every error the runtime raises on bad input is a :class:`LogdigitError`; the CLI
prints ``logdigit: error: <file>: <message>`` on one line and exits 1.
"""

from __future__ import annotations

import os


class LogdigitError(Exception):
    """Base class: a problem with an input file, with the file named.

    Parameters
    ----------
    message : str
        What is wrong and, where possible, how to fix it.
    path : str or os.PathLike, optional
        The file the problem is in.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ImageReadError(LogdigitError):
    """The scan cannot be read: unsupported, truncated, corrupt or too small."""


class CalibrationError(LogdigitError):
    """The calibration file is invalid or does not fit the image."""


class ModelError(LogdigitError):
    """The model file is missing, not ONNX, or not a logdigit model."""


class LayoutError(LogdigitError):
    """The layout (tracks, depth scale) cannot be found on the scan."""
