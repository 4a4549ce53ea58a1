/* edgekit._kernels: the per-pixel hot loops of edgekit.bitstream.
 *
 * Plain CPython C API over the buffer protocol (no numpy headers, so it builds anywhere a C
 * compiler exists). edgekit/bitstream/_reference.py holds the same algorithms in numpy; the tests
 * check that both agree bit for bit, and EDGEKIT_NATIVE=0 selects the numpy version.
 *
 * Conventions (see edgekit/bitstream/__init__.py for the user-facing definitions):
 *   - MV grids are float32 arrays (2, gh, gw) of d = dst - src in pixels, one per 8x8 block.
 *     flags (gh, gw) uint8: bit 0 = a past-reference (L0) vector exists, bit 1 = a future one (L1).
 *   - The source of pixel p in a reference is q = p - round(d), clamped to the frame (the edge
 *     extension codecs use for vectors pointing outside).
 *   - Accumulated positions are packed int32: (y << 16) | x.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* SSE2 fast paths on x86-64 (always present there); portable scalar code elsewhere, same results. */
#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#define EK_SSE2 1
#include <emmintrin.h>
#else
#define EK_SSE2 0
#endif

/* Same layout as FFmpeg's AVMotionVector (libavutil/motion_vector.h), 40 bytes. */
typedef struct {
    int32_t source;
    uint8_t w, h;
    int16_t src_x, src_y;
    int16_t dst_x, dst_y;
    uint64_t flags;
    int32_t motion_x, motion_y;
    uint16_t motion_scale;
} MotionVector;

_Static_assert(sizeof(MotionVector) == 40, "AVMotionVector layout changed");

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline int roundi(float v) { return (int)floorf(v + 0.5f); }

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get_buf(PyObject *obj, Buf *b, int writable, const char *what) {
    b->held = 0;
    if (obj == Py_None) return 0;
    if (PyObject_GetBuffer(obj, &b->view, (writable ? PyBUF_WRITABLE : PyBUF_SIMPLE) | PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s buffer", what, writable ? " writable" : "");
        return -1;
    }
    b->held = 1;
    return 0;
}

static void release(Buf *bufs, int n) {
    for (int i = 0; i < n; i++)
        if (bufs[i].held) PyBuffer_Release(&bufs[i].view);
}

static int need(Buf *b, Py_ssize_t nbytes, const char *what) {
    if (!b->held || b->view.len < nbytes) {
        PyErr_Format(PyExc_ValueError, "%s: expected at least %zd bytes", what, nbytes);
        return -1;
    }
    return 0;
}

/* mv_grid(side_data, gh, gw, d0, d1, flags) -> None
 * Scatters FFmpeg's block vectors onto the 8x8 grid. d0/d1: float32 (2, gh, gw); flags: uint8 (gh, gw). */
static PyObject *mv_grid(PyObject *self, PyObject *args) {
    PyObject *o_sd, *o_d0, *o_d1, *o_fl;
    int gh, gw;
    if (!PyArg_ParseTuple(args, "OiiOOO", &o_sd, &gh, &gw, &o_d0, &o_d1, &o_fl)) return NULL;
    Buf b[4];
    memset(b, 0, sizeof(b));
    if (get_buf(o_sd, &b[0], 0, "side_data") || get_buf(o_d0, &b[1], 1, "d0") ||
        get_buf(o_d1, &b[2], 1, "d1") || get_buf(o_fl, &b[3], 1, "flags")) goto fail;
    Py_ssize_t cells = (Py_ssize_t)gh * gw;
    if (need(&b[1], cells * 2 * 4, "d0") || need(&b[2], cells * 2 * 4, "d1") || need(&b[3], cells, "flags")) goto fail;

    float *d0 = (float *)b[1].view.buf, *d1 = (float *)b[2].view.buf;
    uint8_t *fl = (uint8_t *)b[3].view.buf;
    memset(d0, 0, cells * 2 * 4);
    memset(d1, 0, cells * 2 * 4);
    memset(fl, 0, cells);
    Py_ssize_t n = b[0].held ? b[0].view.len / (Py_ssize_t)sizeof(MotionVector) : 0;
    const MotionVector *mv = b[0].held ? (const MotionVector *)b[0].view.buf : NULL;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const MotionVector *m = &mv[i];
        float dx, dy;
        if (m->motion_scale) {  /* sub-pixel precision: dst - src = -motion / scale */
            dx = (float)(-m->motion_x) / (float)m->motion_scale;  /* integer negation: no -0.0 */
            dy = (float)(-m->motion_y) / (float)m->motion_scale;
        } else {
            dx = (float)(m->dst_x - m->src_x);
            dy = (float)(m->dst_y - m->src_y);
        }
        int x0 = m->dst_x - m->w / 2, y0 = m->dst_y - m->h / 2;
        int cx0 = x0 >> 3, cy0 = y0 >> 3;
        int cx1 = (x0 + (m->w ? m->w : 8) - 1) >> 3, cy1 = (y0 + (m->h ? m->h : 8) - 1) >> 3;
        float *d = m->source < 0 ? d0 : d1;
        uint8_t bit = m->source < 0 ? 1 : 2;
        for (int cy = cy0 < 0 ? 0 : cy0; cy <= cy1 && cy < gh; cy++)
            for (int cx = cx0 < 0 ? 0 : cx0; cx <= cx1 && cx < gw; cx++) {
                Py_ssize_t c = (Py_ssize_t)cy * gw + cx;
                d[c] = dx;
                d[cells + c] = dy;
                fl[c] |= bit;
            }
    }
    Py_END_ALLOW_THREADS
    release(b, 4);
    Py_RETURN_NONE;
fail:
    release(b, 4);
    return NULL;
}

