"""Shared tail of the benches: write the results JSON and say where."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(res: dict, out: Path) -> dict:
    """Write ``res`` as indented JSON to ``out`` (folders created), print the path, return ``res``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    return res
