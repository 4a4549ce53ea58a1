"""The training configuration: one frozen, typed :class:`TrainConfig`, validated once when it is loaded.

Loading is ``defaults <- TOML file <- --set section.key=value overrides``::

    from training.config import load_config
    cfg = load_config("training/configs/edge-mvr.toml", ["train.epochs=3", "train.out=runs/quick"])
    cfg.train.epochs, cfg.data.dataset, cfg.model.name     # 3, PosixPath('data/synth-small'), 'edge-mvr'

Six sections, each a frozen dataclass:

- ``[model]``  ``name`` (a registered model) and any keyword argument of that model's builder
               (``segments``, ``size``, ``width`` ...), kept as a read-only mapping in ``kwargs``;
               the model registry checks those keys (``training.models.model_input_specs``).
- ``[data]``   the dataset folder, the side-data cache root, loader workers, the teacher flow source.
- ``[train]``  epochs, optimisation, seed, device and the output folder.
- ``[augment]`` motion-correct augmentation of the training split (``training.augment``), all off
               by default; ``to_dict()`` leaves the section out while it is all off.
- ``[objective]`` ``name`` (a registered objective: ``ce`` by default, ``dmc``, ``iptsn``, ``mfcd``,
               ``mfcd-rgb``, ``off``, ``costvol``) and its weights (the paper's by default), checked by
               the objective registry (``training.objectives``) as model keys are by the model registry.
- ``[stage]``  how this run starts and what it trains: ``init_from`` (a checkpoint; 2D kernels inflate
               into 3D ones), ``init_rename``, ``freeze`` (parameter-name patterns), ``lr_mult``
               (pattern -> multiplier of ``train.lr``) and ``teacher`` (a frozen checkpoint).
``to_dict()`` leaves ``[objective]`` and ``[stage]`` out while they hold their defaults, so a config
without them has the dict (and the checkpoints) it had before they existed.

An unknown section or key is refused with the closest valid name (``--set train.epoch=1`` ->
``unknown key 'train.epoch'; did you mean 'train.epochs'?``); a value of the wrong type or out of
range gives one line (``train.epochs must be an integer, got 'three'``). Every error is an
``edgekit.errors.ConfigError``. This module never imports torch.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from edgekit.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _rule(default, kind: str, *, minimum=None, above=None, below=None, maximum=None, choices=None,
          help: str = ""):
    """A config field: its default, its kind (int, float, str, path, device, range, labels) and its
    bounds (for a range: of both ends)."""
    metadata = {"kind": kind, "minimum": minimum, "above": above, "below": below, "maximum": maximum,
                "choices": choices, "help": help}
    if isinstance(default, Mapping):  # a table: each config gets its own (read-only) copy
        return field(default_factory=lambda: MappingProxyType(dict(default)), metadata=metadata)
    return field(default=default, metadata=metadata)


def _check(key: str, value: Any, meta: Mapping) -> Any:
    """``value`` of config key ``key`` converted to the field's kind; ConfigError if it cannot be."""
    kind = meta["kind"]
    if kind == "range":
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)):
            raise ConfigError(f"{key} must be two numbers [low, high], got {value!r}")
        low, high = (_check(key, float(v), {**meta, "kind": "float"}) for v in value)
        if low > high:
            raise ConfigError(f"{key} must be [low, high] with low <= high, got {value!r}")
        return (low, high)
    if kind == "patterns":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f'{key} must be a list of parameter-name patterns, ["backbone.*", ...], got {value!r}')
        return tuple(value)
    if kind == "multipliers":
        if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 0
                for k, v in value.items()):
            raise ConfigError(f'{key} must be a table of pattern = multiplier >= 0, {{"backbone.*" = 0.1}}, got {value!r}')
        return MappingProxyType({k: float(v) for k, v in value.items()})
    if kind == "renames":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in value.items()):
            raise ConfigError(f'{key} must be a table of name prefixes, {{"old." = "new."}}, got {value!r}')
        return MappingProxyType(dict(value))
    if kind == "labels":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in value.items()):
            raise ConfigError(f'{key} must be a table of class names, {{class = "mirrored class", ...}}, '
                              f"got {value!r}")
        return MappingProxyType(dict(value))
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        value = float(value)
    elif kind in ("str", "device"):
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        if kind == "device" and not _DEVICE.fullmatch(value):
            raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N, got {value!r}")
    elif kind == "path":
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{key} must be a path (a string), got {value!r}")
        value = Path(value)
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(f"{key} must be one of {', '.join(meta['choices'])}, got {value!r}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ConfigError(f"{key} must be >= {meta['minimum']}, got {value!r}")
    if meta["above"] is not None and not value > meta["above"]:
        raise ConfigError(f"{key} must be > {meta['above']}, got {value!r}")
    if meta["below"] is not None and not value < meta["below"]:
        raise ConfigError(f"{key} must be < {meta['below']}, got {value!r}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{key} must be <= {meta['maximum']}, got {value!r}")
    return value


class _Section:
    """Validation shared by the sections: every field is checked (and converted) on construction."""

    SECTION = ""

    def __post_init__(self):
        for f in fields(self):
            if "kind" in f.metadata:
                object.__setattr__(self, f.name, _check(f"{self.SECTION}.{f.name}", getattr(self, f.name), f.metadata))

    def to_dict(self) -> dict:
        return {f.name: str(v) if isinstance(v := getattr(self, f.name), Path) else v for f in fields(self)}


@dataclass(frozen=True)
class ModelSection(_Section):
    """``[model]``: a registered model's name and its builder's keyword arguments (read-only)."""

    SECTION = "model"
    name: str = _rule("edge-mvr", "str", help="registered model (python -m training models)")
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.kwargs, Mapping):
            raise ConfigError(f"model keyword arguments must be a mapping, got {self.kwargs!r}")
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))

    def to_dict(self) -> dict:
        return {"name": self.name, **self.kwargs}


