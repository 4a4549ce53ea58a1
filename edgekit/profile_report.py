"""``edgekit profile --report OUT.html``: one self-contained HTML page of a profile, with plots.

>>> from edgekit.profile import profile
>>> from edgekit.profile_report import write_report
>>> write_report(profile(runs=3, per_window=True), "profile.html")   # + profile_stages.png, ...

The page needs no network: CSS is inline and every plot is an embedded base64 PNG; the same plots
are written as PNG files beside it (``OUT_stages.png``, ``OUT_breakdown.png``, ``OUT_timeline.png``,
``OUT_layers.png`` with a ``layers`` section, ``OUT_compare.png`` with a ``compare`` section). Plots:
per-stage latency distributions (box plots), the stage breakdown (stacked bar of mean ms per window),
the per-window timeline (stage ms per window index), with ``--layers`` the slowest layers, and with
``--compare rgb-flow`` each pipeline's stages stacked (share of its time) beside its end-to-end
milliseconds per source second (log scale). Tables: cold start, stage statistics, throughput,
streams, the comparison, resources, environment.

matplotlib (the ``dev`` extra, or ``pip install matplotlib``) is imported only when a report is
written, with its non-interactive Agg backend; the runtime never imports it.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from edgekit.errors import ConfigError, MissingDependencyError, OutputError, check_output_name, output_error

_STAGE_COLORS = {"decode": "#4e79a7", "kernels": "#f28e2b", "preprocess": "#59a14f", "inference": "#e15759",
                 "window": "#76b7b2", "latency": "#b07aa1"}
_PARTS = ("decode", "kernels", "preprocess", "inference")  # they add up to "window"
_TOP_LAYERS = 15  # in the plot
_TABLE_LAYERS = 10  # in the table (the JSON has every layer)

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.4em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: .9em; }
.cols { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
.cols > section { flex: 0 1 auto; min-width: 14em; } .cols .note { max-width: 15em; }
"""


class MissingMatplotlibError(MissingDependencyError):
    """matplotlib is needed for ``--report``; the message is one line with the install hint."""

    def __init__(self):
        super().__init__("matplotlib", "dev")
        self.args = ("matplotlib is not installed; the HTML report draws its plots with it: pip install matplotlib",)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingMatplotlibError() from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def report_paths(out: str | os.PathLike, layers: bool = False, compare: bool = False) -> dict[str, Path]:
    """{"html": OUT.html, "stages": OUT_stages.png, "breakdown": ..., "timeline": ..., ["layers": ...],
    ["compare": ...]}."""
    out = Path(out)
    names = ["stages", "breakdown", "timeline"] + (["layers"] if layers else []) + (["compare"] if compare else [])
    return {"html": out, **{name: out.with_name(f"{out.stem}_{name}.png") for name in names}}


