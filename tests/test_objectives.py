"""The seed methods' objectives, stages and teachers, on a real tiny synthetic dataset: real encoded
clips, a real side-data cache with ground-truth flow (accumulated to the I-frame) and decoded RGB,
real zoo models at tiny widths, real torch optimisers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgekit.errors import ConfigError
from training.cache import CacheSpec, CachedClips, Companion, build_cache
from training.checkpoint import init_from_checkpoint, load_checkpoint, load_extras, save_checkpoint
from training.config import bundled_configs, load_config
from training.models import build_model, model_input_specs
from training.objectives import TEACHER_KEY, Teacher, build_objective, list_objectives
from training.objectives import stages
from training.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
NEW_CONFIGS = [name for name in bundled_configs() if not name.startswith("edge-")]
FLOW_TEACHER_CONFIGS = ["edge-flow", "edge-mv-ref-distil"]  # the motion ceiling and its distillation


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from training.__main__ import main

    out = tmp_path_factory.mktemp("objectives") / "synth"
    assert main(["synth", "--preset", "tiny", "--clips-per-class", "3", "--size", "64x48", "--frames", "12",
                 "--seed", "0", "--workers", "1", "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture(scope="module")
def cache(dataset, tmp_path_factory):
    spec = CacheSpec(size=SIZE, flow="gt", flow_layout="accumulated", rgb=True)
    return build_cache(dataset, tmp_path_factory.mktemp("cache"), spec, workers=1, progress=False)


def _batch(cache, model, companions=(), count=6) -> dict:
    """One fixed batch of ``count`` training items (the model's inputs, companions, label)."""
    ds = CachedClips.for_specs(cache, "train", model.input_specs, seed=0, companions=companions)
    items = [ds[i] for i in range(count)]
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


def _model(name, **cfg):
    torch.manual_seed(0)
    return build_model(name, 17, size=SIZE, dropout=0.0, **cfg).train()


def _teacher(name, feeds, batch, **cfg):
    """A frozen teacher that has learnt the batch's labels from its own inputs (``feeds``), as a
    trained teacher would have: eval mode, no gradients."""
    model = _model(name, **cfg)
    inputs = {n: batch[key] for n, key in feeds.items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(model(**inputs), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # its BatchNorm statistics are those of this batch, as after a whole training
        for norm in model.modules():
            if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
                norm.reset_running_stats()
                norm.momentum = None
        model(**inputs)
    for p in model.parameters():
        p.requires_grad_(False)
    return {TEACHER_KEY: Teacher(model.eval(), feeds)}


def _train_steps(objective, model, batch, teachers=None, steps=8, lr=3e-3):
    """(terms before, terms after) ``steps`` Adam steps on the one batch."""
    teachers = teachers or {}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    before = objective(model, batch, teachers).terms
    for _ in range(steps):
        loss = objective(model, batch, teachers).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return before, objective(model, batch, teachers).terms


def _assert_all_lower(before, after, names):
    assert set(names) <= set(before), (names, before)
    for name in names:
        assert after[name] < before[name], f"{name}: {before[name]:.5f} -> {after[name]:.5f}"


def test_every_family_has_an_objective_and_unknown_keys_are_refused():
    assert set(list_objectives()) == {"ce", "dmc", "iptsn", "mfcd", "mfcd-rgb", "off", "costvol"}
    assert build_objective("dmc").alpha == 10.0 and build_objective("dmc").lambda_adv == 1.0
    assert build_objective("iptsn").feature_weight == 50.0 and build_objective("iptsn").temperature == 8.0
    with pytest.raises(ConfigError, match="did you mean 'objective.alpha'"):
        build_objective("dmc", alpah=1.0)
    with pytest.raises(ConfigError, match="did you mean 'dmc'"):
        build_objective("dmcc")
    with pytest.raises(ConfigError, match="set once, as train.label_smoothing"):  # not a TypeError at train time
        load_config("iptsn-distil2d", ["objective.label_smoothing=0.1"])


def test_ce_with_soft_labels_lowers_both_terms(cache):
    model = _model("mvr-r18", width=8)
    batch = _batch(cache, model)
    teachers = _teacher("mvr-r18", {"mv_residual": "mv_residual"}, batch, width=8)
    before, after = _train_steps(build_objective("ce", label_smoothing=0.05, soft_weight=1.0), model, batch, teachers)
    _assert_all_lower(before, after, ["cls", "soft"])


def test_dmc_lowers_cls_and_flow_reconstruction_and_each_adversarial_step_moves_its_way(cache):
    model = _model("dmc-r18", width=8)
    objective = build_objective("dmc")
    batch = _batch(cache, model, objective.needs.companions)
    assert batch["flow"].shape == (6, 3, 2, SIZE, SIZE) and batch["flow"].abs().sum() > 0
    # the discriminator's own step (generator fixed): its loss goes down, the generator is untouched
    generator = {k: v.clone() for k, v in model.state_dict().items()}
    d_opt = torch.optim.Adam(objective.discriminator.parameters(), lr=1e-3)
    d_before = objective.discriminator_step(model, batch).terms["adv_d"]
    for _ in range(5):
        d_loss = objective.discriminator_step(model, batch).loss
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
    assert objective.discriminator_step(model, batch).terms["adv_d"] < d_before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in generator.items() if "running" not in k
               and "num_batches" not in k)
    # the generator's steps (discriminator fixed, never stepped): the whole loss and its cls and mse
    # terms go down; and its adversarial term alone (cls and mse weighted 0) moves the generator
    # toward fooling D: adv_g goes down. (Under the whole loss adv_g, near log 2 against a D this
    # young, may rise a little while the flow reconstruction, weighted 10, is fitted first.)
    judge = {k: v.clone() for k, v in objective.discriminator.state_dict().items()}
    objective.discriminator.eval()
    before, after = _train_steps(objective, model, batch)
    _assert_all_lower(before, after, ["cls", "mse"])
    total = {t: terms["cls"] + objective.alpha * terms["mse"] + objective.lambda_adv * terms["adv_g"]
             for t, terms in (("before", before), ("after", after))}
    assert total["after"] < total["before"], total
    fool = build_objective("dmc", cls_weight=0.0, alpha=0.0)
    fool.discriminator = objective.discriminator
    before, after = _train_steps(fool, model, batch)
    _assert_all_lower(before, after, ["adv_g"])
    assert all(torch.equal(v, objective.discriminator.state_dict()[k]) for k, v in judge.items())


def test_iptsn_lowers_cls_and_feature_distance_to_a_frozen_flow_teacher(cache):
    model = _model("iptsn-p", frames=4, width=8)
    objective = build_objective("iptsn", soft_weight=1.0)
    teacher_specs = model_input_specs("iptsn-flow", frames=4, size=SIZE)
    feeds, companions = stages.teacher_feeds(teacher_specs, model.input_specs, {})
    assert feeds == {"flow": "teacher.flow"} and companions == [Companion("teacher.flow", "mv_residual", "flow")]
    batch = _batch(cache, model, companions)
    teachers = _teacher("iptsn-flow", feeds, batch, frames=4, width=8)
    frozen = {k: v.clone() for k, v in teachers[TEACHER_KEY].model.state_dict().items()}
    before, after = _train_steps(objective, model, batch, teachers)
    _assert_all_lower(before, after, ["cls", "feature_l1", "soft"])
    teacher = teachers[TEACHER_KEY].model
    assert not teacher.training and all(torch.equal(v, teacher.state_dict()[k]) for k, v in frozen.items())


def test_mfcd_lowers_cls_hints_and_kl_against_an_rgb_teacher_on_the_same_frames(cache):
    cfg = {"frames": 4, "base_channels": 16, "groups": 4}
    model = _model("mfcd", **cfg)
    objective = build_objective("mfcd")
    feeds, companions = stages.teacher_feeds(model.input_specs, model.input_specs, objective.needs.teacher_parts)
    assert feeds == {"gop_clip": "teacher.gop_clip"} and companions[0].part == "rgb"
    batch = _batch(cache, model, companions)
    rgb, pseudo = batch["teacher.gop_clip"], batch["gop_clip"]
    assert torch.equal(rgb[:, :, 0], pseudo[:, :, 0])  # the GOP's I-frame is the same picture in both
    assert not torch.equal(rgb[:, :, 1:], pseudo[:, :, 1:])  # decoded RGB, not (R_acc + I) / 2
    before, after = _train_steps(objective, model, batch, _teacher("mfcd", feeds, batch, **cfg))
    _assert_all_lower(before, after, ["cls", "hint", "kl"])


def test_off_supervises_every_level_on_its_own(cache):
    model = _model("off-r18", stream="mv_residual", width=8, off_width=8)
    batch = _batch(cache, model)
    before, after = _train_steps(build_objective("off"), model, batch)
    _assert_all_lower(before, after, ["backbone", "off", "off_level0", "off_level1"])


def test_costvol_lowers_each_branch_with_its_learning_rate_and_clipping(cache):
    model = _model("costvol-r18", frames=4, width=16)
    objective = build_objective("costvol")
    assert objective.needs.clip_grad_norm == 20.0
    groups = stages.parameter_groups(model, objective.needs.lr_mult, 0.005)
    by_param = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_param[id(named["appearance.conv1.weight"])] == pytest.approx(0.001)
    assert by_param[id(named["motion_net.conv1.weight"])] == pytest.approx(0.005)
    assert by_param[id(named["change_fc.weight"])] == pytest.approx(0.005)
    before, after = _train_steps(objective, model, _batch(cache, model))
    _assert_all_lower(before, after, ["appearance", "motion", "change"])


def test_freeze_keeps_parameters_and_statistics_and_gives_them_no_gradient(cache):
    model = _model("off-r18", stream="mv_residual", width=8, off_width=8)
    frozen = stages.freeze(model, ["backbone.*", "fc.*"])
    assert "backbone.conv1.weight" in frozen and "fc.bias" in frozen and not any(n.startswith("off") for n in frozen)
    norms = stages.frozen_batchnorms(model)
    for norm in norms:
        norm.eval()
    before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("backbone.", "fc."))}
    off_before = model.off_fc.weight.detach().clone()
    optimizer = torch.optim.AdamW([p for g in stages.parameter_groups(model, (), 1e-2) for p in g["params"]],
                                  lr=1e-2, weight_decay=0.1)
    batch = _batch(cache, model)
    for _ in range(2):
        loss = build_objective("off")(model, batch, {}).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # weights and running statistics
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith(("backbone.", "fc.")))
    assert not torch.equal(model.off_fc.weight, off_before) and model.off.refine[0][0].weight.grad is not None
    with pytest.raises(ConfigError, match="matches no parameter"):
        stages.freeze(model, ["backbone_typo.*"])


