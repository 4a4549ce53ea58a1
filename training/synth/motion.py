"""Class motions: for each benchmark class, the trajectories of its labelled object(s) and the camera pan.

Coordinates are world pixels of the first frame (x right, y DOWN). Angles are radians, positive =
clockwise as displayed (y down). Speeds and sizes scale with ``unit = min(width, height) / 256``,
so a clip at 128x96 looks like a shrunken clip at 340x256.

Every motion is drawn so the labelled motion dominates: its speed (or angular speed, or zoom) is well
above the distractors' (<= 0.35 px/frame) and the camera jitter, and the object stays mostly in view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training.synth.classes import CLASS_NAMES


@dataclass(frozen=True)
class Track:
    """Pose of one object for every frame.

    ``centre_px`` float64 (T, 2) as (x, y); ``angle_rad`` (T,), positive = clockwise as displayed;
    ``scale`` (T,) relative to the object's patch (<= 1: patches are drawn at their largest size).
    """

    centre_px: np.ndarray
    angle_rad: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class ClassMotion:
    """What a class prescribes for one clip.

    ``actors`` are the labelled objects (none for camera/static classes), ``actor_sizes_px`` their
    patch size (diameter at scale 1), ``pan_px_per_frame`` the camera velocity (x, y) in world
    pixels (image content moves by minus this), ``params`` JSON-ready numbers for the metadata.
    """

    actors: tuple[Track, ...] = ()
    actor_sizes_px: tuple[int, ...] = ()
    pan_px_per_frame: tuple[float, float] = (0.0, 0.0)
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Canvas:
    """Frame geometry of a clip: size in pixels and number of frames."""

    width_px: int
    height_px: int
    frames: int

    @property
    def unit(self) -> float:
        return min(self.width_px, self.height_px) / 256.0


def _still(frames: int, centre: tuple[float, float], angle_rad: float = 0.0, scale: float = 1.0) -> Track:
    return Track(np.tile(np.asarray(centre, np.float64), (frames, 1)), np.full(frames, angle_rad),
                 np.full(frames, scale))


def _linear(rng: np.random.Generator, canvas: Canvas, direction_rad: float, speed_px: float) -> tuple[np.ndarray, float]:
    """A straight path at constant speed inside the central 76% of the frame.

    Returns (centre_px (T, 2), the speed actually used): the speed is lowered when the path
    would not fit in the frame.
    """
    w, h, t = canvas.width_px, canvas.height_px, canvas.frames
    ux, uy = math.cos(direction_rad), math.sin(direction_rad)
    box = ((0.12 * w, 0.88 * w), (0.12 * h, 0.88 * h))
    limits = [(hi - lo) / abs(u) for (lo, hi), u in zip(box, (ux, uy)) if abs(u) > 1e-6]
    travel = min(speed_px * (t - 1), 0.95 * min(limits))
    half = (abs(ux) * travel / 2, abs(uy) * travel / 2)
    mid = [rng.uniform(lo + d, hi - d) for (lo, hi), d in zip(box, half)]
    steps = np.arange(t, dtype=np.float64) - (t - 1) / 2
    speed = travel / (t - 1)
    centre = np.stack([mid[0] + ux * speed * steps, mid[1] + uy * speed * steps], axis=1)
    return centre, speed


def _actor_size(rng: np.random.Generator, canvas: Canvas, lo: float = 0.2, hi: float = 0.32) -> int:
    return int(round(rng.uniform(lo, hi) * min(canvas.width_px, canvas.height_px)))


def _translate(direction_deg: float, jitter_deg: float):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        angle = math.radians(direction_deg + rng.uniform(-jitter_deg, jitter_deg))
        centre, speed = _linear(rng, canvas, angle, rng.uniform(1.5, 3.5) * canvas.unit)
        track = Track(centre, np.full(canvas.frames, rng.uniform(0, 2 * np.pi)), np.ones(canvas.frames))
        velocity = [speed * math.cos(angle), speed * math.sin(angle)]
        return ClassMotion((track,), (_actor_size(rng, canvas),), params={
            "speed_px_per_frame": speed, "direction_deg": math.degrees(angle), "velocity_px_per_frame": velocity})
    return motion


def _rotate(sign: float):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        w, h, t = canvas.width_px, canvas.height_px, canvas.frames
        omega = sign * math.radians(rng.uniform(2.5, 7.0))
        centre = (rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h)
        track = Track(_still(t, centre).centre_px, rng.uniform(0, 2 * np.pi) + omega * np.arange(t), np.ones(t))
        return ClassMotion((track,), (_actor_size(rng, canvas, 0.25, 0.38),), params={
            "angular_speed_deg_per_frame": math.degrees(omega), "centre_px": list(centre)})
    return motion


def _zoom(growing: bool):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        w, h, t = canvas.width_px, canvas.height_px, canvas.frames
        zoom = rng.uniform(2.2, 3.5)
        largest = int(round(min(rng.uniform(0.14, 0.2) * zoom, 0.6) * min(w, h)))
        progress = np.arange(t) / (t - 1)
        scale = zoom ** (progress - 1.0) if growing else zoom ** (-progress)
        centre = (rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h)
        track = Track(_still(t, centre).centre_px, np.full(t, rng.uniform(0, 2 * np.pi)), scale)
        rate = zoom ** (1 / (t - 1))
        return ClassMotion((track,), (largest,), params={
            "zoom_total": zoom, "scale_per_frame": rate if growing else 1 / rate, "centre_px": list(centre)})
    return motion


def _wave(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
    w, h, t = canvas.width_px, canvas.height_px, canvas.frames
    axis = math.radians(rng.uniform(-25, 25))
    amplitude = rng.uniform(9, 20) * canvas.unit
    period = rng.uniform(12, 22)
    phase = rng.uniform(0, 2 * np.pi)
    centre = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
    offset = amplitude * np.sin(2 * np.pi * np.arange(t) / period + phase)
    path = centre + offset[:, None] * np.array([math.cos(axis), math.sin(axis)])
    track = Track(path, np.full(t, rng.uniform(0, 2 * np.pi)), np.ones(t))
    return ClassMotion((track,), (_actor_size(rng, canvas),), params={
        "amplitude_px": amplitude, "period_frames": period, "axis_deg": math.degrees(axis),
        "peak_speed_px_per_frame": 2 * np.pi * amplitude / period})


def _pan(sign: float):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        speed = rng.uniform(1.5, 3.5) * canvas.unit
        pan = (sign * speed, rng.uniform(-0.15, 0.15) * speed)
        # content moves by -pan: a camera moving right (+x) makes the scene shift left
        return ClassMotion(pan_px_per_frame=pan, params={"pan_px_per_frame": list(pan),
                                                         "content_velocity_px_per_frame": [-pan[0], -pan[1]]})
    return motion


def _static(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
    return ClassMotion()


def _two_objects(converging: bool):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        w, h, t = canvas.width_px, canvas.height_px, canvas.frames
        axis = rng.uniform(0, np.pi)
        u = np.array([math.cos(axis), math.sin(axis)])
        sizes = (_actor_size(rng, canvas, 0.16, 0.24), _actor_size(rng, canvas, 0.16, 0.24))
        closest = max(sizes) * rng.uniform(1.0, 1.3)
        mid = np.array([rng.uniform(0.4, 0.6) * w, rng.uniform(0.4, 0.6) * h])
        half_room = min(0.45 * w / max(abs(u[0]), 1e-6), 0.45 * h / max(abs(u[1]), 1e-6))  # centre to frame edge
        speed = rng.uniform(1.0, 2.5) * canvas.unit
        speed = min(speed, max((2 * half_room - closest) / (2 * (t - 1)), 0.3 * canvas.unit))
        steps = np.arange(t, dtype=np.float64)
        gap = closest + 2 * speed * ((t - 1 - steps) if converging else steps)
        tracks = tuple(
            Track(mid + side * (gap / 2)[:, None] * u, np.full(t, rng.uniform(0, 2 * np.pi)), np.ones(t))
            for side in (-1.0, 1.0)
        )
        return ClassMotion(tracks, sizes, params={
            "speed_px_per_frame": speed, "axis_deg": math.degrees(axis),
            "gap_start_px": float(gap[0]), "gap_end_px": float(gap[-1])})
    return motion


def _bounce(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
    w, h, t = canvas.width_px, canvas.height_px, canvas.frames
    period = float(np.clip(rng.uniform(0.45, 0.75) * t, 10, 30))
    height = rng.uniform(0.18, 0.32) * h
    gravity = 8 * height / period**2  # px/frame^2: a parabola of this height lasts one period
    floor = rng.uniform(0.72, 0.85) * h
    contact = rng.uniform(0.25, 0.75) * (t - 1)  # one floor contact always falls mid-clip
    tau = (np.arange(t) - contact) % period
    y = floor - gravity * tau * (period - tau) / 2
    drift = rng.uniform(-1.2, 1.2) * canvas.unit
    x0 = rng.uniform(0.2 * w, 0.8 * w - drift * (t - 1)) if drift > 0 else rng.uniform(0.2 * w - drift * (t - 1), 0.8 * w)
    x = x0 + drift * np.arange(t)
    track = Track(np.stack([x, y], axis=1), np.full(t, rng.uniform(0, 2 * np.pi)), np.ones(t))
    return ClassMotion((track,), (_actor_size(rng, canvas, 0.16, 0.26),), params={
        "period_frames": period, "bounce_height_px": height, "gravity_px_per_frame2": gravity,
        "drift_px_per_frame": drift, "floor_y_px": floor})


MOTIONS = {
    "move_left": _translate(180.0, 12.0),
    "move_right": _translate(0.0, 12.0),
    "move_up": _translate(-90.0, 12.0),
    "move_down": _translate(90.0, 12.0),
    "rotate_cw": _rotate(+1.0),
    "rotate_ccw": _rotate(-1.0),
    "approach": _zoom(growing=True),
    "recede": _zoom(growing=False),
    "wave": _wave,
    "scene_left": _pan(+1.0),
    "scene_right": _pan(-1.0),
    "static": _static,
    "meet": _two_objects(converging=True),
    "part": _two_objects(converging=False),
    "bounce": _bounce,
    "red_up_right": _translate(-45.0, 10.0),
    "blue_up_right": _translate(-45.0, 10.0),
}
if tuple(MOTIONS) != CLASS_NAMES:  # fail at import, not after an hour of generation
    raise RuntimeError("training.synth.classes.CLASSES and motion.MOTIONS must list the same classes in order")


def class_motion(name: str, rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
    """Draw the motion of class ``name`` for one clip (KeyError for an unknown name)."""
    return MOTIONS[name](rng, canvas)
