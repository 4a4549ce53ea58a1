"""Typed errors raised by edgekit.

Every user-facing failure is an :class:`EdgekitError`. The CLI prints ``str(err)`` on one line and
exits with code 2; library callers catch the specific subclass they care about. Messages say what
went wrong and what to do next.
"""

from __future__ import annotations

import errno
import os


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


class OutputError(EdgekitError):
    """An output file cannot be written: a folder that is missing, a file, or not writable; a name
    too long for the file system; a full disk. Nothing is left half-written."""


class ConfigError(EdgekitError):
    """A configuration value (CLI flag, TOML key, keyword argument) is invalid."""


class AccuracyGuardError(EdgekitError):
    """INT8 loses more top-1 against FP32 than the export's limit allows (``edgekit.int8_guard``).

    ``report`` is the ``Int8GuardReport`` measured (both top-1s, the drop in points, the limit and,
    after a fallback, the layers kept in FP32); the message says what to do next.
    """

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class MissingDependencyError(EdgekitError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"{module} is not installed; install it with: pip install 'edgekit[{extra}]'"
        )
        self.module = module
        self.extra = extra


class CompatibilityWarning(UserWarning):
    """A package runs, but on inputs computed differently from those it was trained on (e.g. a package
    trained on cache format 1's rounded cell traces, read with this runtime's exact ones)."""


class BackendError(EdgekitError):
    """The inference runtime failed on the device (a CUDA or TensorRT call, an engine build); the
    message names the call and the runtime's reason."""


# -- one line for an OS error on a user's path ----------------------------------------------------------

_OS_ERROR_WORDS = {
    errno.ENOENT: "no such file or folder",
    errno.EACCES: "permission denied (check the permissions of the file and of its folders)",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "it already exists",
    errno.ENOSPC: "no space left on the device",
    errno.EROFS: "read-only file system",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error (a failing disk or network share?)",
    errno.EFBIG: "file too large for the file system",
    errno.EMFILE: "too many open files",
    getattr(errno, "EDQUOT", -1): "disk quota exceeded",
}


def os_error_message(err: OSError, *, with_filename: bool = True) -> str:
    """One line for ``err`` in plain words, without errno numbers: ``"out/x.mp4: permission denied"``."""
    words = _OS_ERROR_WORDS.get(err.errno) or (err.strerror or str(err) or type(err).__name__)
    filename = err.filename if with_filename else None
    if filename is None:
        return str(words).replace("\n", " ")
    return f"{os.fsdecode(filename)}: {words}".replace("\n", " ")


def output_error(path, err: OSError) -> OutputError:
    """The :class:`OutputError` of ``err`` raised while writing ``path`` (named, not its temporary file)."""
    path = os.fspath(path)
    words = os_error_message(err, with_filename=False)
    if err.errno in (errno.EEXIST, errno.ENOTDIR):  # a folder on the way is a file
        folder = os.path.dirname(os.path.abspath(path))
        while folder != os.path.dirname(folder) and not os.path.exists(folder):
            folder = os.path.dirname(folder)
        if os.path.exists(folder) and not os.path.isdir(folder):
            words = f"{folder} is a file, not a folder"
    return OutputError(f"cannot write {path}: {words}")


def check_output_name(path) -> None:
    """Raise :class:`OutputError` if ``path``'s name, or the temporary name it is first written under
    (``.NAME.PID.part``, see ``edgekit._fileio``), is longer than the file system allows."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder) if os.path.dirname(folder) != folder else ""
    try:
        limit = os.pathconf(folder or "/", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    extra = len(f"..{os.getpid()}.part")
    longest_part = max((len(os.fsencode(part)) for part in path.split(os.sep)), default=0)
    if len(os.fsencode(name)) + extra > limit or longest_part > limit:
        raise OutputError(f"cannot write {path}: file name too long ({len(os.fsencode(name))} bytes; names "
                          f"are at most {limit - extra} bytes here, as edgekit first writes to a temporary "
                          "name beside it)")
