"""Shared tail of the benches: write the results JSON and say where."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(res: dict, out: Path) -> dict:
    """Write ``res`` as indented JSON to ``out`` (folders created), print the path, return ``res``."""
    from logdigit.fsutil import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return res
