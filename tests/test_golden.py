"""No train/deploy skew: for the same clip and window, the arrays the training cache serves equal
what edgekit.Recognizer feeds its backend (within the cache's float16 rounding).

Both sides are real: clips of the synthetic benchmark encoded by FFmpeg (MPEG-4 and x264 with
B-frames), the cache built from them, a small torch model with one input per modality exported to
ONNX, packaged, and run by ONNX Runtime inside the Recognizer. The Recognizer's backend is wrapped
to record the arrays it is given. If either side changes its frame selection or its tensor
preparation alone, the arrays differ and this test fails.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from edgekit.spec import InputSpec

SIZE = 32
SPECS = (
    InputSpec("segments", "mv_residual", (1, 3, 5, SIZE, SIZE)),                  # TSN, DMC-Net / edge
    InputSpec("motion", "mv", (1, 2, 2, SIZE, SIZE)),
    InputSpec("references", "mv_ref", (1, 3, 2, SIZE, SIZE)),                    # edge-mv-ref: P-frames only
    InputSpec("iframes", "iframe", (1, 2, 3, SIZE, SIZE)),                        # CoViAR I-stream
    InputSpec("clip", "mv_residual", (1, 5, 6, SIZE, SIZE), layout="BCTHW"),      # IP-TSN P-stream
    InputSpec("gop", "gop_clip", (1, 3, 6, SIZE, SIZE), layout="BCTHW"),          # MFCD-Net
)
LABELS = ["a", "b", "c"]


class RecordingBackend:
    """The Recognizer's real backend, recording every input dict it runs."""

    def __init__(self, backend):
        self.backend, self.calls = backend, []

    def run(self, inputs):
        self.calls.append({k: v.copy() for k, v in inputs.items()})
        return self.backend.run(inputs)

    def close(self):
        self.backend.close()


def _onnx_with_every_modality() -> bytes:
    import torch
    from torch import nn

    class MeanHead(nn.Module):  # one mean per input and channel -> logits
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(sum(s.shape[2] if s.layout == "BSCHW" else s.shape[1] for s in SPECS), len(LABELS))

        def forward(self, segments, motion, references, iframes, clip, gop):
            feats = [x.mean(dim=(1, 3, 4)) for x in (segments, motion, references, iframes)]
            feats += [x.mean(dim=(2, 3, 4)) for x in (clip, gop)]
            return self.fc(torch.cat(feats, dim=1))

    torch.manual_seed(0)
    buffer = io.BytesIO()
    example = tuple(torch.zeros(s.shape) for s in SPECS)
    torch.onnx.export(MeanHead().eval(), example, buffer, input_names=[s.name for s in SPECS],
                      output_names=["logits"], opset_version=17, dynamo=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from edgekit.package import write_package
    from training.__main__ import main
    from training.cache import CacheSpec, build_cache

    root = tmp_path_factory.mktemp("golden")
    caches = []
    for codec in ("mpeg4", "h264"):  # x264 clips carry B-frames
        data = root / f"data-{codec}"
        assert main(["synth", "--preset", "tiny", "--clips-per-class", "1", "--codec", codec, "--out", str(data),
                     "--json"]) == 0
        caches.append(build_cache(data, root / f"cache-{codec}", CacheSpec(size=SIZE), workers=1, progress=False))
    model_dir = root / "model"
    model_dir.mkdir()
    (model_dir / "fp32.onnx").write_bytes(_onnx_with_every_modality())
    (model_dir / "model.json").write_text(json.dumps({
        "model": "every-modality", "labels": LABELS, "inputs": [s.to_dict() for s in SPECS], "outputs": ["logits"],
        "preprocessing": {"window_frames": 24, "stride_frames": 12}, "fusion": {"softmax": True}}))
    package = write_package(model_dir, root / "m.edgepkg", precision="fp32")
    return caches, package


def test_the_cache_serves_what_the_recognizer_feeds_its_backend(setup):
    from training.cache import CachedClips

    caches, package = setup
    codecs = set()
    for cache in caches:
        served = CachedClips.for_specs(cache, "train", SPECS, train=False)
        for i, clip in enumerate(served.clips):
            _compare(package, served, i, clip)
            codecs.add("B" in clip["kinds"])
    assert codecs == {True, False}  # clips with and without B-frames were compared


def _compare(package, served, i, clip):
    from edgekit import Recognizer

    frames = clip["motion_count"] + clip["iframe_count"]
    with Recognizer(package, window_frames=frames) as rec:  # one window = the whole clip, as in training
        rec.backend = RecordingBackend(rec.backend)
        pred = rec.recognize(clip["path"])
        fed = rec.backend.calls
    assert len(fed) == 1 and pred.frames == frames
    expected = served.arrays(i)
    for spec in SPECS:
        assert fed[0][spec.name].shape == spec.shape
        np.testing.assert_allclose(fed[0][spec.name][0], expected[spec.name], rtol=1e-3, atol=1e-3,
                                   err_msg=f"{clip['path']}: input {spec.name!r}")


def test_a_change_on_one_side_alone_breaks_the_equality(setup, monkeypatch):
    """The comparison above is sensitive: shifting the runtime's selection by one frame is caught."""
    from edgekit import Recognizer, sampling
    from training.cache import CachedClips

    caches, package = setup
    served = CachedClips.for_specs(caches[1], "train", SPECS, train=False)
    clip = served.clips[0]
    expected = served.arrays(0)
    original = sampling.select_frames

    def shifted(kinds, spec, *, train, rng=None):
        return np.minimum(original(kinds, spec, train=train, rng=rng) + 1, len(kinds) - 1)

    with Recognizer(package, window_frames=clip["motion_count"] + clip["iframe_count"]) as rec:
        rec.backend = RecordingBackend(rec.backend)
        monkeypatch.setattr(sampling, "select_frames", shifted)
        rec.recognize(clip["path"])
    fed = rec.backend.calls[0]
    assert not np.allclose(fed["segments"][0], expected["segments"], rtol=1e-3, atol=1e-3)
