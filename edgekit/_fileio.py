"""Atomic file output: the one way edgekit, training and quantize write a file that must never be
seen half-written (packages, checkpoints, cache shards, clips, reports).

A file is written under a temporary name in the destination's folder, flushed and fsync'ed, then
renamed over the destination (``os.replace``, atomic on POSIX and Windows). On any error the
temporary file is removed and the destination keeps its old content (or stays absent)::

    with atomic_output("clip.mp4") as tmp:      # a path to write to, e.g. by an encoder
        encode(tmp)
    atomic_write("report.json", json.dumps(r))   # bytes or text
    atomic_save_npy("shard-00000.motion.npy", array)
    with atomic_folder("models/edge-mvr") as folder:   # a whole folder, published at once
        (folder / "model.json").write_text(...)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def _fsync_path(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        _fsync_path(folder)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, the file
    written there is fsync'ed and renamed to ``path``. ``suffix`` keeps an extension some writers
    look at (e.g. ``".mp4"`` for an encoder that picks its container from the name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part{suffix}")
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):  # e.g. a name too long to create: keep the real error
            tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        fh.write(payload)
    return Path(path)


def atomic_save_npy(path: str | os.PathLike, array) -> Path:
    """``numpy.save`` to ``path`` atomically, never with pickle; returns ``path``."""
    import numpy as np

    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike) -> Iterator[Path]:
    """A fresh folder beside ``out`` to fill (a model directory, a report); when the block succeeds
    its files are fsync'ed and it is renamed to ``out`` (an older ``out`` is kept until then and
    put back if the rename fails); when the block fails it is removed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    for leftover in (tmp, old):
        if leftover.exists():
            shutil.rmtree(leftover)
    tmp.mkdir()
    try:
        yield tmp
        for written in tmp.rglob("*"):
            if written.is_file():
                _fsync_path(written)
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError:
            if old.exists():  # put the older folder back
                os.replace(old, out)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
