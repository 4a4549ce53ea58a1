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
from typing import TYPE_CHECKING

import numpy as np

from edgekit._native import native

_NATIVE_DTYPES = (np.dtype(np.float32), np.dtype(np.int16), np.dtype(np.uint8))

if TYPE_CHECKING:  # edgekit.spec imports edgekit.modality, which builds on this module
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
    """Area-resize (C, H, W) to (C, h, w) float32 over the fractional ``crop`` region.

    The native kernel (``area_bins``, one pass, float64 sums) computes it when the extension is
    built; :func:`resize_numpy` is the same integral in numpy (float32 sums)."""
    c, H, W = planes.shape
    top, left, ch, cw = crop
    kernels = native()
    if kernels is not None and 1 <= c <= 16 and planes.dtype in _NATIVE_DTYPES:
        src = np.ascontiguousarray(planes, dtype=np.int16 if planes.dtype == np.uint8 else planes.dtype)
        out = np.empty((c, *out_hw), np.float32)
        kernels.area_bins(src, c, H, W, out, out_hw[0], out_hw[1], 1, src.dtype == np.float32,
                          top * H, left * W, ch * H, cw * W)
        return out
    return resize_numpy(planes, out_hw, crop)


def resize_numpy(planes: np.ndarray, out_hw: tuple[int, int], crop=FULL) -> np.ndarray:
    """:func:`resize` in numpy."""
    c, H, W = planes.shape
    top, left, ch, cw = crop
    x = _area_axis(planes, 1, top * H, ch * H, out_hw[0])
    return _area_axis(x, 2, left * W, cw * W, out_hw[1])


def mv_input(mv: np.ndarray, frame_hw: tuple[int, int], out_hw: tuple[int, int], crop=FULL,
             scale: float = 1.0, stride: int = 8) -> np.ndarray:
    """(2, h, w) float32 motion in pixels of the model input grid, times ``scale``.

    mv: (2, gh, gw) vectors in pixels of the (H, W) = ``frame_hw`` video, one per ``stride`` x
    ``stride`` cell (8 for edgekit.bitstream MVs, 4 for the synthetic ground-truth flow)."""
    H, W = frame_hw
    gh, gw = mv.shape[1:]
    # the grid covers gh*stride x gw*stride pixels; express the crop in grid units
    sy, sx = H / (gh * stride), W / (gw * stride)
    out = resize(mv, out_hw, (crop[0] * sy, crop[1] * sx, crop[2] * sy, crop[3] * sx))
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


def flow_input(flow: np.ndarray, frame_hw, out_hw, crop=FULL, scale: float = 1.0, stride: int = 1) -> np.ndarray:
    """(2, h, w) float32 from a dense flow (2, h0, w0) in pixels of the ``frame_hw`` video, sampled
    every ``stride`` pixels (1 for a full-resolution teacher flow)."""
    return mv_input(flow, frame_hw, out_hw, crop, scale, stride)


def parts(frame, frame_hw, out_hw, names, norm: Mapping, iframe_rgb: np.ndarray | None = None, crop=FULL,
          flow: np.ndarray | None = None, flow_stride: int = 1) -> dict[str, np.ndarray]:
    """The named parts (see edgekit.modality) of one CompressedFrame, each (C, h, w) float32 at
    ``out_hw`` and scaled by ``norm``: ``mv`` (2), ``residual`` (3, YUV), ``iframe`` (3, normalised
    RGB of the frame, or of ``iframe_rgb``, its GOP's I-frame) and ``flow`` (2, from ``flow``).
    The runtime and the training cache both compute parts here. Raises ValueError for a part
    whose source is missing."""
    out = {}
    for name in names:
        if name == "mv":
            out[name] = mv_input(frame.mv, frame_hw, out_hw, crop, norm["mv_scale"])
        elif name == "residual":
            residual = frame.residual
            if residual is not None and residual.dtype == np.float32 and crop == FULL \
                    and residual.shape[1:] == tuple(out_hw):
                # already area-averaged to the model's size by the reader (residual_size=)
                out[name] = residual * np.float32(norm["residual_scale"])
            else:
                out[name] = residual_input(_residual(frame, frame_hw), out_hw, crop, norm["residual_scale"])
        elif name == "iframe":
            rgb = frame.rgb if frame.rgb is not None else iframe_rgb
            if rgb is None:
                raise ValueError(f"frame {frame.index} needs the RGB of its I-frame")
            out[name] = rgb_input(rgb, out_hw, crop, norm["rgb_mean"], norm["rgb_std"])
        elif name == "flow":
            if flow is None:
                raise ValueError("the flow part needs a flow array")
            out[name] = flow_input(flow, frame_hw, out_hw, crop, norm["flow_scale"], flow_stride)
        else:
            raise ValueError(f"unknown part {name!r}")
    return out


def frame_input(spec: InputSpec, frame, frame_hw, iframe_rgb: np.ndarray | None = None, crop=FULL,
                flow: np.ndarray | None = None, flow_stride: int = 1) -> np.ndarray:
    """(C, h, w) float32 of one CompressedFrame for ``spec`` (one segment / one time step): its
    parts, assembled by the modality table's one step function."""
    from edgekit.modality import MODALITIES

    row = MODALITIES[spec.modality]
    norm = {**row.normalization, **spec.normalization}
    step_parts = parts(frame, frame_hw, spec.size, row.parts, norm, iframe_rgb, crop, flow, flow_stride)
    return row.step(step_parts, frame.kind, norm)


def gop_step(residual_in: np.ndarray, iframe_in: np.ndarray, norm: dict, residual_scale: float = 1.0) -> np.ndarray:
    """One MFCD-Net GOP-clip step, (R_acc + I) / 2 in normalised RGB, from already prepared inputs:
    ``residual_in`` a resized YUV residual times ``residual_scale``, ``iframe_in`` a normalised RGB
    input. Every operation is linear, so it commutes with resizing (the cache relies on this)."""
    mean = np.asarray(norm["rgb_mean"], np.float32)[:, None, None]
    std = np.asarray(norm["rgb_std"], np.float32)[:, None, None]
    i255 = (iframe_in * std + mean) * 255
    r = residual_rgb(residual_in / np.float32(residual_scale))
    return ((r + i255) / 2 / 255 - mean) / std


def _residual(frame, frame_hw):
    if frame.residual is None:
        return np.zeros((3, *frame_hw), np.int16)
    if isinstance(frame.residual, tuple):  # the 4:2:0 layout (edgekit.bitstream.YUV420)
        return frame.residual.to_444()
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
            crop=FULL, flows: Sequence[np.ndarray] | None = None, flow_stride: int = 1) -> np.ndarray:
    """One model input of ``spec.shape`` from the chosen frames (one per segment or time step).

    iframes: GOP index -> the GOP's I-frame RGB (needed by "iframe" and "gop_clip" streams)."""
    steps = [frame_input(spec, f, frame_hw, iframes.get(f.gop_index), crop, flows[i] if flows else None,
                         flow_stride) for i, f in enumerate(frames)]
    return stack(spec, steps)
