"""The calibration schema: depth ties, track columns and the curves in each track.

A calibration is what a person writes (or ``logdigit calibrate`` templates) to
tell the digitiser how pixels map to depth and to curve values. The renderer
writes exactly this for every synthetic page; the runtime reads it. Example::

    depth:
      unit: FT                        # FT or M
      ties: [{row: 412, depth: 5000.0}, {row: 20412, depth: 6000.0}]
      rows: [380, 20500]              # optional: the part of the scan to read
    tracks:
      - x: [220, 860]                 # pixel columns; detected when omitted
        curves:
          - {style: solid,  mnemonic: GR,   unit: GAPI, left: 0, right: 150}
          - {style: dashed, mnemonic: CALI, unit: IN, left: 6, right: 16, color: red}
      - x: [900, 1540]
        curves:
          - {style: solid, mnemonic: ILD, unit: OHMM, left: 0.2, right: 2000, scale: log}

Rows and columns are pixel coordinates of the scan as stored, before deskew. On a
skewed scan a track border is slanted: its column ``x`` is read at the middle of
``depth.rows`` (the image's centre row when ``rows`` is omitted).
``left > right`` is a reversed scale. ``wrap: true`` says the curve is printed
with backup traces: a value past the right (left) edge re-enters the track from
the left (right), shifted by one track width, and the digitiser unwraps it.

The value <-> position mapping (:func:`value_to_fraction`,
:func:`fraction_to_value`) lives here so the renderer that draws and the
vectoriser that reads share one definition.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import yaml

from .constants import CURVE_STYLES, DEPTH_MNEMONIC, DEPTH_UNITS, SCALES
from .errors import CalibrationError
from .fsutil import atomic_write_text


@dataclass
class DepthTie:
    """One depth tie: pixel ``row`` (scan as stored) is at ``depth`` (depth unit)."""

    row: float
    depth: float


@dataclass
class DepthCalibration:
    """Depth scale: at least two ties; ``rows`` optionally limits the rows read."""

    unit: str = "FT"
    ties: list[DepthTie] = field(default_factory=list)
    rows: tuple[int, int] | None = None


@dataclass
class CurveCalibration:
    """One curve in a track: its line style, name, unit and scale bounds.

    ``left``/``right`` are the values at the track's left and right edges.
    """

    style: str
    mnemonic: str
    unit: str = ""
    left: float = 0.0
    right: float = 1.0
    scale: str = "linear"
    color: str | None = None
    wrap: bool = False


@dataclass
class TrackCalibration:
    """A track: its pixel columns ``x = [left, right]`` (None: detect) and curves."""

    x: tuple[int, int] | None = None
    curves: list[CurveCalibration] = field(default_factory=list)


@dataclass
class Calibration:
    """A whole calibration file. See the module docstring for the YAML form."""

    depth: DepthCalibration
    tracks: list[TrackCalibration] = field(default_factory=list)

    # -- depth mapping -------------------------------------------------------
    def depth_at(self, rows: np.ndarray | float) -> np.ndarray:
        """Depth (calibration unit) at pixel row(s), piecewise linear through the
        ties, extrapolated linearly beyond the first and last tie."""
        return _interp_extrap(rows, [t.row for t in self.depth.ties],
                              [t.depth for t in self.depth.ties])

    def row_at(self, depths: np.ndarray | float) -> np.ndarray:
        """Pixel row(s) at depth(s): the inverse of :meth:`depth_at`."""
        return _interp_extrap(depths, [t.depth for t in self.depth.ties],
                              [t.row for t in self.depth.ties])

    # -- (de)serialisation ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the YAML schema (None-valued optional keys dropped)."""
        d: dict[str, Any] = {
            "depth": {
                "unit": self.depth.unit,
                "ties": [{"row": _num(t.row), "depth": _num(t.depth)} for t in self.depth.ties],
            },
            "tracks": [],
        }
        if self.depth.rows is not None:
            d["depth"]["rows"] = [int(r) for r in self.depth.rows]
        for t in self.tracks:
            td: dict[str, Any] = {}
            if t.x is not None:
                td["x"] = [int(v) for v in t.x]
            td["curves"] = []
            for c in t.curves:
                cd = {k: v for k, v in asdict(c).items() if v is not None}
                if cd.get("scale") == "linear":
                    cd.pop("scale")
                if not cd.get("wrap"):
                    cd.pop("wrap", None)
                cd["left"], cd["right"] = _num(c.left), _num(c.right)
                td["curves"].append(cd)
            d["tracks"].append(td)
        return d

    def to_yaml(self) -> str:
        """YAML text in the schema, curves as one flow mapping per line."""
        return dump_yaml(self.to_dict())

    def save(self, path: str | os.PathLike) -> None:
        """Write the YAML atomically."""
        atomic_write_text(path, self.to_yaml())

    def validate_image(self, width: int, height: int, path: str | None = None) -> None:
        """Check the calibration fits an image of ``width`` x ``height`` pixels.

        Raises
        ------
        CalibrationError
            naming the key that does not fit and what would.
        """
        for i, t in enumerate(self.tracks):
            if t.x is not None and (t.x[0] < 0 or t.x[1] > width):
                raise CalibrationError(
                    f"tracks[{i}].x = {list(t.x)} lies outside the image (width {width} px): "
                    f"use columns within [0, {width}]", path)
        if self.depth.rows is not None:
            top, bottom = self.depth.rows
            if top < 0 or bottom > height:
                raise CalibrationError(
                    f"depth.rows = {list(self.depth.rows)} lies outside the image "
                    f"(height {height} px): use rows within [0, {height}]", path)


