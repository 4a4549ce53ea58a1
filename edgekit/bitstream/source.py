"""Opening a video source of any kind as a PyAV container, with typed errors.

A source is a path, a URL FFmpeg can open (rtsp://, http://, file://), ``bytes``, a binary
file-like object, or an iterable of encoded chunks (a raw H.264 Annex-B or MPEG-4 Part 2 elementary
stream, as a camera encoder emits it). Iterables are read by a background thread into a bounded
queue, so a stalled producer surfaces as :class:`~edgekit.errors.SourceTimeoutError` instead of a hang.
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Iterable

import av

from edgekit.errors import EmptySourceError, SourceError, SourceTimeoutError

_END = object()


class ChunkReader(io.RawIOBase):
    """A non-seekable binary file over an iterable of ``bytes`` chunks.

    Holds at most ``max_chunks`` chunks ahead of the decoder. ``read`` waits up to ``timeout_s``
    seconds for the next chunk, then raises ``SourceTimeoutError``.
    """

    def __init__(self, chunks: Iterable[bytes], timeout_s: float = 10.0, max_chunks: int = 64,
                 first: bytes = b""):
        self._queue: queue.Queue = queue.Queue(maxsize=max_chunks)
        self._timeout_s = timeout_s
        self._buffer = bytearray(first)
        self._done = False
        self._error: BaseException | None = None
        self._closed_event = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(iter(chunks),), daemon=True,
                                        name="edgekit-chunk-reader")
        self._thread.start()

    def _pump(self, it) -> None:
        try:
            for chunk in it:
                if self._closed_event.is_set():
                    return
                self._put(bytes(chunk))
        except BaseException as err:  # handed to the reading thread
            self._error = err
        self._put(_END)

    def _put(self, item) -> None:
        while not self._closed_event.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buffer and not self._done:
            try:
                item = self._queue.get(timeout=self._timeout_s)
            except queue.Empty:
                raise SourceTimeoutError(
                    f"the encoded-chunk source stalled: no data for {self._timeout_s:g} s "
                    "(raise timeout_s= if the producer is slow)") from None
            if item is _END:
                self._done = True
                if self._error is not None:
                    raise SourceError(f"the chunk iterator raised {self._error!r}") from self._error
            else:
                self._buffer += item
        n = min(len(b), len(self._buffer))
        b[:n] = self._buffer[:n]
        del self._buffer[:n]
        return n

    def close(self) -> None:
        self._closed_event.set()
        super().close()


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


def _is_url(s: str) -> bool:
    head = s.split("://", 1)[0]
    return "://" in s and head.isalnum()


def open_container(source, *, timeout_s: float, format: str | None = None):
    """Open ``source`` with PyAV and return ``(container, description)``.

    Raises SourceError / EmptySourceError / SourceTimeoutError with a one-line message.
    """
    options = {}
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if _is_url(text) and not text.startswith("file://"):
            target, desc = text, text
        else:
            path = text[len("file://"):] if text.startswith("file://") else text
            if not os.path.exists(path):
                raise SourceError(f"no such file: {path}")
            if os.path.isdir(path):
                raise SourceError(f"{path} is a directory, not a video file")
            if os.path.getsize(path) == 0:
                raise EmptySourceError(f"{path} is empty (0 bytes)")
            target, desc = path, path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise EmptySourceError("the bytes source is empty")
        format = format or detect_elementary_stream(data[:4096])
        target, desc = io.BytesIO(data), f"<{len(data)} bytes>"
    elif hasattr(source, "read"):
        target, desc = source, f"<file {getattr(source, 'name', type(source).__name__)}>"
    elif isinstance(source, Iterable):
        it = iter(source)
        first = b""
        for chunk in it:  # find the first non-empty chunk to detect the stream type
            first = bytes(chunk)
            if first:
                break
        if not first:
            raise EmptySourceError("the chunk iterator yielded no data")
        format = format or detect_elementary_stream(first[:4096])
        target = ChunkReader(it, timeout_s=timeout_s, first=first)
        desc = f"<{format or 'encoded'} chunk stream>"
        # live encoder output: start decoding at the first picture, do not buffer to probe
        options = {"probesize": "32", "analyzeduration": "0"}
    else:
        raise SourceError(f"unsupported source type {type(source).__name__}: give a path, URL, bytes, "
                          "a binary file object or an iterable of encoded chunks")
    try:
        container = av.open(target, mode="r", format=format, options=options, timeout=(timeout_s, timeout_s))
    except SourceError:
        raise
    except av.error.ExitError as err:
        raise SourceTimeoutError(f"{desc}: timed out after {timeout_s:g} s ({err})") from None
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise SourceError(f"{desc}: not a readable video ({_short(err)})") from None
    return container, desc


def _short(err: BaseException) -> str:
    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return msg[:160]
