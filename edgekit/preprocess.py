"""The one tensor preparation: CompressedFrame side data -> the float32 arrays a model consumes.

Numpy only. ``training`` (datasets, cache, quantization calibration) and ``edgekit.Recognizer`` call
these same functions, so there is no train/deploy skew. Shapes follow ``edgekit.spec.InputSpec``.

Geometry: every stream is resized from its source grid to the model's (h, w) with area weights
(box-filter overlap, which anti-aliases when shrinking and replicates blocks when growing, the right
thing for 8x8 MV grids). An optional ``crop`` = (top, left, height, width) in *fractions* of the frame
selects a region first, so one crop applies alike to the 1/8-resolution MV grid and the full-resolution
residual. Motion vectors are rescaled with the picture: dx by w_out / w_crop_px, dy by h_out / h_crop_px.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np

from edgekit.spec import InputSpec

FULL = (0.0, 0.0, 1.0, 1.0)

# BT.601 limited range: RGB difference = M @ (dY, dU, dV), the colour conversion without its offset
YUV_TO_RGB = np.array([[1.164, 0.0, 1.596],
                       [1.164, -0.392, -0.813],
                       [1.164, 2.017, 0.0]], np.float32)


@lru_cache(maxsize=256)
def _area_plan(n_src: int, start: float, length: float, n_out: int):
    """Gather indices and fractions for area-averaging ``n_out`` equal intervals of [start, start+length)."""
    if not (0 <= start and length > 0 and start + length <= n_src * (1 + 1e-6)):
        raise ValueError(f"crop [{start}, {start + length}) is outside the {n_src}-pixel source")
    edges = np.minimum(start + np.arange(n_out + 1) * (length / n_out), n_src)
    i0 = np.minimum(np.floor(edges).astype(np.int64), n_src - 1)
    return i0, (edges - i0).astype(np.float32), np.float32(n_out / length)


def _area_axis(x: np.ndarray, axis: int, start: float, length: float, n_out: int) -> np.ndarray:
    """Exact area resize along one axis through the integral: sum over [a, b) = I(b) - I(a), with
    I(t) = S[floor t] + frac(t) * x[floor t] and S the exclusive cumulative sum. Linear in pixels."""
    i0, frac, inv = _area_plan(x.shape[axis], start, length, n_out)
    cs = np.cumsum(x, axis=axis, dtype=np.float32)
    xi = np.take(x, i0, axis=axis).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = -1
    integral = np.take(cs, i0, axis=axis) - xi + frac.reshape(shape) * xi  # S[i0] + frac * x[i0]
    lo = [slice(None)] * x.ndim
    hi = [slice(None)] * x.ndim
    lo[axis], hi[axis] = slice(0, -1), slice(1, None)
    return (integral[tuple(hi)] - integral[tuple(lo)]) * inv


def resize(planes: np.ndarray, out_hw: tuple[int, int], crop=FULL) -> np.ndarray:
    """Area-resize (C, H, W) to (C, h, w) float32 over the fractional ``crop`` region."""
    c, H, W = planes.shape
    top, left, ch, cw = crop
    x = _area_axis(planes, 1, top * H, ch * H, out_hw[0])
    return _area_axis(x, 2, left * W, cw * W, out_hw[1])


def mv_input(mv: np.ndarray, frame_hw: tuple[int, int], out_hw: tuple[int, int], crop=FULL,
             scale: float = 1.0) -> np.ndarray:
    """(2, h, w) float32 motion in pixels of the model input grid, times ``scale``.

    mv: (2, ceil(H/8), ceil(W/8)) float32 from edgekit.bitstream; frame_hw: (H, W) of the video."""
    H, W = frame_hw
    gh, gw = mv.shape[1:]
    # the grid covers gh*8 x gw*8 pixels; express the crop in grid units
    grid_crop = (crop[0] * H / (gh * 8), crop[1] * W / (gw * 8), crop[2] * H / (gh * 8), crop[3] * W / (gw * 8))
    out = resize(mv, out_hw, grid_crop)
    out[0] *= scale * out_hw[1] / (crop[3] * W)
    out[1] *= scale * out_hw[0] / (crop[2] * H)
    return out


def residual_rgb(residual: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 RGB residual from edgekit's int16 YUV residual (linear: exact up to rounding)."""
    c, h, w = residual.shape
    return (YUV_TO_RGB @ residual.reshape(c, h * w).astype(np.float32)).reshape(c, h, w)


