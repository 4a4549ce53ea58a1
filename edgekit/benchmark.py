"""``edgekit benchmark``: models by device and precision in one table, with a CI gate.

>>> from edgekit.benchmark import benchmark, format_text, gate_failures
>>> report = benchmark(["models/edge-mvr", "my.edgepkg"], devices=["onnxruntime", "openvino"],
...                    precisions=["fp32", "int8"], data="data/synth-small-motion", floor=0.8, max_int8_drop=1.0)
>>> print(format_text(report))
>>> report["passed"]                     # False when a row failed or fell under a gate

Each model is a ``.edgepkg`` (benchmarked at its own precision) or a quantization ``MODEL_DIR``
(``model.json`` + ``fp32.onnx`` / ``int8.onnx``), from which a package is written for each device and
precision into a temporary folder (``edgekit.package.write_package``). Each row runs the package with
an ``edgekit.Recognizer``:

- ``status``: ``passed``; ``exported but failed validation`` (the package was written and loaded,
  but recognizing the clips raised an error, or its top-1 fell under ``floor``, or INT8 lost more
  than ``max_int8_drop`` points against the FP32 row of the same model and device); ``failed`` (the
  package could not be written, verified or loaded on the backend). ``error``: one line saying why.
- ``size_mb``: the package file.
- ``top1``: fused top-1 (fraction) over the test split of ``data``, a dataset in the UCF-101 layout
  (``python -m training synth`` writes one), each clip's class being its folder; ``top1_change``:
  points (100 x difference) against the FP32 row of the same model and device.
- ``ms_p50`` / ``ms_p99``: milliseconds per window (``Window.times.total``: decode + preprocess +
  inference) over every window of the measured passes; ``windows_per_s`` and ``realtime_factor``
  (seconds of video per second of wall time) over the same passes. Without ``data`` the clip is the
  bundled demo clip and the accuracy columns are empty.

Runtime dependencies only (numpy, PyAV, ONNX Runtime; OpenVINO for its rows): no torch.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import ConfigError, SourceError

PASSED = "passed"
INVALID = "exported but failed validation"
FAILED = "failed"
PRECISION_NAMES = ("fp32", "int8")
GATE_EXIT_CODE = 3  # what `edgekit benchmark` exits with when report["passed"] is False

COLUMNS = (  # (JSON key, header, format)
    ("model", "model", "{}"),
    ("device", "device", "{}"),
    ("precision", "precision", "{}"),
    ("status", "status", "{}"),
    ("size_mb", "size MB", "{:.2f}"),
    ("top1", "top-1 %", "pct"),
    ("top1_change", "top-1 change", "{:+.1f}"),
    ("ms_p50", "ms p50", "{:.1f}"),
    ("ms_p99", "ms p99", "{:.1f}"),
    ("windows_per_s", "windows/s", "{:.1f}"),
    ("realtime_factor", "real-time x", "{:.1f}"),
)


@dataclass(frozen=True)
class Clip:
    path: str
    label: str | None  # None without --data


def parse_list(text: str | None, flag: str) -> list[str] | None:
    """``"a,b"`` -> ["a", "b"] (order kept, repeats dropped); None -> None; empty items: ConfigError."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise ConfigError(f"{flag} takes comma-separated names without empty items, got {text!r}")
    return list(dict.fromkeys(items))


def _check_devices(devices: list[str]) -> list[tuple[str, str | None, str | None]]:
    """Each word -> (word, device, backend): a runtime word (onnxruntime, openvino, tensorrt) is a
    backend, anything else a device (cpu, gpu, npu, a profile). Unknown words: ConfigError."""
    from targets.backend import BACKEND_NAMES, select_backend

    entries = []
    for word in devices:
        if word in BACKEND_NAMES:
            select_backend("cpu" if word != "tensorrt" else "gpu", word)
            entries.append((word, None, word))
        else:
            select_backend(word)  # an unknown device or profile: ConfigError, exit 2
            entries.append((word, word, None))
    return entries


