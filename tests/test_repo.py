"""Repository contracts: CI runs the README's test command; the runtime never imports torch."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- test-command", 1)[1].split("```bash\n", 1)[1]
    return block.split("\n```", 1)[0].strip()


def test_ci_runs_the_readme_test_command():
    cmd = readme_test_command()
    assert "pytest" in cmd and "torch==2.13.0" in cmd
    assert cmd.index("torch==2.13.0") < cmd.index("[train")  # CPU torch before anything that needs torch
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert cmd in ci_lines


def test_runtime_imports_without_torch():
    # a fresh interpreter, with torch made unimportable: the runtime must not need it
    code = ("import sys; sys.modules['torch'] = None\n"
            "import edgekit, edgekit.bitstream, edgekit.cli, edgekit.synthetic, edgekit.visualize\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
