"""The native kernels' portable path, the one ARM devices (Jetson, Raspberry-class boards) run.

The SIMD fast paths are x86-64 only; elsewhere the kernels are plain C. Here the extension is built
with ``-DEK_PORTABLE`` (the SIMD paths switched off) and the same child as the AddressSanitizer
test runs against it: every kernel against the numpy reference on random fields, every bad call
refused, and size-change and mid-GOP streams read in every mode. A second test cross-compiles the
extension for aarch64 with Debian's ``gcc-aarch64-linux-gnu`` (installed by ``.ci/run``).
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig

import pytest

from test_kernels_asan import ROOT, build_kernels, child_streams, run_child

EM_AARCH64 = 183  # ELF e_machine


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed: cannot build the portable path")
def test_the_portable_path_gives_what_the_reference_gives(tmp_path):
    so = build_kernels(tmp_path / "build", "-DEK_PORTABLE")
    proc = run_child(so, child_streams(tmp_path), tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "child ok none" in proc.stdout  # the build really took the portable path


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None,
                    reason="no aarch64 cross-compiler: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
def test_the_extension_cross_compiles_for_aarch64_without_warnings(tmp_path):
    out = tmp_path / "kernels-aarch64.o"
    cmd = ["aarch64-linux-gnu-gcc", "-O3", "-std=c11", "-fPIC", "-Wall", "-Werror", "-I",
           sysconfig.get_paths()["include"], "-c", str(ROOT / "edgekit" / "_kernels.c"), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    header = out.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64