# ---------------------------------------------------------------------------
# value <-> fraction of track width
# ---------------------------------------------------------------------------

def value_to_fraction(values: np.ndarray | float, curve: CurveCalibration) -> np.ndarray:
    """Position across the track (0 = left edge, 1 = right edge) of ``values``.

    Linear: ``(v - left) / (right - left)``; log: the same in log10. Reversed
    scales (left > right) come out naturally. Values off scale give fractions
    outside [0, 1] (wrapping is the caller's business). Non-positive values on a
    log scale give NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if curve.scale == "log":
        with np.errstate(invalid="ignore", divide="ignore"):
            lv = np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)
        lo, hi = math.log10(curve.left), math.log10(curve.right)
        return (lv - lo) / (hi - lo)
    return (v - curve.left) / (curve.right - curve.left)


def fraction_to_value(frac: np.ndarray | float, curve: CurveCalibration) -> np.ndarray:
    """Curve value at position ``frac`` across the track: inverse of
    :func:`value_to_fraction`."""
    f = np.asarray(frac, dtype=np.float64)
    if curve.scale == "log":
        lo, hi = math.log10(curve.left), math.log10(curve.right)
        return np.power(10.0, lo + f * (hi - lo))
    return curve.left + f * (curve.right - curve.left)


# ---------------------------------------------------------------------------
# loading and validation
# ---------------------------------------------------------------------------

_DEPTH_KEYS = {"unit", "ties", "rows"}
_TRACK_KEYS = {"x", "curves"}
_CURVE_KEYS = {"style", "mnemonic", "unit", "left", "right", "scale", "color", "wrap"}
_TOP_KEYS = {"depth", "tracks"}


def load_calibration(path: str | os.PathLike) -> Calibration:
    """Read and validate a calibration YAML file.

    Raises
    ------
    CalibrationError
        one line naming the file, the key and the fix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "cal.yaml"
    >>> _ = p.write_text('''
    ... depth: {unit: FT, ties: [{row: 0, depth: 1000}, {row: 1000, depth: 1100}]}
    ... tracks:
    ...   - curves: [{style: solid, mnemonic: GR, unit: GAPI, left: 0, right: 150}]
    ... ''')
    >>> cal = load_calibration(p)
    >>> float(cal.depth_at(500))
    1050.0
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise CalibrationError("calibration file not found", path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"cannot read calibration: {e}", path) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise CalibrationError(f"not valid YAML{where}: fix the syntax", path) from None
    return calibration_from_dict(data, path=path)


