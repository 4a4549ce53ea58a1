"""benchmarks/motion_ceiling.py: real checkpoints trained a step each (edge-mv-ref on motion
vectors, edge-flow on the renderer's exact flow, at 8x8 cells, and on DIS flow of the decoded
pictures) scored on real generated clips of the 12 fixed classes; the figures follow from the
predictions, and each model reads the side data it was made for."""

from __future__ import annotations

import json

import pytest

from benchscripts import load_benchmark
from training.config import load_config
from training.synth import resolve_config
from training.synth.classes import FIXED_CLASS_NAMES
from training.synth.generate import generate
from training.train import train

mc = load_benchmark("motion_ceiling.py")
SIZE = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny preset's 12 fixed classes (5 clips each, MPEG-4: every split has some) and one training step of each config."""
    root = tmp_path_factory.mktemp("motion-ceiling")
    data = root / "data"
    generate(resolve_config("tiny", clips_per_class=5, classes=",".join(FIXED_CLASS_NAMES)), data, workers=1,
             progress=False)
    checkpoints = {}
    for name, config, extra in (("edge-mv-ref", "edge-mv-ref", []), ("edge-flow", "edge-flow", []),
                                ("edge-flow-cells", "edge-flow", ["data.flow_cells=8"]),
                                ("edge-flow-dis", "edge-flow", ["data.flow='dis-ultrafast'"])):
        cfg = load_config(config, [f"data.dataset='{data}'", f"data.cache='{root / 'cache'}'", "data.workers=0",
                                   f"train.out='{root / name}'", f"model.size={SIZE}", "train.epochs=1",
                                   "train.batch_size=4", "train.max_steps_per_epoch=1", "train.device='cpu'",
                                   "stage.init_from=''", *extra])
        train(cfg, progress=False, log=None)
        checkpoints[name] = root / name / "last.json"
    return root, data, checkpoints


def test_checkpoint_labels_and_data_are_parsed_or_refused():
    assert mc.parse_checkpoint("flow=runs/edge-flow/best.json") == ("flow", mc.Path("runs/edge-flow/best.json"))
    assert mc.parse_checkpoint("runs/edge-flow/best.json")[0] == "edge-flow"  # the run folder names it
    with pytest.raises(SystemExit, match="LABEL=PATH"):
        mc.parse_checkpoint("flow=")
    with pytest.raises(SystemExit, match="DIR:SPLIT"):
        mc.main(["--checkpoint", "x=y.json", "--data", "data/synth:training"])


def test_each_model_reads_its_own_side_data_and_the_figures_add_up(setup, capsys):
    root, data, checkpoints = setup
    assert mc.main(["--checkpoint", f"vectors={checkpoints['edge-mv-ref']}",
                    "--checkpoint", f"flow={checkpoints['edge-flow']}",
                    "--checkpoint", f"cells={checkpoints['edge-flow-cells']}",
                    "--checkpoint", f"dis={checkpoints['edge-flow-dis']}", "--data", f"{data}:train",
                    "--cache", str(root / "cache"), "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "motion_ceiling" and report["settings"]["classes"] == list(FIXED_CLASS_NAMES)
    clips = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    train_clips = [c for c in clips if c["split"] == "train"]
    for label, model, flow, cells in (("vectors", "edge-mv-ref", "none", 0), ("flow", "edge-flow", "gt", 0),
                                      ("cells", "edge-flow", "gt", 8), ("dis", "edge-flow", "dis-ultrafast", 0)):
        result = report["results"][label][f"{data}:train"]
        assert result["model"] == model and result["flow_cells"] == cells  # the flow as the run read it
        assert result["inputs"] == (["mv_ref"] if label == "vectors" else ["flow"])
        spec = json.loads((mc.Path(result["cache"]) / "spec.json").read_text())["spec"]
        assert spec["flow"] == flow and spec["size"] == SIZE  # the checkpoint's own preprocessing
        assert result["clips"] == len(train_clips) > 0
        assert sum(r["correct"] for r in result["per_class"].values()) == result["correct"]
        assert sum(r["clips"] for r in result["per_class"].values()) == result["clips"]
        assert {k: v["clips"] for k, v in result["by_codec"].items()} == {"mpeg4": len(train_clips)}
        # static and the scene classes have no actor; every other class has one
        without = sum(c["label"] in ("static", "scene_left", "scene_right") for c in train_clips)
        assert {k: v["clips"] for k, v in result["by_codec_actor"].items()} == {
            "mpeg4 actor": len(train_clips) - without, "mpeg4 no actor": without}
        assert sum(v["correct"] for v in result["by_codec_actor"].values()) == result["correct"]
        assert result["top1"] == pytest.approx(result["correct"] / result["clips"], abs=1e-4)


def test_a_missing_checkpoint_or_class_is_one_line(setup, tmp_path):
    root, data, checkpoints = setup
    with pytest.raises(SystemExit, match="no such checkpoint"):
        mc.main(["--checkpoint", f"x={tmp_path / 'none.json'}", "--data", f"{data}:train"])
    with pytest.raises(SystemExit, match="has no class 'juggle'"):
        mc.score(checkpoints["edge-flow"], data, "train", root / "cache", 1, ("move_left", "juggle"))


def test_the_cache_follows_the_checkpoints_record_when_its_training_cache_is_gone(setup, tmp_path):
    from edgekit.spec import InputSpec

    root, data, checkpoints = setup
    meta = json.loads(checkpoints["edge-flow"].read_text())
    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    found = mc.cache_for(data, meta, specs, root / "cache", 1)
    gone = mc.cache_for(data, {**meta, "cache": str(tmp_path / "deleted")}, specs, root / "cache", 1)
    assert gone == found and json.loads((found / "spec.json").read_text())["spec"]["flow"] == "gt"