/* Integer source offsets per cell for one plane (shift 0 = luma, 1 = 4:2:0 chroma). */
static void cell_offsets(const float *d, Py_ssize_t cells, int shift, int *ox, int *oy) {
    float s = shift ? 0.5f : 1.0f;
    for (Py_ssize_t c = 0; c < cells; c++) {
        ox[c] = roundi(d[c] * s);
        oy[c] = roundi(d[cells + c] * s);
    }
}

typedef struct {
    const uint8_t *data;
    Py_ssize_t stride;
} Plane;

enum { PRED_L0, PRED_L1, PRED_BI };  /* intra blocks are PRED_L0 with a zero offset (co-located) */

/* Edge path of one block: per-pixel clamped fetches and bounds-checked writes. Taken by blocks whose
 * source leaves the reference plane, partial blocks at the right/bottom edge and odd-sized chroma. */
static void mc_block_clamped(Plane cur, Plane r0, Plane r1, int mode, int ox0, int oy0, int ox1, int oy1,
                             int x0, int y0, int bw, int bh, int ph, int pw, int shift,
                             int16_t *out, int H, int W) {
    for (int y = y0; y < y0 + bh; y++) {
        const uint8_t *crow = cur.data + (Py_ssize_t)y * cur.stride;
        for (int x = x0; x < x0 + bw; x++) {
            int pred;
            if (mode == PRED_L1) {
                pred = r1.data[(Py_ssize_t)clampi(y - oy1, 0, ph - 1) * r1.stride + clampi(x - ox1, 0, pw - 1)];
            } else {
                pred = r0.data[(Py_ssize_t)clampi(y - oy0, 0, ph - 1) * r0.stride + clampi(x - ox0, 0, pw - 1)];
                if (mode == PRED_BI) {
                    int p1 = r1.data[(Py_ssize_t)clampi(y - oy1, 0, ph - 1) * r1.stride + clampi(x - ox1, 0, pw - 1)];
                    pred = (pred + p1 + 1) >> 1;
                }
            }
            int16_t v = (int16_t)(crow[x] - pred);
            if (!shift) {
                out[(Py_ssize_t)y * W + x] = v;
            } else {
                int yy = y << 1, xx = x << 1;
                for (int a = 0; a < 2 && yy + a < H; a++) {
                    int16_t *o = out + (Py_ssize_t)(yy + a) * W + xx;
                    o[0] = v;
                    if (xx + 1 < W) o[1] = v;
                }
            }
        }
    }
}

