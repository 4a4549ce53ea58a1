"""Scene assembly: one clip's complete, deterministic description before any pixel is drawn.

A :class:`ScenePlan` holds a background canvas, textured object layers (back to front) and for every
layer and frame the 2x3 affine matrix that maps the layer's own pixels to image pixels, camera
included. Rendering and the analytic ground-truth flow both read these matrices, so they agree.

Nuisances drawn here (all from the clip's RNG): textured background, 1-3 large still "companion"
objects (so a single frame does not reveal how many objects move), 0-2 small distractors drifting
<= 0.35 px/frame, an occluding bar in front (30% of clips), camera jitter, a lighting ramp with
flicker, and sensor noise. ``static`` clips have no jitter and still distractors: nothing moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.synth import texture
from training.synth.classes import CLASS_BY_NAME
from training.synth.motion import Canvas, Track, class_motion

OCCLUDER_PROBABILITY = 0.3


@dataclass(frozen=True)
class Layer:
    """One object: premultiplied RGBA patch float32 (S, S, 4) and ``to_image`` float64 (T, 2, 3),
    the affine map from patch pixel (x, y) to image pixel at each frame. ``is_actor`` marks the
    labelled object(s)."""

    rgba: np.ndarray
    to_image: np.ndarray
    is_actor: bool


@dataclass(frozen=True)
class ScenePlan:
    """A clip before rendering.

    ``background`` float32 (Hc, Wc, 3) canvas and ``background_to_image`` (T, 2, 3);
    ``layers`` back to front; ``gain`` (T,) multiplies the image (lighting ramp and flicker);
    ``noise_sigma`` is the sensor noise std in 8-bit levels, drawn from ``noise_seed``;
    ``sensor`` (broad clips only; None: none) adds what a camera's sensor does beyond that
    signal-independent noise (:class:`Sensor`); ``metadata`` is JSON-ready.
    """

    canvas: Canvas
    background: np.ndarray
    background_to_image: np.ndarray
    layers: tuple[Layer, ...]
    gain: np.ndarray
    noise_sigma: float
    noise_seed: int
    metadata: dict
    sensor: Sensor | None = None


@dataclass(frozen=True)
class Sensor:
    """A camera sensor's signal-dependent and fixed-pattern effects, applied by ``render`` after the
    lighting gain and before the noise of ``noise_sigma``; each term is off at 0.

    - ``vignette``: fall-off of the lens towards the corners, ``I * (1 - vignette * r^2)`` with r the
      distance from the centre over the half-diagonal (fixed in the image: the scene moves under it);
    - ``shot_k``: photon (shot) noise, Gaussian with variance ``shot_k * I`` in 8-bit levels (so
      bright areas are noisier; at ``shot_k`` 0.5, 7 levels at mid-grey);
    - ``row_sigma``: row (banding) noise of the read-out, one offset per row and frame, std in levels;
    - ``seed``: the generator of the shot and row noise (separate from ``noise_seed``).
    """

    vignette: float
    shot_k: float
    row_sigma: float
    seed: int


def pose_matrices(track: Track, patch_size_px: int, camera_px: np.ndarray) -> np.ndarray:
    """Affine maps (T, 2, 3) from patch pixels to image pixels.

    image = R(angle) * scale * (patch - patch_centre) + centre - camera, with R rotating
    clockwise as displayed for a positive angle (image y points down).
    """
    anchor = (patch_size_px - 1) / 2.0
    cos, sin = np.cos(track.angle_rad) * track.scale, np.sin(track.angle_rad) * track.scale
    out = np.empty((len(cos), 2, 3))
    out[:, 0, 0], out[:, 0, 1] = cos, -sin
    out[:, 1, 0], out[:, 1, 1] = sin, cos
    offset = track.centre_px - camera_px
    out[:, 0, 2] = offset[:, 0] - anchor * (cos - sin)
    out[:, 1, 2] = offset[:, 1] - anchor * (sin + cos)
    return out


def _still_track(frames: int, centre: np.ndarray, angle_rad: float, scale: float = 1.0) -> Track:
    return Track(np.tile(centre, (frames, 1)), np.full(frames, angle_rad), np.full(frames, scale))


def _distractor_track(rng: np.random.Generator, canvas: Canvas, centre: np.ndarray, moving: bool) -> Track:
    """Small random motion: a slow drift plus a wobble of about a pixel; none when not ``moving``."""
    t = canvas.frames
    angle0 = rng.uniform(0, 2 * np.pi)
    if not moving:
        return _still_track(t, centre, angle0)
    steps = np.arange(t, dtype=np.float64)
    heading = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0, 0.35) * canvas.unit * np.array([math.cos(heading), math.sin(heading)])
    wobble = rng.uniform(0, 1.0) * canvas.unit * np.sin(2 * np.pi * steps / rng.uniform(8, 20) + rng.uniform(0, 6.3))
    wobble_dir = rng.uniform(0, 2 * np.pi)
    path = centre + steps[:, None] * drift + wobble[:, None] * np.array([math.cos(wobble_dir), math.sin(wobble_dir)])
    spin = math.radians(rng.uniform(-0.5, 0.5))
    return Track(path, angle0 + spin * steps, np.ones(t))


def plan_scene(label: str, rng: np.random.Generator, canvas: Canvas) -> ScenePlan:
    """Draw a complete clip of class ``label`` at ``canvas`` size from ``rng``.

    Raises:
        KeyError: ``label`` is not a benchmark class.
    """
    spec = CLASS_BY_NAME[label]
    w, h, t = canvas.width_px, canvas.height_px, canvas.frames
    unit = canvas.unit
    short = min(w, h)
    is_static = label == "static"
    motion = class_motion(label, rng, canvas)

    # camera: pan (from the class) plus small jitter, image = world - camera
    jitter_sigma = 0.0 if is_static else rng.uniform(0.0, 0.5) * unit
    jitter = np.clip(rng.normal(0.0, 1.0, (t, 2)) * jitter_sigma, -3 * jitter_sigma, 3 * jitter_sigma)
    pan = np.asarray(motion.pan_px_per_frame)
    camera = np.arange(t)[:, None] * pan[None, :] + jitter
    mid_camera = pan * (t - 1) / 2  # still things are placed in the view at mid-clip

    # background canvas covers the whole camera path
    margin = np.ceil(np.abs(camera).max(axis=0)) + 2
    bg = texture.background(rng, h + 2 * int(margin[1]), w + 2 * int(margin[0]))
    bg_to_image = np.zeros((t, 2, 3))
    bg_to_image[:, 0, 0] = bg_to_image[:, 1, 1] = 1.0
    bg_to_image[:, :, 2] = -(camera + margin)
    bg_brightness = float(bg.mean())

    behind: list[Layer] = []
    n_large = rng.integers(1, 4)  # large objects in view, moving or not: 1-3 in every class
    for _ in range(max(0, n_large - len(motion.actors))):
        size = int(round(rng.uniform(0.18, 0.32) * short))
        centre = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h]) + mid_camera
        patch = texture.object_patch(rng, size, "any", bg_brightness)
        behind.append(Layer(patch, pose_matrices(_still_track(t, centre, rng.uniform(0, 6.3)), size, camera), False))
    n_distractors = rng.integers(0, 3)
    for _ in range(n_distractors):
        size = int(round(rng.uniform(0.07, 0.14) * short))
        centre = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h]) + mid_camera
        patch = texture.object_patch(rng, size, "any", bg_brightness)
        track = _distractor_track(rng, canvas, centre, moving=not is_static)
        behind.append(Layer(patch, pose_matrices(track, size, camera), False))
    order = rng.permutation(len(behind))
    layers = [behind[i] for i in order]

    for track, size in zip(motion.actors, motion.actor_sizes_px):
        patch = texture.object_patch(rng, size, spec.actor_colour, bg_brightness)
        layers.append(Layer(patch, pose_matrices(track, size, camera), True))

    has_occluder = bool(rng.random() < OCCLUDER_PROBABILITY)
    if has_occluder:
        length = int(round(rng.uniform(0.3, 0.5) * short))
        if motion.actors:  # put it across the actor's path, so it really hides part of the motion
            at = motion.actors[0].centre_px[int(rng.uniform(0.2, 0.8) * (t - 1))]
            centre = at + rng.normal(0, 0.05 * short, 2)
        else:
            centre = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h]) + mid_camera
        patch = texture.object_patch(rng, length, "any", bg_brightness, elongation=rng.uniform(2.5, 4.0))
        layers.append(Layer(patch, pose_matrices(_still_track(t, centre, rng.uniform(0, np.pi)), length, camera), False))

    gain_start, gain_end = rng.uniform(0.85, 1.15, 2)
    flicker_sigma = rng.uniform(0.0, 0.02)
    gain = np.linspace(gain_start, gain_end, t) * (1 + rng.normal(0, 1, t) * flicker_sigma)
    noise_sigma = float(rng.uniform(1.0, 3.5))

    metadata = {
        "label": label,
        "motion": motion.params,
        "actors": len(motion.actors),
        "still_objects": int(max(0, n_large - len(motion.actors))),
        "distractors": int(n_distractors),
        "occluder": has_occluder,
        "camera_jitter_sigma_px": float(jitter_sigma),
        "gain_start": float(gain_start),
        "gain_end": float(gain_end),
        "flicker_sigma": float(flicker_sigma),
        "noise_sigma": noise_sigma,
    }
    return ScenePlan(canvas, bg, bg_to_image, tuple(layers), gain.astype(np.float32), noise_sigma,
                     int(rng.integers(2**31)), metadata)
