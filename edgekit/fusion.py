"""Late fusion: logits of streams or windows -> scores -> predictions with labels and times.

A prediction whose top score is under a threshold (a calibrated package's, see
``edgekit.manifest.Calibration``) is labelled :data:`NONE`: the model is not sure anything it knows
happened. Its best real label stays in ``top_label`` and ``topk``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NONE = "none"  # the label of a prediction under the threshold



def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` over the last axis, float64 for stability."""
    z = np.asarray(logits, np.float64)
    if temperature != 1.0:
        z = z / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fuse(scores: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of score vectors (streams, or windows over time); weights default to equal."""
    s = np.stack([np.asarray(x, np.float64) for x in scores])
    w = np.ones(len(s)) if weights is None else np.asarray(weights, np.float64)
    return (w[:, None] * s).sum(0) / w.sum()


@dataclass(frozen=True)
class Prediction:
    """Scores of one window or one video: ``label``/``score`` the top class (``label`` is
    :data:`NONE` when ``score`` is under the threshold it was made with), ``topk`` the best k
    (label, score) pairs, ``start_s``/``end_s`` the time span it covers."""

    label: str
    score: float
    topk: tuple[tuple[str, float], ...]
    start_s: float
    end_s: float

    @classmethod
    def from_scores(cls, scores: np.ndarray, labels: Sequence[str], start_s: float, end_s: float,
                    k: int = 5, threshold: float = 0.0) -> "Prediction":
        """The prediction of ``scores`` (C,) over ``labels``; :data:`NONE` when the top score is
        under ``threshold`` (0: never)."""
        order = np.argsort(-scores)[:k]
        topk = tuple((labels[i], float(scores[i])) for i in order)
        label = NONE if topk[0][1] < threshold else topk[0][0]
        return cls(label, topk[0][1], topk, float(start_s), float(end_s))

    @property
    def top_label(self) -> str:
        """The best real label, also when ``label`` is :data:`NONE`."""
        return self.topk[0][0]

    def __repr__(self) -> str:
        runners = ", ".join(f"{lab} {s:.2f}" for lab, s in self.topk[1:3])
        return (f"Prediction({self.label} {self.score:.2f}, {self.start_s:.2f}-{self.end_s:.2f} s"
                + (f"; then {runners}" if runners else "") + ")")

    def to_dict(self) -> dict:
        out = {"start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "label": self.label,
               "score": self.score, "topk": [{"label": lab, "score": s} for lab, s in self.topk]}
        if self.label == NONE:  # the best real label, where "label" does not say it
            out["top_label"] = self.top_label
        return out
