"""Fuzzing edgekit: seed inputs, deterministic mutators, and a runner that reads each input in a child.

Shared by ``benchmarks/fuzz.py`` (long runs) and ``tests/test_fuzz.py`` (the bounded CI run).

Seeds (:func:`make_seeds`) are real clips encoded with PyAV at small sizes (MPEG-4 Part 2 in .mp4 and
raw .m4v, H.264 in .mp4 and raw Annex-B .h264 with and without B-frames, an .mkv) and real packages
(a tiny fp32 package built here with ``edgekit.package.write_package``, and the bundled default).

Inputs (:func:`make_input`) are a pure function of ``(run_seed, index)``: the same pair always gives
the same bytes, mode and mutators, whatever the worker count, so any finding can be regenerated.
Video mutators: bit flips, interesting values, truncation, zeroed ranges, duplicated/deleted chunks,
splices of two seeds, and on raw streams whole units (NAL units, VOPs): another size's parameter
sets inserted mid-stream, another-size stream appended, units dropped/duplicated/swapped; MP4 box
sizes and fields. Package mutators: the byte mutators, zip header fields (sizes, CRC, method, name,
lengths, offsets), manifest JSON (type changes, missing/extra keys, deep nesting, huge and special
numbers, huge values, versions, renamed labels) with the integrity record left stale or "resealed"
(recomputed, as anyone can for an unsigned package), members (extra, duplicate, missing, traversal,
other compression), a mutated or external-data ONNX, zip bombs, a format-1 downgrade.
:func:`crafted_inputs` adds hand-made cases (size changes, cut files, stalling producers, bombs, odd
zip headers) that every run executes first.

Modes (what the child does with one input):

    file-mv           edgekit.open(path, residual=False, rgb=None), read to the end
    file-residual     edgekit.open(path) (per-frame residual + I-frame RGB), read to the end
    file-accumulated  edgekit.open(path, accumulate=True), read to the end
    chunks            edgekit.open(iterator of random-sized chunks, timeout_s=2), read to the end;
                      a few inputs stall before the first chunk, stall mid-stream or yield empty
                      chunks forever (a timeout must fire)
    package           edgekit.package.load_package(path), then the backend run on zeros

Classes (:data:`CLASSES`) of one run:

    clean    read to the end / loaded and ran
    typed    an edgekit.errors.EdgekitError subclass was raised
    untyped  any other exception (type, message and a short traceback tail are kept)
    crash    the child died: a signal (negative exit code), an AddressSanitizer report, any exit
    hang     the child did not answer within the wall limit; it is killed and restarted

:class:`Runner` keeps one long-lived child process per worker (a crash or hang is observed, not
suffered, and the import cost is paid once per child, not per input); the child reports its own
peak RSS for each input (VmHWM, reset before each input through /proc/self/clear_refs).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from _env import high_water_rss_mib, reset_peak_rss  # benchmarks/ is on sys.path wherever this runs

MODES = ("file-mv", "file-residual", "file-accumulated", "chunks", "package")
CLASSES = ("clean", "typed", "untyped", "crash", "hang")
SELF_TESTS = ("selftest-crash", "selftest-sanitizer-report", "selftest-hang")  # the runner's own checks
FILE_OPTIONS = {  # keyword arguments of edgekit.open per file mode
    "file-mv": {"residual": False, "rgb": None},
    "file-residual": {},
    "file-accumulated": {"accumulate": True},
}
CHUNK_TIMEOUT_S = 2.0
CHUNK_BEHAVIOURS = ("plain", "stall-first", "stall-mid", "empty-forever")
STALL_EVERY = 100  # one chunk input in this many gets a stalling producer (stall-first, -mid, empty-forever)
STALL_S = 60.0  # a stalling chunk iterator waits this long (far past any wall limit), then ends
RSS_LIMIT_MIB = 300.0  # the target: peak memory per input
# inflated sizes of the zip-bomb members: an honest one (manifest and headers say so) small enough that
# one copy stays under RSS_LIMIT_MIB with the child's ~100 MiB, so only extra copies exceed it; a
# lying one (headers say the real model's size) that would take the machine if inflated whole
BOMB_MIB = 128
LYING_BOMB_MIB = 1024
MIB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------- seeds


@dataclass(frozen=True)
class Seed:
    """One valid input. ``kind`` is "video" or "package"; ``codec`` ("mpeg4"/"h264") and
    ``elementary`` (a raw stream, not a container) describe videos; ``suffix`` is the file name
    extension the input is written with."""

    name: str
    kind: str
    data: bytes
    suffix: str
    codec: str | None = None
    elementary: bool = False
    size: tuple[int, int] | None = None


# name -> (codec, container suffix, (width, height), bframes, frames, gop)
VIDEO_SEEDS = {
    "mpeg4-96x64.mp4": ("mpeg4", ".mp4", (96, 64), 0, 16, 6),
    "mpeg4-64x48-b1.m4v": ("mpeg4", ".m4v", (64, 48), 1, 14, 6),
    "mpeg4-128x96.m4v": ("mpeg4", ".m4v", (128, 96), 0, 10, 5),
    "h264-96x64-b2.mp4": ("h264", ".mp4", (96, 64), 2, 16, 6),
    "h264-64x48.h264": ("h264", ".h264", (64, 48), 0, 14, 6),
    "h264-112x80-b2.h264": ("h264", ".h264", (112, 80), 2, 14, 6),
    "mpeg4-80x64.mkv": ("mpeg4", ".mkv", (80, 64), 0, 12, 6),
}
PACKAGE_SEEDS = ("tiny.edgepkg", "default.edgepkg")
_SEED_VERSION = 1  # bump when the seeds change, so cached ones are rebuilt


def make_seeds(workdir: str | os.PathLike) -> list[Seed]:
    """Encode the video seeds and build the package seeds in ``workdir`` (cached there by a key
    of their settings and the PyAV version, so a second run re-uses them)."""
    import av

    workdir = Path(workdir)
    key = hashlib.sha256(json.dumps([VIDEO_SEEDS, _SEED_VERSION, av.__version__]).encode()).hexdigest()[:10]
    folder = workdir / f"seeds-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for name, (codec, suffix, size, bframes, frames, gop) in VIDEO_SEEDS.items():
        path = folder / name
        if not path.exists():
            _encode_video(path, codec, size, bframes, frames, gop)
        seeds.append(Seed(name, "video", path.read_bytes(), suffix, codec, suffix in (".m4v", ".h264"), size))
    tiny = folder / "tiny.edgepkg"
    try:
        _build_tiny_package(tiny)  # every run: written in the package format of the edgekit under test
        seeds.append(Seed("tiny.edgepkg", "package", tiny.read_bytes(), ".edgepkg"))
    except ImportError:  # the onnx package (edgekit[train]) is not installed: the default package only
        pass
    default = REPO / "edgekit" / "assets" / "default.edgepkg"
    seeds.append(Seed("default.edgepkg", "package", default.read_bytes(), ".edgepkg"))
    return seeds


def _encode_video(path: Path, codec: str, size, bframes: int, frames: int, gop: int) -> None:
    from edgekit.synthetic import make_clip

    motion = (3, -2) if codec == "mpeg4" else (-2, 1)
    make_clip(path, motion, codec=codec, size=size, frames=frames, gop=gop, bframes=bframes,
              square=min(size) // 2, pan=(1, 0), seed=len(path.name))


def _tiny_onnx(location: str | None = None) -> bytes:
    """A valid fp32 ONNX: mv_residual (1, 1, 5, 8, 8) -> Flatten -> MatMul -> Add -> logits (1, 4).
    With ``location``, the weight is stored as ONNX external data at that path (outside the package)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((320, 4)).astype(np.float32), "W")
    if location is not None:
        raw = weight.raw_data
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
            entry = weight.external_data.add()
            entry.key, entry.value = k, v
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["mv_residual"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "W"], ["mm"]),
         helper.make_node("Add", ["mm", "B"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("mv_residual", TensorProto.FLOAT, [1, 1, 5, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], initializer=[weight, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _build_tiny_package(path: Path) -> None:
    from edgekit.package import write_package
    from edgekit.spec import InputSpec

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp)
        meta = {"model": "fuzz-tiny", "labels": ["a", "b", "c", "d"],
                "inputs": [InputSpec("mv_residual", "mv_residual", (1, 1, 5, 8, 8)).to_dict()],
                "outputs": ["logits"], "preprocessing": {"window_frames": 8, "stride_frames": 4},
                "fusion": {"softmax": True}}
        (model_dir / "model.json").write_text(json.dumps(meta))
        (model_dir / "fp32.onnx").write_bytes(_tiny_onnx())
        write_package(model_dir, path, precision="fp32")


# ----------------------------------------------------------------------------- byte-level mutators

INTERESTING_8 = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x40)
INTERESTING_16 = (0x0000, 0x0001, 0x7FFF, 0x8000, 0xFFFF, 0x0100, 0x1000)
INTERESTING_32 = (0x00000000, 0x00000001, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x0000FFFF, 0x00010000,
                  0x40000000, 0xFFFFFFFE)


def _interesting(rng: random.Random, width: int, old: int = 0) -> int:
    bits = 8 * width
    table = {1: INTERESTING_8, 2: INTERESTING_16, 4: INTERESTING_32}[width]
    pick = rng.random()
    if pick < 0.6:
        return rng.choice(table)
    if pick < 0.8:
        return (old + rng.choice((-1, 1, -2, 2, 16, -16))) % (1 << bits)
    return rng.getrandbits(bits)


def bit_flip(rng, data: bytes, seeds) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8, 32))):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def interesting_bytes(rng, data: bytes, seeds) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 2, 4, 8))):
        width = rng.choice((1, 1, 2, 4))
        if len(out) < width:
            break
        i = rng.randrange(len(out) - width + 1)
        old = int.from_bytes(out[i:i + width], "big")
        out[i:i + width] = _interesting(rng, width, old).to_bytes(width, "big")
    return bytes(out)