def residual_input(residual: np.ndarray, out_hw, crop=FULL, scale: float = 1.0) -> np.ndarray:
    """(3, h, w) float32: the YUV residual resized, times ``scale``."""
    return resize(residual, out_hw, crop) * np.float32(scale)


def rgb_input(rgb: np.ndarray, out_hw, crop=FULL, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> np.ndarray:
    """(3, h, w) float32 normalised RGB from uint8 (H, W, 3)."""
    x = resize(np.moveaxis(rgb, -1, 0), out_hw, crop) / np.float32(255)
    return (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


def flow_input(flow: np.ndarray, out_hw, crop=FULL, scale: float = 1.0) -> np.ndarray:
    """(2, h, w) float32 from a dense (2, h0, w0) flow in pixels of a (h0, w0) grid (any resolution)."""
    h0, w0 = flow.shape[1:]
    out = resize(flow, out_hw, crop)
    out[0] *= scale * out_hw[1] / (crop[3] * w0)
    out[1] *= scale * out_hw[0] / (crop[2] * h0)
    return out


def frame_input(spec: InputSpec, frame, frame_hw, iframe_rgb: np.ndarray | None = None, crop=FULL,
                flow: np.ndarray | None = None) -> np.ndarray:
    """(C, h, w) float32 of one CompressedFrame for ``spec``'s stream (one segment / one time step)."""
    n, hw = spec.normalization, spec.size
    if spec.stream == "iframe":
        rgb = frame.rgb if frame.rgb is not None else iframe_rgb
        return rgb_input(rgb, hw, crop, n["rgb_mean"], n["rgb_std"])
    if spec.stream == "mv":
        return mv_input(frame.mv, frame_hw, hw, crop, n["mv_scale"])
    if spec.stream == "residual":
        return residual_input(_residual(frame, frame_hw), hw, crop, n["residual_scale"])
    if spec.stream == "mv_residual":
        return np.concatenate([mv_input(frame.mv, frame_hw, hw, crop, n["mv_scale"]),
                               residual_input(_residual(frame, frame_hw), hw, crop, n["residual_scale"])])
    if spec.stream == "gop_clip":
        # MFCD-Net: (R_acc + I) / 2 in RGB; the I-frame itself for the first step
        i_rgb = rgb_input(iframe_rgb, hw, crop, (0, 0, 0), (1, 1, 1)) * 255
        r = resize(residual_rgb(_residual(frame, frame_hw)), hw, crop)
        x = i_rgb if frame.kind == "I" else (r + i_rgb) / 2
        return (x / 255 - np.asarray(n["rgb_mean"], np.float32)[:, None, None]) / np.asarray(n["rgb_std"], np.float32)[:, None, None]
    if spec.stream == "flow":
        if flow is None:
            raise ValueError("the flow stream needs a flow array")
        return flow_input(flow, hw, crop, n["flow_scale"])
    raise ValueError(f"unknown stream {spec.stream!r}")


def _residual(frame, frame_hw):
    if frame.residual is None:
        return np.zeros((3, *frame_hw), np.int16)
    return frame.residual


def stack(spec: InputSpec, steps: Sequence[np.ndarray]) -> np.ndarray:
    """Stack per-step (C, h, w) arrays into one batch-1 input of ``spec.shape``."""
    x = np.stack(steps)  # (S or T, C, h, w)
    if spec.layout == "BCTHW":
        x = np.moveaxis(x, 0, 1)
    x = x[None]
    if x.shape != spec.shape:
        raise ValueError(f"prepared {x.shape} but {spec.name} expects {spec.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def prepare(spec: InputSpec, frames: Sequence, frame_hw: tuple[int, int], iframes: Mapping[int, np.ndarray],
            crop=FULL, flows: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """One model input of ``spec.shape`` from the chosen frames (one per segment or time step).

    iframes: GOP index -> the GOP's I-frame RGB (needed by "iframe" and "gop_clip" streams)."""
    steps = [frame_input(spec, f, frame_hw, iframes.get(f.gop_index), crop, flows[i] if flows else None)
             for i, f in enumerate(frames)]
    return stack(spec, steps)
