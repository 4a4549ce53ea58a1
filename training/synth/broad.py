"""The broad presets (``broad-tiny``, ``broad-small``, ``broad``): the same classes, a wider world.

The standard presets (tiny/small/full) draw every clip from ``scene.plan_scene`` at one size, frame
rate and encoder; the default models were trained on them and their clips must stay byte-identical,
so nothing here is shared with that path except the renderer (``render.render``: affine layers,
exact flow) and the class list. A broad clip draws, from its own RNG, in this order:

1. its encoding (:func:`draw_encoding`): frame size from :data:`SIZES_PX` up to the preset's size
   (160x120 to 1280x720), 12-30 fps, MPEG-4 (qscale 2-12, +mv4 or not) or x264 (profile
   baseline/main/high, B-frames 0-3 (0 for baseline), CRF 18-35, preset ultrafast..medium; MPEG-4
   without B-frames: FFmpeg exports zero vectors for their direct-mode blocks), GOP
   12-250 (log-uniform) and x264/MPEG-4 scene cuts in half the clips;
2. its class motion (:data:`MOTIONS`): the class definitions of ``classes.py``, wider ranges: speeds
   0.5-7 px/frame x unit (log-uniform, never under 0.4 px/frame: "slow" is under 1 px/frame),
   straight paths anywhere in the frame (start on every side, the object may enter or leave),
   rotation 0.8-10 deg/frame, zoom x1.4-4 geometric or linear, waves of 4-30 px with 8-32 frame
   periods (at least 1.5 periods per clip);
3. its scene (:func:`plan_broad_scene`): background and objects from ``appearance`` (7 texture
   families, 5 shapes, labelled objects 12-45 % of the short side (zooms up to 70 %), others 5-35 %),
   0-4 still companions, 0-4 slow distractors, an occluder in 30 % of clips, camera shake in 40 %
   of clips (sigma 0.1-1 px x unit, log-uniform) and, under object motion, a slow pan in half the clips (at most 0.3 px/frame x unit and a quarter of the labelled speed; the
   labelled objects keep their image-space motion: the background drifts under them), lighting
   (gain ramp 0.6-1.4, an exposure step in 25 % of clips, sinusoidal flicker up to 6 % and random
   flicker up to 4 %), sensor noise sigma 0.5-8 levels (log-uniform, the same draw for every class);
4. only with ``sensor`` (``edgekit synth --sensor``), its camera sensor (:func:`draw_sensor`, drawn
   last so the draws above are unchanged by it): lens vignetting in half the clips, shot noise that
   grows with brightness in 60 %, row banding in 40 %.

What keeps a label true: ``static`` gets no shake, no pan and still distractors (only lighting and
noise change); ``scene_*`` gets shake but no extra pan (the pan is the label);
rotate_* actors use textures and shapes that show a rotation (:data:`appearance.ROTATION_SAFE_SHAPES`);
distractors move at most 0.35 px/frame x unit and at most a third of the labelled speed.

Every drawn number is in the clip's metadata (``broad``, ``encoder``, ``motion``), so failures can
be sliced by any of them.
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.bitstream.encode import H264_PROFILES, EncoderSettings
from training.synth import appearance, texture
from training.synth.classes import CLASS_BY_NAME, CLASS_NAMES
from training.synth.config import SynthConfig
from training.synth.encode import ClipEncoding
from training.synth.motion import MOTIONS as STANDARD_MOTIONS
from training.synth.motion import Canvas, ClassMotion, Track
from training.synth.scene import OCCLUDER_PROBABILITY, Layer, ScenePlan, Sensor, pose_matrices

SIZES_PX = ((160, 120), (176, 144), (240, 180), (320, 240), (340, 256), (352, 288), (480, 360), (512, 288),
            (640, 360), (640, 480), (848, 480), (960, 540), (1024, 576), (1280, 720))
FPS_RANGE = (12, 30)
GOP_RANGE = (12, 250)
BFRAMES_MAX = 3
CRF_RANGE = (18, 35)
QSCALE_RANGE = (2, 12)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")
H264_SHARE = 0.6
SCENE_CUT_SHARE = 0.5
MIN_SPEED_PX = 0.4  # px/frame: slower than this, a 24-frame clip hardly moves
PAN_SHARE = 0.5
# Camera shake in a share of the clips (fixed cameras do not shake), sigma log-uniform in px/frame x
# unit. A first version gave every object clip a shake drawn uniformly up to 1.5 px x unit, on top of
# everything else: trained from scratch on it, the default stayed under 25 % training top-1 for 10
# epochs (the jitter swamped slow labelled motion); the held-out renderer shakes 0-0.4 px.
SHAKE_SHARE = 0.4
SHAKE_SIGMA_RANGE = (0.1, 1.0)
NOISE_SIGMA_RANGE = (0.5, 8.0)  # sensor noise, levels of 255, log-uniform: most clips moderate, some dark
# What a camera's sensor adds beyond that (training.synth.scene.Sensor). Cheap cameras show all
# three: lens vignetting, photon (shot) noise that grows with brightness, row banding of the read-out.
VIGNETTE_SHARE, VIGNETTE_MAX = 0.5, 0.6
SHOT_SHARE, SHOT_K_RANGE = 0.6, (0.02, 1.0)   # variance k * I levels^2: 0.02-1.0 -> 1.6-11 levels at I = 128
ROW_SHARE, ROW_SIGMA_RANGE = 0.4, (0.2, 2.0)  # levels, one offset per row and frame
OBJECT_CLASSES_WITHOUT_PAN = ("static", "scene_left", "scene_right")


def sizes_up_to(width_px: int, height_px: int) -> tuple[tuple[int, int], ...]:
    """The entries of :data:`SIZES_PX` that fit in ``width_px`` x ``height_px`` (that size itself
    when none does)."""
    fitting = tuple(s for s in SIZES_PX if s[0] <= width_px and s[1] <= height_px)
    return fitting or ((width_px, height_px),)


def draw_encoding(rng: np.random.Generator, config: SynthConfig) -> tuple[tuple[int, int], ClipEncoding]:
    """Frame size (W, H) and encoding of one broad clip (see the module docstring for the ranges)."""
    sizes = sizes_up_to(config.width_px, config.height_px)
    size = sizes[int(rng.integers(len(sizes)))]
    fps = int(rng.integers(FPS_RANGE[0], FPS_RANGE[1] + 1))
    gop = int(round(math.exp(rng.uniform(math.log(GOP_RANGE[0]), math.log(GOP_RANGE[1])))))
    scene_cut = bool(rng.random() < SCENE_CUT_SHARE)
    if rng.random() < H264_SHARE:
        profile = H264_PROFILES[int(rng.integers(len(H264_PROFILES)))]
        bframes = 0 if profile == "baseline" else int(rng.integers(0, BFRAMES_MAX + 1))
        settings = EncoderSettings("h264", gop=gop, bframes=bframes, scene_cut=scene_cut,
                                   crf=int(rng.integers(CRF_RANGE[0], CRF_RANGE[1] + 1)),
                                   preset=X264_PRESETS[int(rng.integers(len(X264_PRESETS)))],
                                   profile=profile, threads=1, bitexact=True)
        return size, ClipEncoding(settings, fps)
    # no MPEG-4 B-frames: FFmpeg exports zero vectors for their direct-mode blocks (most of them), so
    # two frames in three would read as "no motion" whatever moves
    settings = EncoderSettings("mpeg4", gop=gop, bframes=0,
                               qscale=int(rng.integers(QSCALE_RANGE[0], QSCALE_RANGE[1] + 1)), scene_cut=scene_cut,
                               vectors_per_8x8_block=bool(rng.random() < 0.7), threads=1, bitexact=True)
    return size, ClipEncoding(settings, fps)


# -- class motions ---------------------------------------------------------------------------------

def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _speed(rng: np.random.Generator, canvas: Canvas) -> float:
    return max(_log_uniform(rng, 0.5, 7.0) * canvas.unit, MIN_SPEED_PX)


def _size(rng: np.random.Generator, canvas: Canvas, lo: float, hi: float) -> int:
    return max(int(round(rng.uniform(lo, hi) * min(canvas.width_px, canvas.height_px))), 8)


def _still(t: int, centre, angle: float) -> Track:
    return Track(np.tile(np.asarray(centre, np.float64), (t, 1)), np.full(t, angle), np.ones(t))


def _translate(direction_deg: float, jitter_deg: float):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        w, h, t = canvas.width_px, canvas.height_px, canvas.frames
        angle = math.radians(direction_deg + rng.uniform(-jitter_deg, jitter_deg))
        u = np.array([math.cos(angle), math.sin(angle)])
        size = _size(rng, canvas, 0.12, 0.4)
        # the centre stays in [-0.1 size, W + 0.1 size]: the object may enter or leave, never all of it
        box = ((0.1 * size, w - 0.1 * size), (0.1 * size, h - 0.1 * size))
        room = min((hi - lo) / abs(c) for (lo, hi), c in zip(box, u) if abs(c) > 1e-6)
        travel = min(_speed(rng, canvas) * (t - 1), 0.98 * room)
        half = np.abs(u) * travel / 2
        mid = np.array([rng.uniform(lo + d, hi - d) for (lo, hi), d in zip(box, half)])
        speed = travel / (t - 1)
        steps = np.arange(t, dtype=np.float64) - (t - 1) / 2
        track = Track(mid + steps[:, None] * speed * u, np.full(t, rng.uniform(0, 2 * np.pi)), np.ones(t))
        start_side = "left" if mid[0] - half[0] < w / 3 else ("right" if mid[0] - half[0] > 2 * w / 3 else "middle")
        return ClassMotion((track,), (size,), params={
            "speed_px_per_frame": speed, "direction_deg": math.degrees(angle),
            "velocity_px_per_frame": list(speed * u), "start_px": list(mid - half * np.sign(u)),
            "start_third_x": start_side, "actor_size_px": size})
    return motion


def _rotate(sign: float):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        w, h, t = canvas.width_px, canvas.height_px, canvas.frames
        omega = sign * math.radians(_log_uniform(rng, 0.8, 10.0))
        centre = (rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h)
        size = _size(rng, canvas, 0.15, 0.45)
        track = Track(_still(t, centre, 0.0).centre_px, rng.uniform(0, 2 * np.pi) + omega * np.arange(t), np.ones(t))
        return ClassMotion((track,), (size,), params={
            "angular_speed_deg_per_frame": math.degrees(omega), "centre_px": list(centre), "actor_size_px": size})
    return motion


def _zoom(growing: bool):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        w, h, t = canvas.width_px, canvas.height_px, canvas.frames
        zoom = rng.uniform(1.4, 4.0)
        law = "geometric" if rng.random() < 0.6 else "linear"
        largest = max(int(round(rng.uniform(0.2, 0.7) * min(w, h))), 12)
        progress = np.arange(t) / (t - 1)
        if law == "geometric":
            small_to_large = zoom ** (progress - 1.0)
        else:
            small_to_large = 1 / zoom + (1 - 1 / zoom) * progress
        scale = small_to_large if growing else small_to_large[::-1]
        centre = (rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h)
        track = Track(_still(t, centre, 0.0).centre_px, np.full(t, rng.uniform(0, 2 * np.pi)), scale)
        return ClassMotion((track,), (largest,), params={
            "zoom_total": zoom, "scale_law": law, "centre_px": list(centre), "largest_size_px": largest})
    return motion


def _wave(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
    w, h, t = canvas.width_px, canvas.height_px, canvas.frames
    axis = math.radians(rng.uniform(-25, 25))
    amplitude = rng.uniform(4, 30) * canvas.unit
    period = rng.uniform(8, max(min(32, t / 1.5), 8))
    phase = rng.uniform(0, 2 * np.pi)
    size = _size(rng, canvas, 0.12, 0.35)
    centre = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
    offset = amplitude * np.sin(2 * np.pi * np.arange(t) / period + phase)
    path = centre + offset[:, None] * np.array([math.cos(axis), math.sin(axis)])
    track = Track(path, np.full(t, rng.uniform(0, 2 * np.pi)), np.ones(t))
    return ClassMotion((track,), (size,), params={
        "amplitude_px": amplitude, "period_frames": period, "axis_deg": math.degrees(axis),
        "peak_speed_px_per_frame": 2 * np.pi * amplitude / period, "actor_size_px": size})


def _pan(sign: float):
    def motion(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
        speed = _speed(rng, canvas)
        pan = (sign * speed, rng.uniform(-0.15, 0.15) * speed)
        return ClassMotion(pan_px_per_frame=pan, params={"pan_px_per_frame": list(pan),
                                                         "content_velocity_px_per_frame": [-pan[0], -pan[1]],
                                                         "speed_px_per_frame": speed})
    return motion


def _static(rng: np.random.Generator, canvas: Canvas) -> ClassMotion:
    return ClassMotion()


MOTIONS = {
    "move_left": _translate(180.0, 15.0),
    "move_right": _translate(0.0, 15.0),
    "move_up": _translate(-90.0, 15.0),
    "move_down": _translate(90.0, 15.0),
    "rotate_cw": _rotate(+1.0),
    "rotate_ccw": _rotate(-1.0),
    "approach": _zoom(growing=True),
    "recede": _zoom(growing=False),
    "wave": _wave,
    "scene_left": _pan(+1.0),
    "scene_right": _pan(-1.0),
    "static": _static,
    # the classes beyond the 12 fixed ones keep their standard motions; the scene around them is broad
    "meet": STANDARD_MOTIONS["meet"],
    "part": STANDARD_MOTIONS["part"],
    "bounce": STANDARD_MOTIONS["bounce"],
    "red_up_right": _translate(-45.0, 10.0),
    "blue_up_right": _translate(-45.0, 10.0),
}
if tuple(MOTIONS) != CLASS_NAMES:
    raise RuntimeError("training.synth.classes.CLASSES and broad.MOTIONS must list the same classes in order")


def labelled_speed_px(motion: ClassMotion) -> float:
    """A typical image speed of the labelled motion in px/frame (for bounding the nuisances)."""
    if not motion.actors:
        return float(np.hypot(*motion.pan_px_per_frame))
    speeds = []
    for track in motion.actors:
        step = np.diff(track.centre_px, axis=0)
        spin = np.abs(np.diff(track.angle_rad)) * 0.5 * 20  # an edge point 20 px from the centre
        grow = np.abs(np.diff(track.scale)) * 50  # an edge point 50 px out at scale 1
        speeds.append(float(np.median(np.hypot(step[:, 0], step[:, 1]) + spin + grow)))
    return max(speeds)


# -- the scene -------------------------------------------------------------------------------------

def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _drifting_track(rng: np.random.Generator, canvas: Canvas, centre: np.ndarray, max_speed_px: float) -> Track:
    t = canvas.frames
    heading = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0, max_speed_px)
    steps = np.arange(t, dtype=np.float64)
    path = centre + steps[:, None] * speed * np.array([math.cos(heading), math.sin(heading)])
    spin = math.radians(rng.uniform(-0.3, 0.3)) if max_speed_px > 0 else 0.0  # still means still: no spin
    return Track(path, rng.uniform(0, 2 * np.pi) + spin * steps, np.ones(t))


def plan_broad_scene(label: str, rng: np.random.Generator, canvas: Canvas, sensor: bool = False) -> ScenePlan:
    """Draw a broad clip of class ``label`` at ``canvas`` size (see the module docstring); with
    ``sensor``, also its camera sensor (:func:`draw_sensor`), drawn last.

    Raises:
        KeyError: ``label`` is not a benchmark class.
    """
    spec = CLASS_BY_NAME[label]
    w, h, t = canvas.width_px, canvas.height_px, canvas.frames
    unit, short = canvas.unit, min(w, h)
    is_static = label == "static"
    motion = MOTIONS[label](rng, canvas)
    speed = labelled_speed_px(motion)

    # camera = pan (the label of scene_*, or a slow drift under object motion) + shake; image = world - camera
    shake_sigma = 0.0
    if not is_static and rng.random() < SHAKE_SHARE:  # a camera on a pole or in a hand, not on a wall
        shake_sigma = _log_uniform(rng, *SHAKE_SIGMA_RANGE) * unit
    shake = np.clip(rng.normal(0.0, 1.0, (t, 2)) * shake_sigma, -3 * shake_sigma, 3 * shake_sigma)
    drift = np.zeros(2)
    if label not in OBJECT_CLASSES_WITHOUT_PAN and rng.random() < PAN_SHARE:
        heading = rng.uniform(0, 2 * np.pi)
        drift = min(0.3 * unit, 0.25 * speed) * rng.uniform(0.2, 1.0) * np.array([math.cos(heading), math.sin(heading)])
    pan = np.asarray(motion.pan_px_per_frame) + drift
    smooth_camera = np.arange(t)[:, None] * pan[None, :]
    camera = smooth_camera + shake
    mid_camera = pan * (t - 1) / 2

    margin = np.ceil(np.abs(camera).max(axis=0)) + 2
    background_family = _pick(rng, appearance.BACKGROUND_FAMILIES)
    bg = appearance.background(rng, background_family, h + 2 * int(margin[1]), w + 2 * int(margin[0]))
    bg_to_image = np.zeros((t, 2, 3))
    bg_to_image[:, 0, 0] = bg_to_image[:, 1, 1] = 1.0
    bg_to_image[:, :, 2] = -(camera + margin)
    brightness = float(bg.mean())

    behind: list[Layer] = []
    n_companions = int(rng.integers(0, 5))
    for _ in range(n_companions):
        size = _size(rng, canvas, 0.1, 0.35)
        centre = np.array([rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h]) + mid_camera
        patch = appearance.object_patch(rng, size, _pick(rng, appearance.PATTERN_FAMILIES),
                                        _pick(rng, appearance.SHAPES), "any", brightness)
        behind.append(Layer(patch, pose_matrices(_still(t, centre, rng.uniform(0, 6.3)), size, camera), False))
    n_distractors = int(rng.integers(0, 5))
    distractor_speed = 0.0 if is_static else min(0.35 * unit, speed / 3)
    for _ in range(n_distractors):
        size = _size(rng, canvas, 0.05, 0.14)
        centre = np.array([rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.95) * h]) + mid_camera
        patch = appearance.object_patch(rng, size, _pick(rng, appearance.PATTERN_FAMILIES),
                                        _pick(rng, appearance.SHAPES), "any", brightness)
        track = _drifting_track(rng, canvas, centre, distractor_speed)
        behind.append(Layer(patch, pose_matrices(track, size, camera), False))
    layers = [behind[i] for i in rng.permutation(len(behind))]

    rotates = label.startswith("rotate")
    actor_looks = []
    for track, size in zip(motion.actors, motion.actor_sizes_px):
        family = _pick(rng, appearance.ROTATION_SAFE_FAMILIES if rotates else appearance.PATTERN_FAMILIES)
        shape = _pick(rng, appearance.ROTATION_SAFE_SHAPES if rotates else appearance.SHAPES)
        patch = appearance.object_patch(rng, size, family, shape, spec.actor_colour, brightness)
        # the labelled motion is image-space motion: the actor rides the smooth camera path
        world = Track(track.centre_px + smooth_camera, track.angle_rad, track.scale)
        layers.append(Layer(patch, pose_matrices(world, size, camera), True))
        actor_looks.append({"texture": family, "shape": shape, "size_px": int(size)})

    has_occluder = bool(rng.random() < OCCLUDER_PROBABILITY)
    if has_occluder:
        length = _size(rng, canvas, 0.25, 0.5)
        if motion.actors:
            k = int(rng.uniform(0.2, 0.8) * (t - 1))
            at = motion.actors[0].centre_px[k] + smooth_camera[k]
            centre = at + rng.normal(0, 0.05 * short, 2)
        else:
            centre = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h]) + mid_camera
        # a bar (as in the standard scene), so it hides a strip of the labelled object, never all of it
        patch = texture.object_patch(rng, length, "any", brightness, elongation=rng.uniform(2.5, 4.0))
        layers.append(Layer(patch, pose_matrices(_still(t, centre, rng.uniform(0, np.pi)), length, camera), False))

    gain_start, gain_end = rng.uniform(0.6, 1.4, 2)
    gain = np.linspace(gain_start, gain_end, t)
    exposure_step = 0.0
    if rng.random() < 0.25:  # auto-exposure: a step over three frames
        exposure_step = float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.2))
        at = rng.uniform(0.2, 0.8) * (t - 1)
        gain = gain * (1 + exposure_step * np.clip((np.arange(t) - at) / 3 + 0.5, 0, 1))
    flicker_amplitude = rng.uniform(0.0, 0.06)
    flicker_period = rng.uniform(2.0, 12.0)  # frames: mains flicker aliased by the frame rate
    flicker_sigma = rng.uniform(0.0, 0.04)
    gain = gain * (1 + flicker_amplitude * np.sin(2 * np.pi * np.arange(t) / flicker_period + rng.uniform(0, 6.3)))
    gain = gain * (1 + rng.normal(0, 1, t) * flicker_sigma)
    noise_sigma = _log_uniform(rng, *NOISE_SIGMA_RANGE)  # the same draw for every class: no cue to static

    metadata = {
        "label": label,
        "motion": motion.params,
        "actors": len(motion.actors),
        "still_objects": n_companions,
        "distractors": n_distractors,
        "occluder": has_occluder,
        "camera_jitter_sigma_px": float(shake_sigma),
        "gain_start": float(gain_start),
        "gain_end": float(gain_end),
        "flicker_sigma": float(flicker_sigma),
        "noise_sigma": noise_sigma,
        "broad": {
            "background": background_family,
            "actor_looks": actor_looks,
            "camera_drift_px_per_frame": list(drift),
            "distractor_max_speed_px_per_frame": float(distractor_speed),
            "labelled_speed_px_per_frame": speed,
            "exposure_step": exposure_step,
            "flicker_amplitude": float(flicker_amplitude),
            "flicker_period_frames": float(flicker_period),
        },
    }
    noise_seed = int(rng.integers(2**31))
    camera_sensor = None
    if sensor:  # drawn after everything above: the rest of the clip is the clip made without it
        camera_sensor = draw_sensor(rng)
        metadata["broad"]["sensor"] = {"vignette": camera_sensor.vignette, "shot_k": camera_sensor.shot_k,
                                       "row_sigma": camera_sensor.row_sigma}
    return ScenePlan(canvas, bg, bg_to_image, tuple(layers), gain.astype(np.float32), noise_sigma,
                     noise_seed, metadata, camera_sensor)


def draw_sensor(rng: np.random.Generator) -> Sensor:
    """The sensor effects of one broad clip (:class:`~training.synth.scene.Sensor`), each on in a
    share of the clips and drawn the same way for every class (no cue to ``static``): vignetting
    (:data:`VIGNETTE_SHARE`, up to :data:`VIGNETTE_MAX`), shot noise (:data:`SHOT_SHARE`, k
    log-uniform in :data:`SHOT_K_RANGE`), row noise (:data:`ROW_SHARE`, std uniform in
    :data:`ROW_SIGMA_RANGE`)."""
    vignette = float(rng.uniform(0.0, VIGNETTE_MAX)) if rng.random() < VIGNETTE_SHARE else 0.0
    shot_k = _log_uniform(rng, *SHOT_K_RANGE) if rng.random() < SHOT_SHARE else 0.0
    row_sigma = float(rng.uniform(*ROW_SIGMA_RANGE)) if rng.random() < ROW_SHARE else 0.0
    return Sensor(vignette, float(shot_k), row_sigma, int(rng.integers(2**31)))
