"""Build edgekit's one native extension (the per-pixel loops of edgekit.bitstream).

Everything else is declared in pyproject.toml. The extension uses only the CPython C API, so any C
compiler works; if it is missing, edgekit falls back to its numpy kernels (slower, same results).
"""

import sys

from setuptools import Extension, setup

args = ["/O2"] if sys.platform == "win32" else ["-O3", "-std=c11"]
setup(ext_modules=[Extension("edgekit._kernels", ["edgekit/_kernels.c"], extra_compile_args=args, optional=True)])