@dataclass(frozen=True)
class DataSection(_Section):
    """``[data]``: where the videos are, where their side data is cached, how it is loaded."""

    SECTION = "data"
    dataset: Path = _rule(Path("data/synth-small"), "path", help="dataset folder (any layout of training.datasets)")
    cache: Path = _rule(Path("data/cache"), "path", help="cache root; one folder per dataset content and spec")
    workers: int = _rule(2, "int", minimum=0, help="DataLoader processes (0 = in the main process)")
    flow: str = _rule("none", "str", help="teacher flow stored in the cache (training.cache.FLOW_SOURCES)")
    flow_cells: int = _rule(0, "int", minimum=0, help="read the flow as its means over NxN-pixel cells of the "
                            "source picture (0 = as stored): what block vectors without errors would carry "
                            "(benchmarks/motion_ceiling.py)")
    max_vector: float = _rule(0.0, "float", minimum=0.0, maximum=1.0,
                              help="drop motion vectors longer than this fraction of the picture's shorter side "
                                   "before tracing (0 = keep all); recorded in the package, read so at run time")
    min_gain: float = _rule(0.0, "float", minimum=0.0, maximum=255.0,
                            help="set to 0 the motion vectors that predict their 8x8 cell better than no motion by "
                                 "fewer than this many grey levels per pixel (0 = keep all); recorded in the "
                                 "package, read so at run time")

    def __post_init__(self):
        super().__post_init__()
        from training.cache.build import FLOW_SOURCES  # the cache owns its list of flow sources

        if self.flow not in FLOW_SOURCES:
            raise ConfigError(f"data.flow must be one of {', '.join(FLOW_SOURCES)}, got {self.flow!r}")
        if self.flow_cells and self.flow == "none":
            raise ConfigError("data.flow_cells averages the teacher flow, and data.flow is 'none'; set data.flow")

    def to_dict(self) -> dict:
        out = super().to_dict()
        for key in ("flow_cells", "max_vector", "min_gain"):  # later additions: configs that leave them at 0 read as before
            if not out[key]:
                del out[key]
        return out


