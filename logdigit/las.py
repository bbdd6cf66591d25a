"""Depth-value tables -> LAS 2.0 (through lasio) or CSV, written atomically.

LAS (DESIGN.md): ``DEPT`` plus one column per curve on one regular depth step, NULL
(-999.25) where a curve was not read, ``~Well`` STRT/STOP/STEP/NULL consistent with
the data plus the source file (``SRCF``), ``~Parameter`` with the model, calibration,
page and read mode, ``~Other`` with free-text notes. CSV: the same columns plus one
``<MNEM>_CONF`` per-sample confidence column (0..1) per curve.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import DEPTH_MNEMONIC, NULL_VALUE
from .fsutil import atomic_path, atomic_write_text

FORMATS = ("las", "csv")


@dataclass
class CurveColumn:
    """One output curve: ``values`` float [N] (NaN = not read), ``confidence`` [N] 0..1."""

    mnemonic: str
    unit: str
    values: np.ndarray
    confidence: np.ndarray
    descr: str = ""

    @property
    def coverage(self) -> float:
        """Fraction of depth samples read (not NULL)."""
        return float(np.isfinite(self.values).mean()) if len(self.values) else 0.0


@dataclass
class DepthTable:
    """Curves on one regular depth step.

    ``depth`` float [N] (regular, increasing), ``depth_unit`` (FT, M or PX for an
    uncalibrated read indexed by pixel row), ``step``; ``params`` go to ~Parameter
    (mnemonic -> (value, description)); ``notes`` to ~Other.
    """

    depth: np.ndarray
    depth_unit: str
    step: float
    curves: list[CurveColumn] = field(default_factory=list)
    source: str = ""
    params: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def write_las(table: DepthTable, path: str | os.PathLike) -> Path:
    """Write ``table`` as LAS 2.0 at ``path`` (atomically). Returns the path."""
    import lasio

    las = lasio.LASFile()
    unit = table.depth_unit
    d = np.asarray(table.depth, dtype=np.float64)
    las.well["STRT"].value = float(d[0]) if len(d) else float("nan")
    las.well["STOP"].value = float(d[-1]) if len(d) else float("nan")
    las.well["STEP"].value = float(table.step)
    for k in ("STRT", "STOP", "STEP"):
        las.well[k].unit = unit
    las.well["NULL"].value = NULL_VALUE
    las.well["SRVC"].value = "logdigit"
    las.well["SRCF"] = lasio.HeaderItem("SRCF", value=Path(table.source).name if table.source
                                        else "", descr="SOURCE FILE (SCAN)")
    for mnem, (val, descr) in table.params.items():
        las.params.append(lasio.HeaderItem(mnem, value=str(val), descr=descr))
    las.other = "\n".join(table.notes)
    las.append_curve(DEPTH_MNEMONIC, d, unit=unit, descr="DEPTH" if unit != "PX" else "PIXEL ROW")
    for c in table.curves:
        v = np.where(np.isfinite(c.values), c.values, NULL_VALUE)
        las.append_curve(c.mnemonic, v, unit=c.unit, descr=c.descr)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            las.write(f, version=2.0, wrap=False, fmt="%.6g", column_fmt={0: "%.4f"}, STRT=las.well["STRT"].value,
                      STOP=las.well["STOP"].value, STEP=las.well["STEP"].value)
    return Path(path)


def write_csv(table: DepthTable, path: str | os.PathLike) -> Path:
    """Write ``table`` as CSV (DEPT, curves, per-curve ``_CONF``), empty cells = not
    read; ``#`` comment lines carry the source, parameters and notes."""
    buf = io.StringIO()
    buf.write(f"# source: {table.source}\n")
    for mnem, (val, descr) in table.params.items():
        buf.write(f"# {mnem}: {val}  ({descr})\n")
    for n in table.notes:
        buf.write(f"# {n}\n")
    w = csv.writer(buf, lineterminator="\n")
    head = [f"{DEPTH_MNEMONIC}[{table.depth_unit}]"]
    for c in table.curves:
        head += [f"{c.mnemonic}[{c.unit}]" if c.unit else c.mnemonic, f"{c.mnemonic}_CONF"]
    w.writerow(head)
    cols = [table.depth] + [a for c in table.curves for a in (c.values, c.confidence)]
    for row in zip(*cols):
        w.writerow([_fmt(v) if np.isfinite(v) else "" for v in row])
    atomic_write_text(path, buf.getvalue())
    return Path(path)


def write_table(table: DepthTable, path: str | os.PathLike, fmt: str = "las") -> Path:
    """Write ``table`` in ``fmt`` (``las`` or ``csv``)."""
    if fmt == "las":
        return write_las(table, path)
    if fmt == "csv":
        return write_csv(table, path)
    raise ValueError(f"unknown format {fmt!r}: use one of {FORMATS}")