def truncate(rng, data: bytes, seeds) -> bytes:
    if rng.random() < 0.3:  # inside the headers
        return data[:rng.randrange(1, min(len(data), 512) + 1)]
    return data[:rng.randrange(1, len(data) + 1)]


def zero_range(rng, data: bytes, seeds) -> bytes:
    n = min(len(data), rng.choice((4, 16, 64, 512, 4096)))
    i = rng.randrange(len(data) - n + 1)
    fill = rng.choice((b"\x00", b"\xff"))
    return data[:i] + fill * n + data[i + n:]


def duplicate_chunk(rng, data: bytes, seeds) -> bytes:
    n = min(len(data), rng.choice((8, 64, 512, 4096, 16384)))
    i = rng.randrange(len(data) - n + 1)
    j = rng.randrange(len(data) + 1)
    return data[:j] + data[i:i + n] + data[j:]


def delete_chunk(rng, data: bytes, seeds) -> bytes:
    n = min(len(data) - 1, rng.choice((1, 8, 64, 512, 4096)))
    i = rng.randrange(len(data) - n + 1)
    return data[:i] + data[i + n:]


def splice_seeds(rng, data: bytes, seeds) -> bytes:
    """A prefix of this input and a suffix of another seed of the same kind."""
    other = rng.choice(seeds).data
    return data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other)):]


BYTE_MUTATORS: dict[str, Callable] = {
    "bit-flip": bit_flip, "interesting-bytes": interesting_bytes, "truncate": truncate,
    "zero-range": zero_range, "duplicate-chunk": duplicate_chunk, "delete-chunk": delete_chunk,
    "splice": splice_seeds,
}


# ------------------------------------------------------------------- elementary-stream units (NAL/VOP)

_START = re.compile(b"\x00\x00\x01")


def stream_units(data: bytes) -> list[bytes]:
    """The stream cut at every 00 00 01 start code (each unit begins with its start code; bytes
    before the first one form a unit of their own)."""
    starts = [m.start() for m in _START.finditer(data)]
    if not starts:
        return [data]
    cuts = ([0] if starts[0] else []) + starts + [len(data)]
    return [data[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def is_header_unit(unit: bytes, codec: str) -> bool:
    """An H.264 SPS/PPS, or an MPEG-4 VOS / VO / VOL header: what announces the picture size."""
    if len(unit) < 4 or unit[:3] != b"\x00\x00\x01":
        return False
    code = unit[3]
    if codec == "h264":
        return code & 0x1F in (7, 8)
    return code in (0xB0, 0xB5) or code <= 0x2F


def _same_codec_elementary(seeds, codec, exclude: bytes) -> list:
    return [s for s in seeds if s.kind == "video" and s.elementary and s.codec == codec and s.data != exclude]


def insert_headers(rng, data: bytes, seeds, codec: str) -> bytes:
    """Parameter sets (SPS/PPS, VOL) of another-size stream inserted at a unit boundary: a size
    change mid-stream, with the rest of the stream still coded for the first size."""
    donors = _same_codec_elementary(seeds, codec, data)
    units = stream_units(data)
    if not donors or len(units) < 2:
        return data
    donor_headers = [u for u in stream_units(rng.choice(donors).data) if is_header_unit(u, codec)]
    at = rng.randrange(1, len(units))
    return b"".join(units[:at] + donor_headers + units[at:])


def concat_other_size(rng, data: bytes, seeds, codec: str) -> bytes:
    """The first units of this stream, then a whole stream of another size (headers and all)."""
    donors = _same_codec_elementary(seeds, codec, data)
    units = stream_units(data)
    if not donors:
        return data
    at = rng.randrange(1, len(units) + 1)
    return b"".join(units[:at]) + rng.choice(donors).data


def unit_edit(rng, data: bytes, seeds, codec: str) -> bytes:
    """Drop, duplicate or swap whole units (a lost, repeated or reordered picture or header)."""
    units = stream_units(data)
    if len(units) < 3:
        return data
    i, j = rng.randrange(len(units)), rng.randrange(len(units))
    op = rng.choice(("drop", "duplicate", "swap"))
    if op == "drop":
        del units[i]
    elif op == "duplicate":
        units.insert(j, units[i])
    else:
        units[i], units[j] = units[j], units[i]
    return b"".join(units)


UNIT_MUTATORS = {"insert-headers": insert_headers, "concat-other-size": concat_other_size, "unit-edit": unit_edit}

# ISO-BMFF boxes whose size or counts matter to the demuxer
_BOXES = (b"ftyp", b"moov", b"mvhd", b"trak", b"tkhd", b"mdia", b"mdhd", b"hdlr", b"minf", b"stbl", b"stsd",
          b"stts", b"stss", b"stsc", b"stsz", b"stco", b"ctts", b"avc1", b"avcC", b"mp4v", b"esds", b"mdat",
          b"edts", b"elst")


def mp4_box_field(rng, data: bytes, seeds) -> bytes:
    """Corrupt a box's size, or a 2/4-byte field among its first 40 bytes (entry counts, width,
    height, sample sizes)."""
    positions = [m.start() - 4 for m in re.finditer(b"|".join(_BOXES), data) if m.start() >= 4]
    if not positions:
        return interesting_bytes(rng, data, seeds)
    at = rng.choice(positions)
    out = bytearray(data)
    if rng.random() < 0.4:
        old = int.from_bytes(out[at:at + 4], "big")
        out[at:at + 4] = _interesting(rng, 4, old).to_bytes(4, "big")
    else:
        width = rng.choice((2, 4))
        i = min(at + 8 + rng.randrange(0, 40, width), len(out) - width)
        old = int.from_bytes(out[i:i + width], "big")
        out[i:i + width] = _interesting(rng, width, old).to_bytes(width, "big")
    return bytes(out)


def mutate_video(rng: random.Random, seed: Seed, seeds: list[Seed]) -> tuple[bytes, list[str]]:
    """1-3 stacked mutations of a video seed; returns (bytes, mutator names)."""
    data, names = seed.data, []
    videos = [s for s in seeds if s.kind == "video"]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        choices = list(BYTE_MUTATORS)
        if seed.elementary:
            choices += list(UNIT_MUTATORS) * 2
        if seed.suffix == ".mp4":
            choices += ["mp4-box-field"] * 2
        name = rng.choice(choices)
        if name in UNIT_MUTATORS:
            data = UNIT_MUTATORS[name](rng, data, videos, seed.codec)
        elif name == "mp4-box-field":
            data = mp4_box_field(rng, data, videos)
        elif name == "splice":
            data = splice_seeds(rng, data, videos)
        else:
            data = BYTE_MUTATORS[name](rng, data, videos)
        names.append(name)
        if not data:
            data = b"\x00"
    return data, names


# ------------------------------------------------------------------------------- package mutators


def zip_members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info, archive.read(info.filename)) for info in archive.infolist()]


