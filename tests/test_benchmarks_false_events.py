"""benchmarks/false_events.py makes static clips of both renderers and noise-only clips from seeds no
model has seen, runs a bundled default on them, and prints one JSON object whose rates follow from
the window labels it lists (and that the Recognizer gives again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchscripts import load_benchmark, run_benchmark


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("false-events")
    return run_benchmark("false_events.py", "--clips", 2, "--kinds", "mv", "--workdir", workdir, timeout=600), workdir


def test_sets_are_made_from_unseen_seeds(run):
    report, workdir = run
    assert set(report) >= {"benchmark", "command", "target", "sets", "results", "env", "elapsed_s"}
    assert report["target"] == {"max_rate": 0.05}
    sets = report["sets"]
    assert list(sets) == ["broad", "heldout", "noise"]
    assert (sets["broad"]["renderer"], sets["broad"]["preset"], sets["broad"]["seed"]) == ("synth", "broad-small", 101)
    assert (sets["heldout"]["renderer"], sets["heldout"]["seed"]) == ("heldout", 101)
    assert sets["noise"]["first_seed"] == 3_000_000
    for part in sets.values():
        assert part["clips"] == 2 and Path(part["out_dir"]).parent == workdir
    assert sorted(p.parent.name for p in (workdir / "synth-broad-small-static-seed101-2" / "videos").rglob("*.mp4")) \
        == ["static", "static"]


def test_rates_follow_from_the_listed_windows(run):
    report, workdir = run
    import edgekit
    from edgekit.recognizer import DEFAULT_PACKAGES

    result = report["results"]["mv"]
    assert result["model"] == "edge-mv-ref" and 0 < result["threshold"] < 1
    total_windows = total_events = 0
    for part, figures in result["parts"].items():
        flags = [[label not in ("static", "none") for label in labels] for labels in figures["per_clip"].values()]
        windows, events = sum(map(len, flags)), sum(map(sum, flags))
        assert figures["windows"] == windows > 0 and figures["false_events"] == events
        assert figures["clips"] == 2 and figures["clips_with_an_event"] == sum(any(f) for f in flags)
        assert figures["rate"] == pytest.approx(events / windows, abs=1e-4)
        low, high = figures["ci95"]
        assert low <= figures["rate"] <= high
        assert figures["within_target"] == (events / windows <= 0.05)
        assert sum(figures["reported"].values()) == windows
        total_windows, total_events = total_windows + windows, total_events + events
        # each window's best real label and score; the target's threshold silences all but 5 % of them
        tops = [top for clip_tops in figures["per_clip_top"].values() for top in clip_tops]
        assert len(tops) == windows and list(figures["per_clip_top"]) == list(figures["per_clip"])
        for (top_label, score), label in zip(tops, [l for ls in figures["per_clip"].values() for l in ls]):
            assert label in (top_label, "none") and 0 < score <= 1
            assert (label == "none") == (score < result["threshold"])
        at = figures["threshold_at_target"]
        assert sum(top_label not in ("static", "none") and score >= at for top_label, score in tops) \
            <= int(0.05 * windows)
        assert at == 0 or sum(top_label != "static" and score >= at - 1e-3 for top_label, score in tops) > 0
    assert (result["all"]["windows"], result["all"]["false_events"]) == (total_windows, total_events)
    # the listed labels are the Recognizer's own, window for window
    name, labels = next(iter(result["parts"]["noise"]["per_clip"].items()))
    with edgekit.Recognizer(DEFAULT_PACKAGES["mv"]) as recognizer:
        assert [w.label for w in recognizer.windows(str(workdir / "noise" / name))] == labels


def test_wilson_interval():
    script = load_benchmark("false_events.py")
    low, high = script.wilson(10, 200)
    assert low == pytest.approx(0.0274, abs=5e-4) and high == pytest.approx(0.0899, abs=5e-4)
    assert script.wilson(0, 200)[0] == 0 and script.wilson(0, 200)[1] == pytest.approx(0.0188, abs=5e-4)
    assert script.wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("part, zeroed, kept", [("vectors", slice(0, 2), slice(2, 5)),
                                                ("residual", slice(2, 5), slice(0, 2))])
def test_zero_input_feeds_the_model_without_that_half(part, zeroed, kept):
    """--zero: on the demo clip (real motion, real residual) every input the model is fed has the
    named channels at 0 and the others not; the windows' scores change."""
    import numpy as np

    import edgekit
    from edgekit.recognizer import DEFAULT_PACKAGES

    script = load_benchmark("false_events.py")
    demo = str(Path(edgekit.__file__).parent / "assets" / "demo.mp4")
    with edgekit.Recognizer(DEFAULT_PACKAGES["mvr"]) as recognizer:
        plain = [w.scores for w in recognizer.windows(demo)]
        fed = []
        run = recognizer.backend.run
        recognizer.backend.run = lambda inputs: fed.append(inputs["mv_residual"]) or run(inputs)
        script.zero_input(recognizer, part)
        zeroed_scores = [w.scores for w in recognizer.windows(demo)]
    assert fed and len(zeroed_scores) == len(plain)
    for x in fed:
        assert x.shape[2] == 5 and not x[:, :, zeroed].any() and x[:, :, kept].any()
    assert not np.allclose(np.stack(plain), np.stack(zeroed_scores))


def test_zero_input_refuses_a_package_without_an_mv_residual_input():
    import edgekit
    from edgekit.recognizer import DEFAULT_PACKAGES

    script = load_benchmark("false_events.py")
    with edgekit.Recognizer(DEFAULT_PACKAGES["mv"]) as recognizer:
        with pytest.raises(SystemExit, match="one mv_residual input"):
            script.zero_input(recognizer, "vectors")
