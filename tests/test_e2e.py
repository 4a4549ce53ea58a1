"""The whole path on the tiny synthetic preset: synth -> cache -> train -> INT8 -> package -> Recognizer,
on CPU (ONNX Runtime) and OpenVINO, on real encoded clips of both codecs, with a torch-free runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import PackageError
from edgekit.recognizer import Recognizer
from media import moving_square_clip


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from training.__main__ import main as training_main
    from quantize.__main__ import main as quantize_main
    from edgekit.cli import main as edgekit_main

    root = tmp_path_factory.mktemp("e2e")
    assert training_main(["synth", "--preset", "tiny", "--clips-per-class", "4", "--out", str(root / "synth"),
                          "--json"]) == 0
    sets = ["model.size=64", "train.epochs=2", "train.batch_size=16", "data.workers=0",
            f"data.dataset='{root / 'synth'}'", f"data.cache='{root / 'cache'}'", f"train.out='{root / 'run'}'",
            "stage.init_from=''"]  # stage 2 of the default's recipe, from scratch here
    assert training_main(["train", "--config", "training/configs/edge-mvr.toml", "--json",
                          *[a for s in sets for a in ("--set", s)]]) == 0
    assert quantize_main(["--checkpoint", str(root / "run" / "best.json"), "--out", str(root / "model"),
                          "--calib-clips", "8", "--latency-runs", "3", "--json"]) == 0
    # a two-epoch model is near chance: INT8 flips decide its top-1, so the accuracy guard is not what this tests
    assert edgekit_main(["export", str(root / "model"), "--device", "cpu", "--max-int8-drop", "100",
                         "-o", str(root / "m.edgepkg")]) == 0
    return root


def test_training_logged_every_epoch_and_checkpointed(package):
    lines = [json.loads(x) for x in (package / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and all(np.isfinite(x["train_loss"]) for x in lines)
    meta = json.loads((package / "run" / "last.json").read_text())
    assert meta["model"] == "edge-mvr" and meta["epoch"] == 1 and len(meta["classes"]) == 17


def test_quantization_report_is_complete(package):
    report = json.loads((package / "model" / "report.json").read_text())
    assert report["size_bytes"]["int8"] < report["size_bytes"]["fp32"]
    assert {"cpu_fp32", "cpu_int8", "openvino_fp32", "openvino_int8"} <= set(report["top1"])
    assert all(v["median"] > 0 for v in report["latency_ms"].values())
    assert (package / "model" / "report.md").read_text().startswith("# Quantization report")


@pytest.mark.parametrize("codec,bframes", [("mpeg4", 0), ("h264", 0), ("h264", 2)])
def test_cpu_and_openvino_agree_on_real_clips(package, tmp_path, codec, bframes):
    clip = tmp_path / "clip.mp4"
    moving_square_clip(clip, codec, size=(128, 96), frames=48, motion=(3, 0), square=32, bframes=bframes)
    with Recognizer(package / "m.edgepkg") as cpu, Recognizer(package / "m.edgepkg", backend="openvino") as ov:
        a, b = cpu.recognize(clip), ov.recognize(clip)
    assert len(a.windows) == len(b.windows) >= 2
    assert a.label in cpu.labels
    # A two-epoch model scores every class near 1/17: the top two can lie closer together than INT8
    # kernels of two runtimes agree, so a different top-1 is allowed only within that margin.
    top_b = dict(b.topk)
    assert a.label == b.label or (a.label in top_b and b.score - top_b[a.label] < 0.002)
    np.testing.assert_allclose([w.score for w in a.windows], [w.score for w in b.windows], atol=0.02)
    assert a.windows[0].start_s == 0 and a.windows[-1].end_s == pytest.approx(48 / 25, abs=0.05)
    assert cpu.backend.name == "onnxruntime" and ov.backend.name == "openvino"
    lat = a.latency_ms
    assert lat.total >= lat.decode + lat.preprocess + lat.inference > 0


def test_stream_yields_windows_before_the_source_ends(package, tmp_path):
    import threading

    clip = tmp_path / "raw.h264"
    moving_square_clip(clip, "h264", size=(128, 96), frames=72, motion=(3, 0), square=32, container="h264")
    data = clip.read_bytes()
    released = threading.Event()

    def camera():  # an encoder's output: the last third only comes once the first window is out
        cut = 2 * len(data) // 3
        for i in range(0, cut, 2048):
            yield data[i:min(i + 2048, cut)]
        assert released.wait(timeout=60), "the recognizer waited for the end of the stream"
        yield data[cut:]

    with Recognizer(package / "m.edgepkg") as rec:
        windows = rec.stream(camera(), timeout_s=90)
        first = next(windows)
        released.set()
        rest = list(windows)
    assert first.start_s == 0 and len(rest) >= 1


def test_tampered_package_is_refused(package, tmp_path):
    import zipfile

    bad = tmp_path / "bad.edgepkg"
    with zipfile.ZipFile(package / "m.edgepkg") as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "model.onnx":
                data = data[:-10] + bytes(b ^ 1 for b in data[-10:])
            dst.writestr(item, data)
    with pytest.raises(PackageError, match="model.onnx"):
        Recognizer(bad)


def test_runtime_recognizes_without_torch(package, tmp_path):
    clip = tmp_path / "clip.mp4"
    moving_square_clip(clip, "mpeg4", size=(128, 96), frames=48, motion=(3, 0), square=32)
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgekit.recognizer import Recognizer\n"
            f"r = Recognizer({str(package / 'm.edgepkg')!r}).recognize({str(clip)!r})\n"
            "assert not any(m.startswith('torch') for m, v in sys.modules.items() if v is not None)\n"
            "print(r.label)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in Recognizer(package / "m.edgepkg").labels


def test_recognize_cli_json_has_the_documented_keys(package, tmp_path):
    clip = tmp_path / "clip.mp4"
    moving_square_clip(clip, "mpeg4", size=(128, 96), frames=48, motion=(3, 0), square=32)
    r = subprocess.run([sys.executable, "-m", "edgekit.cli", "recognize", str(clip), "--package",
                        str(package / "m.edgepkg"), "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"source", "label", "score", "topk", "windows", "latency_ms"} <= set(out)
    assert set(out["windows"][0]) == {"start_s", "end_s", "label", "score"}
    assert set(out["topk"][0]) == {"label", "score"}
