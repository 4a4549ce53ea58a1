"""`python -m training reproduce`: the tiny plan end to end (real synthetic videos, real training,
real ONNX Runtime FP32 and INT8), resuming, and plans refused with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training.reproduce.plan import load_plan, parse_plan
from training.reproduce.report import orderings

REPO = Path(__file__).resolve().parents[1]
CHECK_NAMES = {"dmc-vs-mv", "distilled-p-stream", "off-vs-backbone", "mfcd-teacher", "fused-coviar-fused",
               "fused-costvol", "compressed-vs-flow", "int8-within-1", "int8-guarded-within-1"}


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "training", "reproduce", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "2"})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny plan run once into a temp folder: (folder, results dict, the run's stderr)."""
    root = tmp_path_factory.mktemp("reproduce")
    args = ("--preset", "tiny", "--out", str(root / "out"), "--data", str(root / "data"), "--cache",
            str(root / "cache"), "--results", str(root / "seeds"), "--json")
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, json.loads(r.stdout), r.stderr, args


def test_tiny_plan_writes_every_row_with_sane_figures(tiny):
    root, result, _, _ = tiny
    assert json.loads((root / "seeds.json").read_text()) == result
    plan = load_plan("tiny")
    assert list(result["rows"]) == [r.id for r in plan.rows] and result["complete"]
    for row_id, row in result["rows"].items():
        assert 0 <= row["top1_fp32"] <= 1 and 0 <= row["top1_int8"] <= 1, row_id
        assert row["gflops"] > 0 and row["params"] > 0, row_id
        assert row["ms_fp32"] > 0 and row["ms_int8"] > 0, row_id
        assert row["test_clips"] == result["test_clips"] > 0
    md = (root / "seeds.md").read_text()
    for row in result["rows"].values():
        assert f"| {row['label']} |" in md
    assert "## What was reduced against the papers" in md and "total:" in md


def test_rows_are_measured_from_real_onnx_files(tiny):
    root, result, _, _ = tiny
    from quantize.evaluate import load_session

    folder = root / "out" / "rows" / "coviar-mv"
    assert (folder / "fp32.onnx").stat().st_size > 0 and (folder / "int8.onnx").stat().st_size > 0
    logits = np.load(folder / "logits-fp32.npy")
    labels = np.load(folder / "labels.npy")
    assert logits.shape == (result["test_clips"], 17)
    assert result["rows"]["coviar-mv"]["top1_fp32"] == pytest.approx(float(np.mean(logits.argmax(1) == labels)))
    meta = json.loads((root / "out" / "runs" / "coviar-mv" / "best.json").read_text())
    from edgekit.spec import InputSpec
    from training.reproduce.measure import clip_inputs

    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    first, label = next(clip_inputs(Path(meta["cache"]), specs, "test", {}))
    assert label == labels[0]
    with load_session(folder / "int8.onnx", "cpu", threads=1) as backend:  # the stored INT8 logits are ORT's
        np.testing.assert_allclose(backend.run(first)["logits"][0], np.load(folder / "logits-int8.npy")[0], rtol=1e-5,
                                   atol=1e-5)
    # the fused row is the weighted sum of its rows' saved logits
    fused = sum(w * np.load(root / "out" / "rows" / r / "logits-fp32.npy")
                for r, w in zip(("coviar-i", "coviar-mv", "coviar-r"), (2, 1, 1)))
    assert result["rows"]["coviar-fused"]["top1_fp32"] == pytest.approx(float(np.mean(fused.argmax(1) == labels)))
    # a stream row is cheaper than its whole model: OFF's backbone alone vs backbone + OFF
    assert result["rows"]["off-backbone"]["gflops"] < result["rows"]["off"]["gflops"]
    assert result["rows"]["costvol-motion"]["params"] < result["rows"]["costvol"]["params"]


