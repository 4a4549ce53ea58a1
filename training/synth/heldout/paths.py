"""Held-out trajectories: the 12 fixed classes as keyframed paths over normalised time.

Time is ``tau = frame / (T - 1)`` in [0, 1]; a path is a start and an end pose joined by a timing
profile (:data:`PROFILES`: constant speed, smoothstep ease-in-out, accelerating, decelerating), so
speeds vary within a clip, unlike the training renderer's constant velocities. Waves are counted in
cycles per clip (triangle or sine), zooms are linear in the sprite's radius. Positions are world
pixels (x right, y down); the image is the world minus the camera offset. Angles in radians,
positive = clockwise as displayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training.synth.classes import FIXED_CLASS_NAMES

PROFILES = ("constant", "ease", "accelerate", "decelerate")


@dataclass(frozen=True)
class Pose:
    """A sprite's pose at every frame: ``centre_px`` float64 (T, 2), ``radius_px`` (T,), ``angle_rad`` (T,)."""

    centre_px: np.ndarray
    radius_px: np.ndarray
    angle_rad: np.ndarray


@dataclass(frozen=True)
class ClassPath:
    """What a class prescribes for one held-out clip: the labelled sprites' poses, the camera offset
    float64 (T, 2) (image = world - camera) and JSON-ready ``params``."""

    actors: tuple[Pose, ...]
    camera_px: np.ndarray
    params: dict = field(default_factory=dict)


def timing(profile: str, tau: np.ndarray) -> np.ndarray:
    """Progress in [0, 1] at normalised times ``tau``: monotonic, 0 at 0 and 1 at 1."""
    if profile == "constant":
        return tau
    if profile == "ease":
        return tau * tau * (3 - 2 * tau)
    if profile == "accelerate":
        return tau * tau
    if profile == "decelerate":
        return 1 - (1 - tau) ** 2
    raise KeyError(f"unknown timing profile {profile!r}; one of {PROFILES}")


def _tau(frames: int) -> np.ndarray:
    return np.arange(frames, dtype=np.float64) / (frames - 1)


def _profile(rng: np.random.Generator) -> str:
    return PROFILES[int(rng.integers(len(PROFILES)))]


def _radius(rng: np.random.Generator, width_px: int, height_px: int, lo: float, hi: float) -> float:
    return rng.uniform(lo, hi) * min(width_px, height_px) / 2


def _glide(axis_deg: float):
    def path(rng: np.random.Generator, width_px: int, height_px: int, frames: int) -> ClassPath:
        heading = math.radians(axis_deg + rng.uniform(-15, 15))
        d = np.array([math.cos(heading), math.sin(heading)])
        radius = _radius(rng, width_px, height_px, 0.12, 0.4)
        extent = abs(d[0]) * width_px + abs(d[1]) * height_px
        distance = max(rng.uniform(0.2, 0.85) * extent, 0.5 * (frames - 1))
        middle = np.array([rng.uniform(0.3, 0.7) * width_px, rng.uniform(0.3, 0.7) * height_px])
        start, end = middle - d * distance / 2, middle + d * distance / 2
        profile = _profile(rng)
        progress = timing(profile, _tau(frames))
        centre = start + progress[:, None] * (end - start)
        angle = np.full(frames, rng.uniform(0, 2 * np.pi))
        return ClassPath((Pose(centre, np.full(frames, radius), angle),), np.zeros((frames, 2)), {
            "heading_deg": math.degrees(heading), "distance_px": distance, "profile": profile,
            "mean_speed_px_per_frame": distance / (frames - 1), "start_px": list(start), "radius_px": radius})
    return path


def _turn(sign: float):
    def path(rng: np.random.Generator, width_px: int, height_px: int, frames: int) -> ClassPath:
        turn = sign * math.radians(rng.uniform(1.2, 9.0) * (frames - 1))  # 1.2-9 deg/frame on average
        profile = _profile(rng) if rng.random() < 0.5 else "constant"
        angle = rng.uniform(0, 2 * np.pi) + turn * timing(profile, _tau(frames))
        centre = np.tile([rng.uniform(0.3, 0.7) * width_px, rng.uniform(0.3, 0.7) * height_px], (frames, 1))
        radius = _radius(rng, width_px, height_px, 0.25, 0.5)
        return ClassPath((Pose(centre, np.full(frames, radius), angle),), np.zeros((frames, 2)), {
            "turn_deg": math.degrees(turn), "profile": profile, "radius_px": radius,
            "mean_angular_speed_deg_per_frame": math.degrees(turn) / (frames - 1)})
    return path


