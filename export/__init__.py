"""Export trained checkpoints to ONNX models the logdigit runtime ships."""
