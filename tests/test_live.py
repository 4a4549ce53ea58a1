"""Live sources against real servers started on 127.0.0.1 inside each test: a TCP MPEG-TS server that
drops the connection, stalls or changes the picture size; MPEG-TS over UDP; HTTP progressive; and
GStreamer's RTSP server (a subprocess) over TCP and UDP transport, restarted on the same port.

Every clip is a real H.264 stream encoded here whose background pans a known 2 px/frame, right in
one clip and left in another, so the motion vectors say which connection a frame came from."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import edgekit.bitstream as bs
from edgekit.bitstream.reader import RECONNECTED
from edgekit.errors import ConfigError, SourceError, SourceTimeoutError
from media import hevc_clip, moving_square_clip, size_change_stream

TESTS = Path(__file__).resolve().parent
FAST = bs.Reconnect(attempts=2, backoff_s=(0.05,))  # tests: reconnect at once, give up quickly
TIMEOUT_S = 2.0
SIZE = (160, 120)
FRAMES, GOP = 48, 12


# -- clips ----------------------------------------------------------------------------------------------


def pan_clip(path, pan_px: int, frames=FRAMES, size=SIZE, container="mpegts") -> bytes:
    moving_square_clip(path, "h264", size=size, frames=frames, gop=GOP, motion=(0, 0), pan=(pan_px, 0),
                       square=16, container=container)
    return Path(path).read_bytes()


def as_mpegts(raw_h264: bytes, fps: int = 25) -> bytes:
    """A raw H.264 stream remuxed into one continuous MPEG-TS (timestamps at ``fps``)."""
    out_buffer = io.BytesIO()
    with av.open(io.BytesIO(raw_h264), format="h264") as src, av.open(out_buffer, "w", format="mpegts") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(p for p in src.demux(video=0) if p.size):
            packet.stream = stream
            packet.pts = packet.dts = i * 90000 // fps
            packet.time_base = Fraction(1, 90000)
            out.mux(packet)
    return out_buffer.getvalue()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """MPEG-TS bytes: ``right``/``left`` pan 2 px/frame (48 frames, GOP 12, 160x120; ``right_longer``:
    a GOP more); ``small`` is
    ``left`` at 128x96; ``size_change`` switches from 160x120 to 128x96 after 24 frames (a new SPS)."""
    folder = tmp_path_factory.mktemp("live")
    return {"right": pan_clip(folder / "right.ts", 2), "left": pan_clip(folder / "left.ts", -2),
            "right_longer": pan_clip(folder / "right_longer.ts", 2, frames=FRAMES + GOP),
            "small": pan_clip(folder / "small.ts", -2, size=(128, 96)),
            "size_change": as_mpegts(size_change_stream(folder / "change.h264", "h264", sizes=((160, 120), (128, 96)),
                                                        frames=(24, 24)))}


def pan_of(frame) -> float:
    """The median horizontal motion of a P-frame's blocks: +2 in ``right``, -2 in ``left``."""
    return float(np.median(frame.mv[0]))


def read(source, **options):
    """(frames, reader) of a whole source, MV-only."""
    options.setdefault("timeout_s", TIMEOUT_S)
    with bs.open(source, residual=False, rgb=None, **options) as reader:
        frames = list(reader)
    return frames, reader


def halves(frames):
    """Frames split where the pan flips from right to left; asserts it flips exactly once."""
    signs = [np.sign(pan_of(f)) for f in frames if f.kind == "P"]
    assert 0 not in signs
    flips = [i for i in range(1, len(signs)) if signs[i] != signs[i - 1]]
    assert len(flips) == 1 and signs[0] > 0, signs
    first = next(i for i, f in enumerate(frames) if f.kind == "P" and pan_of(f) < 0)
    start = max(i for i in range(first) if frames[i].kind == "I")  # the second connection starts at an I-frame
    return frames[:start], frames[start:]


# -- servers --------------------------------------------------------------------------------------------


