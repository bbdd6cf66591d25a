"""Read scans: TIFF (1-bit CCITT G3/G4, LZW, Deflate, PackBits, uncompressed; 1/8/16-bit
grey, palette, RGB; multi-page; BigTIFF), PNG and JPEG, into one uint8 grey array.

TIFF is decoded with :mod:`tifffile` (+ ``imagecodecs`` for CCITT, LZW, Deflate ...),
which reads BigTIFF and decodes a 1-bit page straight into one byte per pixel; the
grey array is then made in place from that buffer, so a 1-bit 2,000 x 150,000 scan
costs about one 300 MB array (plus the compressed bytes), never a float copy.
Anything tifffile cannot decode is retried with Pillow; PNG and JPEG go through
Pillow directly.

Conventions of the result (:class:`Scan`): ``grey`` is uint8 ``[H, W]`` with
0 = ink and 255 = paper, whatever the file stored (MinIsWhite / MinIsBlack,
palette, 16-bit, colour). Colour is turned into luminance (ITU-R BT.601,
``0.299 R + 0.587 G + 0.114 B``); ``rgb`` keeps the colour for colour scans only.

Every failure is an :class:`~logdigit.errors.ImageReadError` naming the file: not a
supported image, truncated or corrupt data, a page out of range, or an image smaller
than :data:`MIN_SIDE` pixels in either dimension (too small to hold a log: a track
with a grid and a curve needs more than that).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .errors import ImageReadError

#: Smallest accepted width and height in pixels: below this there is no room for
#: a track border, a grid and a curve, so the file is refused as "too small".
MIN_SIDE = 64

#: Largest accepted image in pixels (width x height): 2.5 gigapixels, e.g. 10,000 x
#: 250,000. Pillow's decompression-bomb guard is raised to this value.
MAX_PIXELS = 2_500_000_000

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"

_COMPRESSION_NAMES = {
    "NONE": "none", "CCITTRLE": "ccitt-rle", "CCITT_T4": "group3", "CCITTFAX3": "group3",
    "CCITT_T6": "group4", "CCITTFAX4": "group4", "LZW": "lzw", "OJPEG": "jpeg", "JPEG": "jpeg",
    "ADOBE_DEFLATE": "deflate", "DEFLATE": "deflate", "PACKBITS": "packbits", "ZSTD": "zstd",
    "LZMA": "lzma", "WEBP": "webp", "JPEG2000": "jpeg2000",
}
_PIL_COMPRESSION_NAMES = {
    "raw": "none", "group3": "group3", "group4": "group4", "tiff_ccitt": "ccitt-rle",
    "tiff_lzw": "lzw", "tiff_adobe_deflate": "deflate", "tiff_deflate": "deflate",
    "packbits": "packbits", "jpeg": "jpeg", "tiff_jpeg": "jpeg",
}


@dataclass
class Scan:
    """One page of a scan, decoded.

    Attributes
    ----------
    grey : np.ndarray
        uint8 ``[H, W]``, 0 = ink, 255 = paper. Always present.
    rgb : np.ndarray or None
        uint8 ``[H, W, 3]`` for colour scans (RGB, or a palette with colours), else None.
    path : str
        The file read.
    page : int
        Page index (0-based) within the file.
    n_pages : int
        Pages in the file.
    dpi : float or None
        Horizontal resolution in dots per inch, when the file records one.
    mode : str
        What the file stored: ``"1-bit"``, ``"grey"`` (8-bit), ``"grey-16"``,
        ``"palette"``, ``"rgb"`` (alpha dropped), ``"cmyk"``.
    compression : str or None
        ``"group4"``, ``"group3"``, ``"lzw"``, ``"deflate"``, ``"packbits"``, ``"none"``,
        ``"jpeg"``, ``"png"`` ... (None when unknown).
    orientation : int
        The TIFF / EXIF Orientation the file recorded (1-8; 1 = as stored). It has been
        applied: ``grey`` and ``rgb`` are the picture as a viewer shows it, and pixel
        rows and columns everywhere (calibration, layout, QC) are in that frame.
    """

    grey: np.ndarray
    rgb: np.ndarray | None
    path: str
    page: int
    n_pages: int
    dpi: float | None
    mode: str
    compression: str | None
    orientation: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` in pixels."""
        return self.grey.shape[0], self.grey.shape[1]

    def describe(self) -> dict:
        """JSON-able summary (no pixels)."""
        h, w = self.shape
        return {"path": self.path, "page": self.page, "n_pages": self.n_pages, "width": w,
                "height": h, "dpi": self.dpi, "mode": self.mode, "compression": self.compression,
                "colour": self.rgb is not None, "orientation": self.orientation}


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------

