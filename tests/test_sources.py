"""Sources and their one timeout model, on real sources: encoded H.264 chunks, OS pipes, a FIFO, a
child process that never writes, local TCP and HTTP servers that go silent. Every timeout must fire
within its set time + 1 s with a SourceTimeoutError that says so, and no thread may outlive a closed
reader."""

from __future__ import annotations

import http.server
import math
import os
import socketserver
import subprocess
import sys
import threading
import time

import pytest

import edgekit.bitstream as bs
from edgekit.bitstream.source import container_kind
from edgekit.errors import ConfigError, DecodeError, EmptySourceError, SourceError, SourceTimeoutError
from media import moving_square_clip

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def h264(tmp_path_factory):
    """A raw H.264 Annex-B stream of 24 frames (as a camera encoder emits it) and its bytes."""
    path = tmp_path_factory.mktemp("sources") / "raw.h264"
    moving_square_clip(path, "h264", frames=24, motion=(2, 1), container="h264")
    return path.read_bytes()


def read_all(source, timeout_s=TIMEOUT_S, **kwargs):
    """Frames read from ``source`` (MV only), and the seconds it took."""
    t0 = time.monotonic()
    with bs.open(source, residual=False, rgb=None, timeout_s=timeout_s, **kwargs) as reader:
        frames = list(reader)
    return frames, time.monotonic() - t0


def times_out(source, timeout_s=TIMEOUT_S, **kwargs) -> tuple[str, float]:
    """Read ``source`` until it times out: (message, seconds until the error)."""
    t0 = time.monotonic()
    with pytest.raises(SourceTimeoutError) as info:
        read_all(source, timeout_s, **kwargs)
    return str(info.value), time.monotonic() - t0


def assert_fired_in_time(message, elapsed, timeout_s=TIMEOUT_S, when=None):
    assert timeout_s - 0.05 <= elapsed <= timeout_s + 1.0, elapsed
    assert "timed out" in message and f"no data for {timeout_s:g} s" in message and "--timeout" in message
    assert "\n" not in message
    if when:
        assert when in message


def reader_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "edgekit-source-reader"}


def wait_threads_gone(before: set, within_s: float) -> set:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        left = reader_threads() - before
        if not left:
            return left
        time.sleep(0.02)
    return reader_threads() - before


# -- iterables of encoded chunks ------------------------------------------------------------------------


def test_chunks_read_every_frame_and_leave_no_thread(h264):
    before = set(threading.enumerate())
    frames, _ = read_all(h264[i:i + 1500] for i in range(0, len(h264), 1500))
    assert len(frames) == 24 and frames[0].kind == "I"
    assert set(threading.enumerate()) - before == set()


def test_chunk_source_stalling_before_its_first_chunk_times_out(h264):
    def late():
        time.sleep(2.5)  # longer than the timeout
        yield h264

    before = reader_threads()
    message, elapsed = times_out(late())
    assert_fired_in_time(message, elapsed, when="before its first byte")
    # the reader thread is inside the generator's sleep: it ends as soon as that returns
    assert wait_threads_gone(before, within_s=3.0) == set()


