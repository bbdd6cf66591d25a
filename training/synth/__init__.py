"""Synthetic well-log page renderer (OpenCV/numpy, deterministic in ``(seed, index)``).

>>> from training.synth import RenderConfig, render_page, render_tile
>>> page = render_page(0, 0, height=1500, width=1000, degrade=False)
>>> page.image.shape == page.mask.shape == (1500, 1000)
True

``render_page`` returns a :class:`Page` (image, mask, instance, clean, truth,
calibration, meta); ``render_tile`` a training window of a page; ``write_page``
stores a page as TIFF + calibration YAML + truth CSV. See docs/renderer.md.
"""

from .config import RenderConfig
from .page import CurveTruth, Page, Truth, page_model, render_page, render_tile, render_window
from .writer import write_page, write_tile

__all__ = ["RenderConfig", "Page", "Truth", "CurveTruth", "render_page", "render_tile", "render_window",
           "page_model", "write_page", "write_tile"]