class TcpServer:
    """A TCP server on 127.0.0.1 (a port from the OS) that serves its i-th connection with
    ``handlers[i](socket, stop)``, each in its own thread. Once every handler has had its connection,
    it stops listening: later connections are refused. A context manager."""

    def __init__(self, handlers):
        self._handlers = list(handlers)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        for handler in self._handlers:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(handler, connection), daemon=True)
            self._threads.append(thread)
            thread.start()
        self._listener.close()

    def _serve(self, handler, connection):
        with connection:
            try:
                handler(connection, self.stop)
            except OSError:  # the reader hung up first
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)


def send(payload: bytes):
    """Handler: send ``payload``, then hang up (a server restart, a dropped connection)."""
    def handler(connection, stop):
        connection.sendall(payload)
    return handler


def send_then_stall(payload: bytes):
    """Handler: send ``payload``, then keep the connection open and silent (a stalled server)."""
    def handler(connection, stop):
        connection.sendall(payload)
        stop.wait(30)
    return handler


# -- policy --------------------------------------------------------------------------------------------


def test_reconnect_is_on_by_default_for_network_urls_only(tmp_path, clips):
    from edgekit.bitstream.source import reconnect_policy

    for url in ("rtsp://camera/stream", "rtp://0.0.0.0:5004", "udp://0.0.0.0:5000", "tcp://camera:9000",
                "http://camera/live.ts", "HTTPS://camera/live.ts"):
        assert reconnect_policy(None, url) == bs.Reconnect()
        assert reconnect_policy(False, url) is None and reconnect_policy(FAST, url) is FAST
    path = tmp_path / "right.ts"
    path.write_bytes(clips["right"])
    for source in (str(path), f"file://{path}", clips["right"], iter([clips["right"]])):
        assert reconnect_policy(None, source) is None
        with pytest.raises(ConfigError, match="reconnect needs a network URL"):
            reconnect_policy(True, source)
    with bs.open(path) as reader:
        assert reader.reconnect is None


@pytest.mark.parametrize("options, message", [
    ({"attempts": 0}, "attempts must be a whole number >= 1"),
    ({"attempts": 2.5}, "attempts must be a whole number >= 1"),
    ({"backoff_s": ()}, "backoff_s must be a non-empty sequence"),
    ({"backoff_s": (1, -1)}, "backoff_s must be a non-empty sequence"),
    ({"backoff_s": (float("nan"),)}, "backoff_s must be a non-empty sequence"),
    ({"max_total_s": 0}, "max_total_s must be finite seconds > 0"),
])
def test_bad_reconnect_policies_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        bs.Reconnect(**options)


def test_reconnect_policy_waits_back_off_and_repeat_the_last_one():
    policy = bs.Reconnect(attempts=None, backoff_s=[0.5, 1, 2], max_total_s=None)
    assert policy.backoff_s == (0.5, 1.0, 2.0)  # a list is kept as a tuple: the policy stays hashable
    assert [policy.wait_s(k) for k in range(5)] == [0.5, 1.0, 2.0, 2.0, 2.0]
    with pytest.raises(ConfigError, match="reconnect must be True, False, None"):
        bs.open("tcp://127.0.0.1:9", reconnect="yes")
    with pytest.raises(ConfigError, match="transport='tcp' is an RTSP option"):
        bs.open("tcp://127.0.0.1:9", transport="tcp")
    with pytest.raises(ConfigError, match="transport must be 'tcp', 'udp' or None"):
        bs.open("rtsp://127.0.0.1:9/x", transport="sctp")


# -- TCP MPEG-TS: disconnect, stall, size change ---------------------------------------------------------