/* Interior fast paths: the whole block and its source(s) lie inside the planes, so rows are plain
 * runs of 8 (luma) or 4 (chroma) bytes with no clamping. q is the second reference of a
 * bi-predicted block, else NULL; the prediction is then (p + q + 1) >> 1, which is exactly SSE2's
 * pavgb. Scalar code elsewhere, with the same results. */
#if EK_SSE2
static inline __m128i load_pred8(const uint8_t *p, const uint8_t *q) {
    __m128i a = _mm_loadl_epi64((const __m128i *)p);
    return q ? _mm_avg_epu8(a, _mm_loadl_epi64((const __m128i *)q)) : a;
}

static inline __m128i load4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_cvtsi32_si128(v);
}

static inline __m128i widen8(const uint8_t *p) {  /* 8 bytes -> 8 uint16 lanes */
    return _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)p), _mm_setzero_si128());
}

static inline void mc_block_luma(const uint8_t *c, Py_ssize_t cs, const uint8_t *p, Py_ssize_t ps,
                                 const uint8_t *q, Py_ssize_t qs, int16_t *o, int W) {
    const __m128i zero = _mm_setzero_si128();
    for (int r = 0; r < 8; r++, c += cs, p += ps, o += W) {
        __m128i pred = _mm_unpacklo_epi8(load_pred8(p, q), zero);
        __m128i cur = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)c), zero);
        _mm_storeu_si128((__m128i *)o, _mm_sub_epi16(cur, pred));
        if (q) q += qs;
    }
}

static inline void mc_block_chroma(const uint8_t *c, Py_ssize_t cs, const uint8_t *p, Py_ssize_t ps,
                                   const uint8_t *q, Py_ssize_t qs, int16_t *o, int W) {
    const __m128i zero = _mm_setzero_si128();
    for (int r = 0; r < 4; r++, c += cs, p += ps, o += 2 * (Py_ssize_t)W) {
        __m128i pred = load4(p);
        if (q) {
            pred = _mm_avg_epu8(pred, load4(q));
            q += qs;
        }
        __m128i v = _mm_sub_epi16(_mm_unpacklo_epi8(load4(c), zero), _mm_unpacklo_epi8(pred, zero));
        v = _mm_unpacklo_epi16(v, v);  /* v0 v0 v1 v1 v2 v2 v3 v3: repeat 2x2 to luma size */
        _mm_storeu_si128((__m128i *)o, v);
        _mm_storeu_si128((__m128i *)(o + W), v);
    }
}
#else
static inline void mc_block_luma(const uint8_t *restrict c, Py_ssize_t cs, const uint8_t *restrict p, Py_ssize_t ps,
                                 const uint8_t *restrict q, Py_ssize_t qs, int16_t *restrict o, int W) {
    for (int r = 0; r < 8; r++, c += cs, p += ps, o += W) {
        if (q) {
            for (int i = 0; i < 8; i++) o[i] = (int16_t)(c[i] - ((p[i] + q[i] + 1) >> 1));
            q += qs;
        } else {
            for (int i = 0; i < 8; i++) o[i] = (int16_t)(c[i] - p[i]);
        }
    }
}

static inline void mc_block_chroma(const uint8_t *restrict c, Py_ssize_t cs, const uint8_t *restrict p, Py_ssize_t ps,
                                   const uint8_t *restrict q, Py_ssize_t qs, int16_t *restrict o, int W) {
    for (int r = 0; r < 4; r++, c += cs, p += ps, o += 2 * (Py_ssize_t)W) {
        int16_t v[4];
        if (q) {
            for (int i = 0; i < 4; i++) v[i] = (int16_t)(c[i] - ((p[i] + q[i] + 1) >> 1));
            q += qs;
        } else {
            for (int i = 0; i < 4; i++) v[i] = (int16_t)(c[i] - p[i]);
        }
        for (int i = 0; i < 4; i++) o[2 * i] = o[2 * i + 1] = v[i];  /* repeat 2x2 to luma size */
        memcpy(o + W, o, 8 * sizeof(int16_t));
    }
}
#endif

