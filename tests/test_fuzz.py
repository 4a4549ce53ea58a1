"""Fuzzing kept (issue 11): a bounded fuzz run over every reading mode and packages must end in clean
reads or typed errors only: no crash, no hang, no untyped exception, peak memory per input under
300 MiB. ``benchmarks/fuzz.py`` runs the same harness over 10,000+ inputs.

A failure names each group (type, message, an example input) and where the failing inputs were
saved, each with the exact call that reproduces it (``*.json`` beside it, key ``reproduce``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# appended, not prepended: benchmarks/quantize.py must not hide the quantize package
sys.path.append(str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _fuzzing as fuzzing  # noqa: E402

INPUTS = 400  # 80 per mode, after the ~40 crafted inputs; about 15 s on 2 cores when timeouts fire in time
TIME_LIMIT_S = 10.0  # a chunk timeout is 2 s: an input still running at 10 s is a hang


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fuzzing.make_seeds(tmp_path_factory.mktemp("fuzz_seeds"))


def describe(outcomes, folder: Path) -> str:
    """One line per failure group, with an example and where its input was saved."""
    lines = []
    summary = fuzzing.summarize(outcomes, top=10)
    for key in ("crash_top", "hang_top", "untyped_top"):
        for group in summary[key]:
            example = group["example"]
            lines.append(f"{group['count']}x {group['group']} (modes {group['modes']}; e.g. input "
                         f"#{example['index']} {example['mode']} {example['seed']} {example['mutators']})")
    for o in outcomes:
        if (o.peak_rss_mib or 0) >= fuzzing.RSS_LIMIT_MIB:
            lines.append(f"#{o.index} {o.mode} {list(o.mutators)}: peak RSS {o.peak_rss_mib:.0f} MiB")
    return f"saved inputs and reproduction commands in {folder}:\n" + "\n".join(lines)


@pytest.mark.slow
def test_bounded_fuzz_run_has_no_crash_hang_untyped_error_or_memory_blowup(seeds, tmp_path):
    failures = tmp_path / "failures"
    runner = fuzzing.Runner(seeds=seeds, workdir=tmp_path, run_seed=0, workers=2, time_limit_s=TIME_LIMIT_S,
                            save_failures=failures)
    crafted = fuzzing.crafted_inputs(seeds, tmp_path)  # size changes, cut files, stalls, bombs: every run
    outcomes = runner.run(INPUTS, crafted)
    assert len(outcomes) == len(crafted) + INPUTS
    per_mode = fuzzing.summarize(outcomes)["per_mode"]
    assert set(per_mode) == set(fuzzing.MODES)
    assert all(row["clean"] > 0 for row in per_mode.values()), {m: row["clean"] for m, row in per_mode.items()}
    bad = [o for o in outcomes if fuzzing.is_failure(o)]
    assert not bad, describe(outcomes, failures)


def test_inputs_are_a_function_of_run_seed_and_index(seeds, tmp_path):
    first = [fuzzing.make_input(7, i, fuzzing.MODES, seeds, tmp_path) for i in range(40)]
    again = [fuzzing.make_input(7, i, fuzzing.MODES, seeds, tmp_path) for i in reversed(range(40))][::-1]
    assert [(x.mode, x.mutators, x.data) for x in first] == [(x.mode, x.mutators, x.data) for x in again]
    assert {x.mode for x in first} == set(fuzzing.MODES)
    assert sum(x.data != next(s.data for s in seeds if s.name == x.seed) for x in first) >= 36  # mutated


def test_size_change_mutation_puts_another_streams_parameter_sets_mid_stream(seeds):
    import random

    small = next(s for s in seeds if s.name == "h264-64x48.h264")
    mutated = fuzzing.insert_headers(random.Random(3), small.data, seeds, "h264")

    def sps(stream: bytes) -> set[bytes]:
        return {u for u in fuzzing.stream_units(stream) if fuzzing.is_header_unit(u, "h264") and u[3] & 0x1F == 7}

    assert len(sps(small.data)) == 1 and len(sps(mutated)) == 2  # its own SPS, then another size's


def test_runner_reports_sanitizer_reports_and_dead_children_as_crashes_and_silent_ones_as_hangs(tmp_path):
    child = fuzzing.Child(tmp_path / "child", env={}, memory_limit_mib=None)
    child.start()
    try:
        report = child.run({"mode": "selftest-sanitizer-report", "path": ""}, time_limit_s=30)
        assert report["class"] == "crash" and report["type"] == "AddressSanitizer"  # reported, lived on
        crash = child.run({"mode": "selftest-crash", "path": ""}, time_limit_s=30)
        assert crash["class"] == "crash" and "SIGSEGV" in crash["message"]
        hang = child.run({"mode": "selftest-hang", "path": ""}, time_limit_s=1)  # restarts the child first
        assert hang["class"] == "hang"
        assert child.restarts == 1 and child.process is None  # killed; the next run starts a new one
    finally:
        child.kill()
