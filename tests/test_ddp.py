"""Data-parallel training and sharded cache building, for real: two CPU processes started by torchrun
(gloo), a real tiny synthetic dataset and cache, real models and optimisers; what they write is
checked against a single process (the checkpoint evaluated alone, the cache built alone).

Run as a script under torchrun (``torchrun --nproc_per_node 2 tests/test_ddp.py sync OUT``), this file
is the gradient-synchronisation probe of :func:`test_dmc_steps_keep_every_process_on_the_same_weights`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit.errors import ConfigError
from training.distributed import SINGLE, Distributed, ShardSampler, launch_environment, per_process_batch

SIZE = 32
RUN_FILES = {"best.json", "best.safetensors", "last.json", "last.safetensors", "metrics.jsonl"}


def _torchrun(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` (a free port: other runs may share the machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def _train_args(dataset, cache, out, *extra) -> list[str]:
    sets = [f"data.dataset='{dataset}'", f"data.cache='{cache}'", f"train.out='{out}'", "data.workers=0",
            f"model.size={SIZE}", "train.epochs=2", "train.batch_size=8", *extra]
    return ["-m", "training", "train", *(a for s in sets for a in ("--set", s)), "--no-progress", "--json"]


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from training.__main__ import main

    out = tmp_path_factory.mktemp("ddp") / "synth"
    assert main(["synth", "--preset", "tiny", "--clips-per-class", "3", "--size", "64x48", "--frames", "12",
                 "--seed", "0", "--workers", "1", "--out", str(out), "--json"]) == 0
    return out  # 17 classes, 17 clips in each of train, val and test


@pytest.fixture(scope="module")
def ddp_run(dataset, tmp_path_factory):
    """A 2-epoch, 2-process run of the edge model: (its output folder, the torchrun result)."""
    root = tmp_path_factory.mktemp("ddp-run")
    r = _torchrun(*_train_args(dataset, root / "cache", root / "run"))
    assert r.returncode == 0, r.stderr[-3000:]
    return root / "run", r


def test_a_two_process_run_is_one_run_that_rank_0_writes_and_logs(ddp_run):
    out, r = ddp_run
    assert {p.name for p in out.iterdir()} == RUN_FILES  # no second writer's leftovers
    summaries = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["processes"] == 2
    epoch_lines = [line[:9] for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert epoch_lines == ["epoch 1/2", "epoch 2/2"]  # one process logs
    records = _metrics(out)
    # 17 training clips: 9 per process (one repeated), 4 per process per step -> 3 steps an epoch
    assert [(m["epoch"], m["step"]) for m in records] == [(1, 3), (2, 6)]
    assert summaries[0]["last"] == records[-1]


def test_its_val_top1_is_the_single_process_value_of_its_checkpoint(ddp_run):
    from training.checkpoint import build_from_checkpoint, load_checkpoint
    from training.evaluate import evaluate_checkpoint

    out, _ = ddp_run
    meta, state, _ = load_checkpoint(out / "last.json")
    assert meta["processes"] == 2 and not any(k.startswith("module.") for k in state)
    model, _ = build_from_checkpoint(out / "last.json")  # strict load into a fresh, unwrapped model
    assert sum(p.numel() for p in model.parameters()) > 0
    last = _metrics(out)[-1]
    alone = evaluate_checkpoint(out / "last.json", split="val")
    assert alone["videos"] == 17
    assert alone["top1"] == pytest.approx(last["val_top1"], abs=1e-6)  # one clip is 1/17
    assert alone["top5"] == pytest.approx(last["val_top5"], abs=1e-6)
    best = load_checkpoint(out / "best.json")[0]
    assert evaluate_checkpoint(out / "best.json", split="val")["top1"] == \
        pytest.approx(best["metrics"]["val_top1"], abs=1e-6)


def test_a_two_process_run_resumes_where_it_stopped(ddp_run, dataset, tmp_path):
    out, _ = ddp_run
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    before = _metrics(resumed)
    args = _train_args(dataset, out.parent / "cache", resumed, "train.epochs=3")
    r = _torchrun(*args, "--force-resume")  # the epoch count changed: resuming needs --force-resume
    assert r.returncode == 0, r.stderr[-3000:]
    after = _metrics(resumed)
    assert after[:2] == before
    assert (after[2]["epoch"], after[2]["step"]) == (3, 9)
    assert json.loads(r.stdout.strip().splitlines()[-1])["epochs"] == 3
    from training.checkpoint import load_checkpoint

    assert load_checkpoint(resumed / "last.json")[0]["epoch"] == 2


def test_dmc_steps_keep_every_process_on_the_same_weights(tmp_path):
    """The generator and discriminator steps through DDP average the gradients: after steps on
    different batches both processes hold the same weights, which the plain calls do not."""
    r = _torchrun(__file__, "sync", tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "sync.json").read_text())
    assert report["moved"]["model"] > 0 and report["moved"]["discriminator"] > 0
    assert report["synced"] == {"model": 0.0, "discriminator": 0.0}
    assert report["unsynced"]["model"] > 0 and report["unsynced"]["discriminator"] > 0


def test_a_two_process_cache_is_byte_for_byte_the_single_process_cache(dataset, tmp_path):
    from training.__main__ import main

    options = ["--size", str(SIZE), "--flow", "gt", "--workers", "1", "--json"]
    r = _torchrun("-m", "training", "cache", dataset, "--out", tmp_path / "two", *options)
    assert r.returncode == 0, r.stderr[-3000:]
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1 and reports[0]["complete"] and reports[0]["clips"] == 51
    assert main(["cache", str(dataset), "--out", str(tmp_path / "one"), *options]) == 0
    for part in ("1/2", "0/2"):  # separate runs, as on two machines sharing the output folder
        assert main(["cache", str(dataset), "--out", str(tmp_path / "parts"), "--shard", part, *options]) == 0

    def files(root):
        (folder,) = root.iterdir()
        return folder.name, {p.name: p.read_bytes() for p in folder.iterdir()}

    key, one = files(tmp_path / "one")
    assert {n for n in one if n.endswith(".json") and n != "spec.json"} == {f"shard-0000{i}.json" for i in range(4)}
    assert any(n.endswith(".flow.npy") for n in one)
    assert files(tmp_path / "two") == (key, one)
    assert files(tmp_path / "parts") == (key, one)


def test_one_part_alone_is_an_incomplete_cache_and_bad_parts_are_refused(dataset, tmp_path, capsys):
    from training.__main__ import main

    options = ["--size", str(SIZE), "--workers", "1"]
    assert main(["cache", str(dataset), "--out", str(tmp_path), "--shard", "1/2", *options, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["complete"], report["part"], report["clips"]) == (False, "1/2", 19)  # shards 1 and 3: 16 + 3
    for bad in ("2/2", "1", "a/b"):
        assert main(["cache", str(dataset), "--out", str(tmp_path), "--shard", bad, *options]) == 2
        err = capsys.readouterr().err
        assert err.startswith("python -m training: error: ") and "--shard" in err and len(err.splitlines()) == 1


def test_the_global_batch_splits_evenly_or_is_refused():
    assert per_process_batch(32, SINGLE) == 32
    assert per_process_batch(32, Distributed(1, 4, 1, "gloo")) == 8
    with pytest.raises(ConfigError, match="batch_size 30 .* 4 processes; set it to a multiple of 4"):
        per_process_batch(30, Distributed(0, 4, 0, "gloo"))


def test_evaluation_shards_cover_every_clip_once():
    shards = [list(ShardSampler(17, Distributed(r, 3, r, "gloo"))) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(17))
    assert [len(ShardSampler(17, Distributed(r, 3, r, "gloo"))) for r in range(3)] == [6, 6, 5]
    assert list(ShardSampler(1, Distributed(1, 2, 1, "gloo"))) == []


def test_the_launch_environment_is_read_and_checked():
    assert launch_environment({}) == SINGLE
    assert launch_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Distributed(1, 2, 1)
    with pytest.raises(ConfigError, match="not a valid placement"):
        launch_environment({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


def _sync_probe(out: Path) -> None:
    """Under torchrun: two DMC-Net steps (discriminator, then generator) on a different batch per
    process, once through ``objective_steps`` and once by plain calls; rank 0 writes how far the
    processes' weights are apart after each, and how far the weights moved."""
    import torch
    import torch.distributed as dist

    from training.distributed import objective_steps, process_group
    from training.models import build_model
    from training.objectives import build_objective

    def flat(module):
        return torch.cat([p.detach().flatten() for p in module.parameters()])

    def spread(module) -> float:  # max |weights of a process - weights of rank 0|
        mine = flat(module)
        everyone = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(everyone, mine)
        return float(max((w - everyone[0]).abs().max() for w in everyone))

    torch.set_num_threads(1)
    with process_group("cpu") as place:
        report = {"synced": {}, "unsynced": {}, "moved": {}}
        for mode in ("synced", "unsynced"):
            torch.manual_seed(0)  # the same initial weights everywhere
            model = build_model("dmc-r18", 17, size=SIZE, width=8, segments=2, dropout=0.0)
            objective = build_objective("dmc", label_smoothing=0.0)
            start = {"model": flat(model), "discriminator": flat(objective.discriminator)}
            torch.manual_seed(100 + place.rank)  # each process its own batch
            (spec,) = model.input_specs
            batch = {spec.name: torch.randn(4, *spec.shape[1:]),
                     "flow": torch.randn(4, spec.shape[1], 2, SIZE, SIZE), "label": torch.randint(0, 17, (4,))}
            steps = objective_steps(place if mode == "synced" else SINGLE, model, objective, {}, torch.device("cpu"))
            g_opt = torch.optim.SGD(model.parameters(), lr=0.1)
            d_opt = torch.optim.SGD(objective.discriminator.parameters(), lr=0.1)
            for _ in range(2):
                d_opt.zero_grad()
                steps.discriminator(batch).loss.backward()
                d_opt.step()
                g_opt.zero_grad()
                steps.generator(batch).loss.backward()
                g_opt.step()
            report[mode] = {"model": spread(model), "discriminator": spread(objective.discriminator)}
            if mode == "synced":
                report["moved"] = {"model": float((flat(model) - start["model"]).abs().max()),
                                   "discriminator": float((flat(objective.discriminator)
                                                           - start["discriminator"]).abs().max())}
        if place.is_main:
            (out / "sync.json").write_text(json.dumps(report))


if __name__ == "__main__" and sys.argv[1:2] == ["sync"]:
    _sync_probe(Path(sys.argv[2]))
