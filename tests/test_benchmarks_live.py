"""benchmarks/live.py runs end to end on a few hundred frames through its local TCP server (which
restarts twice) and prints one JSON object with the memory, latency and reconnection figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchscripts import run_benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "live.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("live_bench")
    return run_benchmark("live.py", "--frames", "600", "--segment-frames", "100", "--rss-every", "2",
                         "--workdir", str(workdir), timeout=240)


def test_every_frame_of_every_connection_is_read_and_windowed(report):
    assert report["frames"] == 600 == report["reader_stats"]["frames"]
    assert report["server"]["connections"] == 3 and report["server"]["exit_code"] == 0
    assert report["server"]["spans_frames"] == [[0, 200], [200, 400], [400, 600]]  # at GOP boundaries
    assert report["reconnects"] == 2 and report["reader_stats"]["reconnect_attempts"] == 2 + 3  # then refused
    stats = report["reader_stats"]
    assert stats["damaged_frames"] == stats["skipped_frames"] == stats["stalls"] == 0
    assert report["windows"] >= (600 - 48) // 24 and report["fps"] > 0
    assert report["settings"]["window_frames"] == 48 and report["settings"]["simulated_s"] == 24.0


def test_memory_and_latency_are_sampled_and_summarized(report):
    rss = report["rss_mib"]
    assert len(rss["samples"]) >= 10 and all(mib > 0 for _, mib in rss["samples"])
    frames = [f for f, _ in rss["samples"]]
    assert frames == sorted(frames) and frames[-1] == 600
    assert rss["growth"] == pytest.approx(rss["end"] - rss["after_warmup"], abs=1e-2)
    assert rss["slope_per_hour"] is not None and rss["high_water"] > 0
    latency = report["latency_ms"]
    assert latency["start"]["windows"] == latency["end"]["windows"] == max(1, report["windows"] // 10)
    for part in ("start", "end", "all"):
        assert 0 < latency[part]["p50_ms"] <= latency[part]["p99_ms"] <= latency[part]["max_ms"]
    assert latency["p99_end_vs_start"] == pytest.approx(latency["end"]["p99_ms"] / latency["start"]["p99_ms"] - 1,
                                                        abs=1e-3)
    assert set(report["targets"]) == {"rss_growth_below_5MB", "p99_end_within_10pct_of_start"}
    assert report["env"]["av"] and report["env"]["cpu_count"] >= 1
