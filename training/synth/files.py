"""Leftovers of interrupted runs. Every file of the benchmark is written atomically through
``edgekit._fileio`` (a hidden temporary name in the same folder, fsync, rename), so an interrupted
run never leaves a half-written clip, list or metadata file under its final name; the next run
removes the temporary files it left (:func:`remove_partials`)."""

from __future__ import annotations

from pathlib import Path

# edgekit._fileio.atomic_output names a temporary file ".<name>.<pid>.part<suffix>"
PARTIAL_GLOB = ".*.part*"


def remove_partials(folder: Path) -> int:
    """Delete temporary files left by an interrupted run anywhere under ``folder``; returns the count."""
    removed = 0
    if folder.is_dir():
        for leftover in folder.rglob(PARTIAL_GLOB):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
    return removed
