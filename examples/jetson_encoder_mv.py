"""Recognize motion from the motion vectors a Jetson's hardware encoder reports: no decoding at all.

A camera application on an NVIDIA Jetson with the NVENC encoder (Orin NX, AGX Orin; the Orin Nano has
no hardware encoder) already encodes its video. Asked to, the encoder also reports one motion vector
per 16x16 macroblock (H.264) or 32x32 CTB (H.265) of every frame it codes, as ``MVInfo`` records.
This script hands those records to edgekit (``edgekit.bitstream.EncoderMotion``) and a
motion-vector-only model recognizes the stream while it is being encoded.

Two modes:

``--camera`` (on a Jetson): a GStreamer pipeline

    nvarguscamerasrc ! nvvidconv ! nvv4l2h264enc EnableMVBufferMeta=true ! h264parse ! fakesink

with a pad probe on the encoder's source pad. For every encoded buffer it takes the frame kind (a
buffer without GST_BUFFER_FLAG_DELTA_UNIT is a keyframe), the timestamp, and the MVInfo bytes from
the buffer's motion-vector meta, and queues them for the reader. Replace ``fakesink`` with your
recording or streaming branch.

``--simulate CLIP`` (anywhere): an encoder-like generator built from a local file. The file's own
motion vectors (FFmpeg's export, through PyAV) are reduced to what a Jetson reports, one whole-pixel
vector per 16x16 macroblock packed as 4-byte MVInfo bit fields, and fed through the same
``MotionFrame.from_mvinfo(kind, pts, raw_bytes)`` call as the camera mode.

**What was not run.** The ``--camera`` mode has never run: no Jetson was available where this was
written. Three things in it are unverified: (1) how the MV meta reaches a GStreamer buffer. The
stock gst-nvv4l2 plugin reads the encoder's MV metadata when ``EnableMVBufferMeta=true``; whether
it attaches it to the buffer, and under which meta API, we could not check (its source was not at
hand). ``read_mv_meta`` below reads a meta laid out like ``v4l2_ctrl_videoenc_outputbuf_metadata_MV``
(``bufSize``, then a pointer to the MVInfo array) right after the ``GstMeta`` header, found by the
API name given with ``--meta-api`` (``GstBufferInfoMetaAPI`` is the name a widely copied community
patch of gst-v4l2 registers). If your plugin stores it otherwise, adapt ``read_mv_meta``, or take the
bytes in C++ from ``NvVideoEncoder::getMotionVectors`` (Jetson Multimedia API, sample 01_video_encode)
and pass ``bufSize`` bytes to ``MotionFrame.from_mvinfo``. (2) The MVInfo units and sign: NVIDIA
documents whole pixels; the sign is assumed to be that of a coded vector (``--mv-scale -1``); check
with a known pan and see ``edgekit.bitstream.motion``. (3) The ``hash(buffer)`` pointer idiom of
PyGObject used to reach the ``GstBuffer`` from ctypes. The ``--simulate`` mode runs here and in the
tests (``tests/test_motion.py``).

Examples:

    python examples/jetson_encoder_mv.py --simulate clip.mp4                       # reader only
    python examples/jetson_encoder_mv.py --simulate clip.mp4 --package mv.edgepkg  # predictions
    python examples/jetson_encoder_mv.py --camera --package mv.edgepkg --width 1280 --height 720
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np

import edgekit
from edgekit.bitstream import EncoderMotion, MotionFrame
from edgekit.errors import EdgekitError

MB = 16  # H.264 macroblock: one MVInfo record each


# -- the simulated encoder (runs anywhere) ---------------------------------------------------------------

def mvinfo_records(mv_x: np.ndarray, mv_y: np.ndarray) -> bytes:
    """Pack whole-pixel vectors into Jetson MVInfo records: bit fields mv_x:16, mv_y:14, weight:2 in one
    little-endian 32-bit word per macroblock (sizeof(MVInfo) == 4 in L4T 32.x-35.x)."""
    words = (mv_x.astype(np.int64) & 0xFFFF) | ((mv_y.astype(np.int64) & 0x3FFF) << 16)
    return words.astype("<u4").tobytes()


def simulated_encoder(path: str) -> tuple[Iterator[tuple[str, float, bytes]], int, int, float]:
    """(generator of (kind, pts, MVInfo bytes) per frame as a Jetson encoder would report them,
    width, height, fps) from a local file's own motion vectors."""
    import av

    from edgekit.bitstream import kernels

    container = av.open(path)
    stream = container.streams.video[0]
    stream.codec_context.options = {"flags2": "+export_mvs"}
    width, height = stream.codec_context.width, stream.codec_context.height
    fps = float(stream.average_rate or 25)
    gh, gw = -(-height // 8), -(-width // 8)
    rows, cols = -(-height // MB), -(-width // MB)
    kinds = {1: "I", 2: "P", 3: "B"}

    def frames():
        d0, d1 = np.empty((2, gh, gw), np.float32), np.empty((2, gh, gw), np.float32)
        flags = np.empty((gh, gw), np.uint8)
        try:
            for frame in container.decode(stream):
                kind = kinds.get(int(frame.pict_type), "P")
                side = frame.side_data.get("MOTION_VECTORS")
                # the file's vectors on edgekit's 8x8 grid (d = dst - src), then one per macroblock: the
                # past-reference vector of its top-left 8x8 cell, rounded to whole pixels, coded sign
                kernels().mv_grid(side, gh, gw, d0, d1, flags)
                cells = np.where(flags & 1, d0, 0)[:, ::2, ::2][:, :rows, :cols]
                coded = -np.rint(cells).astype(np.int64)
                yield kind, frame.time, mvinfo_records(coded[0], coded[1])
        finally:
            container.close()

    return frames(), width, height, fps


# -- the Jetson camera (not run here: see the module docstring) --------------------------------------------

PIPELINE = ("nvarguscamerasrc sensor-id={sensor} ! "
            "video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1,format=NV12 ! "
            "nvvidconv ! video/x-raw(memory:NVMM),format=I420 ! "
            "nvv4l2h264enc name=encoder EnableMVBufferMeta=true iframeinterval={gop} idrinterval={gop} "
            "insert-sps-pps=true ! h264parse ! fakesink sync=false")


def read_mv_meta(buffer, api_type: int) -> bytes | None:
    """The MVInfo bytes of an encoded buffer's MV meta (a copy), or None when it carries none. Assumed
    layout after the GstMeta header: ``guint32 bufSize; MVInfo *pMVInfo`` (see the module docstring)."""
    import ctypes

    class GstMeta(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint), ("info", ctypes.c_void_p)]

    class MVMeta(ctypes.Structure):
        _fields_ = [("meta", GstMeta), ("bufSize", ctypes.c_uint32), ("pMVInfo", ctypes.c_void_p)]

    gst = ctypes.CDLL("libgstreamer-1.0.so.0")
    gst.gst_buffer_get_meta.restype = ctypes.c_void_p
    gst.gst_buffer_get_meta.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    address = gst.gst_buffer_get_meta(ctypes.c_void_p(hash(buffer)), api_type)
    if not address:
        return None
    meta = MVMeta.from_address(address)
    if not meta.pMVInfo or not meta.bufSize:
        return None
    return ctypes.string_at(meta.pMVInfo, meta.bufSize)


def camera_encoder(args) -> Iterator[tuple[str, float, bytes]]:
    """(kind, pts, MVInfo bytes) per encoded frame of a Jetson camera pipeline, as they are encoded."""
    import ctypes

    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    gobject = ctypes.CDLL("libgobject-2.0.so.0")
    gobject.g_type_from_name.restype = ctypes.c_size_t
    api_type = gobject.g_type_from_name(args.meta_api.encode())
    if not api_type:
        raise SystemExit(f"no GstMeta API named {args.meta_api!r} is registered: this gst-nvv4l2 build does not "
                         "attach the MV meta under that name (see the docstring)")
    pipeline = Gst.parse_launch(PIPELINE.format(sensor=args.sensor, width=args.width, height=args.height,
                                                fps=args.fps, gop=args.gop))
    frames: queue.Queue = queue.Queue(maxsize=64)
    done = object()

    def probe(pad, info):
        buffer = info.get_buffer()
        raw = read_mv_meta(buffer, api_type)
        kind = "P" if buffer.has_flags(Gst.BufferFlags.DELTA_UNIT) else "I"
        pts = buffer.pts / Gst.SECOND if buffer.pts != Gst.CLOCK_TIME_NONE else None
        try:
            frames.put_nowait((kind, pts, raw))
        except queue.Full:  # the model fell behind: drop, rather than stall the encoder
            pass
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("encoder").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)
    bus = pipeline.get_bus()

    def watch():
        msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.ERROR | Gst.MessageType.EOS)
        if msg is not None and msg.type == Gst.MessageType.ERROR:
            print(f"GStreamer: {msg.parse_error()[0].message}", file=sys.stderr)
        frames.put(done)

    threading.Thread(target=watch, daemon=True).start()
    pipeline.set_state(Gst.State.PLAYING)
    try:
        while (item := frames.get()) is not done:
            yield item
    finally:
        pipeline.set_state(Gst.State.NULL)


