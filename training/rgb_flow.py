"""The pixel-domain pipeline ``edgekit profile --compare rgb-flow`` times: decode every frame to RGB,
optical flow between consecutive frames, a two-stream RGB + flow network of the package's backbone.

Training side (torch, ONNX, OpenCV contrib: the ``train`` extra), called by :mod:`edgekit.compare`
only when a user asks for the comparison; see that module for what is measured and how it is
reported. :func:`measure_rgb_flow` runs one pass over a source, stage by stage, with the package's
windowing and sampling (:class:`edgekit.compare.RGBFlowSpec`); :func:`export_two_stream` builds the
network from the model zoo (:func:`training.models.tsn.stream_classifier`) and exports it to FP32 ONNX.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections import deque

import numpy as np

from edgekit.compare import FLOW_METHODS, RGBFlowSpec
from edgekit.errors import SourceError

NETWORK_FLOW = "farneback"  # the flow the network is fed (its cost does not depend on which)
BASE_MODEL = "edge-mvr"  # the package's backbone, from the registry (training/models/edge.py)
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)


# -- the two-stream network ---------------------------------------------------------------------------


def export_two_stream(path: str | os.PathLike, spec: RGBFlowSpec, seed: int = 0) -> dict:
    """Export the RGB + flow two-stream TSN of :data:`BASE_MODEL`'s backbone to FP32 ONNX at ``path``.
    Inputs ``iframe`` (1, S, 3, H, W) (the RGB of each sampled frame) and ``flow`` (1, S, 2, H, W);
    output ``logits`` (1, num_classes). Returns {"model", "backbone", "width", "stem", "params",
    "precision", "weights"}."""
    import torch
    from torch import nn

    from training.models.common import LateFusion
    from training.models.export import export_onnx
    from training.models.registry import model_entry
    from training.models.tsn import stream_classifier

    cfg = model_entry(BASE_MODEL).default_cfg
    size = spec.size[0] if spec.size[0] == spec.size[1] else spec.size
    streams = {name: dict(backbone="resnet18", width=cfg["width"], dropout=cfg["dropout"], stem=cfg["stem"])
               for name in ("iframe", "flow")}

    class RGBFlowTwoStream(nn.Module):
        """RGB stream + flow stream of the same backbone, late fusion of logits (weights 1, 1)."""

        def __init__(self):
            super().__init__()
            self.rgb_stream = stream_classifier("iframe", spec.num_classes, spec.segments, size, **streams["iframe"])
            self.flow_stream = stream_classifier("flow", spec.num_classes, spec.segments, size, **streams["flow"])
            self.fusion = LateFusion(("iframe", "flow"), (1.0, 1.0))
            self.input_specs = (self.rgb_stream.input_specs[0], self.flow_stream.input_specs[0])

        def forward(self, iframe, flow):
            return self.fusion({"iframe": self.rgb_stream(iframe), "flow": self.flow_stream(flow)})

    torch.manual_seed(seed)
    model = RGBFlowTwoStream().eval()
    export_onnx(model, path)
    return {"model": f"two-stream RGB + flow TSN of {BASE_MODEL}'s backbone", "backbone": "resnet18",
            "width": cfg["width"], "stem": cfg["stem"], "params": sum(p.numel() for p in model.parameters()),
            "precision": "fp32", "weights": f"random init (seed {seed}): speed does not depend on the weights"}


# -- one timed pass -----------------------------------------------------------------------------------


def _open_source(source):
    import av

    if isinstance(source, (bytes, bytearray)):
        return av.open(io.BytesIO(bytes(source)))
    return av.open(os.fspath(source))


def _decoded_rgb(source):
    """(RGB frame (H, W, 3) uint8, decode milliseconds) for every frame of ``source``."""
    import av

    try:
        container = _open_source(source)
    except (av.error.FFmpegError, OSError) as err:
        raise SourceError(f"rgb-flow cannot open the source: {err}") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # the reader's decoder threading
        stream.codec_context.thread_count = 0
        frames = container.decode(stream)
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            if frame is None:
                return
            rgb = frame.to_ndarray(format="rgb24")
            yield rgb, (time.perf_counter() - t0) * 1000


def _prepare(cv2, rgbs: list, flows: list, spec: RGBFlowSpec) -> dict[str, np.ndarray]:
    """The network's inputs for one window: ``rgbs`` (H, W, 3) uint8 and ``flows`` (2, H, W) float32 of
    the sampled frames -> {"iframe": (1, S, 3, h, w), "flow": (1, S, 2, h, w)} float32."""
    height, width = spec.size
    mean, std = np.asarray(RGB_MEAN, np.float32), np.asarray(RGB_STD, np.float32)
    rgb = np.stack([(cv2.resize(x, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255 - mean)
                    / std for x in rgbs]).transpose(0, 3, 1, 2)
    flow = []
    for f in flows:
        scale = np.asarray([width / f.shape[2], height / f.shape[1]], np.float32)[:, None, None]
        flow.append(np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_AREA) for c in f]) * scale)
    return {"iframe": np.ascontiguousarray(rgb[None]), "flow": np.ascontiguousarray(np.stack(flow)[None])}


def measure_rgb_flow(source, spec: RGBFlowSpec) -> dict:
    """One pass of the RGB + flow pipeline over ``source`` (a path or bytes; see the module doc).
    Returns the measured milliseconds: per stage totals, per frame / per window statistics, the
    frames, flow pairs and windows, and how the network and TV-L1 were measured. Raises
    SourceError for a source without frames, MissingDependencyError without the ``train`` extra."""
    import cv2
    import onnxruntime as ort

    from edgekit import sampling
    from edgekit.profile import summarize
    from targets.cpu import session_options
    from training.flow import make_teacher

    teachers = {method: make_teacher(method) for method in FLOW_METHODS}
    with tempfile.TemporaryDirectory(prefix="edgekit-compare-") as folder:
        model_path = os.path.join(folder, "rgb-flow.onnx")
        network = export_two_stream(model_path, spec)
        network["bytes"] = os.path.getsize(model_path)
        session = ort.InferenceSession(model_path, sess_options=session_options(spec.threads, "all"),
                                       providers=["CPUExecutionProvider"])
    output = session.get_outputs()[0].name
    height, width = spec.size
    warm = {"iframe": np.zeros((1, spec.segments, 3, height, width), np.float32),
            "flow": np.zeros((1, spec.segments, 2, height, width), np.float32)}
    session.run([output], warm)  # first-run allocations stay out of the timing

    decode_ms, preprocess_ms, network_ms = [], [], []
    flow_ms = {method: [] for method in FLOW_METHODS}
    held: deque = deque(maxlen=spec.window_frames)  # (rgb, network flow) of the current window's frames
    previous = None
    count = last_end = 0
    tvl1_positions = []  # source frame index of each TV-L1 frame timed

    def window() -> None:
        frames = list(held)
        chosen = sampling.segment_positions(len(frames), spec.segments, train=False)
        first = count - len(frames)  # source index of frames[0]
        for p in chosen:
            if len(flow_ms["tvl1"]) < spec.tvl1_frames and first + p >= 1 and p >= 1:
                t0 = time.perf_counter()
                teachers["tvl1"](frames[p - 1][0], frames[p][0])
                flow_ms["tvl1"].append((time.perf_counter() - t0) * 1000)
                tvl1_positions.append(int(first + p))
        t0 = time.perf_counter()
        inputs = _prepare(cv2, [frames[p][0] for p in chosen], [frames[p][1] for p in chosen], spec)
        t1 = time.perf_counter()
        session.run([output], inputs)
        t2 = time.perf_counter()
        preprocess_ms.append((t1 - t0) * 1000)
        network_ms.append((t2 - t1) * 1000)

    for rgb, ms in _decoded_rgb(source):
        decode_ms.append(ms)
        if previous is not None and previous.shape != rgb.shape:
            raise SourceError("rgb-flow needs one picture size for the whole source")
        if previous is None:
            network_flow = None
        else:
            if count == 1:  # OpenCV's first call of each method sets up (TV-L1: seconds): left out
                for teacher in teachers.values():
                    teacher(previous, rgb)
            for method in ("farneback", "dis"):
                t0 = time.perf_counter()
                result = teachers[method](previous, rgb)
                flow_ms[method].append((time.perf_counter() - t0) * 1000)
                if method == NETWORK_FLOW:
                    network_flow = result
        if network_flow is None:  # the first frame has no previous one: zero flow, as at a cut
            network_flow = np.zeros((2, *rgb.shape[:2]), np.float32)
        held.append((rgb, network_flow))
        previous = rgb
        count += 1
        if sampling.window_due(count, spec.window_frames, spec.stride_frames):
            window()
            last_end = count
    if count == 0:
        raise SourceError("rgb-flow: the source holds no frames")
    if sampling.tail_due(count, last_end, spec.window_frames):
        window()  # the tail window, as the Recognizer's
    if not flow_ms["tvl1"] and count >= 2:  # every sampled frame was a first frame: time one pair anyway
        frames = list(held)
        t0 = time.perf_counter()
        teachers["tvl1"](frames[-2][0], frames[-1][0])
        flow_ms["tvl1"].append((time.perf_counter() - t0) * 1000)
        tvl1_positions.append(count - 1)

    pairs = count - 1
    flows = {}
    for method, values in flow_ms.items():
        stats = summarize(values)
        measured_ms = float(sum(values))
        extrapolated = method == "tvl1" and len(values) < pairs
        total = stats["p50"] * pairs if values and extrapolated else measured_ms
        flows[method] = {"per_frame_ms": stats, "frames_timed": len(values), "pairs": pairs,
                         "measured_total_ms": round(measured_ms, 3), "total_ms": round(total, 3),
                         "extrapolated": extrapolated}
    flows["tvl1"]["timed_frames"] = tvl1_positions
    flows["tvl1"]["timed_ms"] = [round(v, 3) for v in flow_ms["tvl1"]]
    return {"frames": count, "flow_pairs": pairs, "windows": len(network_ms),
            "frame_size": list(previous.shape[:2]) if previous is not None else None,
            "totals_ms": {"decode_rgb": round(sum(decode_ms), 3), "preprocess": round(sum(preprocess_ms), 3),
                          "network": round(sum(network_ms), 3)},
            "decode_rgb_per_frame_ms": summarize(decode_ms), "preprocess_per_window_ms": summarize(preprocess_ms),
            "network_per_window_ms": summarize(network_ms), "flow": flows,
            "network": {**network, "runtime": "onnxruntime", "provider": "CPUExecutionProvider",
                        "threads": spec.threads, "inputs": {k: list(v.shape) for k, v in warm.items()},
                        "fed_flow": NETWORK_FLOW},
            "opencv": {"version": cv2.__version__, "threads": cv2.getNumThreads()}}