def _check_model(path: str) -> str:
    """"package" or "model_dir" for ``path``; ConfigError for anything else."""
    p = Path(path)
    if p.is_dir():
        if not (p / "model.json").is_file():
            raise ConfigError(f"{path} is a folder without model.json; pass a quantization MODEL_DIR or an .edgepkg")
        return "model_dir"
    if p.is_file():
        return "package"
    raise ConfigError(f"{path}: no such package or model folder")


def dataset_clips(data: str | os.PathLike) -> list[Clip]:
    """The test split of ``data`` (UCF-101 layout, as ``python -m training synth`` writes it), each
    clip labelled with its class folder. Raises ConfigError / SourceError for a tree that is not one."""
    from training.datasets import open_dataset  # file listing only: no torch

    split = open_dataset(data, layout="auto", split="test")
    clips = [Clip(str(sample.path), sample.label_name) for sample in split]
    if not clips:
        raise SourceError(f"{data}: the test split holds no clips")
    return clips


def demo_clips() -> list[Clip]:
    from edgekit.recognizer import ASSETS

    demo = ASSETS / "demo.mp4"
    if not demo.is_file():
        raise ConfigError(f"the bundled demo clip is missing from this installation ({demo})")
    return [Clip(str(demo), None)]


def benchmark(models=None, *, devices: list[str] | None = None, precisions: list[str] | None = None,
              data: str | os.PathLike | None = None, floor: float | None = None,
              max_int8_drop: float | None = None, runs: int = 1, warmup: int = 1,
              threads: int | None = None) -> dict:
    """Benchmark each of ``models`` (paths: ``.edgepkg`` or MODEL_DIR; None or empty: the bundled
    default package) on each of ``devices`` (words
    as ``edgekit.Recognizer`` takes: a backend — onnxruntime, openvino, tensorrt — or a device — cpu,
    gpu, npu, a profile; default: a package's own target, ``cpu`` for a MODEL_DIR) and, for a
    MODEL_DIR, each of ``precisions`` (default: the ones it holds). ``data``: a dataset folder for
    top-1 (default: speed only, on the bundled demo clip). ``floor``: the least top-1 (a fraction,
    0-1) a row must reach; ``max_int8_drop``: the most points an INT8 row may lose against FP32.
    ``runs`` measured passes over the clips after ``warmup`` passes over the first clip.

    Returns one JSON-ready dict: ``rows`` (see the module docstring), ``clips``, ``data``, the
    gates, and ``passed`` (every row passed). Bad arguments raise :class:`ConfigError` (or
    :class:`SourceError` for ``data``) before anything runs; a row's own failure is in its row.
    """
    if models is None or (isinstance(models, (list, tuple)) and not models):
        from edgekit.recognizer import DEFAULT_PACKAGE

        models = [DEFAULT_PACKAGE]
    models = [os.fspath(m) for m in (models if isinstance(models, (list, tuple)) else [models])]
    for name, value in (("runs", runs), ("warmup", warmup)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "runs" else 0):
            raise ConfigError(f"{name} must be a whole number >= {1 if name == 'runs' else 0}, got {value!r}")
    if precisions is not None:
        bad = [p for p in precisions if p not in PRECISION_NAMES]
        if bad or not precisions:
            raise ConfigError(f"precisions are {', '.join(PRECISION_NAMES)}; got {', '.join(bad) or 'none'}")
    if floor is not None and not (isinstance(floor, (int, float)) and 0 <= floor <= 1):
        raise ConfigError(f"floor is a top-1 fraction between 0 and 1 (0.8 for 80 %), got {floor!r}")
    if max_int8_drop is not None and not (isinstance(max_int8_drop, (int, float)) and 0 <= max_int8_drop <= 100):
        raise ConfigError(f"max_int8_drop is in points between 0 and 100, got {max_int8_drop!r}")
    if data is None and (floor is not None or max_int8_drop is not None):
        raise ConfigError("the floor and the INT8 drop gate need top-1: pass a dataset (--data DIR)")
    entries = _check_devices(devices) if devices else None
    kinds = [_check_model(m) for m in models]
    clips = dataset_clips(data) if data is not None else demo_clips()

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-benchmark-") as tmp:
        for index, (model, kind) in enumerate(zip(models, kinds)):
            model_entries = entries or [("cpu", "cpu", None) if kind == "model_dir" else ("target", None, None)]
            if kind == "model_dir":
                wanted = precisions or [p for p in PRECISION_NAMES if (Path(model) / f"{p}.onnx").is_file()] \
                    or list(PRECISION_NAMES)
            for word, device, backend in model_entries:
                if kind == "package":
                    rows.append(_run_row(index, model, model, word, device, backend, None, clips, runs, warmup,
                                         threads))
                    continue
                for precision in wanted:
                    out = Path(tmp) / f"{index}-{len(rows)}-{precision}.edgepkg"
                    rows.append(_run_row(index, model, out, word, device, backend, precision, clips, runs, warmup,
                                         threads, model_dir=model))
    _compare_and_gate(rows, floor, max_int8_drop)
    for row in rows:
        row.pop("_key")
    return {"benchmark": "edgekit benchmark", "data": os.fspath(data) if data is not None else None,
            "clips": len(clips), "clip": clips[0].path if data is None else None, "runs": runs, "warmup": warmup,
            "floor": floor, "max_int8_drop": max_int8_drop, "rows": rows,
            "passed": all(row["status"] == PASSED for row in rows)}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _run_row(index: int, model: str, package_path, word: str, device, backend, precision, clips: list[Clip],
             runs: int, warmup: int, threads, *, model_dir: str | None = None) -> dict:
    from edgekit import Recognizer
    from edgekit.package import load_package, write_package

    row = {"model": model, "device": word, "backend": None, "selection": None, "precision": precision,
           "status": FAILED, "error": None, "size_mb": None, "top1": None, "top1_change": None, "clips": 0,
           "windows": 0, "ms_p50": None, "ms_p99": None, "windows_per_s": None, "realtime_factor": None,
           "_key": (index, word)}
    try:
        if model_dir is not None:  # the export step: a package for this device and precision
            write_package(model_dir, package_path, device=device or "cpu", backend=backend, precision=precision)
        package = load_package(package_path)
        row["precision"] = package.manifest.precision
        row["size_mb"] = round(Path(package_path).stat().st_size / 1e6, 3)
        recognizer = Recognizer(package, device=device, backend=backend, threads=threads)
    except Exception as err:  # noqa: BLE001 - typed errors, OSError, a backend's own types while compiling
        row["error"] = _one_line(err)
        return row
    row["backend"], row["selection"] = recognizer.selection.backend, str(recognizer.selection)
    if word == "target":
        row["device"] = str(recognizer.selection)
    try:
        with recognizer:
            row.update(_measure(recognizer, clips, runs, warmup))
        row["status"] = PASSED
    except Exception as err:  # noqa: BLE001 - any failure on the clips is this row's result, not a crash
        row["status"], row["error"] = INVALID, _one_line(err)
    return row


