"""edgekit: video recognition on edge devices, in the compressed domain.

The runtime imports numpy, PyAV and ONNX Runtime only (never torch).
"""

__version__ = "0.1.0"