def test_lr_multipliers_land_in_the_optimizer_groups_config_first():
    model = _model("dmc-r18", width=8)
    objective = build_objective("dmc", classifier_lr_mult=0.01)
    rules = [("generator.convs.5.*", 0.5), *objective.needs.lr_mult]
    groups = stages.parameter_groups(model, rules, 0.01, config_patterns=["generator.convs.5.*"])
    lr_of = {n: g["lr"] for g in groups for n, p in model.named_parameters() for q in g["params"] if p is q}
    assert lr_of["generator.convs.0.weight"] == pytest.approx(0.01)
    assert lr_of["generator.convs.5.weight"] == pytest.approx(0.005)
    assert lr_of["classifier.fc.weight"] == pytest.approx(0.01)  # the classifier's last layer: full rate
    assert lr_of["classifier.backbone.layer1.0.conv1.weight"] == pytest.approx(0.0001)  # 100x smaller
    with pytest.raises(ConfigError, match="stage.lr_mult pattern 'nothing.*' matches no parameter"):
        stages.parameter_groups(model, [("nothing.*", 2.0)], 0.01, config_patterns=["nothing.*"])


def test_init_from_inflates_a_2d_network_into_the_2d3d_p_stream_and_renames_into_dmc(tmp_path):
    two_d = _model("mvr-r18", width=8)
    meta = {"model": "mvr-r18", "model_cfg": {"size": SIZE, "width": 8}, "classes": [str(i) for i in range(17)]}
    save_checkpoint(tmp_path / "mr2d", two_d, meta)
    p_stream = _model("iptsn-p", frames=4, width=8)
    report = init_from_checkpoint(p_stream, tmp_path / "mr2d.json")
    src, dst = two_d.state_dict(), p_stream.state_dict()
    assert torch.equal(dst["backbone.layer2.0.conv1.weight"], src["backbone.layer2.0.conv1.weight"])  # 2D part
    kernel = dst["backbone.layer4.0.conv1.weight"]  # 3D part: (O, I, 3, 3, 3), the 2D kernel on the centre tap
    assert kernel.dim() == 5 and torch.equal(kernel[:, :, 1], src["backbone.layer4.0.conv1.weight"])
    assert kernel[:, :, 0].abs().sum() == 0 and "backbone.layer4.0.conv1.weight" in report["inflated"]
    assert torch.equal(dst["fc.weight"], src["fc.weight"])
    flow = _model("flow-r18", width=8)
    save_checkpoint(tmp_path / "flow2d", flow, {**meta, "model": "flow-r18"})
    dmc = _model("dmc-r18", width=8)
    init_from_checkpoint(dmc, tmp_path / "flow2d.json", {"": "classifier."})
    assert torch.equal(dmc.state_dict()["classifier.backbone.conv1.weight"], flow.state_dict()["backbone.conv1.weight"])
    with pytest.raises(ConfigError, match="init_rename"):
        init_from_checkpoint(_model("dmc-r18", width=8), tmp_path / "flow2d.json")


