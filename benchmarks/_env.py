"""What every benchmark records about the machine it ran on."""

from __future__ import annotations

import platform


def cpu_model() -> str | None:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict:
    """Python, PyAV/FFmpeg and numpy versions, the platform, CPUs and the time: the fields every
    benchmark JSON carries (numpy and av imported here, edgekit not, so any tree can be measured)."""
    import datetime
    import os

    import av
    import numpy as np

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "python": platform.python_version(),
        "av": av.__version__,
        "ffmpeg": getattr(av, "ffmpeg_version_info", None),
        "ffmpeg_libraries": {name: ".".join(map(str, v)) for name, v in av.library_versions.items()},
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_model": cpu_model(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def wilson(events: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate ``events``/``n`` ((0, 1) when ``n`` is 0)."""
    import math

    if n == 0:
        return (0.0, 1.0)
    p = events / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def script_parser(description: str, example: str):
    """The argument parser of a benchmark script: what it measures, that it prints one JSON object
    on stdout, and one example command."""
    import argparse

    return argparse.ArgumentParser(description=f"{description}; prints one JSON object on stdout.",
                                   epilog=f"example: {example}", formatter_class=argparse.RawDescriptionHelpFormatter)


def reset_peak_rss() -> None:
    """Reset VmHWM (Linux >= 4.0: writing 5 to clear_refs), so each run reports its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_mib(field: str) -> float | None:
    """A memory line of /proc/self/status in MiB, None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def high_water_rss_mib() -> float | None:
    """VmHWM: peak RSS of this process image (ru_maxrss survives exec, so a child inherits its parent's)."""
    return _status_mib("VmHWM")


def rss_mib() -> float | None:
    """VmRSS: the resident memory of this process now."""
    return _status_mib("VmRSS")
