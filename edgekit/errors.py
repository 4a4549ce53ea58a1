"""Typed errors raised by edgekit.

Every user-facing failure is an :class:`EdgekitError`. The CLI prints ``str(err)`` on one line and
exits with code 2; library callers catch the specific subclass they care about. Messages say what
went wrong and what to do next.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base class of every error edgekit raises on purpose."""


class SourceError(EdgekitError):
    """The video source cannot be opened or read: missing path, unreachable URL, not a video."""


class EmptySourceError(SourceError):
    """The source opened but holds no video frames (empty file, audio-only, zero-frame container)."""


class UnsupportedCodecError(SourceError):
    """The codec exports no motion vectors through FFmpeg (HEVC, VP9, AV1, ...).

    ``fallback`` names the option that makes it work (``transcode="h264"`` or ``"mpeg4"``).
    """

    def __init__(self, message: str, codec: str, fallback: str = "transcode='mpeg4'"):
        super().__init__(message)
        self.codec = codec
        self.fallback = fallback


class ResolutionError(SourceError):
    """The stream's resolution is zero, negative or beyond what edgekit will allocate for."""


class SourceTimeoutError(SourceError):
    """A live source stalled: no data arrived within the configured timeout."""


class DecodeError(SourceError):
    """The stream is so damaged that no frame could be decoded from it."""


class PackageError(EdgekitError):
    """An .edgepkg is missing, tampered with, or of an unknown format version."""


class ConfigError(EdgekitError):
    """A configuration value (CLI flag, TOML key, keyword argument) is invalid."""


class MissingDependencyError(EdgekitError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"{module} is not installed; install it with: pip install 'edgekit[{extra}]'"
        )
        self.module = module
        self.extra = extra