def _measure(recognizer, clips: list[Clip], runs: int, warmup: int) -> dict:
    import numpy as np

    from edgekit.fusion import fuse

    for _ in range(warmup):
        for _window in recognizer.windows(clips[0].path):
            pass
    times: list[float] = []
    correct = labelled = 0
    video_s = wall_s = 0.0
    for run in range(runs):
        for clip in clips:
            t0 = time.perf_counter()
            windows_run = recognizer.windows(clip.path)
            windows = list(windows_run)
            wall_s += time.perf_counter() - t0
            times += [w.times.total for w in windows]
            fps = windows_run.reader.info.fps or 25.0
            video_s += windows_run.frames / fps
            if run == 0 and clip.label is not None:
                scores = fuse([w.scores for w in windows])
                labelled += 1
                correct += recognizer.labels[int(np.argmax(scores))] == clip.label
    ms = np.asarray(times, np.float64)
    return {"clips": len(clips), "windows": len(times),
            "top1": round(correct / labelled, 4) if labelled else None,
            "ms_p50": round(float(np.percentile(ms, 50)), 3), "ms_p99": round(float(np.percentile(ms, 99)), 3),
            "windows_per_s": round(len(times) / wall_s, 2) if wall_s > 0 else None,
            "realtime_factor": round(video_s / wall_s, 2) if wall_s > 0 else None}