def test_init_from_maps_the_classifier_rows_by_class_name(tmp_path):
    source = _model("mvr-r18", width=8)
    names = [f"c{i}" for i in range(17)]
    save_checkpoint(tmp_path / "all17", source, {"model": "mvr-r18", "model_cfg": {"size": SIZE, "width": 8},
                                                 "classes": names})
    subset = [n for i, n in enumerate(names) if i not in (15, 16)] + ["new"]  # 15 known, 1 unknown
    target = build_model("mvr-r18", len(subset), size=SIZE, width=8)
    fresh = target.state_dict()["fc.weight"].clone()
    report = init_from_checkpoint(target, tmp_path / "all17.json", classes=subset)
    src, dst = source.state_dict(), target.state_dict()
    assert "fc.weight" in report["loaded"] and "fc.bias" in report["loaded"]
    assert torch.equal(dst["fc.weight"][:15], src["fc.weight"][:15])  # c0..c14 keep their rows
    assert torch.equal(dst["fc.bias"][3], src["fc.bias"][3])
    assert torch.equal(dst["fc.weight"][15], fresh[15])  # "new": its fresh initialisation
    reordered = list(reversed(names))
    target = build_model("mvr-r18", 17, size=SIZE, width=8)
    init_from_checkpoint(target, tmp_path / "all17.json", classes=reordered)
    assert torch.equal(target.state_dict()["fc.weight"][0], src["fc.weight"][16])
    with pytest.raises(ConfigError, match="none of them by name"):
        init_from_checkpoint(build_model("mvr-r18", 17, size=SIZE, width=8), tmp_path / "all17.json",
                             classes=[f"x{i}" for i in range(17)])


