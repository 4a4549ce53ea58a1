"""Generation of the whole benchmark: plan the clips, render and encode them in parallel, write lists.

Output (UCF-101 style)::

    DIR/synth.json                      settings of the run (a rerun must match them)
    DIR/videos/<class>/<clip>.mp4       the encoded clips
    DIR/flow/<class>/<clip>.npz         ground truth per clip (see training.synth.groundtruth)
    DIR/classInd.txt, trainlist01.txt, vallist01.txt, testlist01.txt
    DIR/metadata.jsonl                  one JSON line per clip, in clip order

Determinism: clip ``i`` draws everything from ``SeedSequence([seed, i])``, so the bytes of every
file depend on the settings and the seed only, never on the number of workers or on the order in
which clips finish. Resumability: each clip's files are written under temporary names and renamed
(the video last); a rerun skips clips whose video exists and removes leftovers of an interrupted run.
Two runs must not write into the same DIR at the same time.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edgekit._fileio import atomic_output, atomic_write
from edgekit.errors import ConfigError
from training.synth.classes import CLASS_NAMES
from training.synth.config import FLOW_STRIDE_PX, SynthConfig
from training.synth.encode import SETTINGS, ClipEncoding, encode_frames
from training.synth.files import remove_partials
from training.synth.groundtruth import load_ground_truth, metadata_line, write_ground_truth
from training.synth.motion import Canvas
from training.synth.render import RenderedClip, render
from training.synth.scene import plan_scene
from training.synth.splits import split_of, write_ucf_lists

FORMAT_VERSION = 1
MANIFEST_NAME = "synth.json"


@dataclass(frozen=True)
class ClipJob:
    """One clip to make: its global ``index`` (seeds its RNG with ``config.seed``), class, name, split."""

    index: int
    label: str
    name: str
    split: str
    config: SynthConfig

    @property
    def video_relative(self) -> str:
        """Path relative to ``DIR/videos``, as listed in the split files."""
        return f"{self.label}/{self.name}.mp4"

    def video_path(self, out_dir: Path) -> Path:
        return out_dir / "videos" / self.label / f"{self.name}.mp4"

    def flow_path(self, out_dir: Path) -> Path:
        return out_dir / "flow" / self.label / f"{self.name}.npz"


@dataclass(frozen=True)
class GenerationReport:
    """Outcome of :func:`generate`: clip counts, wall time in seconds, throughput of the clips
    written in this run, and bytes on disk of all videos and ground-truth files."""

    out_dir: str
    clips_total: int
    clips_written: int
    clips_skipped: int
    seconds: float
    clips_per_second: float
    workers: int
    video_bytes: int
    flow_bytes: int
    config: dict

    def to_dict(self) -> dict:
        return asdict(self)


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of clip ``index`` of a run with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def class_names(config: SynthConfig) -> tuple[str, ...]:
    """The classes a run makes (``config.classes``: all of them by default, the 12 fixed ones for
    the held-out renderer)."""
    return config.class_names


def plan_jobs(config: SynthConfig) -> tuple[ClipJob, ...]:
    """All clips of a run in order: class by class, ``clips_per_class`` each. The held-out
    renderer's clips are all in the test split: they are never trained on. A clip's index (its
    seed) counts from the class's place among all classes, so a run of a subset of the classes
    makes the very clips the full run makes for them."""
    n = config.clips_per_class
    heldout = config.renderer == "heldout"
    return tuple(
        ClipJob(CLASS_NAMES.index(label) * n + j, label, f"{label}_{j:05d}", "test" if heldout else split_of(j, n),
                config)
        for label in class_names(config)
        for j in range(n)
    )


def make_clip(job: ClipJob) -> tuple[RenderedClip, ClipEncoding, dict]:
    """Render one clip: its frames and ground truth, how to encode it, and its scene metadata.
    Everything is drawn from ``clip_rng(seed, index)``: the standard presets (``scene``), the
    broad ones (``broad``: encoding first, then the scene) or the held-out renderer."""
    config = job.config
    rng = clip_rng(config.seed, job.index)
    if config.renderer == "heldout":
        from training.synth.heldout import make_clip as make_heldout_clip

        return make_heldout_clip(job.label, rng, config)
    if config.variety == "broad":
        from training.synth.broad import draw_encoding, plan_broad_scene

        (width_px, height_px), encoding = draw_encoding(rng, config)
        plan = plan_broad_scene(job.label, rng, Canvas(width_px, height_px, config.frames), sensor=config.sensor)
        return render(plan), encoding, plan.metadata
    plan = plan_scene(job.label, rng, Canvas(config.width_px, config.height_px, config.frames))
    return render(plan), ClipEncoding(SETTINGS[config.codec], config.fps), plan.metadata


def write_clip(job: ClipJob, out_dir: str | Path) -> dict:
    """Render, encode and store one clip (ground truth first, video last, each atomically).

    Returns the clip's metadata (the line written to ``metadata.jsonl``): the run's settings as this
    clip used them, the scene's drawn values and, where drawn per clip, ``encoder`` (its settings),
    ``variety`` and ``renderer``.
    """
    out_dir = Path(out_dir)
    config = job.config
    clip, encoding, scene_metadata = make_clip(job)
    metadata = {
        "clip": job.video_relative,
        "flow": f"{job.label}/{job.name}.npz",
        "split": job.split,
        "clip_index": job.index,
        "seed": config.seed,
        "codec": encoding.settings.codec,
        "width_px": int(clip.frames.shape[2]),
        "height_px": int(clip.frames.shape[1]),
        "frames": config.frames,
        "fps": encoding.fps,
        **scene_metadata,
    }
    if config.per_clip_encoding:
        metadata.update(encoder=encoding.to_metadata(), variety=config.variety, renderer=config.renderer)
    metadata = json.loads(metadata_line(metadata))  # plain JSON types, identical to what is stored
    with atomic_output(job.flow_path(out_dir)) as temp, open(temp, "wb") as file:
        write_ground_truth(file, clip.flow_px, clip.actor_mask, FLOW_STRIDE_PX, metadata)
    with atomic_output(job.video_path(out_dir)) as temp:
        encode_frames(clip.frames, temp, encoding)
    return metadata


def _is_complete(job: ClipJob, out_dir: Path) -> bool:
    return job.video_path(out_dir).is_file() and job.flow_path(out_dir).is_file()


def _manifest(config: SynthConfig) -> dict:
    generator = "training.synth.heldout" if config.renderer == "heldout" else "training.synth"
    return {"format_version": FORMAT_VERSION, "generator": generator, "flow_stride_px": FLOW_STRIDE_PX,
            **config.to_dict(), "classes": list(class_names(config))}  # the classes made, by name


def _check_or_write_manifest(out_dir: Path, config: SynthConfig) -> None:
    expected = _manifest(config)
    path = out_dir / MANIFEST_NAME
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            found = None
        if found != expected:
            differing = sorted(k for k in expected if not isinstance(found, dict) or found.get(k) != expected[k])
            raise ConfigError(
                f"{out_dir} already holds a benchmark made with other settings ({', '.join(differing)} differ); "
                "use another --out, or delete the folder to start over"
            )
        return
    atomic_write(path, json.dumps(expected, indent=2) + "\n")


def _init_worker(parent_pid: int | None = None) -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism is over clips; threads inside one clip would only contend
    if parent_pid is not None:
        _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """End this worker process when ``parent_pid`` is gone (killed without a chance to shut the pool
    down, e.g. SIGKILL): a daemon thread compares ``os.getppid()`` every ``every_s`` seconds. Without
    it, the orphaned workers of a killed run went on rendering for half an hour. A clip being written
    is left as a temporary file, which the next run removes (``remove_partials``)."""
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _write_in_workers(jobs: list[ClipJob], out_dir: Path, workers: int) -> Iterator[dict]:
    """Yield the metadata of each clip as worker processes finish it (in any order)."""
    context = multiprocessing.get_context("spawn")  # no fork of a parent that may hold threads
    executor = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_init_worker,
                                   initargs=(os.getpid(),))
    try:
        futures = [executor.submit(write_clip, job, str(out_dir)) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool as err:
        raise RuntimeError(
            "a generator worker process died (out of memory, killed, or the calling script cannot be "
            "re-imported by a spawned process, e.g. code read from stdin); rerun to resume, or use workers=1"
        ) from err
    finally:  # on Ctrl-C or an error, drop the clips not started yet; finished ones stay
        executor.shutdown(wait=True, cancel_futures=True)


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def generate(config: SynthConfig, out_dir: str | Path, workers: int | None = None, progress: bool = True) -> GenerationReport:
    """Generate (or finish generating) the benchmark described by ``config`` into ``out_dir``.

    ``workers`` processes render and encode clips in parallel (default: CPU count; 1 runs in this
    process). ``progress`` shows a tqdm bar over clips on stderr.

    Raises:
        ConfigError: ``workers`` < 1, ``out_dir`` is a file, or it holds a benchmark made with
            other settings.
    """
    out_dir = Path(out_dir)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; give a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_or_write_manifest(out_dir, config)
    for folder in ("videos", "flow"):
        remove_partials(out_dir / folder)

    jobs = plan_jobs(config)
    pending = [job for job in jobs if not _is_complete(job, out_dir)]
    metadata: dict[int, dict] = {}
    start = time.perf_counter()
    with tqdm(total=len(jobs), initial=len(jobs) - len(pending), unit="clip", desc="synth",
              disable=not progress, dynamic_ncols=True) as bar:
        if workers == 1 or len(pending) <= 1:
            for job in pending:
                metadata[job.index] = write_clip(job, out_dir)
                bar.update()
        elif pending:
            for meta in _write_in_workers(pending, out_dir, workers):
                metadata[meta["clip_index"]] = meta
                bar.update()
    seconds = time.perf_counter() - start

    for job in jobs:  # clips made by an earlier run: their metadata lives in their ground truth
        if job.index not in metadata:
            metadata[job.index] = load_ground_truth(job.flow_path(out_dir)).metadata
    atomic_write(out_dir / "metadata.jsonl", "".join(metadata_line(metadata[j.index]) + "\n" for j in jobs))
    write_ucf_lists(out_dir, class_names(config), [(j.video_relative, j.label, j.split) for j in jobs])

    return GenerationReport(
        out_dir=str(out_dir),
        clips_total=len(jobs),
        clips_written=len(pending),
        clips_skipped=len(jobs) - len(pending),
        seconds=round(seconds, 3),
        clips_per_second=round(len(pending) / seconds, 3) if pending and seconds > 0 else 0.0,
        workers=workers,
        video_bytes=_bytes_under(out_dir / "videos"),
        flow_bytes=_bytes_under(out_dir / "flow"),
        config=config.to_dict(),
    )
