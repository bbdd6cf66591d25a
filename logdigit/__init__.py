"""logdigit: turn scanned paper well logs into digital LAS curves.

The runtime package. It depends on numpy, OpenCV, onnxruntime and lasio only;
it never imports torch (training lives in the separate ``training`` package).
"""

__version__ = "0.1.0"