def test_the_int8_guard_chooses_on_validation_and_scores_on_test(tiny):
    """Guarded INT8: the guard's model is a real ONNX file whose stored logits are ORT's, it keeps
    a subset of the quantized layers in FP32 chosen on the val split, where it passes; a refused row
    has no model and says so."""
    root, result, _, _ = tiny
    from edgekit.spec import InputSpec
    from quantize.evaluate import load_session
    from training.reproduce.measure import GUARD_SPLIT, clip_inputs

    assert result["guard"] == {"split": "val", "max_drop_points": 1.0, "min_agreement": 0.99}
    measured = {rid: r for rid, r in result["rows"].items() if not r.get("fuse")}
    passed = [rid for rid, r in measured.items() if r["guard"]["passed"]]
    assert passed, "no row passed the guard"
    for row_id, row in measured.items():
        g, folder = row["guard"], root / "out" / "rows" / row_id
        assert g["split"] == GUARD_SPLIT and g["clips"] > 0 and 0 <= g["kept_fp32"] <= g["quantized_layers"]
        assert len(g["kept_layers"]) == g["kept_fp32"]
        if not g["passed"]:  # refused: every layer in FP32 still disagrees on validation
            assert row["top1_int8_guarded"] is None and not (folder / "int8-guarded.onnx").exists()
            assert g["kept_fp32"] == g["quantized_layers"] and g["agreement"] < 0.99
            continue
        assert g["agreement"] >= 0.99 and g["drop_points"] <= 1.0
        if g["kept_fp32"] == 0:  # plain INT8 already passed: the guard ships it unchanged
            assert (folder / "int8-guarded.onnx").read_bytes() == (folder / "int8.onnx").read_bytes()
            assert g["int8_agreement"] >= 0.99
    row_id = max(passed, key=lambda r: measured[r]["guard"]["kept_fp32"])
    folder = root / "out" / "rows" / row_id
    meta = json.loads(Path(measured[row_id]["checkpoint"]).read_text())
    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    from training.reproduce.measure import input_feeds

    feeds = input_feeds(meta)
    labels = np.load(folder / "labels.npy")
    stored = np.load(folder / "logits-int8-guarded.npy")
    with load_session(folder / "int8-guarded.onnx", "cpu", threads=1) as backend:
        for i, (x, label) in enumerate(clip_inputs(Path(meta["cache"]), specs, "test", feeds)):
            assert label == labels[i]
            np.testing.assert_allclose(backend.run(x)["logits"][0], stored[i], rtol=1e-5, atol=1e-5)
    assert measured[row_id]["top1_int8_guarded"] == pytest.approx(float(np.mean(stored.argmax(1) == labels)))
    md = (root / "seeds.md").read_text()
    assert "top-1 INT8 guarded" in md and "Guarded INT8: `edgekit export --fallback`'s guard" in md


def test_orderings_list_each_check_with_its_numbers(tiny):
    root, result, _, _ = tiny
    checks = {c["name"]: c for c in result["orderings"]}
    assert set(checks) == CHECK_NAMES
    for c in checks.values():
        assert c["status"] in ("holds", "does not hold") and ("%" in c["detail"] or "points" in c["detail"])
    md = (root / "seeds.md").read_text()
    for c in checks.values():
        assert f"**{c['claim']}**: {c['status']}." in md


def test_resuming_skips_finished_stages_and_rows(tiny):
    root, result, _, args = tiny
    stamp = {p: p.stat().st_mtime_ns for p in (root / "out" / "rows").glob("*/result.json")}
    ckpt = {p: p.stat().st_mtime_ns for p in (root / "out" / "runs").glob("*/last.json")}
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    plan = load_plan("tiny")
    assert r.stderr.count("not retrained") == len(plan.stages)
    assert r.stderr.count("not measured again") == len(plan.rows)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert {p: p.stat().st_mtime_ns for p in ckpt} == ckpt
    assert json.loads(r.stdout)["rows"] == result["rows"]


@pytest.mark.parametrize("plan_text, message", [
    ('[reproduce]\nstages = []\n', "unknown key 'stages'; did you mean 'stage'?"),
    ('[reproduce]\n[[reproduce.stage]]\nname = "a"\nconfig = "edge-mv"\nint_from = "b"\n',
     "unknown key 'int_from'; did you mean 'init_from'?"),
    ('[reproduce]\n[[reproduce.stage]]\nname = "a"\nconfig = "edge-mv"\ninit_from = "b"\n',
     "stage 'a' needs stage 'b', which the plan does not have"),
    ('[reproduce]\n[[reproduce.stage]]\nname = "a"\nconfig = "edge-mvv"\n', "no training config 'edge-mvv'"),
    ('[reproduce]\n[[reproduce.stage]]\nname = "a"\nconfig = "edge-mv"\n[[reproduce.row]]\nid = "x"\nlabel = "X"\n'
     'paper = "P"\ndomain = "compresed"\nstage = "a"\n', "domain must be one of compressed, flow, rgb"),
    ('[reproduce]\n[reproduce.set]\nepochs = 3\n', "'epochs' is not a \"section.key\" name"),
    ('[reproduce]\n[reproduce.eval]\nguard_agreement = 1.5\n', "guard_agreement is the fraction of validation clips"),
    ('[reproduce]\n[reproduce.eval]\nguard_agreement = true\n', "in (0, 1], got True"),
])
def test_bad_plans_are_refused_in_one_line(tmp_path, plan_text, message):
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text)
    r = run_cli("--preset", str(plan), "--out", str(tmp_path / "out"), timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m training: error: ") and message in lines[0], \
        r.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_override_names_the_stage(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[reproduce]\n[[reproduce.stage]]\nname = "a"\nconfig = "edge-mv"\nset = { "train.epoch" = 2 }\n'
                    '[[reproduce.row]]\nid = "x"\nlabel = "X"\npaper = "P"\ndomain = "compressed"\nstage = "a"\n')
    r = run_cli("--preset", str(plan), "--out", str(tmp_path / "out"), "--data", str(tmp_path / "d"),
                "--results", str(tmp_path / "seeds"), timeout=120)
    assert r.returncode == 2 and "stage 'a' (edge-mv.toml)" in r.stderr and "train.epochs" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_preset_lists_the_plans():
    r = run_cli("--preset", "huge", "--list", timeout=120)
    assert r.returncode == 2 and "presets: paper, small, tiny" in r.stderr


