"""Re-create examples/sample_page.tif + sample_page.yaml (+ the truth CSV, not committed).

    python examples/make_sample_page.py [--out examples]

The page is ``render_page(2026, 1, height=3000, width=1200, binarize=True, colour=False,
header=True, n_tracks=3)``: a 1-bit CCITT G4 scan with a header and three tracks
(linear, logarithmic, linear) holding curves in all four line styles. The renderer
evolves, so re-running it may draw a different page than the committed one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.synth import render_page, write_page  # noqa: E402

SAMPLE = dict(seed=2026, index=1, height=3000, width=1200, binarize=True, colour=False, header=True, n_tracks=3)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "examples")
    a = ap.parse_args(argv)
    kw = dict(SAMPLE)
    page = render_page(kw.pop("seed"), kw.pop("index"), **kw)
    paths = write_page(page, a.out, "sample_page")
    paths["json"].unlink()
    for p in paths.values():
        if p.exists():
            print(p, p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
