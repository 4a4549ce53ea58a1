"""What the portable kernels (the path ARM devices run) cost against the SSE2 ones, on this machine.

The extension is built twice: as installed (SSE2 fast paths on x86-64) and with ``-DEK_PORTABLE``
(plain C, what aarch64 builds compile). Each build runs in its own child process and times every
pixel kernel on one 1280x720 frame (random planes, vectors of a few pixels, every prediction mode):
mc_residual (per-frame residual, past and future references), accumulate (per-pixel trace with its
residual), trace_residual (the cell-trace residual, full size and binned to 112x112), area_bins
and trace_cells. Milliseconds per call are the minimum over ``--repeats`` blocks; the ratio is
portable / SSE2. x86-64 only: elsewhere there is no SIMD path to compare with.

Prints ONE JSON object on stdout.

Example:
    python benchmarks/kernels_portable.py --workdir /tmp/edgekit-portable > docs/results/kernels-portable.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py (appended: benchmarks/quantize.py must not shadow quantize)

from _env import machine, script_parser  # noqa: E402

CHILD = textwrap.dedent("""
    import importlib.util, json, sys, timeit
    import numpy as np
    so, repeats, number = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    spec = importlib.util.spec_from_file_location("edgekit._kernels", so)
    K = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(K)
    rng = np.random.default_rng(0)
    H, W = 720, 1280
    gh, gw = (H + 7) // 8, (W + 7) // 8

    def planes():
        out = []
        for k in range(3):
            a = rng.integers(0, 256, (H if k == 0 else H // 2, W if k == 0 else W // 2), dtype=np.uint8)
            out += [a, a.shape[1]]
        return tuple(out)

    cur, r0, r1 = planes(), planes(), planes()
    d0 = (rng.integers(-16, 17, (2, gh, gw)) / 4).astype(np.float32)
    d1 = (rng.integers(-16, 17, (2, gh, gw)) / 4).astype(np.float32)
    flags = rng.integers(0, 4, (gh, gw)).astype(np.uint8)
    flags[:, ::2] = 1  # runs of alike cells, as in real video
    yy, xx = np.mgrid[0:H, 0:W].astype(np.int32)
    acc0 = ((yy << 16) | xx).reshape(-1)
    disp = rng.integers(-6, 7, (2, gh, gw)).astype(np.int32)
    res = np.empty((3, H, W), np.int16)
    acc = np.empty(H * W, np.int32)
    binned = np.empty((3, 112, 112), np.float32)
    out_disp, traced = np.empty((2, gh, gw), np.float32), disp.astype(np.float32)
    calls = {
        "mc_residual": lambda: K.mc_residual(cur, r0, r1, H, W, d0, d1, flags, gw, res, 1),
        "accumulate_with_residual": lambda: K.accumulate(acc0, None, H, W, d0, d1, flags, gw, acc, 1, cur, r0, res),
        "trace_residual_full": lambda: K.trace_residual(cur, r0, disp, H, W, gw, res, 1),
        "trace_residual_binned_112": lambda: K.trace_residual(cur, r0, disp, H, W, gw, binned, 1, 112, 112),
        "area_bins_112": lambda: K.area_bins(res, 3, H, W, binned, 112, 112, 1),
        "trace_cells": lambda: K.trace_cells(traced, None, H, W, d0, d1, flags, gw, out_disp),
    }
    ms = {name: min(timeit.repeat(f, number=number, repeat=repeats)) / number * 1000 for name, f in calls.items()}
    print(json.dumps({"simd": K.SIMD, "ms": ms}))
""")


def build_portable(out: Path) -> Path:
    env = dict(os.environ, CFLAGS="-DEK_PORTABLE")
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(out / "lib"),
                           "--build-temp", str(out / "obj"), "--force"], cwd=REPO_ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    built = list((out / "lib" / "edgekit").glob("_kernels*" + sysconfig.get_config_var("EXT_SUFFIX")))
    if proc.returncode != 0 or not built:
        raise RuntimeError(f"the portable build failed: {proc.stderr[-2000:]}")
    return built[0]


def installed() -> Path:
    import edgekit

    found = list(Path(edgekit.__file__).parent.glob("_kernels*" + sysconfig.get_config_var("EXT_SUFFIX")))
    if not found:
        raise RuntimeError("the native extension is not built (pip install -e . builds it)")
    return found[0]


def time_build(so: Path, repeats: int, number: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(so), str(repeats), str(number)], capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"timing {so} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def main(argv=None) -> int:
    parser = script_parser("The native kernels' portable path (ARM) against their SSE2 path, per call at 720p",
                           "python benchmarks/kernels_portable.py > kernels-portable.json")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per kernel (default 5)")
    parser.add_argument("--number", type=int, default=10, help="calls per block (default 10)")
    parser.add_argument("--workdir", help="where the portable build goes (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.number < 1:
        parser.error("--repeats and --number must be >= 1")
    with tempfile.TemporaryDirectory(prefix="edgekit-portable-") as tmp:
        portable_so = build_portable(Path(args.workdir or tmp))
        simd, portable = time_build(installed(), args.repeats, args.number), time_build(portable_so, args.repeats,
                                                                                        args.number)
    if simd["simd"] == "none":
        raise SystemExit("the installed build has no SIMD path to compare with (not x86-64)")
    ratio = {k: round(portable["ms"][k] / simd["ms"][k], 3) for k in simd["ms"]}
    print(json.dumps({
        "benchmark": "native kernels at 1280x720: portable C (ARM's path) vs SSE2, ms per call, one thread",
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": {"repeats": args.repeats, "number": args.number, "size": "1280x720", "threads": 1},
        "env": machine(),
        "sse2_ms": {k: round(v, 4) for k, v in simd["ms"].items()},
        "portable_ms": {k: round(v, 4) for k, v in portable["ms"].items()},
        "portable_over_sse2": ratio,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
