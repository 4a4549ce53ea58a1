"""Optical-flow teachers for real videos: TV-L1 (OpenCV contrib), Farneback and DIS (faster; its
ULTRAFAST preset, ``dis-ultrafast``, estimates at 1/4 scale without variational refinement: the
kind of estimate a device could afford on every decoded frame).

Every method returns flow in edgekit's MV convention: float32 (2, H, W) on the CURRENT frame's pixel
grid, (dx, dy) = p - q where q is where the content of pixel p was in the previous frame (the sign of
forward optical flow, like the motion vectors). OpenCV computes flow from the first image to the
second, so the teacher runs current -> previous and negates.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import ConfigError, MissingDependencyError

METHODS = ("tvl1", "farneback", "dis", "dis-ultrafast")
_DIS_PRESETS = {"dis": "MEDIUM", "dis-ultrafast": "ULTRAFAST"}  # cv2.DISOPTICAL_FLOW_PRESET_<name>


def _cv2():
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("opencv-contrib-python-headless", "train") from None
    return cv2


def make_teacher(method: str = "tvl1"):
    """A callable (prev_rgb, cur_rgb) -> float32 (2, H, W) flow for ``method`` (see module doc)."""
    cv2 = _cv2()
    if method == "tvl1":
        if not hasattr(cv2, "optflow"):
            raise MissingDependencyError("opencv-contrib-python-headless (cv2.optflow)", "train")
        algo = cv2.optflow.DualTVL1OpticalFlow_create()
        calc = lambda a, b: algo.calc(a, b, None)  # noqa: E731
    elif method in _DIS_PRESETS:
        algo = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{_DIS_PRESETS[method]}"))
        calc = lambda a, b: algo.calc(a, b, None)  # noqa: E731
    elif method == "farneback":
        calc = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # noqa: E731
    else:
        raise ConfigError(f"flow method must be one of {METHODS}, got {method!r}")

    def teacher(prev_rgb: np.ndarray, cur_rgb: np.ndarray) -> np.ndarray:
        prev = cv2.cvtColor(prev_rgb, cv2.COLOR_RGB2GRAY)
        cur = cv2.cvtColor(cur_rgb, cv2.COLOR_RGB2GRAY)
        flow = calc(cur, prev)  # (H, W, 2): where each current pixel's content is in the previous frame
        return -np.moveaxis(flow, -1, 0).astype(np.float32)

    return teacher
