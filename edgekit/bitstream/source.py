"""Opening a video source of any kind as a PyAV container, with typed errors and one timeout model.

A source is a path, a URL FFmpeg can open (rtsp://, http(s)://, tcp://, udp://, file://), ``bytes``,
a binary file-like object (a file, standard input, a pipe, a socket), or an iterable of encoded
chunks (a raw H.264 Annex-B or MPEG-4 Part 2 elementary stream, as a camera encoder emits it). A
path to a FIFO is read as a live stream; a device file (``/dev/zero``) is refused.

**Timeouts.** ``timeout_s`` is the longest the reader waits for data each time it needs some: for the
first byte (while opening), between chunks, and when a server goes silent mid-stream. Only bytes
count: empty chunks do not restart the wait. When it runs out, :class:`SourceTimeoutError` says what
stalled, for how long, and what to do. ``None`` waits forever; 0, negative, nan, inf and non-numbers
raise :class:`ConfigError`. How each kind of source is held to it:

- URLs: FFmpeg's own socket timeouts (``rw_timeout``, and ``timeout`` for rtsp, http(s), tcp and
  udp), plus PyAV's interrupt callback on every packet read (and on opening other protocols).
- pipes, FIFOs, sockets, standard input (a file descriptor that is not a regular file): read in the
  calling thread with ``poll`` and ``os.read``. No thread.
- iterables, and file-like objects that have no descriptor and cannot seek: one reader thread moves
  chunks into a bounded queue and the decoder waits on the queue. Closing the reader stops the thread,
  joins it, and the thread closes the iterator (``close()``) on its way out. A thread blocked inside
  the iterator's own ``next()`` (a generator sleeping) cannot be interrupted by Python: it ends as
  soon as that call returns, and never calls the iterator again.
- paths to regular files, bytes, seekable file objects: local data, nothing to wait for.

**Reconnecting** (:class:`Reconnect`). A network source (an rtsp, rtp, udp, tcp, http(s), rtmp or srt
URL) is reopened when it ends, breaks or stalls after it was opened: a camera or server that
restarts, a connection reset, a stall of ``timeout_s``. The reader waits ``backoff_s[k]`` before
attempt ``k`` and goes on decoding with the same decoder settings. Defaults (``reconnect=None``):
on for network URLs, except an http(s) resource of known length (a file served over HTTP: its end is
its end); off for files, bytes, pipes and iterables, which cannot be reopened. The first open is
never retried: a wrong URL fails at once. When an outage outlasts the policy, a stream that ended or
broke ends normally if it gave pictures (and raises the last attempt's error if it gave none); a
stream that stalled raises :class:`SourceTimeoutError`, named as a timeout.

**Opening a network source** analyses at most 0.5 s of it before the first packet is handed out
(FFmpeg's default is 5 s, all of it latency for a live stream), and an RTSP source none (its SDP
describes it); what was read meanwhile is kept, so a stream still starts at its first I-frame.

**RTSP transport**: ``transport="tcp"`` (RTP interleaved in the RTSP connection: through NATs and
firewalls) or ``"udp"``; None is FFmpeg's default (UDP, then TCP). FFmpeg also reads it from the URL:
``rtsp://camera/stream?tcp``.
"""

from __future__ import annotations

import abc
import errno
import io
import math
import numbers
import os
import queue
import select
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av

from edgekit.errors import (ConfigError, DecodeError, EmptySourceError, SourceError, SourceTimeoutError,
                            os_error_message)

_END = object()
_READ_BYTES = 1 << 16       # bytes asked of a descriptor or file object per read
_HEAD_BYTES = 4096          # bytes looked at to name a raw elementary stream
_JOIN_S = 0.25              # how long close() waits for the reader thread to end
_LIVE_ANALYZE_US = "500000"  # stream analysed at most when a network source opens (microseconds)
# FFmpeg protocols that take a socket I/O timeout in microseconds as "timeout" (rtmp's "timeout" is
# a listen timeout in seconds: not set there)
_SOCKET_TIMEOUT_PROTOCOLS = {"rtsp", "rtsps", "http", "https", "tcp", "udp"}
# URL schemes of network sources: reopened by default when they end, break or stall (see Reconnect)
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "rtp", "srtp", "udp", "tcp", "http", "https", "rtmp", "rtmps", "srt"})
RTSP_TRANSPORTS = ("tcp", "udp")


