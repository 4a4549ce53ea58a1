"""Calibrated scores and "none": temperature scaling, the threshold, the manifest section, the
Recognizer with and without it, and ``edgekit calibrate`` on real clips through ONNX Runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.calibration import choose_threshold, ece, false_event_rate, fit, fit_temperature, nll
from edgekit.cli import main as cli_main
from edgekit.errors import ConfigError
from edgekit.fusion import NONE, softmax
from edgekit.manifest import Calibration, Manifest, ManifestError
from edgekit.package import load_package, rewrite_package
from edgekit.recognizer import ASSETS, DEFAULT_PACKAGE, Recognizer

DEMO = ASSETS / "demo.mp4"
CALIBRATION = dict(temperature=1.5, threshold=0.3, split="val", clips=170, nll_before=0.4, nll_after=0.3,
                   ece_before=0.1, ece_after=0.02, rule="fixed", false_event_rate={"static": 0.0, "noise": 0.05})


@pytest.fixture(scope="module")
def uncalibrated(tmp_path_factory):
    """The bundled default package without a calibration section: what every package was before."""
    package = load_package(DEFAULT_PACKAGE)
    from dataclasses import replace

    out = tmp_path_factory.mktemp("cal") / "uncalibrated.edgepkg"
    return rewrite_package(package, out, replace(package.manifest, calibration=None))


@pytest.fixture(scope="module")
def calibrated(uncalibrated, tmp_path_factory):
    """The same package with a known calibration (T = 1.5, threshold 0.3)."""
    package = load_package(uncalibrated)
    from dataclasses import replace

    out = tmp_path_factory.mktemp("cal") / "calibrated.edgepkg"
    return rewrite_package(package, out, replace(package.manifest, calibration=Calibration(**CALIBRATION)))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """The synthetic benchmark's tiny preset on the default's 15 motion classes (one val clip each),
    made for real."""
    pytest.importorskip("cv2", reason="making the synthetic benchmark needs OpenCV (edgekit[train])")
    from training.synth import resolve_config
    from training.synth.generate import generate

    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate(resolve_config("tiny", seed=3, classes="motion"), out, workers=1, progress=False)
    return out


# ------------------------------------------------------------------------------------- the maths


def test_the_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    n, classes, true_temperature = 3000, 8, 2.5
    calibrated_logits = rng.normal(0, 1.5, (n, classes))
    labels = np.array([rng.choice(classes, p=p) for p in softmax(calibrated_logits)])  # labels drawn from the scores
    logits = calibrated_logits * true_temperature  # an over-confident model
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.08)
    result = fit(logits, labels)
    assert result.nll_after < result.nll_before and result.ece_after < result.ece_before < 1
    assert result.nll_after == pytest.approx(nll(logits, labels, result.temperature))
    for other in (result.temperature * 1.2, result.temperature / 1.2):  # a minimum
        assert nll(logits, labels, other) > result.nll_after
    # an under-confident model gets a temperature under 1
    assert fit_temperature(calibrated_logits / 3, labels) == pytest.approx(1 / 3, rel=0.08)


def test_ece_of_perfectly_calibrated_and_of_overconfident_scores():
    labels = np.array([0, 0, 0, 1])
    assert ece(np.array([[0.75, 0.25]] * 4), labels) == pytest.approx(0.0)
    assert ece(np.array([[1.0, 0.0]] * 4), labels) == pytest.approx(0.25)


def test_the_threshold_silences_all_but_the_allowed_fraction_of_false_events():
    labels = ["move_left", "static"]
    # 20 windows of clips without motion: 4 read as move_left with scores 0.5..0.8, 16 as static
    scores = np.array([[s, 1 - s] for s in (0.5, 0.6, 0.7, 0.8)] + [[0.1, 0.9]] * 16)
    assert false_event_rate(scores, labels, 0.0) == pytest.approx(0.2)
    threshold = choose_threshold({"static": scores}, labels, 0.05)  # 1 of 20 windows may stay an event
    assert 0.7 < threshold <= 0.7001 and false_event_rate(scores, labels, threshold) == pytest.approx(0.05)
    assert choose_threshold({"static": scores}, labels, 0.2) == 0.0  # already within the rate
    assert choose_threshold({"static": scores}, labels, 0.0) > 0.8
    with pytest.raises(ConfigError, match="no windows"):
        choose_threshold({"static": np.zeros((0, 2))}, labels, 0.05)


def test_each_set_has_its_own_threshold_and_the_highest_is_named():
    from edgekit.calibration import binding_set, set_thresholds

    labels = ["move_left", "static"]
    many = np.array([[s, 1 - s] for s in (0.5, 0.6, 0.7, 0.8)] + [[0.1, 0.9]] * 16)  # 20 windows: 1 may stay
    few = np.array([[0.65, 0.35]] + [[0.1, 0.9]] * 9)  # 10 windows: none may stay, its one event decides
    quiet = np.array([[0.1, 0.9]] * 30)  # no event at all
    own = set_thresholds({"many": many, "few": few, "quiet": quiet, "empty": np.zeros((0, 2))}, labels, 0.05)
    assert set(own) == {"many", "few", "quiet"}
    assert own["many"][1] == 1 and 0.7 < own["many"][0] <= 0.7001
    assert own["few"][1] == 0 and 0.65 < own["few"][0] <= 0.6501
    assert own["quiet"] == (0.0, 1)
    assert binding_set({"many": many, "few": few}, labels, 0.05) == {"set": "many", "windows": 20,
                                                                    "events_allowed": 1}
    louder = np.array([[0.9, 0.1]] + [[0.1, 0.9]] * 9)  # now the small set's single window is the highest
    assert binding_set({"many": many, "few": louder}, labels, 0.05) == {"set": "few", "windows": 10,
                                                                       "events_allowed": 0}
    assert choose_threshold({"many": many, "few": louder}, labels, 0.05) == pytest.approx(0.9, abs=1e-4)
    assert binding_set({"quiet": quiet}, labels, 0.05) is None  # threshold 0: nothing sets it


# ---------------------------------------------------------------------------------- the manifest


def test_the_calibration_section_round_trips_through_the_manifest(uncalibrated):
    manifest = load_package(uncalibrated).manifest
    assert manifest.calibration is None and "calibration" not in manifest.to_dict()
    data = {**manifest.to_dict(), "calibration": CALIBRATION}
    parsed = Manifest.from_dict(data)
    assert parsed.calibration == Calibration(**CALIBRATION) and parsed.calibration.threshold == 0.3
    assert Manifest.from_dict(parsed.to_dict()) == parsed and parsed.to_dict()["calibration"] == CALIBRATION


@pytest.mark.parametrize("change, words", [
    ({"temperature": -1.0}, "temperature must be a number in (0"),
    ({"temperature": 0}, "temperature"),
    ({"threshold": 1.5}, "threshold must be a number in [0, 1]"),
    ({"threshold": -0.1}, "threshold"),
    ({"threshold": "0.5"}, "threshold"),
    ({"clips": 0}, "clips must be an integer >= 1"),
    ({"nll_after": -1}, "nll_after"),
    ({"false_event_rate": {"static": 2}}, "false_event_rate"),
    ({"temprature": 1.0}, "did you mean 'temperature'"),
])
def test_the_manifest_refuses_bad_calibration_values(uncalibrated, change, words):
    data = {**load_package(uncalibrated).manifest.to_dict(), "calibration": {**CALIBRATION, **change}}
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(data)
    assert words in str(err.value)


def test_a_package_with_a_calibration_section_loads_with_it(calibrated):
    package = load_package(calibrated)
    assert package.manifest.calibration == Calibration(**CALIBRATION)
    assert package.onnx_bytes == load_package(DEFAULT_PACKAGE).onnx_bytes


# ---------------------------------------------------------------------------------- the Recognizer


def test_a_package_without_calibration_behaves_as_before(uncalibrated):
    with Recognizer(uncalibrated) as rec:
        assert rec.threshold == 0.0 and rec.temperature == 1.0
        windows = list(rec.windows(DEMO))
        pred = rec.recognize(DEMO)
    assert len(windows) == 9
    for w in windows:
        np.testing.assert_allclose(w.scores, softmax(w.logits))  # uncalibrated softmax of the raw output
        assert w.label == w.top_label == rec.labels[int(np.argmax(w.logits))] != NONE
    assert pred.label == pred.top_label in rec.labels and pred.threshold == 0.0
    assert [w.label for w in pred.windows] == [w.label for w in windows]
    assert set(pred.to_dict()["windows"][0]) == {"start_s", "end_s", "label", "score"}


def test_a_high_threshold_makes_a_real_clips_windows_none_and_zero_does_not(calibrated):
    with Recognizer(calibrated) as rec:  # the package's threshold, 0.3, and temperature, 1.5
        assert (rec.threshold, rec.temperature) == (0.3, 1.5) and "'none' under 0.3" in repr(rec)
        shipped = list(rec.windows(DEMO))
    with Recognizer(calibrated, threshold=0) as rec:
        never = list(rec.windows(DEMO))
        never_video = rec.recognize(DEMO)
    for w in shipped:
        np.testing.assert_allclose(w.scores, softmax(w.logits / 1.5))  # calibrated scores
        assert w.label == (NONE if w.score < 0.3 else w.top_label)
    assert all(w.label != NONE and w.label == w.top_label for w in never) and never_video.label != NONE
    highest = max(w.score for w in never)
    assert highest < 1
    high = (highest + 1) / 2
    with Recognizer(calibrated, threshold=high) as rec:
        silenced = list(rec.windows(DEMO))
        video = rec.recognize(DEMO)
    assert [w.label for w in silenced] == [NONE] * len(never)
    assert [w.top_label for w in silenced] == [w.label for w in never]  # the best real label is still there
    assert video.label == NONE and video.top_label == never_video.label and video.threshold == high
    out = video.to_dict()
    assert out["label"] == NONE and out["top_label"] == never_video.label and out["threshold"] == high
    assert out["windows"][0]["label"] == NONE and out["windows"][0]["top_label"] == never[0].label


@pytest.mark.parametrize("threshold", [1.5, -0.1, "0.5", True, float("nan")])
def test_the_recognizer_refuses_a_bad_threshold(uncalibrated, threshold):
    with pytest.raises(ConfigError, match="threshold must be a number in"):
        Recognizer(uncalibrated, threshold=threshold)


def test_recognize_threshold_flag_reports_none_in_json(calibrated):
    def run(threshold):
        r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", str(DEMO), "--package", str(calibrated),
                            "--threshold", threshold, "--json"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    silenced, never = run("1"), run("0")
    assert silenced["label"] == NONE and silenced["top_label"] == never["label"] != NONE
    assert {w["label"] for w in silenced["windows"]} == {NONE} and NONE not in {w["label"] for w in never["windows"]}


# ------------------------------------------------------------------------------------ edgekit calibrate


def test_calibrate_writes_a_verifiable_package_with_the_same_onnx(uncalibrated, tiny_data, tmp_path, capsys):
    out = tmp_path / "calibrated.edgepkg"
    code = cli_main(["calibrate", str(uncalibrated), "--data", str(tiny_data), "--noise-clips", "2",
                     "-o", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    before, after = load_package(uncalibrated), load_package(out)  # load_package verifies every checksum
    assert after.onnx_bytes == before.onnx_bytes
    assert (after.labels, after.inputs, after.outputs, after.precision) == (
        before.labels, before.inputs, before.outputs, before.precision)
    calibration = after.manifest.calibration
    assert calibration.split == "val" and calibration.clips == 15  # one val clip of each of the 15 classes
    assert calibration.rule == "max_false_event_rate=0.05" and 0 <= calibration.threshold <= 1
    assert calibration.nll_after <= calibration.nll_before + 1e-9 and calibration.temperature > 0
    assert set(calibration.false_event_rate) == {"static", "noise"}
    assert report["calibration"] == calibration.to_dict() and report["negative_windows"]["static"] == 1
    assert report["negative_windows"]["noise"] == 6  # 2 noise-only clips of 96 frames: 3 windows each
    assert report["integrity_sha256"] == after.integrity_sha256 and report["signed"] is False
    binding = report["binding"]  # the set whose own threshold is the chosen one (None: threshold 0)
    if calibration.threshold > 0:
        assert binding["set"] in ("static", "noise")
        assert binding["windows"] == report["negative_windows"][binding["set"]]
        assert calibration.false_event_rate[binding["set"]] <= 0.05
    else:
        assert binding is None
    with Recognizer(out) as rec:
        assert rec.threshold == calibration.threshold and rec.temperature == calibration.temperature


def test_calibrate_with_a_fixed_threshold_stores_it(uncalibrated, tiny_data, tmp_path):
    out = tmp_path / "fixed.edgepkg"
    assert cli_main(["calibrate", str(uncalibrated), "--data", str(tiny_data), "--noise-clips", "0",
                     "--threshold", "0.42", "-o", str(out)]) == 0
    calibration = load_package(out).manifest.calibration
    assert (calibration.threshold, calibration.rule, dict(calibration.false_event_rate)) == (
        0.42, "fixed", {"static": calibration.false_event_rate["static"]})


def test_calibrate_holds_the_rate_on_a_folder_of_negatives(uncalibrated, tiny_data, tmp_path, capsys):
    """--negatives: every video under the folder is a negative set of its own; at rate 0 the chosen
    threshold leaves none of its windows an event (checked through the Recognizer), and it is at
    least the threshold chosen without it."""
    import shutil

    from edgekit.calibration import NO_EVENT_LABELS

    folder = tmp_path / "quiet"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(DEMO, folder / "sub" / "camera-1.mp4")  # a clip with events: the threshold must silence them
    (folder / "notes.txt").write_text("not a video")
    plain, with_negatives = tmp_path / "plain.edgepkg", tmp_path / "negatives.edgepkg"
    common = ["calibrate", str(uncalibrated), "--data", str(tiny_data), "--noise-clips", "0",
              "--max-false-event-rate", "0", "--json"]
    assert cli_main([*common, "-o", str(plain)]) == 0
    capsys.readouterr()
    assert cli_main([*common, "--negatives", str(folder), "-o", str(with_negatives)]) == 0
    report = json.loads(capsys.readouterr().out)
    calibration = load_package(with_negatives).manifest.calibration
    with Recognizer(uncalibrated, threshold=0) as rec:
        windows = len(list(rec.windows(str(folder / "sub" / "camera-1.mp4"))))
    assert report["negative_windows"]["negatives:quiet"] == windows > 0
    assert calibration.false_event_rate["negatives:quiet"] == 0.0
    assert calibration.threshold >= load_package(plain).manifest.calibration.threshold
    with Recognizer(with_negatives) as rec:
        labels = [w.label for w in rec.windows(str(folder / "sub" / "camera-1.mp4"))]
    assert labels and all(label in NO_EVENT_LABELS for label in labels)
    # the temperature is fitted on the labelled clips only: the negatives do not move it
    assert calibration.temperature == load_package(plain).manifest.calibration.temperature
    # at rate 0 no window of any set may stay an event: the text report names the set that set the
    # threshold and says that its one highest-scoring window did
    binding = report["binding"]
    assert binding["events_allowed"] == 0 and binding["windows"] == report["negative_windows"][binding["set"]]
    text = [a for a in common if a != "--json"]
    assert cli_main([*text, "--negatives", str(folder), "-o", str(tmp_path / "text.edgepkg")]) == 0
    out = capsys.readouterr().out
    assert f"  set by {binding['set']}: {binding['windows']} windows, at most 0 of them events\n" in out
    assert f"so the one highest-scoring event window of {binding['set']} sets the threshold" in out


def test_negative_folders_are_listed_and_named(tmp_path):
    from edgekit.calibration import negative_clips, negative_set_names
    from edgekit.errors import SourceError

    (tmp_path / "readme.txt").write_text("no video here")
    with pytest.raises(SourceError, match="holds no video"):
        negative_clips(tmp_path)

    assert negative_clips(DEMO.parent) and all(label is None for _, label in negative_clips(DEMO.parent))
    assert negative_set_names(["/a/cams", "/b/cams", "/c/other"]) == ["negatives:cams", "negatives:cams#2",
                                                                        "negatives:other"]
    with pytest.raises(SourceError, match="no such folder"):
        negative_clips("/nonexistent/quiet")


@pytest.mark.parametrize("argv, words", [
    (["--negatives", "/nonexistent/quiet"], "no such folder of clips without a motion event"),
    (["--threshold", "1.5"], "--threshold is a score between 0 and 1"),
    (["--max-false-event-rate", "-0.1"], "--max-false-event-rate is a fraction between 0 and 1"),
    (["--noise-clips", "-1"], "--noise-clips must be a whole number >= 0"),
    (["--threshold", "0.5", "--max-false-event-rate", "0.1"], "not allowed with argument"),
    (["--data", "/nonexistent/folder"], "/nonexistent/folder"),
])
def test_calibrate_bad_input_exits_2_in_one_line(uncalibrated, tiny_data, tmp_path, argv, words):
    args = ["calibrate", str(uncalibrated), "--data", str(tiny_data), "-o", str(tmp_path / "x.edgepkg"), *argv]
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert words in r.stderr and r.stderr.strip().splitlines()[-1].startswith("edgekit")
    assert not (tmp_path / "x.edgepkg").exists()


def test_calibrate_refuses_to_overwrite_its_input_and_an_unsigned_copy_of_a_signed_package(uncalibrated, tmp_path,
                                                                                          capsys):
    assert cli_main(["calibrate", str(uncalibrated), "--data", str(tmp_path), "-o", str(uncalibrated)]) == 2
    assert "-o must name a new file" in capsys.readouterr().err
    pytest.importorskip("cryptography", reason="signing needs edgekit[sign] (cryptography)")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = tmp_path / "key.pem"
    key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    package = load_package(uncalibrated)
    signed = rewrite_package(package, tmp_path / "signed.edgepkg", package.manifest, sign_key=key)
    assert load_package(signed, trusted_keys=[key]).signed_by is not None
    assert cli_main(["calibrate", str(signed), "--data", str(tmp_path), "-o", str(tmp_path / "y.edgepkg")]) == 2
    assert "is signed" in capsys.readouterr().err and not (tmp_path / "y.edgepkg").exists()


# ------------------------------------------------------------------------------------- quantization


def test_quantization_fits_the_temperature_and_sets_a_threshold_only_with_enough_static_clips(tmp_path):
    pytest.importorskip("onnxruntime.quantization")
    from quantize.core import MIN_STATIC_CLIPS, calibrate_scores

    package = load_package(DEFAULT_PACKAGE)
    model = tmp_path / "int8.onnx"
    model.write_bytes(package.onnx_bytes)
    spec, labels = package.inputs[0], list(package.labels)
    rng = np.random.default_rng(1)
    inputs = [{spec.name: rng.normal(0, 1, spec.shape).astype(np.float32)} for _ in range(MIN_STATIC_CLIPS + 4)]
    static, left = labels.index("static"), labels.index("move_left")
    samples = [(x, static) for x in inputs[:MIN_STATIC_CLIPS]] + [(x, left) for x in inputs[MIN_STATIC_CLIPS:]]
    calibration = calibrate_scores(model, samples, labels)
    assert calibration.clips == MIN_STATIC_CLIPS + 4 and calibration.rule == "max_false_event_rate=0.05"
    assert calibration.nll_after <= calibration.nll_before and calibration.false_event_rate["static"] <= 0.05
    few = calibrate_scores(model, samples[MIN_STATIC_CLIPS - 5:], labels)  # 5 static clips
    assert few.threshold == 0 and few.rule.startswith("fixed: fewer than 20 static")
    assert calibrate_scores(model, [], labels) is None
