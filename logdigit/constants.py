"""Project-wide constants: the one place the class map, NULL value and units live.

Everything (renderer, training, export metadata, runtime) imports these; never
re-type them elsewhere.
"""

from __future__ import annotations

#: Multiclass segmentation classes (DESIGN.md). Where curves cross, the pixel
#: takes the class of the curve drawn last.
CLASS_MAP: dict[int, str] = {
    0: "background",  # paper, grid, text, stamps: everything that is not a curve
    1: "solid",
    2: "dashed",
    3: "dotted",
    4: "dashdot",  # dash-dot or long-dash
}
NUM_CLASSES: int = len(CLASS_MAP)

#: Binary task: background vs any curve.
BINARY_CLASS_MAP: dict[int, str] = {0: "background", 1: "curve"}

#: Curve line styles in class-id order (class id = index + 1).
CURVE_STYLES: tuple[str, ...] = ("solid", "dashed", "dotted", "dashdot")
STYLE_TO_CLASS: dict[str, int] = {s: i + 1 for i, s in enumerate(CURVE_STYLES)}
CLASS_TO_STYLE: dict[int, str] = {i + 1: s for i, s in enumerate(CURVE_STYLES)}
BACKGROUND: int = 0

#: LAS NULL value written where a curve was not read.
NULL_VALUE: float = -999.25
#: Mnemonic of the LAS / CSV depth index column; no curve may take it.
DEPTH_MNEMONIC: str = "DEPT"

#: Depth units accepted in calibration files (LAS unit mnemonics).
DEPTH_UNITS: tuple[str, ...] = ("FT", "M")
#: Default output depth step per depth unit.
DEFAULT_STEP: dict[str, float] = {"FT": 0.5, "M": 0.1}

#: Curve value scales.
SCALES: tuple[str, ...] = ("linear", "log")

#: ONNX model metadata keys (custom_metadata_map; values are JSON strings).
META_CLASS_MAP = "logdigit.class_map"
META_INPUT = "logdigit.input"
META_STRIDE = "logdigit.stride"
META_TILE = "logdigit.tile"
META_HALO = "logdigit.halo"
META_CONFIG_SHA = "logdigit.config_sha256"
META_METRICS = "logdigit.metrics"
META_REQUIRED: tuple[str, ...] = (
    META_CLASS_MAP, META_INPUT, META_STRIDE, META_TILE, META_HALO,
    META_CONFIG_SHA, META_METRICS,
)
#: File name of the default model shipped in logdigit/models/.
DEFAULT_MODEL_NAME = "logdigit_default.onnx"

#: ONNX graph input / output names.
ONNX_INPUT_NAME = "image"
ONNX_OUTPUT_NAME = "logits"

#: Default input normalisation: x = ((pixel*scale), 1-x if invert, -mean)/std.
DEFAULT_INPUT_NORM: dict[str, float | int | bool] = {
    "channels": 1, "scale": 1.0 / 255.0, "invert": False, "mean": 0.0, "std": 1.0,
}


def class_map_json(class_map: dict[int, str] = CLASS_MAP) -> dict[str, str]:
    """The class map as stored in model metadata: string keys."""
    return {str(k): v for k, v in class_map.items()}
