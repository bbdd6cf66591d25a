"""Contact sheet: a grid of rendered tiles, each with its coloured class mask beside it.

    python -m training.synth.contact docs/contact_sheet.png [--seed 0] [--rows 4] [--cols 3] [--size 320]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from logdigit.fsutil import atomic_write_png

from .config import RenderConfig
from .page import render_tile

#: class id -> RGB for the coloured masks (background white)
PALETTE = np.array([[255, 255, 255], [220, 30, 30], [30, 90, 230], [20, 160, 60], [245, 140, 0]], np.uint8)


def colour_mask(mask: np.ndarray) -> np.ndarray:
    """uint8 [H, W] class ids -> uint8 [H, W, 3] RGB (PALETTE)."""
    return PALETTE[np.clip(mask, 0, len(PALETTE) - 1)]


def contact_sheet(seed: int = 0, rows: int = 4, cols: int = 3, size: int = 320, stride: int = 11,
                  cfg: RenderConfig | None = None) -> np.ndarray:
    """RGB sheet uint8: ``rows`` x ``cols`` pairs (tile | coloured mask), 4 px gutters.

    Tiles are ``render_tile(seed, i * stride)``: one per page for ``stride`` > 8.
    """
    gut = 4
    cell_w = 2 * size + gut
    sheet = np.full((rows * (size + gut) + gut, cols * (cell_w + 3 * gut) + gut, 3), 40, np.uint8)
    for r in range(rows):
        for c in range(cols):
            t = render_tile(seed, (r * cols + c) * stride, size=size, cfg=cfg)
            img = cv2.cvtColor(t["image"], cv2.COLOR_GRAY2RGB)
            y = gut + r * (size + gut)
            x = gut + c * (cell_w + 3 * gut)
            sheet[y:y + size, x:x + size] = img
            sheet[y:y + size, x + size + gut:x + 2 * size + gut] = colour_mask(t["mask"])
    return sheet


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Write a contact sheet of rendered tiles + masks (PNG).")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--size", type=int, default=320)
    a = ap.parse_args(argv)
    sheet = contact_sheet(a.seed, a.rows, a.cols, a.size)
    atomic_write_png(a.out, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), (cv2.IMWRITE_PNG_COMPRESSION, 9))
    print(f"wrote {a.out} ({sheet.shape[1]}x{sheet.shape[0]}, {Path(a.out).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
