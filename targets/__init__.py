"""Inference backends behind one small ``Backend`` protocol, plus device profiles.

    from targets import load_backend, load_profile

    backend = load_backend("openvino", "int8.onnx", device="CPU")   # or "cpu" (ONNX Runtime)
    profile = load_profile("intel-cpu")                             # backend, device, precision, ...
"""

from targets.backend import Backend, TensorInfo, available_backends, load_backend
from targets.profiles import DeviceProfile, list_profiles, load_profile

__all__ = ["Backend", "DeviceProfile", "TensorInfo", "available_backends", "list_profiles", "load_backend",
           "load_profile"]