static inline int inside(int x, int y, int n, int pw, int ph) { return x >= 0 && y >= 0 && x + n <= pw && y + n <= ph; }

/* Motion-compensated residual of one plane of size (ph, pw); cells are 8 >> shift pixels.
 * Writes cur - pred into out (int16), upsampled by (1 << shift) to the luma size (H, W). */
static void mc_residual_plane(Plane cur, Plane r0, Plane r1, int has_r1, int ph, int pw, int shift,
                              const int *ox0, const int *oy0, const int *ox1, const int *oy1,
                              const uint8_t *fl, int gw, int16_t *out, int H, int W) {
    int n = 8 >> shift; /* cell size in this plane */
    for (int y0 = 0; y0 < ph; y0 += n) {
        int bh = ph - y0 < n ? ph - y0 : n;
        Py_ssize_t crow = (Py_ssize_t)(y0 / n) * gw;
        for (int x0 = 0; x0 < pw; x0 += n) {
            int bw = pw - x0 < n ? pw - x0 : n;
            Py_ssize_t c = crow + x0 / n;
            uint8_t f = fl[c];
            int mode = PRED_L0, ax = 0, ay = 0, bx = 0, by = 0;  /* offsets of the past (a), future (b) refs */
            if ((f & 2) && has_r1) {
                mode = (f & 1) ? PRED_BI : PRED_L1;
                bx = ox1[c], by = oy1[c];
            }
            if (f & 1) ax = ox0[c], ay = oy0[c];
            int fast = bw == n && bh == n && (!shift || (2 * (y0 + n) <= H && 2 * (x0 + n) <= W)) &&
                       (mode == PRED_L1 || inside(x0 - ax, y0 - ay, n, pw, ph)) &&
                       (mode == PRED_L0 || inside(x0 - bx, y0 - by, n, pw, ph));
            if (!fast) {
                mc_block_clamped(cur, r0, r1, mode, ax, ay, bx, by, x0, y0, bw, bh, ph, pw, shift, out, H, W);
                continue;
            }
            const uint8_t *c0 = cur.data + (Py_ssize_t)y0 * cur.stride + x0;
            const uint8_t *p, *q = NULL;
            Py_ssize_t ps, qs = 0;
            if (mode == PRED_L1) {
                p = r1.data + (Py_ssize_t)(y0 - by) * r1.stride + (x0 - bx), ps = r1.stride;
            } else {
                p = r0.data + (Py_ssize_t)(y0 - ay) * r0.stride + (x0 - ax), ps = r0.stride;
                if (mode == PRED_BI) q = r1.data + (Py_ssize_t)(y0 - by) * r1.stride + (x0 - bx), qs = r1.stride;
            }
            if (!shift)
                mc_block_luma(c0, cur.stride, p, ps, q, qs, out + (Py_ssize_t)y0 * W + x0, W);
            else
                mc_block_chroma(c0, cur.stride, p, ps, q, qs, out + (Py_ssize_t)(2 * y0) * W + 2 * x0, W);
        }
    }
}

static int parse_planes(PyObject *tup, Buf *bufs, Plane *planes, const char *what) {
    /* tup = (y, y_stride, u, u_stride, v, v_stride) or None */
    if (tup == Py_None) return 0;
    if (!PyTuple_Check(tup) || PyTuple_GET_SIZE(tup) != 6) {
        PyErr_Format(PyExc_TypeError, "%s must be a 6-tuple (y, ys, u, us, v, vs)", what);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (get_buf(PyTuple_GET_ITEM(tup, 2 * i), &bufs[i], 0, what)) return -1;
        planes[i].data = (const uint8_t *)bufs[i].view.buf;
        planes[i].stride = PyLong_AsSsize_t(PyTuple_GET_ITEM(tup, 2 * i + 1));
        if (planes[i].stride < 0 && PyErr_Occurred()) return -1;
    }
    return 1;
}

