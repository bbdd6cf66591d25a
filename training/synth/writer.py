"""Writing rendered pages and tiles to disk (atomically)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from logdigit.fsutil import atomic_write_bytes, atomic_write_text

from .page import Page


def _png_bytes(img: np.ndarray) -> bytes:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover - cv2 failure
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def tiff_bytes(image: np.ndarray, binarized: bool, dpi: float | None = None) -> bytes:
    """TIFF bytes: 1-bit CCITT G4 when ``binarized`` (0 = black), else LZW grey/RGB."""
    buf = io.BytesIO()
    kw: dict[str, Any] = {}
    if dpi:
        kw["resolution"] = (float(dpi), float(dpi))
        kw["resolutionunit"] = "INCH"
    if binarized and image.ndim == 2:
        # tifffile cannot encode CCITT; Pillow (libtiff) can: mode "1", 0 = black
        from PIL import Image

        pil = Image.fromarray(image >= 128).convert("1")
        pil.save(buf, format="TIFF", compression="group4",
                 **({"dpi": (float(dpi), float(dpi))} if dpi else {}))
    else:
        photometric = "rgb" if image.ndim == 3 else "minisblack"
        tifffile.imwrite(buf, image, photometric=photometric, compression="lzw", **kw)
    return buf.getvalue()


def write_page(page: Page, out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write ``stem.tif`` (1-bit G4 when binarized, else LZW), ``stem.yaml``
    (calibration), ``stem_truth.csv`` and ``stem.json`` (meta) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"tif": out / f"{stem}.tif", "yaml": out / f"{stem}.yaml",
             "csv": out / f"{stem}_truth.csv", "json": out / f"{stem}.json"}
    atomic_write_bytes(paths["tif"], tiff_bytes(page.image, bool(page.meta.get("binarized"))))
    page.calibration.save(paths["yaml"])
    atomic_write_text(paths["csv"], page.truth_csv())
    atomic_write_text(paths["json"], json.dumps(page.meta, indent=1, default=_jsonable))
    return paths


def write_tile(tile: dict[str, Any], out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write ``stem.png`` (image), ``stem_mask.png`` (class ids) and ``stem.json`` (meta)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"image": out / f"{stem}.png", "mask": out / f"{stem}_mask.png", "json": out / f"{stem}.json"}
    atomic_write_bytes(paths["image"], _png_bytes(tile["image"]))
    atomic_write_bytes(paths["mask"], _png_bytes(tile["mask"]))
    atomic_write_text(paths["json"], json.dumps(tile["meta"], indent=1, default=_jsonable))
    return paths


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


__all__ = ["write_page", "write_tile", "tiff_bytes"]
