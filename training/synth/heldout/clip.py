"""One held-out clip: encoding, sprites, camera crop, sensor model and exact flow.

:func:`make_clip` draws, from the clip's RNG in this order: the encoding (:func:`draw_encoding`), the
class path (``paths``), the camera shake, the backdrop and the extra sprites, the sensor; then it
renders every frame and the ground-truth flow in the project's convention (``training.synth.render``:
for frame t >= 1, (dx, dy) = p - q with q where the content at pixel p of frame t was in frame t-1,
averaged over 4x4 blocks, in full-resolution pixels).

Sensor model (per pixel, 8-bit levels): ``I' = clip(I * vignette * gain_t + sqrt(k * I) * n1 +
read * n2 + row_t[y])`` with n1, n2 standard normal, ``gain_t`` an exposure ramp times mains flicker
``1 + a * cos(2 pi (100 / fps) t + phi)`` (a lamp on 50 Hz mains beating with the frame rate).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edgekit.bitstream.encode import EncoderSettings
from training.synth.config import FLOW_STRIDE_PX, SynthConfig
from training.synth.encode import ClipEncoding
from training.synth.heldout import looks
from training.synth.heldout.paths import ClassPath, Pose, class_path
from training.synth.render import RenderedClip

SIZES_PX = ((192, 144), (256, 192), (320, 180), (400, 224), (424, 240), (480, 272), (512, 384), (576, 324),
            (640, 480))
FPS_CHOICES = (10, 12, 15, 20, 24, 25, 30)
H264_GOPS = (15, 30, 60, 120, 250)
MPEG4_GOPS = (12, 25, 50, 100)


def draw_encoding(rng: np.random.Generator, config: SynthConfig) -> tuple[tuple[int, int], ClipEncoding]:
    """Frame size (W, H) from :data:`SIZES_PX` up to the config's size, frame rate from
    :data:`FPS_CHOICES`, and x264 (70 %: CRF 20-32, preset veryfast..medium, profile baseline/main/high,
    B-frames 0-3) or MPEG-4 (qscale 3-8, no B-frames) with a GOP from a short list, scene cuts in 40 %."""
    fitting = [s for s in SIZES_PX if s[0] <= config.width_px and s[1] <= config.height_px]
    sizes = fitting or [(config.width_px, config.height_px)]
    size = sizes[int(rng.integers(len(sizes)))]
    fps = int(FPS_CHOICES[int(rng.integers(len(FPS_CHOICES)))])
    scene_cut = bool(rng.random() < 0.4)
    if rng.random() < 0.7:
        profile = ("baseline", "main", "high")[int(rng.integers(3))]
        settings = EncoderSettings("h264", gop=int(H264_GOPS[int(rng.integers(len(H264_GOPS)))]),
                                   bframes=0 if profile == "baseline" else int(rng.integers(0, 4)),
                                   crf=int(rng.integers(20, 33)), scene_cut=scene_cut,
                                   preset=("veryfast", "faster", "fast", "medium")[int(rng.integers(4))],
                                   profile=profile, threads=1, bitexact=True)
        return size, ClipEncoding(settings, fps)
    settings = EncoderSettings("mpeg4", gop=int(MPEG4_GOPS[int(rng.integers(len(MPEG4_GOPS)))]), bframes=0,
                               qscale=int(rng.integers(3, 9)), scene_cut=scene_cut,
                               vectors_per_8x8_block=bool(rng.random() < 0.5), threads=1, bitexact=True)
    return size, ClipEncoding(settings, fps)


def _still_pose(frames: int, centre: np.ndarray, radius: float, angle: float) -> Pose:
    return Pose(np.tile(centre, (frames, 1)), np.full(frames, radius), np.full(frames, angle))


def _bobbing_pose(rng: np.random.Generator, frames: int, centre: np.ndarray, radius: float) -> Pose:
    """A small sprite that bobs by at most 1.5 px around ``centre`` (a leaf in the wind)."""
    amplitude = rng.uniform(0.3, 1.5)
    period = rng.uniform(8, 30)
    heading = rng.uniform(0, 2 * np.pi)
    offset = amplitude * np.sin(2 * np.pi * np.arange(frames) / period + rng.uniform(0, 6.3))
    path = centre + offset[:, None] * np.array([math.cos(heading), math.sin(heading)])
    return Pose(path, np.full(frames, radius), np.full(frames, rng.uniform(0, 2 * np.pi)))


def _flow_of(pose: Pose, camera: np.ndarray, t: int, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) = p - q for image pixels (xs, ys) of a sprite at frame t (similarity pose, camera crop)."""
    wx, wy = xs + camera[t, 0], ys + camera[t, 1]
    c, s = math.cos(pose.angle_rad[t]), math.sin(pose.angle_rad[t])
    rx, ry = wx - pose.centre_px[t, 0], wy - pose.centre_px[t, 1]
    lx, ly = (c * rx + s * ry) / pose.radius_px[t], (-s * rx + c * ry) / pose.radius_px[t]
    c0, s0 = math.cos(pose.angle_rad[t - 1]), math.sin(pose.angle_rad[t - 1])
    qx = pose.centre_px[t - 1, 0] + pose.radius_px[t - 1] * (c0 * lx - s0 * ly) - camera[t - 1, 0]
    qy = pose.centre_px[t - 1, 1] + pose.radius_px[t - 1] * (s0 * lx + c0 * ly) - camera[t - 1, 1]
    return xs - qx, ys - qy