def check_timeout(timeout_s) -> float | None:
    """``timeout_s`` as a float of seconds > 0, or None (no timeout). Raises ConfigError otherwise."""
    if timeout_s is None:
        return None
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, numbers.Real) or not math.isfinite(timeout_s) \
            or timeout_s <= 0:
        raise ConfigError(f"timeout must be a finite number of seconds > 0 (or None to wait forever), "
                          f"got {timeout_s!r}")
    return float(timeout_s)


def timeout_error(what: str, timeout_s: float | None, when: str) -> SourceTimeoutError:
    """The one message of a timeout: what stalled, for how long, when, and what to do."""
    how_long = f"no data for {timeout_s:g} s" if timeout_s else "no data within the network's own timeout"
    return SourceTimeoutError(f"{what}: timed out: the source stalled, {how_long} {when}; "
                              "raise the timeout (--timeout, timeout_s=) if the source is slow, or check that "
                              "it is running and sending")


# -- reconnecting network sources ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reconnect:
    """How a network source is reopened after it ends, breaks or stalls.

    attempts     reopening attempts per outage, >= 1, or None for no limit. An outage lasts until a
                 reopened source delivers a packet: a server that accepts and hangs up at once uses
                 up attempts, it does not reset them.
    backoff_s    seconds to wait before attempt 1, 2, ... (each >= 0; the last one repeats)
    max_total_s  seconds an outage may last, waits and attempts included, or None for no limit

    ``Reconnect()``: 10 attempts over about a minute, waits of 0.5, 1, 2, 4, then 8 s, at most 120 s
    (a camera that reboots is back within that). Raises ConfigError for a bad value.
    """

    attempts: int | None = 10
    backoff_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    max_total_s: float | None = 120.0

    def __post_init__(self):
        attempts = self.attempts
        if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, numbers.Integral)
                                     or attempts < 1):
            raise ConfigError(f"Reconnect attempts must be a whole number >= 1 (or None for no limit), "
                              f"got {attempts!r}")
        backoff = self.backoff_s
        if isinstance(backoff, numbers.Real) and not isinstance(backoff, bool):
            backoff = (backoff,)
        try:
            backoff = tuple(backoff)
        except TypeError:
            backoff = None
        if not backoff or not all(_is_seconds(b, zero_ok=True) for b in backoff):
            raise ConfigError(f"Reconnect backoff_s must be a non-empty sequence of finite seconds >= 0, "
                              f"got {self.backoff_s!r}")
        if self.max_total_s is not None and not _is_seconds(self.max_total_s, zero_ok=False):
            raise ConfigError(f"Reconnect max_total_s must be finite seconds > 0 (or None for no limit), "
                              f"got {self.max_total_s!r}")
        object.__setattr__(self, "attempts", None if attempts is None else int(attempts))
        object.__setattr__(self, "backoff_s", tuple(float(b) for b in backoff))
        if self.max_total_s is not None:
            object.__setattr__(self, "max_total_s", float(self.max_total_s))

    def wait_s(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (0-based) of an outage."""
        return self.backoff_s[min(attempt, len(self.backoff_s) - 1)]


def _is_seconds(value, *, zero_ok: bool) -> bool:
    return (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
            and (value >= 0 if zero_ok else value > 0))


def url_scheme(source) -> str | None:
    """The lower-case scheme of a URL source (``"rtsp"``), or None for anything else."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, str) and _is_url(text):
            return text.split("://", 1)[0].lower()
    return None


def is_network_url(source) -> bool:
    """Whether ``source`` is a URL of a network protocol (rtsp, rtp, udp, tcp, http(s), rtmp, srt)."""
    return url_scheme(source) in NETWORK_SCHEMES


def reconnect_policy(reconnect, source) -> Reconnect | None:
    """The :class:`Reconnect` policy for ``source``, or None (never reopened).

    ``reconnect``: None (the source kind's default: ``Reconnect()`` for network URLs, else off),
    True (``Reconnect()``), False, or a ``Reconnect``. ConfigError for anything else, and for asking
    to reconnect a source that cannot be reopened (a file, bytes, a pipe, an iterable)."""
    if reconnect is None:
        return Reconnect() if is_network_url(source) else None
    if reconnect is False:
        return None
    if reconnect is not True and not isinstance(reconnect, Reconnect):
        raise ConfigError(f"reconnect must be True, False, None (the source's default) or an "
                          f"edgekit.bitstream.Reconnect, got {reconnect!r}")
    if not is_network_url(source):
        raise ConfigError("reconnect needs a network URL (rtsp, rtp, udp, tcp, http(s), rtmp, srt): a file, bytes, a "
                          "pipe or an iterable cannot be reopened; leave reconnect out (None; no --reconnect-attempts)")
    return Reconnect() if reconnect is True else reconnect


def is_finite_resource(source, container) -> bool:
    """Whether an opened http(s) ``source`` is a file of known length (the server said its size, or the
    container its duration): its end is the end of the video, not a broken connection."""
    if url_scheme(source) not in ("http", "https"):
        return False
    try:
        size = container.size
    except Exception:
        size = None
    return bool((size is not None and size > 0) or container.duration)


def check_transport(transport, source) -> str | None:
    """``transport`` ("tcp", "udp" or None) checked against ``source``: ConfigError unless an rtsp URL."""
    if transport is None:
        return None
    if transport not in RTSP_TRANSPORTS:
        raise ConfigError(f"transport must be 'tcp', 'udp' or None (FFmpeg's default), got {transport!r}")
    if url_scheme(source) not in ("rtsp", "rtsps"):
        raise ConfigError(f"transport={transport!r} is an RTSP option; the source is not an rtsp:// URL")
    return transport


# -- live inputs: a non-seekable binary file whose every read waits at most timeout_s ----------------


class LiveInput(io.RawIOBase):
    """A non-seekable binary file over a live source; each read waits at most ``timeout_s`` for bytes.

    Subclasses implement ``_receive(wait_s)``: the next bytes, ``b""`` at the end of the source, or
    None when nothing came within ``wait_s`` seconds (None: wait as long as it takes).
    """

    def __init__(self, description: str, timeout_s: float | None):
        if type(self).__abstractmethods__:  # io's C base does not enforce abstract methods itself
            raise TypeError(f"{type(self).__name__} must implement {sorted(type(self).__abstractmethods__)}")
        super().__init__()
        self.description = description
        self.timeout_s = timeout_s
        self.bytes_read = 0          # bytes handed to FFmpeg so far
        self._buffer = bytearray()
        self._ended = False
        self._failure: SourceError | None = None  # a timeout is final: FFmpeg may ask again

    def readable(self) -> bool:
        return True

    @abc.abstractmethod
    def _receive(self, wait_s: float | None) -> bytes | None:
        """The next bytes, ``b""`` at the end of the source, or None when nothing came in ``wait_s``."""

    def _wait_for_data(self) -> None:
        if self._failure is not None:
            raise self._failure
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        try:
            while not self._buffer and not self._ended:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    when = (f"after {self.bytes_read} bytes" if self.bytes_read or self._buffer
                            else "before its first byte")
                    raise timeout_error(self.description, self.timeout_s, when)
                data = self._receive(remaining)
                if data == b"":
                    self._ended = True
                elif data:
                    self._buffer += data
        except SourceError as err:
            self._failure = err
            raise

    def head(self, size: int = _HEAD_BYTES) -> bytes:
        """The first bytes of the source (up to ``size``, what has arrived), left to be read.
        Waits at most ``timeout_s`` for the first one; ``b""`` if the source ends without any."""
        self._wait_for_data()
        while len(self._buffer) < size and not self._ended:
            data = self._receive(0)  # only what is there already
            if not data:
                self._ended = data == b""
                break
            self._buffer += data
        return bytes(self._buffer[:size])

    def readinto(self, b) -> int:
        self._wait_for_data()
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        del self._buffer[:n]
        self.bytes_read += n
        return n


def _wait_readable(fd: int, wait_s: float | None) -> bool:
    if hasattr(select, "poll"):  # no FD_SETSIZE limit
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(None if wait_s is None else max(wait_s, 0.0) * 1000))
    return bool(select.select([fd], [], [], wait_s)[0])