def saved_data_section(meta: Mapping) -> DataSection:
    """The ``[data]`` section a checkpoint's run was trained with (``meta``: the checkpoint's JSON),
    defaults for the keys an older run did not save."""
    return DataSection(**meta.get("config", {}).get("data", {}))


@dataclass(frozen=True)
class TrainSection(_Section):
    """``[train]``: optimisation, schedule, seed, device and output folder."""

    SECTION = "train"
    epochs: int = _rule(10, "int", minimum=1)
    batch_size: int = _rule(32, "int", minimum=1)
    lr: float = _rule(2e-3, "float", above=0.0, help="peak learning rate (linear warm-up, then cosine)")
    weight_decay: float = _rule(5e-4, "float", minimum=0.0)
    optimizer: str = _rule("adamw", "str", choices=OPTIMIZERS)
    warmup_epochs: float = _rule(1.0, "float", minimum=0.0)
    label_smoothing: float = _rule(0.05, "float", minimum=0.0, below=1.0)
    seed: int = _rule(0, "int", minimum=0)
    device: str = _rule("auto", "device", help="auto (CUDA if present), cpu, cuda or cuda:N")
    out: Path = _rule(Path("runs/edge-mvr"), "path", help="output folder: metrics.jsonl, last.*, best.*")
    threads: int = _rule(0, "int", minimum=0, help="torch intra-op threads (0 = torch's default)")
    max_steps_per_epoch: int = _rule(0, "int", minimum=0, help="cap on steps per epoch (0 = the whole split)")


@dataclass(frozen=True)
class AugmentSection(_Section):
    """``[augment]``: motion-correct augmentation of training items (``training.augment``); every
    option is off by default, and a config with all of them off stores no ``[augment]`` section."""

    SECTION = "augment"
    hflip: float = _rule(0.0, "float", minimum=0.0, maximum=1.0,
                         help="probability of a horizontal flip (dx negated, mirrored labels swapped)")
    vflip: float = _rule(0.0, "float", minimum=0.0, maximum=1.0,
                         help="probability of a vertical flip (dy negated, mirrored labels swapped)")
    hflip_labels: Mapping[str, str] = _rule(MappingProxyType({}), "labels",
                                            help="class -> its horizontal mirror image (itself if symmetric, "
                                                 "\"\" never flipped); needed unless the classes are synthetic")
    vflip_labels: Mapping[str, str] = _rule(MappingProxyType({}), "labels", help="as hflip_labels, vertically")
    crop_scale: tuple[float, float] = _rule((1.0, 1.0), "range", above=0.0, maximum=1.0,
                                            help="[low, high] side of a random square crop, fraction of the "
                                                 "input, resized back (MVs scaled by 1/side)")
    window_jitter_frames: int = _rule(0, "int", minimum=0,
                                      help="frames cut at random from each end of the window the sampling rule "
                                           "sees (at most a quarter of the clip)")
    clip_stride_max: int = _rule(1, "int", minimum=1,
                                 help="3D motion runs (BCTHW) take every k-th frame, k drawn from 1..this")
    mv_noise_px: float = _rule(0.0, "float", minimum=0.0, help="std of Gaussian noise on MV channels, input pixels")
    residual_dropout: float = _rule(0.0, "float", minimum=0.0, maximum=1.0,
                                    help="probability of zeroing one segment's residual channels")

    def to_dict(self) -> dict:
        return {f.name: dict(v) if isinstance(v := getattr(self, f.name), Mapping) else
                list(v) if isinstance(v, tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class ObjectiveSection(_Section):
    """``[objective]``: a registered objective's name and its weights (read-only; checked by
    ``training.objectives.build_objective``, unknown keys refused there)."""

    SECTION = "objective"
    name: str = _rule("ce", "str", help="registered objective (training.objectives.list_objectives)")
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.kwargs, Mapping):
            raise ConfigError(f"objective keys must be a mapping, got {self.kwargs!r}")
        if "label_smoothing" in self.kwargs:  # every objective takes it from [train]
            raise ConfigError("objective.label_smoothing: label smoothing is set once, as train.label_smoothing; "
                              "drop it from [objective]")
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))

    def to_dict(self) -> dict:
        return {"name": self.name, **self.kwargs}