def _compare_and_gate(rows: list[dict], floor: float | None, max_int8_drop: float | None) -> None:
    """top1_change against the FP32 row of the same model and device; then the gates."""
    fp32 = {row["_key"]: row for row in rows if row["precision"] == "fp32" and row["top1"] is not None}
    for row in rows:
        base = fp32.get(row["_key"])
        if row["precision"] != "fp32" and base is not None and row["top1"] is not None:
            row["top1_change"] = round(100 * (row["top1"] - base["top1"]), 2)
        if row["status"] != PASSED:
            continue
        problems = []
        if floor is not None and row["top1"] is not None and row["top1"] < floor:
            problems.append(f"top-1 {100 * row['top1']:.1f} % is under the floor {100 * floor:.1f} %")
        if (max_int8_drop is not None and row["precision"] == "int8" and row["top1_change"] is not None
                and -row["top1_change"] > max_int8_drop):
            problems.append(f"INT8 loses {-row['top1_change']:.1f} points against FP32 (at most "
                            f"{max_int8_drop:g} allowed)")
        if problems:
            row["status"], row["error"] = INVALID, "; ".join(problems)


def gate_failures(report: dict) -> list[dict]:
    """The rows that did not pass."""
    return [row for row in report["rows"] if row["status"] != PASSED]


# ------------------------------------------------------------------------------------------- formats


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if key == "model":  # the file or folder name; the JSON keeps the path
        return Path(value).name or value
    if fmt == "pct":
        return f"{100 * value:.1f}"
    return fmt.format(value)


def _table(report: dict) -> tuple[list[str], list[list[str]]]:
    headers = [header for _, header, _ in COLUMNS]
    cells = [[_cell(row, key, fmt) for key, _, fmt in COLUMNS] for row in report["rows"]]
    return headers, cells


def _notes(report: dict) -> list[str]:
    notes = [f"row {i}: {row['error']}" for i, row in enumerate(report["rows"], start=1) if row["error"]]
    what = (f"{report['clips']} test clips of {report['data']}" if report["data"] is not None
            else f"the bundled demo clip, no accuracy ({report['clip']})")
    notes.append(f"{what}; {report['runs']} measured pass(es); ms per window = decode + preprocess + inference")
    notes.append("PASSED" if report["passed"] else f"FAILED: {len(gate_failures(report))} row(s) did not pass")
    return notes


def format_text(report: dict) -> str:
    """A plain text table, one row per model, device and precision, then the errors and a verdict."""
    headers, cells = _table(report)
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [fmt != "{}" for _, _, fmt in COLUMNS]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells]
    return "\n".join(lines + [""] + _notes(report))


def format_markdown(report: dict) -> str:
    """A GitHub markdown table (numbers right-aligned), then the errors and a verdict."""
    headers, cells = _table(report)

    def line(values):
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    align = ["---:" if fmt != "{}" else "---" for _, _, fmt in COLUMNS]
    lines = [line(headers), "|" + "|".join(align) + "|"] + [line(c) for c in cells]
    return "\n".join(lines + [""] + [f"- {note}" for note in _notes(report)])


def format_json(report: dict) -> str:
    return json.dumps(report)
