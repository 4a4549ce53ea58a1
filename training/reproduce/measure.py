"""One row of the table, measured: FP32 and INT8 ONNX of a checkpoint (whole, or one stream of it),
top-1 of both through ONNX Runtime on the test split, ms per clip at 1 thread, GFLOPs, parameters.

The steps are ``edgekit quantize``'s own (``training.models.export_onnx``, ``quantize.int8.
quantize_int8`` calibrated on real training clips of the cache with ``quantize``'s default settings,
:data:`CALIBRATION`, chosen over every row by ``benchmarks/int8_calibration.py``; ``quantize.
evaluate.load_session``, ``targets.timing.measure_latency``), composed here rather than through
``quantize_checkpoint`` for three reasons: a row may be one stream of a model (OFF's backbone
alone, a cost-volume branch), which is exported through a wrapper whose ``forward`` returns that
stream's logits; an RGB-fed teacher
(MFCD-Net's) must be calibrated and scored on decoded RGB, the input it was trained on, where
``quantize_checkpoint`` would feed it the compressed-domain clip; and the table needs the logits
(for late fusion) and latency at one thread.

GFLOPs and parameters count what the row's output depends on: one forward pass of batch 1 with
``training.models.flops``' hooks (conv and linear multiply-accumulates / 1e9, the papers' convention),
then a backward pass from the output: a layer counts when its weight receives a gradient, a
parameter when it does. For a whole model this is ``count_model``'s figure less the heads that only
training uses (OFF's per-level classifiers); for a stream, its own layers and the shared ones.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekit._fileio import atomic_write
from quantize.int8 import DEFAULT_METHOD, CalibrationSettings

CALIBRATION = CalibrationSettings(method=DEFAULT_METHOD)  # how every row's activation ranges are calibrated


@dataclass(frozen=True)
class Measured:
    """What one trained row measured. ``top1_*`` in [0, 1] over ``test_clips``; ``ms_*``: median ms
    per clip (batch 1) at one thread through ONNX Runtime; ``gflops``: multiply-accumulates / 1e9;
    INT8 calibrated on ``calib_clips`` training clips by ``calib_method``."""

    top1_fp32: float
    top1_int8: float
    gflops: float
    params: int
    ms_fp32: float
    ms_int8: float
    test_clips: int
    calib_clips: int
    calib_method: str

    def to_dict(self) -> dict:
        return asdict(self)


def stream_model(model, stream: str):
    """A module whose ``forward(<the model's inputs>)`` is ``model.forward_streams(...)[stream]``
    (logits (B, K)), with the model's ``input_specs``, name and config: what ``export_onnx`` exports.
    Raises ConfigError when the model has no such stream."""
    import torch
    from torch import nn

    from edgekit.errors import ConfigError
    from training.models.flops import spec_inputs

    if not hasattr(model, "forward_streams"):
        raise ConfigError(f"model {model.model_name!r} has no streams (forward_streams); drop the row's stream")
    with torch.no_grad():
        names = sorted(model.eval().forward_streams(*spec_inputs(model, seed=0)))
    if stream not in names:
        raise ConfigError(f"model {model.model_name!r} has no stream {stream!r}; its streams: {', '.join(names)}")

    class StreamOf(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.input_specs = model.input_specs
            self.model_name = f"{model.model_name}:{stream}"
            self.default_cfg = model.default_cfg

        def forward(self, *inputs):
            return self.model.forward_streams(*inputs)[stream]

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(s.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for s in model.input_specs]
    StreamOf.forward.__signature__ = inspect.Signature(params)  # export names the inputs after the specs
    return StreamOf().eval()


def used_macs_and_params(net) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of one batch-1 ``net(*inputs)`` that its output depends on
    (module docstring). ``net`` is left in eval mode with no gradients."""
    from training.models.flops import _COUNTED, _macs_of, spec_inputs

    net.eval()
    requires = {p: p.requires_grad for p in net.parameters()}
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    counted: list[tuple[object, int]] = []
    handles = [m.register_forward_hook(lambda mod, _i, out: counted.append((mod, _macs_of(mod, out))))
               for m in net.modules() if isinstance(m, _COUNTED)]
    try:
        net(*spec_inputs(net, seed=0)).float().sum().backward()
    finally:
        for h in handles:
            h.remove()
    macs = sum(n for mod, n in counted if mod.weight.grad is not None)
    params = sum(p.numel() for p in net.parameters() if p.grad is not None)
    for p, flag in requires.items():
        p.grad = None
        p.requires_grad_(flag)
    return macs, params


def input_feeds(meta: dict) -> dict:
    """Model input -> the cached part it is fed from, when the checkpoint's objective feeds it from
    another one (MFCD-Net's RGB teacher: ``{"gop_clip": "rgb"}``); {} otherwise."""
    from training.objectives import build_objective

    objective = meta.get("config", {}).get("objective", {})
    if not objective:
        return {}
    kwargs = {k: v for k, v in objective.items() if k != "name"}
    return dict(build_objective(objective["name"], **kwargs).needs.input_parts)


def clip_inputs(cache, specs, split: str, feeds: dict, limit: int = 0, seed: int = 0):
    """Yield ({input name: (1, ...) float32}, label) for up to ``limit`` (0: all) clips of ``split``
    in a seeded order spread over the classes, each input read from its ``feeds`` part if any."""
    from training.cache import CachedClips, Companion

    companions = [Companion(f"input.{n}", follows=n, part=part) for n, part in feeds.items()]
    ds = CachedClips.for_specs(cache, split, specs, train=False, companions=companions)
    order = np.random.default_rng(seed).permutation(len(ds))
    for i in order[:limit] if limit else order:
        arrays, label = ds.item(int(i))
        yield {s.name: np.ascontiguousarray(arrays[f"input.{s.name}" if s.name in feeds else s.name][None])
               for s in specs}, int(label)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over :func:`clip_inputs` of the training split."""

    def __init__(self, items):
        self._it = iter(items)

    def get_next(self):
        item = next(self._it, None)
        return None if item is None else item[0]


def measuring_settings(calib_clips: int, latency_runs: int, eval_clips: int,
                       calibration: CalibrationSettings = CALIBRATION) -> dict:
    """Everything a row's figures depend on besides its checkpoint: a measured row whose stored
    settings differ from these is measured again (the reproduction's resume rule)."""
    return {"calib_clips": int(calib_clips), "calibration": calibration.to_dict(), "latency_runs": int(latency_runs),
            "eval_clips": int(eval_clips)}


def measure_checkpoint(checkpoint: Path, stream: str | None, out: Path, *, calib_clips: int, latency_runs: int,
                       eval_clips: int = 0, calibration: CalibrationSettings = CALIBRATION) -> Measured:
    """Export ``checkpoint`` (or its ``stream``) to ``out``/fp32.onnx, quantize it to int8.onnx on
    ``calib_clips`` training clips with ``calibration``, score both on the test split (``eval_clips``, 0: all) at one
    thread, time ``latency_runs`` batch-1 runs of each; writes ``out``/logits-{fp32,int8}.npy,
    labels.npy and measured.json, returns the figures. Raises ConfigError for a missing cache or stream."""
    from edgekit.spec import InputSpec
    from quantize.evaluate import load_session
    from quantize.int8 import quantize_int8
    from targets.timing import measure_latency
    from training.cache import find_cache
    from training.checkpoint import build_from_checkpoint
    from training.models import export_onnx

    out.mkdir(parents=True, exist_ok=True)
    model, meta = build_from_checkpoint(checkpoint)
    net = stream_model(model, stream) if stream else model
    macs, params = used_macs_and_params(net)
    fp32, int8 = out / "fp32.onnx", out / "int8.onnx"
    export_onnx(net, fp32)
    specs = [InputSpec.from_dict(d) for d in meta["input_specs"]]
    feeds = input_feeds(meta)
    cache = find_cache(meta["cache"])
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a warning per BatchNorm vector it leaves per-tensor
    try:
        quantize_int8(fp32, int8, _Reader(clip_inputs(cache, specs, "train", feeds, calib_clips)),
                      settings=calibration)
    finally:
        root.setLevel(level)
    samples = list(clip_inputs(cache, specs, "test", feeds, eval_clips))
    labels = np.array([y for _, y in samples], np.int64)
    top1, ms = {}, {}
    for precision, path in (("fp32", fp32), ("int8", int8)):
        with load_session(path, "cpu", threads=1) as backend:
            logits = np.stack([np.asarray(backend.run(x)["logits"][0], np.float32) for x, _ in samples])
            ms[precision] = measure_latency(lambda: backend.run(samples[0][0]), latency_runs, threads=1).median
        np.save(out / f"logits-{precision}.npy", logits, allow_pickle=False)
        top1[precision] = float(np.mean(logits.argmax(1) == labels))
    np.save(out / "labels.npy", labels, allow_pickle=False)
    measured = Measured(top1_fp32=top1["fp32"], top1_int8=top1["int8"], gflops=macs / 1e9, params=int(params),
                        ms_fp32=float(ms["fp32"]), ms_int8=float(ms["int8"]), test_clips=len(samples),
                        calib_clips=calib_clips, calib_method=calibration.method)
    atomic_write(out / "measured.json", json.dumps(measured.to_dict(), indent=1))
    return measured


def fuse_rows(folders: list[Path], weights: list[float]) -> dict:
    """Late fusion of measured rows (their saved logits, summed with ``weights``): top-1 FP32 and
    INT8 on the same test clips. Raises ValueError if the rows were scored on different clips."""
    labels = [np.load(f / "labels.npy") for f in folders]
    if any(not np.array_equal(labels[0], other) for other in labels[1:]):
        raise ValueError("the fused rows were scored on different test clips")
    out = {}
    for precision in ("fp32", "int8"):
        fused = sum(w * np.load(f / f"logits-{precision}.npy") for f, w in zip(folders, weights))
        out[f"top1_{precision}"] = float(np.mean(fused.argmax(1) == labels[0]))
    out["test_clips"] = int(len(labels[0]))
    return out