def _size_change(growing: bool):
    def path(rng: np.random.Generator, width_px: int, height_px: int, frames: int) -> ClassPath:
        large = _radius(rng, width_px, height_px, 0.3, 0.65)
        ratio = rng.uniform(1.6, 3.5)
        profile = _profile(rng)
        progress = timing(profile, _tau(frames))
        small_to_large = large / ratio + (large - large / ratio) * progress
        radius = small_to_large if growing else large - (large - large / ratio) * progress
        centre = np.tile([rng.uniform(0.3, 0.7) * width_px, rng.uniform(0.3, 0.7) * height_px], (frames, 1))
        return ClassPath((Pose(centre, radius, np.full(frames, rng.uniform(0, 2 * np.pi))),), np.zeros((frames, 2)),
                         {"radius_start_px": float(radius[0]), "radius_end_px": float(radius[-1]),
                          "size_ratio": ratio, "profile": profile})
    return path


def _sway(rng: np.random.Generator, width_px: int, height_px: int, frames: int) -> ClassPath:
    cycles = rng.uniform(1.5, min(4.0, (frames - 1) / 6))
    amplitude = rng.uniform(0.05, 0.16) * width_px
    axis = math.radians(rng.uniform(-20, 20))
    shape = "triangle" if rng.random() < 0.5 else "sine"
    phase = rng.uniform(0, 1)
    u = (cycles * _tau(frames) + phase) % 1.0
    offset = (1 - 4 * np.abs(u - 0.5)) if shape == "triangle" else np.sin(2 * np.pi * u)
    middle = np.array([rng.uniform(0.35, 0.65) * width_px, rng.uniform(0.3, 0.7) * height_px])
    centre = middle + amplitude * offset[:, None] * np.array([math.cos(axis), math.sin(axis)])
    radius = _radius(rng, width_px, height_px, 0.12, 0.3)
    return ClassPath((Pose(centre, np.full(frames, radius), np.full(frames, rng.uniform(0, 2 * np.pi))),),
                     np.zeros((frames, 2)), {"cycles": cycles, "amplitude_px": amplitude, "wave_shape": shape,
                                             "axis_deg": math.degrees(axis), "radius_px": radius})


def _camera(sign: float):
    def path(rng: np.random.Generator, width_px: int, height_px: int, frames: int) -> ClassPath:
        distance = max(rng.uniform(0.08, 0.6) * width_px, 0.5 * (frames - 1))
        rise = rng.uniform(-0.12, 0.12) * distance
        profile = _profile(rng)
        progress = timing(profile, _tau(frames))
        # camera moves by +sign*distance: content shifts the other way (scene_left: camera pans right)
        camera = progress[:, None] * np.array([sign * distance, rise])
        return ClassPath((), camera, {"camera_travel_px": [sign * distance, rise], "profile": profile,
                                      "mean_content_speed_px_per_frame": -sign * distance / (frames - 1)})
    return path


def _still(rng: np.random.Generator, width_px: int, height_px: int, frames: int) -> ClassPath:
    return ClassPath((), np.zeros((frames, 2)), {})


PATHS = {
    "move_left": _glide(180.0),
    "move_right": _glide(0.0),
    "move_up": _glide(-90.0),
    "move_down": _glide(90.0),
    "rotate_cw": _turn(+1.0),
    "rotate_ccw": _turn(-1.0),
    "approach": _size_change(growing=True),
    "recede": _size_change(growing=False),
    "wave": _sway,
    "scene_left": _camera(+1.0),
    "scene_right": _camera(-1.0),
    "static": _still,
}
if tuple(PATHS) != FIXED_CLASS_NAMES:
    raise RuntimeError("heldout.paths.PATHS must list the 12 fixed classes in order")


def class_path(label: str, rng: np.random.Generator, width_px: int, height_px: int, frames: int) -> ClassPath:
    """Draw the path of fixed class ``label`` (KeyError for another name)."""
    return PATHS[label](rng, width_px, height_px, frames)