def read_scan(path: str | os.PathLike, page: int = 0) -> Scan:
    """Read page ``page`` (0-based) of a scan.

    Parameters
    ----------
    path : str or PathLike
        TIFF / BigTIFF, PNG or JPEG file.
    page : int
        Page index; PNG and JPEG have one page.

    Returns
    -------
    Scan

    Raises
    ------
    ImageReadError
        the file is missing, not a supported image, truncated or corrupt, the page is
        out of range, or the image is smaller than :data:`MIN_SIDE` px or larger than
        :data:`MAX_PIXELS`.
    """
    path = os.fspath(path)
    kind = _sniff(path)
    if isinstance(page, bool) or not isinstance(page, (int, np.integer)) or page < 0:
        raise ImageReadError(f"page {page!r} is not a page index: use 0, 1, 2 ...", path)
    page = int(page)
    if kind == "tiff":
        try:
            scan = _read_tiff(path, page)
        except _TryPillow as e:
            scan = _read_pillow(path, page, kind, reason=str(e))
    else:
        scan = _read_pillow(path, page, kind)
    return scan


def count_pages(path: str | os.PathLike) -> int:
    """Number of pages (images) in the file; 1 for PNG and JPEG.

    Raises
    ------
    ImageReadError
        as :func:`read_scan`, for a file that is not a readable image.
    """
    path = os.fspath(path)
    kind = _sniff(path)
    if kind == "tiff":
        import tifffile
        try:
            with _quiet(), tifffile.TiffFile(path) as tf:
                n = len(tf.pages)
        except Exception as e:  # noqa: BLE001 - any parse failure is a corrupt file
            raise ImageReadError(f"corrupt TIFF ({_short(e)}): re-export or re-scan the file",
                                 path) from None
        if n == 0:
            raise ImageReadError("corrupt TIFF: no readable page directory (the file is "
                                 "damaged or not really a TIFF)", path)
        return n
    if kind == "other":  # let Pillow say whether it knows the format
        from PIL import Image, UnidentifiedImageError
        try:
            with Image.open(path) as im:
                return int(getattr(im, "n_frames", 1) or 1)
        except UnidentifiedImageError:
            raise ImageReadError("not a supported image: logdigit reads TIFF, PNG and JPEG",
                                 path) from None
        except Exception as e:  # noqa: BLE001
            raise ImageReadError(f"corrupt image header ({_short(e)})", path) from None
    return 1


def iter_pages(path: str | os.PathLike, pages: list[int] | None = None) -> Iterator[Scan]:
    """Yield :class:`Scan` for each page in ``pages`` (default: all pages, in order).

    One page is held at a time.
    """
    for p in (range(count_pages(path)) if pages is None else pages):
        yield read_scan(path, p)


# ---------------------------------------------------------------------------
# sniffing
# ---------------------------------------------------------------------------

