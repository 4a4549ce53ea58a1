"""A reproduction plan: the ``[reproduce]`` table of ``training/configs/reproduce-<preset>.toml``.

A plan names the synthetic data to generate, the ``--set`` overrides every training stage gets,
the stages (a training config each, chained by ``init_from``/``teacher`` naming other stages) and
the rows of the comparison table (a stage's checkpoint, one of its model's streams, or a late
fusion of other rows). Every key is checked when the plan is read: an unknown key, a stage or row
that names a missing one, or a cycle is refused with one line (:class:`edgekit.errors.ConfigError`).

Layout (TOML)::

    [reproduce]
    preset = "small"                       # the name the plan answers to (--preset)
    reductions = ["...", ...]              # what was reduced against the papers, stated in the md
    [reproduce.synth]                      # edgekit synth settings (preset, clips_per_class, size, frames, seed, codec)
    [reproduce.set]                        # "section.key" = value, applied to every stage's config
    [reproduce.eval]                       # calib_clips, latency_runs, eval_clips (0: the whole test split),
                                           # guard_agreement (INT8 guard on the val split; absent: no guard)
    [[reproduce.stage]]                    # name, config, set = {...}, init_from = "stage[/last]", teacher = "stage"
    [[reproduce.row]]                      # id, label, paper, domain, stage, stream | fuse = [ids], weights = [...]
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import ConfigError
from training.config import CONFIG_DIR

PLAN_KEYS = {"preset", "description", "reductions", "synth", "set", "eval", "stage", "row"}
SYNTH_KEYS = {"preset", "clips_per_class", "size", "frames", "seed", "codec"}
EVAL_KEYS = {"calib_clips", "latency_runs", "eval_clips", "guard_agreement"}
STAGE_KEYS = {"name", "config", "set", "init_from", "teacher", "note"}
ROW_KEYS = {"id", "label", "paper", "domain", "stage", "stream", "fuse", "weights", "checkpoint"}
DOMAINS = ("compressed", "flow", "rgb")
CHECKPOINTS = ("best", "last")


@dataclass(frozen=True)
class Stage:
    """One training run: ``config`` (a bundled name such as ``dmc-mse`` or ``paper/dmc-mse``, or a
    path), ``overrides`` (``section.key=value`` strings, after the plan's own), and the stages whose
    checkpoint it starts from (``init_from``: (stage, "best"|"last")) or distils from (``teacher``)."""

    name: str
    config: Path
    overrides: tuple[str, ...] = ()
    init_from: tuple[str, str] | None = None
    teacher: tuple[str, str] | None = None
    note: str = ""

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(ref[0] for ref in (self.init_from, self.teacher) if ref is not None)


@dataclass(frozen=True)
class Row:
    """One line of the table: the ``checkpoint`` ("best"/"last") of ``stage`` scored whole or as one
    of its model's ``stream`` outputs (``forward_streams``), or the late fusion of the rows ``fuse``
    with ``weights`` (logits summed, no training). ``domain``: what the row's model reads at test
    time (compressed-domain side data, optical flow, or decoded RGB)."""

    id: str
    label: str
    paper: str
    domain: str
    stage: str | None = None
    stream: str | None = None
    checkpoint: str = "best"
    fuse: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A parsed, checked plan; ``stages`` in an order where every stage follows those it needs."""

    preset: str
    path: Path
    description: str
    reductions: tuple[str, ...]
    synth: dict
    overrides: tuple[str, ...]
    calib_clips: int
    latency_runs: int
    eval_clips: int
    stages: tuple[Stage, ...]
    rows: tuple[Row, ...]
    raw: dict = field(repr=False, default_factory=dict)
    guard_agreement: float | None = None

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def row(self, row_id: str) -> Row:
        return next(r for r in self.rows if r.id == row_id)


def plan_path(preset: str) -> Path:
    """The bundled plan of ``preset`` (``training/configs/reproduce-<preset>.toml``), or ``preset``
    itself when it is a TOML file. Raises ConfigError naming the bundled presets."""
    path = Path(preset)
    if path.suffix == ".toml" and path.is_file():
        return path
    bundled = CONFIG_DIR / f"reproduce-{preset}.toml"
    if bundled.is_file():
        return bundled
    names = sorted(p.stem.removeprefix("reproduce-") for p in CONFIG_DIR.glob("reproduce-*.toml"))
    raise ConfigError(f"no reproduction plan {preset!r}; presets: {', '.join(names)} (or a plan's .toml path)")


def load_plan(preset: str) -> Plan:
    """Read and check the plan of ``preset`` (see :func:`plan_path`). Raises ConfigError for a
    malformed file, an unknown key (with the closest valid one), a missing config, a stage or row
    naming one that does not exist, a dependency cycle, or a bad value."""
    path = plan_path(preset)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    return parse_plan(data, path)


def parse_plan(data: dict, path: Path) -> Plan:
    """The :class:`Plan` of a TOML-shaped dict (the file at ``path``); see :func:`load_plan`."""
    where = str(path)
    if set(data) != {"reproduce"}:
        raise ConfigError(f"{where}: a plan is one [reproduce] table, found {sorted(data) or 'nothing'}")
    top = data["reproduce"]
    _keys(top, PLAN_KEYS, f"{where}: [reproduce]")
    synth = dict(top.get("synth", {}))
    _keys(synth, SYNTH_KEYS, f"{where}: [reproduce.synth]")
    evals = dict(top.get("eval", {}))
    _keys(evals, EVAL_KEYS, f"{where}: [reproduce.eval]")
    guard = evals.pop("guard_agreement", None)
    if guard is not None and (isinstance(guard, bool) or not isinstance(guard, (int, float)) or not 0 < guard <= 1):
        raise ConfigError(f"{where}: reproduce.eval.guard_agreement is the fraction of validation clips on which "
                          f"guarded INT8 must pick FP32's class, in (0, 1], got {guard!r}")
    for key, value in evals.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (key != "eval_clips" and value < 1):
            raise ConfigError(f"{where}: reproduce.eval.{key} must be a positive integer, got {value!r}")
    overrides = _overrides(top.get("set", {}), f"{where}: [reproduce.set]")
    stages = [_stage(i, s, where) for i, s in enumerate(top.get("stage", []))]
    names = [s.name for s in stages]
    _unique(names, "stage", where)
    for s in stages:
        for needed in s.needs:
            if needed not in names:
                raise ConfigError(f"{where}: stage {s.name!r} needs stage {needed!r}, which the plan does not have"
                                  + _hint(needed, names))
    rows = [_row(i, r, where) for i, r in enumerate(top.get("row", []))]
    ids = [r.id for r in rows]
    _unique(ids, "row", where)
    for r in rows:
        if r.stage is not None and r.stage not in names:
            raise ConfigError(f"{where}: row {r.id!r} reads stage {r.stage!r}, which the plan does not have"
                              + _hint(r.stage, names))
        for other in r.fuse:
            if other not in ids[:ids.index(r.id)]:
                raise ConfigError(f"{where}: row {r.id!r} fuses row {other!r}, which is not a row listed before it"
                                  + _hint(other, ids))
    if not rows:
        raise ConfigError(f"{where}: the plan has no [[reproduce.row]]")
    return Plan(preset=str(top.get("preset", path.stem.removeprefix("reproduce-"))), path=path,
                description=str(top.get("description", "")), reductions=tuple(map(str, top.get("reductions", []))),
                synth=synth, overrides=overrides, calib_clips=evals.get("calib_clips", 64),
                latency_runs=evals.get("latency_runs", 30), eval_clips=evals.get("eval_clips", 0),
                guard_agreement=None if guard is None else float(guard),
                stages=tuple(_ordered(stages, where)), rows=tuple(rows), raw=data)


def _keys(table, valid: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table, got {table!r}")
    unknown = sorted(set(table) - valid)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{_hint(unknown[0], valid)} "
                          f"(valid keys: {', '.join(sorted(valid))})")


def _hint(wrong: str, valid) -> str:
    close = difflib.get_close_matches(wrong, list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unique(names: list[str], what: str, where: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"{where}: two {what}s are named {name!r}")
        seen.add(name)


def _overrides(table, where: str) -> tuple[str, ...]:
    """``{"train.epochs": 8}`` -> ``("train.epochs=8",)`` (values written back as TOML)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of \"section.key\" = value, got {table!r}")
    out = []
    for key, value in table.items():
        if key.count(".") != 1:
            raise ConfigError(f"{where}: {key!r} is not a \"section.key\" name (e.g. \"train.epochs\")")
        out.append(f"{key}={_toml_value(value)}")
    return tuple(out)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + "}"
    return repr(value)


def _reference(value, key: str, where: str) -> tuple[str, str]:
    """``"stage"`` or ``"stage/last"`` -> (stage, checkpoint)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} names a stage (\"name\" or \"name/last\"), got {value!r}")
    name, _, which = value.partition("/")
    which = which or "best"
    if which not in CHECKPOINTS:
        raise ConfigError(f"{where}: {key} = {value!r}: the checkpoint after '/' is best or last")
    return name, which


def _config_file(name, where: str) -> Path:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: config must name a training config, got {name!r}")
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        return path
    bundled = CONFIG_DIR / (name if name.endswith(".toml") else f"{name}.toml")
    if bundled.is_file():
        return bundled
    known = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.toml"))
    raise ConfigError(f"{where}: no training config {name!r}{_hint(name, known)} (bundled: training/configs/)")


def _stage(i: int, table, where: str) -> Stage:
    label = f"{where}: stage {table.get('name', i + 1)!r}" if isinstance(table, dict) else f"{where}: stage {i + 1}"
    _keys(table, STAGE_KEYS, label)
    if not isinstance(table.get("name"), str) or not table["name"] or "/" in table["name"]:
        raise ConfigError(f"{label}: every stage needs a name (no '/'), got {table.get('name')!r}")
    if "config" not in table:
        raise ConfigError(f"{label}: config is missing (a bundled config name such as \"dmc-mse\", or a path)")
    return Stage(name=table["name"], config=_config_file(table["config"], label),
                 overrides=_overrides(table.get("set", {}), f"{label} set"),
                 init_from=_reference(table["init_from"], "init_from", label) if "init_from" in table else None,
                 teacher=_reference(table["teacher"], "teacher", label) if "teacher" in table else None,
                 note=str(table.get("note", "")))


def _row(i: int, table, where: str) -> Row:
    label = f"{where}: row {table.get('id', i + 1)!r}" if isinstance(table, dict) else f"{where}: row {i + 1}"
    _keys(table, ROW_KEYS, label)
    for key in ("id", "label", "paper", "domain"):
        if not isinstance(table.get(key), str) or not table[key]:
            raise ConfigError(f"{label}: {key} is missing (a non-empty string)")
    if table["domain"] not in DOMAINS:
        raise ConfigError(f"{label}: domain must be one of {', '.join(DOMAINS)}, got {table['domain']!r}")
    fuse = table.get("fuse")
    if (fuse is None) == ("stage" not in table):
        raise ConfigError(f"{label}: give either stage (a trained row) or fuse (a late fusion of rows), not both")
    if fuse is not None:
        weights = table.get("weights", [1.0] * len(fuse))
        if not isinstance(fuse, list) or len(fuse) < 2 or not all(isinstance(f, str) for f in fuse):
            raise ConfigError(f"{label}: fuse lists two or more row ids, got {fuse!r}")
        if (not isinstance(weights, list) or len(weights) != len(fuse)
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in weights)):
            raise ConfigError(f"{label}: weights needs one positive number per fused row, got {weights!r}")
        if "stream" in table or "checkpoint" in table:
            raise ConfigError(f"{label}: a fused row has no stream or checkpoint of its own")
        return Row(table["id"], table["label"], table["paper"], table["domain"], fuse=tuple(fuse),
                   weights=tuple(float(w) for w in weights))
    if "weights" in table:
        raise ConfigError(f"{label}: weights belong to a fused row (fuse = [...])")
    checkpoint = table.get("checkpoint", "best")
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"{label}: checkpoint must be best or last, got {checkpoint!r}")
    stream = table.get("stream")
    if stream is not None and (not isinstance(stream, str) or not stream):
        raise ConfigError(f"{label}: stream names one output of the model's forward_streams, got {stream!r}")
    return Row(table["id"], table["label"], table["paper"], table["domain"], stage=table["stage"], stream=stream,
               checkpoint=checkpoint)


def _ordered(stages: list[Stage], where: str) -> list[Stage]:
    """``stages`` with every stage after those it needs (the plan's order otherwise kept)."""
    done: list[Stage] = []
    names = set()
    pending = list(stages)
    while pending:
        ready = [s for s in pending if all(n in names for n in s.needs)]
        if not ready:
            raise ConfigError(f"{where}: the stages {', '.join(s.name for s in pending)} need each other in a cycle")
        done.append(ready[0])
        names.add(ready[0].name)
        pending.remove(ready[0])
    return done
