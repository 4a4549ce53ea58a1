"""benchmarks/kernels_portable.py at a tiny scale: both builds timed, the portable one really
portable, ratios that follow from the milliseconds it prints."""

from __future__ import annotations

import platform
import shutil

import pytest

from benchscripts import run_benchmark


@pytest.mark.skipif(shutil.which("gcc") is None or platform.machine() not in ("x86_64", "AMD64"),
                    reason="needs gcc and an x86-64 machine (the SSE2 path to compare with)")
def test_both_builds_are_timed_and_compared():
    report = run_benchmark("kernels_portable.py", "--repeats", "1", "--number", "1", timeout=300)
    sse2, portable, ratio = report["sse2_ms"], report["portable_ms"], report["portable_over_sse2"]
    assert set(sse2) == set(portable) == set(ratio) >= {"mc_residual", "accumulate_with_residual",
                                                        "trace_residual_binned_112", "trace_cells"}
    for name in sse2:
        assert sse2[name] > 0 and portable[name] > 0
        assert ratio[name] == pytest.approx(portable[name] / sse2[name], rel=0.02, abs=2e-3)