def test_bundled_plans_parse_and_share_their_rows():
    small, tiny = load_plan("small"), load_plan("tiny")
    assert [r.id for r in small.rows] == [r.id for r in tiny.rows]
    assert [s.name for s in small.stages] == [s.name for s in tiny.stages]
    paper = load_plan("paper")
    assert [r.id for r in paper.rows] == [r.id for r in small.rows]
    assert all("paper" in s.config.parts for s in paper.stages)
    # every stage follows the stages it starts from
    for plan in (small, paper):
        seen = set()
        for s in plan.stages:
            assert set(s.needs) <= seen, s.name
            seen.add(s.name)
    with pytest.raises(Exception, match="in a cycle"):
        parse_plan({"reproduce": {"stage": [{"name": "a", "config": "edge-mv", "init_from": "b"},
                                            {"name": "b", "config": "edge-mv", "init_from": "a"}],
                                  "row": [{"id": "x", "label": "X", "paper": "P", "domain": "flow", "stage": "a"}]}},
                   Path("x.toml"))


def test_orderings_follow_the_numbers():
    def row(label, top1, domain="compressed", int8=None, **extra):
        return {"label": label, "paper": "P", "domain": domain, "top1_fp32": top1,
                "top1_int8": top1 if int8 is None else int8, **extra}

    rows = {"coviar-mv": row("MV", 0.60), "dmc-full": row("DMC", 0.65), "iptsn-p": row("P", 0.70),
            "iptsn-distil": row("P+T", 0.69), "flow-teacher": row("flow", 0.74, "flow", int8=0.72)}
    checks = {c.name: c for c in orderings(rows)}
    assert checks["dmc-vs-mv"].status == "holds" and "+5.0 points" in checks["dmc-vs-mv"].detail
    assert checks["distilled-p-stream"].status == "does not hold"
    assert checks["off-vs-backbone"].status == "not run"
    assert checks["compressed-vs-flow"].status == "does not hold" and "4.0 points below" in \
        checks["compressed-vs-flow"].detail
    assert checks["int8-within-1"].status == "does not hold" and "flow +2.0" in checks["int8-within-1"].detail
    rows["flow-teacher"] = row("flow", 0.72)
    checks = {c.name: c for c in orderings(rows)}
    assert checks["compressed-vs-flow"].status == "holds" and checks["int8-within-1"].status == "holds"
    assert "int8-guarded-within-1" not in checks  # measured without a guard
    guard = {"kept_fp32": 2, "quantized_layers": 20}
    for rid in rows:
        rows[rid].update(top1_int8_guarded=rows[rid]["top1_fp32"], guard=guard)
    rows["iptsn-p"].update(top1_int8_guarded=0.685)
    check = {c.name: c for c in orderings(rows)}["int8-guarded-within-1"]
    assert check.status == "does not hold" and check.rows == ("iptsn-p",) and "P +1.5" in check.detail
    assert "10 of 100 quantized layers kept in FP32" in check.detail
    rows["iptsn-p"].update(top1_int8_guarded=None)
    check = {c.name: c for c in orderings(rows)}["int8-guarded-within-1"]
    assert check.status == "does not hold" and "the guard refuses" in check.detail and "4 rows within 1" in check.detail
    rows["iptsn-p"].update(top1_int8_guarded=0.695)
    assert {c.name: c for c in orderings(rows)}["int8-guarded-within-1"].status == "holds"


def test_stream_rows_count_only_what_their_output_needs():
    import torch

    from training.models import build_model
    from training.models.flops import count_macs, count_params, spec_inputs
    from training.reproduce.measure import stream_model, used_macs_and_params

    torch.manual_seed(0)
    plain = build_model("flow-r18", 5, size=32, width=8)
    assert used_macs_and_params(plain) == (count_macs(plain.eval(), spec_inputs(plain)), count_params(plain))
    off = build_model("off-r18", 5, size=32, width=8, off_width=8, stream="mv_residual").eval()
    backbone = stream_model(off, "backbone")
    x = spec_inputs(off, seed=1)
    with torch.no_grad():
        assert torch.equal(backbone(*x), off.forward_streams(*x)["backbone"])
    macs_b, params_b = used_macs_and_params(backbone)
    macs_all, params_all = used_macs_and_params(off)
    assert macs_b < macs_all and params_b == count_params(off.backbone) + count_params(off.fc)
    # the per-level heads are trained but never used at test time
    assert params_all == count_params(off) - count_params(off.off_level_fcs)
    with pytest.raises(Exception, match="no stream 'flow'; its streams: backbone, off"):
        stream_model(off, "flow")


def test_help_has_examples_and_imports_no_torch():
    code = ("import sys\nfrom training.__main__ import main\ntry:\n    main(['reproduce', '--help'])\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "examples:" in r.stdout and "python -m training reproduce --preset small" in r.stdout
