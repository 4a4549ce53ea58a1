"""Input specifications: the one place that says what tensor a model consumes.

A model in ``training.models`` declares a tuple of :class:`InputSpec`; ``edgekit.preprocess`` turns
``CompressedFrame`` side data into exactly those arrays, and the package manifest stores them, so
training and the runtime cannot disagree on shape, layout or scaling.

Streams (what side data an input is made of):

- ``"iframe"``       RGB of the GOP's I-frame, 3 channels.
- ``"mv"``           motion vectors, 2 channels (dx, dy), in pixels of the *model input* grid.
- ``"residual"``     residual, 3 channels.
- ``"mv_residual"``  MV and residual stacked along channels: (dx, dy, r0, r1, r2), 5 channels
                     (the DMC-Net / IP-TSN P-stream input).
- ``"gop_clip"``     MFCD-Net GOP clip: [I, (R_acc^1 + I)/2, ..., (R_acc^k + I)/2], 3 channels per step.
- ``"flow"``         dense optical flow (teacher input during training only), 2 channels.

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

STREAMS = ("iframe", "mv", "residual", "mv_residual", "gop_clip", "flow")
LAYOUTS = ("BSCHW", "BCTHW")
CHANNELS = {"iframe": 3, "mv": 2, "residual": 3, "mv_residual": 5, "gop_clip": 3, "flow": 2}

RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
MV_SCALE = 1.0 / 8.0
RESIDUAL_SCALE = 1.0 / 64.0
FLOW_SCALE = 1.0 / 8.0


@dataclass(frozen=True)
class InputSpec:
    """One named model input.

    ``shape`` is static and batch-first, e.g. ``(1, 3, 5, 112, 112)`` for 3 segments of stacked
    MV+R at 112x112 in layout ``BSCHW``. ``representation`` is ``"accumulated"`` (traced back to the
    I-frame, CoViAR) or ``"frame"`` (relative to each frame's own reference).
    """

    name: str
    stream: str
    shape: tuple[int, ...]
    layout: str = "BSCHW"
    dtype: str = "float32"
    representation: str = "accumulated"
    normalization: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.stream not in STREAMS:
            raise ValueError(f"unknown stream {self.stream!r}; expected one of {STREAMS}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; expected one of {LAYOUTS}")
        if len(self.shape) != 5:
            raise ValueError(f"shape must have 5 dims ({self.layout}), got {self.shape}")
        c = self.shape[2] if self.layout == "BSCHW" else self.shape[1]
        if c != CHANNELS[self.stream]:
            raise ValueError(f"stream {self.stream!r} has {CHANNELS[self.stream]} channels, shape says {c}")
        if self.representation not in ("accumulated", "frame"):
            raise ValueError(f"representation must be 'accumulated' or 'frame', got {self.representation!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not self.normalization:
            object.__setattr__(self, "normalization", default_normalization(self.stream))

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
        return cls(**{**d, "shape": tuple(d["shape"])})


def default_normalization(stream: str) -> dict:
    """The normalisation constants of a stream, as stored in specs and package manifests."""
    if stream in ("iframe", "gop_clip"):
        return {"rgb_mean": list(RGB_MEAN), "rgb_std": list(RGB_STD)}
    if stream == "mv":
        return {"mv_scale": MV_SCALE}
    if stream == "residual":
        return {"residual_scale": RESIDUAL_SCALE}
    if stream == "mv_residual":
        return {"mv_scale": MV_SCALE, "residual_scale": RESIDUAL_SCALE}
    return {"flow_scale": FLOW_SCALE}
