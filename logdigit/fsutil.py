"""Atomic file output: write to a temp file beside the target, then rename.

A crash or kill mid-write leaves the old file (or none), never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


def _umask_mode() -> int:
    """File mode a plain open() would give (mkstemp gives 0600, too tight for outputs)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temp file next to ``path`` and rename it over ``path`` on success.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_open(p) as f:
    ...     _ = f.write("hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for writers that need a file name (lasio,
    torch.save, onnx); it is renamed over ``path`` on success, removed on error.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> with atomic_path(p) as tmp:
    ...     _ = tmp.write_bytes(b"x")
    >>> p.read_bytes()
    b'x'
    """
    tmp, final = atomic_temp_path(path)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_png(path: str | os.PathLike, img, params: tuple[int, ...] = ()) -> None:
    """Encode ``img`` (uint8 [H, W] grey or [H, W, 3] BGR) as PNG and write it atomically."""
    import cv2

    ok, buf = cv2.imencode(".png", img, list(params))
    if not ok:
        raise OSError(f"{path}: cannot encode PNG")
    atomic_write_bytes(path, buf.tobytes())


def atomic_temp_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """A ``(tmp, final)`` pair for writers that need a file name (cv2, PIL, lasio).

    Write to ``tmp`` (same folder and suffix as ``final``), then ``os.replace(tmp, final)``.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}",
                               dir=final.parent)
    os.close(fd)
    os.chmod(tmp, _umask_mode())
    return Path(tmp), final