def _sniff(path: str) -> str:
    """'tiff' | 'png' | 'jpeg' | 'other' from the magic bytes; ImageReadError on IO errors."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise ImageReadError("file not found", path) from None
    except IsADirectoryError:
        raise ImageReadError("is a directory, not an image file", path) from None
    except OSError as e:
        raise ImageReadError(f"cannot read file: {e.strerror or e}", path) from None
    if not head:
        raise ImageReadError("empty file (0 bytes): not an image", path)
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    return "other"


class _TryPillow(Exception):
    """tifffile cannot decode this page; Pillow may."""


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    s = s[0] if s else type(e).__name__
    return (s[:120] + "...") if len(s) > 120 else s


def _check_size(w: int, h: int, path: str) -> None:
    if w < MIN_SIDE or h < MIN_SIDE:
        raise ImageReadError(
            f"image is {w} x {h} px, too small to hold a log (need at least {MIN_SIDE} px "
            f"in each dimension): check that this is the full scan", path)
    if w * h > MAX_PIXELS:
        raise ImageReadError(
            f"image is {w} x {h} px, larger than the {MAX_PIXELS:,} px limit: split the scan",
            path)


def _check_page(page: int, n: int, path: str) -> None:
    if page >= n:
        raise ImageReadError(
            f"page {page} does not exist: the file has {n} page{'s' if n != 1 else ''} "
            f"(pages are numbered from 0)", path)


# ---------------------------------------------------------------------------
# TIFF through tifffile
# ---------------------------------------------------------------------------

def _read_tiff(path: str, page: int) -> Scan:
    import tifffile

    try:
        tf = tifffile.TiffFile(path)
    except Exception as e:  # noqa: BLE001
        raise _TryPillow(f"tifffile: {_short(e)}") from None
    with _quiet(), tf:
        try:
            n = len(tf.pages)
        except Exception as e:  # noqa: BLE001
            raise ImageReadError(f"corrupt TIFF page list ({_short(e)})", path) from None
        if n == 0:
            raise ImageReadError("corrupt TIFF: no readable page directory (the file is "
                                 "damaged or not really a TIFF)", path)
        _check_page(page, n, path)
        try:
            p = tf.pages[page]
            if not hasattr(p, "photometric"):  # a TiffFrame: load the full page
                p = p.aspage()
            photometric = p.photometric.name
            bits = int(p.bitspersample)
            spp = int(p.samplesperpixel)
            comp_name = p.compression.name
            dtype_kind = np.dtype(p.dtype).kind if p.dtype is not None else "?"
            colormap = p.colormap
            planar = int(getattr(p, "planarconfig", 1) or 1) == 2
            orientation = _orientation_code(p.tags.get("Orientation"))
        except ImageReadError:
            raise
        except Exception as e:  # noqa: BLE001
            raise ImageReadError(f"corrupt TIFF directory for page {page} ({_short(e)})",
                                 path) from None
        h, w = int(p.imagelength), int(p.imagewidth)
        _check_size(w, h, path)
        if dtype_kind == "f":
            raise ImageReadError("floating-point TIFF samples are not supported: save the "
                                 "scan as 1-bit, 8-bit or 16-bit", path)
        if photometric not in ("MINISWHITE", "MINISBLACK", "RGB", "PALETTE") or \
                (photometric == "PALETTE" and colormap is None):
            raise _TryPillow(f"photometric {photometric}")
        try:
            arr = p.asarray(maxworkers=1)
        except (ValueError, NotImplementedError, KeyError) as e:
            if "compression" in str(e).lower() or "codec" in str(e).lower() or \
                    isinstance(e, NotImplementedError):
                raise _TryPillow(f"tifffile: {_short(e)}") from None
            raise ImageReadError(f"corrupt or truncated TIFF data ({_short(e)}): the file is "
                                 f"damaged; re-export or re-scan it", path) from None
        except MemoryError:
            raise ImageReadError(f"not enough memory to decode a {w} x {h} page", path) from None
        except Exception as e:  # noqa: BLE001 - codec errors come in many types
            raise ImageReadError(f"corrupt or truncated TIFF data ({_short(e)}): the file is "
                                 f"damaged; re-export or re-scan it", path) from None
        dpi = _tiff_dpi(p)
    if planar and spp > 1 and arr.ndim == 3 and arr.shape[0] == spp:
        arr = np.moveaxis(arr, 0, -1)   # PlanarConfiguration 2: one plane per sample
    grey, rgb, mode = _to_grey(arr, photometric, bits, spp, colormap, path)
    if grey.shape != (h, w):
        raise ImageReadError(f"decoded page has shape {grey.shape}, expected {(h, w)}: corrupt "
                             f"TIFF", path)
    grey, rgb = orient(grey, orientation), (None if rgb is None else orient(rgb, orientation))
    return Scan(grey=grey, rgb=rgb, path=path, page=page, n_pages=n, dpi=dpi, mode=mode,
                compression=_COMPRESSION_NAMES.get(comp_name, comp_name.lower()),
                orientation=orientation)


def _orientation_code(tag) -> int:
    """The Orientation tag's value (1-8), 1 when absent or out of range."""
    try:
        v = int(tag.value if hasattr(tag, "value") else tag)
    except (TypeError, ValueError):
        return 1
    return v if 1 <= v <= 8 else 1


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """``a`` ([H, W] or [H, W, C], as stored) turned the way the TIFF / EXIF
    ``orientation`` (1-8) says a viewer shows it (Pillow's ``exif_transpose``): 2 mirror,
    3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate
    90 anticlockwise. 1 returns ``a`` itself; otherwise a contiguous copy.

    Examples
    --------
    >>> import numpy as np
    >>> orient(np.arange(6).reshape(2, 3), 6).tolist()   # 90 deg clockwise
    [[3, 0], [4, 1], [5, 2]]
    """
    if orientation == 1:
        return a
    ops = {2: lambda x: x[:, ::-1], 3: lambda x: x[::-1, ::-1], 4: lambda x: x[::-1],
           5: lambda x: np.swapaxes(x, 0, 1), 6: lambda x: np.rot90(x, -1),
           7: lambda x: np.rot90(x, 2).swapaxes(0, 1), 8: lambda x: np.rot90(x, 1)}
    op = ops.get(int(orientation))
    return a if op is None else np.ascontiguousarray(op(a))