def write_zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip as ``edgekit.package`` writes one (fixed timestamps), in memory."""
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are a mutation here, on purpose
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, content in members:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                info.external_attr = 0o644 << 16
                archive.writestr(info, content)
    return buffer.getvalue()


def _record(content: bytes) -> dict:
    return {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}


# (offset, width) of each field of the three zip records
_ZIP_FIELDS = {
    b"PK\x03\x04": {"version": (4, 2), "flags": (6, 2), "method": (8, 2), "crc": (14, 4), "compressed_size": (18, 4),
                    "size": (22, 4), "name_length": (26, 2), "extra_length": (28, 2), "name": (30, 0)},
    b"PK\x01\x02": {"version": (6, 2), "flags": (8, 2), "method": (10, 2), "crc": (16, 4), "compressed_size": (20, 4),
                    "size": (24, 4), "name_length": (28, 2), "extra_length": (30, 2), "comment_length": (32, 2),
                    "disk": (34, 2), "offset": (42, 4), "name": (46, 0)},
    b"PK\x05\x06": {"disk": (4, 2), "entries_on_disk": (8, 2), "entries": (10, 2), "directory_size": (12, 4),
                    "directory_offset": (16, 4), "comment_length": (20, 2)},
}
_METHODS = (0, 1, 6, 8, 9, 12, 14, 93, 95, 98, 99, 0xFFFF)


def zip_header_field(rng, data: bytes, seeds) -> tuple[bytes, str]:
    """Corrupt one field of a local header, a central-directory entry or the end record:
    sizes, CRC, method, name, lengths, offsets. Returns (bytes, "zip-<field>")."""
    records = [(m.start(), m.group()) for m in re.finditer(b"PK\x03\x04|PK\x01\x02|PK\x05\x06", data)]
    if not records:
        return interesting_bytes(rng, data, seeds), "interesting-bytes"
    at, signature = rng.choice(records)
    name, (offset, width) = rng.choice(sorted(_ZIP_FIELDS[signature].items()))
    out = bytearray(data)
    i = at + offset
    if name == "name":
        length_at = at + (26 if signature == b"PK\x03\x04" else 28)
        length = int.from_bytes(out[length_at:length_at + 2], "little")
        new = rng.choice((b"../" * 4 + b"evil", b"/etc/passwd", b"manifest.jso\x00", b"MODEL.ONNX", b"model.onnx",
                          b"manifest.json", b"\xff\xfe"))[:length].ljust(length, b"_")
        out[i:i + length] = new
    elif name == "method":
        out[i:i + 2] = rng.choice(_METHODS).to_bytes(2, "little")
    elif i + width <= len(out):
        old = int.from_bytes(out[i:i + width], "little")
        out[i:i + width] = _interesting(rng, width, old).to_bytes(width, "little")
    return bytes(out), f"zip-{name}"


def _json_paths(value, path=()) -> list[tuple]:
    paths = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            paths += _json_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            paths += _json_paths(v, path + (i,))
    return paths


_PLACEHOLDER = "\u0000fuzz-placeholder\u0000"
_REPLACEMENTS = (None, True, False, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, "\u0000", "../../etc/passwd")
_RAW_VALUES = ("1" + "0" * 400, "-" + "9" * 5000, "1e400", "-1e400", "NaN", "Infinity", "9223372036854775808",
               "-9223372036854775809", "1e-400", "0.0000000000000000000001")


def mutate_manifest(rng, manifest: dict) -> tuple[bytes, str]:
    """A mutated manifest.json as bytes, and what was done: a type change, a missing or extra key,
    deep nesting, a huge or special number, a huge value, another format version, renamed labels.
    Never the same document (a type change can pick the value already there: drawn again)."""
    for _ in range(20):
        text, name = _mutate_manifest_once(rng, manifest)
        try:
            if json.loads(text) != manifest:
                return text, name
        except (ValueError, RecursionError):  # no longer JSON: changed for sure
            return text, name
    return text, name


def _mutate_manifest_once(rng, manifest: dict) -> tuple[bytes, str]:
    import copy

    doc = copy.deepcopy(manifest)
    paths = [p for p in _json_paths(doc) if p]
    path = rng.choice(paths)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    raw = None
    op = rng.choice(("type", "type", "missing", "extra", "nest", "number", "number", "huge", "version", "labels"))
    if op == "type":
        parent[last] = rng.choice(_REPLACEMENTS)
    elif op == "missing":
        del parent[last]
    elif op == "extra":
        target = parent if isinstance(parent, dict) else doc
        target[rng.choice(("unexpected", "__proto__", "format_version ", ""))] = rng.choice(_REPLACEMENTS)
    elif op == "nest":
        depth = rng.choice((64, 1000, 100_000))
        raw = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
    elif op == "number":
        raw = rng.choice(_RAW_VALUES)
    elif op == "huge":
        parent[last] = rng.choice(("x" * 1_000_000, ["label"] * 100_000, list(range(100_000))))
    elif op == "version":
        doc["format_version"] = rng.choice([v for v in (0, 1, 2, 3, 999, -1, "1", 1.0, True, None, 2**64)
                                            if v != doc.get("format_version") or type(v) is not int])
    else:  # labels renamed (a semantic change that keeps the JSON valid)
        doc["labels"] = [f"ATTACKER_{label}" for label in doc.get("labels", [])] or ["x"]
    if raw is not None:
        parent[last] = _PLACEHOLDER
        text = json.dumps(doc, indent=1).replace(json.dumps(_PLACEHOLDER), raw, 1)
    else:
        text = json.dumps(doc, indent=1)
    return text.encode("utf-8", "surrogatepass"), f"manifest-{op}"


INTEGRITY = "integrity.json"  # format-2 packages: SHA-256 + size of the manifest and every member
_SEALS = (INTEGRITY, "integrity.sig")


class PackageParts:
    """A package seed taken apart, put back together after a mutation. ``resealed=True`` recomputes
    what an unsigned package's checksums say (the manifest's member records and integrity.json), as
    anyone holding the file can: such an input gets past the checksums to the layers behind them
    (manifest validation, ONNX parsing, budgets); a stale seal must be refused."""

    def __init__(self, data: bytes):
        self.members = [(info.filename, content) for info, content in zip_members(data)]
        self.contents = dict(self.members)
        self.manifest = json.loads(self.contents["manifest.json"])
        self.model = self.contents["model.onnx"]
        self.integrity = json.loads(self.contents[INTEGRITY]) if INTEGRITY in self.contents else None

    def build(self, manifest=None, model: bytes | None = None, *, resealed: bool = False, records=None,
              extra=(), method: int = zipfile.ZIP_DEFLATED, raw_model: tuple | None = None) -> bytes:
        """The package with ``manifest`` (a dict, or bytes taken as they are) and ``model`` replaced.
        ``records`` overrides member records ({name: {"sha256", "bytes"}}, for a model given as an
        already-deflated ``raw_model`` = (stream, crc, size)); ``extra`` adds (name, bytes) members."""
        manifest = self.manifest if manifest is None else manifest
        model = self.model if model is None else model
        records = {"model.onnx": _record(model), **(records or {})}
        if resealed and isinstance(manifest, dict) and isinstance(manifest.get("members"), dict):
            manifest = {**manifest, "members": {**manifest["members"], **records}}
        manifest_bytes = manifest if isinstance(manifest, bytes) else json.dumps(manifest, indent=1).encode()
        out = []
        for name, content in self.members:
            if name == "manifest.json":
                content = manifest_bytes
            elif name == "model.onnx":
                content = model
            elif name == INTEGRITY and resealed:
                listed = {n: records.get(n) or _record(c) for n, c in self.members
                          if n not in _SEALS and n != "manifest.json"}
                listed.update({n: _record(c) for n, c in extra})
                doc = {**self.integrity, "manifest": _record(manifest_bytes), "members": listed}
                content = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            out.append((name, content))
        out += list(extra)
        if raw_model is None:
            return write_zip(out, method)
        stream, crc, size = raw_model
        return _raw_zip([(n, c, None) if n != "model.onnx" else (n, stream, (crc, size)) for n, c in out])


def mutate_package(rng: random.Random, seed: Seed, seeds: list[Seed], workdir: Path) -> tuple[bytes, list[str]]:
    """One structural or byte-level mutation of a package; returns (bytes, mutator names). Names
    ending in "+resealed" had their checksums recomputed after the change."""
    parts = PackageParts(seed.data)
    manifest, model = parts.manifest, parts.model
    op = rng.choices(("bytes", "zip-field", "manifest", "members", "onnx-bytes", "onnx-external-data", "zip-bomb",
                      "zip-bomb-declared-small", "downgrade"), weights=(22, 22, 30, 8, 6, 4, 2, 2, 4))[0]
    if op == "bytes":
        name = rng.choice(("bit-flip", "interesting-bytes", "truncate", "zero-range", "duplicate-chunk",
                           "delete-chunk"))
        return BYTE_MUTATORS[name](rng, seed.data, seeds), [name]
    if op == "zip-field":
        data, name = zip_header_field(rng, seed.data, seeds)
        return data, [name]
    if op == "manifest":  # half with the stale seal (must be refused), half resealed (validation behind it)
        resealed = rng.random() < 0.5
        text, name = mutate_manifest(rng, manifest)
        if resealed:
            try:  # still a JSON object: reseal its member records too
                doc = json.loads(text)
                text = doc if isinstance(doc, dict) else text
            except (ValueError, RecursionError):
                pass
        return parts.build(text, resealed=resealed), [name + ("+resealed" if resealed else "")]
    if op == "downgrade":  # a format-1 package made from a format-2 one: no integrity record, labels changed
        doc = {**manifest, "format_version": 1, "labels": [f"ATTACKER_{x}" for x in manifest["labels"]],
               "members": {"model.onnx": _record(model)}}
        return write_zip([("manifest.json", json.dumps(doc).encode()), ("model.onnx", model)]), ["downgrade-format-1"]
    if op == "members":
        kind = rng.choice(("extra", "duplicate", "missing-model", "traversal", "stored", "bzip2", "lzma",
                           "manifest-last"))
        if kind == "extra":
            return parts.build(extra=[("payload.bin", b"\x00" * 64)]), ["members-extra"]
        if kind == "duplicate":
            return parts.build(extra=[("model.onnx", model[: len(model) // 2])]), ["members-duplicate"]
        if kind == "missing-model":
            return write_zip([(n, c) for n, c in parts.members if n != "model.onnx"]), ["members-missing-model"]
        if kind == "traversal":
            doc = {**manifest, "members": {**manifest.get("members", {}), "../../evil.onnx": _record(model)}}
            return parts.build(doc, resealed=True, extra=[("../../evil.onnx", model)]), \
                ["members-traversal+resealed"]
        if kind == "manifest-last":
            return write_zip([(n, c) for n, c in parts.members if n != "manifest.json"]
                             + [("manifest.json", parts.contents["manifest.json"])]), ["members-manifest-last"]
        method = {"stored": zipfile.ZIP_STORED, "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}[kind]
        return parts.build(method=method), [f"members-{kind}"]
    if op == "onnx-external-data" and importlib.util.find_spec("onnx") is not None:  # finding 3 of issue 11
        outside = workdir / "outside-weights.bin"
        if not outside.exists():
            import numpy as np

            outside.write_bytes(np.random.default_rng(0).standard_normal((320, 4)).astype(np.float32).tobytes())
        crafted = _tiny_onnx(location=rng.choice(("../outside-weights.bin", str(outside))))
        return parts.build(model=crafted, resealed=True), ["onnx-external-data+resealed"]
    if op in ("onnx-bytes", "onnx-external-data"):  # the model mutated (also without onnx installed),
        # its checksums recomputed to match
        name = rng.choice(("bit-flip", "interesting-bytes", "truncate", "zero-range", "duplicate-chunk"))
        return parts.build(model=BYTE_MUTATORS[name](rng, model, seeds), resealed=True), ["onnx-bytes+resealed", name]
    if op == "zip-bomb":  # honest: checksums, manifest and headers all declare the inflated size
        stream, sha256, crc = _zeros_bomb(BOMB_MIB)
        record = {"sha256": sha256, "bytes": BOMB_MIB * MIB}
        return parts.build(resealed=True, records={"model.onnx": record},
                           raw_model=(stream, crc, BOMB_MIB * MIB)), ["zip-bomb+resealed"]
    # lying: headers and checksums say the real model's size and CRC; the stream inflates far beyond
    stream, _, _ = _zeros_bomb(LYING_BOMB_MIB)
    return parts.build(raw_model=(stream, zlib.crc32(model), len(model))), ["zip-bomb-declared-small"]


@functools.lru_cache(maxsize=2)
def _zeros_bomb(mib: int) -> tuple[bytes, str, int]:
    """(raw deflate stream, SHA-256 hex, CRC-32) of ``mib`` MiB of zeros (about 1/1000 of that deflated)."""
    packer, digest, crc = zlib.compressobj(9, zlib.DEFLATED, -15), hashlib.sha256(), 0
    chunk, parts = b"\x00" * MIB, []
    for _ in range(mib):
        parts.append(packer.compress(chunk))
        digest.update(chunk)
        crc = zlib.crc32(chunk, crc)
    return b"".join(parts) + packer.flush(), digest.hexdigest(), crc


def _raw_zip(members: list[tuple[str, bytes, tuple[int, int] | None]]) -> bytes:
    """A zip written by hand. ``(name, content, None)`` deflates content honestly; ``(name,
    deflated, (crc, size))`` stores an already-deflated stream with the given CRC and size."""
    local, central = bytearray(), bytearray()
    for name, content, declared in members:
        if declared is None:
            packer = zlib.compressobj(9, zlib.DEFLATED, -15)
            stream = packer.compress(content) + packer.flush()
            crc, size = zlib.crc32(content), len(content)
        else:
            stream, (crc, size) = content, declared
        raw_name = name.encode()
        offset = len(local)
        size32 = min(size, 0xFFFFFFFF)
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(stream), size32,
                             len(raw_name), 0) + raw_name + stream
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(stream),
                               size32, len(raw_name), 0, 0, 0, 0, 0o644 << 16, offset) + raw_name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(local), 0)
    return bytes(local + central + end)


# --------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class FuzzInput:
    """One input: which seed, what was done to it, how the child reads it. ``chunk_seed`` and
    ``chunk_behaviour`` say how the chunks mode cuts and delivers the bytes."""

    index: int
    mode: str
    seed: str
    mutators: tuple[str, ...]
    data: bytes = field(repr=False)
    suffix: str
    chunk_seed: int = 0
    chunk_behaviour: str = "plain"
    run_seed: int = 0

    def job(self, path: Path) -> dict:
        """What the child is told (the bytes travel as a file at ``path``)."""
        return {"mode": self.mode, "path": str(path), "chunk_seed": self.chunk_seed,
                "chunk_behaviour": self.chunk_behaviour}


def make_input(run_seed: int, index: int, modes: tuple[str, ...], seeds: list[Seed], workdir: Path) -> FuzzInput:
    """Input ``index`` of run ``run_seed``: mode ``modes[index % len(modes)]``, a seed suited to it,
    and 1-3 mutations (none for about 2 %, so the seeds themselves are checked too)."""
    rng = random.Random(f"edgekit-fuzz:{run_seed}:{index}")
    mode = modes[index % len(modes)]
    if mode == "package":
        pool = [s for s in seeds if s.kind == "package"]
        seed = pool[0] if rng.random() < 0.85 or len(pool) == 1 else rng.choice(pool[1:])
    else:
        pool = [s for s in seeds if s.kind == "video"]
        if mode == "chunks" and rng.random() < 0.9:
            pool = [s for s in pool if s.elementary]
        seed = rng.choice(pool)
    chunk_seed = rng.getrandbits(32)
    behaviour = "plain"
    turn = index // len(modes)  # this input's place among the inputs of its mode
    if mode == "chunks" and turn % STALL_EVERY == STALL_EVERY // 3:  # a stalling producer, in turn
        behaviour = CHUNK_BEHAVIOURS[1 + (turn // STALL_EVERY) % (len(CHUNK_BEHAVIOURS) - 1)]
    if rng.random() < 0.02:
        data, mutators = seed.data, []
    elif mode == "package":
        data, mutators = mutate_package(rng, seed, seeds, workdir)
    else:
        data, mutators = mutate_video(rng, seed, seeds)
    return FuzzInput(index, mode, seed.name, tuple(mutators), data, seed.suffix, chunk_seed, behaviour, run_seed)


def _set_zip_field(data: bytes, signature: bytes, offset: int, width: int, value: int) -> bytes:
    """``value`` written into one field of every record with ``signature`` (little-endian)."""
    out = bytearray(data)
    for m in re.finditer(re.escape(signature), data):
        out[m.start() + offset:m.start() + offset + width] = value.to_bytes(width, "little")
    return bytes(out)


def crafted_inputs(seeds: list[Seed], workdir: Path) -> list[FuzzInput]:
    """Hand-made inputs run before the random ones, every run: the cases issue 11 and this fuzzer
    found (size changes mid-stream both ways and in both codecs, cut MP4s, stalling producers, zip
    bombs, a zip "version needed" past what zipfile reads, a format-1 downgrade), so a regression
    shows in a bounded run whatever the random inputs hit. Indices are negative: -1, -2, ..."""
    by_name = {s.name: s for s in seeds}
    h264_small, h264_large = by_name["h264-64x48.h264"], by_name["h264-112x80-b2.h264"]
    m4v_small, m4v_large = by_name["mpeg4-64x48-b1.m4v"], by_name["mpeg4-128x96.m4v"]
    mp4 = by_name["mpeg4-96x64.mp4"]
    tiny = by_name.get("tiny.edgepkg") or by_name["default.edgepkg"]
    rng = random.Random("edgekit-fuzz:crafted")
    videos = {
        "size-change-h264-grow": (h264_small.data + h264_large.data, ".h264"),
        "size-change-h264-shrink": (h264_large.data + h264_small.data, ".h264"),
        "size-change-mpeg4-grow": (m4v_small.data + m4v_large.data, ".m4v"),
        "size-change-mpeg4-shrink": (m4v_large.data + m4v_small.data, ".m4v"),
        "mp4-cut-in-half": (mp4.data[:len(mp4.data) // 2], ".mp4"),
        "mp4-header-only": (mp4.data[:40], ".mp4"),
        "zeros-64k": (b"\x00" * 65536, ".mp4"),
        "random-64k": (rng.randbytes(65536), ".h264"),
    }
    items = []
    for name, (data, suffix) in videos.items():
        modes = ["file-mv", "file-residual", "file-accumulated"] + (["chunks"] if suffix != ".mp4" else [])
        items += [(mode, name, data, suffix, "plain") for mode in modes]
    items += [("chunks", f"producer-{b}", h264_small.data, ".h264", b) for b in CHUNK_BEHAVIOURS[1:]]
    parts = PackageParts(tiny.data)
    stream, sha256, crc = _zeros_bomb(BOMB_MIB)
    central, local = b"PK\x01\x02", b"PK\x03\x04"
    renamed = {**parts.manifest, "labels": [f"ATTACKER_{x}" for x in parts.manifest["labels"]]}
    huge_int = json.dumps({**parts.manifest, "format_version": 0}).replace('"format_version": 0',
                                                                          '"format_version": ' + "9" * 5000)
    packages = {
        "zip-version-needed-19.0": _set_zip_field(tiny.data, central, 6, 2, 190),
        "zip-encrypted-flag": _set_zip_field(_set_zip_field(tiny.data, local, 6, 2, 1), central, 8, 2, 1),
        "zip-method-99": _set_zip_field(_set_zip_field(tiny.data, local, 8, 2, 99), central, 10, 2, 99),
        "zip-bomb-honest": parts.build(resealed=True, records={"model.onnx": {"sha256": sha256,
                                                                              "bytes": BOMB_MIB * MIB}},
                                       raw_model=(stream, crc, BOMB_MIB * MIB)),
        "zip-bomb-declared-small": parts.build(raw_model=(_zeros_bomb(LYING_BOMB_MIB)[0], zlib.crc32(parts.model),
                                                          len(parts.model))),
        "manifest-labels-stale-seal": parts.build(renamed),
        "manifest-deep-nesting-resealed": parts.build(b'{"labels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                                      resealed=True),
        "manifest-5000-digit-int-resealed": parts.build(huge_int.encode(), resealed=True),
        "downgrade-format-1": write_zip([("manifest.json", json.dumps({**renamed, "format_version": 1, "members": {
            "model.onnx": _record(parts.model)}}).encode()), ("model.onnx", parts.model)]),
    }
    items += [("package", name, data, ".edgepkg", "plain") for name, data in packages.items()]
    return [FuzzInput(-(k + 1), mode, f"crafted:{name}", (f"crafted:{name}",), data, suffix, 0, behaviour)
            for k, (mode, name, data, suffix, behaviour) in enumerate(items)]


# -------------------------------------------------------------------------- the child: one input


def chunk_iterator(data: bytes, chunk_seed: int, behaviour: str) -> Iterator[bytes]:
    """``data`` in random-sized chunks (mostly 1 B .. 64 KiB, a few empty); or a producer that
    stalls before its first chunk, stalls mid-stream, or yields empty chunks forever."""
    rng = random.Random(chunk_seed)
    if behaviour == "stall-first":
        threading.Event().wait(STALL_S)
        return
    if behaviour == "empty-forever":
        yield data[:16]
        deadline = time.monotonic() + STALL_S
        while time.monotonic() < deadline:
            yield b""
        return
    scale = rng.choice((16, 512, 4096, 65536))
    end = len(data) // 3 if behaviour == "stall-mid" else len(data)
    pos = 0
    while pos < end:
        size = 0 if rng.random() < 0.03 else rng.randint(1, scale)
        yield data[pos:min(pos + size, end)]
        pos += size
    if behaviour == "stall-mid":
        threading.Event().wait(STALL_S)


def run_one(job: dict) -> dict:
    """Run one job in this process and classify it: {"class": clean|typed|untyped, "type",
    "message", "traceback", "frames"}. Never raises for what the input does."""
    import traceback

    from edgekit.errors import EdgekitError

    result = {"class": "clean", "type": None, "message": None, "traceback": None, "frames": 0}
    try:
        result["frames"] = _execute(job)
    except EdgekitError as err:
        result.update({"class": "typed", "type": type(err).__name__, "message": str(err)[:400]})
    except Exception as err:  # noqa: BLE001 -- exactly what the fuzzer looks for
        tail = traceback.format_exception(type(err), err, err.__traceback__)
        result.update({"class": "untyped", "type": type(err).__name__, "message": str(err)[:400],
                       "traceback": "".join(tail[-3:])[-1500:]})
    return result


def _execute(job: dict) -> int:
    """Do what ``job["mode"]`` says with the input at ``job["path"]``; returns frames read (1 for a
    package that loaded and ran)."""
    import edgekit

    mode, path = job["mode"], job["path"]
    if mode in SELF_TESTS:  # the harness's own checks: a child that dies, reports or never answers
        if mode == "selftest-crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if mode == "selftest-sanitizer-report":
            os.write(2, b"==1==ERROR: AddressSanitizer: heap-buffer-overflow (a self-test, not a bug)\n")
            return 0
        time.sleep(3600)
    if mode == "package":
        import numpy as np

        from edgekit.package import load_package

        package = load_package(path)
        with package.backend(threads=1) as backend:
            backend.run({spec.name: np.zeros(spec.shape, spec.dtype) for spec in package.manifest.inputs})
        return 1
    if mode == "chunks":
        data = Path(path).read_bytes()
        reader = edgekit.open(chunk_iterator(data, job["chunk_seed"], job["chunk_behaviour"]),
                              timeout_s=CHUNK_TIMEOUT_S)
    else:
        reader = edgekit.open(path, **FILE_OPTIONS[mode])
    frames = 0
    with reader:
        for _ in reader:
            frames += 1
    return frames


def _rss_mib() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:
        return None


def child_main() -> None:
    """The long-lived child: one JSON job per line on stdin, one JSON result per line on the
    original stdout (the library's own prints go to stderr). Exits on EOF."""
    results = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    asan_extension = os.environ.get("EDGEKIT_FUZZ_EXTENSION")
    if asan_extension:  # the ASan-built kernels replace the installed ones before the reader imports them
        import importlib.util

        spec = importlib.util.spec_from_file_location("edgekit._kernels", asan_extension)
        module = importlib.util.module_from_spec(spec)
        sys.modules["edgekit._kernels"] = module
        spec.loader.exec_module(module)
    import av

    av.logging.set_level(None)  # FFmpeg's complaints about damaged input are expected here
    import edgekit.bitstream  # noqa: F401 -- imported once, before the first input is timed
    import edgekit.package  # noqa: F401
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)
    kernels = edgekit.bitstream.kernels()
    results.write(json.dumps({"ready": True, "native": getattr(kernels, "__file__", kernels.__name__)}) + "\n")
    for line in sys.stdin:
        job = json.loads(line)
        threads_before = threading.active_count()
        reset_peak_rss()
        baseline = _rss_mib()
        t0 = time.perf_counter()
        result = run_one(job)
        result["seconds"] = round(time.perf_counter() - t0, 4)
        result["peak_rss_mib"] = high_water_rss_mib()
        result["baseline_rss_mib"] = baseline
        deadline = time.monotonic() + 0.5  # a closed reader's thread may take a moment to end
        while threading.active_count() > threads_before and time.monotonic() < deadline:
            time.sleep(0.02)
        result["threads_left"] = max(threading.active_count() - threads_before, 0)
        results.write(json.dumps(result) + "\n")


