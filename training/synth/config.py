"""Presets and the resolved settings of one synthetic-benchmark run.

A :class:`Preset` names a size of benchmark; :func:`resolve_config` applies overrides (TOML file, then
CLI flags) and validates everything once, so the generator can trust a :class:`SynthConfig`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from edgekit.errors import ConfigError

CODECS = ("mpeg4", "h264")
FLOW_STRIDE_PX = 4  # ground-truth flow is stored on a grid 4x coarser than the video
MIN_SIZE_PX = (64, 48)
MAX_SIZE_PX = (1920, 1088)


@dataclass(frozen=True)
class Preset:
    """A named benchmark size. ``width_px``/``height_px`` are the frame size, ``frames`` the clip length."""

    name: str
    clips_per_class: int
    width_px: int
    height_px: int
    frames: int
    fps: int
    purpose: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", 5, 128, 96, 24, 25, "unit tests: seconds on 2 CPU cores"),
        Preset("small", 100, 340, 256, 48, 25, "CPU training: a model trains on it in < 30 min"),
        Preset("full", 600, 340, 256, 48, 25, "GPU training: about 10k clips"),
    )
}


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the bytes of a generated benchmark (worker count does not).

    Sizes in pixels; ``frames`` per clip; ``seed`` seeds every clip together with its index.
    """

    preset: str
    codec: str
    seed: int
    clips_per_class: int
    width_px: int
    height_px: int
    frames: int
    fps: int

    def to_dict(self) -> dict:
        return asdict(self)


OVERRIDABLE = ("codec", "seed", "clips_per_class", "width_px", "height_px", "frames", "fps")


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


def resolve_config(preset: str = "small", **overrides) -> SynthConfig:
    """Build a validated :class:`SynthConfig` from a preset name and overrides (``None`` = keep preset).

    Raises:
        ConfigError: unknown preset or codec, a size that is not a multiple of 4 or out of
            [64x48, 1920x1088], fewer than 2 frames, non-positive fps or clip count, negative seed.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    unknown = set(overrides) - set(OVERRIDABLE)
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(unknown)}; allowed: {', '.join(OVERRIDABLE)}")
    p = PRESETS[preset]
    config = SynthConfig(preset, "mpeg4", 0, p.clips_per_class, p.width_px, p.height_px, p.frames, p.fps)
    given = {k: v for k, v in overrides.items() if v is not None}
    for f in fields(SynthConfig):
        if f.name in given and f.name != "codec" and not isinstance(given[f.name], int):
            raise ConfigError(f"{f.name} must be an integer, got {given[f.name]!r}")
    config = replace(config, **given)

    if config.codec not in CODECS:
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
    if config.fps <= 0:
        raise ConfigError(f"fps must be positive, got {config.fps}")
    if config.clips_per_class <= 0:
        raise ConfigError(f"clips_per_class must be positive, got {config.clips_per_class}")
    if config.seed < 0:
        raise ConfigError(f"seed must be >= 0, got {config.seed}")
    return config
