"""Run a plan: data, the stages in order, each row measured, the results written after every row.

Resumable at every level: the synthetic data generator skips finished clips; a stage whose run
holds all its epochs is not retrained (one stopped part-way resumes from its ``last`` checkpoint);
a row whose ``result.json`` exists is not measured again unless its measuring settings (calibration
clips and method, latency runs, test clips: ``measure.measuring_settings``) have changed since: it
is then measured again from its checkpoint, without retraining (a fused row, whenever one of its
rows was). ``overwrite`` retrains and re-measures everything in the output folder (the data and
caches are kept: they are keyed by their content).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from edgekit._fileio import atomic_write
from edgekit.errors import ConfigError
from training.reproduce.plan import Plan, Row, Stage
from training.reproduce.report import Check, markdown, orderings


def stage_config(plan: Plan, stage: Stage, data: Path, cache: Path, runs: Path):
    """The stage's TrainConfig: its file <- the plan's overrides <- the stage's <- the data, cache,
    output and the checkpoints of the stages it starts from."""
    from training.config import load_config

    def checkpoint(ref):
        return (runs / ref[0] / f"{ref[1]}.json").as_posix()

    wiring = [f'data.dataset="{data.as_posix()}"', f'data.cache="{cache.as_posix()}"',
              f'train.out="{(runs / stage.name).as_posix()}"']
    if stage.init_from:
        wiring.append(f'stage.init_from="{checkpoint(stage.init_from)}"')
    if stage.teacher:
        wiring.append(f'stage.teacher="{checkpoint(stage.teacher)}"')
    try:
        return load_config(stage.config, [*plan.overrides, *stage.overrides, *wiring])
    except ConfigError as err:
        raise ConfigError(f"{plan.path}: stage {stage.name!r} ({stage.config.name}): {err}") from None


def _epochs_done(out: Path) -> int:
    try:
        return int(json.loads((out / "last.json").read_text())["epoch"]) + 1
    except (OSError, ValueError, KeyError):
        return 0


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (a repository path)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _settings_change(before: dict | None, now: dict) -> str:
    """The measuring settings that differ, as ``key: old -> new`` (one line for the progress)."""
    if not before:
        return "none recorded"

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    old, new = flat(before), flat(now)
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in sorted(old.keys() | new.keys())
                     if old.get(k) != new.get(k))


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class Reproduction:
    """One run of ``plan`` into ``out`` (stages under ``out/runs``, rows under ``out/rows``), with the
    data generated into ``data`` and caches under ``cache``; results to ``results``.{json,md}.
    ``say`` gets the progress lines."""

    def __init__(self, plan: Plan, out: Path, data: Path, cache: Path, results: Path, *, overwrite: bool = False,
                 workers: int = 2, command: str = "", say: Callable[[str], None] = print):
        self.plan, self.out, self.data, self.cache, self.results = plan, out, data, cache, results
        self.runs, self.rows_dir = out / "runs", out / "rows"
        self.overwrite, self.workers, self.command, self.say = overwrite, workers, command, say
        self.state_path = out / "reproduce-state.json"
        self.state = self._load_state()

    def _load_state(self) -> dict:
        if self.overwrite or not self.state_path.exists():
            return {"stages": {}, "data_seconds": 0.0, "measure_seconds": 0.0, "started": time.time()}
        return json.loads(self.state_path.read_text())

    def _save_state(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_path, json.dumps(self.state, indent=1))

    def check_stages(self) -> None:
        """Every stage's config, model and objective checked before any long work (ConfigError)."""
        from training.models import model_input_specs
        from training.objectives import build_objective

        for stage in self.plan.stages:
            cfg = stage_config(self.plan, stage, self.data, self.cache, self.runs)
            try:
                model_input_specs(cfg.model.name, **cfg.model.kwargs)
                build_objective(cfg.objective.name, label_smoothing=cfg.train.label_smoothing, **cfg.objective.kwargs)
            except ConfigError as err:
                raise ConfigError(f"{self.plan.path}: stage {stage.name!r} ({stage.config.name}): {err}") from None

    # -- data ---------------------------------------------------------------------------------------
    def make_data(self) -> dict:
        from training.synth.config import parse_size, resolve_config
        from training.synth.generate import generate

        settings = dict(self.plan.synth)
        preset = settings.pop("preset", "small")
        if "size" in settings:
            settings["width_px"], settings["height_px"] = parse_size(str(settings.pop("size")))
        config = resolve_config(preset, **settings)
        t0 = time.perf_counter()
        self.say(f"data: synthetic benchmark ({preset}, {config.clips_per_class} clips/class, "
                 f"{config.width_px}x{config.height_px}, {config.frames} frames) in {self.data}")
        report = generate(config, self.data, workers=self.workers, progress=False)
        self.state["data_seconds"] += time.perf_counter() - t0
        self._save_state()
        self.say(f"data: {report.clips_total} clips ({report.clips_written} written, {report.clips_skipped} there)")
        return {"preset": preset, "clips_per_class": config.clips_per_class, "clips": report.clips_total,
                "size": f"{config.width_px}x{config.height_px}", "frames": config.frames, "folder": str(self.data),
                "description": f"synthetic benchmark, {report.clips_total} clips ({config.clips_per_class} per class), "
                               f"{config.width_px}x{config.height_px}, {config.frames} frames, {config.codec}"}

    # -- stages -------------------------------------------------------------------------------------
    def train_stage(self, index: int, stage: Stage) -> None:
        from training.train import train

        cfg = stage_config(self.plan, stage, self.data, self.cache, self.runs)
        out = cfg.train.out
        epochs = cfg.train.epochs
        head = f"[stage {index}/{len(self.plan.stages)}] {stage.name}"
        done = _epochs_done(out)
        record = self.state["stages"].get(stage.name, {"seconds": 0.0})
        if done >= epochs and not self.overwrite and (out / "best.json").exists():
            self.say(f"{head}: done ({done} epochs in {out}), not retrained")
            return
        resume = done > 0 and not self.overwrite
        self.say(f"{head}: {cfg.model.name} ({cfg.objective.name}), {epochs} epochs"
                 + (f", resuming after epoch {done}" if resume else "")
                 + (f", from {cfg.stage.init_from}" if cfg.stage.init_from else "")
                 + (f", teacher {cfg.stage.teacher}" if cfg.stage.teacher else ""))
        t0 = time.perf_counter()
        summary = train(cfg, resume=resume, overwrite=not resume, progress=False,
                        log=lambda line: self.say(f"  {stage.name} {line}"))
        record = {"seconds": (record["seconds"] if resume else 0.0) + time.perf_counter() - t0, "epochs": epochs,
                  "best_val_top1": summary["best_val_top1"], "out": str(out), "config": str(stage.config)}
        self.state["stages"][stage.name] = record
        self._save_state()

    def chain_seconds(self, stage: str) -> float:
        seen, total, todo = set(), 0.0, [stage]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            total += self.state["stages"].get(name, {}).get("seconds", 0.0)
            todo.extend(self.plan.stage(name).needs)
        return total

    # -- rows ---------------------------------------------------------------------------------------
    def measure_row(self, index: int, row: Row, results: dict) -> dict:
        from training.reproduce.measure import fuse_rows, measure_checkpoint, measuring_settings

        folder = self.rows_dir / row.id
        head = f"[row {index}/{len(self.plan.rows)}] {row.id}"
        done = folder / "result.json"
        settings = measuring_settings(self.plan.calib_clips, self.plan.latency_runs, self.plan.eval_clips,
                                      guard_agreement=self.plan.guard_agreement)
        if row.fuse:  # a fused row follows its rows: measured again whenever one of them was
            settings = {**settings, "fused": {r: results[r].get("measured_at") for r in row.fuse}}
        if done.exists() and not self.overwrite:
            previous = json.loads(done.read_text())
            if previous.get("measuring") == settings:
                self.say(f"{head}: done, not measured again")
                return previous
            self.say(f"{head}: measured with other settings ({_settings_change(previous.get('measuring'), settings)}), "
                     "measuring again (the checkpoint is kept)")
        t0 = time.perf_counter()
        base = {"id": row.id, "label": row.label, "paper": row.paper, "domain": row.domain}
        if row.fuse:
            parts = [results[r] for r in row.fuse]
            fused = fuse_rows([self.rows_dir / r for r in row.fuse], list(row.weights))
            result = {**base, "fuse": list(row.fuse), "weights": list(row.weights), **fused,
                      "gflops": sum(p["gflops"] for p in parts), "params": sum(p["params"] for p in parts),
                      "ms_fp32": sum(p["ms_fp32"] for p in parts), "ms_int8": sum(p["ms_int8"] for p in parts),
                      "train_minutes": sum(p["train_minutes"] for p in parts),
                      "chain_minutes": sum(p["chain_minutes"] for p in parts)}
            if "top1_int8_guarded" in fused:
                result.update(ms_int8_guarded=sum(p["ms_int8_guarded"] for p in parts),
                              guard={key: sum(p["guard"][key] for p in parts)
                                     for key in ("kept_fp32", "quantized_layers")} | {"passed": True})
        else:
            stage = self.plan.stage(row.stage)
            checkpoint = self.runs / stage.name / f"{row.checkpoint}.json"
            self.say(f"{head}: {row.label}: ONNX FP32 + INT8, top-1, latency"
                     + (f" (stream {row.stream})" if row.stream else ""))
            m = measure_checkpoint(checkpoint, row.stream, folder, calib_clips=self.plan.calib_clips,
                                   latency_runs=self.plan.latency_runs, eval_clips=self.plan.eval_clips,
                                   guard_agreement=self.plan.guard_agreement)
            result = {**base, "stage": row.stage, "stream": row.stream, "checkpoint": str(checkpoint), **m.to_dict(),
                      "train_minutes": self.state["stages"].get(row.stage, {}).get("seconds", 0.0) / 60,
                      "chain_minutes": self.chain_seconds(row.stage) / 60}
        result["int8_drop_points"] = 100 * (result["top1_fp32"] - result["top1_int8"])
        result["measuring"] = settings
        result["measured_at"] = time.time()
        self.state["measure_seconds"] += time.perf_counter() - t0
        self._save_state()
        atomic_write(done, json.dumps(result, indent=1))
        guarded = ""
        if result.get("guard"):
            g = result["guard"]
            guarded = (f", guarded INT8 {100 * result['top1_int8_guarded']:.1f} % ({g['kept_fp32']} of "
                       f"{g['quantized_layers']} layers in FP32)" if result.get("top1_int8_guarded") is not None else
                       ", the INT8 guard refuses")
        self.say(f"{head}: top-1 FP32 {100 * result['top1_fp32']:.1f} % INT8 {100 * result['top1_int8']:.1f} %"
                 f"{guarded}, {result['gflops']:.4f} GFLOPs, {result['ms_fp32']:.2f}/{result['ms_int8']:.2f} ms")
        return result

    # -- everything ---------------------------------------------------------------------------------
    def run(self) -> dict:
        t_start = time.perf_counter()
        load_start = _loadavg()
        self.out.mkdir(parents=True, exist_ok=True)
        self.check_stages()
        self.say(f"reproduce {self.plan.preset}: {len(self.plan.stages)} stages, {len(self.plan.rows)} rows "
                 f"into {self.out}; results {self.results}.json/.md")
        data = self.make_data()
        rows: dict[str, dict] = {}
        trained = set()
        result = None
        for i, stage in enumerate(self.plan.stages, 1):
            self.train_stage(i, stage)
            trained.add(stage.name)
            for j, row in enumerate(self.plan.rows, 1):  # measure each row as soon as its stage is trained
                if row.id in rows:
                    continue
                ready = (row.stage in trained) if row.stage else all(f in rows for f in row.fuse)
                if ready:
                    rows[row.id] = self.measure_row(j, row, rows)
                    result = self.write(data, rows, load_start, t_start)
        for j, row in enumerate(self.plan.rows, 1):  # fused rows of rows measured last
            if row.id not in rows:
                rows[row.id] = self.measure_row(j, row, rows)
                result = self.write(data, rows, load_start, t_start)
        return result if result is not None else self.write(data, rows, load_start, t_start)

    def classes(self, rows: dict) -> int:
        """The number of classes the measured rows score (their saved logits' width); 0 if none."""
        import numpy as np

        for row_id, row in rows.items():
            if not row.get("fuse"):
                return int(np.load(self.rows_dir / row_id / "logits-fp32.npy", mmap_mode="r").shape[1])
        return 0

    def write(self, data: dict, rows: dict[str, dict], load_start, t_start: float) -> dict:
        from training.reproduce.measure import guard_settings

        ordered = {r.id: rows[r.id] for r in self.plan.rows if r.id in rows}
        checks = orderings(ordered)
        stage_records = {}
        for name, s in self.state["stages"].items():
            last = {}
            try:
                last = json.loads((self.runs / name / "last.json").read_text()).get("metrics", {})
            except (OSError, ValueError):
                pass
            stage_records[name] = {"minutes": s["seconds"] / 60, "epochs": s.get("epochs"),
                                   "best_val_top1": s.get("best_val_top1"), "train_top1": last.get("train_top1"),
                                   "val_top1": last.get("val_top1")}
        self.state.setdefault("loadavg_start", load_start)
        test_clips = max((r.get("test_clips", 0) for r in ordered.values()), default=0)
        train_s = sum(s.get("seconds", 0.0) for s in self.state["stages"].values())
        total_s = self.state["data_seconds"] + train_s + self.state["measure_seconds"]
        result = {
            "preset": self.plan.preset, "plan": _shown(self.plan.path), "command": self.command,
            "complete": len(ordered) == len(self.plan.rows), "rows_planned": len(self.plan.rows),
            "data": data, "test_clips": test_clips, "calib_clips": self.plan.calib_clips,
            "guard": guard_settings(self.plan.guard_agreement),
            "rows": ordered, "orderings": [c.to_dict() for c in checks],
            "notes": notes(checks, ordered, test_clips, stage_records, self.classes(ordered)),
            "reductions": list(self.plan.reductions),
            "stages": stage_records,
            "runtime": {"total_minutes": total_s / 60, "data_minutes": self.state["data_seconds"] / 60,
                        "train_minutes": train_s / 60, "measure_minutes": self.state["measure_seconds"] / 60,
                        "this_invocation_minutes": (time.perf_counter() - t_start) / 60,
                        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()})",
                        "loadavg_start": self.state["loadavg_start"], "loadavg_end": _loadavg()},
        }
        self.results.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.results.with_suffix(".json"), json.dumps(result, indent=1))
        atomic_write(self.results.with_suffix(".md"), markdown(result))
        return result