# ------------------------------------------------------------------------- the parent: a runner


@dataclass
class Outcome:
    """What happened to one input."""

    index: int
    mode: str
    seed: str
    mutators: tuple[str, ...]
    chunk_behaviour: str
    cls: str
    type: str | None = None
    message: str | None = None
    traceback: str | None = None
    frames: int = 0
    seconds: float | None = None
    peak_rss_mib: float | None = None
    baseline_rss_mib: float | None = None
    threads_left: int = 0
    exit_code: int | None = None
    input_bytes: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def asan_environment(extension: str) -> dict:
    """Environment of a child that loads an AddressSanitizer-built ``_kernels`` extension: the
    ASan runtime preloaded (Python itself is not instrumented), leaks not reported, abort on the
    first error so the report ends the child with SIGABRT."""
    runtime = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return {"EDGEKIT_FUZZ_EXTENSION": str(Path(extension).resolve()), "LD_PRELOAD": runtime,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"}


class Child:
    """One long-lived child process that runs jobs one at a time, with a wall limit per job."""

    def __init__(self, workdir: Path, env: dict, memory_limit_mib: int | None):
        self.workdir = workdir
        self.env = env
        self.memory_limit_mib = memory_limit_mib
        self.process = None
        self.stderr_path = workdir / "stderr.log"
        self.restarts = 0
        self._buffer = b""
        self._stderr_seen = 0

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        stderr = open(self.stderr_path, "wb")
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
                "import _fuzzing; _fuzzing.child_main()")
        limit = self.memory_limit_mib

        def limits():
            os.setsid()
            if limit:
                import resource

                resource.setrlimit(resource.RLIMIT_AS, (limit * MIB, limit * MIB))

        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=stderr, cwd=self.workdir, env={**os.environ, **self.env},
                                        preexec_fn=limits)
        stderr.close()
        self._buffer = b""
        self._stderr_seen = 0
        ready = self._read_line(120.0)
        if not ready or not json.loads(ready).get("ready"):
            raise RuntimeError(f"the fuzz child did not start: {self.stderr_tail()}")
        self.native = json.loads(ready).get("native")

    def _read_line(self, timeout_s: float) -> bytes | None:
        """One line from the child's stdout; None on timeout, b"" when the child closed it (died)."""
        deadline = time.monotonic() + timeout_s
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _new_sanitizer_report(self) -> str | None:
        """Sanitizer lines the child wrote to stderr since the last call, or None."""
        try:
            size = os.path.getsize(self.stderr_path)
        except OSError:
            return None
        start, self._stderr_seen = self._stderr_seen, size
        if size <= start:
            return None
        with open(self.stderr_path, "rb") as f:
            f.seek(start)
            text = f.read(min(size - start, 1 << 20)).decode("utf-8", "replace")
        lines = [ln for ln in text.splitlines() if "AddressSanitizer" in ln or "runtime error:" in ln
                 or "SUMMARY:" in ln]
        return "\n".join(lines) or None

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.stderr_path) - limit))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: threads and all
            except ProcessLookupError:
                pass
        if self.process is not None:
            self.process.wait()
            self.process.stdin.close()
            self.process.stdout.close()
            self.process = None

    def run(self, job: dict, time_limit_s: float) -> dict:
        """The child's result for ``job``, or {"class": "crash"|"hang", ...} (the child then restarted
        on the next call)."""
        if self.process is None:
            self.start()
            self.restarts += 1
        try:
            self.process.stdin.write(json.dumps(job).encode() + b"\n")
            self.process.stdin.flush()
            line = self._read_line(time_limit_s)
        except BrokenPipeError:  # it died before reading the job
            line = b""
        if line:
            result = json.loads(line)
            report = self._new_sanitizer_report()
            if report:  # a sanitizer that reported and let the child go on (halt_on_error=0, UBSan)
                result.update({"class": "crash", "type": "AddressSanitizer" if "AddressSanitizer" in report
                               else "Sanitizer", "message": report.splitlines()[0][:300], "traceback": report[-1500:]})
            return result
        if line is None:  # still running past the limit
            self.kill()
            return {"class": "hang", "type": "Hang", "message": f"no answer within {time_limit_s:g} s; killed"}
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its stdout but lives on: as good as dead
            self.kill()
            code = -signal.SIGKILL
        tail = self.stderr_tail()
        self.kill()
        asan = "AddressSanitizer" in tail or "runtime error:" in tail
        if code < 0:
            kind = f"signal {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"signal {-code}"
        else:
            kind = f"exit code {code}"
        message = kind + (" with an AddressSanitizer report" if asan else "")
        summary = [ln for ln in tail.splitlines() if "ERROR: AddressSanitizer" in ln or "SUMMARY:" in ln
                   or "Fatal Python error" in ln]
        return {"class": "crash", "type": "AddressSanitizer" if asan else "Crash", "message": message,
                "traceback": ("\n".join(summary) or tail)[-1500:], "exit_code": code}


