"""The package manifest as typed, frozen data, validated once when it is read.

``manifest.json`` in an ``.edgepkg`` (and ``model.json`` in a quantization folder) becomes a
:class:`Manifest`; the Recognizer and the CLI read its fields, never the raw dict. ``to_dict`` writes
it back; :meth:`Manifest.from_dict` reads every format-1 manifest written so far (a ``stream`` key
in an input spec, the backend name ``"cpu"``), so packages already written keep loading.

Errors: :meth:`Manifest.from_dict` raises :class:`ManifestError` (a ``ValueError``) with one line
saying which field is wrong; ``edgekit.package`` turns it into a ``PackageError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from edgekit.spec import InputSpec

PRECISIONS = ("int8", "fp32")
SCORE_KINDS = ("softmax", "probabilities")


class ManifestError(ValueError):
    """A manifest field is missing or malformed."""


def _frozen(d) -> Mapping:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Preprocessing:
    """How the runtime cuts a source into windows: ``window_frames`` consecutive frames (the clip
    length the model was trained on), one every ``stride_frames``. ``extra`` keeps any other
    recorded fields (the training cache's spec) for reference."""

    window_frames: int = 48
    stride_frames: int = 24
    extra: Mapping = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Preprocessing":
        window = d.get("window_frames", 48)
        stride = d.get("stride_frames", max(int(window) // 2, 1) if _is_int(window) else 1)
        if not _is_int(window) or window < 2:
            raise ManifestError(f"preprocessing.window_frames must be an integer >= 2, got {window!r}")
        if not _is_int(stride) or stride < 1:
            raise ManifestError(f"preprocessing.stride_frames must be an integer >= 1, got {stride!r}")
        extra = {k: v for k, v in d.items() if k not in ("window_frames", "stride_frames")}
        return cls(int(window), int(stride), _frozen(extra))

    def to_dict(self) -> dict:
        return {**_plain(self.extra), "window_frames": self.window_frames, "stride_frames": self.stride_frames}


@dataclass(frozen=True)
class Fusion:
    """How windows' outputs become scores: ``output`` is the graph output holding class scores
    (default: the first output); ``scores`` is "softmax" (the output holds logits) or
    "probabilities"; windows are averaged."""

    output: str | None = None
    scores: str = "softmax"

    @classmethod
    def from_dict(cls, d: Mapping) -> "Fusion":
        scores = d.get("scores", "softmax" if d.get("softmax", True) else "probabilities")
        if scores not in SCORE_KINDS:
            raise ManifestError(f"fusion.scores must be one of {list(SCORE_KINDS)}, got {scores!r}")
        output = d.get("output")
        if output is not None and not isinstance(output, str):
            raise ManifestError(f"fusion.output must be a string, got {output!r}")
        return cls(output, scores)

    def to_dict(self) -> dict:
        return {**({"output": self.output} if self.output else {}), "scores": self.scores,
                "softmax": self.scores == "softmax"}


@dataclass(frozen=True)
class Target:
    """The device a package was exported for: ``device`` ("cpu", "gpu", "npu" or a device
    profile's name), ``backend`` ("onnxruntime", "openvino", "tensorrt") and, when a profile was
    used, its settings in ``profile``."""

    device: str = "cpu"
    backend: str = "onnxruntime"
    profile: Mapping = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Target":
        if not isinstance(d, Mapping) or not all(isinstance(d.get(k), str) for k in ("backend", "device")):
            raise ManifestError("'target' must be an object with string 'backend' and 'device'")
        backend = {"cpu": "onnxruntime"}.get(d["backend"], d["backend"])
        device = "cpu" if d["device"] == "openvino" else d["device"]  # format-1 packages named the backend here
        profile = d.get("profile", {})
        if not isinstance(profile, Mapping):
            raise ManifestError("'target.profile' must be an object")
        return cls(device, backend, _frozen(profile))

    def to_dict(self) -> dict:
        return {"device": self.device, "backend": self.backend, **({"profile": dict(self.profile)} if self.profile else {})}


@dataclass(frozen=True)
class Member:
    """One packaged file: its SHA-256 (hex) and size in bytes."""

    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """Everything a package says about its model. ``inputs``: :class:`InputSpec` (batch-first
    static shapes); ``outputs``: graph output names; ``labels``: class names in output order."""

    format_version: int
    model: str
    labels: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    preprocessing: Preprocessing
    fusion: Fusion
    target: Target
    precision: str
    producer: Mapping = field(default_factory=dict)
    metrics: Mapping = field(default_factory=dict)
    members: Mapping[str, Member] = field(default_factory=dict)

    @property
    def score_output(self) -> str:
        """The graph output that holds class scores."""
        return self.fusion.output or self.outputs[0]

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(spec.modality for spec in self.inputs)

    @classmethod
    def from_dict(cls, d, *, require_package_fields: bool = True) -> "Manifest":
        """Validate and convert a manifest dict. ``require_package_fields=False`` reads a
        quantization ``model.json`` (no format version, target, precision or members yet)."""
        if not isinstance(d, Mapping):
            raise ManifestError("not a JSON object")
        required = ["model", "labels", "inputs", "outputs", "preprocessing", "fusion"]
        if require_package_fields:
            required += ["format_version", "target", "precision", "producer", "members"]
        missing = [k for k in required if k not in d]
        if missing:
            raise ManifestError(f"missing key(s) {missing}")
        if not isinstance(d["model"], str) or not d["model"]:
            raise ManifestError("'model' must be a non-empty string")
        labels = d["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise ManifestError("'labels' must be a non-empty list of strings")
        if len(set(labels)) != len(labels):
            raise ManifestError("'labels' has duplicates")
        outputs = d["outputs"]
        if not isinstance(outputs, list) or not outputs or not all(isinstance(x, str) for x in outputs):
            raise ManifestError("'outputs' must be a non-empty list of strings")
        for key in ("preprocessing", "fusion", "producer", "metrics"):
            if key in d and not isinstance(d[key], Mapping):
                raise ManifestError(f"{key!r} must be an object")
        if not isinstance(d["inputs"], list) or not d["inputs"]:
            raise ManifestError("'inputs' must be a non-empty list of input specs")
        try:
            inputs = tuple(InputSpec.from_dict(s) for s in d["inputs"])
        except (TypeError, ValueError, KeyError, AttributeError) as err:
            raise ManifestError(f"bad input spec: {err}") from None
        fusion = Fusion.from_dict(d["fusion"])
        if fusion.output is not None and fusion.output not in outputs:
            raise ManifestError(f"fusion.output {fusion.output!r} is not one of the outputs {outputs}")
        version = d.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ManifestError("'format_version' must be an integer")
        precision = d.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise ManifestError(f"'precision' must be one of {list(PRECISIONS)}")
        members = {}
        raw_members = d.get("members", {})
        if not isinstance(raw_members, Mapping):
            raise ManifestError("'members' must be an object")
        for name, record in raw_members.items():
            if (not isinstance(record, Mapping) or not isinstance(record.get("sha256"), str)
                    or not _is_int(record.get("bytes")) or record["bytes"] < 0):
                raise ManifestError(f"member {name!r} needs a 'sha256' string and a 'bytes' integer")
            members[name] = Member(record["sha256"].lower(), int(record["bytes"]))
        target = Target.from_dict(d["target"]) if "target" in d else Target()
        return cls(format_version=version, model=d["model"], labels=tuple(labels), inputs=inputs,
                   outputs=tuple(outputs), preprocessing=Preprocessing.from_dict(d["preprocessing"]),
                   fusion=fusion, target=target, precision=precision, producer=_frozen(d.get("producer", {})),
                   metrics=_frozen(d.get("metrics", {})), members=_frozen(members))

    def to_dict(self) -> dict:
        """The manifest as JSON-ready data (what ``manifest.json`` holds)."""
        return {"format_version": self.format_version, "model": self.model, "labels": list(self.labels),
                "inputs": [s.to_dict() for s in self.inputs], "outputs": list(self.outputs),
                "preprocessing": self.preprocessing.to_dict(), "fusion": self.fusion.to_dict(),
                "target": self.target.to_dict(), "precision": self.precision, "producer": _plain(self.producer),
                "metrics": _plain(self.metrics),
                "members": {n: {"sha256": m.sha256, "bytes": m.bytes} for n, m in self.members.items()}}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(value):
    """Mappings (frozen views included) and tuples back to JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
