"""The package manifest as typed, frozen data, validated once when it is read.

``manifest.json`` in an ``.edgepkg`` (and ``model.json`` in a quantization folder) becomes a
:class:`Manifest`; the Recognizer and the CLI read its fields, never the raw dict. ``to_dict`` writes
it back; :meth:`Manifest.from_dict` reads every format-1 manifest written so far (a ``stream`` key
in an input spec, the backend name ``"cpu"``), so packages already written keep loading.

Every field is checked for type and range before it is used (a package is untrusted input):
strings are strings of bounded length, lists are bounded, free-form objects (``producer``,
``metrics``, ``preprocessing`` extras, ``target.profile``) must be plain JSON (string keys, finite
numbers) no deeper than :data:`MAX_JSON_DEPTH`, and unknown top-level keys of a package manifest are
refused with a suggestion. :func:`parse_json` is the strict JSON reader for package metadata
(duplicate keys, NaN/Infinity, deep nesting and over-long numbers refused).

Errors: :meth:`Manifest.from_dict` and :func:`parse_json` raise :class:`ManifestError` (a
``ValueError``) with one line saying which field is wrong, and nothing else, whatever the input;
``edgekit.package`` turns it into a ``PackageError``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from edgekit.modality import MODALITIES
from edgekit.spec import LAYOUTS, InputSpec

PRECISIONS = ("int8", "fp32")
SCORE_KINDS = ("softmax", "probabilities")
BACKENDS = ("onnxruntime", "openvino", "tensorrt")
_BACKEND_ALIASES = {"cpu": "onnxruntime", "ort": "onnxruntime"}  # names format-1 packages used
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
          "uint64", "bool")
MAX_JSON_DEPTH = 32        # a real manifest nests 4 levels; refuse before anything recurses deeply
MAX_LABELS = 100_000
MAX_INPUTS, MAX_OUTPUTS, MAX_MEMBERS = 64, 1024, 64
MAX_NAME_CHARS = 1024      # model, label, input, output and member names
MAX_DIM, MAX_ELEMENTS = 1 << 16, 1 << 30  # per input dimension; per input tensor
MAX_WINDOW_FRAMES = 100_000
PACKAGE_KEYS = ("format_version", "model", "labels", "inputs", "outputs", "preprocessing", "fusion", "target",
                "precision", "producer", "metrics", "members", "calibration")
MAX_TEMPERATURE = 100.0    # a fitted temperature is ~0.5-5; larger means the scores carry no information
_INPUT_KEYS = ("name", "modality", "stream", "shape", "layout", "dtype", "representation", "normalization")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class ManifestError(ValueError):
    """A manifest field is missing or malformed."""


def _frozen(d) -> Mapping:
    return MappingProxyType(dict(d))


def parse_json(data: bytes, what: str) -> object:
    """Strictly parse package metadata (``manifest.json``, ``integrity.json``): UTF-8 JSON with no
    duplicate keys (two parsers could read different values), no NaN/Infinity, nesting at most
    :data:`MAX_JSON_DEPTH` deep. Raises :class:`ManifestError` naming ``what``."""
    def pairs(items):
        obj = {}
        for key, value in items:
            if key in obj:
                raise ManifestError(f"{what} repeats the key {key[:60]!r}")
            obj[key] = value
        return obj

    def constant(name):
        raise ManifestError(f"{what} holds {name}, which is not valid JSON")

    try:
        text = data.decode("utf-8")
        _check_nesting(text, what)
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except UnicodeDecodeError:
        raise ManifestError(f"{what} is not UTF-8 text") from None
    except RecursionError:
        raise ManifestError(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except ValueError as err:  # JSONDecodeError, and over-long integers (Python's digit limit)
        if isinstance(err, ManifestError):
            raise
        raise ManifestError(f"{what} is not valid JSON ({str(err)[:120]})") from None
    check_json(value, what)
    return value


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _check_nesting(text: str, what: str) -> None:
    """Refuse deep nesting before json.loads recurses (a 10,000-deep manifest raised RecursionError)."""
    depth = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise ManifestError(f"{what} is nested too deeply (more than {MAX_JSON_DEPTH} levels)")


def check_json(value, where: str) -> None:
    """``value`` is plain JSON data: objects with string keys, lists, strings, finite numbers, booleans
    and null, at most :data:`MAX_JSON_DEPTH` deep (checked without recursion). Raises
    :class:`ManifestError`."""
    stack = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ManifestError(f"{where} is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ManifestError(f"{path} has a non-string key {key!r:.60}")
                stack.append((child, f"{path}.{key[:40]}", depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ManifestError(f"{path} must be a finite number, got {item!r}")
        elif item is not None and not isinstance(item, (str, int, bool)):
            raise ManifestError(f"{path} holds a {type(item).__name__}, which is not JSON data")


def _name(value, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise ManifestError(f"{where} must be a non-empty string of at most {MAX_NAME_CHARS} characters, "
                            f"got {_show(value)}")
    return value


def _names(value, where: str, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(value) > limit:
        raise ManifestError(f"{where} must be a non-empty list of at most {limit} strings")
    names = tuple(_name(item, f"{where}[{i}]") for i, item in enumerate(value))
    if len(set(names)) != len(names):
        raise ManifestError(f"{where} has duplicates")
    return names


def _show(value) -> str:
    """A short repr for messages (the value may be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown(keys, known, where: str) -> None:
    unknown = sorted(k for k in keys if k not in known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
        raise ManifestError(f"{where} has unknown key(s) {[k[:40] for k in unknown[:5]]}{hint}")


def _input_spec(d, where: str) -> InputSpec:
    """One input spec, every field type- and range-checked before :class:`InputSpec` sees it."""
    if not isinstance(d, Mapping):
        raise ManifestError(f"{where} must be an object")
    _unknown(d, _INPUT_KEYS, where)
    _name(d.get("name"), f"{where}.name")
    kind = d.get("modality", d.get("stream"))
    if not isinstance(kind, str) or kind not in MODALITIES:
        raise ManifestError(f"{where}.modality must be one of {list(MODALITIES)}, got {_show(kind)}")
    shape = d.get("shape")
    if (not isinstance(shape, list) or len(shape) != 5
            or not all(_is_int(n) and 1 <= n <= MAX_DIM for n in shape)):
        raise ManifestError(f"{where}.shape must be a list of 5 integers in [1, {MAX_DIM}], got {_show(shape)}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise ManifestError(f"{where}.shape {shape} has more than {MAX_ELEMENTS} elements")
    for key, allowed in (("layout", LAYOUTS), ("dtype", DTYPES), ("representation", ("accumulated", "frame"))):
        if key in d and (not isinstance(d[key], str) or d[key] not in allowed):
            raise ManifestError(f"{where}.{key} must be one of {list(allowed)}, got {_show(d[key])}")
    norm = d.get("normalization", {})
    if not isinstance(norm, Mapping) or len(norm) > 16 or not all(
            isinstance(k, str) and (_is_number(v) or isinstance(v, list) and 0 < len(v) <= 16
                                    and all(map(_is_number, v))) for k, v in norm.items()):
        raise ManifestError(f"{where}.normalization must be an object of finite numbers or short lists of them "
                            f"(e.g. rgb_mean), got {_show(norm)}")
    try:
        return InputSpec.from_dict(dict(d))
    except (TypeError, ValueError, KeyError) as err:
        raise ManifestError(f"bad input spec {where}: {err}") from None


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


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
        if not isinstance(d, Mapping):
            raise ManifestError("'preprocessing' must be an object")
        check_json(d, "preprocessing")
        window = d.get("window_frames", 48)
        stride = d.get("stride_frames", max(int(window) // 2, 1) if _is_int(window) else 1)
        if not _is_int(window) or not 2 <= window <= MAX_WINDOW_FRAMES:
            raise ManifestError(f"preprocessing.window_frames must be an integer >= 2 (at most "
                                f"{MAX_WINDOW_FRAMES}), got {_show(window)}")
        if not _is_int(stride) or not 1 <= stride <= MAX_WINDOW_FRAMES:
            raise ManifestError(f"preprocessing.stride_frames must be an integer >= 1 (at most "
                                f"{MAX_WINDOW_FRAMES}), got {_show(stride)}")
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
        if not isinstance(d, Mapping):
            raise ManifestError("'fusion' must be an object")
        _unknown(d, ("output", "scores", "softmax"), "fusion")
        softmax = d.get("softmax", True)
        if not isinstance(softmax, bool):
            raise ManifestError(f"fusion.softmax must be true or false, got {_show(softmax)}")
        scores = d.get("scores", "softmax" if softmax else "probabilities")
        if not isinstance(scores, str) or scores not in SCORE_KINDS:
            raise ManifestError(f"fusion.scores must be one of {list(SCORE_KINDS)}, got {_show(scores)}")
        output = d.get("output")
        if output is not None:
            _name(output, "fusion.output")
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
        _unknown(d, ("device", "backend", "profile"), "target")
        backend = _BACKEND_ALIASES.get(d["backend"], d["backend"])
        if backend not in BACKENDS:
            raise ManifestError(f"target.backend must be one of {list(BACKENDS)}, got {_show(d['backend'])}")
        device = "cpu" if d["device"] == "openvino" else d["device"]  # format-1 packages named the backend here
        # a device or profile *name*: a path would make loading read a file outside the package
        if (not device or len(device) > 128 or "/" in device or "\\" in device or device.endswith(".toml")
                or device.startswith(".")):
            raise ManifestError(f"target.device must be a device or profile name (not a path), got {_show(device)}")
        profile = d.get("profile", {})
        if not isinstance(profile, Mapping):
            raise ManifestError("'target.profile' must be an object")
        check_json(profile, "target.profile")
        return cls(device, backend, _frozen(profile))

    def to_dict(self) -> dict:
        return {"device": self.device, "backend": self.backend, **({"profile": dict(self.profile)} if self.profile else {})}


@dataclass(frozen=True)
class Calibration:
    """Calibrated scores and the "none" threshold (optional: a package without it reports its top
    label always, as before). Scores are ``softmax(logits / temperature)``; a window or video whose
    top calibrated score is under ``threshold`` is reported as ``"none"`` (0 disables).

    ``split`` and ``clips``: the data the temperature was fitted on; ``nll_*`` (nats per clip) and
    ``ece_*`` (expected calibration error, 15 equal-width bins, a fraction) before and after
    scaling on it; ``rule``: how the threshold was chosen (e.g. ``"max_false_event_rate=0.05"`` or
    ``"fixed"``); ``false_event_rate``: per negative set (``static``, ``noise``), the fraction of its
    windows reported as an event at ``threshold`` on the fitting data. Fitted by
    :mod:`edgekit.calibration`."""

    temperature: float
    threshold: float
    split: str
    clips: int
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    rule: str = "fixed"
    false_event_rate: Mapping = field(default_factory=dict)

    KEYS = ("temperature", "threshold", "split", "clips", "nll_before", "nll_after", "ece_before", "ece_after",
            "rule", "false_event_rate")

    def __post_init__(self):
        # the same checks whether built in code or read from a package
        if not _is_number(self.temperature) or not 0 < self.temperature <= MAX_TEMPERATURE:
            raise ManifestError(f"calibration.temperature must be a number in (0, {MAX_TEMPERATURE:g}], "
                                f"got {_show(self.temperature)}")
        if not _is_number(self.threshold) or not 0 <= self.threshold <= 1:
            raise ManifestError(f"calibration.threshold must be a number in [0, 1], got {_show(self.threshold)}")
        _name(self.split, "calibration.split")
        _name(self.rule, "calibration.rule")
        if not _is_int(self.clips) or self.clips < 1:
            raise ManifestError(f"calibration.clips must be an integer >= 1, got {_show(self.clips)}")
        for key in ("nll_before", "nll_after", "ece_before", "ece_after"):
            value = getattr(self, key)
            if not _is_number(value) or value < 0:
                raise ManifestError(f"calibration.{key} must be a finite number >= 0, got {_show(value)}")
        rates = self.false_event_rate
        if (not isinstance(rates, Mapping) or len(rates) > 16
                or not all(isinstance(k, str) and 0 < len(k) <= 64 and _is_number(v) and 0 <= v <= 1
                           for k, v in rates.items())):
            raise ManifestError("calibration.false_event_rate must be an object of at most 16 names -> "
                                f"fractions in [0, 1], got {_show(rates)}")
        object.__setattr__(self, "false_event_rate", _frozen(rates))

    @classmethod
    def from_dict(cls, d: Mapping) -> "Calibration":
        if not isinstance(d, Mapping):
            raise ManifestError("'calibration' must be an object")
        _unknown(d, cls.KEYS, "calibration")
        missing = [k for k in cls.KEYS[:8] if k not in d]
        if missing:
            raise ManifestError(f"calibration is missing key(s) {missing}")
        return cls(**{k: d[k] for k in cls.KEYS if k in d})

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "threshold": self.threshold, "split": self.split,
                "clips": self.clips, "nll_before": self.nll_before, "nll_after": self.nll_after,
                "ece_before": self.ece_before, "ece_after": self.ece_after, "rule": self.rule,
                "false_event_rate": dict(self.false_event_rate)}


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
    calibration: Calibration | None = None  # None: uncalibrated scores, never "none" (packages before it)

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
        quantization ``model.json`` (no format version, target, precision or members yet; other
        keys it carries are ignored). Raises :class:`ManifestError` and nothing else."""
        try:
            return cls._from_dict(d, require_package_fields)
        except ManifestError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as err:
            # every field is checked above; this keeps the promise "ManifestError and nothing else"
            raise ManifestError(f"malformed manifest ({type(err).__name__}: {str(err)[:120]})") from None

    @classmethod
    def _from_dict(cls, d, require_package_fields: bool) -> "Manifest":
        if not isinstance(d, Mapping):
            raise ManifestError("not a JSON object")
        required = ["model", "labels", "inputs", "outputs", "preprocessing", "fusion"]
        if require_package_fields:
            required += ["format_version", "target", "precision", "producer", "members"]
            _unknown(d, PACKAGE_KEYS, "the manifest")
        missing = [k for k in required if k not in d]
        if missing:
            raise ManifestError(f"missing key(s) {missing}")
        model = _name(d["model"], "'model'")
        labels = d["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise ManifestError("'labels' must be a non-empty list of strings")
        labels = _names(labels, "'labels'", MAX_LABELS)
        if not isinstance(d["outputs"], list) or not d["outputs"] or not all(isinstance(x, str) for x in d["outputs"]):
            raise ManifestError("'outputs' must be a non-empty list of strings")
        outputs = _names(d["outputs"], "'outputs'", MAX_OUTPUTS)
        for key in ("preprocessing", "fusion", "producer", "metrics"):
            if key in d and not isinstance(d[key], Mapping):
                raise ManifestError(f"{key!r} must be an object")
        for key in ("producer", "metrics"):
            check_json(d.get(key, {}), key)
        if not isinstance(d["inputs"], list) or not d["inputs"] or len(d["inputs"]) > MAX_INPUTS:
            raise ManifestError(f"'inputs' must be a non-empty list of at most {MAX_INPUTS} input specs")
        inputs = tuple(_input_spec(s, f"inputs[{i}]") for i, s in enumerate(d["inputs"]))
        if len({spec.name for spec in inputs}) != len(inputs):
            raise ManifestError("'inputs' has duplicate names")
        fusion = Fusion.from_dict(d["fusion"])
        if fusion.output is not None and fusion.output not in outputs:
            raise ManifestError(f"fusion.output {fusion.output!r} is not one of the outputs {list(outputs)}")
        version = d.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ManifestError("'format_version' must be an integer")
        precision = d.get("precision", "fp32")
        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise ManifestError(f"'precision' must be one of {list(PRECISIONS)}")
        members = parse_members(d.get("members", {}), "'members'")
        target = Target.from_dict(d["target"]) if "target" in d else Target()
        calibration = Calibration.from_dict(d["calibration"]) if d.get("calibration") is not None else None
        return cls(format_version=version, model=model, labels=labels, inputs=inputs,
                   outputs=outputs, preprocessing=Preprocessing.from_dict(d["preprocessing"]),
                   fusion=fusion, target=target, precision=precision, producer=_frozen(d.get("producer", {})),
                   metrics=_frozen(d.get("metrics", {})), members=_frozen(members), calibration=calibration)

    def to_dict(self) -> dict:
        """The manifest as JSON-ready data (what ``manifest.json`` holds)."""
        return {"format_version": self.format_version, "model": self.model, "labels": list(self.labels),
                "inputs": [s.to_dict() for s in self.inputs], "outputs": list(self.outputs),
                "preprocessing": self.preprocessing.to_dict(), "fusion": self.fusion.to_dict(),
                "target": self.target.to_dict(), "precision": self.precision, "producer": _plain(self.producer),
                "metrics": _plain(self.metrics),
                "members": {n: {"sha256": m.sha256, "bytes": m.bytes} for n, m in self.members.items()},
                **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {})}


def parse_members(raw, where: str) -> dict[str, Member]:
    """``{name: {"sha256": hex, "bytes": n}}`` (a manifest's or integrity record's member list) as
    :class:`Member` records; names are plain relative zip names. Raises :class:`ManifestError`."""
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where} must be an object")
    if len(raw) > MAX_MEMBERS:
        raise ManifestError(f"{where} lists {len(raw)} members (at most {MAX_MEMBERS})")
    members = {}
    for name, record in raw.items():
        _name(name, f"a member name in {where}")
        if name.startswith("/") or "\\" in name or ".." in name.split("/"):
            raise ManifestError(f"member name {_show(name)} in {where} is not a plain relative name")
        if (not isinstance(record, Mapping) or not isinstance(record.get("sha256"), str)
                or not _SHA256.fullmatch(record["sha256"]) or not _is_int(record.get("bytes"))
                or not 0 <= record["bytes"] < 1 << 62):
            raise ManifestError(f"member {name[:60]!r} needs a 'sha256' string (64 hex digits) and a 'bytes' integer")
        members[name] = Member(record["sha256"].lower(), int(record["bytes"]))
    return members


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _plain(value):
    """Mappings (frozen views included) and tuples back to JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
