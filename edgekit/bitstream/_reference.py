"""Numpy versions of the native kernels in ``edgekit/_kernels.c``.

Same signatures and bit-identical results; the tests compare them on real decoded video. They run
when the extension is not built or ``EDGEKIT_NATIVE=0`` is set (the benchmark's "before" figures).
Both validate their arguments the same way and raise ``ValueError`` (``TypeError`` for a wrong kind of
argument) for a geometry, buffer, plane or vector that does not fit the frame, never reading outside it.
"""

from __future__ import annotations

import numpy as np

MOTION_VECTOR_DTYPE = np.dtype(
    [("source", "i4"), ("w", "u1"), ("h", "u1"), ("src_x", "i2"), ("src_y", "i2"), ("dst_x", "i2"),
     ("dst_y", "i2"), ("flags", "u8"), ("motion_x", "i4"), ("motion_y", "i4"), ("motion_scale", "u2")],
    align=True,
)
assert MOTION_VECTOR_DTYPE.itemsize == 40  # FFmpeg's AVMotionVector


MAX_HEIGHT, MAX_WIDTH = 32767, 65535  # accumulated positions pack (y << 16) | x into an int32


def _check_geometry(H, W, gw) -> None:
    if not (0 < H <= MAX_HEIGHT and 0 < W <= MAX_WIDTH and gw == (W + 7) // 8):
        raise ValueError(f"bad frame geometry: H={H} W={W} gw={gw}")


def _check_array(a, shape, what, writable=False) -> np.ndarray:
    a = np.asarray(a)
    if writable and not (a.flags.c_contiguous and a.flags.writeable):
        raise ValueError(f"{what} must be a C-contiguous writable array")
    if a.size < int(np.prod(shape)):
        raise ValueError(f"{what}: expected at least {int(np.prod(shape))} values, got {a.size}")
    return a.reshape(-1)[:int(np.prod(shape))].reshape(shape)


def _check_vectors(d, gh, gw, what) -> np.ndarray:
    return _check_array(d, (2, gh, gw), what)


def _check_planes(planes, H, W, what) -> tuple:
    if not isinstance(planes, (tuple, list)) or len(planes) != 3:
        raise TypeError(f"{what} must be a 3-tuple of planes (y, u, v)")
    out = []
    for k, plane in enumerate(planes):
        ph, pw = (H, W) if k == 0 else ((H + 1) // 2, (W + 1) // 2)
        plane = np.asarray(plane)
        if plane.ndim != 2 or plane.shape[0] < ph or plane.shape[1] < pw:
            raise ValueError(f"{what}: {'YUV'[k]} plane of shape {plane.shape} is smaller than {ph}x{pw}")
        out.append(plane)
    return tuple(out)


def _check_positions(acc: np.ndarray, H: int, W: int) -> None:
    if acc.size and (acc.min() < 0 or ((acc & 0xFFFF) >= W).any() or ((acc >> 16) >= H).any()):
        raise ValueError("accumulated positions point outside the frame (acc0/acc1 of another geometry?)")


_VECTOR_LIMIT = np.float32(2 ** 24)  # px: beyond every frame, where the prediction clamps to the edge anyway
_TRACE_LIMIT = np.float32(2 ** 20)   # px: the cell trace's cap (round_vec and cap_vec in _kernels.c)


def _round(v: np.ndarray) -> np.ndarray:
    # saturated as the C kernels do (NaN counts as -2^24), so no vector overflows an integer
    v = np.nan_to_num(v.astype(np.float32), nan=-_VECTOR_LIMIT, posinf=_VECTOR_LIMIT, neginf=-_VECTOR_LIMIT)
    v = np.clip(v, -_VECTOR_LIMIT, _VECTOR_LIMIT)
    return np.floor(v + np.float32(0.5)).astype(np.int64)


def _check_grids(gh, gw, d0, d1, flags) -> None:
    """The grid size (at most 4096 x 8192 cells) and the vector and flag grids of that size."""
    if not (0 <= gh <= 4096 and 0 <= gw <= 8192):
        raise ValueError(f"bad MV grid size: gh={gh} gw={gw}")
    for a, shape, what in ((d0, (2, gh, gw), "d0"), (d1, (2, gh, gw), "d1"), (flags, (gh, gw), "flags")):
        if a.shape != shape:
            raise ValueError(f"{what}: expected shape {shape}, got {a.shape}")


def mv_grid(side_data, gh: int, gw: int, d0: np.ndarray, d1: np.ndarray, flags: np.ndarray) -> None:
    _check_grids(gh, gw, d0, d1, flags)
    d0[...] = 0
    d1[...] = 0
    flags[...] = 0
    if side_data is None:
        return
    side_data = memoryview(side_data).cast("B")
    if len(side_data) % MOTION_VECTOR_DTYPE.itemsize:
        raise ValueError(f"side_data: {len(side_data)} bytes is not a whole number of "
                         f"{MOTION_VECTOR_DTYPE.itemsize}-byte motion vectors")
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


def drop_long(d0: np.ndarray, d1: np.ndarray, flags: np.ndarray, gh: int, gw: int, limit: float) -> int:
    _check_grids(gh, gw, d0, d1, flags)
    if not 0.0 <= limit <= 1e9:  # also refuses NaN
        raise ValueError(f"limit must be a length in pixels >= 0, got {limit:g}")
    limit2 = np.float32(limit) * np.float32(limit)
    dropped = 0
    for d, bit in ((d0, 1), (d1, 2)):
        with np.errstate(over="ignore", invalid="ignore"):
            far = d[0] * d[0] + d[1] * d[1] > limit2
        if far.any():
            d[:, far] = 0
            flags[far] &= np.uint8(~bit & 0xFF)
            dropped += int(np.count_nonzero(far))
    return dropped


def still_vectors(cur, ref, H, W, d, flags, bit, gw, min_gain) -> int:
    """Set to 0 the vectors of ``d`` (2, gh, gw) towards ``ref`` (reference ``bit``: 1 past, 2
    future, as ``flags``) that predict their 8x8 cell's luma no better than no motion does, by
    ``min_gain`` grey levels per pixel: with e = cur - ref[p - round(d)] and e0 = cur - ref[p]
    (clamped to the frame) over the cell's n pixels inside the frame, and SAD' the sum of
    |n e - sum(e)| (n times the sum of absolute differences after taking out the cell's mean
    difference, a brightness change; exact integers), a cell whose vector is not (0, 0) gets 0 when
    SAD'(e0) <= SAD'(e) + min_gain n^2. Its flag stays: the cell is still, not intra. Returns how
    many vectors were set to 0."""
    _check_geometry(H, W, gw)
    gh = (H + 7) // 8
    if bit not in (1, 2):
        raise ValueError(f"bit must be 1 (past reference) or 2 (future), got {bit}")
    if not 0.0 <= min_gain <= 255.0:  # also refuses NaN
        raise ValueError(f"min_gain must be in [0, 255] grey levels per pixel, got {min_gain:g}")
    cur, ref = _check_planes(cur, H, W, "cur"), _check_planes(ref, H, W, "ref")
    d = _check_array(d, (2, gh, gw), "d", writable=True)
    flags = _check_array(flags, (gh, gw), "flags")
    y, r = cur[0][:H, :W].astype(np.int64), ref[0][:H, :W]
    ox, oy = _round(d[0]), _round(d[1])
    rows, cols = np.arange(H)[:, None], np.arange(W)[None, :]
    e = y - _sample(r, rows - _expand(oy, 8, H, W), cols - _expand(ox, 8, H, W))
    e0 = y - r.astype(np.int64)

    def cell_sums(a):
        padded = np.zeros((gh * 8, gw * 8), np.int64)
        padded[:H, :W] = a
        return padded.reshape(gh, 8, gw, 8).sum(axis=(1, 3))

    n = cell_sums(np.ones((H, W), np.int64))
    n_px = _expand(n, 8, H, W)

    def sad(err):
        return cell_sums(np.abs(n_px * err - _expand(cell_sums(err), 8, H, W)))

    tested = ((flags & bit) != 0) & ((d[0] != 0) | (d[1] != 0))
    still = tested & (sad(e0).astype(np.float64) <= sad(e).astype(np.float64) + float(min_gain) * (n * n))
    d[:, still] = 0
    return int(np.count_nonzero(still))


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


def residual_len(H: int, W: int, c420: bool) -> int:
    """int16 values of a residual: (3, H, W), or the 4:2:0 layout Y, U, V with half-size chroma."""
    return H * W + 2 * ((H + 1) // 2) * ((W + 1) // 2) if c420 else 3 * H * W


def _check_residual_out(out, H, W, c420, what="out"):
    """The (3, H, W) view to compute into, and a function storing it into ``out`` in its layout."""
    if not c420:
        return _check_array(out, (3, H, W), what, writable=True), lambda: None
    flat = _check_array(out, (residual_len(H, W, True),), what, writable=True)
    full = np.empty((3, H, W), np.int16)
    ch, cw = (H + 1) // 2, (W + 1) // 2

    def store():
        flat[:H * W] = full[0].reshape(-1)
        flat[H * W:H * W + ch * cw] = full[1, ::2, ::2].reshape(-1)
        flat[H * W + ch * cw:] = full[2, ::2, ::2].reshape(-1)
    return full, store


def mc_residual(cur, ref0, ref1, H, W, d0, d1, flags, gw, out, threads=1, c420=False) -> None:
    """cur/ref0/ref1: 3-tuples of 2D uint8 planes (Y full, U/V half resolution). ``threads`` is
    accepted for the native signature and ignored. ``c420``: the 4:2:0 output layout."""
    _check_geometry(H, W, gw)
    gh = (H + 7) // 8
    cur, ref0 = _check_planes(cur, H, W, "cur"), _check_planes(ref0, H, W, "ref0")
    ref1 = None if ref1 is None else _check_planes(ref1, H, W, "ref1")
    d0, d1 = _check_vectors(d0, gh, gw, "d0"), _check_vectors(d1, gh, gw, "d1")
    flags = _check_array(flags, (gh, gw), "flags")
    out, store = _check_residual_out(out, H, W, c420)
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
    store()


def accumulate(acc0, acc1, H, W, d0, d1, flags, gw, out, threads=1, cur=None, iframe=None, residual=None,
               c420=False) -> None:
    """Accumulated positions into ``out``; with ``residual`` also the residual against ``iframe``."""
    _check_geometry(H, W, gw)
    gh = (H + 7) // 8
    acc0 = _check_array(acc0, (H * W,), "acc0")
    acc1 = None if acc1 is None else _check_array(acc1, (H * W,), "acc1")
    d0, d1 = _check_vectors(d0, gh, gw, "d0"), _check_vectors(d1, gh, gw, "d1")
    flags = _check_array(flags, (gh, gw), "flags")
    out = _check_array(out, (H * W,), "out", writable=True)
    if residual is not None:
        cur, iframe = _check_planes(cur, H, W, "cur"), _check_planes(iframe, H, W, "iframe")
        residual, store = _check_residual_out(residual, H, W, c420, "residual")
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
        _check_positions(out, H, W)
        _acc_residual(cur, iframe, out, H, W, residual)
        store()


def _acc_residual(cur, iframe, acc, H, W, out) -> None:
    a = acc.reshape(H, W)
    ay, ax = a >> 16, a & 0xFFFF
    out[0] = (cur[0][:H, :W].astype(np.int32) - iframe[0][ay, ax]).astype(np.int16)
    ch, cw = (H + 1) // 2, (W + 1) // 2
    sy, sx = ay[0::2, 0::2] >> 1, ax[0::2, 0::2] >> 1
    for k in (1, 2):
        v = (cur[k][:ch, :cw].astype(np.int32) - iframe[k][sy, sx]).astype(np.int16)
        _upsample_into(out[k], v)


# -- block traces (the runtime path): see trace_cells in _kernels.c ------------------------------------


def _centres(n_cells: int, n: int) -> np.ndarray:
    return np.minimum(np.arange(n_cells) * 8 + 4, n - 1)


def _cap(v: np.ndarray) -> np.ndarray:
    """Vectors and displacements as the cell trace uses them: float32, |v| capped at 2^20, NaN -> -2^20."""
    v = np.asarray(v, np.float32)
    return np.where(v > -_TRACE_LIMIT, np.minimum(v, _TRACE_LIMIT), -_TRACE_LIMIT).astype(np.float32)


def trace_cells(disp0, disp1, H, W, d0, d1, flags, gw, out) -> None:
    """One step of the 8x8-cell trace: ``out`` (float32 (2, gh, gw): dx, dy in pixels) from the
    reference traces ``disp0`` (and ``disp1``, the future reference's, or None). The step's vector is
    added exactly; only the reference cell it continues is found at the rounded position."""
    _check_geometry(H, W, gw)
    gh = (H + 7) // 8
    disp0 = _check_array(disp0, (2, gh, gw), "disp0")
    disp1 = None if disp1 is None else _check_array(disp1, (2, gh, gw), "disp1")
    d0, d1 = _check_vectors(d0, gh, gw, "d0"), _check_vectors(d1, gh, gw, "d1")
    flags = _check_array(flags, (gh, gw), "flags")
    out = _check_array(out, (2, gh, gw), "out", writable=True)
    py, px = np.meshgrid(_centres(gh, H), _centres(gw, W), indexing="ij")
    use0 = (flags & 1) != 0
    use1 = ~use0 & ((flags & 2) != 0) & (disp1 is not None)
    zero = np.zeros((2, gh, gw), np.float32)
    v = _cap(np.where(use0[None], d0, np.where(use1[None], d1, zero)))  # intra: co-located, vector 0
    qx = np.clip(px - _round(v[0]), 0, W - 1)
    qy = np.clip(py - _round(v[1]), 0, H - 1)
    # the reference's displacement at the cell q falls in: the future reference's for L1-only cells
    src = np.asarray(disp0, np.float32)[:, qy >> 3, qx >> 3]
    if disp1 is not None:
        src = np.where(use1[None], np.asarray(disp1, np.float32)[:, qy >> 3, qx >> 3], src)
    src = _cap(src)
    fpx, fpy = px.astype(np.float32), py.astype(np.float32)
    w, h = np.float32(W), np.float32(H)
    tx = np.clip(np.clip(fpx - v[0], np.float32(0), w - 1) + np.clip(src[0], -w, w), np.float32(0), w - 1)
    ty = np.clip(np.clip(fpy - v[1], np.float32(0), h - 1) + np.clip(src[1], -h, h), np.float32(0), h - 1)
    out[0] = tx - fpx
    out[1] = ty - fpy


def round_displacements(disp: np.ndarray) -> np.ndarray:
    """Cell-trace displacements (float32) to the whole pixels ``trace_residual`` samples: int32,
    half-way values to the even neighbour (no drift either way), capped as the trace caps them."""
    return np.rint(_cap(disp)).astype(np.int32)


def _traced_residual(cur, iframe, disp, H, W) -> np.ndarray:
    gh, gw = disp.shape[1:]
    dx = np.clip(disp[0].astype(np.int64), -W, W)
    dy = np.clip(disp[1].astype(np.int64), -H, H)
    yy, xx = np.mgrid[0:H, 0:W]
    ox, oy = _expand(dx, 8, H, W), _expand(dy, 8, H, W)
    out = np.empty((3, H, W), np.int16)
    ay, ax = np.clip(yy + oy, 0, H - 1), np.clip(xx + ox, 0, W - 1)
    out[0] = (cur[0][:H, :W].astype(np.int32) - iframe[0][ay, ax]).astype(np.int16)
    sy, sx = ay[0::2, 0::2] >> 1, ax[0::2, 0::2] >> 1
    ch, cw = (H + 1) // 2, (W + 1) // 2
    for k in (1, 2):
        v = (cur[k][:ch, :cw].astype(np.int32) - iframe[k][sy, sx]).astype(np.int16)
        _upsample_into(out[k], v)
    return out


def trace_residual(cur, iframe, disp, H, W, gw, out, threads=1, out_h=0, out_w=0, c420=False, step=1) -> None:
    """The residual against the I-frame along cell traces: int16 (3, H, W) into ``out``, or with
    ``out_h``/``out_w`` its area average, float32 (3, out_h, out_w)."""
    _check_geometry(H, W, gw)
    gh = (H + 7) // 8
    cur, iframe = _check_planes(cur, H, W, "cur"), _check_planes(iframe, H, W, "iframe")
    disp = _check_array(disp, (2, gh, gw), "disp")
    full = _traced_residual(cur, iframe, disp, H, W)
    if out_h == 0 and out_w == 0:
        target, store = _check_residual_out(out, H, W, c420)
        target[...] = full
        store()
        return
    if step not in (1, 2):
        raise ValueError(f"step must be 1 or 2, got {step}")
    if step == 2:  # luma row y & ~1, column x & ~1; chroma row y & ~3 (every other chroma row)
        full[0] = full[0][np.arange(H) & ~1][:, np.arange(W) & ~1]
        full[1:] = full[1:][:, np.arange(H) & ~3]
    area_bins(full, 3, H, W, out, out_h, out_w, threads)


def area_bins(src, C, H, W, out, out_h, out_w, threads=1) -> None:
    """Area average of int16 (C, H, W) into float32 (C, out_h, out_w) (``edgekit.preprocess.resize``)."""
    from edgekit.preprocess import resize_numpy as resize

    if not (1 <= C <= 16 and 1 <= H <= MAX_HEIGHT and 1 <= W <= MAX_WIDTH):
        raise ValueError(f"bad source shape ({C}, {H}, {W})")
    if not (1 <= out_h <= 4096 and 1 <= out_w <= 4096):
        raise ValueError(f"bad output size {out_w}x{out_h}")
    src = _check_array(src, (C, H, W), "src")
    _check_array(out, (C, out_h, out_w), "out", writable=True)[...] = resize(src, (out_h, out_w))
