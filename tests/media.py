"""Real test videos, encoded by the tests themselves with PyAV (FFmpeg's encoders).

MPEG-4 and H.264 clips get their encoder settings from edgekit.bitstream.encode, as every clip
edgekit encodes; ``hevc_clip`` is the exception on purpose (a codec without exportable vectors).
``moving_square_clip`` (edgekit.synthetic.make_clip) renders a smooth-textured square moving a KNOWN
number of pixels per frame over a static or panning background, so the tests know the true motion.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from edgekit.bitstream.encode import EncoderSettings, add_video_stream, open_output
from edgekit.synthetic import make_clip, smooth_texture


def moving_square_clip(path, codec="mpeg4", size=(320, 240), frames=24, motion=(4, -2), gop=12,
                       bframes=0, square=64, pan=(0, 0), seed=0, fps=25, container=None):
    return make_clip(path, motion, codec=codec, size=size, frames=frames, fps=fps, gop=gop, bframes=bframes,
                     square=square, pan=pan, seed=seed, container=container)


def half_pel_pan_clip(path, codec="h264", dx2=1, frames=25, size=(192, 144), gop=250, seed=3) -> None:
    """A smooth texture panning ``dx2`` half pixels per frame (rendered at twice the size, shifted by
    whole pixels there, then 2x2-averaged: exact half-pixel shifts), one GOP, encoded by FFmpeg."""
    w, h = size
    tex = smooth_texture(np.random.default_rng(seed), 2 * h, 2 * (w + abs(dx2) * frames + 8), cell=12)
    tex = tex.astype(np.float32)
    settings = EncoderSettings(codec, gop=gop, crf=18, qscale=2, threads=1, bitexact=True)
    with open_output(str(path), settings, format="mp4") as out:
        stream = add_video_stream(out, settings, w, h, 25)
        for t in range(frames):
            x0 = 4 * 2 + (abs(dx2) * frames if dx2 > 0 else 0) - dx2 * t  # content moves +dx2/2 px per frame
            crop = tex[:, x0:x0 + 2 * w]
            img = crop.reshape(h, 2, w, 2, 3).mean(axis=(1, 3))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.round(img).astype(np.uint8), format="rgb24")))
        out.mux(stream.encode(None))


def noisy_still_clip(path, codec="mpeg4", size=(192, 144), frames=24, noise=3.0, flicker=0.06, qscale=5,
                     gop=250, seed=7) -> None:
    """A still smooth texture under sensor noise (Gaussian, ``noise`` grey levels) and lighting
    flicker (gain 1 +- ``flicker``, a 3-frame period): nothing moves, yet an encoder finds vectors."""
    w, h = size
    rng = np.random.default_rng(seed)
    tex = smooth_texture(rng, h, w, cell=12).astype(np.float32)
    settings = EncoderSettings(codec, gop=gop, crf=23, qscale=qscale, threads=1, bitexact=True)
    with open_output(str(path), settings, format="mp4") as out:
        stream = add_video_stream(out, settings, w, h, 25)
        for t in range(frames):
            img = tex * (1 + flicker * np.sin(2 * np.pi * t / 3)) + rng.normal(0, noise, tex.shape)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.clip(np.round(img), 0, 255).astype(np.uint8),
                                                             format="rgb24")))
        out.mux(stream.encode(None))


def object_cells(meta: dict, i: int, shape: tuple[int, int], inset: int = 8) -> tuple[slice, slice]:
    """Grid cells (rows, cols) fully inside the square at frame i, ``inset`` px from its border."""
    x = meta["start"][0] + meta["motion"][0] * i
    y = meta["start"][1] + meta["motion"][1] * i
    n = meta["square"]
    rows = slice(max((y + inset + 7) // 8, 0), min((y + n - inset) // 8, shape[0]))
    cols = slice(max((x + inset + 7) // 8, 0), min((x + n - inset) // 8, shape[1]))
    return rows, cols


def audio_only(path) -> None:
    with av.open(str(path), "w") as out:
        s = out.add_stream("mp2", rate=44100)
        t = np.arange(44100 // 4, dtype=np.float32) / 44100
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = 44100
        out.mux(s.encode(frame))
        out.mux(s.encode(None))


def zero_frame_video(path) -> None:
    settings = EncoderSettings("mpeg4")
    with open_output(path, settings) as out:
        add_video_stream(out, settings, 64, 64, rate=25)
        out.start_encoding()  # header and an empty track, no frames


def hevc_clip(path, frames=8, size=(128, 96)) -> None:
    """HEVC (libx265) clip whose background pans 2 px/frame to the left."""
    rng = np.random.default_rng(1)
    bg = smooth_texture(rng, size[1], size[0] + frames * 2)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx265", rate=25)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.options = {"x265-params": "log-level=none"}
        for i in range(frames):
            img = np.ascontiguousarray(bg[:, 2 * i:2 * i + size[0]])
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))


def raw_packets(path) -> list[tuple[int, int, bool]]:
    """(byte offset, size, keyframe) of every coded picture of a raw .h264 / .m4v elementary stream."""
    with av.open(str(path)) as c:
        return [(p.pos, p.size, p.is_keyframe) for p in c.demux(video=0) if p.size]


def size_change_stream(path, codec="h264", sizes=((128, 96), (160, 120)), frames=(12, 24), gop=12, bframes=0,
                       keyframe_headers_only=False) -> bytes:
    """A raw elementary stream (Annex-B .h264 or .m4v) whose picture size changes mid-stream: one real
    clip per size, encoded by FFmpeg and concatenated, as an encoder reconfigured on the fly emits it
    (a new SPS / VOL header, then an IDR / I-VOP). ``keyframe_headers_only`` keeps the second clip's
    VOL header but drops its first I-VOP (MPEG-4 only): P-frames of the new size arrive before any
    I-frame of it. Writes the stream to ``path`` and returns its bytes."""
    ext = {"h264": "h264", "mpeg4": "m4v"}[codec]
    parts = []
    for i, ((w, h), n) in enumerate(zip(sizes, frames)):
        part = Path(path).with_name(f"{Path(path).stem}.part{i}.{ext}")
        moving_square_clip(part, codec, size=(w, h), frames=n, gop=gop, bframes=bframes, motion=(2, 1),
                           square=min(32, h // 2), seed=i, container=ext)
        data = part.read_bytes()
        if i and keyframe_headers_only:
            if codec != "mpeg4":
                raise ValueError("keyframe_headers_only needs mpeg4 (FFmpeg's H.264 decoder drops such P-frames)")
            second = raw_packets(part)[1][0]
            vop = data.find(b"\x00\x00\x01\xb6")  # the I-VOP after the VOS/VO/VOL headers
            data = data[:vop] + data[second:]
        parts.append(data)
        part.unlink()
    data = b"".join(parts)
    Path(path).write_bytes(data)
    return data


def joined_mid_gop(path, codec="h264", frames=48, gop=12, drop=5) -> tuple[bytes, int]:
    """The bytes of a raw clip from its ``drop``-th coded picture on (``drop`` < ``gop``: the middle of
    the first GOP), as an app that connects to a running encoder receives them, and the number of
    coded pictures before the next keyframe in those bytes."""
    moving_square_clip(path, codec, size=(128, 96), frames=frames, gop=gop, motion=(2, 1), square=32,
                       container={"h264": "h264", "mpeg4": "m4v"}[codec])
    packets = raw_packets(path)
    before_keyframe = next((i for i, p in enumerate(packets) if p[2] and i >= drop), len(packets)) - drop
    return Path(path).read_bytes()[packets[drop][0]:], before_keyframe


def synth_tiny(out: Path, clips_per_class: int) -> Path:
    """The synthetic benchmark's tiny preset made into ``out`` by the real command (a subprocess,
    two workers), ``clips_per_class`` clips of each of the 17 classes."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "training", "synth", "--preset", "tiny", "--out", str(out),
                    "--clips-per-class", str(clips_per_class), "--workers", "2", "--no-progress"],
                   check=True, capture_output=True)
    return out