def make_clip(label: str, rng: np.random.Generator, config: SynthConfig) -> tuple[RenderedClip, ClipEncoding, dict]:
    """Render held-out clip of fixed class ``label``: frames uint8 (T, H, W, 3), flow float32
    (T, 2, H/4, W/4), actor mask bool (T, H/4, W/4); its encoding; its JSON-ready metadata.

    Raises:
        KeyError: ``label`` is not one of the 12 fixed classes.
    """
    (w, h), encoding = draw_encoding(rng, config)
    t = config.frames
    path: ClassPath = class_path(label, rng, w, h, t)
    is_static = label == "static"
    shake_sigma = 0.0 if is_static else rng.uniform(0.0, 0.8 if label.startswith("scene") else 0.4)
    camera = path.camera_px + rng.normal(0, 1, (t, 2)) * shake_sigma

    margin = int(np.ceil(np.abs(camera).max())) + 4
    backdrop_kind = looks.BACKDROPS[int(rng.integers(len(looks.BACKDROPS)))]
    backdrop = looks.backdrop(rng, backdrop_kind, h + 2 * margin, w + 2 * margin)

    # sprites back to front: (sprite, pose, is_actor); still companions, bobbing distractors, actors
    placed: list[tuple[looks.Sprite, Pose, bool]] = []
    mid_camera = camera[(t - 1) // 2]
    for _ in range(int(rng.integers(0, 4))):
        centre = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h]) + mid_camera
        radius = rng.uniform(0.08, 0.22) * min(w, h)
        placed.append((looks.make_sprite(rng), _still_pose(t, centre, radius, rng.uniform(0, 6.3)), False))
    n_distractors = 0 if is_static else int(rng.integers(0, 3))
    for _ in range(n_distractors):
        centre = np.array([rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h]) + mid_camera
        placed.append((looks.make_sprite(rng, decorations=(1, 4)),
                       _bobbing_pose(rng, t, centre, rng.uniform(0.03, 0.07) * min(w, h)), False))
    companions = len(placed) - n_distractors
    actor_bodies = []
    for pose in path.actors:  # actors are drawn in image space: they ride the camera
        sprite = looks.make_sprite(rng)
        placed.append((sprite, pose, True))
        actor_bodies.append(sprite.kind)

    exposure_start, exposure_end = rng.uniform(0.7, 1.3, 2)
    flicker = rng.uniform(0.0, 0.08)
    flicker_phase = rng.uniform(0, 2 * np.pi)
    gain = np.linspace(exposure_start, exposure_end, t) * (
        1 + flicker * np.cos(2 * np.pi * (100.0 / encoding.fps) * np.arange(t) + flicker_phase))
    vignette_strength = rng.uniform(0.0, 0.45)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    vignette = (1 - vignette_strength * r2 / 2)[..., None]
    shot_k = rng.uniform(0.02, 0.5)
    read_sigma = rng.uniform(0.5, 3.0)
    row_sigma = rng.uniform(0.0, 1.5)
    noise_rng = np.random.default_rng(int(rng.integers(2**31)))

    stride = FLOW_STRIDE_PX
    frames = np.empty((t, h, w, 3), np.uint8)
    flow = np.zeros((t, 2, h // stride, w // stride), np.float32)
    actor_mask = np.zeros((t, h // stride, w // stride), bool)
    actor_ids = [k for k, (_, _, is_actor) in enumerate(placed, start=1) if is_actor]
    for i in range(t):
        centre = (margin + camera[i, 0] + (w - 1) / 2, margin + camera[i, 1] + (h - 1) / 2)
        image = cv2.getRectSubPix(backdrop, (w, h), centre)
        labels = np.zeros((h, w), np.uint8)
        for k, (sprite, pose, is_actor) in enumerate(placed, start=1):
            # companions and distractors live in the world; actors' poses are image positions
            at = pose.centre_px[i] if is_actor else pose.centre_px[i] - camera[i]
            looks.draw_sprite(image, labels, k, sprite, at, pose.radius_px[i], pose.angle_rad[i])
        lit = image.astype(np.float32) * vignette * np.float32(gain[i])
        shot = np.sqrt(np.maximum(lit, 0) * np.float32(shot_k)) * noise_rng.standard_normal(lit.shape, np.float32)
        read = noise_rng.standard_normal(lit.shape, np.float32) * np.float32(read_sigma)
        rows = noise_rng.standard_normal((h, 1, 1), np.float32) * np.float32(row_sigma)
        frames[i] = np.clip(lit + shot + read + rows + 0.5, 0, 255).astype(np.uint8)

        if actor_ids:
            covered = np.isin(labels, actor_ids).astype(np.float32)
            actor_mask[i] = cv2.resize(covered, (w // stride, h // stride), interpolation=cv2.INTER_AREA) > 0.5
        if i == 0:
            continue
        fx = np.full((h, w), -(camera[i, 0] - camera[i - 1, 0]), np.float32)
        fy = np.full((h, w), -(camera[i, 1] - camera[i - 1, 1]), np.float32)
        for k, (_, pose, is_actor) in enumerate(placed, start=1):
            ys, xs = np.nonzero(labels == k)
            if not len(xs):
                continue
            # an actor's pose is in image space: as if it were in a world seen by a still camera
            sprite_camera = np.zeros_like(camera) if is_actor else camera
            dx, dy = _flow_of(pose, sprite_camera, i, xs.astype(np.float64), ys.astype(np.float64))
            fx[ys, xs], fy[ys, xs] = dx, dy
        flow[i, 0] = cv2.resize(fx, (w // stride, h // stride), interpolation=cv2.INTER_AREA)
        flow[i, 1] = cv2.resize(fy, (w // stride, h // stride), interpolation=cv2.INTER_AREA)

    metadata = {
        "label": label,
        "motion": path.params,
        "actors": len(path.actors),
        "still_objects": companions,
        "distractors": n_distractors,
        "occluder": False,
        "camera_jitter_sigma_px": float(shake_sigma),
        "gain_start": float(exposure_start),
        "gain_end": float(exposure_end),
        "flicker_sigma": 0.0,
        "noise_sigma": float(read_sigma),
        "heldout": {
            "backdrop": backdrop_kind,
            "actor_bodies": actor_bodies,
            "mains_flicker": float(flicker),
            "vignette": float(vignette_strength),
            "shot_noise_k": float(shot_k),
            "row_noise_sigma": float(row_sigma),
        },
    }
    return RenderedClip(frames, flow, actor_mask), encoding, metadata
