"""A 1-hour live stream through a local TCP server, at full speed: memory and latency must stay flat.

A camera's hour is simulated as fast as the machine reads it: 25 fps x 3600 s = 90,000 frames of
340x256 H.264 (x264, GOP 25, raw Annex-B with SPS/PPS before every IDR, as a camera encoder emits it),
a GOP-aligned segment of ``--segment-frames`` looped by a server in a child process (this script with
``--serve``) on 127.0.0.1. The server pushes as fast as TCP lets it (no pacing) and restarts
``--restarts`` times at GOP boundaries (it hangs up and takes the next connection), so the run crosses
real reconnections. The measured process runs ``edgekit.Recognizer.default().windows(url)``, the
path a camera application runs, with a reconnect policy that gives up at once when the server is gone
for good (the end of the hour).

Measured, in the one process:
- RSS (VmRSS) sampled every ``--rss-every`` windows; growth = RSS at the end minus RSS after warm-up
  (the first 10 % of the windows), and the slope of a least-squares line through the samples after
  warm-up (MiB per simulated hour). Target: growth < 5 MB.
- per-window latency from the arrival of the window's last frame (out of the decoder) to its
  prediction (``Window.latency_ms``): p50/p99 over the first 10 % and the last 10 % of the windows.
  Target: the end p99 within 10 % of the start p99.
- windows, frames, frames/s of the whole loop, reconnects and the reader's other counters.

Prints ONE JSON object on stdout; progress goes to stderr.

Example:
    python benchmarks/live.py > docs/results/live.json            # the hour (minutes)
    python benchmarks/live.py --frames 600 --segment-frames 100    # smoke test
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py and _clips.py, run as a script

from _env import high_water_rss_mib, machine, reset_peak_rss, rss_mib, script_parser  # noqa: E402

FPS = 25
HOUR_FRAMES = FPS * 3600
SIZE = (340, 256)
GOP = 25
TARGET_RSS_GROWTH_MIB = 5 * 1e6 / 2 ** 20  # 5 MB
TARGET_P99_DRIFT = 0.10


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the segment ------------------------------------------------------------------------------------


def encode_segment(workdir: Path, frames: int, gop: int) -> Path:
    """A raw H.264 (Annex-B) segment of ``frames`` 340x256 frames, GOP ``gop``, from _clips.py's moving
    objects; cached in ``workdir``. x264 writes SPS/PPS before every IDR in a raw stream, so the loop
    (and a reconnection at any GOP boundary) starts with everything a decoder needs."""
    import av

    from _clips import ClipSpec, render_frames
    from edgekit._fileio import atomic_output
    from edgekit.bitstream.encode import add_video_stream, open_output

    spec = ClipSpec("h264", *SIZE, frames=frames, gop=gop, bframes=0, crf=23, objects=4, fps=FPS)
    path = workdir / f"live_h264_{SIZE[0]}x{SIZE[1]}_{frames}f_gop{gop}_{spec.key()}.h264"
    if path.exists() and path.stat().st_size:
        return path
    settings = spec.encoder_settings()
    with atomic_output(path) as tmp, open_output(tmp, settings, format="h264") as out:
        stream = add_video_stream(out, settings, *SIZE, FPS)
        for img in render_frames(spec):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def frame_offsets(path: Path) -> list[int]:
    """Byte offset of every coded picture of a raw H.264 stream, and its length at the end."""
    import av

    with av.open(str(path), format="h264") as container:
        offsets = [p.pos for p in container.demux(video=0) if p.size]
    return offsets + [path.stat().st_size]


# -- the server (child process) ---------------------------------------------------------------------


def connection_spans(frames: int, restarts: int, gop: int) -> list[tuple[int, int]]:
    """[start, end) frame spans of the server's connections: ``frames`` split evenly into
    ``restarts + 1`` spans at GOP boundaries (fewer when the stream is too short to hold them)."""
    bounds = sorted({round(frames * k / (restarts + 1) / gop) * gop for k in range(1, restarts + 1)} - {0})
    bounds = [b for b in bounds if 0 < b < frames]
    edges = [0, *bounds, frames]
    return list(zip(edges[:-1], edges[1:]))


def serve(path: str, frames: int, restarts: int, gop: int) -> int:
    """Listen on 127.0.0.1 (port printed on stdout), send ``frames`` frames of the looped segment over
    ``restarts + 1`` successive connections, then stop listening."""
    data = Path(path).read_bytes()
    offsets = frame_offsets(Path(path))
    segment = len(offsets) - 1
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    for start, end in connection_spans(frames, restarts, gop):
        connection, _ = listener.accept()
        with connection:
            i = start
            try:
                while i < end:  # up to the end of the segment, or of the span
                    k = i % segment
                    n = min(segment - k, end - i)
                    connection.sendall(memoryview(data)[offsets[k]:offsets[k + n]])
                    i += n
            except OSError as err:  # the reader went away
                log(f"server: connection ended early at frame {i}: {err}")
                return 1
    listener.close()
    return 0


# -- the measurement --------------------------------------------------------------------------------


def latency_summary(values: list[float]) -> dict:
    """p50, p99 and max of per-window latencies (ms), as ``edgekit profile`` computes its stage
    statistics (``edgekit.profile.summarize``: linear interpolation, every value)."""
    from edgekit.profile import summarize

    stats = summarize(values)
    return {"windows": stats["count"], "p50_ms": stats["p50"], "p99_ms": stats["p99"], "max_ms": stats["max"]}


def slope_per_hour(samples: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of RSS (MiB) against frames, scaled to MiB per 90,000 frames."""
    if len(samples) < 3:
        return None
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * HOUR_FRAMES