def notes(checks: list[Check], rows: dict, test_clips: int, stages: dict, classes: int) -> list[str]:
    """What the numbers alone say about each ordering that does not hold: rows at chance level (and
    their stage's last training top-1), a gap within the sampling error of top-1 on ``test_clips``
    clips, a fused row weighed down by a weak stream, an INT8 drop counted in clips; and, for an
    ordering that holds, the same caveats when its rows are at chance level or its gap is within the
    sampling error (a "holds" that compares noise)."""
    out = []
    if not rows or test_clips == 0:
        return out
    chance = 1 / max(classes, 1)

    def se(p: float) -> float:
        return math.sqrt(max(p * (1 - p), 1e-9) / test_clips)

    for c in checks:
        if c.status == "not run" or (c.status == "holds" and c.name.startswith("int8-")):
            continue
        holds = c.status == "holds"
        involved = [r for r in c.rows if r in rows]
        said = []
        weak = [r for r in involved if rows[r]["top1_fp32"] < 2 * chance] if not c.name.startswith("int8-") else []
        by_stage: dict[str, list[str]] = {}
        for r in weak:
            by_stage.setdefault(rows[r].get("stage") or r, []).append(r)
        for stage_name, ids in by_stage.items():
            stage = stages.get(stage_name, {})
            scores = ", ".join(f"{rows[r]['label']} {100 * rows[r]['top1_fp32']:.1f} %" for r in ids)
            fit = stage.get("train_top1")
            if fit is None:
                why = "it did not learn"
            elif fit >= 0.5:
                why = (f"its stage fits its training clips (training top-1 {100 * fit:.1f} % after {stage['epochs']} "
                       "epochs) without generalising")
            else:
                why = (f"its stage ended at training top-1 {100 * fit:.1f} % after {stage['epochs']} epochs: it did "
                       "not learn within this budget")
            said.append(f"{scores} {'is' if len(ids) == 1 else 'are'} near chance level ({100 * chance:.1f} %): {why}, "
                        "so an ordering involving it compares noise")
        if c.name.startswith("fused-") and rows[c.rows[0]].get("weights") and not holds:
            fused = rows[c.rows[0]]
            pairs = sorted(zip(fused["fuse"], fused["weights"]), key=lambda fw: rows[fw[0]]["top1_fp32"])
            low, w = pairs[0]
            said.append(f"the weakest stream, {rows[low]['label']} at {100 * rows[low]['top1_fp32']:.1f} %, carries "
                        f"weight {w:g} of {sum(fused['weights']):g} in the sum of logits")
        if c.name == "int8-within-1":
            said.append("; ".join(f"{rows[r]['label']}: {abs(rows[r]['int8_drop_points']):.1f} points = "
                                  f"{round(abs(rows[r]['int8_drop_points']) * test_clips / 100)} of {test_clips} clips"
                                  for r in involved))
        elif c.name == "int8-guarded-within-1":
            said.append("; ".join(_guard_note(rows[r], chance) for r in involved))
        elif len(involved) >= 2 and not weak:
            a, b = rows[involved[0]]["top1_fp32"], max(rows[r]["top1_fp32"] for r in involved[1:])
            sd = 100 * math.sqrt(se(a) ** 2 + se(b) ** 2)
            gap = 100 * abs(a - b)
            if not holds or gap <= 2 * sd:
                said.append(f"the gap, {gap:.1f} points ({round(gap * test_clips / 100)} clips), is "
                            + (f"within two standard errors of a difference on {test_clips} clips ({2 * sd:.1f} points)"
                               if gap <= 2 * sd else f"beyond two standard errors of a difference ({2 * sd:.1f} points)"))
        if said:
            out.append(f"{c.claim} ({c.status}): " + "; ".join(said) + ".")
    return out


def _guard_note(row: dict, chance: float) -> str:
    """Why a row's guarded INT8 misses: what the guard saw on the validation split."""
    g = row["guard"]
    if row.get("fuse"):
        drop = 100 * (row["top1_fp32"] - row["top1_int8_guarded"])
        return f"{row['label']}: {drop:+.1f} points on the test split (the sum of its rows' guarded logits)"
    seen = (f"on {g['clips']} {g['split']} clips plain INT8 agreed with FP32 on {100 * g['int8_agreement']:.1f} % "
            f"and the guarded model on {100 * g['agreement']:.1f} % ({g['kept_fp32']} of {g['quantized_layers']} "
            "layers in FP32)")
    tied = (f"; FP32 is near chance ({100 * row['top1_fp32']:.1f} %), where nearly tied logits flip under any "
            "rounding") if row["top1_fp32"] < 2 * chance else ""
    if row.get("top1_int8_guarded") is None:
        return f"{row['label']}: the guard refuses: {seen}{tied}"
    drop = 100 * (row["top1_fp32"] - row["top1_int8_guarded"])
    return f"{row['label']}: {drop:+.1f} points on the test split although {seen}{tied}"
