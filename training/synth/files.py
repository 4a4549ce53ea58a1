"""Atomic file writes: write under a hidden temporary name in the same folder, then rename.

An interrupted run therefore never leaves a half-written clip, list or metadata file behind under
its final name; leftovers carry :data:`PARTIAL_MARKER` in their name and are removed by the next run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL_MARKER = ".partial-"


def partial_path(path: Path) -> Path:
    """The temporary name for ``path``: hidden, same folder, unique per process."""
    return path.with_name(f".{path.name}{PARTIAL_MARKER}{os.getpid()}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = partial_path(path)
    try:
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def remove_partials(folder: Path) -> int:
    """Delete temporary files left by an interrupted run anywhere under ``folder``; returns the count."""
    removed = 0
    if folder.is_dir():
        for leftover in folder.rglob(f".*{PARTIAL_MARKER}*"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed
