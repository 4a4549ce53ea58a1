"""Extract a dataset's side data once into a sharded, memory-mapped cache.

The cache holds, per clip, every P/B frame's MV + residual and every GOP's I-frame, prepared by
edgekit.preprocess at --size (and, with --flow, a teacher flow for the same frames, accumulated to
the I-frame like the motion vectors unless --flow-layout frame; with --rgb, the decoded RGB of every
P/B frame for RGB teachers). Training builds the cache it needs itself. It lives in
OUT/<key>, the key being a hash of the preprocessing spec AND of the dataset (its folder, clip list,
labels, splits, and each video's size and modification time): change a setting, point at another
dataset or edit a video and a new cache is built beside the old one; the same data finds its cache
again, and an interrupted build resumes where it stopped.

A dataset too big for one machine is extracted by many: under torchrun each process builds every
N-th shard and rank 0 writes the index (spec.json); on machines without torchrun, ``--shard r/N``
builds part r of N. Point every part at the same --out on a shared file system (or copy the
OUT/<key>/ folders together, e.g. rsync -a) and the result is byte for byte the cache one process
builds. The dataset must be at the same path with the same files (size, modification time) on
every machine, as it is part of the key; a run without --shard then finds the cache complete (or
builds the shards still missing).

examples:
  python -m training cache data/synth-small --out data/cache
  python -m training cache data/synth-small --out data/cache --representation frame --size 96
  python -m training cache data/synth-small --out data/cache --flow gt          # synthetic ground truth
  python -m training cache ~/UCF-101 --out data/ucf-cache --flow tvl1 --workers 8
  torchrun --standalone --nproc_per_node 4 -m training cache ~/kinetics --out data/k400-cache --workers 4
  python -m training cache /shared/kinetics --out /shared/cache --shard 0/8 --json     # machine 0 of 8
"""

from __future__ import annotations

import json
import time

from edgekit.errors import ConfigError
from training.cache.build import FLOW_LAYOUTS, FLOW_SOURCES, CachePart, CacheSpec, build_cache, flow_layout_for
from training.cache.index import cache_statistics, is_complete
from training.distributed import build_cache_in_parts, launch_environment, process_group


def add_arguments(p) -> None:
    p.add_argument("dataset", help="dataset folder (UCF-101, HMDB-51, Kinetics or folder-per-class layout)")
    p.add_argument("--out", required=True, help="cache root folder")
    p.add_argument("--representation", choices=["accumulated", "frame"], default="accumulated")
    p.add_argument("--trace", choices=["block", "pixel"], default="block",
                   help="accumulated traces per 8x8 cell as the runtime computes them (default), or exact per pixel")
    p.add_argument("--size", type=int, default=112, help="side of the stored square inputs (default 112)")
    p.add_argument("--flow", choices=FLOW_SOURCES, default="none", help="teacher flow to store (default none)")
    p.add_argument("--flow-layout", choices=["auto", *FLOW_LAYOUTS], default="auto",
                   help="flow from the previous frame or accumulated to the I-frame (default auto: as the MVs)")
    p.add_argument("--rgb", action="store_true", help="also store decoded RGB of every P/B frame (RGB teachers)")
    p.add_argument("--max-frames", type=int, default=0, help="P/B frames kept per clip, evenly spaced (0 = all)")
    p.add_argument("--max-vector", type=float, default=0.0, metavar="FRACTION",
                   help="drop motion vectors longer than this fraction of the picture's shorter side before "
                        "tracing, as a config's data.max_vector does (default 0: keep all)")
    p.add_argument("--min-gain", type=float, default=0.0, metavar="LEVELS",
                   help="set to 0 the vectors that predict their 8x8 cell better than no motion by fewer than this "
                        "many grey levels per pixel, as a config's data.min_gain does (default 0: keep all)")
    p.add_argument("--splits", default="train,val,test", help="comma-separated splits (default train,val,test)")
    p.add_argument("--layout", default="auto", choices=["auto", "ucf101", "hmdb51", "kinetics", "folder"])
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--shard", metavar="R/N", default=None,
                   help="build only part R of N (shards i with i %% N == R), e.g. 0/4 on the first of four "
                        "machines; under torchrun the processes split the shards without it")
    p.add_argument("--json", action="store_true", help="print one JSON object when done")


def run(args) -> int:
    layout = flow_layout_for(args.representation, args.flow) if args.flow_layout == "auto" else args.flow_layout
    spec = CacheSpec(representation=args.representation, size=args.size, flow=args.flow, max_frames=args.max_frames,
                     trace=args.trace, flow_layout=layout, rgb=args.rgb, max_vector=args.max_vector,
                     min_gain=args.min_gain)
    part = CachePart.parse(args.shard) if args.shard else CachePart()
    options = {"splits": tuple(args.splits.split(",")), "layout": args.layout, "workers": args.workers}
    t0 = time.perf_counter()
    if launch_environment().active:
        if args.shard:
            raise ConfigError("--shard splits the work over separate runs; under torchrun the processes split "
                              "it already: drop --shard, or run without torchrun")
        with process_group("cpu") as place:
            folder = build_cache_in_parts(place, args.dataset, args.out, spec,
                                          progress=False if args.json or not place.is_main else None, **options)
            if not place.is_main:
                return 0
            part = CachePart(0, 1)  # every part is built: report the whole cache
    else:
        folder = build_cache(args.dataset, args.out, spec, part=part, progress=False if args.json else None,
                             **options)
    seconds = time.perf_counter() - t0
    stats = cache_statistics(folder)
    size_mb = stats.size_bytes / 2**20
    complete = is_complete(folder)
    out = {"cache": str(folder), "key": folder.name, "clips": stats.total_clips, "frames": stats.total_frames,
           "clips_per_split": dict(stats.clips), "failures": list(stats.failures), "seconds": round(seconds, 2),
           "size_mb": round(size_mb, 1), "part": f"{part.index}/{part.count}", "complete": complete}
    if args.json:
        print(json.dumps(out))
    else:
        state = "" if complete else f" so far (part {part.index}/{part.count} done; the cache is complete " \
                                    "once every part has run)"
        print(f"cache {folder}: {stats.total_clips} clips, {stats.total_frames} frames, {size_mb:.1f} MB{state}, "
              f"{seconds:.1f} s")
        for f in stats.failures:
            print(f"  skipped {f}")
    return 0
