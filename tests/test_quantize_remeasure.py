"""The reproduction re-measures a row when its measuring settings (calibration clips and method,
latency runs, test clips) change, and only then: a row measured with the current settings is kept,
a fused row follows its rows. No training is involved (a row's checkpoint is only read when it is
measured again)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edgekit.errors import ConfigError
from training.reproduce.measure import CALIBRATION, measuring_settings
from training.reproduce.pipeline import Reproduction
from training.reproduce.plan import load_plan

PARTS = ("coviar-i", "coviar-mv", "coviar-r")


def _reproduction(tmp_path, plan, lines):
    return Reproduction(plan, tmp_path / "out", tmp_path / "data", tmp_path / "cache", tmp_path / "seeds",
                        say=lines.append)


def _measured_parts(rows_dir, measured_at: float) -> dict:
    """Three measured rows' saved logits (12 test clips, 3 classes) and their result dicts."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 12)
    results = {}
    for row_id in PARTS:
        folder = rows_dir / row_id
        folder.mkdir(parents=True)
        np.save(folder / "labels.npy", labels)
        for precision in ("fp32", "int8"):
            np.save(folder / f"logits-{precision}.npy", rng.standard_normal((12, 3)).astype(np.float32))
        results[row_id] = {"gflops": 0.01, "params": 1000, "ms_fp32": 0.3, "ms_int8": 0.2, "train_minutes": 0.1,
                           "chain_minutes": 0.1, "measured_at": measured_at}
    return results


def test_a_fused_row_is_measured_again_only_when_its_settings_or_rows_change(tmp_path):
    plan = load_plan("tiny")
    fused = plan.row("coviar-fused")
    index = [r.id for r in plan.rows].index(fused.id) + 1
    lines: list[str] = []
    parts = _measured_parts(tmp_path / "out" / "rows", measured_at=1.0)
    first = _reproduction(tmp_path, plan, lines).measure_row(index, fused, parts)
    assert first["measuring"]["calib_clips"] == plan.calib_clips
    assert first["measuring"]["calibration"] == CALIBRATION.to_dict()
    assert first["measuring"]["guard"] == {"split": "val", "max_drop_points": 1.0,
                                           "min_agreement": plan.guard_agreement}
    assert "top1_int8_guarded" not in first  # its rows have no guarded logits

    again = _reproduction(tmp_path, plan, lines).measure_row(index, fused, parts)
    assert again == first and lines[-1].endswith("done, not measured again")

    more_clips = dataclasses.replace(plan, calib_clips=2 * plan.calib_clips)
    third = _reproduction(tmp_path, more_clips, lines).measure_row(index, fused, parts)
    assert f"calib_clips: {plan.calib_clips} -> {2 * plan.calib_clips}" in lines[-2]
    assert third["measured_at"] > first["measured_at"]

    parts["coviar-mv"] = {**parts["coviar-mv"], "measured_at": 2.0}  # one of its rows was measured again
    _reproduction(tmp_path, more_clips, lines).measure_row(index, fused, parts)
    assert "measured with other settings" in lines[-2] and "coviar-mv: 1.0 -> 2.0" in lines[-2]


def test_a_trained_row_is_kept_with_its_settings_else_measured_again_from_its_checkpoint(tmp_path):
    plan = load_plan("tiny")
    row = plan.row("coviar-mv")
    folder = tmp_path / "out" / "rows" / row.id
    folder.mkdir(parents=True)
    current = measuring_settings(plan.calib_clips, plan.latency_runs, plan.eval_clips,
                                 guard_agreement=plan.guard_agreement)
    kept = {"id": row.id, "top1_fp32": 0.5, "top1_int8": 0.5, "measuring": current}
    (folder / "result.json").write_text(json.dumps(kept))
    lines: list[str] = []
    assert _reproduction(tmp_path, plan, lines).measure_row(2, row, {}) == kept
    assert lines == [f"[row 2/{len(plan.rows)}] coviar-mv: done, not measured again"]

    # measured with the old default (no settings recorded): measured again, from the stage's checkpoint
    (folder / "result.json").write_text(json.dumps({k: v for k, v in kept.items() if k != "measuring"}))
    with pytest.raises(ConfigError, match="no checkpoint at .*runs/coviar-mv/best.json"):  # none trained here
        _reproduction(tmp_path, plan, lines).measure_row(2, row, {})
    assert "measured with other settings (none recorded), measuring again" in lines[-2]


def test_a_fused_row_sums_its_rows_guarded_logits_when_every_row_has_them(tmp_path):
    plan = load_plan("tiny")
    fused = plan.row("coviar-fused")
    index = [r.id for r in plan.rows].index(fused.id) + 1
    rows_dir = tmp_path / "out" / "rows"
    parts = _measured_parts(rows_dir, measured_at=1.0)
    rng = np.random.default_rng(1)
    for n, row_id in enumerate(PARTS):
        np.save(rows_dir / row_id / "logits-int8-guarded.npy", rng.standard_normal((12, 3)).astype(np.float32))
        parts[row_id].update(ms_int8_guarded=0.25, guard={"kept_fp32": n, "quantized_layers": 19, "passed": True})
    result = _reproduction(tmp_path, plan, []).measure_row(index, fused, parts)
    labels = np.load(rows_dir / PARTS[0] / "labels.npy")
    summed = sum(w * np.load(rows_dir / r / "logits-int8-guarded.npy") for r, w in zip(fused.fuse, fused.weights))
    assert result["top1_int8_guarded"] == pytest.approx(float(np.mean(summed.argmax(1) == labels)))
    assert result["ms_int8_guarded"] == pytest.approx(0.75)
    assert result["guard"] == {"kept_fp32": 3, "quantized_layers": 57, "passed": True}
    (rows_dir / "coviar-r" / "logits-int8-guarded.npy").unlink()  # that row's guard refused: no guarded fusion
    again = _reproduction(tmp_path, dataclasses.replace(plan, calib_clips=plan.calib_clips + 1), []).measure_row(
        index, fused, parts)
    assert "top1_int8_guarded" not in again and "guard" not in again
