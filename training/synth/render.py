"""Rendering of a :class:`~training.synth.scene.ScenePlan` into RGB frames and analytic optical flow.

Flow convention (the same sign as edgekit's motion vectors): for frame t >= 1,
``flow_px[t, :, y, x] = (dx, dy) = p - q`` where ``p = (x, y)`` is a pixel of frame t and ``q`` is
where that content was in frame t-1. It is the displacement of content from the previous to the
current frame, defined on the CURRENT frame's grid, in pixels; ``flow_px[0] = 0``.

For every layer the matrices are known, so ``q = A[t-1] @ inverse(A[t]) @ p`` exactly; each pixel
takes the flow of the front-most layer covering it (alpha > 0.5), so occlusion order is respected.
The full-resolution flow is then averaged over ``FLOW_STRIDE_PX`` x ``FLOW_STRIDE_PX`` blocks
(values stay in full-resolution pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from training.synth.config import FLOW_STRIDE_PX
from training.synth.scene import ScenePlan, Sensor


# Gaussian quantiles of 256 equal-probability bins: random bytes -> standard-normal noise at a
# quarter of the cost of Generator.standard_normal (the noise was the slowest step of rendering)
_GAUSSIAN_LUT = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)


@dataclass(frozen=True)
class RenderedClip:
    """A rendered clip.

    ``frames`` uint8 (T, H, W, 3) RGB; ``flow_px`` float32 (T, 2, H/4, W/4), (dx, dy) in
    full-resolution pixels on a grid of stride :data:`FLOW_STRIDE_PX`; ``actor_mask`` bool
    (T, H/4, W/4), True where the labelled object(s) cover most of the block.
    """

    frames: np.ndarray
    flow_px: np.ndarray
    actor_mask: np.ndarray


def _to3x3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def previous_position_map(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The 2x3 affine taking a current-frame image pixel p to where its content was, q, in the
    previous frame, for a layer whose patch->image maps are ``previous`` and ``current`` (2x3)."""
    return (_to3x3(previous) @ np.linalg.inv(_to3x3(current)))[:2]


def _roi(matrix: np.ndarray, patch_size_px: int, width_px: int, height_px: int) -> tuple[int, int, int, int] | None:
    """Integer image box (x0, y0, x1, y1) that contains the transformed patch, clipped to the frame."""
    s = patch_size_px - 1
    corners = matrix[:, :2] @ np.array([[0, s, 0, s], [0, 0, s, s]], np.float64) + matrix[:, 2:]
    x0 = max(int(np.floor(corners[0].min())) - 1, 0)
    y0 = max(int(np.floor(corners[1].min())) - 1, 0)
    x1 = min(int(np.ceil(corners[0].max())) + 2, width_px)
    y1 = min(int(np.ceil(corners[1].max())) + 2, height_px)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _layer_flow(matrix_prev_from_cur: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = matrix_prev_from_cur
    qx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    qy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return (xs - qx).astype(np.float32), (ys - qy).astype(np.float32)


def _apply_sensor(image: np.ndarray, sensor: Sensor, vignette: np.ndarray, rng: np.random.Generator) -> None:
    """Vignetting, shot noise and row noise of ``sensor`` on ``image`` (float32 (H, W, 3), levels),
    in place."""
    h, w = image.shape[:2]
    if sensor.vignette:
        image *= vignette
    if sensor.shot_k:
        shot = _GAUSSIAN_LUT[np.frombuffer(rng.bytes(h * w * 3), np.uint8)].reshape(h, w, 3)
        shot *= np.sqrt(np.maximum(image, 0.0) * sensor.shot_k)
        image += shot
    if sensor.row_sigma:
        image += (rng.standard_normal(h).astype(np.float32) * sensor.row_sigma)[:, None, None]


def render(plan: ScenePlan) -> RenderedClip:
    """Draw every frame of ``plan`` and its ground-truth flow (see the module docstring)."""
    w, h, t = plan.canvas.width_px, plan.canvas.height_px, plan.canvas.frames
    stride = FLOW_STRIDE_PX
    frames = np.empty((t, h, w, 3), np.uint8)
    flow_q = np.zeros((t, 2, h // stride, w // stride), np.float32)
    actor_q = np.zeros((t, h // stride, w // stride), bool)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    noise_rng = np.random.default_rng(plan.noise_seed)
    sensor = plan.sensor
    if sensor is not None:
        sensor_rng = np.random.default_rng(sensor.seed)
        r2 = ((xs - (w - 1) / 2) ** 2 + (ys - (h - 1) / 2) ** 2) / (((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2)
        vignette = (1.0 - sensor.vignette * r2)[..., None].astype(np.float32)
    actor_ids = [k for k, layer in enumerate(plan.layers, start=1) if layer.is_actor]

    for i in range(t):
        image = cv2.warpAffine(plan.background, plan.background_to_image[i], (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        top = np.zeros((h, w), np.uint8)  # index of the front-most layer per pixel, 0 = background
        boxes = {}
        for k, layer in enumerate(plan.layers, start=1):
            box = _roi(layer.to_image[i], layer.rgba.shape[0], w, h)
            if box is None:
                continue
            x0, y0, x1, y1 = box
            shifted = layer.to_image[i].copy()
            shifted[:, 2] -= (x0, y0)
            warped = cv2.warpAffine(layer.rgba, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            alpha = warped[..., 3:4]
            view = image[y0:y1, x0:x1]
            view *= 1.0 - alpha
            view += warped[..., :3]
            top[y0:y1, x0:x1][alpha[..., 0] > 0.5] = k
            boxes[k] = box

        noise = _GAUSSIAN_LUT[np.frombuffer(noise_rng.bytes(h * w * 3), np.uint8)].reshape(h, w, 3)
        noise *= plan.noise_sigma
        image *= plan.gain[i]
        if sensor is not None:
            _apply_sensor(image, sensor, vignette, sensor_rng)
        image += noise + 0.5
        np.clip(image, 0, 255, out=image)
        frames[i] = image.astype(np.uint8)

        if actor_ids:
            covered = np.isin(top, actor_ids).astype(np.float32)
            actor_q[i] = cv2.resize(covered, (w // stride, h // stride), interpolation=cv2.INTER_AREA) > 0.5
        if i == 0:
            continue
        bg_map = previous_position_map(plan.background_to_image[i - 1], plan.background_to_image[i])
        fx, fy = _layer_flow(bg_map, xs, ys)
        for k, (x0, y0, x1, y1) in boxes.items():
            mine = top[y0:y1, x0:x1] == k
            if not mine.any():
                continue
            layer = plan.layers[k - 1]
            m = previous_position_map(layer.to_image[i - 1], layer.to_image[i])
            lx, ly = _layer_flow(m, xs[y0:y1, x0:x1], ys[y0:y1, x0:x1])
            np.copyto(fx[y0:y1, x0:x1], lx, where=mine)
            np.copyto(fy[y0:y1, x0:x1], ly, where=mine)
        flow_q[i, 0] = cv2.resize(fx, (w // stride, h // stride), interpolation=cv2.INTER_AREA)
        flow_q[i, 1] = cv2.resize(fy, (w // stride, h // stride), interpolation=cv2.INTER_AREA)
    return RenderedClip(frames, flow_q, actor_q)