# -- both: encoder records -> MotionFrames -> edgekit ----------------------------------------------------

def motion_frames(records, scale: float) -> Iterator[MotionFrame]:
    for kind, pts, raw in records:
        if kind == "I" or raw is None:  # an I-frame has no vectors; a frame whose meta is missing, none either
            yield MotionFrame(kind, pts)
        else:
            yield MotionFrame.from_mvinfo(kind, pts, raw, block=MB, scale=scale)


def run(args) -> int:
    if args.simulate:
        records, width, height, fps = simulated_encoder(args.simulate)
        print(f"simulated Jetson encoder from {args.simulate}: {width}x{height} at {fps:g} fps, MVInfo records of "
              f"{MB}x{MB} macroblocks ({-(-width // MB)}x{-(-height // MB)} per frame, 4 bytes each)",
              file=sys.stderr if args.json else sys.stdout)
    else:
        records, width, height, fps = camera_encoder(args), args.width, args.height, float(args.fps)
    source = EncoderMotion(motion_frames(records, args.mv_scale), width=width, height=height, fps=fps,
                           name="jetson-encoder" if args.camera else f"simulated encoder ({args.simulate})")
    t0 = time.perf_counter()
    if args.package:
        with edgekit.Recognizer(args.package, threads=args.threads) as rec:
            for window in rec.windows(source):
                p = window.prediction
                if args.json:
                    print(json.dumps({"start_s": round(p.start_s, 3), "end_s": round(p.end_s, 3), "label": p.label,
                                      "score": round(p.score, 4), "latency_ms": round(window.latency_ms, 2)}),
                          flush=True)
                else:
                    print(f"{p.start_s:7.2f}-{p.end_s:7.2f} s  {p.label:12s} {p.score:.2f}", flush=True)
        return 0
    n = moving = 0
    with edgekit.open(source, residual=False, rgb=None) as reader:
        for f in reader:
            n += 1
            moving += f.kind != "I" and bool(np.abs(f.mv).max() > 0)
            if f.kind == "I" and not args.json:
                print(f"GOP {f.gop_index} at {f.pts:.2f} s")
        stats = reader.stats
    elapsed = time.perf_counter() - t0
    print(f"{n} frames ({stats.kinds['I']} I, {stats.kinds['P']} P, {stats.kinds['B']} B), {moving} with motion, "
          f"in {elapsed * 1000:.0f} ms")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="see the module docstring for what has and has not been run")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--simulate", metavar="CLIP",
                      help="feed the vectors of a local file as a Jetson would report them")
    mode.add_argument("--camera", action="store_true", help="a Jetson camera through nvv4l2h264enc (not run here)")
    parser.add_argument("--package", help="a motion-vector-only .edgepkg: print predictions (default: read only)")
    parser.add_argument("--json", action="store_true", help="one JSON object per window")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    parser.add_argument("--mv-scale", type=float, default=-1.0,
                        help="edgekit pixels per MVInfo unit, signed (default -1: whole pixels, coded-vector sign)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gop", type=int, default=30, help="encoder I-frame interval (camera mode)")
    parser.add_argument("--sensor", type=int, default=0, help="nvarguscamerasrc sensor-id (camera mode)")
    parser.add_argument("--meta-api", default="GstBufferInfoMetaAPI",
                        help="GstMeta API name under which the encoder plugin attaches the MV meta (camera mode)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except EdgekitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
