"""``edgekit profile --layers`` (ONNX Runtime profiler, OpenVINO counters) and ``--report OUT.html``."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from edgekit.errors import ConfigError
from edgekit.profile import format_text, profile

CLIP = "320x240@25"
CLIP_SECONDS = 2.4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgekit.cli", "profile", *map(str, args)], capture_output=True,
                          text=True, timeout=180)


def _check_layers(section: dict, backend: str) -> None:
    assert section["backend"] == backend and section["runs"] >= 1 and section["windows"] >= 1
    rows = section["layers"]
    assert len(rows) > 5
    assert [r["total_us"] for r in rows] == sorted((r["total_us"] for r in rows), reverse=True)
    for row in rows:
        assert row["name"] and row["op_type"] and row["count"] >= 1 and row["total_us"] >= 0
        assert row["mean_us"] == pytest.approx(row["total_us"] / row["count"], abs=1e-2)
    assert sum(r["share"] for r in rows) == pytest.approx(section["layer_share"], rel=1e-2, abs=1e-3)
    assert 0 < section["layer_share"] <= 1.0 + 1e-6
    assert section["inference_mean_us"] > 0
    assert {k["op_type"] for k in section["op_types"]} == {r["op_type"] for r in rows}


def test_onnxruntime_layers_on_the_default_package():
    report = profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, runs=1, layers=True)
    _check_layers(report["layers"], "onnxruntime")
    assert any(r["op_type"] in ("QLinearConv", "Conv", "FusedConv") for r in report["layers"]["layers"])
    text = format_text(report)
    assert "layers: onnxruntime/cpu" in text and "op type" in text and "by op type:" in text
    json.dumps(report)


def test_openvino_layers_on_the_default_package():
    pytest.importorskip("openvino")
    report = profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, runs=1, layers=True, backend="openvino")
    _check_layers(report["layers"], "openvino")
    assert any("Convolution" in r["op_type"] for r in report["layers"]["layers"])
    assert "layers: openvino/" in format_text(report)


def test_no_layers_section_unless_asked():
    report = profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, runs=1)
    assert "layers" not in report and "per_window_ms" not in report


def test_layer_profile_needs_inputs():
    from edgekit.profile import layer_profile

    with pytest.raises(ConfigError):
        layer_profile(None, None, [])


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_cli_report_is_self_contained_html_with_pngs(tmp_path):
    import base64

    pytest.importorskip("matplotlib")
    out = tmp_path / "prof.html"
    result = _cli("--synthetic", CLIP, "--synthetic-seconds", CLIP_SECONDS, "--runs", 1, "--layers", "--report", out,
                  "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["report"]["html"] == str(out) and "per_window_ms" not in report
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page
    parser = _Images()
    parser.feed(page)
    assert {"html", "head", "body", "table", "img"} <= set(parser.tags)
    assert len(parser.sources) == 4 and all(s.startswith("data:image/png;base64,") for s in parser.sources)
    for src in parser.sources:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    for name in ("stages", "breakdown", "timeline", "layers"):
        png = tmp_path / f"prof_{name}.png"
        assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_report_in_a_missing_folder_exits_2(tmp_path):
    result = _cli("--synthetic", CLIP, "--runs", 1, "--report", tmp_path / "missing" / "prof.html")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
    assert not (tmp_path / "missing").exists()


def test_report_without_matplotlib_is_a_one_line_hint(tmp_path, monkeypatch):
    from edgekit.errors import MissingDependencyError
    from edgekit.profile_report import write_report

    report = profile(synthetic=CLIP, synthetic_seconds=CLIP_SECONDS, runs=1, per_window=True)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingDependencyError, match="pip install matplotlib"):
        write_report(report, tmp_path / "r.html")
    assert not list(tmp_path.iterdir())


def test_runtime_import_does_not_load_matplotlib():
    code = ("import sys, edgekit, edgekit.profile, edgekit.profile_report, edgekit.cli.runtime; "
            "print(any(m.split('.')[0] in ('matplotlib', 'torch') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