/* mc_residual(cur, ref0, ref1_or_None, H, W, d0, d1, flags, gw, out) -> None
 * out: int16 (3, H, W), channels Y, U, V; chroma computed at 4:2:0 resolution and repeated 2x2. */
static PyObject *mc_residual(PyObject *self, PyObject *args) {
    PyObject *o_cur, *o_r0, *o_r1, *o_d0, *o_d1, *o_fl, *o_out;
    int H, W, gw;
    if (!PyArg_ParseTuple(args, "OOOiiOOOiO", &o_cur, &o_r0, &o_r1, &H, &W, &o_d0, &o_d1, &o_fl, &gw, &o_out))
        return NULL;
    Buf b[13];
    memset(b, 0, sizeof(b));
    Plane cur[3], r0[3], r1[3];
    int *ofs = NULL;
    int gh = (H + 7) / 8;
    Py_ssize_t cells = (Py_ssize_t)gh * gw;
    if (parse_planes(o_cur, b, cur, "cur") != 1 || parse_planes(o_r0, b + 3, r0, "ref0") != 1) goto fail;
    int has_r1 = parse_planes(o_r1, b + 6, r1, "ref1");
    if (has_r1 < 0) goto fail;
    if (!has_r1) memcpy(r1, r0, sizeof(r0));
    if (get_buf(o_d0, &b[9], 0, "d0") || get_buf(o_d1, &b[10], 0, "d1") || get_buf(o_fl, &b[11], 0, "flags") ||
        get_buf(o_out, &b[12], 1, "out")) goto fail;
    if (need(&b[9], cells * 8, "d0") || need(&b[10], cells * 8, "d1") || need(&b[11], cells, "flags") ||
        need(&b[12], (Py_ssize_t)3 * H * W * 2, "out")) goto fail;

    ofs = (int *)PyMem_Malloc(sizeof(int) * cells * 8);
    if (!ofs) { PyErr_NoMemory(); goto fail; }
    const float *d0 = (const float *)b[9].view.buf, *d1 = (const float *)b[10].view.buf;
    const uint8_t *fl = (const uint8_t *)b[11].view.buf;
    int16_t *out = (int16_t *)b[12].view.buf;
    int *ox0 = ofs, *oy0 = ofs + cells, *ox1 = ofs + 2 * cells, *oy1 = ofs + 3 * cells;
    int *cx0 = ofs + 4 * cells, *cy0 = ofs + 5 * cells, *cx1 = ofs + 6 * cells, *cy1 = ofs + 7 * cells;

    Py_BEGIN_ALLOW_THREADS
    cell_offsets(d0, cells, 0, ox0, oy0);
    cell_offsets(d1, cells, 0, ox1, oy1);
    cell_offsets(d0, cells, 1, cx0, cy0);
    cell_offsets(d1, cells, 1, cx1, cy1);
    int ch = (H + 1) / 2, cw = (W + 1) / 2;
    mc_residual_plane(cur[0], r0[0], r1[0], has_r1, H, W, 0, ox0, oy0, ox1, oy1, fl, gw, out, H, W);
    mc_residual_plane(cur[1], r0[1], r1[1], has_r1, ch, cw, 1, cx0, cy0, cx1, cy1, fl, gw, out + (Py_ssize_t)H * W, H, W);
    mc_residual_plane(cur[2], r0[2], r1[2], has_r1, ch, cw, 1, cx0, cy0, cx1, cy1, fl, gw, out + (Py_ssize_t)2 * H * W, H, W);
    Py_END_ALLOW_THREADS
    PyMem_Free(ofs);
    release(b, 13);
    Py_RETURN_NONE;
fail:
    PyMem_Free(ofs);
    release(b, 13);
    return NULL;
}

/* accumulate(acc0, acc1_or_None, H, W, d0, d1, flags, gw, out) -> None
 * Traces every pixel back to the GOP's I-frame: out[p] = acc_ref[p - round(d)] with the past
 * reference's map for L0 vectors, the future reference's for L1-only blocks; intra blocks (and
 * L1-only blocks when acc1 is None) keep the past reference's co-located position. */
static PyObject *accumulate(PyObject *self, PyObject *args) {
    PyObject *o_a0, *o_a1, *o_d0, *o_d1, *o_fl, *o_out;
    int H, W, gw;
    if (!PyArg_ParseTuple(args, "OOiiOOOiO", &o_a0, &o_a1, &H, &W, &o_d0, &o_d1, &o_fl, &gw, &o_out)) return NULL;
    Buf b[6];
    memset(b, 0, sizeof(b));
    int *ofs = NULL;
    int gh = (H + 7) / 8;
    Py_ssize_t cells = (Py_ssize_t)gh * gw, npix = (Py_ssize_t)H * W;
    if (get_buf(o_a0, &b[0], 0, "acc0") || get_buf(o_a1, &b[1], 0, "acc1") || get_buf(o_d0, &b[2], 0, "d0") ||
        get_buf(o_d1, &b[3], 0, "d1") || get_buf(o_fl, &b[4], 0, "flags") || get_buf(o_out, &b[5], 1, "out"))
        goto fail;
    if (need(&b[0], npix * 4, "acc0") || (b[1].held && need(&b[1], npix * 4, "acc1")) || need(&b[2], cells * 8, "d0") ||
        need(&b[3], cells * 8, "d1") || need(&b[4], cells, "flags") || need(&b[5], npix * 4, "out")) goto fail;
    ofs = (int *)PyMem_Malloc(sizeof(int) * cells * 4);
    if (!ofs) { PyErr_NoMemory(); goto fail; }
    const int32_t *a0 = (const int32_t *)b[0].view.buf;
    const int32_t *a1 = b[1].held ? (const int32_t *)b[1].view.buf : NULL;
    const uint8_t *fl = (const uint8_t *)b[4].view.buf;
    int32_t *out = (int32_t *)b[5].view.buf;
    int *ox0 = ofs, *oy0 = ofs + cells, *ox1 = ofs + 2 * cells, *oy1 = ofs + 3 * cells;

    Py_BEGIN_ALLOW_THREADS
    cell_offsets((const float *)b[2].view.buf, cells, 0, ox0, oy0);
    cell_offsets((const float *)b[3].view.buf, cells, 0, ox1, oy1);
    for (int y0 = 0; y0 < H; y0 += 8) {
        int bh = H - y0 < 8 ? H - y0 : 8;
        for (int x0 = 0; x0 < W; x0 += 8) {
            int bw = W - x0 < 8 ? W - x0 : 8;
            Py_ssize_t c = (Py_ssize_t)(y0 >> 3) * gw + (x0 >> 3);
            uint8_t f = fl[c];
            const int32_t *src = a0;
            int ox = 0, oy = 0;  /* intra (and L1-only without acc1): co-located past position */
            if (f & 1)
                src = a0, ox = ox0[c], oy = oy0[c];
            else if ((f & 2) && a1)
                src = a1, ox = ox1[c], oy = oy1[c];
            int sx = x0 - ox, sy = y0 - oy;
            if (sx >= 0 && sy >= 0 && sx + bw <= W && sy + bh <= H) {  /* interior: copy rows */
                int32_t *o = out + (Py_ssize_t)y0 * W + x0;
                const int32_t *q = src + (Py_ssize_t)sy * W + sx;
                if (bw == 8) {  /* constant size: inlined as two 16-byte moves */
                    for (int r = 0; r < bh; r++, o += W, q += W) memcpy(o, q, 8 * sizeof(int32_t));
                } else {
                    for (int r = 0; r < bh; r++, o += W, q += W) memcpy(o, q, bw * sizeof(int32_t));
                }
            } else {  /* the block reaches past the frame edge: clamp every position */
                for (int y = y0; y < y0 + bh; y++)
                    for (int x = x0; x < x0 + bw; x++)
                        out[(Py_ssize_t)y * W + x] = src[(Py_ssize_t)clampi(y - oy, 0, H - 1) * W + clampi(x - ox, 0, W - 1)];
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(ofs);
    release(b, 6);
    Py_RETURN_NONE;
fail:
    PyMem_Free(ofs);
    release(b, 6);
    return NULL;
}

/* One chroma sample of acc_residual, repeated 2x2 into the luma-sized plane o (bounds-checked). */
static inline void acc_chroma_sample(const uint8_t *crow, const int32_t *arow, Plane ip, int16_t *o,
                                     int y, int x, int H, int W) {
    int32_t a = arow[x << 1];
    int16_t v = (int16_t)(crow[x] - ip.data[(Py_ssize_t)(a >> 17) * ip.stride + ((a & 0xFFFF) >> 1)]);
    int yy = y << 1, xx = x << 1;
    for (int r = 0; r < 2 && yy + r < H; r++) {
        int16_t *q = o + (Py_ssize_t)(yy + r) * W + xx;
        q[0] = v;
        if (xx + 1 < W) q[1] = v;
    }
}

#if EK_SSE2
/* Positions are packed (y << 16) | x with x < W, so a[i] == a[0] + i for the whole run means one row of
 * consecutive source pixels: most runs are, since accumulation copies whole blocks at an offset. */
static inline int run_is_contiguous(__m128i lo, __m128i hi, int32_t a0) {
    __m128i base = _mm_set1_epi32(a0);
    __m128i eq = _mm_and_si128(_mm_cmpeq_epi32(lo, _mm_add_epi32(base, _mm_setr_epi32(0, 1, 2, 3))),
                               _mm_cmpeq_epi32(hi, _mm_add_epi32(base, _mm_setr_epi32(4, 5, 6, 7))));
    return _mm_movemask_epi8(eq) == 0xFFFF;
}

/* The chroma samples of a luma run use positions a[0], a[2], a[4], a[6]: consecutive luma x (any
 * parity) halve to consecutive chroma x, on one chroma row. */
static inline int even_run_is_contiguous(__m128i lo, __m128i hi, int32_t a0) {
    __m128i even = _mm_castps_si128(_mm_shuffle_ps(_mm_castsi128_ps(lo), _mm_castsi128_ps(hi), _MM_SHUFFLE(2, 0, 2, 0)));
    __m128i want = _mm_add_epi32(_mm_set1_epi32(a0), _mm_setr_epi32(0, 2, 4, 6));
    return _mm_movemask_epi8(_mm_cmpeq_epi32(even, want)) == 0xFFFF;
}
#endif

/* acc_residual(cur, iframe, acc, H, W, out) -> None
 * out[c, p] = cur_c[p] - iframe_c[acc[p]]; chroma at 4:2:0 resolution, traced through the
 * accumulated position of the chroma sample's top-left luma pixel, repeated 2x2. */
static PyObject *acc_residual(PyObject *self, PyObject *args) {
    PyObject *o_cur, *o_i, *o_acc, *o_out;
    int H, W;
    if (!PyArg_ParseTuple(args, "OOOiiO", &o_cur, &o_i, &o_acc, &H, &W, &o_out)) return NULL;
    Buf b[8];
    memset(b, 0, sizeof(b));
    Plane cur[3], ip[3];
    Py_ssize_t npix = (Py_ssize_t)H * W;
    if (parse_planes(o_cur, b, cur, "cur") != 1 || parse_planes(o_i, b + 3, ip, "iframe") != 1) goto fail;
    if (get_buf(o_acc, &b[6], 0, "acc") || get_buf(o_out, &b[7], 1, "out")) goto fail;
    if (need(&b[6], npix * 4, "acc") || need(&b[7], 3 * npix * 2, "out")) goto fail;
    const int32_t *acc = (const int32_t *)b[6].view.buf;
    int16_t *out = (int16_t *)b[7].view.buf;

    Py_BEGIN_ALLOW_THREADS
    for (int y = 0; y < H; y++) {
        const uint8_t *crow = cur[0].data + (Py_ssize_t)y * cur[0].stride;
        const int32_t *arow = acc + (Py_ssize_t)y * W;
        int16_t *orow = out + (Py_ssize_t)y * W;
        int x = 0;
#if EK_SSE2
        for (; x + 8 <= W; x += 8) {
            const int32_t *a = arow + x;
            if (run_is_contiguous(_mm_loadu_si128((const __m128i *)a), _mm_loadu_si128((const __m128i *)(a + 4)), a[0])) {
                const uint8_t *src = ip[0].data + (Py_ssize_t)(a[0] >> 16) * ip[0].stride + (a[0] & 0xFFFF);
                _mm_storeu_si128((__m128i *)(orow + x), _mm_sub_epi16(widen8(crow + x), widen8(src)));
            } else {
                for (int i = 0; i < 8; i++) {
                    const uint8_t *irow = ip[0].data + (Py_ssize_t)(a[i] >> 16) * ip[0].stride;
                    orow[x + i] = (int16_t)(crow[x + i] - irow[a[i] & 0xFFFF]);
                }
            }
        }
#endif
        for (; x < W; x++) {
            int32_t a = arow[x];
            orow[x] = (int16_t)(crow[x] - ip[0].data[(Py_ssize_t)(a >> 16) * ip[0].stride + (a & 0xFFFF)]);
        }
    }
    int ch = (H + 1) / 2, cw = (W + 1) / 2;
    for (int k = 1; k < 3; k++) {
        int16_t *o = out + (Py_ssize_t)k * npix;
        for (int y = 0; y < ch; y++) {
            const uint8_t *crow = cur[k].data + (Py_ssize_t)y * cur[k].stride;
            const int32_t *arow = acc + (Py_ssize_t)(y << 1) * W;
            int x = 0;
#if EK_SSE2
            if ((y << 1) + 1 < H) {  /* both output rows exist: 4 samples -> an 8x2 block at a time */
                for (; (x << 1) + 8 <= W; x += 4) {
                    const int32_t *a = arow + (x << 1);
                    __m128i lo = _mm_loadu_si128((const __m128i *)a), hi = _mm_loadu_si128((const __m128i *)(a + 4));
                    __m128i v;
                    if (even_run_is_contiguous(lo, hi, a[0])) {
                        const uint8_t *src = ip[k].data + (Py_ssize_t)(a[0] >> 17) * ip[k].stride + ((a[0] & 0xFFFF) >> 1);
                        v = _mm_sub_epi16(_mm_unpacklo_epi8(load4(crow + x), _mm_setzero_si128()),
                                          _mm_unpacklo_epi8(load4(src), _mm_setzero_si128()));
                    } else {
                        int16_t t[4];
                        for (int i = 0; i < 4; i++) {
                            int32_t ai = a[2 * i];
                            const uint8_t *irow = ip[k].data + (Py_ssize_t)(ai >> 17) * ip[k].stride;
                            t[i] = (int16_t)(crow[x + i] - irow[(ai & 0xFFFF) >> 1]);
                        }
                        v = _mm_loadl_epi64((const __m128i *)t);
                    }
                    v = _mm_unpacklo_epi16(v, v);  /* repeat 2x2 */
                    int16_t *q = o + (Py_ssize_t)(y << 1) * W + (x << 1);
                    _mm_storeu_si128((__m128i *)q, v);
                    _mm_storeu_si128((__m128i *)(q + W), v);
                }
            }
#endif
            for (; x < cw; x++) acc_chroma_sample(crow, arow, ip[k], o, y, x, H, W);
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 8);
    Py_RETURN_NONE;
fail:
    release(b, 8);
    return NULL;
}

static PyMethodDef methods[] = {
    {"mv_grid", mv_grid, METH_VARARGS, "Scatter AVMotionVector side data onto the 8x8 grid."},
    {"mc_residual", mc_residual, METH_VARARGS, "Motion-compensated residual of a YUV 4:2:0 frame."},
    {"accumulate", accumulate, METH_VARARGS, "Trace every pixel back to the GOP's I-frame."},
    {"acc_residual", acc_residual, METH_VARARGS, "Residual against the I-frame at accumulated positions."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "edgekit native kernels", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