class Runner:
    """Runs inputs ``range(count)`` of a run on ``workers`` long-lived children (one thread each),
    and returns their :class:`Outcome` in index order. ``on_outcome`` is called (from a worker
    thread, under a lock) as each input finishes."""

    def __init__(self, *, seeds: list[Seed], workdir: Path, run_seed: int = 0, modes=MODES, workers: int = 2,
                 time_limit_s: float = 20.0, memory_limit_mib: int | None = 4096, asan_extension: str | None = None,
                 save_failures: Path | None = None, on_outcome: Callable | None = None):
        self.seeds, self.workdir, self.run_seed = seeds, Path(workdir), run_seed
        self.modes, self.workers, self.time_limit_s = tuple(modes), workers, time_limit_s
        self.env = asan_environment(asan_extension) if asan_extension else {}
        self.memory_limit_mib = None if asan_extension else memory_limit_mib  # ASan reserves terabytes of VM
        self.rss_limit_mib = None if asan_extension else RSS_LIMIT_MIB
        self.save_failures = Path(save_failures) if save_failures else None
        self.on_outcome = on_outcome
        self.restarts = 0
        self.native = None
        self._lock = threading.Lock()

    def run(self, count: int, crafted: list[FuzzInput] = ()) -> list[Outcome]:
        """Outcomes of the ``crafted`` inputs (see :func:`crafted_inputs`), then of inputs 0..count-1."""
        crafted = list(crafted)
        outcomes: list[Outcome | None] = [None] * (len(crafted) + count)
        next_index = iter(range(-len(crafted), count))
        errors = []
        stop = threading.Event()  # a broken harness (a child that cannot start) stops every worker

        def worker(k: int) -> None:
            child = Child(self.workdir / f"worker-{k}", self.env, self.memory_limit_mib)
            try:
                child.start()
                self.native = child.native
                while True:
                    with self._lock:
                        index = None if stop.is_set() else next(next_index, None)
                    if index is None:
                        return
                    item = (crafted[-index - 1] if index < 0 else
                            make_input(self.run_seed, index, self.modes, self.seeds, self.workdir))
                    path = child.workdir / f"input{item.suffix}"
                    path.write_bytes(item.data)
                    raw = child.run(item.job(path), self.time_limit_s)
                    outcome = Outcome(index=index, mode=item.mode, seed=item.seed, mutators=item.mutators,
                                      chunk_behaviour=item.chunk_behaviour, cls=raw["class"], type=raw.get("type"),
                                      message=raw.get("message"), traceback=raw.get("traceback"),
                                      frames=raw.get("frames", 0), seconds=raw.get("seconds"),
                                      peak_rss_mib=raw.get("peak_rss_mib"),
                                      baseline_rss_mib=raw.get("baseline_rss_mib"),
                                      threads_left=raw.get("threads_left", 0), exit_code=raw.get("exit_code"),
                                      input_bytes=len(item.data))
                    if self.save_failures is not None and is_failure(outcome, self.rss_limit_mib):
                        save_failure(self.save_failures, item, outcome)
                    with self._lock:
                        outcomes[index + len(crafted)] = outcome
                        if self.on_outcome is not None:
                            self.on_outcome(outcome)
            except BaseException as err:  # a broken harness must not pass for a clean run
                errors.append(err)
                stop.set()
            finally:
                with self._lock:
                    self.restarts += child.restarts
                child.kill()

        threads = [threading.Thread(target=worker, args=(k,), name=f"fuzz-worker-{k}") for k in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [o for o in outcomes if o is not None]


def is_failure(outcome: Outcome, rss_limit_mib: float | None = RSS_LIMIT_MIB) -> bool:
    """What the targets forbid: untyped, crash, hang, or a peak RSS at or over ``rss_limit_mib``
    (None: not judged, as under AddressSanitizer, whose shadow memory alone is ~300 MiB)."""
    over = rss_limit_mib is not None and (outcome.peak_rss_mib or 0) >= rss_limit_mib
    return outcome.cls in ("untyped", "crash", "hang") or over


def reproduction(item: FuzzInput, path: Path) -> str:
    """The exact call that reproduces ``item`` from its saved file ``path``."""
    if item.mode == "package":
        return (f"python -c \"import numpy as np; from edgekit.package import load_package; "
                f"p = load_package('{path}'); b = p.backend(threads=1); "
                f"b.run({{s.name: np.zeros(s.shape, s.dtype) for s in p.manifest.inputs}})\"")
    if item.mode == "chunks":
        return (f"python benchmarks/fuzz.py --replay {path} --mode chunks --chunk-seed {item.chunk_seed} "
                f"--chunk-behaviour {item.chunk_behaviour}")
    options = "".join(f", {k}={v!r}" for k, v in FILE_OPTIONS[item.mode].items())
    return f"python -c \"import edgekit; r = edgekit.open('{path}'{options}); [f for f in r]\""


def save_failure(folder: Path, item: FuzzInput, outcome: Outcome) -> Path:
    """Write the input and a JSON sidecar (outcome and reproduction command) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cls = "rss" if outcome.cls in ("clean", "typed") else outcome.cls  # saved for its peak memory
    stem = (f"{item.seed.replace(':', '-')}-{item.mode}" if item.index < 0
            else f"s{item.run_seed}-{item.index:06d}-{item.mode}")
    path = folder / f"{stem}-{cls}{item.suffix}"
    path.write_bytes(item.data)
    sidecar = {**outcome.to_dict(), "run_seed": item.run_seed, "chunk_seed": item.chunk_seed,
               "reproduce": reproduction(item, path.resolve())}
    path.with_name(path.name + ".json").write_text(json.dumps(sidecar, indent=1))
    return path


# ------------------------------------------------------------------------------------- summary


def message_group(outcome: Outcome) -> str:
    """A grouping key: the type and the message with numbers, paths and byte counts blurred."""
    message = outcome.message or ""
    message = re.sub(r"(/[\w.+-]+)+", "<path>", message)
    message = re.sub(r"<\d+ bytes>", "<bytes>", message)
    message = re.sub(r"\d+", "#", message)
    return f"{outcome.type}: {message[:200]}"


def _changed_manifest_loaded(outcome: Outcome) -> bool:
    """A package whose manifest.json was rewritten (labels, fields) without resealing its checksums
    loaded anyway: the manifest is not covered by the package's integrity check."""
    return outcome.mode == "package" and outcome.cls == "clean" and any(
        m.startswith("manifest-") and not m.endswith("+resealed") for m in outcome.mutators)


def _downgrade_loaded(outcome: Outcome) -> bool:
    """A format-2 package rewritten as format 1 (no integrity record, labels changed) loaded."""
    return outcome.mode == "package" and outcome.cls == "clean" and "downgrade-format-1" in outcome.mutators


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))], 1)


