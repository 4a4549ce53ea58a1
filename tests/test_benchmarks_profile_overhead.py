"""benchmarks/profile_overhead.py runs at a tiny scale and prints one JSON object: the profile's
instrumentation cost beside the plain loop, and its p50s beside benchmarks/recognizer.py's path."""

from __future__ import annotations

import pytest

from benchscripts import run_benchmark

STAGES = {"decode+kernels", "preprocess", "inference", "window"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("profile_overhead")
    return run_benchmark("profile_overhead.py", "--frames-scale", "0.1", "--repeats", "2", "--profile-runs", "1",
                         "--workdir", workdir, timeout=180)


def test_the_three_commands_ran_in_the_same_rounds(report):
    overhead = report["overhead"]
    assert report["clip"]["frames"] == 50 and report["clip"]["codec"] == "mpeg4" and report["clip"]["windows"] == 2
    assert len(overhead["plain_s"]["runs"]) == len(overhead["profiled_s"]["runs"]) == 2
    assert overhead["overhead_per_round"] == [
        pytest.approx(p / q - 1, abs=5e-3) for p, q in zip(overhead["profiled_s"]["runs"], overhead["plain_s"]["runs"])]
    assert overhead["met"] == (overhead["overhead_paired_median"] < 0.02)
    # the bookkeeping itself: a real, small share of the profiled passes' wall time
    assert 0 < overhead["self_measured"] < 0.02


def test_p50s_are_compared_stage_by_stage(report):
    agreement = report["agreement"]
    assert set(agreement["p50_ms_per_window"]) == STAGES == set(agreement["recognizer_benchmark"]["ms_per_window_mean"])
    for row in agreement["p50_ms_per_window"].values():
        assert row["profile"] > 0 and row["plain"] > 0
        assert row["difference"] == pytest.approx(row["profile"] / row["plain"] - 1, abs=1e-3)
    fps = agreement["recognizer_benchmark"]["frames_per_s"]
    assert fps["profile"] > 0 and fps["benchmark"] > 0
    assert agreement["met"] == (agreement["largest_difference"] <= 0.10)
    assert set(report["profile_command"]["p50_ms"]) >= {"decode", "kernels", "preprocess", "inference", "window"}
