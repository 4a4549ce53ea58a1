"""Model zoo: registry, input contracts, forward shapes, paper architectures and FLOP figures."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from edgekit.errors import ConfigError
from edgekit.spec import CHANNELS, InputSpec
from training.models import build_model, count_macs, count_model, list_models
from training.models.costvol import CostVolume, SoftArgmaxDisplacement, sample_at_offset
from training.models.dmc import GENERATOR_FILTERS, DMCDiscriminator, DMCGenerator
from training.models.flops import reference_figures
from training.models.off import OFFUnit
from training.models.resnet import resnet18
from training.models.resnet2d3d import ResNet2D3D, inflate_2d_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


EXPECTED_MODELS = {
    "coviar-i-r18", "coviar-i-r50", "coviar-mv-r18", "coviar-r-r18", "coviar", "dmc-r18", "dmc",
    "iptsn-i", "iptsn-p", "iptsn-flow", "iptsn", "mvr-r18", "mfcd", "off-r18", "costvol-r18", "edge-mvr", "edge-mvr-i", "edge-mv",
    "edge-mv-ref", "edge-flow",
    "flow-r18",
}


def test_registry_lists_every_model_family():
    assert set(list_models()) == EXPECTED_MODELS
    assert list_models() == sorted(list_models())


def test_unknown_model_name_suggests_close_match():
    with pytest.raises(ConfigError, match="did you mean dmc-r18"):
        build_model("dmc-r19", 10)


def test_unknown_config_key_is_rejected():
    with pytest.raises(ConfigError, match="no config key"):
        build_model("edge-mvr", 10, segmets=4)


def test_invalid_config_value_is_a_config_error():
    with pytest.raises(ConfigError, match="inflate_from"):
        build_model("iptsn-p", 10, inflate_from="conv9")
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("edge-mvr", 0)


def test_config_overrides_change_the_input_spec():
    model = build_model("edge-mvr", 4, segments=5, size=96)
    assert model.input_specs[0].shape == (1, 5, 5, 96, 96)
    assert model.default_cfg["segments"] == 5 and model.model_name == "edge-mvr"


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_input_specs_are_the_named_forward_inputs(name):
    with torch.device("meta"):
        model = build_model(name, 3)
    specs = model.input_specs
    assert isinstance(specs, tuple) and all(isinstance(s, InputSpec) for s in specs)
    params = list(inspect.signature(model.forward).parameters)
    assert params == [s.name for s in specs]
    for spec in specs:
        assert spec.shape[0] == 1
        channels = spec.shape[2] if spec.layout == "BSCHW" else spec.shape[1]
        assert channels == CHANNELS[spec.modality]


@pytest.mark.parametrize("name, cfg", [(name, {}) for name in sorted(EXPECTED_MODELS)] + [
    ("edge-mvr-i", {"segments": 5, "size": 96}),
    ("iptsn", {"segments": 4, "frames": 6, "size": 64}),
    ("off-r18", {"stream": "mv_residual", "size": 64}),
    ("edge-mv-ref", {"representation": "frame"}),
])
def test_registry_knows_the_input_specs_without_building(name, cfg):
    from training.models import model_input_specs

    with torch.device("meta"):
        model = build_model(name, 3, **cfg)
    assert model_input_specs(name, **cfg) == model.input_specs


@pytest.mark.parametrize("name", ["edge-mvr", "edge-mv", "edge-mv-ref"])
def test_edge_models_take_each_frames_own_side_data_on_request(name):
    assert build_model(name, 3).input_specs[0].representation == "accumulated"  # the defaults' input
    model = build_model(name, 3, representation="frame")
    assert model.input_specs[0].representation == "frame" and model.default_cfg["representation"] == "frame"
    with pytest.raises(ConfigError, match="representation"):
        build_model(name, 3, representation="traced")


def test_input_specs_of_a_bad_config_are_refused_with_a_suggestion():
    from training.models import model_input_specs

    with pytest.raises(ConfigError, match="no config key.*'segmets'.*did you mean 'segments'"):
        model_input_specs("edge-mvr", segmets=4)
    with pytest.raises(ConfigError, match="off-r18 supports streams"):
        model_input_specs("off-r18", stream="gop_clip")


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_forward_shape_at_default_input_batch_2(name):
    # meta tensors: exact shape propagation at the full default input, no arithmetic
    with torch.device("meta"):
        model = build_model(name, 7).eval()
        inputs = [torch.zeros((2, *s.shape[1:])) for s in model.input_specs]
        logits = model(*inputs)
    assert logits.shape == (2, 7)


@pytest.mark.parametrize("name, cfg", [
    ("edge-mvr", {}),
    ("off-r18", {"size": 64}),
    ("costvol-r18", {"size": 64, "frames": 4}),
    ("iptsn-p", {"size": 64, "frames": 4}),
    ("dmc", {"size": 64, "segments": 2, "i_backbone": "resnet18"}),
    ("mfcd", {"size": 64, "frames": 4}),
])
def test_batch_samples_are_independent(name, cfg):
    torch.manual_seed(0)
    model = build_model(name, 6, **cfg).eval()
    batch = [torch.randn((2, *s.shape[1:])) for s in model.input_specs]
    with torch.no_grad():
        together = model(*batch)
        alone = torch.cat([model(*[x[i:i + 1] for x in batch]) for i in range(2)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_tsn_consensus_is_the_mean_of_segment_scores():
    torch.manual_seed(0)
    model = build_model("edge-mvr", 5).eval()
    x = torch.randn(1, 3, 5, 112, 112)
    with torch.no_grad():
        per_segment = [model(x[:, i:i + 1].repeat(1, 3, 1, 1, 1)) for i in range(3)]
        torch.testing.assert_close(model(x), torch.stack(per_segment).mean(0), rtol=1e-4, atol=1e-5)


def test_edge_model_is_small():
    info = count_model("edge-mvr", 101)
    assert info["params"] < 2_000_000
    assert info["gflops"] < 0.2  # 3 segments at 112x112


def test_patch_stem_keeps_stride_4_and_cuts_the_stems_work():
    patch, conv7 = build_model("edge-mvr", 5), build_model("edge-mvr", 5, stem="conv7")
    x = torch.randn(2, 5, 112, 112)
    for model in (patch, conv7):
        assert model.backbone.forward_stem(x).shape == (2, 24, 28, 28)
    assert count_model("edge-mvr", 5)["macs"] < count_model("edge-mvr", 5, stem="conv7")["macs"]
    with pytest.raises(ConfigError, match="unknown stem"):
        build_model("edge-mvr", 5, stem="conv9")
    two = count_model("edge-mvr-i", 101)  # the default package's model: two such streams
    assert two["params"] < 2_000_000 and two["gflops"] < 0.3


def test_edge_two_stream_fuses_its_streams_scores():
    torch.manual_seed(0)
    model = build_model("edge-mvr-i", 5).eval()
    x = {"mv_residual": torch.randn(1, 3, 5, 112, 112), "iframe": torch.randn(1, 3, 3, 112, 112)}
    with torch.no_grad():
        streams = model.forward_streams(**x)
        torch.testing.assert_close(model(**x), streams["mv_residual"] + streams["iframe"], rtol=1e-5, atol=1e-5)


# --- DMC-Net ---------------------------------------------------------------------------------

def test_dmc_generator_matches_table_2():
    generator = DMCGenerator()
    convs = list(generator.convs)
    assert [c.out_channels for c in convs] == [8, 8, 6, 4, 2, 2] == list(GENERATOR_FILTERS)
    assert [c.in_channels for c in convs] == [5, 13, 21, 27, 31, 33]
    for conv in convs:
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    assert generator.negative_slope == 0.1
    assert sum(p.numel() for p in generator.parameters()) == 4584


def test_dmc_generator_leaky_relu_after_all_but_conv5_and_mv_shortcut():
    torch.manual_seed(0)
    generator = DMCGenerator()
    x = torch.randn(2, 5, 16, 16)
    with torch.no_grad():
        last = generator.convs[-1]
        last.weight.zero_()
        last.bias.fill_(-0.5)  # a negative constant survives only if conv5 has no activation
        torch.testing.assert_close(generator(x), x[:, :2] - 0.5)
        # conv0 output goes through LeakyReLU(0.1): negative pre-activations are scaled by 0.1
        pre = generator.convs[0](x)
        torch.testing.assert_close(F.leaky_relu(pre, 0.1), torch.where(pre > 0, pre, 0.1 * pre))


def test_dmc_forward_with_flow_returns_generated_dmc():
    torch.manual_seed(0)
    model = build_model("dmc-r18", 4, size=64, segments=2).eval()
    x = torch.randn(1, 2, 5, 64, 64)
    with torch.no_grad():
        logits, dmc = model.forward_with_flow(x)
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(dmc[0, 1], model.generator(x[0, 1:2])[0])
    assert dmc.shape == (1, 2, 2, 64, 64)


def test_dmc_discriminator_is_two_way():
    assert DMCDiscriminator()(torch.randn(3, 2, 64, 64)).shape == (3, 2)


# --- IP-TSN ----------------------------------------------------------------------------------

def test_2d3d_resnet_inflates_from_conv3():
    net = ResNet2D3D(in_channels=5, inflate_from="conv3")
    assert isinstance(net.layer2[0].conv1, torch.nn.Conv2d)
    assert isinstance(net.layer3[0].conv1, torch.nn.Conv3d)
    assert net.layer3[0].conv1.stride == (2, 2, 2) and net.layer4[0].conv1.stride == (2, 2, 2)
    features = net.forward_features(torch.randn(1, 5, 8, 64, 64))
    assert features.shape == (1, 512, 2, 2, 2)


@pytest.mark.parametrize("inflate_from, first_3d",
                         [("conv1", 0), ("conv2", 1), ("conv3", 2), ("conv4", 3), ("conv5", 4)])
def test_every_inflation_point_gives_a_pooled_512_feature(inflate_from, first_3d):
    with torch.device("meta"):
        net = ResNet2D3D(in_channels=5, inflate_from=inflate_from)
        stages = [net.layer1, net.layer2, net.layer3, net.layer4]
        assert [isinstance(s[0].conv1, torch.nn.Conv3d) for s in stages] == [i >= first_3d for i in range(4)]
        assert net(torch.zeros(2, 5, 16, 224, 224)).shape == (2, 512)


def test_center_inflation_reproduces_the_2d_network_on_a_static_clip():
    torch.manual_seed(0)
    net2d = resnet18(in_channels=5).eval()
    net3d = ResNet2D3D(in_channels=5, inflate_from="conv3").eval()
    copied = inflate_2d_weights(net3d, net2d.state_dict(), mode="center")
    assert "layer4.1.conv2.weight" in copied
    frame = torch.randn(1, 5, 64, 64)
    clip = frame.unsqueeze(2).repeat(1, 1, 4, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(net3d(clip), net2d(frame), rtol=1e-4, atol=1e-5)


def test_iptsn_exposes_the_pooled_feature_for_distillation():
    model = build_model("iptsn-p", 4, frames=4, size=64).eval()
    clip = torch.randn(1, 5, 4, 64, 64)
    with torch.no_grad():
        logits, features = model.forward_with_features(clip)
        torch.testing.assert_close(logits, model(clip))
    assert features.shape == (1, 512)


# --- MFCD-Net --------------------------------------------------------------------------------

def test_mfcd_hints_are_the_four_stage_outputs():
    model = build_model("mfcd", 4, frames=4, size=64).eval()
    with torch.no_grad():
        logits, hints = model.forward_hints(torch.randn(1, 3, 4, 64, 64))
    assert logits.shape == (1, 4)
    assert [tuple(h.shape) for h in hints] == [
        (1, 96, 2, 16, 16), (1, 192, 2, 8, 8), (1, 384, 2, 4, 4), (1, 768, 2, 2, 2)]
    assert model.backbone.conv2[1].conv_m1.conv.groups == 16


# --- OFF -------------------------------------------------------------------------------------

def test_off_unit_outputs_gradients_and_temporal_difference():
    torch.manual_seed(0)
    unit = OFFUnit(in_channels=8, reduced_channels=4)
    features = torch.randn(2 * 3, 8, 10, 10)  # B=2, S=3
    with torch.no_grad():
        off = unit(features, segments=3)
        reduced = unit.reduce(features).reshape(2, 3, 4, 10, 10)
    assert off.shape == (2 * 2, 12, 10, 10)
    torch.testing.assert_close(off[:, 8:], (reduced[:, 1:] - reduced[:, :-1]).reshape(4, 4, 10, 10))


def test_off_spatial_gradient_of_a_ramp():
    unit = OFFUnit(in_channels=1, reduced_channels=1)
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]  # value = x
    grad_x, grad_y = unit.spatial_gradients(ramp)
    assert torch.all(grad_x[0, 0, 1:-1, 1:-1] == 6.0)  # 3 rows x (x+1 - (x-1))
    assert torch.all(grad_y[0, 0, 1:-1, 1:-1] == 0.0)


# --- cost volume -----------------------------------------------------------------------------

def test_soft_argmax_recovers_a_known_shift():
    torch.manual_seed(0)
    first = torch.randn(1, 32, 20, 20)
    second = torch.roll(first, shifts=(1, -2), dims=(2, 3))  # content moves dy=+1, dx=-2
    cost = CostVolume(radius=3)(first, second)
    assert cost.shape == (1, 49, 20, 20)
    displacement = SoftArgmaxDisplacement(radius=3, tau=0.01)(cost)
    interior = displacement[0, :, 4:-4, 4:-4]
    torch.testing.assert_close(interior[0], torch.full_like(interior[0], -2.0), atol=1e-3, rtol=0)
    torch.testing.assert_close(interior[1], torch.full_like(interior[1], 1.0), atol=1e-3, rtol=0)


def test_tent_warp_equals_bilinear_grid_sample():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 9, 11)
    offset = (torch.rand(2, 2, 9, 11) * 2 - 1) * 2.9
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(11.0), indexing="ij")
    grid_x = (xs + offset[:, 0]) / 10 * 2 - 1
    grid_y = (ys + offset[:, 1]) / 8 * 2 - 1
    expected = F.grid_sample(features, torch.stack((grid_x, grid_y), dim=-1), mode="bilinear",
                             padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(sample_at_offset(features, offset, radius=3), expected, rtol=1e-5, atol=1e-5)


# --- FLOPs -----------------------------------------------------------------------------------

def _figure(what_prefix: str) -> dict:
    return next(r for r in reference_figures() if r["what"].startswith(what_prefix))


def test_dmc_generator_flops_match_the_paper():
    macs = count_macs(DMCGenerator(), (torch.zeros(1, 5, 224, 224),))
    assert macs == 4554 * 224 * 224  # sum over layers of in*out*9, per pixel
    assert abs(macs / 1e9 / 0.23 - 1) < 0.01


def test_resnet18_flops_match_the_paper():
    # DMC-Net's 1.78 is the 2-channel (MV/flow/DMC) ResNet-18; ImageNet 3-channel is 1.814
    assert abs(_figure("ResNet-18, 2-ch")["deviation"]) < 0.01
    imagenet = _figure("ResNet-18, ImageNet")
    assert imagenet["ours"] == pytest.approx(1.8141, abs=1e-3)
    assert abs(imagenet["deviation"]) < 0.03


def test_mfnet_flops_and_params_match_the_paper():
    assert abs(_figure("MFNet-3D, 16x224")["deviation"]) < 0.01
    assert abs(_figure("MFNet-3D parameters")["deviation"]) < 0.01
