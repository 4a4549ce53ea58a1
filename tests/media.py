"""Real test videos, encoded by the tests themselves with PyAV (FFmpeg's encoders).

``moving_square_clip`` renders a smooth-textured square moving a KNOWN number of pixels per frame
over a static smooth-textured background, so the tests know what the motion vectors must be.
"""

from __future__ import annotations

import av
import numpy as np

X264_B = "keyint={gop}:min-keyint={gop}:scenecut=0:bframes=2:b-adapt=0:b-pyramid=none:ref=1"
X264_NOB = "keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:ref=1"


def smooth_texture(rng: np.random.Generator, h: int, w: int, cell: int = 8) -> np.ndarray:
    """uint8 (h, w, 3): random colours on a coarse grid, bilinearly smoothed (trackable by ME)."""
    gh, gw = h // cell + 2, w // cell + 2
    coarse = rng.integers(30, 226, (gh, gw, 3)).astype(np.float32)
    ys = np.linspace(0, gh - 1.001, h)
    xs = np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    a = coarse[y0][:, x0]
    b = coarse[y0][:, x0 + 1]
    c = coarse[y0 + 1][:, x0]
    d = coarse[y0 + 1][:, x0 + 1]
    return (a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx).astype(np.uint8)


def encoder_options(codec: str, gop: int, bframes: int) -> dict:
    if codec == "mpeg4":
        return {"qscale": "2"}
    params = (X264_B if bframes else X264_NOB).format(gop=gop)
    return {"preset": "veryfast", "crf": "18", "x264-params": params}


def moving_square_clip(path, codec="mpeg4", size=(320, 240), frames=24, motion=(4, -2), gop=12,
                       bframes=0, square=64, start=None, pan=(0, 0), seed=0, fps=25, container=None):
    """Encode a clip; returns dict(start=(x, y), motion=(dx, dy), square=n, pan=(px, py)).

    The square's top-left at frame i is start + i * motion. With ``pan`` the background shifts by
    i * pan instead of staying still (a camera pan: every pixel moves by ``pan``).
    """
    w, h = size
    rng = np.random.default_rng(seed)
    margin = 8 + frames * max(abs(pan[0]), abs(pan[1]), 1)
    bg = smooth_texture(rng, h + 2 * margin, w + 2 * margin)
    obj = smooth_texture(rng, square, square, cell=6)
    if start is None:
        start = (w // 2 - square // 2 - motion[0] * frames // 2, h // 2 - square // 2 - motion[1] * frames // 2)
    name = {"mpeg4": "mpeg4", "h264": "libx264"}[codec]
    with av.open(str(path), "w", format=container) as out:
        s = out.add_stream(name, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        s.codec_context.max_b_frames = bframes
        s.options = encoder_options(codec, gop, bframes)
        for i in range(frames):
            oy, ox = margin - pan[1] * i, margin - pan[0] * i  # content moves by +pan
            img = bg[oy:oy + h, ox:ox + w].copy()
            x, y = start[0] + motion[0] * i, start[1] + motion[1] * i
            ys, xs = slice(max(y, 0), min(y + square, h)), slice(max(x, 0), min(x + square, w))
            if ys.start < ys.stop and xs.start < xs.stop:  # the square may have left the frame
                img[ys, xs] = obj[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x]
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    return {"start": start, "motion": motion, "square": square, "pan": pan}


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
    with av.open(str(path), "w") as out:
        s = out.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()  # header and an empty track, no frames


def hevc_clip(path, frames=8, size=(128, 96)) -> None:
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