def calibration_from_dict(data: Any, path: str | None = None) -> Calibration:
    """Build and validate a :class:`Calibration` from the parsed YAML mapping."""

    def err(msg: str) -> CalibrationError:
        return CalibrationError(msg, path)

    if not isinstance(data, dict):
        raise err("calibration must be a mapping with keys 'depth' and 'tracks'")
    _unknown(data, _TOP_KEYS, "", err)
    if "depth" not in data:
        raise err("missing key 'depth': add depth: {unit: FT, ties: [{row: R1, depth: D1}, "
                  "{row: R2, depth: D2}]}")
    dd = data["depth"]
    if not isinstance(dd, dict):
        raise err("'depth' must be a mapping with 'unit' and 'ties'")
    _unknown(dd, _DEPTH_KEYS, "depth.", err)
    unit = str(dd.get("unit", "FT")).upper()
    if unit not in DEPTH_UNITS:
        raise err(f"depth.unit {dd.get('unit')!r} is not one of {', '.join(DEPTH_UNITS)}")
    ties_raw = dd.get("ties")
    if not isinstance(ties_raw, list) or len(ties_raw) < 2:
        raise err("depth.ties needs at least two ties: [{row: R1, depth: D1}, {row: R2, depth: D2}]")
    ties = []
    for i, t in enumerate(ties_raw):
        if not isinstance(t, dict) or set(t) != {"row", "depth"}:
            raise err(f"depth.ties[{i}] must be {{row: R, depth: D}}")
        ties.append(DepthTie(_float(t["row"], f"depth.ties[{i}].row", err),
                             _float(t["depth"], f"depth.ties[{i}].depth", err)))
    rows_ = [t.row for t in ties]
    deps = [t.depth for t in ties]
    if any(b <= a for a, b in zip(rows_, rows_[1:])):
        raise err("depth.ties rows must increase strictly: list the ties top to bottom")
    if any(b <= a for a, b in zip(deps, deps[1:])):
        raise err("depth.ties depths must increase strictly with row: check the depth values")
    rows = dd.get("rows")
    if rows is not None:
        if not (isinstance(rows, list) and len(rows) == 2):
            raise err("depth.rows must be [top, bottom] pixel rows")
        top, bottom = (_int(r, "depth.rows", err) for r in rows)
        if bottom <= top:
            raise err(f"depth.rows = [{top}, {bottom}]: bottom must be below top")
        rows = (top, bottom)
    depth = DepthCalibration(unit=unit, ties=ties, rows=rows)

    tracks_raw = data.get("tracks", [])
    if not isinstance(tracks_raw, list):
        raise err("'tracks' must be a list of tracks")
    tracks = []
    for i, td in enumerate(tracks_raw):
        key = f"tracks[{i}]"
        if not isinstance(td, dict):
            raise err(f"{key} must be a mapping with 'curves' (and optional 'x')")
        _unknown(td, _TRACK_KEYS, key + ".", err)
        x = td.get("x")
        if x is not None:
            if not (isinstance(x, list) and len(x) == 2):
                raise err(f"{key}.x must be [left, right] pixel columns")
            x = tuple(_int(v, f"{key}.x", err) for v in x)
            if x[1] <= x[0]:
                raise err(f"{key}.x = {list(x)}: right column must be greater than left")
        curves = []
        for j, cd in enumerate(td.get("curves") or []):
            curves.append(_curve(cd, f"{key}.curves[{j}]", err))
        tracks.append(TrackCalibration(x=x, curves=curves))
    seen: dict[str, str] = {}    # LAS readers key curves by mnemonic, case-insensitively
    for i, t in enumerate(tracks):
        for j, c in enumerate(t.curves):
            key, name = f"tracks[{i}].curves[{j}].mnemonic", c.mnemonic.upper()
            if name == DEPTH_MNEMONIC:
                raise err(f"{key} {c.mnemonic!r} is the depth index's name: call the curve "
                          f"something else (e.g. {c.mnemonic}_1)")
            if name in seen:
                raise err(f"{key} {c.mnemonic!r} is already used by {seen[name]}: give each "
                          "curve its own mnemonic (e.g. ILD and ILD_2)")
            seen[name] = key
    return Calibration(depth=depth, tracks=tracks)


