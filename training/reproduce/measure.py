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
GUARD_SPLIT = "val"  # the split the INT8 guard chooses its FP32 layers on (the test split only scores)
GUARD_MAX_DROP_POINTS = 1.0  # top-1 points INT8 may lose there, as the table's target


@dataclass(frozen=True)
class Measured:
    """What one trained row measured. ``top1_*`` in [0, 1] over ``test_clips``; ``ms_*``: median ms
    per clip (batch 1) at one thread through ONNX Runtime; ``gflops``: multiply-accumulates / 1e9;
    INT8 calibrated on ``calib_clips`` training clips by ``calib_method``. With a guard
    (:func:`guard_int8`), ``*_int8_guarded`` are those of the INT8 model after the export guard's
    fallback chose, on the validation split, which layers stay in FP32; ``guard`` says what it kept
    and what it saw there (None without a guard, and the ``*_guarded`` figures too)."""

    top1_fp32: float
    top1_int8: float
    gflops: float
    params: int
    ms_fp32: float
    ms_int8: float
    test_clips: int
    calib_clips: int
    calib_method: str
    top1_int8_guarded: float | None = None
    ms_int8_guarded: float | None = None
    guard: dict | None = None

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
                       calibration: CalibrationSettings = CALIBRATION, guard_agreement: float | None = None) -> dict:
    """Everything a row's figures depend on besides its checkpoint: a measured row whose stored
    settings differ from these is measured again (the reproduction's resume rule)."""
    settings = {"calib_clips": int(calib_clips), "calibration": calibration.to_dict(),
                "latency_runs": int(latency_runs), "eval_clips": int(eval_clips)}
    if guard_agreement is not None:  # absent without a guard: rows measured before guards existed stay valid
        settings["guard"] = guard_settings(guard_agreement)
    return settings


def guard_settings(guard_agreement: float | None) -> dict | None:
    """The INT8 guard's settings for a plan's ``guard_agreement`` (None: no guard)."""
    if guard_agreement is None:
        return None
    return {"split": GUARD_SPLIT, "max_drop_points": GUARD_MAX_DROP_POINTS, "min_agreement": float(guard_agreement)}


def guard_int8(fp32: Path, int8: Path, samples: list, *, min_agreement: float,
               max_drop_points: float = GUARD_MAX_DROP_POINTS) -> tuple[bytes, dict]:
    """``edgekit export --fallback``'s guard on one row: the INT8 model ``int8`` with just enough of
    its most sensitive layers kept in FP32 that, on ``samples`` (validation clips: (inputs, label),
    one window each), it loses at most ``max_drop_points`` of top-1 against ``fp32`` and its top-1
    class agrees with FP32's on at least ``min_agreement`` of the clips (the label-free criterion
    catches INT8 doing better by chance as much as worse). Returns (onnx bytes, what the guard
    saw: the clips, the agreement and drop of plain INT8 and of the result, the layers kept in
    FP32 of how many, ``passed``). When even every layer in FP32 does not pass, the guard refuses
    as ``edgekit export`` does: no model (None), ``passed`` False."""
    from edgekit.errors import AccuracyGuardError
    from edgekit.int8_guard import HeldOut, check_onnx, fallback_onnx
    from quantize.evaluate import load_session

    with load_session(fp32, "cpu", threads=1) as backend:
        outputs = np.stack([np.asarray(backend.run(x)["logits"], np.float32).reshape(-1) for x, _ in samples])
    held = HeldOut(inputs=tuple(x for x, _ in samples), window_clip=np.arange(len(samples)),
                   clip_labels=np.array([y for _, y in samples], np.int64), fp32_outputs=outputs,
                   output_name="logits", softmax=False, threads=1, split=GUARD_SPLIT, data=str(fp32.parent))
    int8_bytes = int8.read_bytes()
    plain = check_onnx(int8_bytes, held, max_drop_points=max_drop_points, min_agreement=min_agreement)
    try:
        model, report = fallback_onnx(fp32.read_bytes(), int8_bytes, held, max_drop_points=max_drop_points,
                                      min_agreement=min_agreement, plain=plain)
    except AccuracyGuardError as err:  # as edgekit export does: no INT8 model is shipped
        model, report = None, err.report
    info = {"split": GUARD_SPLIT, "clips": len(samples), "min_agreement": float(min_agreement),
            "max_drop_points": float(max_drop_points), "int8_agreement": plain.agreement,
            "int8_drop_points": plain.drop_points, "agreement": report.agreement, "drop_points": report.drop_points,
            "kept_fp32": len(report.kept_fp32), "quantized_layers": report.quantized_layers,
            "kept_layers": [k.name for k in report.kept_fp32], "passed": report.passed}
    return model, info


