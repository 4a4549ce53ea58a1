"""A small stderr progress bar (the runtime has no tqdm dependency). Silent when not a TTY."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int | None, desc: str, enabled: bool | None = None, stream=None):
        self.total, self.desc, self.n = total, desc, 0
        self.stream = stream or sys.stderr  # looked up now, not at import: callers may have replaced it
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._t0 = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.n / max(now - self._t0, 1e-9)
        if self.total:
            frac = min(self.n / self.total, 1.0)
            bar = "#" * int(frac * 24)
            msg = f"\r{self.desc} [{bar:<24}] {self.n}/{self.total} {rate:.0f}/s"
        else:
            msg = f"\r{self.desc} {self.n} {rate:.0f}/s"
        self.stream.write(msg)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
