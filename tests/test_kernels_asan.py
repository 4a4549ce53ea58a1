"""The native kernels under AddressSanitizer: any read or write outside a buffer aborts the run.

edgekit/_kernels.c is built by setup.py's own build_ext (its compile flags) plus
``-fsanitize=address -fno-omit-frame-pointer`` into a temporary folder, then a child Python with
libasan preloaded loads that build as ``edgekit._kernels`` and runs: the kernel tests' random fields
(vectors far outside the frame, every prediction mode, odd sizes, threaded bands, min_gain's cell
tests), every bad-geometry
call (which must raise ValueError, not crash), and size-change and mid-GOP streams read end to end in
all three modes. Skipped only where gcc or libasan is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from media import joined_mid_gop, size_change_stream

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import importlib.util, sys
    so, tests, *streams = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("edgekit._kernels", so)
    native = importlib.util.module_from_spec(spec)
    sys.modules["edgekit._kernels"] = native  # before edgekit.bitstream imports it
    spec.loader.exec_module(native)
    sys.path.insert(0, tests)

    import edgekit.bitstream as bs
    from edgekit.bitstream import reader
    assert reader._native is native and bs.kernels() is native, "the sanitized build is not the one in use"

    import test_bitstream as tb
    import test_reader_geometry as tg
    for H, W in [(37, 53), (64, 512), (90, 1024)]:
        for threads in (1, 2, 5):
            tb.test_kernels_match_reference_on_random_fields(H, W, threads)
    tb.test_b_frame_future_only_vectors_keep_forward_sign()
    for case in tg.BAD_CALLS:
        tg.test_mc_residual_refuses_buffers_that_do_not_fit(native, case)
    for case in ["positions of a larger frame", "negative position", "acc0 too short", "iframe plane too short",
                 "residual too short", "zero height"]:
        tg.test_accumulate_refuses_positions_and_buffers_that_do_not_fit(native, case)
    tg.test_mv_grid_refuses_partial_vectors_and_bad_grids(native)
    tg.test_drop_long_refuses_bad_grids_and_limits(native)
    tg.test_drop_long_matches_in_both_kernels()
    tg.test_huge_and_nan_vectors_clamp_to_the_edge_in_both_kernels()
    import test_min_gain as tm
    tm.test_the_kernel_on_cells_it_can_be_checked_by_hand(native)
    tm.test_the_kernel_refuses_what_does_not_fit(native)
    tm.test_both_kernels_agree_on_random_pictures_and_fields()
    import test_runtime_path as tr
    for H, W, out_hw in [(37, 53, (8, 8)), (61, 83, (112, 112)), (90, 1024, (56, 200))]:
        for threads in (1, 2, 5):
            tr.random_block_fields(H, W, threads, out_hw)
    tr.test_block_kernels_refuse_buffers_that_do_not_fit("native")

    counts = {}
    for path in streams:
        for options in ({"residual": False, "rgb": None}, {}, {"accumulate": True},
                        {"accumulate": True, "trace": "block", "residual_size": (56, 72)},
                        {"accumulate": True, "trace": "block", "max_vector": 0.05},
                        {"accumulate": True, "trace": "block", "min_gain": 1.0}, {"min_gain": 0.0},
                        {"residual_size": (24, 40)}):
            with bs.open(path, **options) as r:
                frames = list(r)
            assert frames and r.stats.frames == len(frames), path
            counts[path] = (len(frames), r.stats.size_changes, r.stats.skipped_frames)
    print("child ok", native.SIMD, counts)
""")


def _libasan() -> str | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    path = subprocess.run([gcc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def build_kernels(tmp: Path, cflags: str = "", ldflags: str = "") -> Path:
    """setup.py's build_ext with ``cflags``/``ldflags`` added to its flags, into ``tmp``; returns the
    built extension."""
    env = dict(os.environ, CC="gcc", CFLAGS=cflags, LDFLAGS=ldflags)
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp / "lib"),
                           "--build-temp", str(tmp / "obj"), "--force"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    built = list((tmp / "lib" / "edgekit").glob("_kernels*" + sysconfig.get_config_var("EXT_SUFFIX")))
    assert proc.returncode == 0 and built, f"the build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return built[0]


def child_streams(tmp_path: Path) -> list[Path]:
    """The streams the child reads in every mode: size changes both ways in both codecs, keyframe-only
    headers, a narrower picture at the same height, and a live stream joined mid-GOP."""
    streams = [
        size_change_stream(tmp_path / "grow.h264", "h264", sizes=((128, 96), (160, 120)), frames=(12, 12), bframes=2),
        size_change_stream(tmp_path / "shrink.h264", "h264", sizes=((160, 120), (128, 96)), frames=(12, 12)),
        size_change_stream(tmp_path / "shrink.m4v", "mpeg4", sizes=((160, 120), (128, 96)), frames=(12, 12)),
        size_change_stream(tmp_path / "headers.m4v", "mpeg4", frames=(12, 24), keyframe_headers_only=True),
        # narrower at the same height: before the fix, a heap-buffer-overflow in sub_run (threaded bands)
        size_change_stream(tmp_path / "narrower.m4v", "mpeg4", sizes=((640, 480), (320, 480)), frames=(4, 4)),
    ]
    paths = [tmp_path / p for p in ("grow.h264", "shrink.h264", "shrink.m4v", "headers.m4v", "narrower.m4v")]
    assert all(p.read_bytes() == s for p, s in zip(paths, streams))
    tail, _ = joined_mid_gop(tmp_path / "live.h264", "h264", frames=24, gop=12, drop=5)
    (tmp_path / "tail.h264").write_bytes(tail)
    return paths + [tmp_path / "tail.h264"]


def run_child(so: Path, paths: list[Path], cwd: Path, **env_extra) -> subprocess.CompletedProcess:
    """CHILD with ``so`` loaded as edgekit._kernels, reading ``paths``."""
    env = dict(os.environ, EDGEKIT_NATIVE="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               **env_extra)
    return subprocess.run([sys.executable, "-c", CHILD, str(so), str(ROOT / "tests"), *map(str, paths)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed: cannot build with AddressSanitizer")
def test_kernels_and_reader_run_clean_under_address_sanitizer(tmp_path):
    libasan = _libasan()
    if libasan is None:
        pytest.skip("libasan is not installed (gcc -print-file-name=libasan.so finds none)")
    so = build_kernels(tmp_path / "build", "-fsanitize=address -fno-omit-frame-pointer -g", "-fsanitize=address")
    proc = run_child(so, child_streams(tmp_path), tmp_path, LD_PRELOAD=libasan,
                     ASAN_OPTIONS="detect_leaks=0:abort_on_error=1")
    report = proc.stderr[-6000:]
    assert "AddressSanitizer" not in proc.stderr, report
    assert proc.returncode == 0, report
    assert "child ok" in proc.stdout