class DescriptorInput(LiveInput):
    """A pipe, FIFO or socket read with ``poll`` + ``os.read`` in the caller's thread: no thread to stop.

    ``owned``: the descriptor was opened here and is closed with the input; else it stays open.
    """

    def __init__(self, fd: int, description: str, timeout_s: float | None, *, owned: bool = False):
        super().__init__(description, timeout_s)
        self._fd, self._owned = fd, owned

    def _receive(self, wait_s: float | None) -> bytes | None:
        try:
            if not _wait_readable(self._fd, wait_s):
                return None
            return os.read(self._fd, _READ_BYTES)
        except (BlockingIOError, InterruptedError):  # a non-blocking FIFO with nothing yet
            return None
        except OSError as err:
            raise SourceError(f"{self.description}: cannot read: {os_error_message(err, with_filename=False)}") \
                from None

    def close(self) -> None:
        if not self.closed and self._owned:
            os.close(self._fd)
        super().close()


class ChunkReader(LiveInput):
    """An iterable of ``bytes`` chunks, pulled by one reader thread into a queue of ``max_chunks``.

    Empty chunks are dropped (they do not restart the wait). ``close()`` stops and joins the thread.
    """

    def __init__(self, chunks: Iterable[bytes], description: str = "<chunk stream>",
                 timeout_s: float | None = 10.0, max_chunks: int = 64):
        super().__init__(description, timeout_s)
        self._queue: queue.Queue = queue.Queue(maxsize=max_chunks)
        self._stop = threading.Event()
        # daemon only so that an iterator stuck in its own next() cannot hang interpreter exit;
        # close() joins the thread, nothing relies on it being a daemon
        self._thread = threading.Thread(target=_pump, args=(iter(chunks), self._queue, self._stop),
                                        name="edgekit-source-reader", daemon=True)
        self._thread.start()

    def _receive(self, wait_s: float | None) -> bytes | None:
        try:
            item = self._queue.get(timeout=wait_s) if wait_s is None or wait_s > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _END:
            return b""
        if isinstance(item, SourceError):
            raise item
        if isinstance(item, BaseException):
            raise SourceError(f"{self.description}: the chunk iterator raised {item!r}") from item
        return item

    def close(self) -> None:
        self._stop.set()
        while True:  # make room, so a reader thread waiting to put returns at once
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_S)
        super().close()


