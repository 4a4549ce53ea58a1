"""Running a ``benchmarks/`` script from a test: its whole stdout is one JSON object (progress
goes to stderr), and a script can be imported as a module to test its helpers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(name: str, *args, timeout: float = 300) -> dict:
    """``python benchmarks/NAME ARGS``: its JSON object. Fails the test with its stderr's tail."""
    proc = subprocess.run([sys.executable, str(BENCHMARKS / name), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def load_benchmark(name: str):
    """benchmarks/NAME imported as a module (named ``benchmark_<stem>``)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(name).stem}", BENCHMARKS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
