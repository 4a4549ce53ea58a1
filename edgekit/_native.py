"""The native kernel extension (``edgekit/_kernels.c``) when it is built and not switched off:
one switch for every caller (``edgekit.bitstream.kernels``, ``edgekit.preprocess.resize``)."""

from __future__ import annotations

import os

try:
    from edgekit import _kernels as extension
except ImportError:  # not built: callers take their numpy paths, same results, slower
    extension = None


def native():
    """``edgekit._kernels``, or None when it is not built or ``EDGEKIT_NATIVE=0`` is set."""
    if extension is not None and os.environ.get("EDGEKIT_NATIVE", "1") != "0":
        return extension
    return None
