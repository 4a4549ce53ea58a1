"""Summaries and pictures of a video's compressed-domain side data (``edgekit inspect``)."""

from __future__ import annotations

import numbers
from collections import Counter

import numpy as np

from edgekit import visualize
from edgekit._progress import Progress
from edgekit.bitstream.reader import open as open_reader
from edgekit.errors import ConfigError, EmptySourceError, check_output_name

PATTERN_CHARS = 180


def summarize(source, *, progress: bool | None = None, **open_kwargs) -> dict:
    """Read every frame's MVs (MV-only, fast) and return a JSON-ready summary dict."""
    kinds, gops = [], []
    mags, intra_blocks, inter_blocks, zero_blocks = [], 0, 0, 0
    sum_dx = sum_dy = 0.0
    with open_reader(source, residual=False, rgb=None, **open_kwargs) as reader:
        info = reader.info
        with Progress(info.frame_count, "inspect", enabled=progress) as bar:
            for f in reader:
                kinds.append(f.kind)
                if f.kind == "I":
                    gops.append(0)
                gops[-1] += 1
                if f.kind != "I":
                    inter = ~f.intra
                    m = np.hypot(f.mv[0], f.mv[1])[inter]
                    intra_blocks += int(f.intra.sum())
                    inter_blocks += int(inter.sum())
                    zero_blocks += int((m == 0).sum())
                    sum_dx += float(f.mv[0][inter].sum())
                    sum_dy += float(f.mv[1][inter].sum())
                    mags.append(np.percentile(m, [50, 95]) if m.size else np.zeros(2))
                    mags[-1] = np.append(mags[-1], m.max() if m.size else 0.0)
                bar.update()
        stats = reader.stats
    pattern = "".join(kinds)
    blocks = max(intra_blocks + inter_blocks, 1)
    mags_arr = np.array(mags) if mags else np.zeros((1, 3))
    return {
        "source": reader.description,
        "codec": info.codec,
        "source_codec": info.source_codec,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frames": len(kinds),
        "frames_in_container": info.frame_count,
        "duration_s": info.duration_s,
        "frame_types": dict(Counter(kinds)),
        "pattern": pattern if len(pattern) <= PATTERN_CHARS else pattern[:PATTERN_CHARS] + "...",
        "gop_lengths": gops,
        "gop_summary": ", ".join(f"{n} x {length}" for length, n in sorted(Counter(gops).items(), reverse=True)),
        "mv": {
            "grid": [(info.height + 7) // 8, (info.width + 7) // 8],
            "median_px": float(np.median(mags_arr[:, 0])),
            "p95_px": float(np.median(mags_arr[:, 1])),
            "max_px": float(mags_arr[:, 2].max()),
            "mean_dx_px": sum_dx / max(inter_blocks, 1),
            "mean_dy_px": sum_dy / max(inter_blocks, 1),
            "intra_fraction": intra_blocks / blocks,
            "zero_fraction": zero_blocks / max(inter_blocks, 1),
        },
        "damaged_frames": stats.damaged_frames,
        "decode_errors": stats.decode_errors,
    }


def render(source, out_png, *, frames: int = 4, accumulate: bool = False, **open_kwargs) -> dict:
    """Write a PNG sheet: for ``frames`` P/B frames, the GOP's I-frame, the MV field (colour wheel)
    and the residual magnitude side by side. Returns {"path", "frames": [indices]}.
    Raises ConfigError for ``frames`` < 1 and OutputError when ``out_png`` cannot be written
    (its name is checked before the video is read)."""
    if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) or frames < 1:
        raise ConfigError(f"frames must be a whole number >= 1, got {frames!r}")
    check_output_name(out_png)
    rows, picked = [], []
    with open_reader(source, residual=True, rgb="iframes", accumulate=accumulate, **open_kwargs) as reader:
        info = reader.info
        total = info.frame_count or 48
        # the first P/B frame at or after each of `frames` evenly spaced positions
        targets = sorted(set(np.linspace(1, max(total - 1, 1), frames).round().astype(int).tolist()))
        iframe = None
        for f in reader:
            if f.kind == "I":
                iframe = f.rgb
                continue
            if iframe is None or len(picked) == frames:
                continue
            if f.index >= targets[0]:
                picked.append(f.index)
                rows.append(_row(iframe, f, info.height, info.width))
                while targets and targets[0] <= f.index:
                    targets.pop(0)
                if not targets:
                    targets = [f.index + 1]
    if not rows:
        raise EmptySourceError(f"{reader.description}: no P/B frames to render")
    visualize.write_png(out_png, np.concatenate(rows, axis=0))
    return {"path": str(out_png), "frames": picked}


def _row(iframe, f, h, w):
    mv_img = visualize.upsample_cells(visualize.flow_to_rgb(f.mv), h, w)
    res_img = visualize.residual_to_rgb(f.residual)
    gap = np.full((h + 12, 4, 3), 255, np.uint8)
    return np.concatenate([
        visualize.label(iframe, f"I-FRAME GOP {f.gop_index}"), gap,
        visualize.label(mv_img, f"MV {f.kind} {f.index}"), gap,
        visualize.label(res_img, f"RESIDUAL {f.index}"),
    ], axis=1)
