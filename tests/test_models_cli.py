"""``edgekit models`` / ``python -m training models``: table, JSON, export check, errors."""

from __future__ import annotations

import json

import pytest

from training.__main__ import main


def test_models_json_is_one_object_with_every_requested_model(capsys):
    assert main(["models", "--json", "--model", "edge-mvr", "--model", "dmc-r18", "--num-classes", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in report["models"]}
    assert set(rows) == {"edge-mvr", "dmc-r18"}
    assert rows["edge-mvr"]["inputs"][0]["shape"] == [1, 3, 5, 112, 112]
    assert rows["edge-mvr"]["params"] < 2_000_000
    # DMC generator (0.2285) + 3 segments of a 2-channel ResNet-18 (1.7747 - FC) at 224
    assert rows["dmc-r18"]["gflops"] == pytest.approx(3 * (0.2285 + 1.7742), abs=0.01)
    figures = {r["what"]: r for r in report["reference"]}
    assert figures["DMC generator, 5x224x224"]["paper"] == 0.23


def test_models_table_with_export_check(capsys):
    assert main(["models", "--model", "edge-mvr", "--check-export", "--no-progress"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("edge-mvr"))
    assert "mv_residual BSCHW 1x3x5x112x112" in line
    assert line.split()[-2] == "yes"
    assert "DMC generator" in out  # the paper-figure table follows


def test_unknown_model_exits_2_with_one_line(capsys):
    assert main(["models", "--model", "resnet9000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m training: error: unknown model") and err.count("\n") == 1


def test_edgekit_models_is_the_same_command(capsys):
    from edgekit.cli import main as edgekit_main

    argv = ["models", "--json", "--model", "edge-mvr", "--num-classes", "5"]
    assert main(argv) == 0 and edgekit_main(argv) == 0
    training_out, edgekit_out = capsys.readouterr().out.splitlines()
    assert json.loads(training_out) == json.loads(edgekit_out)


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out
