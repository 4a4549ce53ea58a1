"""Extract a dataset's side data once into a sharded, memory-mapped cache.

The cache holds, per clip, every P/B frame's MV + residual and every GOP's I-frame, prepared by
edgekit.preprocess at --size (and, with --flow, a teacher flow for the same frames). It lives in
OUT/<key>, the key being a hash of the preprocessing spec: change a setting and a new cache is
built beside the old one. An interrupted build resumes where it stopped.

examples:
  python -m training cache data/synth-small --out data/cache
  python -m training cache data/synth-small --out data/cache --representation frame --size 96
  python -m training cache data/synth-small --out data/cache --flow gt          # synthetic ground truth
  python -m training cache ~/UCF-101 --out data/ucf-cache --flow tvl1 --workers 8
"""

from __future__ import annotations

import json
import time

from training.cache.build import FLOW_SOURCES, CacheSpec, build_cache


def add_arguments(p) -> None:
    p.add_argument("dataset", help="dataset folder (UCF-101, HMDB-51, Kinetics or folder-per-class layout)")
    p.add_argument("--out", required=True, help="cache root folder")
    p.add_argument("--representation", choices=["accumulated", "frame"], default="accumulated")
    p.add_argument("--size", type=int, default=112, help="side of the stored square inputs (default 112)")
    p.add_argument("--flow", choices=FLOW_SOURCES, default="none", help="teacher flow to store (default none)")
    p.add_argument("--max-frames", type=int, default=0, help="P/B frames kept per clip, evenly spaced (0 = all)")
    p.add_argument("--splits", default="train,val,test", help="comma-separated splits (default train,val,test)")
    p.add_argument("--layout", default="auto", choices=["auto", "ucf101", "hmdb51", "kinetics", "folder"])
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--json", action="store_true", help="print one JSON object when done")


def run(args) -> int:
    spec = CacheSpec(representation=args.representation, size=args.size, flow=args.flow, max_frames=args.max_frames)
    t0 = time.perf_counter()
    folder = build_cache(args.dataset, args.out, spec, splits=tuple(args.splits.split(",")), layout=args.layout,
                         workers=args.workers, progress=False if args.json else None)
    seconds = time.perf_counter() - t0
    shards = sorted(folder.glob("shard-*.json"))
    clips = frames = 0
    failures = []
    for s in shards:
        d = json.loads(s.read_text())
        clips += len(d["clips"])
        frames += sum(c["motion_count"] + c["iframe_count"] for c in d["clips"])
        failures += d["failures"]
    size_mb = sum(p.stat().st_size for p in folder.glob("shard-*.npy")) / 2**20
    out = {"cache": str(folder), "key": folder.name, "clips": clips, "frames": frames, "failures": failures,
           "seconds": round(seconds, 2), "size_mb": round(size_mb, 1)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"cache {folder}: {clips} clips, {frames} frames, {size_mb:.1f} MB, {seconds:.1f} s")
        for f in failures:
            print(f"  skipped {f}")
    return 0
