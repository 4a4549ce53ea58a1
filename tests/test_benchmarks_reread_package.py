"""benchmarks/reread_package.py writes a copy of a package whose Recognizer reads with another
vector margin (min_gain), with the same model bytes, labels and calibration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from benchscripts import BENCHMARKS, run_benchmark


def test_the_copy_reads_with_the_new_margin_and_keeps_the_model(tmp_path):
    import edgekit
    from edgekit.package import load_package
    from edgekit.recognizer import DEFAULT_PACKAGES

    out = tmp_path / "reread.edgepkg"
    report = run_benchmark("reread_package.py", "--package", DEFAULT_PACKAGES["mvr"], "--min-gain", 6, "-o", out)
    assert report["min_gain"] == {"before": 4.0, "after": 6.0} and Path(report["output"]) == out
    before, after = load_package(DEFAULT_PACKAGES["mvr"]), load_package(out)  # verifies every checksum
    assert after.integrity_sha256 == report["integrity_sha256"]
    assert after.onnx_bytes == before.onnx_bytes and after.labels == before.labels
    assert after.manifest.calibration == before.manifest.calibration
    assert after.manifest.preprocessing.extra["cache_spec"]["min_gain"] == 6.0
    demo = str(Path(edgekit.__file__).parent / "assets" / "demo.mp4")
    scores = {}
    for name, path in (("before", DEFAULT_PACKAGES["mvr"]), ("after", out)):
        with edgekit.Recognizer(path) as recognizer:
            scores[name] = np.stack([w.scores for w in recognizer.windows(demo)])
    # a wider margin drops vectors the shipped one keeps: the same model scores the demo differently
    assert scores["before"].shape == scores["after"].shape and not np.allclose(scores["before"], scores["after"])


def test_a_margin_out_of_range_is_refused_in_one_line(tmp_path):
    from edgekit.recognizer import DEFAULT_PACKAGES

    proc = subprocess.run([sys.executable, str(BENCHMARKS / "reread_package.py"), "--package",
                           str(DEFAULT_PACKAGES["mvr"]), "--min-gain", "300", "-o", str(tmp_path / "x.edgepkg")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "min_gain" in proc.stderr, proc.stderr
    assert not (tmp_path / "x.edgepkg").exists()