def check_report_path(out: str | os.PathLike) -> None:
    """OutputError (one line) when ``out`` cannot be written: a missing folder, a folder in its place, a
    name too long; checked before any profiling so a bad path fails at once."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"the report is an HTML file: give a name ending in .html, got {os.fspath(out)!r}")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"cannot write {os.fspath(out)}: the folder {os.fspath(folder)} {what}")
    if out.is_dir():
        raise OutputError(f"cannot write {os.fspath(out)}: it is a folder")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {os.fspath(out)}: permission denied (check the permissions of "
                          f"{os.fspath(folder)})")
    for path in report_paths(out, layers=True, compare=True).values():
        check_output_name(path)


# -- plots --------------------------------------------------------------------------------------------


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _stage_series(report: dict) -> dict[str, list[float]]:
    per_window = report.get("per_window_ms")
    if not per_window:
        raise ConfigError("the report plots every window: profile with per_window=True")
    return {stage: list(per_window.get(stage, ())) for stage in report["stages_ms"]}


def _plot_stages(plt, report: dict) -> bytes:
    series = {k: v for k, v in _stage_series(report).items() if v}
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.boxplot(list(series.values()), vert=False, whis=(1, 99), showfliers=True, showmeans=True,
               flierprops={"markersize": 3, "alpha": .5}, tick_labels=list(series))
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("ms per window (whiskers: p1 to p99; triangle: mean)")
    ax.set_title("Per-stage latency distributions")
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=.3)
    return _render(plt, fig)


def _render(plt, fig) -> bytes:
    """The figure as PNG bytes; the figure is closed either way."""
    try:
        return _png(fig)
    finally:
        plt.close(fig)


def _plot_breakdown(plt, report: dict) -> bytes:
    stats = report["stages_ms"]
    fig, ax = plt.subplots(figsize=(9, 1.9))
    left = 0.0
    for stage in _PARTS:
        mean = stats[stage]["mean"] or 0.0
        ax.barh(["window"], [mean], left=left, color=_STAGE_COLORS[stage], label=f"{stage} {mean:.2f} ms")
        left += mean
    ax.set_xlabel("mean ms per window")
    ax.set_title(f"Stage breakdown: {left:.2f} ms per window")
    ax.legend(loc="upper center", bbox_to_anchor=(.5, -.35), ncol=4, frameon=False)
    return _render(plt, fig)


def _plot_timeline(plt, report: dict) -> bytes:
    series = _stage_series(report)
    count = len(series.get("window", ()))
    fig, ax = plt.subplots(figsize=(9, 3.3))
    index = list(range(count))
    bottom = [0.0] * count
    for stage in _PARTS:
        values = series.get(stage) or [0.0] * count
        ax.bar(index, values, bottom=bottom, width=1.0, color=_STAGE_COLORS[stage], label=stage, linewidth=0)
        bottom = [b + v for b, v in zip(bottom, values)]
    if series.get("latency"):
        ax.plot(index, series["latency"], color="#222", linewidth=1, marker=".", markersize=3, label="latency")
    ax.set_xlabel("window (measured passes in order)")
    ax.set_ylabel("ms")
    ax.set_title("Per-window timeline")
    ax.legend(ncol=5, fontsize=8, loc="upper center", bbox_to_anchor=(.5, -.16), frameon=False)  # off the bars
    ax.grid(axis="y", alpha=.3)
    return _render(plt, fig)


def _plot_layers(plt, report: dict) -> bytes:
    section = report["layers"]
    rows = section["layers"][:_TOP_LAYERS][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.24 * len(rows) + 1.0))
    labels = [(r["name"] if len(r["name"]) <= 48 else "…" + r["name"][-47:]) + f" ({r['op_type']})" for r in rows]
    ax.barh(labels, [r["per_inference_us"] for r in rows], color="#e15759")
    ax.set_xlabel("µs per inference")
    ax.set_title(f"Slowest layers ({section['backend']}/{section['device']})")
    ax.tick_params(axis="y", labelsize=7)
    return _render(plt, fig)


_PIPELINE_STAGES = (  # (stage key of the package, of the RGB + flow pipelines, legend, colour)
    ("decode", "decode_rgb", "decode (package: demux + decode; RGB + flow: every frame to RGB)", "#4e79a7"),
    ("kernels", "flow", "motion (package: side-data kernels; RGB + flow: optical flow)", "#f28e2b"),
    ("preprocess", "preprocess", "preprocess", "#59a14f"),
    ("inference", "network", "network", "#e15759"),
)


def _compare_rows(section: dict) -> list[tuple[str, list[float], float]]:
    """(label, ms per source second per stage in _PIPELINE_STAGES order, end to end) per pipeline."""
    pkg = section["package"]
    rows = [("package (compressed domain)", [pkg["stages_ms_per_source_s"][s[0]] for s in _PIPELINE_STAGES],
             pkg["end_to_end_ms_per_source_s"])]
    for method, v in section["rgb_flow"].items():
        label = f"RGB + {method}" + (" (flow extrapolated)" if v["flow_extrapolated"] else "")
        rows.append((label, [v["stages_ms_per_source_s"][s[1]] for s in _PIPELINE_STAGES],
                     v["end_to_end_ms_per_source_s"]))
    return rows


def _plot_compare(plt, report: dict) -> bytes:
    section = report["compare"]
    rows = _compare_rows(section)[::-1]  # the package on top
    labels = [r[0] for r in rows]
    fig, (shares, totals) = plt.subplots(1, 2, figsize=(10, 0.45 * len(rows) + 1.9), sharey=True,
                                         gridspec_kw={"width_ratios": [1.1, 1]}, layout="constrained")
    left = [0.0] * len(rows)
    for i, (_, _, legend, color) in enumerate(_PIPELINE_STAGES):
        widths = [100 * r[1][i] / sum(r[1]) if sum(r[1]) > 0 else 0.0 for r in rows]
        shares.barh(labels, widths, left=left, color=color, label=legend)
        left = [a + b for a, b in zip(left, widths)]
    shares.set_xlim(0, 100)
    shares.set_xlabel("% of the pipeline's time, by stage")
    shares.set_title("Stages of each pipeline")
    fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ends = [r[2] for r in rows]
    totals.barh(labels, ends, color=["#76b7b2" if r is rows[-1] else "#9c9c9c" for r in rows])
    totals.set_xscale("log")
    totals.set_xlim(min(ends) / 2, max(ends) * 12)
    package_ms = rows[-1][2]
    for y, value in enumerate(ends):
        totals.text(value * 1.15, y, f"{value:,.1f} ms" + (f"  ({value / package_ms:,.0f}x)" if value != package_ms
                                                            else ""), va="center", fontsize=8)
    totals.set_xlabel("end-to-end ms per source second (log)")
    totals.set_title(f"End to end, {section['frame_size'][1]}x{section['frame_size'][0]} source")
    totals.grid(axis="x", alpha=.3)
    return _render(plt, fig)


def _threads(count: int) -> str:
    return f"{count} thread" + ("" if count == 1 else "s")


def _compare_html(section: dict) -> list[str]:
    header = ["pipeline", *(s[2].split(" (")[0] for s in _PIPELINE_STAGES), "end to end", "per window",
              "speed-up of the package"]
    pkg = section["package"]
    table = [["package (compressed domain)", *(float(pkg["stages_ms_per_source_s"][s[0]]) for s in _PIPELINE_STAGES),
              float(pkg["end_to_end_ms_per_source_s"]), float(pkg["end_to_end_ms_per_window"]), "1x"]]
    for method, v in section["rgb_flow"].items():
        table.append([f"RGB + {method}" + (" (flow extrapolated)" if v["flow_extrapolated"] else ""),
                      *(float(v["stages_ms_per_source_s"][s[1]]) for s in _PIPELINE_STAGES),
                      float(v["end_to_end_ms_per_source_s"]), float(v["end_to_end_ms_per_window"]),
                      f"{section['speedup'][method]:,.1f}x"])
    network = section["baseline"]["network"]
    method = section["method"]
    return ["<h2>Compared with RGB + optical flow (ms per source second)</h2>", _table(header, table),
            f'<p class="note">{html.escape(method["baseline"])}. {html.escape(method["tvl1"])}; Farneback and DIS '
            f"{html.escape(method['farneback_dis'].removeprefix('timed '))}. Network: "
            f"{html.escape(network['model'])}, {html.escape(network['precision'].upper())}, ONNX Runtime with "
            f"{_threads(network['threads'])}, {html.escape(network['weights'])}. Speed-up: "
            f"{html.escape(method['speedup'])}.</p>"]


# -- HTML ---------------------------------------------------------------------------------------------


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="n">{value:,.3f}</td>'
    if isinstance(value, (int, bool)) and not isinstance(value, bool):
        return f'<td class="n">{value:,}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(section: dict) -> str:
    rows = [[key.replace("_", " "), value if not isinstance(value, (dict, list)) else
             ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else
             ", ".join(map(str, value))] for key, value in section.items()]
    return _table(["", "value"], rows)


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" id="plot-{name}" src="data:image/png;base64,{data}"></p>'


def _overhead_html(report: dict) -> list[str]:
    overhead = report.get("profiling_overhead")
    if not overhead or overhead["share_of_wall"] is None:
        return []
    return [f'<p class="note">profiling overhead: {overhead["instrumentation_ms"]:.2f} ms, '
            f'{overhead["share_of_wall"]:.3%} of the measured wall time</p>']


def _streams_html(streams: dict) -> list[str]:
    parts = ["<h2>Streams</h2>",
             _table(["stream", "passes", "frames", "windows", "frames/s", "real-time factor", "kept up"],
                    [[s["stream"], s["passes"], s["frames"], s["windows"], float(s["frames_per_s"]),
                      float(s["realtime_factor"]), "yes" if s["kept_up"] else "no"]
                     for s in streams["per_stream"]])]
    if "auto" in streams:
        parts.append(f"<p>streams sustained at {streams['source_fps']:g} fps: "
                     f"{streams['auto']['max_streams_kept_up']}</p>")
    return parts


def render_html(report: dict, plots: dict[str, bytes]) -> str:
    """The page: summary tables of ``report`` and the ``plots`` (name -> PNG bytes) embedded."""
    pkg, sel, src = report["package"], report["selection"], report["source"]
    stages = report["stages_ms"]
    keys = ("count", "mean", "std", "min", "p50", "p90", "p95", "p99", "max")
    stage_rows = [[stage] + [stats[k] for k in keys] for stage, stats in stages.items()]
    env = report["environment"]
    cpu = env["cpu"]
    title = f"edgekit profile: {pkg['model']} {pkg['precision']} on {sel['backend']}/{sel['device']}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{html.escape(Path(pkg["path"]).name)} (sha256 {html.escape(pkg["sha256"])}), window '
        f"{pkg['window_frames']} frames every {pkg['stride_frames']}; source "
        f"{html.escape(str(src.get('synthetic') or src.get('bundled') or src.get('path')))}: "
        f"{html.escape(str(src.get('codec')))} {src.get('width')}x{src.get('height')} @ {src.get('fps')} fps</p>",
        '<div class="cols"><section>', "<h2>Cold start (ms)</h2>", _pairs(report["cold_start_ms"]),
        "</section><section>", "<h2>Throughput</h2>", _pairs(report["throughput"]), *_overhead_html(report),
        "</section><section>",
        *_streams_html(report["streams"]), "</section></div>",
        "<h2>Per-stage latency (ms per window)</h2>",
        _table(["stage", *keys], stage_rows),
        f'<p class="note">{html.escape(report["method"]["outliers"])}. {html.escape(report["method"]["decode"])}.</p>',
        _img("stages", plots["stages"], "per-stage latency distributions"),
        _img("breakdown", plots["breakdown"], "stage breakdown"),
        _img("timeline", plots["timeline"], "per-window timeline"),
    ]
    if "layers" in report:
        section = report["layers"]
        parts += ["<h2>Layers</h2>",
                  f'<p class="note">{html.escape(section["method"])}; {section["runs"]} inferences, '
                  f"{section['inference_mean_us'] / 1000:.3f} ms per inference.</p>",
                  _table(["layer", "op type", "count", "total µs", "mean µs", "share"],
                         [[r["name"], r["op_type"], r["count"], float(r["total_us"]), float(r["mean_us"]),
                           f"{r['share']:.1%}" if r["share"] is not None else ""]
                          for r in section["layers"][:_TABLE_LAYERS]]),
                  _img("layers", plots["layers"], "slowest layers")]
    if "compare" in report:
        parts += _compare_html(report["compare"]) + [_img("compare", plots["compare"],
                                                           "stages and end-to-end time of each pipeline")]
    parts += ['<div class="cols"><section>', "<h2>Resources</h2>", _pairs(report["resources"]),
              "</section><section>", "<h2>Environment</h2>",
              _pairs({"cpu": cpu["model"], "architecture": cpu["architecture"],
                      "cores": f"{cpu['usable_cores']} of {cpu['cores']} usable",
                      "isa": " ".join(k for k, v in cpu["isa"].items() if v) or "none of interest",
                      **{k: v for k, v in env["versions"].items() if v is not None},
                      "onnxruntime providers": env.get("onnxruntime_providers") or [],
                      "selection": f"{sel['backend']}/{sel['device']}",
                      "options": sel.get("options") or {}}),
              "</section><section>", "<h2>Settings</h2>", _pairs(report["settings"]),
              "</section></div>", "</body></html>", ""]
    return "\n".join(parts)


def write_report(report: dict, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``out`` (the HTML page) and the PNGs beside it, each atomically; returns their paths.

    ``report``: a :func:`edgekit.profile.profile` result made with ``per_window=True``. Raises
    :class:`MissingDependencyError` without matplotlib, :class:`OutputError` for a path that cannot
    be written (nothing is left half-written), :class:`ConfigError` for a report without per-window data."""
    from edgekit._fileio import atomic_write

    check_report_path(out)
    _stage_series(report)  # a clear error before matplotlib is loaded
    plt = _pyplot()
    paths = report_paths(out, layers="layers" in report, compare="compare" in report)
    plots = {"stages": _plot_stages(plt, report), "breakdown": _plot_breakdown(plt, report),
             "timeline": _plot_timeline(plt, report)}
    if "layers" in report:
        plots["layers"] = _plot_layers(plt, report)
    if "compare" in report:
        plots["compare"] = _plot_compare(plt, report)
    page = render_html(report, plots)
    try:
        for name, png in plots.items():
            atomic_write(paths[name], png)
        atomic_write(paths["html"], page)
    except OSError as err:
        raise output_error(err.filename or out, err) from None
    return paths