def test_flow_accumulates_to_the_i_frame_like_the_motion_vectors():
    from training.cache.build import accumulate_flow

    step = np.zeros((2, 8, 8), np.float32)
    step[0] = 1.0  # every cell moved 1 px right since the previous frame
    twice = accumulate_flow(step, step.copy(), stride=1)
    assert np.allclose(twice[0, :, 1:], 2.0) and np.allclose(twice[1], 0.0)  # 2 px from the I-frame
    assert CacheSpec().key() == CacheSpec(flow_layout="frame", rgb=False).key()  # old caches keep their keys
    assert CacheSpec(flow_layout="accumulated").key() != CacheSpec().key()


@pytest.mark.parametrize("name", NEW_CONFIGS + FLOW_TEACHER_CONFIGS)
def test_every_bundled_method_config_is_valid(name):
    cfg = load_config(name)
    build_objective(cfg.objective.name, label_smoothing=cfg.train.label_smoothing, **cfg.objective.kwargs)
    model_input_specs(cfg.model.name, **cfg.model.kwargs)


def _run(name, dataset, tmp_path, *extra):
    cfg = load_config(name, [f"data.dataset='{dataset}'", f"data.cache='{tmp_path / 'cache'}'", "data.workers=0",
                             f"train.out='{tmp_path / name}'", f"model.size={SIZE}", "train.epochs=1",
                             "train.batch_size=4", "train.max_steps_per_epoch=1", "train.device='cpu'", *extra])
    summary = train(cfg, progress=False, log=None)
    record = json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[-1])
    return summary, record


