"""Per-clip ground truth on disk: dense flow, actor mask and metadata in one .npz, without pickle.

File ``DIR/flow/<class>/<clip>.npz`` (a zip of .npy members, readable by ``np.load(path,
allow_pickle=False)``):

- ``flow_px``       float16 (T, 2, H/4, W/4): (dx, dy) in FULL-resolution pixels; cell (i, j)
                    is the mean flow of pixels [4j, 4j+4) x [4i, 4i+4). Convention: for frame t >= 1,
                    (dx, dy) = p - q, p a pixel of frame t, q where its content was in frame t-1
                    (forward flow on the current frame's grid, the sign of edgekit's motion
                    vectors); ``flow_px[0] = 0``.
- ``actor_mask``    bool (T, H/4, W/4): True where the labelled object(s) cover most of the cell.
- ``stride_px``     int32 scalar: 4, the grid stride (the scale factor between video and flow grid).
- ``metadata_json`` str scalar: the clip's metadata line (same as in ``metadata.jsonl``).

Zip members carry a fixed timestamp, so equal content gives equal bytes.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edgekit.errors import SourceError

_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ClipGroundTruth:
    """Ground truth of one clip: ``flow_px`` float32 (T, 2, H/s, W/s) in full-resolution pixels,
    ``actor_mask`` bool (T, H/s, W/s), ``stride_px`` s, and the clip's ``metadata`` dict."""

    flow_px: np.ndarray
    actor_mask: np.ndarray
    stride_px: int
    metadata: dict


def json_ready(value):
    """``json.dumps`` default: numpy scalars and arrays become plain Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def metadata_line(metadata: dict) -> str:
    """One canonical JSON line (sorted keys, numpy values converted), no trailing newline."""
    return json.dumps(metadata, sort_keys=True, default=json_ready)


def write_ground_truth(file: BinaryIO, flow_px: np.ndarray, actor_mask: np.ndarray, stride_px: int,
                       metadata: dict) -> None:
    """Write the .npz members described in the module docstring to an open binary ``file``."""
    members = {
        "flow_px": np.ascontiguousarray(flow_px, np.float16),
        "actor_mask": np.ascontiguousarray(actor_mask, bool),
        "stride_px": np.array(stride_px, np.int32),
        "metadata_json": np.array(metadata_line(metadata)),
    }
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def load_ground_truth(path: str | Path) -> ClipGroundTruth:
    """Read a clip's ground truth written by :func:`write_ground_truth`.

    Raises:
        SourceError: the file is missing, not an .npz, or lacks a member.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            flow = archive["flow_px"].astype(np.float32)
            mask = archive["actor_mask"].astype(bool)
            stride = int(archive["stride_px"])
            metadata = json.loads(str(archive["metadata_json"]))
    except FileNotFoundError:
        raise SourceError(f"ground-truth file {path} does not exist; generate the benchmark first") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise SourceError(f"{path} is not a synthetic ground-truth .npz ({err}); regenerate the clip") from None
    return ClipGroundTruth(flow, mask, stride, metadata)
