"""The modality table: every kind of side data a model input can be made of, in one place.

A *modality* is what one model input is made of (``"mv_residual"``: stacked motion vectors and
residual). For each one the table says how many channels it has, which frames carry it, what the
bitstream reader must decode for it, its normalisation constants, and how one step (one TSN
segment or one clip time step) is assembled from *parts*:

=========== ========== =============== ============== ============================================
modality    channels   frames          parts          one step
=========== ========== =============== ============== ============================================
iframe      3          I-frames        iframe         normalised RGB of the I-frame
mv          2          P/B frames      mv             dx, dy in model-input pixels x ``mv_scale``
mv_ref      2          P-frames        mv             the same, on reference pictures only (edge-mv-ref):
                                                      no B-frame is ever decoded for it
residual    3          P/B frames      residual       YUV residual x ``residual_scale``
mv_residual 5          P/B frames      mv, residual   (dx, dy, r0, r1, r2): DMC-Net/IP-TSN/edge
gop_clip    3          a GOP           iframe,        MFCD-Net: I, then (R_acc + I) / 2 per frame
                                       residual
flow        2          P/B frames      flow           teacher optical flow (training only)
=========== ========== =============== ============== ============================================

Parts are the four arrays ``edgekit.preprocess`` computes from a frame at the model's size
(``part_mv``, ``part_residual``, ``part_iframe``, ``part_flow``). The runtime computes them from
``CompressedFrame`` side data; the training cache stores them once per frame and serves them
later. Both then call the same :meth:`Modality.step`, so training and the runtime assemble inputs
with one function and cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from edgekit import preprocess as pp

RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
MV_SCALE = 1.0 / 8.0
RESIDUAL_SCALE = 1.0 / 64.0
FLOW_SCALE = 1.0 / 8.0

PARTS = ("mv", "residual", "iframe", "flow")
# which frames a modality samples: I-frames, P/B frames, P-frames (reference pictures), one GOP
FRAMES = ("iframe", "motion", "reference", "gop")

_RGB_NORM = {"rgb_mean": list(RGB_MEAN), "rgb_std": list(RGB_STD)}


def _concat(parts: Mapping[str, np.ndarray], kind: str, norm: Mapping) -> np.ndarray:
    return np.concatenate([parts["mv"], parts["residual"]])


def _gop_step(parts: Mapping[str, np.ndarray], kind: str, norm: Mapping) -> np.ndarray:
    if kind == "I":
        return parts["iframe"]
    return pp.gop_step(parts["residual"], parts["iframe"], norm, residual_scale=norm["residual_scale"])


def _only(part: str) -> Callable:
    def step(parts: Mapping[str, np.ndarray], kind: str, norm: Mapping) -> np.ndarray:
        return parts[part]

    step.__name__ = f"only_{part}"
    return step


@dataclass(frozen=True)
class Modality:
    """One row of the table.

    ``frames``: "motion" (P/B frames; I-frames carry no motion), "reference" (P-frames only: the
    pictures a decoder must decode anyway, so a file's B-frames are never decoded), "iframe" or
    "gop" (a GOP run, I-frame first). ``parts``: the per-frame arrays a step is made of. ``normalization``: the
    constants stored in specs and manifests. ``runtime``: False for teacher-only inputs (flow).
    """

    name: str
    channels: int
    frames: str
    parts: tuple[str, ...]
    normalization: Mapping
    runtime: bool
    combine: Callable[[Mapping[str, np.ndarray], str, Mapping], np.ndarray]

    @property
    def reads_residual(self) -> bool:
        """Whether the bitstream reader must reconstruct residuals for this modality."""
        return "residual" in self.parts

    @property
    def reads_iframes(self) -> bool:
        """Whether the reader must convert I-frames to RGB for this modality."""
        return "iframe" in self.parts

    def step(self, parts: Mapping[str, np.ndarray], kind: str, norm: Mapping) -> np.ndarray:
        """(C, h, w) float32 of one step from its parts (each already at the model's size and
        scaled by ``norm``); ``kind`` is the frame's type ("I", "P", "B")."""
        return self.combine(parts, kind, norm)


MODALITIES: dict[str, Modality] = {m.name: m for m in (
    Modality("iframe", 3, "iframe", ("iframe",), _RGB_NORM, True, _only("iframe")),
    Modality("mv", 2, "motion", ("mv",), {"mv_scale": MV_SCALE}, True, _only("mv")),
    Modality("mv_ref", 2, "reference", ("mv",), {"mv_scale": MV_SCALE}, True, _only("mv")),
    Modality("residual", 3, "motion", ("residual",), {"residual_scale": RESIDUAL_SCALE}, True, _only("residual")),
    Modality("mv_residual", 5, "motion", ("mv", "residual"),
             {"mv_scale": MV_SCALE, "residual_scale": RESIDUAL_SCALE}, True, _concat),
    Modality("gop_clip", 3, "gop", ("iframe", "residual"), {**_RGB_NORM, "residual_scale": RESIDUAL_SCALE},
             True, _gop_step),
    Modality("flow", 2, "motion", ("flow",), {"flow_scale": FLOW_SCALE}, False, _only("flow")),
)}

CHANNELS = {name: m.channels for name, m in MODALITIES.items()}


def modality(name: str) -> Modality:
    """The table row of ``name``; raises ValueError naming the known modalities."""
    try:
        return MODALITIES[name]
    except KeyError:
        raise ValueError(f"unknown modality {name!r}; expected one of {tuple(MODALITIES)}") from None


def default_normalization(name: str) -> dict:
    """A copy of the normalisation constants of modality ``name``."""
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in modality(name).normalization.items()}


def reader_options(modalities) -> dict:
    """What ``edgekit.bitstream.open`` must decode for inputs of these modality names: residuals
    only if some modality needs them, I-frame RGB only if some needs it."""
    rows = [modality(m) for m in modalities]
    return {"residual": any(m.reads_residual for m in rows),
            "rgb": "iframes" if any(m.reads_iframes for m in rows) else None}