@dataclass(frozen=True)
class StageSection(_Section):
    """``[stage]``: where the weights start and what trains (``training.objectives.stages``)."""

    SECTION = "stage"
    init_from: str = _rule("", "str", help="checkpoint (.json) whose weights initialise the model (\"\" = none); "
                                           "2D conv kernels inflate into 3D ones")
    init_rename: Mapping[str, str] = _rule(MappingProxyType({}), "renames",
                                           help="source name prefix -> model name prefix, for init_from")
    freeze: tuple[str, ...] = _rule((), "patterns", help="parameter-name patterns (fnmatch) that do not train")
    lr_mult: Mapping[str, float] = _rule(MappingProxyType({}), "multipliers",
                                         help="pattern -> learning-rate multiplier (first match wins; before the "
                                              "objective's own)")
    teacher: str = _rule("", "str", help="checkpoint (.json) of a frozen teacher run on the same batch (\"\" = none)")

    def to_dict(self) -> dict:
        return {f.name: dict(v) if isinstance(v := getattr(self, f.name), Mapping) else
                list(v) if isinstance(v, tuple) else v for f in fields(self)}


SECTIONS = {"model": ModelSection, "data": DataSection, "train": TrainSection, "augment": AugmentSection,
            "objective": ObjectiveSection, "stage": StageSection}
KWARG_SECTIONS = ("model", "objective")  # sections whose keys are a registry's keyword arguments


@dataclass(frozen=True)
class TrainConfig:
    """A whole training configuration (see the module docstring). Build it with :func:`load_config`
    or :meth:`from_dict`; ``to_dict()`` is the TOML-shaped dict stored in checkpoints."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    stage: StageSection = field(default_factory=StageSection)

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "") -> "TrainConfig":
        """From a TOML-shaped dict ``{"model": {...}, "data": {...}, "train": {...}}``; missing keys
        take their defaults. ``source`` (a file name) prefixes error messages."""
        return cls(**{name: _section(name, values, source) for name, values in _checked_sections(data, source).items()})

    def to_dict(self) -> dict:
        """``{"model": {"name", **kwargs}, "data": {...}, "train": {...}}`` with paths as strings, plus
        ``"augment"`` only when some augmentation is on (so runs without any keep their old dict)."""
        out = {"model": self.model.to_dict(), "data": self.data.to_dict(), "train": self.train.to_dict()}
        if self.augment != AugmentSection():
            out["augment"] = self.augment.to_dict()
        if self.objective != ObjectiveSection():
            out["objective"] = self.objective.to_dict()
        if self.stage != StageSection():
            out["stage"] = self.stage.to_dict()
        return out

    def with_overrides(self, *overrides: str) -> "TrainConfig":
        """A copy with ``section.key=value`` overrides applied (the ``--set`` syntax)."""
        data = self.to_dict()
        for item in overrides:
            _apply_override(data, item)
        return TrainConfig.from_dict(data)


def differences(saved: Mapping, current: Mapping, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ between two TOML-shaped config dicts (``to_dict()`` or a
    checkpoint's saved ``config``), sorted; keys in ``ignore`` are skipped. A dict without an
    ``augment`` section had every augmentation off (``TrainConfig.to_dict`` leaves it out then)."""
    off = {"augment": AugmentSection().to_dict(), "objective": ObjectiveSection().to_dict(),
           "stage": StageSection().to_dict()}
    flat_a, flat_b = _flatten({**off, **saved}), _flatten({**off, **current})
    ignored = set(ignore)
    return sorted(k for k in set(flat_a) | set(flat_b)
                  if k not in ignored and _normal(flat_a.get(k)) != _normal(flat_b.get(k)))


CONFIG_DIR = Path(__file__).parent / "configs"