def _curve(cd: Any, key: str, err) -> CurveCalibration:
    if not isinstance(cd, dict):
        raise err(f"{key} must be a mapping like {{style: solid, mnemonic: GR, left: 0, right: 150}}")
    _unknown(cd, _CURVE_KEYS, key + ".", err)
    style = str(cd.get("style", "")).lower()
    if style not in CURVE_STYLES:
        raise err(f"{key}.style {cd.get('style')!r} is unknown: use one of {', '.join(CURVE_STYLES)}")
    mnemonic = cd.get("mnemonic")
    if mnemonic is not None and not isinstance(mnemonic, str):
        raise err(f"{key}.mnemonic must be text, got {mnemonic!r}: quote it (e.g. '{mnemonic}')")
    if not mnemonic or not mnemonic.strip():
        raise err(f"{key}.mnemonic is missing: name the curve (e.g. GR)")
    if re.search(r"[\s.:]", mnemonic.strip()):
        fix = re.sub(r"[\s.:]+", "_", mnemonic.strip())
        raise err(f"{key}.mnemonic {mnemonic!r} holds a space, '.' or ':', which a LAS 2.0 "
                  f"mnemonic cannot: use e.g. {fix}")
    for k in ("left", "right"):
        if k not in cd:
            raise err(f"{key}.{k} is missing: give the value at the track's {k} edge")
    left = _float(cd["left"], f"{key}.left", err)
    right = _float(cd["right"], f"{key}.right", err)
    if left == right:
        raise err(f"{key}: left == right == {left}: the scale needs two different edge values")
    scale = str(cd.get("scale", "linear")).lower()
    if scale not in SCALES:
        raise err(f"{key}.scale {cd.get('scale')!r} is unknown: use linear or log")
    if scale == "log" and (left <= 0 or right <= 0):
        raise err(f"{key}: log scale needs left and right > 0 (got {left}, {right})")
    wrap = cd.get("wrap", False)
    if not isinstance(wrap, bool):
        raise err(f"{key}.wrap must be true or false")
    color = cd.get("color")
    return CurveCalibration(style=style, mnemonic=mnemonic.strip(), unit=str(cd.get("unit", "") or ""),
                            left=left, right=right, scale=scale,
                            color=None if color is None else str(color), wrap=wrap)


def _unknown(d: dict, allowed: set[str], prefix: str, err) -> None:
    extra = sorted(str(k) for k in d if k not in allowed)
    if extra:
        raise err(f"unknown key {prefix}{extra[0]}: allowed keys are {', '.join(sorted(allowed))}")


def _float(v: Any, key: str, err) -> float:
    if isinstance(v, bool):
        raise err(f"{key} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise err(f"{key} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise err(f"{key} must be finite, got {v!r}")
    return f


def _int(v: Any, key: str, err) -> int:
    f = _float(v, key, err)
    return int(round(f))


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


def _interp_extrap(x, xp, fp) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    xp = np.asarray(xp, dtype=np.float64)
    fp = np.asarray(fp, dtype=np.float64)
    y = np.interp(x, xp, fp)
    lo_slope = (fp[1] - fp[0]) / (xp[1] - xp[0])
    hi_slope = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo_slope, y)
    y = np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi_slope, y)
    return y


class _FlowCurveDumper(yaml.SafeDumper):
    """Dumps curve mappings and ties in flow style, the rest in block style."""


def _repr_dict(dumper: yaml.SafeDumper, data: dict):
    flow = "style" in data or set(data) == {"row", "depth"}
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


def _repr_list(dumper: yaml.SafeDumper, data: list):
    flow = all(isinstance(v, (int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowCurveDumper.add_representer(dict, _repr_dict)
_FlowCurveDumper.add_representer(list, _repr_list)


def dump_yaml(data: dict) -> str:
    """Calibration dict -> YAML text in the documented layout."""
    return yaml.dump(data, Dumper=_FlowCurveDumper, sort_keys=False, width=120)