def measure_checkpoint(checkpoint: Path, stream: str | None, out: Path, *, calib_clips: int, latency_runs: int,
                       eval_clips: int = 0, calibration: CalibrationSettings = CALIBRATION,
                       guard_agreement: float | None = None) -> Measured:
    """Export ``checkpoint`` (or its ``stream``) to ``out``/fp32.onnx, quantize it to int8.onnx on
    ``calib_clips`` training clips with ``calibration``, score both on the test split (``eval_clips``, 0: all) at one
    thread, time ``latency_runs`` batch-1 runs of each; writes ``out``/logits-{fp32,int8}.npy,
    labels.npy and measured.json, returns the figures. With ``guard_agreement``, also the INT8 model
    :func:`guard_int8` makes on the validation split (``eval_clips`` of them, 0: all), scored and timed
    the same way: int8-guarded.onnx and logits-int8-guarded.npy (none when the guard refuses).
    Raises ConfigError for a missing cache or stream."""
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
    models = [("fp32", fp32), ("int8", int8)]
    guarded, guard = out / "int8-guarded.onnx", None
    for stale in (guarded, out / "logits-int8-guarded.npy"):
        stale.unlink(missing_ok=True)
    if guard_agreement is not None:
        model, guard = guard_int8(fp32, int8, list(clip_inputs(cache, specs, GUARD_SPLIT, feeds, eval_clips)),
                                  min_agreement=guard_agreement)
        if model is not None:
            atomic_write(guarded, model)
            models.append(("int8-guarded", guarded))
    top1, ms = {}, {}
    for precision, path in models:
        with load_session(path, "cpu", threads=1) as backend:
            logits = np.stack([np.asarray(backend.run(x)["logits"][0], np.float32) for x, _ in samples])
            ms[precision] = measure_latency(lambda: backend.run(samples[0][0]), latency_runs, threads=1).median
        np.save(out / f"logits-{precision}.npy", logits, allow_pickle=False)
        top1[precision] = float(np.mean(logits.argmax(1) == labels))
    np.save(out / "labels.npy", labels, allow_pickle=False)
    measured = Measured(top1_fp32=top1["fp32"], top1_int8=top1["int8"], gflops=macs / 1e9, params=int(params),
                        ms_fp32=float(ms["fp32"]), ms_int8=float(ms["int8"]), test_clips=len(samples),
                        calib_clips=calib_clips, calib_method=calibration.method,
                        top1_int8_guarded=top1.get("int8-guarded"), ms_int8_guarded=ms.get("int8-guarded"),
                        guard=guard)
    atomic_write(out / "measured.json", json.dumps(measured.to_dict(), indent=1))
    return measured


def fuse_rows(folders: list[Path], weights: list[float]) -> dict:
    """Late fusion of measured rows (their saved logits, summed with ``weights``): top-1 FP32 and
    INT8 on the same test clips, and guarded INT8 when every row has it. Raises ValueError if the
    rows were scored on different clips."""
    labels = [np.load(f / "labels.npy") for f in folders]
    if any(not np.array_equal(labels[0], other) for other in labels[1:]):
        raise ValueError("the fused rows were scored on different test clips")
    out = {}
    for precision in ("fp32", "int8", "int8-guarded"):
        paths = [f / f"logits-{precision}.npy" for f in folders]
        if precision == "int8-guarded" and not all(p.exists() for p in paths):
            continue  # unguarded, or a guard refused one of the rows
        fused = sum(w * np.load(p) for p, w in zip(paths, weights))
        out[f"top1_{precision.replace('-', '_')}"] = float(np.mean(fused.argmax(1) == labels[0]))
    out["test_clips"] = int(len(labels[0]))
    return out