def bundled_configs() -> list[str]:
    """Names of the training configs shipped in ``training/configs`` (``edge-mvr``, ...); the
    reproduction plans beside them (``reproduce-*.toml``, ``edgekit reproduce``) are not training configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml") if not p.stem.startswith("reproduce-"))


def resolve_config_path(path: str | Path) -> Path:
    """``path`` itself when it is a file, else the bundled config of that name (``edge-mvr`` or
    ``edge-mvr.toml``); raises ConfigError naming the bundled configs."""
    path = Path(path)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if path.parent == Path(".") and bundled.is_file():
        return bundled
    raise ConfigError(f"no config file {path}; bundled configs: {', '.join(bundled_configs())}")


def load_config(path: str | Path | None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Defaults <- the TOML file at ``path`` (if given; a bare name such as ``edge-mvr`` is a
    bundled config, see :func:`bundled_configs`) <- ``section.key=value`` overrides.

    Override values are TOML (``train.lr=1e-3``, ``model.weights=[1, 2]``); a value that is not
    TOML is a bare string (``train.out=runs/quick``). Raises ConfigError for a missing or malformed
    file, an unknown section or key (with the closest valid name) and a bad value.
    """
    data: dict = {}
    source = ""
    if path is not None:
        path = resolve_config_path(path)
        source = str(path)
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: {err}") from None
        _checked_sections(data, source)  # report the file's own mistakes against the file
        TrainConfig.from_dict(data, source)
    for item in overrides:
        _apply_override(data, item)
    return TrainConfig.from_dict(data)


# -- parsing --------------------------------------------------------------------------------------

def _suggest(wrong: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(wrong, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(sorted(valid))}"


def _prefix(source: str) -> str:
    return f"{source}: " if source else ""


def _checked_sections(data: Mapping, source: str) -> dict[str, Mapping]:
    """``data``'s sections, after refusing unknown sections and keys and sections that are not tables."""
    out = {}
    for name, values in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"{_prefix(source)}unknown section {name!r}{_suggest(name, SECTIONS)}")
        if not isinstance(values, Mapping):
            raise ConfigError(f"{_prefix(source)}{name!r} must be a [{name}] section, got {values!r}")
        if name not in KWARG_SECTIONS:  # model / objective keys are a builder's arguments, checked by its registry
            known = {f.name for f in fields(SECTIONS[name])}
            for key in values:
                if key not in known:
                    dotted = [f"{name}.{k}" for k in known]
                    raise ConfigError(f"{_prefix(source)}unknown key '{name}.{key}'"
                                      f"{_suggest(f'{name}.{key}', dotted)}")
        out[name] = values
    return out


def _section(name: str, values: Mapping, source: str):
    values = dict(values)
    try:
        if name in KWARG_SECTIONS:
            section = SECTIONS[name]
            return section(name=values.pop("name", section.name), kwargs=values)
        return SECTIONS[name](**values)
    except ConfigError as err:
        raise ConfigError(f"{_prefix(source)}{err}") from None


def _apply_override(data: dict, item: str) -> None:
    """Apply one ``section.key=value`` to the TOML-shaped ``data`` (in place)."""
    key, sep, raw = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    if section not in SECTIONS:
        raise ConfigError(f"unknown section {section!r}{_suggest(section, SECTIONS)}")
    _checked_sections({section: {name: None}}, "")
    data.setdefault(section, {})[name] = _parse_value(section, name, raw.strip())


def _parse_value(section: str, name: str, raw: str) -> Any:
    """A ``--set`` value: TOML, else a bare string; a path or string field takes unquoted text as is."""
    kinds = {f.name: f.metadata.get("kind") for f in fields(SECTIONS[section])}
    if section in KWARG_SECTIONS and name != "name":
        kinds[name] = None
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    if kinds.get(name) in ("str", "path", "device") and not isinstance(value, str):
        return raw  # e.g. train.out=2024 is the folder "2024"
    return value


def _flatten(data: Mapping) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in data.items() if isinstance(values, Mapping) for k, v in values.items()}


def _normal(value: Any) -> Any:
    """Compare values as JSON keeps them: tuples as lists, paths as strings, 1 == 1.0."""
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