def thin(samples: list, at_most: int) -> list:
    """At most ``at_most`` evenly spaced samples, the first and the last kept."""
    if len(samples) <= at_most:
        return samples
    step = (len(samples) - 1) / (at_most - 1)
    return [samples[round(i * step)] for i in range(at_most)]


def benchmark(args) -> dict:
    import edgekit
    from edgekit.bitstream import Reconnect
    from edgekit.recognizer import Recognizer

    with tempfile.TemporaryDirectory(prefix="edgekit-live-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        segment_path = encode_segment(workdir, args.segment_frames, args.gop)
        log(f"segment {segment_path} ({time.perf_counter() - t0:.1f} s to encode or find)")
        spans = connection_spans(args.frames, args.restarts, args.gop)
        server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", str(segment_path),
                                   "--frames", str(args.frames), "--restarts", str(args.restarts),
                                   "--gop", str(args.gop)], stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            result = measure(args, f"tcp://127.0.0.1:{port}", Recognizer, Reconnect)
        finally:
            if server.poll() is None:
                server.kill()
            server.wait()
            server.stdout.close()
        result["server"] = {"connections": len(spans), "spans_frames": spans, "exit_code": server.returncode}
        result["segment"] = {"path": segment_path.name, "frames": args.segment_frames, "gop": args.gop,
                             "bytes": segment_path.stat().st_size, "codec": "h264 (x264, raw Annex-B)",
                             "size": list(SIZE)}
        result["env"] = {**machine(), "edgekit": edgekit.__version__, "edgekit_file": edgekit.__file__}
        return result


