"""Input specifications: the one place that says what tensor a model consumes.

A model in ``training.models`` declares a tuple of :class:`InputSpec`; ``edgekit.preprocess`` turns
``CompressedFrame`` side data into exactly those arrays, and the package manifest stores them, so
training and the runtime cannot disagree on shape, layout or scaling.

Modalities (what side data an input is made of) are listed once, with their channels, frames,
parts and normalisation, in :mod:`edgekit.modality`: ``iframe``, ``mv``, ``residual``,
``mv_residual``, ``gop_clip`` and ``flow`` (teacher input during training only).

Layouts:

- ``"BSCHW"``  batch, TSN segments, channels, height, width (2D models; segments folded into the
               batch inside the model and averaged after the head: segment consensus).
- ``"BCTHW"``  batch, channels, time, height, width (3D models on a clip of consecutive frames).

Normalisation (applied by ``edgekit.preprocess``, never inside the ONNX):

- RGB:      ``(x / 255 - RGB_MEAN) / RGB_STD`` per channel.
- MV:       ``mv_px * MV_SCALE`` after resizing the field to the input size (vectors rescaled with it).
- Residual: ``residual * RESIDUAL_SCALE`` (raw residual is int16 in [-255, 255]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgekit.modality import (CHANNELS, FLOW_SCALE, MODALITIES, MV_SCALE, RESIDUAL_SCALE, RGB_MEAN, RGB_STD,
                              default_normalization, modality)

LAYOUTS = ("BSCHW", "BCTHW")

__all__ = ["InputSpec", "LAYOUTS", "CHANNELS", "MODALITIES", "default_normalization", "RGB_MEAN", "RGB_STD",
           "MV_SCALE", "RESIDUAL_SCALE", "FLOW_SCALE"]


@dataclass(frozen=True)
class InputSpec:
    """One named model input.

    ``shape`` is static and batch-first, e.g. ``(1, 3, 5, 112, 112)`` for 3 segments of stacked
    MV+R at 112x112 in layout ``BSCHW``. ``representation`` is ``"accumulated"`` (traced back to the
    I-frame, CoViAR) or ``"frame"`` (relative to each frame's own reference).
    """

    name: str
    modality: str
    shape: tuple[int, ...]
    layout: str = "BSCHW"
    dtype: str = "float32"
    representation: str = "accumulated"
    normalization: dict = field(default_factory=dict)

    def __post_init__(self):
        row = modality(self.modality)  # ValueError for an unknown name
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; expected one of {LAYOUTS}")
        if len(self.shape) != 5:
            raise ValueError(f"shape must have 5 dims ({self.layout}), got {self.shape}")
        c = self.shape[2] if self.layout == "BSCHW" else self.shape[1]
        if c != row.channels:
            raise ValueError(f"modality {self.modality!r} has {row.channels} channels, shape says {c}")
        if self.layout == "BSCHW" and row.frames == "gop":
            raise ValueError(f"modality {self.modality!r} is a clip of one GOP: it needs layout BCTHW")
        if self.representation not in ("accumulated", "frame"):
            raise ValueError(f"representation must be 'accumulated' or 'frame', got {self.representation!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not self.normalization:
            object.__setattr__(self, "normalization", default_normalization(self.modality))

    @property
    def segments(self) -> int:
        """Number of TSN segments (BSCHW) or clip length (BCTHW)."""
        return self.shape[1] if self.layout == "BSCHW" else self.shape[2]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the input."""
        return self.shape[-2], self.shape[-1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        """The spec of a manifest, model.json or checkpoint; ``stream`` (the field's name before
        0.2) is read as ``modality``, so packages written earlier keep loading."""
        d = dict(d)
        if "stream" in d and "modality" not in d:
            d["modality"] = d.pop("stream")
        return cls(**{**d, "shape": tuple(d["shape"])})

    @property
    def frames(self) -> str:
        """Which frames this input samples: "motion", "iframe" or "gop" (see edgekit.modality)."""
        return MODALITIES[self.modality].frames
