"""Checkpoint to INT8 ONNX: FP32 export (export.py), calibration readers (calibration.py), static INT8
QDQ and its post-pass (int8.py, graph.py), accuracy and latency per backend (evaluate.py), the report
(report.py); core.py runs them in order (``python -m quantize``)."""