def summarize(outcomes: list[Outcome], *, top: int = 15, max_failures: int = 200,
              rss_limit_mib: float | None = RSS_LIMIT_MIB) -> dict:
    """Counts per mode and class, grouped untyped/typed messages, peak RSS per mode, failures.
    ``rss_limit_mib``: the per-input memory target (None: not judged, under ASan)."""
    limit = rss_limit_mib if rss_limit_mib is not None else float("inf")
    per_mode = {}
    for mode in sorted({o.mode for o in outcomes}, key=lambda m: MODES.index(m) if m in MODES else 99):
        rows = [o for o in outcomes if o.mode == mode]
        peaks = [o.peak_rss_mib for o in rows if o.peak_rss_mib is not None]
        above = [o.peak_rss_mib - o.baseline_rss_mib for o in rows
                 if o.peak_rss_mib is not None and o.baseline_rss_mib is not None]
        per_mode[mode] = {
            "inputs": len(rows),
            **{cls: sum(o.cls == cls for o in rows) for cls in CLASSES},
            "peak_rss_mib_max": round(max(peaks), 1) if peaks else None,
            "peak_rss_mib_p99": _percentile(peaks, 99),
            "peak_rss_mib_p50": _percentile(peaks, 50),
            "peak_rss_above_child_baseline_mib_max": round(max(above), 1) if above else None,
            "inputs_at_or_over_rss_limit": sum((o.peak_rss_mib or 0) >= limit for o in rows),
            # threads still alive 0.5 s after the reader closed; a stalling producer's own thread
            # (blocked inside the fuzzer's generator, which no reader can interrupt) counted apart
            "threads_left_inputs": sum(o.threads_left > 0 for o in rows if o.chunk_behaviour == "plain"),
            "threads_left_inputs_stalling_producer": sum(o.threads_left > 0 for o in rows
                                                         if o.chunk_behaviour != "plain"),
            **({"clean_with_changed_manifest": sum(_changed_manifest_loaded(o) for o in rows),
                "clean_format_1_downgrade": sum(_downgrade_loaded(o) for o in rows)}
               if mode == "package" else {}),
            "ms_p50": _percentile([1e3 * o.seconds for o in rows if o.seconds is not None], 50),
            "ms_p99": _percentile([1e3 * o.seconds for o in rows if o.seconds is not None], 99),
        }
    totals = {cls: sum(o.cls == cls for o in outcomes) for cls in CLASSES}

    def groups(cls):
        found = {}
        for o in outcomes:
            if o.cls != cls:
                continue
            key = message_group(o)
            g = found.setdefault(key, {"group": key, "count": 0, "modes": set(), "mutators": set(),
                                       "example": {"index": o.index, "mode": o.mode, "seed": o.seed,
                                                   "mutators": list(o.mutators), "message": o.message,
                                                   "traceback": o.traceback}})
            g["count"] += 1
            g["modes"].add(o.mode)
            g["mutators"].update(o.mutators)
        ranked = sorted(found.values(), key=lambda g: -g["count"])[:top]
        return [{**g, "modes": sorted(g["modes"]), "mutators": sorted(g["mutators"])} for g in ranked]

    per_mutator = {}
    for o in outcomes:
        for name in o.mutators or ("(none)",):
            row = per_mutator.setdefault(name, {**dict.fromkeys(CLASSES, 0), "ms_total": 0.0})
            row[o.cls] += 1
            row["ms_total"] += 1e3 * (o.seconds or 0)
    for row in per_mutator.values():
        row["ms_mean"] = round(row.pop("ms_total") / sum(row[c] for c in CLASSES), 1)
    failures = [{"index": o.index, "mode": o.mode, "seed": o.seed, "mutators": list(o.mutators),
                 "chunk_behaviour": o.chunk_behaviour, "class": o.cls, "type": o.type,
                 "message": (o.message or "")[:300], "peak_rss_mib": o.peak_rss_mib}
                for o in outcomes if is_failure(o, rss_limit_mib)]
    peaks = [o.peak_rss_mib for o in outcomes if o.peak_rss_mib is not None]
    crafted = [{"input": o.seed.removeprefix("crafted:"), "mode": o.mode, "class": o.cls, "type": o.type,
                "message": (o.message or "")[:200], "peak_rss_mib": o.peak_rss_mib}
               for o in outcomes if o.index < 0]
    return {
        "totals": {"inputs": len(outcomes), "crafted": len(crafted), **totals},
        "per_mode": per_mode,
        "untyped_top": groups("untyped"),
        "crash_top": groups("crash"),
        "hang_top": groups("hang"),
        "typed_top": groups("typed"),
        "per_mutator": dict(sorted(per_mutator.items())),
        "peak_rss_mib_max": round(max(peaks), 1) if peaks else None,
        "crafted": crafted,
        "failures": failures[:max_failures],
        "failures_total": len(failures),
        "targets": {
            "crashes_0": totals["crash"] == 0,
            "hangs_0": totals["hang"] == 0,
            "untyped_0": totals["untyped"] == 0,
            f"peak_rss_per_input_lt_{RSS_LIMIT_MIB:g}_mib": (all(p < RSS_LIMIT_MIB for p in peaks)
                                                             if rss_limit_mib is not None else None),
            "changed_manifest_refused": not any(map(_changed_manifest_loaded, outcomes)),
        },
    }
