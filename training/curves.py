"""Training curves as a picture: ``python -m training curves RUN [RUN ...] -o OUT.png``.

Each RUN is a training output folder (``train.out``, holding ``metrics.jsonl``) or a metrics
``.jsonl`` file itself (``docs/results/train-edge-mvr-metrics.jsonl``). ``metrics.jsonl`` holds one
JSON object per epoch, as the trainer (``train``) writes it: ``epoch``, ``train_loss``,
``train_top1``, ``val_top1``, ``val_top5``, ``lr``, ``seconds`` and the objective's ``loss_<term>``
means. The picture (drawn with OpenCV) has two panels: top-1 per epoch (train dashed, validation
solid) and the training loss per epoch, one colour per run, a legend with the run names, axis
labels and ticks. ``--json`` prints a summary per run: epochs, best validation top-1 and its epoch,
final train and validation top-1, total seconds, final loss terms.

A folder that does not exist, a folder without ``metrics.jsonl``, an empty file or a line that is
not a metrics record is refused in one line (ConfigError, exit 2).

examples:
  python -m training curves runs/edge-mvr runs/edge-mv -o curves.png
  python -m training curves docs/results/train-edge-mv*-metrics.jsonl -o curves.png   # the committed runs' metrics
  python -m training curves runs/edge-mvr -o curves.png --json     # also a summary: best val top-1, its epoch, ...
  python -m training curves runs/a runs/b -o curves.png --size 1600x600
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit._fileio import atomic_write
from edgekit.errors import ConfigError

METRICS_FILE = "metrics.jsonl"
REQUIRED_KEYS = ("epoch", "train_loss", "train_top1", "val_top1")
DEFAULT_SIZE = (1400, 560)  # width, height in pixels
MIN_SIZE = (600, 300)
# one colour per run (BGR): the tab10 palette, which stays distinguishable on white
PALETTE_BGR = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
               (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23))
WHITE, BLACK, GRID_GREY, AXIS_GREY = (255, 255, 255), (0, 0, 0), (225, 225, 225), (90, 90, 90)


@dataclass(frozen=True)
class RunMetrics:
    """One run's per-epoch records, in file order. ``epochs``: int (E,); ``train_loss``, ``train_top1``,
    ``val_top1``: float64 (E,), top-1 as fractions (0.95 = 95 %); ``seconds``: float64 (E,) per epoch (0
    where not logged); ``loss_terms``: ``loss_<term>`` -> float64 (E,), NaN where an epoch lacks it."""

    name: str
    path: Path
    epochs: np.ndarray = field(repr=False)
    train_loss: np.ndarray = field(repr=False)
    train_top1: np.ndarray = field(repr=False)
    val_top1: np.ndarray = field(repr=False)
    seconds: np.ndarray = field(repr=False)
    loss_terms: dict = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        """Epochs, best validation top-1 and its epoch (the first, on a tie), final train/val top-1,
        total seconds and the last epoch's loss terms."""
        best = int(np.argmax(self.val_top1))
        return {"name": self.name, "path": str(self.path), "epochs": len(self.epochs),
                "best_val_top1": float(self.val_top1[best]), "best_epoch": int(self.epochs[best]),
                "final_train_top1": float(self.train_top1[-1]), "final_val_top1": float(self.val_top1[-1]),
                "final_train_loss": float(self.train_loss[-1]), "total_seconds": round(float(self.seconds.sum()), 3),
                "final_loss_terms": {k: float(v[-1]) for k, v in self.loss_terms.items() if np.isfinite(v[-1])}}


