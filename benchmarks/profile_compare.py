"""The compressed-domain dividend, measured by the command itself: ``edgekit profile --compare rgb-flow``.

Runs ``edgekit profile [PKG] --source CLIP --runs N --compare rgb-flow --json`` (a child process: the
installed command, as a user runs it) on the bundled demo clip (edgekit/assets/demo.mp4: MPEG-4 Part
2, 340x256, 25 fps, 240 frames) by default, and checks the issue's targets against the command's own
figures: the default package end to end at least 100x faster than RGB + TV-L1 and at least 10x
faster than RGB + Farneback (``compare.speedup``: the pipelines' end-to-end milliseconds per second
of source video). TV-L1 is timed on the frames the RGB + flow network samples and extrapolated to
every frame, as the command says (``compare.method.tvl1``).

Prints ONE JSON object on stdout: the targets, the machine, and the command's JSON (``profile``).

Example:
    python benchmarks/profile_compare.py > docs/results/profile-compare-rgb-flow.json
    python benchmarks/profile_compare.py --runs 1 --source clip.mp4
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.append(str(BENCHMARKS))  # benchmarks/_env.py, run as a script

from _env import machine, script_parser  # noqa: E402

DEMO_CLIP = BENCHMARKS.parent / "edgekit" / "assets" / "demo.mp4"
TARGETS = {"tvl1": 100.0, "farneback": 10.0}  # the least speed-up of the package, end to end


def run_command(args) -> tuple[list[str], dict]:
    """The ``edgekit profile ... --compare rgb-flow --json`` command line and its JSON."""
    cmd = [sys.executable, "-m", "edgekit.cli", "profile", *([args.package] if args.package else []),
           "--source", str(args.source), "--runs", str(args.runs), "--compare", "rgb-flow", "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCHMARKS.parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, timeout=3600)  # stderr: passed on
    if proc.returncode != 0:
        raise SystemExit(f"edgekit profile exited {proc.returncode}")
    return ["edgekit", *cmd[3:]], json.loads(proc.stdout)


def main(argv=None) -> int:
    parser = script_parser("Run `edgekit profile --compare rgb-flow` and check the issue's speed-up targets",
                           "python benchmarks/profile_compare.py > docs/results/profile-compare-rgb-flow.json")
    parser.add_argument("package", nargs="?", help="an .edgepkg (default: the bundled default package)")
    parser.add_argument("--source", default=str(DEMO_CLIP), help="the clip (default: the bundled 340x256 demo clip)")
    parser.add_argument("--runs", type=int, default=5, help="the profile's measured passes (default 5)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    t0 = time.perf_counter()
    load_start = os.getloadavg()
    command, report = run_command(args)
    section = report["compare"]
    targets = {method: {"target": least, "speedup": section["speedup"][method],
                        "met": section["speedup"][method] >= least} for method, least in TARGETS.items()}
    print(json.dumps({
        "benchmark": "edgekit profile --compare rgb-flow: the package end to end against RGB + optical flow",
        "command": command,
        "targets": targets,
        "met": all(t["met"] for t in targets.values()),
        "speedup": section["speedup"],
        "ms_per_source_s": {"package": section["package"]["end_to_end_ms_per_source_s"],
                            **{m: v["end_to_end_ms_per_source_s"] for m, v in section["rgb_flow"].items()}},
        "env": {**machine(), "load_average_start": [round(x, 2) for x in load_start],
                "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "profile": report,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