def test_each_objective_trains_one_epoch_from_its_config(dataset, tmp_path):
    _, flow = _run("iptsn-flow2d", dataset, tmp_path)  # ce on teacher flow
    assert set(flow) >= {"train_loss", "val_top1", "loss_cls"}
    _, dmc = _run("dmc-full", dataset, tmp_path, "stage.init_from=''")
    assert {"loss_cls", "loss_mse", "loss_adv_g", "loss_adv_d"} <= set(dmc)
    discriminator, d_optimizer = load_extras(tmp_path / "dmc-full" / "last.json")
    assert "fc.weight" in discriminator["discriminator"] and d_optimizer["discriminator"]["state"]
    resumed = train(load_config("dmc-full", [f"data.dataset='{dataset}'", f"data.cache='{tmp_path / 'cache'}'",
                                             "data.workers=0", f"train.out='{tmp_path / 'dmc-full'}'",
                                             f"model.size={SIZE}", "train.epochs=2", "train.batch_size=4",
                                             "train.max_steps_per_epoch=1", "train.device='cpu'",
                                             "stage.init_from=''"]),
                    resume=True, force_resume=True, progress=False, log=None)
    assert resumed["epochs"] == 2 and "loss_adv_d" in resumed["last"]  # resuming restores the discriminator too
    _, distil = _run("iptsn-distil2d", dataset, tmp_path, "stage.init_from=''",
                     f"stage.teacher='{tmp_path / 'iptsn-flow2d' / 'best.json'}'")
    assert {"loss_cls", "loss_feature_l1"} <= set(distil)
    _run("mfcd-teacher", dataset, tmp_path, "model.frames=4")
    _, mfcd = _run("mfcd-distil", dataset, tmp_path, "model.frames=4",
                   f"stage.teacher='{tmp_path / 'mfcd-teacher' / 'best.json'}'")
    assert {"loss_cls", "loss_hint", "loss_kl"} <= set(mfcd)
    _run("off-backbone", dataset, tmp_path)
    _, off = _run("off", dataset, tmp_path, f"stage.init_from='{tmp_path / 'off-backbone' / 'best.json'}'")
    assert {"loss_off", "loss_off_level0", "loss_off_level1"} <= set(off)
    start = load_checkpoint(tmp_path / "off-backbone" / "best.json")[1]
    end = load_checkpoint(tmp_path / "off" / "last.json")[1]
    assert all(torch.equal(start[k], end[k]) for k in start if k.startswith(("backbone.", "fc.")))  # frozen
    assert not torch.equal(start["off_fc.weight"], end["off_fc.weight"])
    _, costvol = _run("costvol", dataset, tmp_path, "model.frames=4")
    assert {"loss_appearance", "loss_motion", "loss_change"} <= set(costvol)
    meta = load_checkpoint(tmp_path / "costvol" / "last.json")[0]
    assert sorted(g["initial_lr"] for g in meta["optimizer_param_groups"]) == pytest.approx([0.001, 0.005])


def test_a_teacher_objective_without_a_teacher_or_flow_is_refused_before_any_work(dataset, tmp_path):
    with pytest.raises(ConfigError, match="needs a teacher: set stage.teacher"):
        _run("iptsn-distil2d", dataset, tmp_path, "stage.init_from=''", "stage.teacher=''")
    with pytest.raises(ConfigError, match="reads teacher flow: set data.flow"):
        _run("dmc-full", dataset, tmp_path, "stage.init_from=''", "data.flow='none'")
    assert not (tmp_path / "cache").exists()