def read_metrics(run: str | Path) -> RunMetrics:
    """The metrics of ``run``: a training output folder holding ``metrics.jsonl``, or such a file.
    The run's name is the folder's name, or the file's stem without a ``-metrics`` suffix.
    Raises ConfigError for a missing folder or file, an empty file, or a line that is not a JSON
    object with numbers for ``epoch``, ``train_loss``, ``train_top1`` and ``val_top1``."""
    run = Path(run)
    if run.is_dir():
        path, name = run / METRICS_FILE, run.resolve().name
        if not path.is_file():
            raise ConfigError(f"{run} holds no {METRICS_FILE}: give a training output folder (train.out) or a "
                              f"metrics .jsonl file")
    elif run.is_file():
        path, name = run, run.stem.removesuffix("-metrics")
    else:
        raise ConfigError(f"{run} does not exist: give a training output folder (train.out) or a metrics .jsonl "
                          f"file")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not all(_is_number(record.get(k)) for k in REQUIRED_KEYS):
            raise ConfigError(f"{path} line {number} is not a metrics record (a JSON object with numbers for "
                              f"{', '.join(REQUIRED_KEYS)}): is it the metrics.jsonl of 'python -m training train'?")
        records.append(record)
    if not records:
        raise ConfigError(f"{path} is empty: no epoch has finished yet; wait for the first one or check the run")
    terms = sorted({k for r in records for k in r if k.startswith("loss_") and _is_number(r[k])})

    def column(key: str, default: float = math.nan) -> np.ndarray:  # NaN where a record lacks a number
        return np.array([float(r[key]) if _is_number(r.get(key)) else default for r in records], np.float64)

    return RunMetrics(name=name, path=path, epochs=column("epoch").astype(np.int64),
                      train_loss=column("train_loss"), train_top1=column("train_top1"),
                      val_top1=column("val_top1"), seconds=column("seconds", 0.0),
                      loss_terms={term: column(term) for term in terms})


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------------------------------- drawing


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 x 10^k, about ``count`` of them."""
    span = max(high - low, 1e-12)
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high - step * 1e-9:
        ticks.append(round(value, 12))
    return ticks


@dataclass(frozen=True)
class Panel:
    """A plotting area in pixels (``left``, ``top``, ``right``, ``bottom``) and the data ranges it maps."""

    left: int
    top: int
    right: int
    bottom: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def point(self, x: float, y: float) -> tuple[int, int]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = self.left + (x - x0) / max(x1 - x0, 1e-12) * (self.right - self.left)
        py = self.bottom - (y - y0) / max(y1 - y0, 1e-12) * (self.bottom - self.top)
        return int(round(px)), int(round(py))


def draw_curves(runs: list[RunMetrics], size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """The picture of ``runs``: uint8 (height, width, 3) BGR, white background. Left panel: top-1 in %
    (train dashed, val solid); right panel: training loss; both per epoch, one colour per run."""
    import cv2

    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    last_epoch = max(int(r.epochs.max()) for r in runs)
    first_epoch = min(int(r.epochs.min()) for r in runs)
    x_ticks = [t for t in nice_ticks(first_epoch, last_epoch, 8) if first_epoch <= t <= last_epoch] or [first_epoch]
    x_range = (first_epoch, max(last_epoch, first_epoch + 1))
    loss_high = max(float(np.nanmax(r.train_loss)) for r in runs)
    loss_ticks = nice_ticks(0.0, loss_high, 5)
    half = width // 2
    margin_left, margin_right, margin_top, margin_bottom = 78, 24, 46, 62
    top1 = Panel(margin_left, margin_top, half - margin_right, height - margin_bottom, x_range, (0.0, 100.0))
    loss = Panel(half + margin_left, margin_top, width - margin_right, height - margin_bottom, x_range,
                 (0.0, loss_ticks[-1]))
    _axes(cv2, image, top1, "top-1 (%)", "epoch", x_ticks, nice_ticks(0, 100, 5), "top-1 per epoch")
    _axes(cv2, image, loss, "training loss", "epoch", x_ticks, loss_ticks, "loss per epoch")
    for index, run in enumerate(runs):
        colour = PALETTE_BGR[index % len(PALETTE_BGR)]
        _polyline(cv2, image, top1, run.epochs, run.train_top1 * 100, colour, dashed=True)
        _polyline(cv2, image, top1, run.epochs, run.val_top1 * 100, colour, dashed=False)
        _polyline(cv2, image, loss, run.epochs, run.train_loss, colour, dashed=False)
    # legends where the curves rarely are: line styles bottom-right of top-1 (it rises), runs top-right of loss
    _legend(cv2, image, top1, [("train", BLACK, True), ("val", BLACK, False)], corner="bottom-right")
    _legend(cv2, image, loss, [(run.name, PALETTE_BGR[i % len(PALETTE_BGR)], False) for i, run in enumerate(runs)],
            corner="top-right")
    return image


def _text(cv2, image, text: str, origin: tuple[int, int], scale: float = 0.5, colour=BLACK, thickness: int = 1) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def _text_size(cv2, text: str, scale: float = 0.5, thickness: int = 1) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return w, h


def _tick_label(value: float) -> str:
    return f"{value:g}"


def _axes(cv2, image, panel: Panel, y_label: str, x_label: str, x_ticks, y_ticks, title: str) -> None:
    """Grid, frame, ticks with labels, axis labels and the panel's title."""
    for y in y_ticks:
        _, py = panel.point(panel.x_range[0], y)
        cv2.line(image, (panel.left, py), (panel.right, py), GRID_GREY, 1)
        cv2.line(image, (panel.left - 5, py), (panel.left, py), AXIS_GREY, 1)
        label = _tick_label(y)
        w, h = _text_size(cv2, label, 0.45)
        _text(cv2, image, label, (panel.left - 9 - w, py + h // 2), 0.45, AXIS_GREY)
    for x in x_ticks:
        px, _ = panel.point(x, panel.y_range[0])
        cv2.line(image, (px, panel.bottom), (px, panel.bottom + 5), AXIS_GREY, 1)
        label = _tick_label(x)
        w, h = _text_size(cv2, label, 0.45)
        _text(cv2, image, label, (px - w // 2, panel.bottom + 10 + h), 0.45, AXIS_GREY)
    cv2.rectangle(image, (panel.left, panel.top), (panel.right, panel.bottom), AXIS_GREY, 1)
    w, h = _text_size(cv2, x_label, 0.55)
    _text(cv2, image, x_label, ((panel.left + panel.right - w) // 2, panel.bottom + 44), 0.55)
    # the y label, rotated: drawn on its own strip, then turned a quarter counter-clockwise
    w, h = _text_size(cv2, y_label, 0.55)
    strip = np.full((h + 8, w + 4, 3), 255, np.uint8)
    _text(cv2, strip, y_label, (2, h + 2), 0.55)
    strip = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = max((panel.top + panel.bottom - strip.shape[0]) // 2, 0)
    x0 = max(panel.left - 62, 0)
    image[y0:y0 + strip.shape[0], x0:x0 + strip.shape[1]] = np.minimum(image[y0:y0 + strip.shape[0],
                                                                             x0:x0 + strip.shape[1]], strip)
    w, h = _text_size(cv2, title, 0.65, 2)
    _text(cv2, image, title, ((panel.left + panel.right - w) // 2, panel.top - 14), 0.65, BLACK, 2)


def _polyline(cv2, image, panel: Panel, xs, ys, colour, dashed: bool) -> None:
    """A curve through the finite points, solid or dashed (dashes of 10 px, gaps of 7 px); one point
    is drawn as a dot."""
    points = [panel.point(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    if len(points) == 1:
        cv2.circle(image, points[0], 3, colour, -1, cv2.LINE_AA)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if not dashed:
            cv2.line(image, (x0, y0), (x1, y1), colour, 2, cv2.LINE_AA)
            continue
        length = math.hypot(x1 - x0, y1 - y0)
        start = 0.0
        while start < length:
            end = min(start + 10.0, length)
            a = (int(round(x0 + (x1 - x0) * start / length)), int(round(y0 + (y1 - y0) * start / length)))
            b = (int(round(x0 + (x1 - x0) * end / length)), int(round(y0 + (y1 - y0) * end / length)))
            cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
            start += 17.0


def _legend(cv2, image, panel: Panel, entries, corner: str) -> None:
    """A framed legend box in a panel corner: per entry a line sample (solid or dashed) and its name."""
    row_h, sample_w, pad = 22, 34, 8
    text_w = max(_text_size(cv2, name, 0.5)[0] for name, _, _ in entries)
    box_w, box_h = pad * 3 + sample_w + text_w, pad * 2 + row_h * len(entries) - 6
    x0 = panel.right - box_w - 10
    y0 = panel.top + 10 if corner == "top-right" else panel.bottom - box_h - 10
    cv2.rectangle(image, (x0, y0), (x0 + box_w, y0 + box_h), WHITE, -1)
    cv2.rectangle(image, (x0, y0), (x0 + box_w, y0 + box_h), AXIS_GREY, 1)
    for i, (name, colour, dashed) in enumerate(entries):
        y = y0 + pad + 8 + i * row_h
        sample = Panel(x0 + pad, y, x0 + pad + sample_w, y, (0.0, 1.0), (0.0, 1.0))
        _polyline(cv2, image, sample, [0.0, 1.0], [0.0, 0.0], colour, dashed)
        _text(cv2, image, name, (x0 + pad * 2 + sample_w, y + 5), 0.5)


def write_png(image: np.ndarray, out: str | Path) -> Path:
    """Encode ``image`` (uint8 BGR) as PNG and write it atomically to ``out`` (its folder must exist)."""
    import cv2

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"-o {out}: the picture is a PNG; give a path ending in .png")
    if not out.parent.is_dir():
        raise ConfigError(f"-o {out}: folder {out.parent} does not exist; create it first")
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ConfigError(f"-o {out}: OpenCV could not encode the picture as PNG")
    atomic_write(out, encoded.tobytes())
    return out


# ------------------------------------------------------------------------------------------- command


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x", 1))
    except ValueError:
        width = height = 0
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise ConfigError(f"--size must look like 1400x560, at least {MIN_SIZE[0]}x{MIN_SIZE[1]}, got {text!r}")
    return width, height


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", metavar="RUN", nargs="+", help="a training output folder (holding metrics.jsonl) or a "
                   "metrics .jsonl file; several are drawn together, one colour each")
    p.add_argument("-o", "--out", metavar="OUT.png", required=True, help="the PNG to write")
    p.add_argument("--size", type=_size, default=DEFAULT_SIZE, metavar="WxH",
                   help=f"picture size in pixels (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    p.add_argument("--json", action="store_true", help="print one JSON object: the PNG's path and size, and per "
                   "run: epochs, best val top-1 and its epoch, final train/val top-1 and loss, total seconds")


def run(args: argparse.Namespace) -> int:
    runs = [read_metrics(r) for r in args.runs]
    path = write_png(draw_curves(runs, args.size), args.out)
    summaries = [r.summary() for r in runs]
    if args.json:
        print(json.dumps({"out": str(path), "width": args.size[0], "height": args.size[1], "runs": summaries}))
        return 0
    print(f"wrote {path} ({args.size[0]}x{args.size[1]}): top-1 and loss per epoch of {len(runs)} run(s)")
    for s in summaries:
        print(f"  {s['name']}: {s['epochs']} epochs, best val top-1 {s['best_val_top1']:.1%} at epoch "
              f"{s['best_epoch']}, final train {s['final_train_top1']:.1%} / val {s['final_val_top1']:.1%}, "
              f"{s['total_seconds']:.0f} s")
    return 0