def _pump(chunks: Iterator, out: queue.Queue, stop: threading.Event) -> None:
    """Reader thread: move non-empty chunks into ``out`` until the iterator ends, fails, or ``stop``."""
    last: object = _END
    empty_run = 0
    try:
        for chunk in chunks:
            if stop.is_set():
                break
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                last = SourceError(f"chunks must be bytes, got {type(chunk).__name__}")
                break
            if not chunk:
                empty_run += 1
                if empty_run > 64:  # a producer of nothing but empty chunks: do not spin a core
                    stop.wait(0.01)
                continue
            empty_run = 0
            if not _put(out, bytes(chunk), stop):
                break
    except BaseException as err:  # handed to the decoding thread
        last = err
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
    _put(out, last, stop)


def _put(out: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            out.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _file_chunks(file) -> Iterator[bytes]:
    """Chunks read from a file object; ``b""`` while a non-blocking one has nothing (read gives None)."""
    while True:
        data = file.read(_READ_BYTES)
        if data is None:
            yield b""
            continue
        if not data:
            return
        yield data


# -- the container --------------------------------------------------------------------------------------


class SourceContainer:
    """A PyAV input container with the live input feeding it (if any): ``close()`` closes both, and
    ``demux()`` turns FFmpeg's timeouts (``ExitError`` from PyAV's interrupt, ``ETIMEDOUT``) into
    :class:`SourceTimeoutError`. Everything else is the PyAV container's."""

    def __init__(self, container, description: str, timeout_s: float | None, live: LiveInput | None = None,
                 network: bool = False):
        self._container, self._live, self._network = container, live, network
        self._description, self._timeout_s = description, timeout_s

    def __getattr__(self, name):
        return getattr(self._container, name)

    def demux(self, *args, **kwargs) -> Iterator:
        packets = self._container.demux(*args, **kwargs)
        count = 0
        while True:
            started = time.monotonic()
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as err:
                if _is_timeout(err, time.monotonic() - started, self._timeout_s, self._network):
                    when = f"after {count} packets" if count else "before the first packet"
                    raise timeout_error(self._description, self._timeout_s, when) from None
                raise
            count += 1
            silent_for_s = time.monotonic() - started
            yield packet
            if self._network and self._timeout_s is not None and silent_for_s >= self._timeout_s:
                # FFmpeg's timeout ran out and its parser handed out the picture it held: the source
                # has been silent that long already, do not wait a second time to say so
                raise timeout_error(self._description, self._timeout_s, f"after {count} packets")

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            if self._live is not None:
                self._live.close()

    def __enter__(self) -> "SourceContainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_timeout(err: BaseException, waited_s: float, timeout_s: float | None, network: bool = False) -> bool:
    """Whether FFmpeg's ``err`` is a timeout: PyAV's interrupt (ExitError), ETIMEDOUT, or the EIO that
    FFmpeg's generic ``rw_timeout`` gives (udp, and any protocol that retries) once it has run out; from
    a ``network`` URL also the "invalid data" of FFmpeg's RTSP client once it has waited that long (a
    server that accepted the connection and never answered)."""
    if isinstance(err, (av.error.ExitError, av.error.TimeoutError)):
        return True
    if timeout_s is None or waited_s < 0.9 * timeout_s:
        return False
    return ((isinstance(err, OSError) and err.errno == errno.EIO)
            or (network and isinstance(err, av.error.InvalidDataError)))


# -- opening --------------------------------------------------------------------------------------------


def detect_elementary_stream(head: bytes) -> str | None:
    """Name the FFmpeg demuxer of a raw elementary stream from its first bytes, or None.

    Looks at the start codes (00 00 01 xx): MPEG-4 Part 2 has visual-object-sequence / VOL / VOP
    codes (B0, B5, 20-2F, B6); H.264 Annex-B has SPS/PPS/AUD/SEI NAL units; HEVC a VPS (type 32).
    """
    codes = []
    i = head.find(b"\x00\x00\x01")
    while 0 <= i < len(head) - 4 and len(codes) < 16:
        codes.append((head[i + 3], head[i + 4]))
        i = head.find(b"\x00\x00\x01", i + 3)
    if not codes:
        return None
    first = {c for c, _ in codes}
    if first & {0xB0, 0xB5, 0xB6, 0xB3}:
        return "m4v"
    if any((c >> 1) & 0x3F == 32 and n == 0x01 and c & 0x81 == 0 for c, n in codes):
        return "hevc"
    h264_types = {c & 0x1F for c in first if c & 0x80 == 0}
    if {7, 8} <= h264_types or 9 in h264_types:
        return "h264"
    if any(0x20 <= c <= 0x2F for c in first):
        return "m4v"
    return None


def _elementary_stream(head: bytes) -> str | None:
    """The demuxer of a raw elementary stream starting with ``head``, or None. A container is never
    one: an MPEG-TS or MPEG-PS carries start codes inside its packets, and read as raw H.264 its
    packet headers would corrupt every picture."""
    kind = container_kind(head)
    if kind is not None and not kind.startswith("raw "):
        return None
    return detect_elementary_stream(head)


def _is_url(s: str) -> bool:
    head = s.split("://", 1)[0]
    return "://" in s and head.isalnum()


_FILE_KINDS = {stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _open_path(path: str, timeout_s: float | None):
    """(target for av.open, description, LiveInput or None) of a path; typed errors for what is not a file."""
    try:
        st = os.stat(path)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise SourceError(f"no such file: {path}") from None
        raise SourceError(f"cannot open {path}: {os_error_message(err, with_filename=False)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path} is a directory, not a video file")
    if stat.S_ISFIFO(st.st_mode):  # a named pipe: a live stream, read with the timeout
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a blocking open waits for a writer forever
        except OSError as err:
            raise SourceError(f"cannot open {path}: {os_error_message(err, with_filename=False)}") from None
        return None, f"FIFO {path}", DescriptorInput(fd, f"FIFO {path}", timeout_s, owned=True)
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise SourceError(f"{path} is {kind}, not a video file: give a video file, a URL, or pipe a stream "
                          "into standard input ('-')")
    if st.st_size == 0:
        raise EmptySourceError(f"{path} is empty (0 bytes)")
    try:
        with open(path, "rb"):  # permission is checked here, with a message that says so
            pass
    except OSError as err:
        raise SourceError(f"cannot open {path}: {os_error_message(err, with_filename=False)}") from None
    return path, path, None


def _open_file_object(source, timeout_s: float | None):
    """(target, description, LiveInput or None) of a binary file object."""
    try:
        fd = source.fileno()
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        fd = mode = None
    name = getattr(source, "name", None)
    kind = "pipe" if mode is not None and stat.S_ISFIFO(mode) else \
        "socket" if mode is not None and stat.S_ISSOCK(mode) else "file"
    if name in ("<stdin>", 0):
        what = "standard input"
    else:
        what = f"<{kind} {f'fd {name}' if isinstance(name, int) else name or type(source).__name__}>"
    if mode is not None and not stat.S_ISREG(mode):
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return None, what, DescriptorInput(fd, what, timeout_s)
        if os.isatty(fd):
            raise SourceError(f"{what} is a terminal, not a video stream: pipe one in, e.g. "
                              "ffmpeg -i in.mp4 -c:v libx264 -f h264 - | edgekit recognize -")
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise SourceError(f"{what} is {kind}, not a video file or stream")
    if mode is not None and os.fstat(fd).st_size == 0:
        raise EmptySourceError(f"{what} is empty (0 bytes)")
    try:
        seekable = mode is not None or bool(source.seekable())
    except Exception:
        seekable = False
    if seekable:  # random access (an MP4's index at the end): FFmpeg reads it directly
        return source, what, None
    return None, what, ChunkReader(_file_chunks(source), what, timeout_s)


def open_container(source, *, timeout_s: float | None, format: str | None = None, transport: str | None = None):
    """Open ``source`` with PyAV and return ``(container, description)``.

    The container is a :class:`SourceContainer`: close it to release the source, reader thread
    included. ``transport``: "tcp" or "udp" for an rtsp URL (None: FFmpeg's default). Raises
    ConfigError for an invalid ``timeout_s`` or ``transport``; SourceError / EmptySourceError /
    DecodeError / SourceTimeoutError with a one-line message for a bad source.
    """
    timeout_s = check_timeout(timeout_s)
    options: dict[str, str] = {}
    if check_transport(transport, source):
        options["rtsp_transport"] = transport
    live: LiveInput | None = None
    head: bytes | None = None       # first bytes, to explain a failure
    pyav_timeout = None             # PyAV's interrupt callback: (open, read) seconds
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if _is_url(text) and not text.startswith("file://"):
            target, desc = text, text
            scheme = text.split("://", 1)[0].lower()
            if timeout_s is not None:
                microseconds = str(max(int(timeout_s * 1e6), 1))
                options["rw_timeout"] = microseconds
                if scheme in _SOCKET_TIMEOUT_PROTOCOLS:
                    options["timeout"] = microseconds
                # opening may read a lot before it decides (probing a live stream): the socket
                # timeouts above measure silence there; PyAV's clock only where there are none
                open_limit = None if scheme in _SOCKET_TIMEOUT_PROTOCOLS else timeout_s
                pyav_timeout = (open_limit, timeout_s)
            if scheme in NETWORK_SCHEMES:
                # a live stream is analysed for at most half a second before its first packet is handed
                # out (FFmpeg's default: 5 s of stream, all of it latency); an RTSP server's SDP already
                # describes the stream, so nothing needs reading there (a size it leaves out is learnt
                # from the first decoded picture). Packets read meanwhile are kept ("nobuffer" would
                # drop them, the first I-frame with them).
                options["analyzeduration"] = _LIVE_ANALYZE_US
                if scheme in ("rtsp", "rtsps"):
                    options["probesize"] = "32"
        else:
            path = text[len("file://"):] if text.startswith("file://") else text
            target, desc, live = _open_path(path, timeout_s)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise EmptySourceError("the bytes source is empty")
        head = data[:_HEAD_BYTES]
        format = format or _elementary_stream(head)
        target, desc = io.BytesIO(data), f"<{len(data)} bytes>"
    elif hasattr(source, "read"):
        target, desc, live = _open_file_object(source, timeout_s)
    elif isinstance(source, Iterable):
        live = ChunkReader(source, "<chunk stream>", timeout_s)
        desc = "<chunk stream>"
    else:
        raise SourceError(f"unsupported source type {type(source).__name__}: give a path, URL, bytes, "
                          "a binary file object or an iterable of encoded chunks")
    opening = time.monotonic()
    try:
        if live is not None:
            head = live.head()  # waits at most timeout_s for the first byte
            if not head:
                raise EmptySourceError(f"{desc}: the stream ended before any data"
                                       if desc != "<chunk stream>" else "the chunk iterator yielded no data")
            stream_kind = _elementary_stream(head)
            format = format or stream_kind
            if isinstance(live, ChunkReader) and desc == "<chunk stream>":
                desc = live.description = f"<{format or 'encoded'} chunk stream>"
            if format == stream_kind and stream_kind:
                # live encoder output: start decoding at the first picture, do not buffer to probe
                options.update(probesize="32", analyzeduration="0")
            target = live
        container = av.open(target, mode="r", format=format, options=options, timeout=pyav_timeout)
    except BaseException as err:
        if live is not None:
            live.close()
        if isinstance(err, (SourceError, ConfigError)) or not isinstance(err, Exception):
            raise
        if head is None and isinstance(target, str) and not _is_url(target):
            head = _read_head(target)
        if _is_timeout(err, time.monotonic() - opening if live is None else 0.0, timeout_s, is_network_url(source)):
            raise timeout_error(desc, timeout_s, "while opening") from None
        raise _open_error(err, desc, head, timeout_s, target) from None
    return SourceContainer(container, desc, timeout_s, live, network=is_network_url(source)), desc


# -- messages for what FFmpeg refused ------------------------------------------------------------------


def _read_head(path: str, size: int = 64) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return None


def container_kind(head: bytes) -> str | None:
    """The container or stream kind named by a file's first bytes (``"MP4/MOV"``, ...), or None."""
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return "MP4/MOV"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "Matroska/WebM"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"FLV"):
        return "FLV"
    if head.startswith(b"YUV4MPEG2"):
        return "Y4M"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "MPEG-PS"
    if head[:1] == b"\x47" and (len(head) <= 188 or head[188:189] == b"\x47"):
        return "MPEG-TS"
    stream = detect_elementary_stream(head)
    return f"raw {stream.upper()} stream" if stream else None


def mp4_truncation(read_at, size: int) -> str | None:
    """Why an MP4/MOV of ``size`` bytes cannot be opened, from its top-level boxes, or None.

    ``read_at(offset, n)`` returns bytes of the file. Finds a box that runs past the end of the
    file (cut short) and a missing ``moov`` box (the index MP4 writers put last).
    """
    offset, types = 0, []
    while offset + 8 <= size and len(types) < 1024:
        header = read_at(offset, 16)
        if len(header) < 8:
            break
        box_size, raw_type = int.from_bytes(header[:4], "big"), header[4:8]
        if not all(32 <= b < 127 for b in raw_type):  # a box type is four printable characters
            return f"the box header at byte {offset} is damaged"
        box_type = raw_type.decode("ascii")
        if box_size == 1 and len(header) >= 16:
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:  # runs to the end of the file
            box_size = size - offset
        types.append(box_type)
        if box_size < 8:
            return f"its '{box_type}' box at byte {offset} has an invalid size"
        if offset + box_size > size:
            moov = "" if "moov" in types else " and there is no 'moov' index"
            return f"it ends inside its '{box_type}' box ({size} of {offset + box_size} bytes){moov}"
        offset += box_size
    if "moov" not in types:
        return "it has no 'moov' index"
    return None


def _looks_like_text(head: bytes) -> bool:
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def _open_error(err: BaseException, desc: str, head: bytes | None, timeout_s: float | None,
                target) -> SourceError:
    """The typed error, with a message that says what is wrong, for FFmpeg refusing to open ``desc``."""
    if isinstance(err, av.error.ConnectionRefusedError):
        return SourceError(f"{desc}: connection refused; check the host and port, and that the camera or "
                           "server is running")
    if isinstance(err, av.error.HTTPError):
        return SourceError(f"{desc}: the server answered {err.strerror}; check the URL and its credentials")
    if isinstance(err, av.error.ProtocolNotFoundError):
        return SourceError(f"{desc}: FFmpeg cannot open this kind of URL; give a path or an "
                           "rtsp://, http(s)://, tcp:// or udp:// URL")
    if isinstance(err, OSError) and err.errno == errno.EIO and isinstance(target, str) and head:
        # a demuxer reports a malformed header of a local file as an I/O error: say what it is
        kind = container_kind(head) or "video file"
        return DecodeError(f"{desc}: truncated or damaged {kind}: FFmpeg cannot read its header; copy it "
                           "again or re-encode it")
    if isinstance(err, OSError):  # FFmpeg's errno errors (permission, I/O) are OSErrors too
        return SourceError(f"{desc}: cannot open: {os_error_message(err, with_filename=False)}")
    if isinstance(err, (av.error.InvalidDataError, av.error.DemuxerNotFoundError, av.error.EOFError)) \
            or (isinstance(err, av.error.FFmpegError) and head):
        kind = container_kind(head) if head else None
        if kind == "MP4/MOV" and isinstance(target, str):
            size = os.path.getsize(target)
            with open(target, "rb") as fh:
                def read_at(offset, n):
                    fh.seek(offset)
                    return fh.read(n)
                why = mp4_truncation(read_at, size)
            if why and ("ends inside" in why or "moov" in why):
                return DecodeError(f"{desc}: truncated or damaged MP4/MOV file: {why}; it was cut short (an "
                                   "interrupted copy, download or recording): copy or record it again")
            if why:
                return DecodeError(f"{desc}: damaged MP4/MOV file: {why}; copy it again or re-encode it")
        if kind is not None:
            return DecodeError(f"{desc}: truncated or damaged {kind}: FFmpeg cannot read its header "
                               f"({_short(err)}); copy it again or re-encode it")
        if head and _looks_like_text(head):
            return SourceError(f"{desc}: not a video container (it is text); give a video file (MP4, MKV, AVI, "
                               "...), a raw H.264/MPEG-4 stream or a URL")
        first = f" (first bytes {head[:8].hex(' ')})" if head else ""
        return SourceError(f"{desc}: not a video container FFmpeg recognizes{first}; give a video file (MP4, MKV, "
                           "AVI, ...), a raw H.264/MPEG-4 stream or a URL")
    return SourceError(f"{desc}: not a readable video ({_short(err)})")


def _short(err: BaseException) -> str:
    """One short line for an exception: FFmpeg's and the OS's own words, without errno numbers."""
    if isinstance(err, (av.error.FFmpegError, OSError)) and getattr(err, "strerror", None):
        return str(err.strerror)[:160]
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return msg[:160]
