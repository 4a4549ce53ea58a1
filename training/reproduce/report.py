"""The comparison table's checks (the papers' headline orderings) and its markdown page.

Each check compares rows by id and says ``holds`` / ``does not hold`` with the numbers, or
``not run`` when a row it needs is missing (a partial run). The checks are fixed here, from the
papers (../shared/seeds/): nothing in the table is tuned toward them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

WITHIN_FLOW_POINTS = 3.0  # best compressed-domain row vs the flow teacher (IP-TSN, DMC-Net: "close to flow")
INT8_POINTS = 1.0  # every row's INT8 top-1 against its FP32


@dataclass(frozen=True)
class Check:
    """One ordering: ``status`` "holds", "does not hold" or "not run"; ``detail`` the numbers."""

    name: str
    claim: str
    status: str
    detail: str
    rows: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _greater(name: str, claim: str, rows: dict, better: str, worse: str) -> Check:
    if better not in rows or worse not in rows:
        missing = [r for r in (better, worse) if r not in rows]
        return Check(name, claim, "not run", f"row(s) {', '.join(missing)} not in the table")
    a, b = rows[better]["top1_fp32"], rows[worse]["top1_fp32"]
    status = "holds" if a > b else "does not hold"
    return Check(name, claim, status, f"{rows[better]['label']} {_pct(a)} % vs {rows[worse]['label']} {_pct(b)} % "
                                      f"({100 * (a - b):+.1f} points)", (better, worse))


def orderings(rows: dict[str, dict]) -> list[Check]:
    """The checks over ``rows`` (row id -> result with ``label``, ``domain``, ``top1_fp32``,
    ``top1_int8``, ``fuse`` for fused rows)."""
    checks = [
        _greater("dmc-vs-mv", "DMC-Net (full) > CoViAR MV", rows, "dmc-full", "coviar-mv"),
        _greater("distilled-p-stream", "distilled P-stream > undistilled (IP-TSN)", rows, "iptsn-distil", "iptsn-p"),
        _greater("off-vs-backbone", "OFF > backbone alone", rows, "off", "off-backbone"),
        _greater("mfcd-teacher", "MFCD-Net with the RGB teacher > without", rows, "mfcd-distil", "mfcd"),
    ]
    for fused_id in [r for r in rows if rows[r].get("fuse")]:
        fused = rows[fused_id]
        singles = [s for s in fused["fuse"] if s in rows]
        if not singles:
            continue
        worse = [s for s in singles if rows[s]["top1_fp32"] >= fused["top1_fp32"]]
        numbers = ", ".join(f"{rows[s]['label']} {_pct(rows[s]['top1_fp32'])} %" for s in singles)
        checks.append(Check(f"fused-{fused_id}", f"{fused['label']} > every single stream",
                            "does not hold" if worse else "holds",
                            f"{fused['label']} {_pct(fused['top1_fp32'])} % vs {numbers}", (fused_id, *singles)))
    branch_sets = {}
    for rid, r in rows.items():
        if r.get("stream") and r.get("stage"):
            branch_sets.setdefault(r["stage"], []).append(rid)
    for rid, r in rows.items():  # a model's fused output against its own streams (cost volume)
        if r.get("stage") in branch_sets and not r.get("stream"):
            singles = [s for s in branch_sets[r["stage"]] if rows[s]["paper"] == r["paper"]]
            worse = [s for s in singles if rows[s]["top1_fp32"] >= r["top1_fp32"]]
            numbers = ", ".join(f"{rows[s]['label']} {_pct(rows[s]['top1_fp32'])} %" for s in singles)
            checks.append(Check(f"fused-{rid}", f"{r['label']} > every single branch",
                                "does not hold" if worse else "holds",
                                f"{r['label']} {_pct(r['top1_fp32'])} % vs {numbers}", (rid, *singles)))
    compressed = [rid for rid, r in rows.items() if r["domain"] == "compressed"]
    if "flow-teacher" in rows and compressed:
        best = max(compressed, key=lambda rid: rows[rid]["top1_fp32"])
        a, t = rows[best]["top1_fp32"], rows["flow-teacher"]["top1_fp32"]
        gap = 100 * (t - a)
        checks.append(Check("compressed-vs-flow", f"best compressed-domain row within {WITHIN_FLOW_POINTS:g} points "
                            "of the flow teacher", "holds" if gap <= WITHIN_FLOW_POINTS else "does not hold",
                            f"{rows[best]['label']} {_pct(a)} % vs {rows['flow-teacher']['label']} {_pct(t)} % "
                            f"({gap:.1f} points below)" if gap >= 0 else
                            f"{rows[best]['label']} {_pct(a)} % vs {rows['flow-teacher']['label']} {_pct(t)} % "
                            f"({-gap:.1f} points above)", (best, "flow-teacher")))
    else:
        checks.append(Check("compressed-vs-flow", f"best compressed-domain row within {WITHIN_FLOW_POINTS:g} points "
                            "of the flow teacher", "not run",
                            "the flow teacher or every compressed-domain row is missing"))
    if rows:
        drops = {rid: 100 * (r["top1_fp32"] - r["top1_int8"]) for rid, r in rows.items()}
        over = [rid for rid, d in drops.items() if abs(d) > INT8_POINTS]
        worst = max(drops, key=lambda rid: abs(drops[rid]))
        detail = (f"largest |FP32 - INT8|: {rows[worst]['label']} {drops[worst]:+.1f} points"
                  + (f"; over {INT8_POINTS:g}: " + ", ".join(f"{rows[r]['label']} {drops[r]:+.1f}" for r in over)
                     if over else f"; all {len(rows)} rows within {INT8_POINTS:g}"))
        checks.append(Check("int8-within-1", f"every row's INT8 within {INT8_POINTS:g} point of its FP32",
                            "does not hold" if over else "holds", detail, tuple(over)))
    guarded = {rid: r for rid, r in rows.items() if r.get("guard")}
    if guarded:  # the INT8 the export guard would ship: layers kept in FP32 chosen on the validation split
        refused = [rid for rid, r in guarded.items() if r.get("top1_int8_guarded") is None]
        drops = {rid: 100 * (r["top1_fp32"] - r["top1_int8_guarded"]) for rid, r in guarded.items()
                 if rid not in refused}
        over = [rid for rid, d in drops.items() if abs(d) > INT8_POINTS]
        parts = []
        if drops:
            worst = max(drops, key=lambda rid: abs(drops[rid]))
            parts.append(f"largest |FP32 - guarded INT8|: {rows[worst]['label']} {drops[worst]:+.1f} points")
        parts.append(f"over {INT8_POINTS:g}: " + ", ".join(f"{rows[r]['label']} {drops[r]:+.1f}" for r in over)
                     if over else f"{len(drops)} rows within {INT8_POINTS:g}")
        if refused:
            parts.append("the guard refuses (no INT8 model passes on validation): "
                         + ", ".join(rows[r]["label"] for r in refused))
        kept = sum(r["guard"]["kept_fp32"] for r in guarded.values() if not r.get("fuse"))
        layers = sum(r["guard"]["quantized_layers"] for r in guarded.values() if not r.get("fuse"))
        parts.append(f"{kept} of {layers} quantized layers kept in FP32 over the measured rows")
        checks.append(Check("int8-guarded-within-1", f"every row's guarded INT8 within {INT8_POINTS:g} point of "
                            "its FP32", "does not hold" if over or refused else "holds", "; ".join(parts),
                            tuple(over + refused)))
    return checks


def _guarded_cell(r: dict) -> str:
    """The guarded INT8 column: top-1 (layers kept in FP32 / quantized), "refused" or "-"."""
    if not r.get("guard"):
        return "-"
    if r.get("top1_int8_guarded") is None:
        return "refused"
    return f"{100 * r['top1_int8_guarded']:.1f} ({r['guard']['kept_fp32']}/{r['guard']['quantized_layers']})"


def markdown(result: dict) -> str:
    """``seeds.md``: the table, the orderings, what was reduced, and the runtime."""
    rows = result["rows"]
    done = "complete" if result["complete"] else f"partial: {len(rows)} of {result['rows_planned']} rows"
    lines = [f"# The seed papers' comparisons, reproduced (preset `{result['preset']}`)", "",
             f"Produced by `{result['command']}` from the plan `{result['plan']}`"
             f" ({done}).",
             f"Data: {result['data']['description']}. Test split: {result['test_clips']} clips; one clip is "
             f"{100 / max(result['test_clips'], 1):.1f} points of top-1.", "",
             "Top-1 on the test split through ONNX Runtime (CPU EP), FP32 and static INT8 QDQ (calibrated on "
             f"{result['calib_clips']} training clips); ms per clip: median of batch-1 runs at 1 thread; GFLOPs: "
             "multiply-accumulates / 1e9 of what the row's output depends on; train min: the row's own stage "
             "(chain: with the stages it starts from).", ""]
    guard = result.get("guard")
    if guard:
        lines += [f"Guarded INT8: `edgekit export --fallback`'s guard, run on the {guard['split']} split: the most "
                  "sensitive layers stay in FP32, one by one, until INT8 loses at most "
                  f"{guard['max_drop_points']:g} point there and picks FP32's class on at least "
                  f"{100 * guard['min_agreement']:g} % of its clips; then scored on the test split. In brackets: "
                  "layers kept in FP32 / quantized layers; 'refused': even all of them in FP32 do not pass, so "
                  "no INT8 model is shipped; ms guarded: that model's latency.", ""]
    columns = [  # (header, cell of a row); the guarded ones only when the rows were guarded
        ("Row", lambda r: r["label"]), ("Paper", lambda r: r["paper"]), ("Input", lambda r: r["domain"]),
        ("top-1 FP32", lambda r: f"{100 * r['top1_fp32']:.1f}"),
        ("top-1 INT8", lambda r: f"{100 * r['top1_int8']:.1f}"),
        ("top-1 INT8 guarded", _guarded_cell), ("GFLOPs", lambda r: f"{r['gflops']:.4f}"),
        ("params", lambda r: f"{r['params'] / 1e6:.3f} M"), ("ms FP32", lambda r: f"{r['ms_fp32']:.2f}"),
        ("ms INT8", lambda r: f"{r['ms_int8']:.2f}"),
        ("ms guarded", lambda r: "-" if r.get("ms_int8_guarded") is None else f"{r['ms_int8_guarded']:.2f}"),
        ("train min (chain)", lambda r: f"{r['train_minutes']:.1f} ({r['chain_minutes']:.1f})")]
    columns = [(h, cell) for h, cell in columns if guard or "guarded" not in h]
    lines += ["| " + " | ".join(h for h, _ in columns) + " |",
              "|" + "|".join("---" if i < 3 else "---:" for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in rows.values()]
    lines += ["", "Fused rows: logits of their rows summed with the weights given (no extra training); their GFLOPs, "
              "parameters, ms and minutes are the sums over the fused rows.", "",
              "## The papers' orderings", ""]
    for c in result["orderings"]:
        lines.append(f"- **{c['claim']}**: {c['status']}. {c['detail']}.")
    lines += ["", "Where an ordering does not hold, the numbers above are the result; nothing was tuned toward an "
              "ordering. Reasons to weigh, and caveats on orderings that hold only on noise (from the numbers, "
              "not tested further here):", ""]
    lines += [f"- {note}" for note in result.get("notes", [])] or ["- (none recorded)"]
    lines += ["", "## What was reduced against the papers", ""]
    lines += [f"- {r}" for r in result["reductions"]]
    lines += ["", "## Runtime", "",
              f"- total: {result['runtime']['total_minutes']:.1f} min on {result['runtime']['machine']} "
              f"(data {result['runtime']['data_minutes']:.1f}, training {result['runtime']['train_minutes']:.1f} "
              f"incl. cache building, measuring {result['runtime']['measure_minutes']:.1f}); "
              f"load average at start {result['runtime']['loadavg_start']}, at end {result['runtime']['loadavg_end']} "
              "(other work may have shared the cores: timings are noisy)."]
    lines += [f"- stage {name}: {s['minutes']:.1f} min, {s['epochs']} epochs" for name, s in result["stages"].items()]
    return "\n".join(lines) + "\n"
