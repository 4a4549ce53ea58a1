"""Presets and the resolved settings of one synthetic-benchmark run.

A :class:`Preset` names a size of benchmark; :func:`resolve_config` applies overrides (TOML file, then
CLI flags) and validates everything once, so the generator can trust a :class:`SynthConfig`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from edgekit.errors import ConfigError
from training.synth.classes import CLASS_NAMES, CLASS_SETS, FIXED_CLASS_NAMES

CODECS = ("mpeg4", "h264")
MIXED_CODEC = "mixed"  # broad presets and the held-out renderer draw the encoder of every clip
PER_CLIP_FPS = 0  # ... and its frame rate
RENDERERS = ("synth", "heldout")  # training.synth.scene/render, or training.synth.heldout (never trained on)
VARIETIES = ("standard", "broad")
FLOW_STRIDE_PX = 4  # ground-truth flow is stored on a grid 4x coarser than the video
MIN_SIZE_PX = (64, 48)
MAX_SIZE_PX = (1920, 1088)


@dataclass(frozen=True)
class Preset:
    """A named benchmark size. ``width_px``/``height_px`` are the frame size, ``frames`` the clip length.

    ``variety`` "standard": one size, frame rate and encoder for every clip (tiny/small/full, unchanged
    since the default models were trained on them); "broad": wider appearance, motion and nuisance
    ranges (``training.synth.broad``) and a frame size (up to ``width_px`` x ``height_px``), frame rate
    and encoder drawn per clip.
    """

    name: str
    clips_per_class: int
    width_px: int
    height_px: int
    frames: int
    fps: int
    purpose: str
    variety: str = "standard"


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", 5, 128, 96, 24, 25, "unit tests: seconds on 2 CPU cores"),
        Preset("small", 100, 340, 256, 48, 25, "CPU training: a model trains on it in < 30 min"),
        Preset("full", 600, 340, 256, 48, 25, "GPU training: about 10k clips"),
        Preset("broad-tiny", 5, 320, 240, 24, PER_CLIP_FPS, "unit tests of the broad distribution", "broad"),
        Preset("broad-small", 100, 1280, 720, 48, PER_CLIP_FPS, "broad CPU training: sizes 160x120-1280x720",
               "broad"),
        Preset("broad", 600, 1280, 720, 48, PER_CLIP_FPS, "broad GPU training: about 10k clips", "broad"),
        Preset("heldout", 10, 640, 480, 48, PER_CLIP_FPS, "the held-out renderer's evaluation set (120 clips)",
               "broad"),
    )
}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the bytes of a generated benchmark (worker count does not).

    Sizes in pixels; ``frames`` per clip; ``seed`` seeds every clip together with its index.
    ``renderer``: "synth" (this package's renderer) or "heldout" (``training.synth.heldout``, the
    domain-shift check, 12 fixed classes). With a broad preset or the held-out renderer, ``codec``
    is "mixed" and ``fps`` 0: both are drawn per clip, and ``width_px`` x ``height_px`` is the
    largest frame size drawn. ``sensor`` (broad presets only): every clip also draws a camera
    sensor model (vignetting, shot noise, row banding; ``training.synth.broad.draw_sensor``), drawn
    after everything else, so a clip differs from the same clip without it only by those effects.
    """

    preset: str
    codec: str
    seed: int
    clips_per_class: int
    width_px: int
    height_px: int
    frames: int
    fps: int
    renderer: str = "synth"
    classes: str = "all"
    sensor: bool = False

    @property
    def variety(self) -> str:
        """The preset's variety: "standard" or "broad"."""
        return PRESETS[self.preset].variety

    @property
    def per_clip_encoding(self) -> bool:
        """True when every clip draws its own size, frame rate and encoder."""
        return self.variety == "broad" or self.renderer != "synth"

    def to_dict(self) -> dict:
        """The settings as JSON-ready values; ``renderer`` only when it is not "synth", so the
        manifest (``synth.json``) of a folder made before the held-out renderer existed still matches."""
        values = asdict(self)
        if self.renderer == "synth":
            del values["renderer"]
        if self.classes == "all":  # likewise for folders made before class subsets existed
            del values["classes"]
        if not self.sensor:  # and before the sensor model existed
            del values["sensor"]
        return values

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes this run makes, in label order: a named set of ``classes.CLASS_SETS``
        ("fixed" for the held-out renderer, whose "all" is its 12 fixed classes) or the listed ones."""
        names = CLASS_SETS.get(self.classes) or tuple(n.strip() for n in self.classes.split(","))
        if self.renderer == "heldout" and self.classes == "all":
            names = FIXED_CLASS_NAMES
        return tuple(n for n in CLASS_NAMES if n in names)  # label order, whatever order they were listed in


OVERRIDABLE = ("codec", "seed", "clips_per_class", "width_px", "height_px", "frames", "fps", "renderer", "classes",
               "sensor")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` (e.g. ``"340x256"``) into ``(width_px, height_px)``.

    Raises:
        ConfigError: the text is not two positive integers joined by ``x``.
    """
    parts = text.lower().replace("*", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--size must look like 340x256 (WIDTHxHEIGHT), got {text!r}")
    return int(parts[0]), int(parts[1])


def load_toml_overrides(path: str | Path) -> dict:
    """Read the ``[synth]`` table of a TOML file: keys ``preset``, ``size`` ("WxH") and any of
    :data:`OVERRIDABLE`.

    Raises:
        ConfigError: the file is missing, not TOML, lacks ``[synth]`` or has an unknown key.
    """
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    if "synth" not in table or not isinstance(table["synth"], dict):
        raise ConfigError(f"config file {path} has no [synth] table; put the generator settings under [synth]")
    synth = dict(table["synth"])
    unknown = set(synth) - set(OVERRIDABLE) - {"preset", "size"}
    if unknown:
        raise ConfigError(
            f"unknown key(s) {sorted(unknown)} in [synth] of {path}; "
            f"allowed: preset, size, {', '.join(OVERRIDABLE)}"
        )
    if "size" in synth:
        synth["width_px"], synth["height_px"] = parse_size(str(synth.pop("size")))
    return synth


def resolve_config(preset: str | None = "small", **overrides) -> SynthConfig:
    """Build a validated :class:`SynthConfig` from a preset name and overrides (``None`` = keep preset).
    ``preset=None``: "small", or "heldout" for ``renderer="heldout"``.

    Raises:
        ConfigError: unknown preset, codec or renderer, a size that is not a multiple of 4 or out of
            [64x48, 1920x1088], fewer than 2 frames, non-positive fps or clip count, negative seed;
            a codec or fps given where they are drawn per clip (broad presets, held-out renderer);
            ``sensor`` not a boolean, or set for anything but a broad preset of the training renderer.
    """
    renderer = overrides.get("renderer") or "synth"
    if renderer not in RENDERERS:
        raise ConfigError(f"unknown renderer {renderer!r}; choose one of {', '.join(RENDERERS)}")
    if preset is None:
        preset = "heldout" if renderer == "heldout" else "small"
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)}; allowed: {', '.join(OVERRIDABLE)}")
    p = PRESETS[preset]
    per_clip = p.variety == "broad" or renderer != "synth"
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(given.get("classes"), str):
        given["classes"] = ",".join(n.strip() for n in given["classes"].split(",") if n.strip())
    if per_clip:
        drawn = [k for k in ("codec", "fps") if k in given and given[k] not in (MIXED_CODEC, PER_CLIP_FPS)]
        if drawn:
            raise ConfigError(f"{' and '.join(drawn)} cannot be set for preset {preset!r} with renderer "
                              f"{renderer!r}: each clip draws its own; leave them out (or use tiny/small/full)")
        config = SynthConfig(preset, MIXED_CODEC, 0, p.clips_per_class, p.width_px, p.height_px, p.frames,
                             PER_CLIP_FPS, renderer)
    else:
        config = SynthConfig(preset, "mpeg4", 0, p.clips_per_class, p.width_px, p.height_px, p.frames, p.fps)
    if "sensor" in given and not isinstance(given["sensor"], bool):
        raise ConfigError(f"sensor must be true or false, got {given['sensor']!r}")
    for f in fields(SynthConfig):
        if f.name in given and f.name not in ("codec", "renderer", "classes", "sensor") \
                and not isinstance(given[f.name], int):
            raise ConfigError(f"{f.name} must be an integer, got {given[f.name]!r}")
    config = replace(config, **given)
    if config.sensor and (p.variety != "broad" or renderer != "synth"):
        raise ConfigError(f"sensor applies to the broad presets of the synth renderer (broad-tiny, broad-small, "
                          f"broad), not to preset {preset!r} with renderer {renderer!r}")

    if not per_clip and config.codec not in CODECS:  # per clip: "mixed", checked above
        raise ConfigError(f"unknown codec {config.codec!r}; choose one of {', '.join(CODECS)}")
    w, h = config.width_px, config.height_px
    if w % FLOW_STRIDE_PX or h % FLOW_STRIDE_PX:
        raise ConfigError(f"frame size {w}x{h} must be a multiple of {FLOW_STRIDE_PX} in both dimensions (e.g. 340x256)")
    if not (MIN_SIZE_PX[0] <= w <= MAX_SIZE_PX[0] and MIN_SIZE_PX[1] <= h <= MAX_SIZE_PX[1]):
        raise ConfigError(
            f"frame size {w}x{h} is out of range; use {MIN_SIZE_PX[0]}x{MIN_SIZE_PX[1]} "
            f"to {MAX_SIZE_PX[0]}x{MAX_SIZE_PX[1]}"
        )
    if config.frames < 2:
        raise ConfigError(f"frames must be at least 2 (motion needs two frames), got {config.frames}")
    if config.fps <= 0 and not per_clip:
        raise ConfigError(f"fps must be positive, got {config.fps}")
    if config.clips_per_class <= 0:
        raise ConfigError(f"clips_per_class must be positive, got {config.clips_per_class}")
    if config.seed < 0:
        raise ConfigError(f"seed must be >= 0, got {config.seed}")
    _check_classes(config)
    return config


def _check_classes(config: SynthConfig) -> None:
    if not isinstance(config.classes, str) or not config.classes.strip():
        raise ConfigError(f"classes must be {', '.join(CLASS_SETS)} or a comma-separated list of class names, "
                          f"got {config.classes!r}")
    offered = FIXED_CLASS_NAMES if config.renderer == "heldout" else CLASS_NAMES
    if config.classes not in CLASS_SETS:
        listed = [n.strip() for n in config.classes.split(",")]
        unknown = [n for n in listed if n not in offered]
        if unknown:
            raise ConfigError(f"unknown class(es) {unknown} for renderer {config.renderer!r}; choose from "
                              f"{', '.join(offered)} (or a set: {', '.join(CLASS_SETS)})")
    elif config.renderer == "heldout" and not set(CLASS_SETS[config.classes]) <= set(offered) \
            and config.classes != "all":
        raise ConfigError(f"the held-out renderer makes the 12 fixed classes only; classes {config.classes!r} "
                          "is not a subset of them (use all or fixed)")
    if len(config.class_names) < 2:
        raise ConfigError(f"a benchmark needs at least 2 classes, got {list(config.class_names)}")