def _tiff_dpi(p) -> float | None:
    try:
        xres = p.tags.get("XResolution")
        if xres is None:
            return None
        num, den = xres.value if isinstance(xres.value, tuple) else (xres.value, 1)
        res = float(num) / float(den) if den else None
        unit = p.tags.get("ResolutionUnit")
        unit = int(unit.value) if unit is not None else 2
        if not res or res <= 0 or unit == 1:
            return None
        return round(res * 2.54, 3) if unit == 3 else float(res)
    except Exception:  # noqa: BLE001 - a bad resolution tag is not worth failing for
        return None


def _to_grey(arr: np.ndarray, photometric: str, bits: int, spp: int, colormap, path: str
             ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Decoded TIFF samples -> (grey uint8 [H, W], rgb or None, mode). Reuses ``arr``'s
    buffer in place where it can (1-bit and 8-bit grey)."""
    if photometric in ("MINISWHITE", "MINISBLACK"):
        if arr.ndim == 3:  # grey + extra samples (alpha): keep the first
            arr = np.ascontiguousarray(arr[..., 0])
        if arr.dtype == np.bool_ or bits == 1:
            g = arr.view(np.uint8) if arr.dtype == np.bool_ else (arr != 0).view(np.uint8)
            # stored 1 = white for MinIsBlack, 1 = black for MinIsWhite
            if photometric == "MINISWHITE":
                np.subtract(1, g, out=g)
            np.multiply(g, 255, out=g)
            return g, None, "1-bit"
        if arr.dtype == np.uint8 and bits <= 8:
            g = arr
            if bits < 8:  # 2- or 4-bit grey: stretch to 0..255
                g = (g.astype(np.uint16) * 255 // ((1 << bits) - 1)).astype(np.uint8)
            if photometric == "MINISWHITE":
                np.subtract(255, g, out=g)
            return np.ascontiguousarray(g), None, "grey"
        if arr.dtype.kind in "ui":
            g = _scale16(arr, bits)
            if photometric == "MINISWHITE":
                np.subtract(255, g, out=g)
            return g, None, "grey-16"
        raise ImageReadError(f"unsupported sample type {arr.dtype}", path)
    if photometric == "PALETTE":
        cmap = np.asarray(colormap)
        cmap = (cmap >> 8) if cmap.max() > 255 else cmap
        lut = np.ascontiguousarray(cmap.T.astype(np.uint8))  # [n, 3]
        idx = arr if arr.ndim == 2 else arr[..., 0]
        if idx.dtype == np.bool_:
            idx = idx.view(np.uint8)
        if int(idx.max(initial=0)) >= len(lut):
            raise ImageReadError("palette index out of range: corrupt TIFF colour map", path)
        grey_lut = _luma(lut[None, :, :])[0]
        grey = grey_lut[idx]
        is_grey = bool(np.all(lut[:, 0] == lut[:, 1]) and np.all(lut[:, 1] == lut[:, 2]))
        return grey, (None if is_grey else lut[idx]), "palette"
    # RGB
    if arr.ndim != 3 or arr.shape[-1] < 3:
        raise ImageReadError(f"RGB page with unexpected shape {arr.shape}: corrupt TIFF", path)
    rgb = arr[..., :3]
    if rgb.dtype != np.uint8:
        rgb = _scale16(rgb, bits)
    rgb = np.ascontiguousarray(rgb)
    return _luma(rgb), rgb, "rgb"


def _scale16(a: np.ndarray, bits: int) -> np.ndarray:
    """Integer samples of ``bits`` bits -> uint8 (full range to 0..255, rounded)."""
    top = float((1 << min(bits, 32)) - 1) if bits > 0 else float(np.iinfo(a.dtype).max)
    out = np.empty(a.shape, np.uint8)
    step = max(1, (1 << 24) // max(1, int(np.prod(a.shape[1:]))))
    for r0 in range(0, a.shape[0], step):  # in row strips: no whole-image float copy
        blk = a[r0:r0 + step].astype(np.float32)
        out[r0:r0 + step] = np.clip(blk * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] RGB -> uint8 [...] luminance (BT.601), by row strips for big images."""
    import cv2
    if rgb.ndim == 3 and rgb.shape[0] > 0:
        out = np.empty(rgb.shape[:2], np.uint8)
        step = 4096
        for r0 in range(0, rgb.shape[0], step):
            out[r0:r0 + step] = cv2.cvtColor(np.ascontiguousarray(rgb[r0:r0 + step]),
                                             cv2.COLOR_RGB2GRAY)
        return out
    w = np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(rgb.astype(np.float32) @ w + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# PNG / JPEG / TIFF fallback through Pillow
# ---------------------------------------------------------------------------

def _read_pillow(path: str, page: int, kind: str = "other", reason: str | None = None) -> Scan:
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # lift the decompression-bomb guard for long scans
    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        if kind != "other":
            hint = f" ({reason})" if reason else ""
            raise ImageReadError(f"corrupt {kind.upper()} file: the header cannot be read{hint}",
                                 path) from None
        raise ImageReadError("not a supported image: logdigit reads TIFF, PNG and JPEG",
                             path) from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"image too large: {_short(e)}", path) from None
    except Exception as e:  # noqa: BLE001
        raise ImageReadError(f"corrupt image header ({_short(e)})", path) from None
    with im:
        n = int(getattr(im, "n_frames", 1) or 1)
        _check_page(page, n, path)
        try:
            if page:
                im.seek(page)
        except Exception as e:  # noqa: BLE001
            raise ImageReadError(f"cannot seek to page {page} ({_short(e)}): corrupt file",
                                 path) from None
        w, h = im.size
        _check_size(w, h, path)
        fmt = (im.format or "").lower()
        comp = im.info.get("compression")
        compression = (_PIL_COMPRESSION_NAMES.get(comp, comp) if comp else
                       {"png": "png", "jpeg": "jpeg", "mpo": "jpeg"}.get(fmt))
        dpi = im.info.get("dpi")
        dpi = float(dpi[0]) if dpi and float(dpi[0]) > 1 else None
        try:
            im.load()
            grey, rgb, mode = _pil_to_grey(im, path)
            orientation = _orientation_code(im.getexif().get(0x0112))
            grey = orient(grey, orientation)
            rgb = None if rgb is None else orient(rgb, orientation)
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(f"not enough memory to decode a {w} x {h} image", path) from None
        except Exception as e:  # noqa: BLE001 - truncated data, codec errors
            raise ImageReadError(f"corrupt or truncated image data ({_short(e)}): the file is "
                                 f"damaged; re-export or re-scan it", path) from None
    return Scan(grey=grey, rgb=rgb, path=path, page=page, n_pages=n, dpi=dpi, mode=mode,
                compression=compression, orientation=orientation)


def _pil_to_grey(im, path: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    m = im.mode
    if m == "1":
        g = np.array(im, dtype=np.bool_).view(np.uint8)
        np.multiply(g, 255, out=g)
        return g, None, "1-bit"
    if m == "L":
        return np.array(im, dtype=np.uint8), None, "grey"
    if m == "LA":
        return np.array(im.getchannel(0), dtype=np.uint8), None, "grey"
    if m in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.array(im)
        if a.dtype.kind == "i":
            a = np.clip(a, 0, None).astype(np.uint32)
        return _scale16(a, 16 if int(a.max(initial=0)) <= 0xFFFF else 32), None, "grey-16"
    if m == "F":
        raise ImageReadError("floating-point images are not supported: save the scan as "
                             "1-bit, 8-bit or 16-bit", path)
    if m in ("P", "PA"):
        pal = im.getpalette() or []
        lut = np.array(pal, np.uint8).reshape(-1, 3) if pal else np.zeros((1, 3), np.uint8)
        idx = np.array(im if m == "P" else im.getchannel(0), dtype=np.uint8)
        if int(idx.max(initial=0)) >= len(lut):
            lut = np.vstack([lut, np.zeros((256 - len(lut), 3), np.uint8)])
        grey = _luma(lut[None])[0][idx]
        is_grey = bool(np.all(lut[:, 0] == lut[:, 1]) and np.all(lut[:, 1] == lut[:, 2]))
        return grey, (None if is_grey else lut[idx]), "palette"
    if m == "CMYK":
        rgb = np.array(im.convert("RGB"), dtype=np.uint8)
        return _luma(rgb), rgb, "cmyk"
    rgb = np.array(im.convert("RGB") if m != "RGB" else im, dtype=np.uint8)
    return _luma(rgb), rgb, "rgb"