def measure(args, url: str, Recognizer, Reconnect) -> dict:
    recognizer = Recognizer.default()
    # the server hangs up at each restart and is gone at the end: reopen at once, give up quickly
    policy = Reconnect(attempts=3, backoff_s=(0.05,), max_total_s=30)
    latencies: list[float] = []
    samples: list[tuple[int, float]] = []  # (frames read, RSS MiB)
    reset_peak_rss()
    log(f"reading {args.frames} frames from {url} with {recognizer!r}")
    t_start = time.perf_counter()
    with recognizer:
        run = recognizer.windows(url, timeout_s=args.timeout, reconnect=policy)
        for n, window in enumerate(run, 1):
            latencies.append(float(window.latency_ms))
            if n % args.rss_every == 0:
                samples.append((run.frames, rss_mib()))
            if n % 500 == 0:
                log(f"  {run.frames} frames, {n} windows, {run.frames / (time.perf_counter() - t_start):.0f} fps, "
                    f"RSS {rss_mib():.1f} MiB")
        seconds = time.perf_counter() - t_start
        samples.append((run.frames, rss_mib()))
        stats = run.reader.stats
        settings = {"recognizer": repr(recognizer), "window_frames": recognizer.window_frames,
                    "stride_frames": recognizer.stride_frames}
    windows = len(latencies)
    tenth = max(1, windows // 10)
    warm_frames = settings["window_frames"] + (tenth - 1) * settings["stride_frames"]  # read by window `tenth`
    after_warmup = samples[next(i for i, s in enumerate(samples) if s[0] >= warm_frames):]
    baseline, end = after_warmup[0][1], samples[-1][1]
    start_latency, end_latency = latency_summary(latencies[:tenth]), latency_summary(latencies[-tenth:])
    drift = end_latency["p99_ms"] / start_latency["p99_ms"] - 1 if start_latency["p99_ms"] else None
    growth = end - baseline
    return {
        "benchmark": "a live stream through a local TCP server at full speed: Recognizer.default().windows(url)",
        "command": ["live.py", *sys.argv[1:]],
        "settings": {**settings, "frames": args.frames, "simulated_s": args.frames / FPS, "fps_nominal": FPS,
                     "restarts": args.restarts, "timeout_s": args.timeout, "reconnect": repr(policy),
                     "rss_every_windows": args.rss_every,
                     "warm_up": "the first 10 % of the windows; latency start/end = first/last 10 % of them",
                     "latency": "Window.latency_ms: from the arrival of the window's last frame (out of the "
                                "decoder) to its prediction"},
        "frames": stats.frames,
        "windows": windows,
        "seconds": round(seconds, 3),
        "fps": round(stats.frames / seconds, 1),
        "reconnects": stats.reconnects,
        "reader_stats": {k: v for k, v in vars(stats).items()},
        "rss_mib": {"after_warmup": round(baseline, 2), "end": round(end, 2), "growth": round(growth, 3),
                    "max_sampled": round(max(s[1] for s in samples), 2),
                    "slope_per_hour": (None if slope_per_hour(after_warmup) is None
                                       else round(slope_per_hour(after_warmup), 3)),
                    "high_water": high_water_rss_mib(),
                    "samples": [[f, round(m, 2)] for f, m in thin(samples, 120)]},
        "latency_ms": {"start": start_latency, "end": end_latency, "all": latency_summary(latencies),
                       "p99_end_vs_start": None if drift is None else round(drift, 4)},
        "targets": {"rss_growth_below_5MB": growth < TARGET_RSS_GROWTH_MIB,
                    "p99_end_within_10pct_of_start": drift is not None and drift <= TARGET_P99_DRIFT},
    }


def main(argv=None) -> int:
    parser = script_parser("A 1-hour live stream (25 fps) through a local TCP server at full speed: RSS growth and "
                           "arrival-to-prediction latency of Recognizer.default().windows(url)",
                           "python benchmarks/live.py --frames 600 --segment-frames 100")
    parser.add_argument("--frames", type=int, default=HOUR_FRAMES, help=f"frames to stream (default {HOUR_FRAMES}: "
                        "one hour at 25 fps)")
    parser.add_argument("--segment-frames", type=int, default=250, help="frames of the looped segment (default 250)")
    parser.add_argument("--gop", type=int, default=GOP, help=f"GOP of the segment (default {GOP})")
    parser.add_argument("--restarts", type=int, default=2, help="times the server hangs up and comes back "
                        "(default 2)")
    parser.add_argument("--timeout", type=float, default=10.0, help="the reader's timeout_s (default 10)")
    parser.add_argument("--rss-every", type=int, default=25, help="sample RSS every N windows (default 25)")
    parser.add_argument("--workdir", help="where the segment is encoded (cached); default: a temporary folder")
    parser.add_argument("--serve", metavar="SEGMENT", help=argparse.SUPPRESS)  # the server's child process
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.frames, args.restarts, args.gop)
    if args.segment_frames % args.gop or args.frames < 96 or args.rss_every < 1:
        parser.error("--segment-frames must be a multiple of --gop, --frames at least 96 (two windows of the "
                     "default model) and --rss-every at least 1")
    print(json.dumps(benchmark(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