def test_tcp_server_that_drops_the_connection_and_comes_back_is_reconnected(clips):
    right, left = clips["right"], clips["left"]
    with TcpServer([send(right[:len(right) // 2]), send(left)]) as server:
        frames, reader = read(server.url, reconnect=FAST)
    # after the second connection the server is gone (refused): the stream ends normally
    assert reader.stats.reconnects == 1 and reader.stats.reconnect_attempts == 1 + FAST.attempts
    first, second = halves(frames)
    assert len(first) >= GOP and len(second) == FRAMES  # the whole clip came through the new connection
    assert all(pan_of(f) == pytest.approx(2, abs=0.5) for f in first if f.kind == "P")
    assert all(pan_of(f) == pytest.approx(-2, abs=0.5) for f in second if f.kind == "P")
    assert second[0].gop_index == first[-1].gop_index + 1  # nothing predicted across the reconnection
    assert reader.stats.frames == len(frames) and reader.stats.stalls == 0


def test_decoded_picture_stream_marks_the_reconnection_once(clips):
    right, left = clips["right"], clips["left"]
    with TcpServer([send(right), send(left)]) as server:
        with bs.open(server.url, residual=False, rgb=None, timeout_s=TIMEOUT_S, reconnect=FAST) as reader:
            pictures = list(reader._frames())  # the decoder's output, before GOP bookkeeping
    marks = [i for i, p in enumerate(pictures) if p is RECONNECTED]
    assert marks == [FRAMES] and len(pictures) == 2 * FRAMES + 1  # every picture of the first connection first


def test_stalled_server_is_reconnected_and_reading_goes_on(clips):
    right, left = clips["right"], clips["left"]
    with TcpServer([send_then_stall(right[:len(right) // 2]), send(left)]) as server:
        t0 = time.monotonic()
        frames, reader = read(server.url, timeout_s=0.5, reconnect=FAST)
    assert reader.stats.stalls == 1 and reader.stats.reconnects == 1
    first, second = halves(frames)
    assert len(first) >= GOP and len(second) == FRAMES
    assert time.monotonic() - t0 < 5


def test_stall_that_outlasts_the_reconnect_policy_is_a_timeout_error(clips):
    right = clips["right"]
    with TcpServer([send_then_stall(right[:len(right) // 2]), send_then_stall(b""), send_then_stall(b"")]) as server:
        frames = []
        t0 = time.monotonic()
        with pytest.raises(SourceTimeoutError) as info:
            with bs.open(server.url, residual=False, rgb=None, timeout_s=0.5, reconnect=FAST) as reader:
                for frame in reader:
                    frames.append(frame)
        elapsed = time.monotonic() - t0
    message = str(info.value)
    assert "timed out: the source stalled, no data for 0.5 s" in message and "--timeout" in message
    assert "reconnecting did not bring it back (2 attempts" in message and "timed out" in message.split("the last:")[1]
    assert "Invalid data" not in message and "\n" not in message
    assert len(frames) >= GOP and reader.stats.stalls == 1 and reader.stats.reconnects == 0
    assert reader.stats.reconnect_attempts == 2
    assert elapsed < 0.5 + 2 * (0.05 + 0.5) + 2.0  # the stall, two attempts that time out, and slack


def test_stall_without_reconnecting_is_a_timeout_error_at_once(clips):
    right = clips["right"]
    with TcpServer([send_then_stall(right[:len(right) // 2])]) as server:
        t0 = time.monotonic()
        with pytest.raises(SourceTimeoutError, match="timed out: the source stalled"):
            read(server.url, timeout_s=0.5, reconnect=False)
    assert time.monotonic() - t0 < 2.0


def test_source_that_never_gave_a_picture_raises_the_last_attempts_error():
    with TcpServer([send(b"")]) as server:  # accepts, hangs up; then refuses
        with pytest.raises(SourceError, match="connection refused"):
            read(server.url, format="h264", reconnect=FAST)


def test_mid_stream_resolution_change_over_tcp_gives_frames_of_both_sizes(clips):
    with TcpServer([send(clips["size_change"])]) as server:
        frames, reader = read(server.url, reconnect=False)
    sizes = [(f.width, f.height) for f in frames]
    assert sizes == [(160, 120)] * 24 + [(128, 96)] * 24
    assert reader.stats.size_changes == 1 and reader.stats.damaged_frames == 0
    assert frames[24].kind == "I" and reader.info.width == 128


def test_server_that_comes_back_at_another_size_is_read_at_both(clips):
    with TcpServer([send(clips["right"]), send(clips["small"])]) as server:
        frames, reader = read(server.url, reconnect=FAST)
    assert [(f.width, f.height) for f in frames] == [(160, 120)] * FRAMES + [(128, 96)] * FRAMES
    assert reader.stats.reconnects == 1 and reader.stats.size_changes == 1
    assert all(pan_of(f) == pytest.approx(-2, abs=0.5) for f in frames[FRAMES:] if f.kind == "P")


def test_mpegts_is_never_read_as_a_raw_h264_stream(clips):
    """An MPEG-TS carries H.264 start codes inside its packets; from bytes or a pipe it used to be taken
    for a raw H.264 stream, and its packet headers damaged every picture."""
    expected, _ = read(clips["right"])
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_end, clips["right"]), os.close(write_end)))
    writer.start()
    with os.fdopen(read_end, "rb") as pipe:
        piped, reader = read(pipe)
    writer.join()
    assert len(expected) == len(piped) == FRAMES and reader.stats.damaged_frames == 0
    assert all(np.array_equal(a.mv, b.mv) for a, b in zip(expected, piped))


def test_damaged_mpegts_packets_are_counted_and_their_pictures_skipped(clips):
    data = clips["right"]
    packets = [data[i:i + 188] for i in range(0, len(data), 188)]
    del packets[len(packets) // 3:len(packets) // 3 + 3]  # lost on the way: a continuity error
    frames, reader = read(b"".join(packets))
    assert reader.stats.damaged_packets >= 1
    assert reader.stats.damaged_frames >= reader.stats.damaged_packets
    assert len(frames) + reader.stats.damaged_frames <= FRAMES and len(frames) >= FRAMES - 2 * GOP


@pytest.mark.skipif("libx265" not in av.codecs_available, reason="this FFmpeg has no libx265 encoder")
def test_transcoded_hevc_camera_is_reconnected_with_a_new_encoder(tmp_path):
    hevc_clip(tmp_path / "hevc.mp4", frames=24, size=(160, 120))  # the background pans 2 px/frame left
    out_buffer = io.BytesIO()
    with av.open(str(tmp_path / "hevc.mp4")) as src, av.open(out_buffer, "w", format="mpegts") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in (p for p in src.demux(video=0) if p.size):
            packet.stream = stream
            out.mux(packet)
    ts = out_buffer.getvalue()
    with TcpServer([send(ts), send(ts)]) as server:
        frames, reader = read(server.url, transcode="h264", reconnect=FAST)
    assert reader.info.source_codec == "hevc" and reader.stats.reconnects == 1
    # the re-encoder starts again with the new connection: its first picture is an I-frame
    assert len(frames) == 48 and frames[24].kind == "I" and frames[24].gop_index == frames[23].gop_index + 1
    assert all(pan_of(f) == pytest.approx(-2, abs=0.5) for f in frames if f.kind == "P")


# -- UDP and HTTP -------------------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def udp_bound(port: int) -> bool:
    """Whether a UDP socket is bound to ``port`` (Linux /proc/net/udp); True where that cannot be told."""
    try:
        with open("/proc/net/udp") as table:
            return any(line.split()[1].endswith(f":{port:04X}") for line in list(table)[1:])
    except OSError:
        return True


def test_mpegts_over_udp_is_read(clips):
    port = free_udp_port()
    stop = threading.Event()

    def sender():  # a camera sending MPEG-TS in 7-packet datagrams, once the reader listens
        deadline = time.monotonic() + 10
        while not udp_bound(port) and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.01)
        # a GOP more than is read: a demuxer hands out a picture once the next one begins, and a camera
        # never stops after the picture a reader waits for
        data = clips["right_longer"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for n, i in enumerate(range(0, len(data), 1316)):
                out.sendto(data[i:i + 1316], ("127.0.0.1", port))
                if n % 8 == 7:
                    time.sleep(0.002)  # paced: the receiver's socket buffer never overflows

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    frames = []
    try:
        with bs.open(f"udp://127.0.0.1:{port}", residual=False, rgb=None, timeout_s=TIMEOUT_S,
                     reconnect=False) as reader:
            for frame in reader:
                frames.append(frame)
                if len(frames) == FRAMES:
                    break
    finally:
        stop.set()
        thread.join(5)
    assert [f.kind for f in frames[:GOP + 1]] == ["I"] + ["P"] * (GOP - 1) + ["I"]
    assert all(pan_of(f) == pytest.approx(2, abs=0.5) for f in frames if f.kind == "P")
    assert reader.stats.damaged_packets == 0


@pytest.fixture
def http_server():
    """``start(handler_class)`` -> base URL of a threading HTTP server on 127.0.0.1."""
    servers = []

    def start(handler) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_http_progressive_file_is_read_to_its_end_and_not_replayed(tmp_path, clips, http_server):
    (tmp_path / "right.ts").write_bytes(clips["right"])
    base = http_server(functools.partial(_Quiet, directory=str(tmp_path)))
    with bs.open(f"{base}/right.ts", residual=False, rgb=None, timeout_s=TIMEOUT_S) as reader:
        assert reader.reconnect is None  # the server said its length: its end is the video's end
        frames = list(reader)
    assert len(frames) == FRAMES and reader.stats.reconnects == 0


def test_http_live_stream_that_drops_is_reconnected(clips, http_server):
    served = []

    class Live(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if len(served) == 2:  # the camera is gone for good
                self.send_error(503)
                return
            payload = clips["right"][:len(clips["right"]) // 2] if not served else clips["left"]
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()  # no length: a live stream
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    url = f"{http_server(Live)}/live.ts"
    with bs.open(url, timeout_s=TIMEOUT_S) as reader:
        assert reader.reconnect == bs.Reconnect()  # the default for a live stream over HTTP
    served.clear()
    frames, reader = read(url, reconnect=FAST)
    first, second = halves(frames)
    assert reader.stats.reconnects == 1 and len(second) == FRAMES and len(first) >= GOP


# -- RTSP: GStreamer's server ---------------------------------------------------------------------------

SYSTEM_PYTHON = "/usr/bin/python3"
GST_PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
             "missing = [e for e in ('filesrc', 'qtdemux', 'h264parse', 'rtph264pay') "
             "if Gst.ElementFactory.find(e) is None]; print(' '.join(missing))")


@functools.lru_cache(maxsize=1)
def gstreamer_missing() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", GST_PROBE], capture_output=True, text=True, timeout=60)
    if probe.returncode:
        return ("GStreamer's RTSP server is not installed (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 "
                f"gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad): "
                f"{probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else probe.returncode}")
    if probe.stdout.strip():
        return f"GStreamer elements missing: {probe.stdout.strip()} (apt-get install gstreamer1.0-plugins-good " \
               "gstreamer1.0-plugins-bad)"
    return None


class RtspServer:
    """tests/rtsp_server.py (GStreamer's gst-rtsp-server) serving ``path`` as rtsp://127.0.0.1:PORT/clip,
    in a subprocess: ``restart()`` kills it and starts it again on the same port."""

    def __init__(self, path):
        self.path, self.port, self.process = path, 0, None
        self.start()

    def start(self):
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(TESTS / "rtsp_server.py"), str(self.path), "--port",
                                         str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()  # printed once it listens
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError(f"the RTSP server did not start: {line!r} {self.process.stderr.read()[-500:]}")
        self.port = int(line)
        self.url = f"rtsp://127.0.0.1:{self.port}/clip"

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)
            self.process.stdout.close()
            self.process.stderr.close()

    def restart(self):
        self.stop()
        deadline = time.monotonic() + 10
        while True:  # the port may take a moment to be free again
            try:
                self.start()
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@pytest.fixture(scope="module")
def rtsp_clip(tmp_path_factory):
    reason = gstreamer_missing()
    if reason:
        pytest.skip(reason)
    path = tmp_path_factory.mktemp("rtsp") / "right.mp4"
    pan_clip(path, 2, frames=100, container="mp4")  # 4 s at 25 fps: long enough to restart the server in
    return path


@pytest.fixture
def rtsp_server(rtsp_clip):
    server = RtspServer(rtsp_clip)
    yield server
    server.stop()


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_stream_is_read_over_tcp_and_udp_transport(rtsp_server, transport):
    with bs.open(rtsp_server.url, residual=False, rgb=None, timeout_s=TIMEOUT_S, transport=transport) as reader:
        assert reader.reconnect == bs.Reconnect()  # on by default for RTSP
        frames = []
        for frame in reader:
            frames.append(frame)
            if len(frames) == 2 * GOP + 1:
                break
    assert [f.kind for f in frames] == (["I"] + ["P"] * (GOP - 1)) * 2 + ["I"]
    assert all(pan_of(f) == pytest.approx(2, abs=0.5) for f in frames if f.kind == "P")
    assert (reader.info.width, reader.info.height) == SIZE and reader.stats.damaged_frames == 0


def test_rtsp_transport_can_be_given_in_the_url(rtsp_server):
    with bs.open(rtsp_server.url + "?tcp", residual=False, rgb=None, timeout_s=TIMEOUT_S) as reader:
        first = next(iter(reader))
    assert first.kind == "I" and (first.width, first.height) == SIZE


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_server_restart_is_reconnected(rtsp_server, transport):
    frames = []
    policy = bs.Reconnect(attempts=20, backoff_s=(0.1,), max_total_s=30)
    with bs.open(rtsp_server.url, residual=True, timeout_s=TIMEOUT_S, transport=transport, reconnect=policy) as reader:
        for frame in reader:
            frames.append(frame)
            if len(frames) == GOP + 3:  # mid-GOP: the server process dies and comes back on its port
                rtsp_server.restart()
            if reader.stats.reconnects and frames[-1].kind == "P" and sum(f.kind == "I" for f in frames) >= 3:
                break
    assert reader.stats.reconnects == 1
    # the restarted server plays the file from its start: the timestamps go back once, right after the
    # new connection's first I-frame (whose RTP packet carries no timestamp FFmpeg passes on: the reader
    # gives it the next one at the nominal rate)
    back = [i for i in range(1, len(frames)) if frames[i].pts < frames[i - 1].pts]
    assert len(back) == 1 and back[0] > GOP + 3
    restart = frames[back[0] - 1]
    assert restart.kind == "I" and restart.gop_index == frames[back[0] - 2].gop_index + 1
    assert all(pan_of(f) == pytest.approx(2, abs=0.5) for f in frames if f.kind == "P")


def test_frozen_rtsp_server_is_a_stall_named_as_a_timeout(rtsp_server):
    """A camera that hangs (the server process stopped: connections accepted, nothing answered) is a
    stall, and so is every reconnection attempt: FFmpeg's RTSP client calls that "invalid data"."""
    frames = []
    with pytest.raises(SourceTimeoutError) as info:
        with bs.open(rtsp_server.url, residual=False, rgb=None, timeout_s=1, transport="tcp", reconnect=FAST) as reader:
            for frame in reader:
                frames.append(frame)
                if len(frames) == 5:
                    rtsp_server.process.send_signal(signal.SIGSTOP)
    rtsp_server.process.send_signal(signal.SIGCONT)
    message = str(info.value)
    assert message.count("timed out") == 2 and "while opening" in message  # the stall, then the last attempt
    assert "invalid data" not in message.lower() and "not a video" not in message
    assert reader.stats.stalls == 1 and reader.stats.reconnect_attempts == 2 and len(frames) >= 5


def test_rtsp_server_that_thaws_during_the_reconnection_attempts_is_read_on(rtsp_server):
    frames = []
    policy = bs.Reconnect(attempts=20, backoff_s=(0.1,), max_total_s=30)
    thaw = threading.Timer(2.0, rtsp_server.process.send_signal, args=(signal.SIGCONT,))
    try:
        with bs.open(rtsp_server.url, residual=False, rgb=None, timeout_s=1, transport="tcp",
                     reconnect=policy) as reader:
            for frame in reader:
                frames.append(frame)
                if len(frames) == 5:
                    rtsp_server.process.send_signal(signal.SIGSTOP)
                    thaw.start()
                if reader.stats.reconnects and sum(f.kind == "I" for f in frames) >= 4:
                    break
    finally:
        thaw.cancel()
        rtsp_server.process.send_signal(signal.SIGCONT)
    assert reader.stats.stalls == 1 and reader.stats.reconnects == 1
    assert all(pan_of(f) == pytest.approx(2, abs=0.5) for f in frames if f.kind == "P")


# -- the command line on live input ---------------------------------------------------------------------


def edgekit_process(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "edgekit.cli", *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


@pytest.fixture(scope="module")
def long_ts(tmp_path_factory):
    """96 frames (two windows of the default model and a stride) of a square moving right, MPEG-TS."""
    path = tmp_path_factory.mktemp("cli_live") / "right.ts"
    moving_square_clip(path, "h264", size=(340, 256), frames=96, motion=(4, 0), container="mpegts")
    return path.read_bytes()


def test_recognize_stream_json_prints_each_window_while_the_pipe_is_still_open(long_ts):
    child = edgekit_process("recognize", "-", "--stream", "--json", "--timeout", "20")
    try:
        child.stdin.write(long_ts[:len(long_ts) * 3 // 4])  # more than one window's frames
        child.stdin.flush()
        lines = []
        reader = threading.Thread(target=lambda: lines.append(child.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)  # the first window's line comes while the writer still holds the pipe open
        assert lines and lines[0], child.stderr.read1(4096) if not reader.is_alive() else "no line within 30 s"
        first = json.loads(lines[0])
        assert first["start_s"] == 0.0 and first["end_s"] > 1.0 and first["label"]
        child.stdin.write(long_ts[len(long_ts) * 3 // 4:])
        child.stdin.close()
        rest, err = child.stdout.read().decode(), child.stderr.read().decode()  # until the child exits
        child.wait(60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    windows = [first] + [json.loads(line) for line in rest.splitlines()]
    assert len(windows) >= 3 and all(w["end_s"] > w["start_s"] for w in windows)


def test_recognize_times_out_on_a_silent_stdin():
    child = edgekit_process("recognize", "-", "--timeout", "1")
    try:
        t0 = time.monotonic()
        child.wait(timeout=60)  # its stdin stays open and silent until it gives up
        elapsed = time.monotonic() - t0
        err = child.stderr.read().decode()
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
    assert child.returncode == 2 and err.count("\n") == 1, err
    assert "standard input: timed out" in err and "no data for 1 s" in err
    assert elapsed < 30


def test_recognize_refuses_reconnect_options_that_cannot_apply(tmp_path, clips):
    path = tmp_path / "right.ts"
    path.write_bytes(clips["right"])
    for args, fragment in ((["--reconnect-attempts", "3"], "reconnect needs a network URL"),
                           (["--no-reconnect", "--reconnect-attempts", "3"], "contradict each other"),
                           (["--reconnect-attempts", "0"], "--reconnect-attempts must be a whole number >= 1")):
        r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", str(path), *args], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith("edgekit: error:") and fragment in r.stderr, r.stderr


def test_recognize_reconnects_a_tcp_camera_that_restarts(clips, long_ts):
    with TcpServer([send(long_ts[:len(long_ts) // 2]), send(long_ts)]) as server:
        r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", server.url, "--stream", "--json",
                            "--reconnect-attempts", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    windows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(windows) >= 3  # windows of both connections (none spans the reconnection)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", f"tcp://127.0.0.1:{port}",
                        "--no-reconnect"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "connection refused" in r.stderr


@pytest.mark.skipif("libx265" not in av.codecs_available, reason="this FFmpeg has no libx265 encoder")
def test_recognize_transcodes_hevc_from_the_command_line(tmp_path):
    path = tmp_path / "hevc.mp4"
    hevc_clip(path, frames=60, size=(320, 240))  # the background pans left
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", "--transcode", "h264", str(path), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["frames"] == 60 and result["windows"]
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--transcode h264" in r.stderr



def test_rtsp_frames_carry_their_capture_time_once_the_server_reports_it(rtsp_server):
    """RTSP says when a frame was captured (the server's RTCP sender reports, FFmpeg's
    start_time_realtime): frames read after the first report carry it, consistent with their pts and
    with when they arrived; a file carries none."""
    with bs.open(rtsp_server.url, residual=False, rgb=None, timeout_s=TIMEOUT_S, transport="tcp",
                 reconnect=False) as reader:
        seen = [(f, time.time() - (time.monotonic() - f.arrival)) for f in reader]  # the 4 s clip, paced
    timed = [(f, at) for f, at in seen if f.wallclock is not None]
    assert timed, "no RTCP sender report in 4 s of stream"
    assert len(seen) == 100 and seen[-1][0].wallclock is not None
    first = timed[0][0]
    for f, at in timed:
        assert f.wallclock - first.wallclock == pytest.approx(f.pts - first.pts, abs=1e-3)  # the pts clock
        assert abs(f.wallclock - at) < 2.0  # captured (served) shortly before it arrived here
    with bs.open(rtsp_server.path, residual=False, rgb=None) as reader:
        assert all(f.wallclock is None for f in reader)