def test_chunk_source_stalling_mid_stream_times_out_after_the_frames_so_far(h264):
    def stalls():
        yield h264[:len(h264) // 2]
        time.sleep(2.5)
        yield h264[len(h264) // 2:]

    before = reader_threads()
    message, elapsed = times_out(stalls())
    assert_fired_in_time(message, elapsed, when=f"after {len(h264) // 2} bytes")
    assert "stalled" in message
    assert wait_threads_gone(before, within_s=3.0) == set()


@pytest.mark.parametrize("data_first", [False, True])
def test_empty_chunks_forever_time_out_and_the_thread_stops_at_once(h264, data_first):
    def empty_forever():
        if data_first:
            yield h264[:len(h264) // 2]
        while True:
            yield b""

    before = reader_threads()
    message, elapsed = times_out(empty_forever())
    assert_fired_in_time(message, elapsed)
    assert wait_threads_gone(before, within_s=0.3) == set()  # not blocked: stops as soon as told


def test_closing_a_reader_early_stops_its_thread_and_closes_the_iterator(h264):
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield h264
        finally:
            closed.set()

    before = reader_threads()
    with bs.open(endless(), residual=False, rgb=None, timeout_s=TIMEOUT_S) as reader:
        first = next(iter(reader))
    assert first.kind == "I"
    assert wait_threads_gone(before, within_s=0.5) == set()
    assert closed.wait(0.5)  # the generator's finally ran: its resources are released


def test_a_failing_iterator_and_non_bytes_chunks_raise_source_errors(h264):
    def fails():
        yield h264[:2000]
        raise RuntimeError("camera unplugged")

    with pytest.raises(SourceError, match="camera unplugged"):
        read_all(fails())
    with pytest.raises(SourceError, match="chunks must be bytes, got str"):
        read_all(iter(["not", "bytes"]))
    with pytest.raises(EmptySourceError):
        read_all(iter([b"", b""]))


# -- pipes, FIFOs, child processes ----------------------------------------------------------------------


def test_silent_os_pipe_times_out_without_any_thread():
    read_end, write_end = os.pipe()
    before = set(threading.enumerate())
    try:
        with os.fdopen(read_end, "rb") as pipe:
            message, elapsed = times_out(pipe)
        assert_fired_in_time(message, elapsed, when="before its first byte")
        assert "<pipe fd" in message
        assert set(threading.enumerate()) - before == set()
    finally:
        os.close(write_end)


def test_os_pipe_with_a_real_stream_reads_every_frame(h264):
    read_end, write_end = os.pipe()

    def write():
        with os.fdopen(write_end, "wb") as w:
            for i in range(0, len(h264), 4096):
                w.write(h264[i:i + 4096])
                w.flush()

    writer = threading.Thread(target=write)
    writer.start()
    with os.fdopen(read_end, "rb") as pipe:
        frames, _ = read_all(pipe)
    writer.join()
    assert len(frames) == 24


def test_child_process_that_never_writes_times_out():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], stdout=subprocess.PIPE)
    try:
        message, elapsed = times_out(child.stdout)
        assert_fired_in_time(message, elapsed)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "camera.fifo"
    os.mkfifo(path)
    return path


def _write_fifo(path, payload: bytes, hold_s: float) -> threading.Thread:
    def write():
        fd = os.open(path, os.O_WRONLY)  # waits for the reader
        try:
            os.write(fd, payload)
            time.sleep(hold_s)  # keep the FIFO open and silent
        finally:
            os.close(fd)

    writer = threading.Thread(target=write)
    writer.start()
    return writer


def test_fifo_without_a_writer_times_out(fifo):
    message, elapsed = times_out(fifo)
    assert_fired_in_time(message, elapsed, when="before its first byte")
    assert f"FIFO {fifo}" in message


def test_fifo_that_stalls_mid_stream_times_out(fifo, h264):
    writer = _write_fifo(fifo, h264[:len(h264) // 2], hold_s=2.5)
    message, elapsed = times_out(fifo)
    assert_fired_in_time(message, elapsed, when="after")
    writer.join()


def test_fifo_with_a_whole_stream_reads_as_a_live_source(fifo, h264):
    writer = _write_fifo(fifo, h264, hold_s=0)
    frames, _ = read_all(fifo)
    writer.join()
    assert len(frames) == 24


# -- network: FFmpeg's own socket timeouts ------------------------------------------------------------


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def tcp_server():
    """``start(payload)`` -> port of a server on 127.0.0.1 that accepts, sends ``payload`` and then
    goes silent (keeps the connection open) for 3 s."""
    servers = []

    def start(payload: bytes) -> int:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                self.request.sendall(payload)
                time.sleep(3)

        server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_tcp_server_that_accepts_and_goes_silent_times_out_while_opening(tcp_server):
    url = f"tcp://127.0.0.1:{tcp_server(b'')}"
    message, elapsed = times_out(url)  # the first open is never retried, even with reconnect on
    assert_fired_in_time(message, elapsed, when="while opening")
    assert url in message


def test_tcp_server_that_stalls_mid_stream_times_out_after_its_packets(tcp_server, h264):
    url = f"tcp://127.0.0.1:{tcp_server(h264[:len(h264) // 2])}"
    message, elapsed = times_out(url, timeout_s=1.5, reconnect=False)  # tests/test_live.py: with reconnecting
    assert_fired_in_time(message, elapsed, timeout_s=1.5, when="packets")


def test_tcp_stream_with_a_known_format_times_out_before_its_first_packet(tcp_server):
    message, elapsed = times_out(f"tcp://127.0.0.1:{tcp_server(b'')}", format="h264", reconnect=False)
    assert_fired_in_time(message, elapsed)


def test_http_server_that_stalls_mid_stream_times_out(h264):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "video/h264")
            self.end_headers()
            self.wfile.write(h264[:len(h264) // 2])
            self.wfile.flush()
            time.sleep(3)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        message, elapsed = times_out(f"http://127.0.0.1:{server.server_address[1]}/live.h264", reconnect=False)
        assert_fired_in_time(message, elapsed, when="packets")
    finally:
        server.shutdown()
        server.server_close()


def test_refused_connection_says_so():
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as probe:
        port = probe.server_address[1]  # closed once the block ends: nothing listens there
    with pytest.raises(SourceError, match="connection refused"):
        read_all(f"tcp://127.0.0.1:{port}")


# -- timeouts refused, and files that are not videos ----------------------------------------------------


@pytest.mark.parametrize("timeout_s", [0, -1, -0.5, math.nan, math.inf, "2", True])
def test_invalid_timeouts_are_refused(h264, timeout_s):
    with pytest.raises(ConfigError, match="timeout must be a finite number of seconds > 0"):
        bs.open(h264, timeout_s=timeout_s)


def test_no_timeout_is_none(h264):
    frames, _ = read_all(h264, timeout_s=None)
    assert len(frames) == 24


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_device_files_are_named_as_devices_not_empty_files(device):
    with pytest.raises(SourceError, match="is a character device, not a video file") as info:
        bs.open(device)
    assert "empty" not in str(info.value)


def test_truncated_mp4_says_truncated_without_an_errno(tmp_path):
    path = tmp_path / "cut.mp4"
    moving_square_clip(path, "h264", frames=24)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # the 'moov' index is written last: gone
    with pytest.raises(DecodeError) as info:
        bs.open(path)
    message = str(info.value)
    assert "truncated or damaged MP4/MOV file" in message and "no 'moov' index" in message
    assert "Errno" not in message and "1094995529" not in message


def test_text_and_random_bytes_are_not_video_containers(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 40)
    with pytest.raises(SourceError, match="not a video container \\(it is text\\)"):
        bs.open(text)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(bytes(range(7, 256)) * 200)
    with pytest.raises(SourceError, match="not a video container FFmpeg recognizes") as info:
        bs.open(noise)
    assert "Errno" not in str(info.value)


def test_container_kind_names_files_by_their_first_bytes(h264):
    assert container_kind(b"\x00\x00\x00\x20ftypisom") == "MP4/MOV"
    assert container_kind(b"\x1a\x45\xdf\xa3\x01") == "Matroska/WebM"
    assert container_kind(h264[:4096]) == "raw H264 stream"
    assert container_kind(b"hello world") is None
