"""Docs are tests: every ``python`` and ``bash`` example in README.md and docs/*.md runs here.

The blocks of one document run in order, in one scratch folder that holds the files examples name
(``clip.mp4``: a clip with known motion encoded for the test), each in a fresh process with this
environment's ``edgekit`` and ``python`` on PATH. A block may be preceded by HTML comments (invisible
on GitHub) that say how it is tested:

- ``<!-- doc-test: skip REASON -->``: not run, reported as skipped with REASON (a camera, a
  network, a GPU, or the install line CI itself runs);
- ``<!-- doc-test: replace "OLD" "NEW" -->``: run with OLD replaced by NEW (a smaller preset, fewer
  epochs), so the run fits CI while the reader sees the real command;
- ``<!-- doc-test: timeout SECONDS -->``: a longer limit than the default 120 s.

Blocks fenced as ``text`` (synopses, outputs) are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(\w+)\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Example:
    doc: Path
    line: int
    language: str
    code: str
    skip: str | None = None
    timeout_s: float = 120.0
    replacements: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    def source(self) -> str:
        code = self.code
        for old, new in self.replacements:
            if old not in code:
                raise AssertionError(f"{self.name}: doc-test replace {old!r} matches nothing in the block")
            code = code.replace(old, new)
        return code


def examples(doc: Path) -> list[Example]:
    """The runnable fenced blocks of ``doc``, with the directives that precede each."""
    found, pending = [], []
    lines = doc.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        directive = DIRECTIVE.search(lines[i])
        fence = FENCE.match(lines[i])
        if directive:
            pending.append(directive.groups())
        elif fence:
            start, language = i + 1, fence.group(1).lower()
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                i += 1
            if language in RUNNABLE:
                example = Example(doc, start, RUNNABLE[language], "\n".join(lines[start:i]) + "\n")
                for verb, argument in pending:
                    if verb == "skip":
                        example.skip = argument or "marked skip"
                    elif verb == "timeout":
                        example.timeout_s = float(argument)
                    elif verb == "replace":
                        old, new = shlex.split(argument)
                        example.replacements.append((old, new))
                    else:
                        raise AssertionError(f"{doc.name}:{start}: unknown doc-test directive {verb!r}")
                found.append(example)
            pending = []
        elif lines[i].strip() and not lines[i].lstrip().startswith("<!--"):
            pending = []  # directives bind to the block right after them
        i += 1
    return found


ALL = [e for doc in DOCS for e in examples(doc)]


def test_every_doc_has_its_examples_collected():
    readme = [e for e in ALL if e.doc.name == "README.md"]
    assert len(readme) >= 6 and any(e.language == "python" for e in readme)
    assert all(e.skip for e in ALL if "rtsp://" in e.code or "/dev/video" in e.code)


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    """One scratch folder per document, holding the files examples name."""
    from edgekit.synthetic import make_clip

    folders = {}
    for doc in DOCS:
        folder = tmp_path_factory.mktemp(doc.stem.lower())
        make_clip(folder / "clip.mp4", "right", frames=72)
        folders[doc] = folder
    return folders


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("TQDM_DISABLE", "1")
    return env


@pytest.mark.parametrize("example", ALL, ids=[e.name for e in ALL])
def test_doc_example_runs(example: Example, workdirs):
    if example.skip:
        pytest.skip(example.skip)
    code = example.source()
    command = [sys.executable, "-c", code] if example.language == "python" else ["bash", "-euo", "pipefail", "-c", code]
    result = subprocess.run(command, cwd=workdirs[example.doc], env=_env(), capture_output=True, text=True,
                            timeout=example.timeout_s)
    assert result.returncode == 0, (f"{example.name} failed (exit {result.returncode}):\n{code}\n"
                                    f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}")
