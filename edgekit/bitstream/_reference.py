"""Numpy versions of the native kernels in ``edgekit/_kernels.c``.

Same signatures and bit-identical results; the tests compare them on real decoded video. They run
when the extension is not built or ``EDGEKIT_NATIVE=0`` is set (the benchmark's "before" figures).
"""

from __future__ import annotations

import numpy as np

MOTION_VECTOR_DTYPE = np.dtype(
    [("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"), ("src_y", "i2"), ("dst_x", "i2"),
     ("dst_y", "i2"), ("flags", "u8"), ("motion_x", "i4"), ("motion_y", "i4"), ("motion_scale", "u2")],
    align=True,
)
assert MOTION_VECTOR_DTYPE.itemsize == 40  # FFmpeg's AVMotionVector


def _round(v: np.ndarray) -> np.ndarray:
    return np.floor(v.astype(np.float32) + np.float32(0.5)).astype(np.int64)


def mv_grid(side_data, gh: int, gw: int, d0: np.ndarray, d1: np.ndarray, flags: np.ndarray) -> None:
    d0[...] = 0
    d1[...] = 0
    flags[...] = 0
    if side_data is None:
        return
    mv = np.frombuffer(side_data, dtype=MOTION_VECTOR_DTYPE)
    if len(mv) == 0:
        return
    scale = mv["motion_scale"].astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = np.where(scale > 0, -mv["motion_x"] / np.where(scale > 0, scale, 1), mv["dst_x"] - mv["src_x"]).astype(np.float32)
        dy = np.where(scale > 0, -mv["motion_y"] / np.where(scale > 0, scale, 1), mv["dst_y"] - mv["src_y"]).astype(np.float32)
    w = mv["w"].astype(np.int64)
    h = mv["h"].astype(np.int64)
    x0 = mv["dst_x"].astype(np.int64) - w // 2
    y0 = mv["dst_y"].astype(np.int64) - h // 2
    cx0, cy0 = x0 >> 3, y0 >> 3
    cx1 = (x0 + np.where(w > 0, w, 8) - 1) >> 3
    cy1 = (y0 + np.where(h > 0, h, 8) - 1) >> 3
    # entries are applied in order, later ones overwrite earlier ones (as the C loop does)
    for i in range(len(mv)):
        d, bit = (d0, 1) if mv["source"][i] < 0 else (d1, 2)
        ys = slice(max(cy0[i], 0), min(cy1[i] + 1, gh))
        xs = slice(max(cx0[i], 0), min(cx1[i] + 1, gw))
        d[0, ys, xs] = dx[i]
        d[1, ys, xs] = dy[i]
        flags[ys, xs] |= bit


def _cell_offsets(d: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    s = np.float32(0.5 if shift else 1.0)
    return _round(d[0] * s), _round(d[1] * s)


def _expand(cells: np.ndarray, cell: int, ph: int, pw: int) -> np.ndarray:
    return np.repeat(np.repeat(cells, cell, axis=0), cell, axis=1)[:ph, :pw]


def _sample(plane: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return plane[np.clip(ys, 0, plane.shape[0] - 1), np.clip(xs, 0, plane.shape[1] - 1)].astype(np.int32)


def _upsample_into(out: np.ndarray, v: np.ndarray) -> None:
    H, W = out.shape
    out[...] = np.repeat(np.repeat(v, 2, axis=0), 2, axis=1)[:H, :W]


def mc_residual(cur, ref0, ref1, H, W, d0, d1, flags, gw, out, threads=1) -> None:
    """cur/ref0/ref1: 3-tuples of 2D uint8 planes (Y full, U/V half resolution). ``threads`` is
    accepted for the native signature and ignored."""
    for k in range(3):
        shift = 0 if k == 0 else 1
        ph, pw = (H, W) if k == 0 else ((H + 1) // 2, (W + 1) // 2)
        cell = 8 >> shift
        yy, xx = np.mgrid[0:ph, 0:pw]
        f = _expand(flags, cell, ph, pw)
        ox0, oy0 = (_expand(a, cell, ph, pw) for a in _cell_offsets(d0, shift))
        ox1, oy1 = (_expand(a, cell, ph, pw) for a in _cell_offsets(d1, shift))
        r0 = ref0[k][:ph, :pw]
        p0 = _sample(r0, yy - oy0, xx - ox0)
        pred = np.where(f & 1, p0, r0.astype(np.int32))
        if ref1 is not None:
            p1 = _sample(ref1[k][:ph, :pw], yy - oy1, xx - ox1)
            pred = np.where(f & 2, np.where(f & 1, (p0 + p1 + 1) >> 1, p1), pred)
        v = (cur[k][:ph, :pw].astype(np.int32) - pred).astype(np.int16)
        if shift:
            _upsample_into(out[k], v)
        else:
            out[k] = v


def accumulate(acc0, acc1, H, W, d0, d1, flags, gw, out, threads=1, cur=None, iframe=None, residual=None) -> None:
    """Accumulated positions into ``out``; with ``residual`` also the residual against ``iframe``."""
    yy, xx = np.mgrid[0:H, 0:W]
    f = _expand(flags, 8, H, W)
    a0 = acc0.reshape(H, W)
    ox0, oy0 = (_expand(a, 8, H, W) for a in _cell_offsets(d0, 0))
    res = np.where(f & 1, a0[np.clip(yy - oy0, 0, H - 1), np.clip(xx - ox0, 0, W - 1)], a0)
    if acc1 is not None:
        a1 = acc1.reshape(H, W)
        ox1, oy1 = (_expand(a, 8, H, W) for a in _cell_offsets(d1, 0))
        l1 = a1[np.clip(yy - oy1, 0, H - 1), np.clip(xx - ox1, 0, W - 1)]
        res = np.where(((f & 2) != 0) & ((f & 1) == 0), l1, res)
    out.reshape(H, W)[...] = res
    if residual is not None:
        _acc_residual(cur, iframe, out, H, W, residual)


def _acc_residual(cur, iframe, acc, H, W, out) -> None:
    a = acc.reshape(H, W)
    ay, ax = a >> 16, a & 0xFFFF
    out[0] = (cur[0][:H, :W].astype(np.int32) - iframe[0][ay, ax]).astype(np.int16)
    ch, cw = (H + 1) // 2, (W + 1) // 2
    sy, sx = ay[0::2, 0::2] >> 1, ax[0::2, 0::2] >> 1
    for k in (1, 2):
        v = (cur[k][:ch, :cw].astype(np.int32) - iframe[k][sy, sx]).astype(np.int16)
        _upsample_into(out[k], v)
