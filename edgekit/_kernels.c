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

/* SSE2 fast paths on x86-64 (always present there); portable scalar code elsewhere (aarch64: Jetson,
 * Raspberry-class boards), same results. -DEK_PORTABLE builds the portable path on x86-64 too, so the
 * tests can run it here (tests/test_kernels_portable.py). */
#if !defined(EK_PORTABLE) && (defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2))
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
/* floor(v + 0.5) without libm (floorf is a call on baseline x86-64): truncate, then step down for
 * negative non-integers. Exact for |v| < 2^30, far beyond any motion vector. */
static inline int roundi(float v) {
    /* saturate first: (int) of a float beyond int range is undefined; any offset this large points
     * far outside every frame (W, H < 2^16), where both kernels clamp to the edge anyway */
    if (!(v > -16777216.0f)) v = -16777216.0f;  /* NaN too: -2^24, as the numpy reference does */
    if (v > 16777216.0f) v = 16777216.0f;
    float t = v + 0.5f;
    int i = (int)t;
    return i - (t < (float)i);
}

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

/* The MV grid size every grid kernel is given: gh x gw cells, at most 4096 x 8192. */
static int check_grid(int gh, int gw) {
    if (gh >= 0 && gw >= 0 && gh <= 4096 && gw <= 8192) return 0;
    PyErr_Format(PyExc_ValueError, "bad MV grid size: gh=%d gw=%d", gh, gw);
    return -1;
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
    if (check_grid(gh, gw)) goto fail;
    if (b[0].held && b[0].view.len % (Py_ssize_t)sizeof(MotionVector)) {
        PyErr_Format(PyExc_ValueError, "side_data: %zd bytes is not a whole number of %d-byte motion vectors",
                     b[0].view.len, (int)sizeof(MotionVector));
        goto fail;
    }
    Py_ssize_t cells = (Py_ssize_t)gh * gw;
    if (need(&b[1], cells * 2 * 4, "d0") || need(&b[2], cells * 2 * 4, "d1") || need(&b[3], cells, "flags")) goto fail;

    float *d0 = (float *)b[1].view.buf, *d1 = (float *)b[2].view.buf;
    uint8_t *fl = (uint8_t *)b[3].view.buf;
    memset(d0, 0, cells * 2 * 4);
    memset(d1, 0, cells * 2 * 4);
    memset(fl, 0, cells);
    Py_ssize_t n = b[0].held ? b[0].view.len / (Py_ssize_t)sizeof(MotionVector) : 0;
    const MotionVector *mv = b[0].held ? (const MotionVector *)b[0].view.buf : NULL;

    /* microseconds of work: keep the GIL (releasing it lets a decoding thread take it, and getting it
     * back can cost more than the loop) */
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
    release(b, 4);
    Py_RETURN_NONE;
fail:
    release(b, 4);
    return NULL;
}

/* drop_long(d0, d1, flags, gh, gw, limit) -> int
 * Zeroes every vector of d0/d1 (float32 (2, gh, gw)) longer than limit px and clears its reference's
 * bit in flags (uint8 (gh, gw)): that cell reads as intra for that reference. Returns the cells
 * dropped (counted once per reference). NaN vectors are left alone (the trace saturates them). */
static PyObject *drop_long(PyObject *self, PyObject *args) {
    PyObject *o_d0, *o_d1, *o_fl;
    int gh, gw;
    double limit;
    if (!PyArg_ParseTuple(args, "OOOiid", &o_d0, &o_d1, &o_fl, &gh, &gw, &limit)) return NULL;
    Buf b[3];
    memset(b, 0, sizeof(b));
    if (get_buf(o_d0, &b[0], 1, "d0") || get_buf(o_d1, &b[1], 1, "d1") || get_buf(o_fl, &b[2], 1, "flags")) goto fail;
    if (check_grid(gh, gw)) goto fail;
    if (!(limit >= 0.0) || limit > 1e9) {  /* also refuses NaN */
        PyErr_Format(PyExc_ValueError, "limit must be a length in pixels >= 0, got %g", limit);
        goto fail;
    }
    Py_ssize_t cells = (Py_ssize_t)gh * gw;
    if (need(&b[0], cells * 2 * 4, "d0") || need(&b[1], cells * 2 * 4, "d1") || need(&b[2], cells, "flags")) goto fail;
    float *d[2] = {(float *)b[0].view.buf, (float *)b[1].view.buf};
    uint8_t *fl = (uint8_t *)b[2].view.buf;
    const float limit2 = (float)limit * (float)limit;
    long dropped = 0;
    for (int r = 0; r < 2; r++) {
        float *dx = d[r], *dy = d[r] + cells;
        const uint8_t keep = (uint8_t)~(r ? 2 : 1);
        for (Py_ssize_t c = 0; c < cells; c++)
            if (dx[c] * dx[c] + dy[c] * dy[c] > limit2) {
                dx[c] = 0.0f;
                dy[c] = 0.0f;
                fl[c] &= keep;
                dropped++;
            }
    }
    release(b, 3);
    return PyLong_FromLong(dropped);
fail:
    release(b, 3);
    return NULL;
}

#if EK_SSE2
static inline __m128i load4(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_cvtsi32_si128(v);
}

static inline __m128i widen8(const uint8_t *p) {  /* 8 bytes -> 8 uint16 lanes */
    return _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)p), _mm_setzero_si128());
}
#endif

/* ---- parallel bands --------------------------------------------------------------------------
 * The pixel kernels split their rows into `parts` horizontal bands, one per thread (the calling
 * thread takes band 0). Bands write disjoint rows of the output and only read shared inputs, so
 * the result does not depend on the thread count. POSIX threads; one band (serial) elsewhere. */
#if !defined(_WIN32)
#include <pthread.h>
#define EK_THREADS 1
#else
#define EK_THREADS 0
#endif
#define EK_MAX_PARTS 16

/* Band results, or-ed over the bands: 0 is success. */
#define EK_NOMEM 1
#define EK_BAD_POSITION 2

typedef int (*band_fn)(void *ctx, int part, int parts);  /* returns 0 or EK_* bits */

typedef struct {
    band_fn fn;
    void *ctx;
    int part, parts, rc;
} BandJob;

#if EK_THREADS
static void *band_main(void *arg) {
    BandJob *j = (BandJob *)arg;
    j->rc = j->fn(j->ctx, j->part, j->parts);
    return NULL;
}
#endif

/* Runs fn over `parts` bands; call without the GIL. Returns 0, or the EK_* bits of the bands that failed. */
static int run_bands(band_fn fn, void *ctx, int parts) {
    if (parts < 1) parts = 1;
    if (parts > EK_MAX_PARTS) parts = EK_MAX_PARTS;
    BandJob jobs[EK_MAX_PARTS];
    int rc = 0;
#if EK_THREADS
    pthread_t tids[EK_MAX_PARTS];
    int started[EK_MAX_PARTS] = {0};
    for (int p = 1; p < parts; p++) {
        jobs[p] = (BandJob){fn, ctx, p, parts, 0};
        started[p] = pthread_create(&tids[p], NULL, band_main, &jobs[p]) == 0;
        if (!started[p]) jobs[p].rc = fn(ctx, p, parts);  /* no thread to be had: run it here */
    }
    rc |= fn(ctx, 0, parts);
    for (int p = 1; p < parts; p++) {
        if (started[p]) pthread_join(tids[p], NULL);
        rc |= jobs[p].rc;
    }
#else
    for (int p = 0; p < parts; p++) rc |= fn(ctx, p, parts);
#endif
    return rc;
}

static inline int band_lo(int n, int part, int parts) { return (int)((int64_t)n * part / parts); }

/* Streaming stores need 16-byte aligned rows: an aligned buffer and a width that is a multiple of 8. */
static inline int streamable(const int16_t *out, int W) {
#if EK_SSE2
    return ((uintptr_t)out & 15) == 0 && (W & 7) == 0 && (Py_ssize_t)W * 2 >= 1024;
#else
    (void)out, (void)W;
    return 0;
#endif
}

static inline void stream_fence(int nt) {
#if EK_SSE2
    if (nt) _mm_sfence();
#else
    (void)nt;
#endif
}

#define EK_MAX_H 32767
#define EK_MAX_W 65535

/* The frame geometry every pixel kernel is given: a positive size and gw = ceil(W / 8). */
static int check_geometry(int H, int W, int gw) {
    /* positions pack (y << 16) | x into an int32: y < 2^15, x < 2^16 */
    if (H > 0 && W > 0 && H <= EK_MAX_H && W <= EK_MAX_W && gw == (W + 7) / 8) return 0;
    PyErr_Format(PyExc_ValueError, "bad frame geometry: H=%d W=%d gw=%d", H, W, gw);
    return -1;
}

/* Runs a prepared job's bands without the GIL, then releases its n buffers. */
static PyObject *run_job(band_fn fn, void *job, int threads, Buf *bufs, int n) {
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = run_bands(fn, job, threads);
    Py_END_ALLOW_THREADS
    release(bufs, n);
    if (rc & EK_NOMEM) return PyErr_NoMemory();
    if (rc & EK_BAD_POSITION) {
        PyErr_SetString(PyExc_ValueError,
                        "accumulated positions point outside the frame (acc0/acc1 of another geometry?)");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ---- motion-compensated residual --------------------------------------------------------------- */

typedef struct {
    const uint8_t *data;
    Py_ssize_t stride;
} Plane;

enum { PRED_L0, PRED_L1, PRED_BI };  /* intra blocks are PRED_L0 with a zero offset (co-located) */

/* How one cell of one plane is predicted: the mode, the integer source offsets of the past (a) and
 * future (b) references, and whether the whole cell and its source(s) lie inside the plane. */
typedef struct {
    int mode, ax, ay, bx, by, fast;
    int run;  /* fast cells: how many cells from this one on share its mode and offsets */
} CellPred;

static inline int inside(int x, int y, int w, int h, int pw, int ph) {
    return x >= 0 && y >= 0 && x + w <= pw && y + h <= ph;
}

/* Plans the gw cells of cell row cy for a plane of size (ph, pw) with cells of n pixels. */
static void plan_cell_row(CellPred *cp, int cy, int n, int shift, int ph, int pw, int has_r1,
                          const float *d0, const float *d1, const uint8_t *fl, int gw, Py_ssize_t cells) {
    float s = shift ? 0.5f : 1.0f;
    int y0 = cy * n, bh = ph - y0 < n ? ph - y0 : n;
    for (int cx = 0; cx < gw; cx++) {
        Py_ssize_t c = (Py_ssize_t)cy * gw + cx;
        CellPred *p = &cp[cx];
        uint8_t f = fl[c];
        int x0 = cx * n;
        p->mode = PRED_L0, p->ax = p->ay = p->bx = p->by = 0;
        if ((f & 2) && has_r1) {
            p->mode = (f & 1) ? PRED_BI : PRED_L1;
            p->bx = roundi(d1[c] * s), p->by = roundi(d1[cells + c] * s);
        }
        if (f & 1) p->ax = roundi(d0[c] * s), p->ay = roundi(d0[cells + c] * s);
        p->fast = x0 + n <= pw &&
                  (p->mode == PRED_L1 || inside(x0 - p->ax, y0 - p->ay, n, bh, pw, ph)) &&
                  (p->mode == PRED_L0 || inside(x0 - p->bx, y0 - p->by, n, bh, pw, ph));
    }
    /* runs of neighbouring cells predicted alike (static background, macroblocks of 2x2 cells) are
     * one contiguous source span: mc_cells handles them 16 pixels at a time */
    for (int cx = gw - 1; cx >= 0; cx--) {
        CellPred *p = &cp[cx], *q = &cp[cx + 1];
        p->run = 1;
        if (p->fast && cx + 1 < gw && q->fast && q->mode == p->mode && q->ax == p->ax && q->ay == p->ay &&
            q->bx == p->bx && q->by == p->by)
            p->run = q->run + 1;
    }
}

/* o[i] = c[i] - pred[i] over len pixels (a multiple of 4), pred = s, or the rounded mean of s and q. */
#if EK_SSE2
/* Full-frame outputs are written once and read later: streaming stores skip the read-for-ownership of
 * every output line (a third of the memory traffic at 1080p). nt only where o is 16-byte aligned. */
static inline void store8x16(int16_t *o, __m128i v, int nt) {
    if (nt) _mm_stream_si128((__m128i *)o, v);
    else _mm_storeu_si128((__m128i *)o, v);
}
#endif

#if EK_SSE2
/* o[0..7] = c - pred over 8 pixels, pred = s, or the rounded mean of s and q (pavgb) */
static inline void sub8(const uint8_t *c, const uint8_t *s, const uint8_t *q, int16_t *o, int nt) {
    const __m128i zero = _mm_setzero_si128();
    __m128i pred = _mm_loadl_epi64((const __m128i *)s);
    if (q) pred = _mm_avg_epu8(pred, _mm_loadl_epi64((const __m128i *)q));
    __m128i cur = _mm_loadl_epi64((const __m128i *)c);
    store8x16(o, _mm_sub_epi16(_mm_unpacklo_epi8(cur, zero), _mm_unpacklo_epi8(pred, zero)), nt);
}

/* the same over 4 pixels (a normal store: 8 bytes) */
static inline void sub4(const uint8_t *c, const uint8_t *s, const uint8_t *q, int16_t *o) {
    const __m128i zero = _mm_setzero_si128();
    __m128i pred = load4(s);
    if (q) pred = _mm_avg_epu8(pred, load4(q));
    _mm_storel_epi64((__m128i *)o, _mm_sub_epi16(_mm_unpacklo_epi8(load4(c), zero), _mm_unpacklo_epi8(pred, zero)));
}
#endif

static inline void sub_run(const uint8_t *c, const uint8_t *s, const uint8_t *q, int16_t *o, int len, int nt) {
    int i = 0;
#if EK_SSE2
    const __m128i zero = _mm_setzero_si128();
    for (; i + 16 <= len; i += 16) {
        __m128i pred = _mm_loadu_si128((const __m128i *)(s + i));
        if (q) pred = _mm_avg_epu8(pred, _mm_loadu_si128((const __m128i *)(q + i)));
        __m128i cur = _mm_loadu_si128((const __m128i *)(c + i));
        store8x16(o + i, _mm_sub_epi16(_mm_unpacklo_epi8(cur, zero), _mm_unpacklo_epi8(pred, zero)), nt);
        store8x16(o + i + 8, _mm_sub_epi16(_mm_unpackhi_epi8(cur, zero), _mm_unpackhi_epi8(pred, zero)), nt);
    }
    if (i + 8 <= len) {
        sub8(c + i, s + i, q ? q + i : NULL, o + i, nt);
        i += 8;
    }
    if (i + 4 <= len) {
        sub4(c + i, s + i, q ? q + i : NULL, o + i);
        i += 4;
    }
#endif
    for (; i < len; i++) o[i] = (int16_t)(c[i] - (q ? (s[i] + q[i] + 1) >> 1 : s[i]));
}

static inline int fetch(Plane r, int y, int x, int ph, int pw) {
    return r.data[(Py_ssize_t)clampi(y, 0, ph - 1) * r.stride + clampi(x, 0, pw - 1)];
}

/* Rows ya..yb-1 of one cell row of one plane's residual, cur - pred, at the plane's resolution:
 * row y goes to o + (y - ya) * os (pw int16 values each). Cell-major: a run of interior cells takes
 * all its rows in one go, so its plan and source pointers are worked out once per cell row, not once
 * per pixel row (with 8x8 vectors that vary from cell to cell, the per-row bookkeeping cost more than
 * the arithmetic). Interior cells are runs of 8 (luma) or 4 (chroma) bytes per row; a bi-predicted
 * cell averages its two sources as (p + q + 1) >> 1, which is exactly SSE2's pavgb. Cells whose
 * source leaves the plane, and partial cells at the right edge, fetch clamped pixels (the codecs'
 * edge extension). */
static void mc_cells(Plane cur, Plane r0, Plane r1, int ya, int yb, int ph, int pw, int n,
                     const CellPred *cp, int gw, int16_t *o, Py_ssize_t os, int nt) {
    for (int cx = 0, x0 = 0; cx < gw && x0 < pw; x0 = cx * n) {
        const CellPred *p = &cp[cx];
        if (p->fast) {
            const uint8_t *s, *q = NULL;
            Py_ssize_t ss, qs = 0;
            if (p->mode == PRED_L1) {
                s = r1.data + (Py_ssize_t)(ya - p->by) * r1.stride + (x0 - p->bx), ss = r1.stride;
            } else {
                s = r0.data + (Py_ssize_t)(ya - p->ay) * r0.stride + (x0 - p->ax), ss = r0.stride;
                if (p->mode == PRED_BI)
                    q = r1.data + (Py_ssize_t)(ya - p->by) * r1.stride + (x0 - p->bx), qs = r1.stride;
            }
            const uint8_t *c = cur.data + (Py_ssize_t)ya * cur.stride + x0;
            int16_t *t = o + x0;
            int len = p->run * n;
#if EK_SSE2
            /* one luma cell or one or two chroma ones (vectors vary): a row per register. Its own loop,
             * not a branch on len inside the one below: that merged form measured 5-7 % slower at 720p
             * with random vectors (both builds loaded side by side, min of 15 blocks). */
            if (len <= 8) {
                for (int y = ya; y < yb; y++, c += cur.stride, s += ss, q = q ? q + qs : NULL, t += os) {
                    if (len == 8) sub8(c, s, q, t, nt);
                    else sub4(c, s, q, t);
                }
                cx += p->run;
                continue;
            }
#endif
            for (int y = ya; y < yb; y++, c += cur.stride, s += ss, q = q ? q + qs : NULL, t += os)
                sub_run(c, s, q, t, len, nt);
            cx += p->run;
            continue;
        }
        cx++;
        int bw = pw - x0 < n ? pw - x0 : n;
        for (int y = ya; y < yb; y++) {
            const uint8_t *crow = cur.data + (Py_ssize_t)y * cur.stride;
            int16_t *t = o + (Py_ssize_t)(y - ya) * os;
            for (int x = x0; x < x0 + bw; x++) {
                int pred;
                if (p->mode == PRED_L1) {
                    pred = fetch(r1, y - p->by, x - p->bx, ph, pw);
                } else {
                    pred = fetch(r0, y - p->ay, x - p->ax, ph, pw);
                    if (p->mode == PRED_BI) pred = (pred + fetch(r1, y - p->by, x - p->bx, ph, pw) + 1) >> 1;
                }
                t[x] = (int16_t)(crow[x] - pred);
            }
        }
    }
}

/* Repeats a chroma row (ceil(W / 2) values) 2x2 into luma-sized rows o0 and o1 (W values each;
 * o1 may be NULL at the bottom of an odd-height frame). */
static void widen_rows(const int16_t *t, int16_t *o0, int16_t *o1, int W, int nt) {
    int x = 0;
#if EK_SSE2
    for (; x + 16 <= W; x += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(t + (x >> 1)));
        __m128i lo = _mm_unpacklo_epi16(v, v), hi = _mm_unpackhi_epi16(v, v);
        store8x16(o0 + x, lo, nt);
        store8x16(o0 + x + 8, hi, nt);
        if (o1) {
            store8x16(o1 + x, lo, nt);
            store8x16(o1 + x + 8, hi, nt);
        }
    }
#endif
    for (; x < W; x++) {
        o0[x] = t[x >> 1];
        if (o1) o1[x] = t[x >> 1];
    }
}

/* Parses tup = (y, y_stride, u, u_stride, v, v_stride) or None for a 4:2:0 frame of H x W pixels.
 * Every plane must hold its rows: stride >= plane width and at least (rows - 1) * stride + width
 * bytes, so that no row the kernels read leaves the buffer. Returns 1, 0 for None, -1 on error. */
static int parse_planes(PyObject *tup, Buf *bufs, Plane *planes, int H, int W, const char *what) {
    if (tup == Py_None) return 0;
    if (!PyTuple_Check(tup) || PyTuple_GET_SIZE(tup) != 6) {
        PyErr_Format(PyExc_TypeError, "%s must be a 6-tuple (y, ys, u, us, v, vs)", what);
        return -1;
    }
    static const char *names[3] = {"Y", "U", "V"};
    for (int i = 0; i < 3; i++) {
        if (get_buf(PyTuple_GET_ITEM(tup, 2 * i), &bufs[i], 0, what)) return -1;
        if (!bufs[i].held) {
            PyErr_Format(PyExc_TypeError, "%s: the %s plane is missing", what, names[i]);
            return -1;
        }
        planes[i].data = (const uint8_t *)bufs[i].view.buf;
        planes[i].stride = PyLong_AsSsize_t(PyTuple_GET_ITEM(tup, 2 * i + 1));
        if (planes[i].stride == -1 && PyErr_Occurred()) return -1;
        Py_ssize_t ph = i ? (H + 1) / 2 : H, pw = i ? (W + 1) / 2 : W;
        if (planes[i].stride < pw || planes[i].stride > ((Py_ssize_t)1 << 24)) {
            PyErr_Format(PyExc_ValueError, "%s: %s plane stride %zd does not fit a row of %zd pixels", what,
                         names[i], planes[i].stride, pw);
            return -1;
        }
        Py_ssize_t nbytes = (ph - 1) * planes[i].stride + pw;
        if (bufs[i].view.len < nbytes) {
            PyErr_Format(PyExc_ValueError, "%s: %s plane holds %zd bytes, a %zdx%zd plane with stride %zd needs %zd",
                         what, names[i], bufs[i].view.len, pw, ph, planes[i].stride, nbytes);
            return -1;
        }
    }
    return 1;
}

typedef struct {
    Plane cur[3], r0[3], r1[3];
    int has_r1, H, W, gw;
    Py_ssize_t cells;
    const float *d0, *d1;
    const uint8_t *fl;
    int16_t *out;
    int c420;  /* 4:2:0 layout: Y (H, W) then U and V at ((H + 1) / 2, (W + 1) / 2), not repeated */
} McJob;

static int mc_band(void *arg, int part, int parts) {
    McJob *j = (McJob *)arg;
    int H = j->H, W = j->W, gw = j->gw, ch = (H + 1) / 2, cw = (W + 1) / 2;
    Py_ssize_t ts = cw + 8;  /* a row of tmp */
    CellPred *cp = (CellPred *)PyMem_RawMalloc(sizeof(CellPred) * gw);
    int16_t *tmp = (int16_t *)PyMem_RawMalloc(sizeof(int16_t) * 4 * ts);
    if (!cp || !tmp) {
        PyMem_RawFree(cp);
        PyMem_RawFree(tmp);
        return EK_NOMEM;
    }
    int nt = streamable(j->out, W);
    int y0 = band_lo(H, part, parts), y1 = band_lo(H, part + 1, parts);
    for (int ya = y0; ya < y1;) {  /* luma, one cell row (or the band's part of it) at a time */
        int yb = ((ya >> 3) + 1) << 3;
        if (yb > y1) yb = y1;
        plan_cell_row(cp, ya >> 3, 8, 0, H, W, j->has_r1, j->d0, j->d1, j->fl, gw, j->cells);
        mc_cells(j->cur[0], j->r0[0], j->r1[0], ya, yb, H, W, 8, cp, gw, j->out + (Py_ssize_t)ya * W, W, nt);
        ya = yb;
    }
    y0 = band_lo(ch, part, parts), y1 = band_lo(ch, part + 1, parts);
    for (int k = 1; k < 3; k++) {  /* chroma: 4x4 cells; in 4:4:4 each row widened into two luma-sized rows */
        int16_t *o = j->out + (Py_ssize_t)k * H * W;
        for (int ya = y0; ya < y1;) {
            int yb = ((ya >> 2) + 1) << 2;
            if (yb > y1) yb = y1;
            plan_cell_row(cp, ya >> 2, 4, 1, ch, cw, j->has_r1, j->d0, j->d1, j->fl, gw, j->cells);
            if (j->c420) {
                int16_t *row = j->out + (Py_ssize_t)H * W + ((Py_ssize_t)(k - 1) * ch + ya) * cw;
                mc_cells(j->cur[k], j->r0[k], j->r1[k], ya, yb, ch, cw, 4, cp, gw, row, cw, 0);
            } else {
                mc_cells(j->cur[k], j->r0[k], j->r1[k], ya, yb, ch, cw, 4, cp, gw, tmp, ts, 0);
                for (int y = ya; y < yb; y++) {
                    int16_t *row = o + (Py_ssize_t)(2 * y) * W;
                    widen_rows(tmp + (Py_ssize_t)(y - ya) * ts, row, 2 * y + 1 < H ? row + W : NULL, W, nt);
                }
            }
            ya = yb;
        }
    }
    stream_fence(nt);
    PyMem_RawFree(cp);
    PyMem_RawFree(tmp);
    return 0;
}

/* Elements of an int16 residual of H x W: (3, H, W), or Y + U + V at 4:2:0 resolution. */
static Py_ssize_t residual_len(int H, int W, int c420) {
    return c420 ? (Py_ssize_t)H * W + 2 * (Py_ssize_t)((H + 1) / 2) * ((W + 1) / 2) : (Py_ssize_t)3 * H * W;
}

/* mc_residual(cur, ref0, ref1_or_None, H, W, d0, d1, flags, gw, out[, threads, c420]) -> None
 * out: int16 (3, H, W), channels Y, U, V; chroma computed at 4:2:0 resolution and repeated 2x2.
 * c420=1: out holds Y (H x W) then U and V ((H + 1) / 2 x (W + 1) / 2 each), chroma not repeated. */
static PyObject *mc_residual(PyObject *self, PyObject *args) {
    PyObject *o_cur, *o_r0, *o_r1, *o_d0, *o_d1, *o_fl, *o_out;
    int H, W, gw, threads = 1, c420 = 0;
    if (!PyArg_ParseTuple(args, "OOOiiOOOiO|ip", &o_cur, &o_r0, &o_r1, &H, &W, &o_d0, &o_d1, &o_fl, &gw, &o_out,
                          &threads, &c420))
        return NULL;
    Buf b[13];
    memset(b, 0, sizeof(b));
    McJob j;
    j.c420 = c420;
    if (check_geometry(H, W, gw)) return NULL;
    j.H = H, j.W = W, j.gw = gw, j.cells = (Py_ssize_t)((H + 7) / 8) * gw;
    if (parse_planes(o_cur, b, j.cur, H, W, "cur") != 1 || parse_planes(o_r0, b + 3, j.r0, H, W, "ref0") != 1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "cur and ref0 must be plane 6-tuples, not None");
        goto fail;
    }
    j.has_r1 = parse_planes(o_r1, b + 6, j.r1, H, W, "ref1");
    if (j.has_r1 < 0) goto fail;
    if (!j.has_r1) memcpy(j.r1, j.r0, sizeof(j.r0));
    if (get_buf(o_d0, &b[9], 0, "d0") || get_buf(o_d1, &b[10], 0, "d1") || get_buf(o_fl, &b[11], 0, "flags") ||
        get_buf(o_out, &b[12], 1, "out")) goto fail;
    if (need(&b[9], j.cells * 8, "d0") || need(&b[10], j.cells * 8, "d1") || need(&b[11], j.cells, "flags") ||
        need(&b[12], residual_len(H, W, c420) * 2, "out")) goto fail;
    j.d0 = (const float *)b[9].view.buf, j.d1 = (const float *)b[10].view.buf;
    j.fl = (const uint8_t *)b[11].view.buf;
    j.out = (int16_t *)b[12].view.buf;
    return run_job(mc_band, &j, threads, b, 13);
fail:
    release(b, 13);
    return NULL;
}

#if EK_SSE2
/* SAD' of a whole 8x8 cell for still_vectors, in SSE2: e = cur - ref at the vector (v), e0 = cur - ref in
 * place (z), *bv = sum |64 e - sum e|, *b0 likewise for e0. Exact integers (|64 e - sum e| <= 32640
 * fits int16, the sums fit int32): the same numbers as still_vectors' general loop. */
static inline void cell_sads(const uint8_t *cp, Py_ssize_t cs, const uint8_t *vp, const uint8_t *zp, Py_ssize_t rs,
                             int *bv, int *b0) {
    __m128i ev[8], e0[8], sv = _mm_setzero_si128(), s0 = _mm_setzero_si128();
    const __m128i ones = _mm_set1_epi16(1);
    for (int j = 0; j < 8; j++) {
        __m128i cur = widen8(cp + j * cs);
        ev[j] = _mm_sub_epi16(cur, widen8(vp + j * rs));
        e0[j] = _mm_sub_epi16(cur, widen8(zp + j * rs));
        sv = _mm_add_epi16(sv, ev[j]);  /* per lane |sum| <= 8 * 255 */
        s0 = _mm_add_epi16(s0, e0[j]);
    }
    sv = _mm_madd_epi16(sv, ones);  /* 4 int32 lanes */
    s0 = _mm_madd_epi16(s0, ones);
    sv = _mm_add_epi32(sv, _mm_shuffle_epi32(sv, _MM_SHUFFLE(1, 0, 3, 2)));
    sv = _mm_add_epi32(sv, _mm_shuffle_epi32(sv, _MM_SHUFFLE(2, 3, 0, 1)));  /* the sum in every lane */
    s0 = _mm_add_epi32(s0, _mm_shuffle_epi32(s0, _MM_SHUFFLE(1, 0, 3, 2)));
    s0 = _mm_add_epi32(s0, _mm_shuffle_epi32(s0, _MM_SHUFFLE(2, 3, 0, 1)));
    const __m128i tv = _mm_set1_epi16((int16_t)_mm_cvtsi128_si32(sv)), t0 = _mm_set1_epi16((int16_t)_mm_cvtsi128_si32(s0));
    __m128i av = _mm_setzero_si128(), a0 = _mm_setzero_si128();
    for (int j = 0; j < 8; j++) {
        __m128i u = _mm_sub_epi16(_mm_slli_epi16(ev[j], 6), tv), v = _mm_sub_epi16(_mm_slli_epi16(e0[j], 6), t0);
        u = _mm_max_epi16(u, _mm_sub_epi16(_mm_setzero_si128(), u));  /* |u|: u is never -32768 */
        v = _mm_max_epi16(v, _mm_sub_epi16(_mm_setzero_si128(), v));
        av = _mm_add_epi32(av, _mm_madd_epi16(u, ones));
        a0 = _mm_add_epi32(a0, _mm_madd_epi16(v, ones));
    }
    av = _mm_add_epi32(av, _mm_shuffle_epi32(av, _MM_SHUFFLE(1, 0, 3, 2)));
    av = _mm_add_epi32(av, _mm_shuffle_epi32(av, _MM_SHUFFLE(2, 3, 0, 1)));
    a0 = _mm_add_epi32(a0, _mm_shuffle_epi32(a0, _MM_SHUFFLE(1, 0, 3, 2)));
    a0 = _mm_add_epi32(a0, _mm_shuffle_epi32(a0, _MM_SHUFFLE(2, 3, 0, 1)));
    *bv = _mm_cvtsi128_si32(av);
    *b0 = _mm_cvtsi128_si32(a0);
}
#endif

/* still_vectors(cur, ref, H, W, d, flags, bit, gw, min_gain) -> int
 * Sets to 0 the vectors of d (float32 (2, gh, gw)) towards ref (reference `bit`: 1 past, 2 future, as
 * flags) whose 8x8 cell the zero vector predicts about as well: over the cell's n pixels inside the
 * frame, e = cur - ref[p - round(d)] and e0 = cur - ref[p] (luma, clamped to the frame), SAD' = sum
 * |n e - sum(e)| (n times the SAD after taking out the cell's mean difference: a brightness change),
 * and the vector becomes 0 when SAD'(e0) <= SAD'(e) + min_gain n^2. Flags stay (still, not intra).
 * Integers are exact (|n e - sum e| <= 32640), the comparison is in double as the numpy reference's.
 * Returns how many vectors it set to 0. */
static PyObject *still_vectors(PyObject *self, PyObject *args) {
    PyObject *o_cur, *o_ref, *o_d, *o_fl;
    int H, W, gw, bit;
    double min_gain;
    if (!PyArg_ParseTuple(args, "OOiiOOiid", &o_cur, &o_ref, &H, &W, &o_d, &o_fl, &bit, &gw, &min_gain)) return NULL;
    Buf b[8];
    memset(b, 0, sizeof(b));
    Plane cur[3], ref[3];
    if (check_geometry(H, W, gw)) return NULL;
    if (bit != 1 && bit != 2) {
        PyErr_Format(PyExc_ValueError, "bit must be 1 (past reference) or 2 (future), got %d", bit);
        return NULL;
    }
    if (!(min_gain >= 0.0) || min_gain > 255.0) {  /* also refuses NaN */
        PyErr_Format(PyExc_ValueError, "min_gain must be in [0, 255] grey levels per pixel, got %g", min_gain);
        return NULL;
    }
    if (parse_planes(o_cur, b, cur, H, W, "cur") != 1 || parse_planes(o_ref, b + 3, ref, H, W, "ref") != 1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "cur and ref must be plane 6-tuples, not None");
        goto fail;
    }
    if (get_buf(o_d, &b[6], 1, "d") || get_buf(o_fl, &b[7], 0, "flags")) goto fail;
    int gh = (H + 7) / 8;
    Py_ssize_t cells = (Py_ssize_t)gh * gw;
    if (need(&b[6], cells * 2 * 4, "d") || need(&b[7], cells, "flags")) goto fail;
    float *dx = (float *)b[6].view.buf, *dy = dx + cells;
    const uint8_t *fl = (const uint8_t *)b[7].view.buf;
    const Plane c = cur[0], r = ref[0];
    long zeroed = 0;
    /* small pictures keep the GIL (tens of microseconds: releasing it lets the decoding thread take it,
     * and getting it back can cost more than the loop); large ones let that thread run meanwhile */
    PyThreadState *released = cells > 4096 ? PyEval_SaveThread() : NULL;
    for (int cy = 0; cy < gh; cy++) {
        int y0 = cy * 8, y1 = y0 + 8 < H ? y0 + 8 : H;
        for (int cx = 0; cx < gw; cx++) {
            Py_ssize_t k = (Py_ssize_t)cy * gw + cx;
            if (!(fl[k] & bit) || (dx[k] == 0.0f && dy[k] == 0.0f)) continue;  /* NaN is tested, as in numpy */
            int ox = roundi(dx[k]), oy = roundi(dy[k]);
            int x0 = cx * 8, x1 = x0 + 8 < W ? x0 + 8 : W;
            int n = (y1 - y0) * (x1 - x0);
            /* the source lies inside the picture: read it straight, else clamped (the codecs' edge) */
            int inside = x0 - ox >= 0 && y0 - oy >= 0 && x1 - ox <= W && y1 - oy <= H;
            int64_t av = 0, a0 = 0;
#if EK_SSE2
            if (n == 64 && inside) {
                int bv, b0;
                cell_sads(c.data + (Py_ssize_t)y0 * c.stride + x0, c.stride,
                          r.data + (Py_ssize_t)(y0 - oy) * r.stride + (x0 - ox),
                          r.data + (Py_ssize_t)y0 * r.stride + x0, r.stride, &bv, &b0);
                av = bv, a0 = b0;
            } else
#endif
            {
                int ev[64], e0[64], m = 0;
                int64_t sv = 0, s0 = 0;
                for (int y = y0; y < y1; y++) {
                    const uint8_t *crow = c.data + (Py_ssize_t)y * c.stride, *rrow = r.data + (Py_ssize_t)y * r.stride;
                    const uint8_t *vrow = inside ? r.data + (Py_ssize_t)(y - oy) * r.stride + (x0 - ox) : NULL;
                    for (int x = x0; x < x1; x++, m++) {
                        /* y - oy, x - ox stay in int: |o| <= 2^24 (roundi saturates), y, x < 2^16 */
                        ev[m] = crow[x] - (vrow ? vrow[x - x0] : fetch(r, y - oy, x - ox, H, W));
                        e0[m] = crow[x] - rrow[x];
                        sv += ev[m];
                        s0 += e0[m];
                    }
                }
                for (int i = 0; i < n; i++) {
                    int64_t u = (int64_t)n * ev[i] - sv, v = (int64_t)n * e0[i] - s0;
                    av += u < 0 ? -u : u;
                    a0 += v < 0 ? -v : v;
                }
            }
            if ((double)a0 <= (double)av + min_gain * (double)(n * n)) {
                dx[k] = 0.0f;
                dy[k] = 0.0f;
                zeroed++;
            }
        }
    }
    if (released) PyEval_RestoreThread(released);
    release(b, 8);
    return PyLong_FromLong(zeroed);
fail:
    release(b, 8);
    return NULL;
}

/* ---- accumulation ------------------------------------------------------------------------------ */

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

/* Whether a packed position (y << 16) | x lies inside an H x W frame. The residual dereferences the
 * positions in the I-frame, so positions from elsewhere (an acc map of another geometry) must not
 * pass: every one is checked just before it is used (a run of contiguous ones by its two ends). */
static inline int pos_ok(int32_t a, int W, int H) {
    return (uint32_t)(a >> 16) < (uint32_t)H && (a & 0xFFFF) < W;  /* a < 0: a >> 16 < 0, huge unsigned */
}

/* Luma residual row against the I-frame at the accumulated positions arow (W of them).
 * Returns 0, without reading the I-frame there, at the first position outside the frame. */
static int acc_luma_row(const uint8_t *crow, const int32_t *arow, Plane ip, int16_t *orow, int W, int H, int nt) {
    int x = 0;
#if EK_SSE2
    for (; x + 8 <= W; x += 8) {
        const int32_t *a = arow + x;
        if (run_is_contiguous(_mm_loadu_si128((const __m128i *)a), _mm_loadu_si128((const __m128i *)(a + 4)), a[0])) {
            if (!(((uint32_t)(a[0] >> 16) < (uint32_t)H) & ((a[0] & 0xFFFF) + 7 < W))) return 0;
            const uint8_t *src = ip.data + (Py_ssize_t)(a[0] >> 16) * ip.stride + (a[0] & 0xFFFF);
            store8x16(orow + x, _mm_sub_epi16(widen8(crow + x), widen8(src)), nt);
        } else {
            int16_t t[8];
            for (int i = 0; i < 8; i++) {
                if (!pos_ok(a[i], W, H)) return 0;
                t[i] = (int16_t)(crow[x + i] - ip.data[(Py_ssize_t)(a[i] >> 16) * ip.stride + (a[i] & 0xFFFF)]);
            }
            store8x16(orow + x, _mm_loadu_si128((const __m128i *)t), nt);
        }
    }
#else
    (void)nt;
#endif
    for (; x < W; x++) {
        int32_t a = arow[x];
        if (!pos_ok(a, W, H)) return 0;
        orow[x] = (int16_t)(crow[x] - ip.data[(Py_ssize_t)(a >> 16) * ip.stride + (a & 0xFFFF)]);
    }
    return 1;
}

/* Chroma residual row (cw samples) into t, each sample traced through the accumulated position of
 * its top-left luma pixel (arow is luma row 2y). Returns 0 at the first position outside the frame. */
static int acc_chroma_row(const uint8_t *crow, const int32_t *arow, Plane ip, int16_t *t, int cw, int W, int H) {
    int x = 0;
#if EK_SSE2
    for (; (x << 1) + 8 <= W; x += 4) {
        const int32_t *a = arow + (x << 1);
        __m128i lo = _mm_loadu_si128((const __m128i *)a), hi = _mm_loadu_si128((const __m128i *)(a + 4));
        if (even_run_is_contiguous(lo, hi, a[0])) {
            if (!(((uint32_t)(a[0] >> 16) < (uint32_t)H) & ((a[0] & 0xFFFF) + 6 < W))) return 0;
            const uint8_t *src = ip.data + (Py_ssize_t)(a[0] >> 17) * ip.stride + ((a[0] & 0xFFFF) >> 1);
            __m128i v = _mm_sub_epi16(_mm_unpacklo_epi8(load4(crow + x), _mm_setzero_si128()),
                                      _mm_unpacklo_epi8(load4(src), _mm_setzero_si128()));
            _mm_storel_epi64((__m128i *)(t + x), v);
            continue;
        }
        for (int i = 0; i < 4; i++) {
            int32_t ai = a[2 * i];
            if (!pos_ok(ai, W, H)) return 0;
            t[x + i] = (int16_t)(crow[x + i] - ip.data[(Py_ssize_t)(ai >> 17) * ip.stride + ((ai & 0xFFFF) >> 1)]);
        }
    }
#endif
    for (; x < cw; x++) {
        int32_t a = arow[x << 1];
        if (!pos_ok(a, W, H)) return 0;
        t[x] = (int16_t)(crow[x] - ip.data[(Py_ssize_t)(a >> 17) * ip.stride + ((a & 0xFFFF) >> 1)]);
    }
    return 1;
}

typedef struct {
    const int32_t *a0, *a1;
    int H, W, gw;
    Py_ssize_t cells;
    const float *d0, *d1;
    const uint8_t *fl;
    int32_t *out;
    int with_residual;  /* also compute the residual, in the same pass */
    Plane cur[3], ip[3];
    int16_t *res;
    int c420;  /* residual in the 4:2:0 layout (see mc_residual) */
} AccJob;

typedef struct {
    const int32_t *src;
    int ox, oy, fast;
} AccCell;

/* One band of rows: the positions of row y are traced, then the residual rows that need them are
 * computed while that row of positions is still in L1: one pass over memory, not two. */
static int acc_band(void *arg, int part, int parts) {
    AccJob *j = (AccJob *)arg;
    int H = j->H, W = j->W, gw = j->gw, cw = (W + 1) / 2;
    AccCell *cp = (AccCell *)PyMem_RawMalloc(sizeof(AccCell) * gw);
    int16_t *tmp = (int16_t *)PyMem_RawMalloc(sizeof(int16_t) * ((size_t)cw + 8));
    if (!cp || !tmp) {
        PyMem_RawFree(cp);
        PyMem_RawFree(tmp);
        return EK_NOMEM;
    }
    int nt = j->with_residual ? streamable(j->res, W) : 0;
    int y0 = band_lo(H, part, parts), y1 = band_lo(H, part + 1, parts);
    for (int y = y0; y < y1; y++) {
        if (y == y0 || (y & 7) == 0) {  /* plan this cell row */
            int cy = y >> 3, by0 = cy * 8, bh = H - by0 < 8 ? H - by0 : 8;
            for (int cx = 0; cx < gw; cx++) {
                Py_ssize_t c = (Py_ssize_t)cy * gw + cx;
                AccCell *p = &cp[cx];
                uint8_t f = j->fl[c];
                p->src = j->a0, p->ox = p->oy = 0;  /* intra (and L1-only without acc1): co-located */
                if (f & 1)
                    p->ox = roundi(j->d0[c]), p->oy = roundi(j->d0[j->cells + c]);
                else if ((f & 2) && j->a1)
                    p->src = j->a1, p->ox = roundi(j->d1[c]), p->oy = roundi(j->d1[j->cells + c]);
                p->fast = cx * 8 + 8 <= W && inside(cx * 8 - p->ox, by0 - p->oy, 8, bh, W, H);
            }
        }
        int32_t *arow = j->out + (Py_ssize_t)y * W;
        for (int cx = 0, x0 = 0; cx < gw; cx++, x0 += 8) {
            const AccCell *p = &cp[cx];
            if (p->fast) {  /* interior: one run of 8 positions */
                memcpy(arow + x0, p->src + (Py_ssize_t)(y - p->oy) * W + (x0 - p->ox), 8 * sizeof(int32_t));
                continue;
            }
            int bw = W - x0 < 8 ? W - x0 : 8;  /* the cell reaches past the frame edge: clamp */
            const int32_t *srow = p->src + (Py_ssize_t)clampi(y - p->oy, 0, H - 1) * W;
            for (int x = x0; x < x0 + bw; x++) arow[x] = srow[clampi(x - p->ox, 0, W - 1)];
        }
        if (j->with_residual) {
            int ok = acc_luma_row(j->cur[0].data + (Py_ssize_t)y * j->cur[0].stride, arow, j->ip[0],
                                  j->res + (Py_ssize_t)y * W, W, H, nt);
            for (int k = 1; ok && k < 3 && (y & 1) == 0; k++) {  /* chroma row y / 2 samples luma row y */
                int cy = y >> 1;
                int16_t *dst = j->c420 ? j->res + (Py_ssize_t)H * W + ((Py_ssize_t)(k - 1) * ((H + 1) / 2) + cy) * cw
                                       : tmp;
                ok = acc_chroma_row(j->cur[k].data + (Py_ssize_t)cy * j->cur[k].stride, arow, j->ip[k], dst, cw, W, H);
                if (ok && !j->c420) {
                    int16_t *row = j->res + (Py_ssize_t)k * H * W + (Py_ssize_t)y * W;
                    widen_rows(tmp, row, y + 1 < H ? row + W : NULL, W, nt);
                }
            }
            if (!ok) {
                stream_fence(nt);
                PyMem_RawFree(cp);
                PyMem_RawFree(tmp);
                return EK_BAD_POSITION;
            }
        }
    }
    stream_fence(nt);
    PyMem_RawFree(cp);
    PyMem_RawFree(tmp);
    return 0;
}

/* accumulate(acc0, acc1_or_None, H, W, d0, d1, flags, gw, out[, threads, cur, iframe, residual, c420]) -> None
 * Traces every pixel back to the GOP's I-frame: out[p] = acc_ref[p - round(d)] with the past
 * reference's map for L0 vectors, the future reference's for L1-only blocks; intra blocks (and
 * L1-only blocks when acc1 is None) keep the past reference's co-located position.
 * With cur, iframe (plane 6-tuples) and residual (int16 (3, H, W)) also computes, in the same pass,
 * residual[c, p] = cur_c[p] - iframe_c[out[p]]; chroma at 4:2:0 resolution, traced through the
 * accumulated position of the chroma sample's top-left luma pixel, repeated 2x2. */
static PyObject *accumulate(PyObject *self, PyObject *args) {
    PyObject *o_a0, *o_a1, *o_d0, *o_d1, *o_fl, *o_out, *o_cur = Py_None, *o_i = Py_None, *o_res = Py_None;
    int H, W, gw, threads = 1, c420 = 0;
    if (!PyArg_ParseTuple(args, "OOiiOOOiO|iOOOp", &o_a0, &o_a1, &H, &W, &o_d0, &o_d1, &o_fl, &gw, &o_out, &threads,
                          &o_cur, &o_i, &o_res, &c420))
        return NULL;
    if (check_geometry(H, W, gw)) return NULL;
    Buf b[13];
    memset(b, 0, sizeof(b));
    AccJob j;
    memset(&j, 0, sizeof(j));
    Py_ssize_t npix = (Py_ssize_t)H * W;
    j.H = H, j.W = W, j.gw = gw, j.cells = (Py_ssize_t)((H + 7) / 8) * gw;
    if (get_buf(o_a0, &b[0], 0, "acc0") || get_buf(o_a1, &b[1], 0, "acc1") || get_buf(o_d0, &b[2], 0, "d0") ||
        get_buf(o_d1, &b[3], 0, "d1") || get_buf(o_fl, &b[4], 0, "flags") || get_buf(o_out, &b[5], 1, "out"))
        goto fail;
    if (need(&b[0], npix * 4, "acc0") || (b[1].held && need(&b[1], npix * 4, "acc1")) ||
        need(&b[2], j.cells * 8, "d0") || need(&b[3], j.cells * 8, "d1") || need(&b[4], j.cells, "flags") ||
        need(&b[5], npix * 4, "out"))
        goto fail;
    if (o_res != Py_None) {
        if (parse_planes(o_cur, b + 6, j.cur, H, W, "cur") != 1 ||
            parse_planes(o_i, b + 9, j.ip, H, W, "iframe") != 1 || get_buf(o_res, &b[12], 1, "residual") ||
            need(&b[12], residual_len(H, W, c420) * 2, "residual")) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "cur and iframe must be plane 6-tuples");
            goto fail;
        }
        j.with_residual = 1;
        j.c420 = c420;
        j.res = (int16_t *)b[12].view.buf;
    }
    j.a0 = (const int32_t *)b[0].view.buf;
    j.a1 = b[1].held ? (const int32_t *)b[1].view.buf : NULL;
    j.d0 = (const float *)b[2].view.buf, j.d1 = (const float *)b[3].view.buf;
    j.fl = (const uint8_t *)b[4].view.buf;
    j.out = (int32_t *)b[5].view.buf;
    return run_job(acc_band, &j, threads, b, 13);
fail:
    release(b, 13);
    return NULL;
}

/* ---- block traces: consumed side data only ---------------------------------------------------------
 * The runtime path traces 8x8 cells, not pixels: each cell keeps one displacement disp (float32
 * (2, gh, gw): dx, dy, in pixels) from its centre pixel to the I-frame position it comes from, and
 * every pixel of the cell moves with it. One step costs O(cells) per frame whatever the GOP length;
 * residuals are then computed only for the frames a model samples, binned straight to the model's
 * size (trace_residual reads the displacements rounded to whole pixels, int32).
 * The displacement adds each step's vector exactly (quarter- and half-pel vectors are sums of
 * powers of two: exact in float32); only the position it looks up in the reference's trace is
 * rounded. Rounding every step instead, floor(v + 0.5) turns a +0.5 px vector into +1 and a -0.5 px
 * one into 0: the half-pel jitter an encoder finds in a still, noisy picture then adds up over a GOP
 * to a drift down and to the right of several pixels, which reads as motion. */

/* roundi for a vector that only moves a position clamped to a frame (< 2^16 pixels): floor(v + 0.5)
 * without branches; |v| is capped at 2^20 first (beyond it every position clamps to the same edge,
 * as with roundi's 2^24), NaN counts as -2^20 as roundi counts it as -2^24. */
static inline int round_vec(float v) {
    double d = v > -1048576.0f ? (double)v : -1048576.0;
    d = d < 1048576.0 ? d : 1048576.0;
    return (int)(d + 0.5 + 2097152.0) - 2097152;
}

static inline int cell_centre(int c, int n) { int v = c * 8 + 4; return v < n ? v : n - 1; }

/* A vector or displacement as the trace uses it: |v| capped at 2^20 (beyond it every position clamps
 * to the same edge), NaN counted as -2^20, as round_vec counts it. */
static inline float cap_vec(float v) { return v > -1048576.0f ? (v < 1048576.0f ? v : 1048576.0f) : -1048576.0f; }

static inline float clampf(float v, float lo, float hi) { return v > lo ? (v < hi ? v : hi) : lo; }

/* trace_cells(disp0, disp1_or_None, H, W, d0, d1, flags, gw, out) -> None, displacements float32
 * out[c] = clamp(p - d + disp_ref[cell(q)]) - p for the cell's centre p, its vector d in the reference
 * it predicts from (L0; L1 only when it has no L0 vector and disp1 is given; intra: co-located,
 * d = 0) and q = clamp(p - round(d)) the pixel whose cell's trace it continues; positions clamp to
 * the frame, a reference's displacement to [-W, W] x [-H, H] first. */
static PyObject *trace_cells(PyObject *self, PyObject *args) {
    PyObject *o_a0, *o_a1, *o_d0, *o_d1, *o_fl, *o_out;
    int H, W, gw;
    if (!PyArg_ParseTuple(args, "OOiiOOOiO", &o_a0, &o_a1, &H, &W, &o_d0, &o_d1, &o_fl, &gw, &o_out)) return NULL;
    if (check_geometry(H, W, gw)) return NULL;
    Buf b[6];
    memset(b, 0, sizeof(b));
    int gh = (H + 7) / 8;
    Py_ssize_t cells = (Py_ssize_t)gh * gw;
    if (get_buf(o_a0, &b[0], 0, "disp0") || get_buf(o_a1, &b[1], 0, "disp1") || get_buf(o_d0, &b[2], 0, "d0") ||
        get_buf(o_d1, &b[3], 0, "d1") || get_buf(o_fl, &b[4], 0, "flags") || get_buf(o_out, &b[5], 1, "out"))
        goto fail;
    if (need(&b[0], cells * 8, "disp0") || (b[1].held && need(&b[1], cells * 8, "disp1")) ||
        need(&b[2], cells * 8, "d0") || need(&b[3], cells * 8, "d1") || need(&b[4], cells, "flags") ||
        need(&b[5], cells * 8, "out"))
        goto fail;
    {
        const float *a0 = (const float *)b[0].view.buf, *a1 = b[1].held ? (const float *)b[1].view.buf : NULL;
        const float *d0 = (const float *)b[2].view.buf, *d1 = (const float *)b[3].view.buf;
        const uint8_t *fl = (const uint8_t *)b[4].view.buf;
        float *out = (float *)b[5].view.buf;
        const float fw = (float)W, fh = (float)H, xmax = (float)(W - 1), ymax = (float)(H - 1);
        for (int cy = 0; cy < gh; cy++) {
            int py = cell_centre(cy, H);
            for (int cx = 0; cx < gw; cx++) {
                Py_ssize_t c = (Py_ssize_t)cy * gw + cx;
                int px = cell_centre(cx, W);
                uint8_t f = fl[c];
                int use0 = f & 1, use1 = !use0 && (f & 2) && a1;  /* intra: co-located, offset 0 */
                float vx = cap_vec(use0 ? d0[c] : (use1 ? d1[c] : 0.0f));
                float vy = cap_vec(use0 ? d0[cells + c] : (use1 ? d1[cells + c] : 0.0f));
                const float *src = use1 ? a1 : a0;
                int qx = clampi(px - round_vec(vx), 0, W - 1), qy = clampi(py - round_vec(vy), 0, H - 1);
                Py_ssize_t qc = (Py_ssize_t)(qy >> 3) * gw + (qx >> 3);
                /* every term is capped before it is added: no overflow or NaN whatever the buffers hold */
                float sx = cap_vec(src[qc]), sy = cap_vec(src[cells + qc]);
                float tx = clampf(clampf((float)px - vx, 0.0f, xmax) + clampf(sx, -fw, fw), 0.0f, xmax);
                float ty = clampf(clampf((float)py - vy, 0.0f, ymax) + clampf(sy, -fh, fh), 0.0f, ymax);
                out[c] = tx - (float)px;
                out[cells + c] = ty - (float)py;
            }
        }
    }
    release(b, 6);
    Py_RETURN_NONE;
fail:
    release(b, 6);
    return NULL;
}

/* Area binning to (h, w), exactly as edgekit.preprocess.resize over the whole frame: along each
 * axis, out_j = (I(e_j+1) - I(e_j)) * n_out / n_src with e_j = j * n_src / n_out and
 * I(t) = S[floor t] + frac(t) * x[floor t] (S the exclusive prefix sum), floor t capped at n_src - 1. */
typedef struct {
    int n;          /* output size */
    int *i0;        /* n + 1 edge indices */
    double *frac;   /* n + 1 edge fractions */
    double length;  /* source pixels covered (n_src, or a crop's length) */
} AxisPlan;

/* Edges of n_out equal intervals of [start, start + length) in a source of n_src pixels. */
static int axis_plan_crop(AxisPlan *p, int n_src, int n_out, double start, double length) {
    p->n = n_out, p->length = length;
    p->i0 = (int *)PyMem_RawMalloc(sizeof(int) * (n_out + 1));
    p->frac = (double *)PyMem_RawMalloc(sizeof(double) * (n_out + 1));
    if (!p->i0 || !p->frac) return -1;
    for (int j = 0; j <= n_out; j++) {
        double t = start + (double)j * (length / n_out);
        if (t > n_src) t = n_src;
        int i = (int)t;
        if (i > n_src - 1) i = n_src - 1;
        p->i0[j] = i, p->frac[j] = t - i;
    }
    return 0;
}

static int axis_plan(AxisPlan *p, int n_src, int n_out) { return axis_plan_crop(p, n_src, n_out, 0.0, n_src); }

static void axis_free(AxisPlan *p) {
    PyMem_RawFree(p->i0);
    PyMem_RawFree(p->frac);
}

/* Where each edge of an x-plan falls in a row of n values each standing for div columns: index
 * and fraction, computed once per band (a division per edge and row costs more than the row). */
typedef struct {
    int *i;
    double *f;
    int div, w;
} RowPlan;

static void row_plan(RowPlan *rp, int *i, double *f, int n, const AxisPlan *px, int div) {
    rp->i = i, rp->f = f, rp->div = div, rp->w = px->n;
    for (int q = 0; q <= px->n; q++) {
        double t = ((double)px->i0[q] + px->frac[q]) / div;
        int k = (int)t;
        if (k > n - 1) k = n - 1;
        i[q] = k, f[q] = t - k;
    }
}

/* x-binning of one row from its exclusive prefix sum S (n + 1 values, S[i + 1] - S[i] the value
 * at i) at the plan's positions, each value standing for `div` columns (2 for a half-width chroma
 * row, whose repeated samples integrate to F(t) = 2 U(t / 2)): rb[q] = F(t_q+1) - F(t_q). */
static void bin_row_plan(const int32_t *S, const RowPlan *rp, double *Ix, double *rb) {
    for (int q = 0; q <= rp->w; q++) {
        int i = rp->i[q];
        Ix[q] = rp->div * ((double)S[i] + rp->f[q] * (S[i + 1] - S[i]));
    }
    for (int q = 0; q < rp->w; q++) rb[q] = Ix[q + 1] - Ix[q];
}

/* bin_row_plan over a float64 prefix sum (float32 rows; int16 rows summed in float64 are exact). */
static void bin_row_plan_d(const double *S, const RowPlan *rp, double *Ix, double *rb) {
    for (int q = 0; q <= rp->w; q++) {
        int i = rp->i[q];
        Ix[q] = rp->div * (S[i] + rp->f[q] * (S[i + 1] - S[i]));
    }
    for (int q = 0; q < rp->w; q++) rb[q] = Ix[q + 1] - Ix[q];
}

/* Produces the x-binned values of source row y: C x w doubles into rb. */
typedef int (*bins_fn)(void *ctx, int y, double *rb, void *scratch);
typedef void *(*scratch_new_fn)(void *ctx, const AxisPlan *px);

typedef struct {
    bins_fn produce;
    scratch_new_fn scratch_new;  /* per-band scratch (PyMem_RawFree'd), or NULL on no memory */
    void *ctx;
    int C, H, W;
    AxisPlan px, py;
    double *J;       /* C x (h + 1) x w: the row integral at each y edge, band-local */
    double *total;   /* parts x C x w: each band's sum of rows */
} BinJob;

static int bin_band(void *arg, int part, int parts) {
    BinJob *j = (BinJob *)arg;
    int C = j->C, w = j->px.n, h = j->py.n, rc = 0;
    int y0 = band_lo(j->H, part, parts), y1 = band_lo(j->H, part + 1, parts);
    double *rb = (double *)PyMem_RawMalloc(sizeof(double) * (size_t)C * w);
    void *scratch = j->scratch_new(j->ctx, &j->px);
    double *cum = j->total + (size_t)part * C * w;
    if (!rb || !scratch) {
        rc = EK_NOMEM;
        goto done;
    }
    memset(cum, 0, sizeof(double) * (size_t)C * w);
    int e = 0;  /* first y edge in this band */
    while (e <= h && j->py.i0[e] < y0) e++;
    for (int y = y0; y < y1; y++) {
        if ((rc = j->produce(j->ctx, y, rb, scratch))) goto done;
        for (; e <= h && j->py.i0[e] == y; e++)
            for (int k = 0; k < C; k++) {
                double *Je = j->J + ((size_t)k * (h + 1) + e) * w;
                const double *c = cum + (size_t)k * w, *o = rb + (size_t)k * w;
                for (int q = 0; q < w; q++) Je[q] = c[q] + j->py.frac[e] * o[q];
            }
        for (size_t q = 0; q < (size_t)C * w; q++) cum[q] += rb[q];
    }
done:
    PyMem_RawFree(rb);
    PyMem_RawFree(scratch);
    return rc;
}

/* Runs the binning without the GIL and writes float32 (C, h, w) to out. Returns 0 or EK_* bits. */
static int run_bins(BinJob *j, int threads, float *out) {
    int C = j->C, h = j->py.n, w = j->px.n, rc = 0;
    if (threads < 1) threads = 1;
    if (threads > EK_MAX_PARTS) threads = EK_MAX_PARTS;
    if (threads > j->H) threads = j->H;
    j->J = (double *)PyMem_RawMalloc(sizeof(double) * (size_t)C * (h + 1) * w);
    j->total = (double *)PyMem_RawMalloc(sizeof(double) * (size_t)threads * C * w);
    if (!j->J || !j->total) {
        rc = EK_NOMEM;
        goto done;
    }
    rc = run_bands(bin_band, j, threads);
    if (rc) goto done;
    /* band-local integrals -> global: add the sums of every band above the edge's band */
    double scale = ((double)w / j->px.length) * ((double)h / j->py.length);
    for (int k = 0; k < C; k++) {
        for (int e = 0; e <= h; e++) {
            int y = j->py.i0[e];
            double *Je = j->J + ((size_t)k * (h + 1) + e) * w;
            for (int p = 0; p < threads && band_lo(j->H, p + 1, threads) <= y; p++) {
                const double *t = j->total + ((size_t)p * C + k) * w;
                for (int q = 0; q < w; q++) Je[q] += t[q];
            }
        }
        for (int i = 0; i < h; i++) {
            const double *a = j->J + ((size_t)k * (h + 1) + i) * w, *b2 = a + w;
            float *o = out + ((size_t)k * h + i) * w;
            for (int q = 0; q < w; q++) o[q] = (float)((b2[q] - a[q]) * scale);
        }
    }
done:
    PyMem_RawFree(j->J);
    PyMem_RawFree(j->total);
    j->J = j->total = NULL;
    return rc;
}

typedef struct {
    Plane cur[3], ip[3];
    const int32_t *disp;
    int H, W, gw;
    Py_ssize_t cells;
    int step;  /* binned only: 2 samples every other row and luma column (see trace_residual) */
} TraceRes;

/* The traced luma residual of row y: into out (W values) and/or as the exclusive prefix sum S
 * (W + 1 values, S[x + 1] - S[x] is the residual at x). Either may be NULL. */
static void trace_luma(const TraceRes *t, int y, int16_t *out, int32_t *S) {
    int H = t->H, W = t->W, gw = t->gw;
    const int32_t *dx = t->disp, *dy = t->disp + t->cells;
    Py_ssize_t crow = (Py_ssize_t)(y >> 3) * gw;
    const uint8_t *cur = t->cur[0].data + (Py_ssize_t)y * t->cur[0].stride;
    int32_t s = 0;
    for (int cx = 0, x0 = 0; cx < gw; cx++, x0 += 8) {
        int ox = clampi(dx[crow + cx], -W, W), sy = clampi(y + clampi(dy[crow + cx], -H, H), 0, H - 1);
        const uint8_t *irow = t->ip[0].data + (Py_ssize_t)sy * t->ip[0].stride;
        int bw = W - x0 < 8 ? W - x0 : 8;
        int16_t r[8];
        if (x0 + ox >= 0 && x0 + ox + bw <= W) {
            const uint8_t *src = irow + x0 + ox;
#if EK_SSE2
            if (bw == 8) {  /* 8 residuals and their running sum in a few vector steps */
                __m128i v = _mm_sub_epi16(widen8(cur + x0), widen8(src));
                if (out) _mm_storeu_si128((__m128i *)(out + x0), v);
                if (S) {
                    __m128i inc = _mm_add_epi16(v, _mm_slli_si128(v, 2));  /* |partial sums| <= 2040 */
                    inc = _mm_add_epi16(inc, _mm_slli_si128(inc, 4));
                    inc = _mm_add_epi16(inc, _mm_slli_si128(inc, 8));
                    __m128i exc = _mm_slli_si128(inc, 2), base = _mm_set1_epi32(s);
                    __m128i lo = _mm_srai_epi32(_mm_unpacklo_epi16(exc, exc), 16);
                    __m128i hi = _mm_srai_epi32(_mm_unpackhi_epi16(exc, exc), 16);
                    _mm_storeu_si128((__m128i *)(S + x0), _mm_add_epi32(lo, base));
                    _mm_storeu_si128((__m128i *)(S + x0 + 4), _mm_add_epi32(hi, base));
                    s += (int16_t)_mm_extract_epi16(inc, 7);
                }
                continue;
            }
#endif
            for (int i = 0; i < bw; i++) r[i] = (int16_t)(cur[x0 + i] - src[i]);
        } else {
            for (int i = 0; i < bw; i++) r[i] = (int16_t)(cur[x0 + i] - irow[clampi(x0 + i + ox, 0, W - 1)]);
        }
        if (out) memcpy(out + x0, r, sizeof(int16_t) * bw);
        if (S)
            for (int i = 0; i < bw; i++) S[x0 + i] = s, s += r[i];
    }
    if (S) S[W] = s;
}

/* The traced chroma residual of chroma row cy (4:2:0 samples, traced through the cell of each
 * sample's top-left luma pixel, as accumulate does): U and V into ou/ov ((W + 1) / 2 values). */
static void trace_chroma(const TraceRes *t, int cy, int16_t *ou, int16_t *ov) {
    int H = t->H, W = t->W, gw = t->gw, cw = (W + 1) / 2, ly = 2 * cy;
    const int32_t *dx = t->disp, *dy = t->disp + t->cells;
    Py_ssize_t lrow = (Py_ssize_t)(ly >> 3) * gw;
    const uint8_t *cu = t->cur[1].data + (Py_ssize_t)cy * t->cur[1].stride;
    const uint8_t *cv = t->cur[2].data + (Py_ssize_t)cy * t->cur[2].stride;
    for (int x0 = 0; x0 < cw; x0 += 4) {  /* 4 chroma samples per 8x8 luma cell */
        Py_ssize_t cell = lrow + (x0 >> 2);
        int ox = clampi(dx[cell], -W, W);
        int ay = clampi(ly + clampi(dy[cell], -H, H), 0, H - 1) >> 1;
        const uint8_t *iu = t->ip[1].data + (Py_ssize_t)ay * t->ip[1].stride;
        const uint8_t *iv = t->ip[2].data + (Py_ssize_t)ay * t->ip[2].stride;
        int n = cw - x0 < 4 ? cw - x0 : 4;
        int first = 2 * x0 + ox, last = 2 * (x0 + n - 1) + ox;
        if (first >= 0 && last <= W - 1) {  /* inside: (2x + ox) >> 1 = x + (ox >> 1), one run */
            const uint8_t *su = iu + x0 + (ox >> 1), *sv = iv + x0 + (ox >> 1);
            for (int i = 0; i < n; i++) {
                ou[x0 + i] = (int16_t)(cu[x0 + i] - su[i]);
                ov[x0 + i] = (int16_t)(cv[x0 + i] - sv[i]);
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            int ax = clampi(2 * (x0 + i) + ox, 0, W - 1) >> 1;
            ou[x0 + i] = (int16_t)(cu[x0 + i] - iu[ax]);
            ov[x0 + i] = (int16_t)(cv[x0 + i] - iv[ax]);
        }
    }
}

/* The traced luma residual of row y at even columns only: (W + 1) / 2 values into out. */
static void trace_luma_even(const TraceRes *t, int y, int16_t *out) {
    int H = t->H, W = t->W, gw = t->gw;
    const int32_t *dx = t->disp, *dy = t->disp + t->cells;
    Py_ssize_t crow = (Py_ssize_t)(y >> 3) * gw;
    const uint8_t *cur = t->cur[0].data + (Py_ssize_t)y * t->cur[0].stride;
    for (int cx = 0, x0 = 0; cx < gw; cx++, x0 += 8) {
        int ox = clampi(dx[crow + cx], -W, W), sy = clampi(y + clampi(dy[crow + cx], -H, H), 0, H - 1);
        const uint8_t *irow = t->ip[0].data + (Py_ssize_t)sy * t->ip[0].stride;
        int end = W < x0 + 8 ? W : x0 + 8;
        if (x0 + ox >= 0 && end - 1 + ox <= W - 1) {
            for (int x = x0; x < end; x += 2) out[x >> 1] = (int16_t)(cur[x] - irow[x + ox]);
        } else {
            for (int x = x0; x < end; x += 2) out[x >> 1] = (int16_t)(cur[x] - irow[clampi(x + ox, 0, W - 1)]);
        }
    }
}

/* One full-size row (int16 (3, H, W) output): Y, and U/V repeated to full width. */
static void trace_row(const TraceRes *t, int y, int16_t *oy, int16_t *ou, int16_t *ov, int16_t *tmp) {
    int W = t->W, cw = (W + 1) / 2;
    trace_luma(t, y, oy, NULL);
    trace_chroma(t, y >> 1, tmp, tmp + cw);
    for (int x = 0; x < W; x++) ou[x] = tmp[x >> 1], ov[x] = tmp[cw + (x >> 1)];
}

/* Runs a prepared BinJob without the GIL into out, then frees its plans and releases the n buffers
 * it reads (as run_job does for band jobs). */
static PyObject *finish_bins(BinJob *j, int threads, float *out, Buf *bufs, int n) {
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = run_bins(j, threads, out);
    Py_END_ALLOW_THREADS
    axis_free(&j->px);
    axis_free(&j->py);
    release(bufs, n);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* Binned rows: luma x-bins from the prefix sum at full width; chroma x-bins once per chroma row,
 * from its half-width prefix sum. */
typedef struct {
    const TraceRes *t;
    const AxisPlan *px;
    int chroma_row;
    int32_t *S;           /* W + 1 */
    double *Ix;           /* w + 1 */
    double *chroma_bins;  /* 2 x w */
    int16_t *u, *v, *half; /* (W + 1) / 2 each */
    RowPlan luma, chroma;  /* the x-plan in a luma row (half-width at step 2) and in a chroma row */
} TraceScratch;

static void *trace_scratch(void *ctx, const AxisPlan *px) {
    const TraceRes *t = (const TraceRes *)ctx;
    size_t W = (size_t)t->W, w = (size_t)px->n, cw = (W + 1) / 2;
    size_t bytes = sizeof(TraceScratch) + sizeof(int32_t) * (W + 1) + sizeof(double) * (4 * w + 1) +
                   sizeof(int16_t) * 3 * cw + (sizeof(int) + sizeof(double)) * 2 * (w + 1) + 64;
    TraceScratch *sc = (TraceScratch *)PyMem_RawMalloc(bytes);
    if (!sc) return NULL;
    char *p = (char *)(sc + 1);
    sc->t = t, sc->px = px, sc->chroma_row = -1;
    sc->Ix = (double *)p, p += sizeof(double) * (w + 1);
    sc->chroma_bins = (double *)p, p += sizeof(double) * 2 * w;
    sc->S = (int32_t *)p, p += sizeof(int32_t) * (W + 1);
    sc->u = (int16_t *)p, p += sizeof(int16_t) * cw;
    sc->v = (int16_t *)p, p += sizeof(int16_t) * cw;
    sc->half = (int16_t *)p, p += sizeof(int16_t) * cw;
    p = (char *)(((uintptr_t)p + 7) & ~(uintptr_t)7);  /* doubles aligned */
    double *f0 = (double *)p, *f1 = f0 + (w + 1);
    int *i0 = (int *)(f1 + (w + 1)), *i1 = i0 + (w + 1);
    if (t->step == 2)
        row_plan(&sc->luma, i0, f0, (int)cw, px, 2);
    else
        row_plan(&sc->luma, i0, f0, (int)W, px, 1);
    row_plan(&sc->chroma, i1, f1, (int)cw, px, 2);
    return sc;
}

static int trace_bins_fn(void *ctx, int y, double *rb, void *scratch) {
    TraceScratch *sc = (TraceScratch *)scratch;
    const TraceRes *t = sc->t;
    int W = t->W, cw = (W + 1) / 2, w = sc->px->n;
    int cy;
    if (t->step == 2) {  /* y counts row pairs: row 2y stands for rows 2y and 2y + 1, column x & ~1 for x | 1 */
        int32_t acc = 0;
        trace_luma_even(t, 2 * y, sc->half);  /* (W + 1) / 2 samples, each standing for 2 columns */
        for (int x = 0; x < cw; x++) sc->S[x] = acc, acc += sc->half[x];
        sc->S[cw] = acc;
        bin_row_plan(sc->S, &sc->luma, sc->Ix, rb);
        cy = y & ~1;  /* chroma row y covers rows 2y, 2y + 1: every other chroma row */
    } else {
        trace_luma(t, y, NULL, sc->S);
        bin_row_plan(sc->S, &sc->luma, sc->Ix, rb);
        cy = y >> 1;
    }
    if (cy != sc->chroma_row) {
        sc->chroma_row = cy;
        trace_chroma(t, cy, sc->u, sc->v);
        for (int k = 0; k < 2; k++) {
            const int16_t *r = k ? sc->v : sc->u;
            int32_t s = 0;
            for (int x = 0; x < cw; x++) sc->S[x] = s, s += r[x];
            sc->S[cw] = s;
            bin_row_plan(sc->S, &sc->chroma, sc->Ix, sc->chroma_bins + (size_t)k * w);
        }
    }
    memcpy(rb + w, sc->chroma_bins, sizeof(double) * 2 * w);
    return 0;
}

typedef struct {
    TraceRes t;
    int16_t *out;
    int c420;
} TraceFull;

static int trace_full_band(void *arg, int part, int parts) {
    TraceFull *j = (TraceFull *)arg;
    int H = j->t.H, W = j->t.W;
    Py_ssize_t plane = (Py_ssize_t)H * W;
    int16_t *tmp = (int16_t *)PyMem_RawMalloc(sizeof(int16_t) * ((size_t)W + 2));
    if (!tmp) return EK_NOMEM;
    for (int y = band_lo(H, part, parts); y < band_lo(H, part + 1, parts); y++) {
        int16_t *o = j->out + (Py_ssize_t)y * W;
        if (!j->c420) {
            trace_row(&j->t, y, o, o + plane, o + 2 * plane, tmp);
            continue;
        }
        trace_luma(&j->t, y, o, NULL);
        if (y & 1) continue;
        Py_ssize_t cw = (W + 1) / 2, ch = (H + 1) / 2;
        int16_t *u = j->out + plane + (Py_ssize_t)(y >> 1) * cw;
        trace_chroma(&j->t, y >> 1, u, u + ch * cw);
    }
    PyMem_RawFree(tmp);
    return 0;
}

static int parse_bins(int oh, int ow, int H, int W, AxisPlan *px, AxisPlan *py) {
    if (oh < 1 || ow < 1 || oh > 4096 || ow > 4096) {
        PyErr_Format(PyExc_ValueError, "bad output size %dx%d", ow, oh);
        return -1;
    }
    if (axis_plan(px, W, ow) || axis_plan(py, H, oh)) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* trace_residual(cur, iframe, disp, H, W, gw, out[, threads, out_h, out_w, c420, step]) -> None
 * residual[c, p] = cur_c[p] - iframe_c[clamp(p + disp[cell(p)])] (chroma as in trace_row).
 * out_h = out_w = 0: out is int16 (3, H, W). Otherwise out is float32 (3, out_h, out_w): the
 * residual's area average over each output cell (preprocess.resize), without the full-size array. */
static PyObject *trace_residual(PyObject *self, PyObject *args) {
    PyObject *o_cur, *o_i, *o_disp, *o_out;
    int H, W, gw, threads = 1, oh = 0, ow = 0, c420 = 0, step = 1;
    if (!PyArg_ParseTuple(args, "OOOiiiO|iiipi", &o_cur, &o_i, &o_disp, &H, &W, &gw, &o_out, &threads, &oh, &ow,
                          &c420, &step))
        return NULL;
    if (check_geometry(H, W, gw)) return NULL;
    if (step != 1 && step != 2) {
        PyErr_Format(PyExc_ValueError, "step must be 1 or 2, got %d", step);
        return NULL;
    }
    Buf b[8];
    memset(b, 0, sizeof(b));
    AxisPlan px = {0}, py = {0};
    TraceRes t;
    t.H = H, t.W = W, t.gw = gw, t.cells = (Py_ssize_t)((H + 7) / 8) * gw, t.step = (oh || ow) ? step : 1;
    if (parse_planes(o_cur, b, t.cur, H, W, "cur") != 1 || parse_planes(o_i, b + 3, t.ip, H, W, "iframe") != 1) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "cur and iframe must be plane 6-tuples, not None");
        goto fail;
    }
    if (get_buf(o_disp, &b[6], 0, "disp") || get_buf(o_out, &b[7], 1, "out") || need(&b[6], t.cells * 8, "disp"))
        goto fail;
    t.disp = (const int32_t *)b[6].view.buf;
    if (oh == 0 && ow == 0) {
        if (need(&b[7], residual_len(H, W, c420) * 2, "out")) goto fail;
        TraceFull j = {t, (int16_t *)b[7].view.buf, c420};
        return run_job(trace_full_band, &j, threads, b, 8);
    }
    if (parse_bins(oh, ow, H, W, &px, &py) || need(&b[7], (Py_ssize_t)3 * oh * ow * 4, "out")) goto fail;
    int rows = H;
    if (step == 2) {  /* the rows are row pairs: the same edges in half units over (H + 1) / 2 rows */
        rows = (H + 1) / 2;
        axis_free(&py);
        if (axis_plan_crop(&py, rows, oh, 0.0, H / 2.0)) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    {
        BinJob j = {trace_bins_fn, trace_scratch, &t, 3, rows, W, px, py, NULL, NULL};
        return finish_bins(&j, threads, (float *)b[7].view.buf, b, 8);
    }
fail:
    axis_free(&px);
    axis_free(&py);
    release(b, 8);
    return NULL;
}

/* area_bins(src, C, H, W, out, h, w[, threads, is_float, top, left, height, width]) -> None
 * src: int16 (C, H, W), or float32 with is_float; out: float32 (C, h, w), the area average of src
 * over each output cell of the crop [top, top + height) x [left, left + width) in source pixels
 * (default: the whole source), as edgekit.preprocess.resize computes it. */
typedef struct {
    const int16_t *src;
    const float *fsrc;  /* float32 source instead (motion-vector grids) */
    int C, H, W;
} SrcRows;

typedef struct {
    const SrcRows *s;
    const AxisPlan *px;
    double *Ix, *Sd;
} PlaneScratch;

static void *plane_scratch(void *ctx, const AxisPlan *px) {
    const SrcRows *s = (const SrcRows *)ctx;
    PlaneScratch *sc = (PlaneScratch *)PyMem_RawMalloc(sizeof(PlaneScratch) + sizeof(double) * (px->n + 1) +
                                                       sizeof(double) * ((size_t)s->W + 1));
    if (!sc) return NULL;
    sc->s = s, sc->px = px;
    sc->Ix = (double *)(sc + 1);
    sc->Sd = sc->Ix + px->n + 1;
    return sc;
}

static int plane_bins_fn(void *ctx, int y, double *rb, void *scratch) {
    PlaneScratch *sc = (PlaneScratch *)scratch;
    const SrcRows *s = sc->s;
    /* at full width (div 1) a row's plan is the axis plan itself: index i0, fraction frac */
    const RowPlan rp = {sc->px->i0, sc->px->frac, 1, sc->px->n};
    for (int k = 0; k < s->C; k++) {
        size_t row = ((size_t)k * s->H + y) * s->W;
        double acc = 0;
        if (s->fsrc)
            for (int x = 0; x < s->W; x++) sc->Sd[x] = acc, acc += s->fsrc[row + x];
        else
            for (int x = 0; x < s->W; x++) sc->Sd[x] = acc, acc += s->src[row + x];
        sc->Sd[s->W] = acc;
        bin_row_plan_d(sc->Sd, &rp, sc->Ix, rb + (size_t)k * rp.w);
    }
    (void)ctx;
    return 0;
}

static PyObject *area_bins(PyObject *self, PyObject *args) {
    PyObject *o_src, *o_out;
    int C, H, W, oh, ow, threads = 1, is_float = 0;
    double top = 0, left = 0, ch = -1, cw = -1;
    if (!PyArg_ParseTuple(args, "OiiiOii|ipdddd", &o_src, &C, &H, &W, &o_out, &oh, &ow, &threads, &is_float, &top,
                          &left, &ch, &cw))
        return NULL;
    if (C < 1 || C > 16 || H < 1 || W < 1 || H > EK_MAX_H || W > EK_MAX_W) {
        PyErr_Format(PyExc_ValueError, "bad source shape (%d, %d, %d)", C, H, W);
        return NULL;
    }
    if (ch < 0) ch = H;
    if (cw < 0) cw = W;
    /* the crop, in source pixels: inside the source, with a positive size (NaN fails every test) */
    if (!(top >= 0 && left >= 0 && ch > 0 && cw > 0 && top + ch <= H * (1 + 1e-6) && left + cw <= W * (1 + 1e-6))) {
        PyErr_Format(PyExc_ValueError, "crop (%g, %g, %g, %g) is outside the %dx%d source", top, left, ch, cw, W, H);
        return NULL;
    }
    Buf b[2];
    memset(b, 0, sizeof(b));
    AxisPlan px = {0}, py = {0};
    if (get_buf(o_src, &b[0], 0, "src") || get_buf(o_out, &b[1], 1, "out") ||
        need(&b[0], (Py_ssize_t)C * H * W * (is_float ? 4 : 2), "src"))
        goto fail;
    if (oh < 1 || ow < 1 || oh > 4096 || ow > 4096) {
        PyErr_Format(PyExc_ValueError, "bad output size %dx%d", ow, oh);
        goto fail;
    }
    if (axis_plan_crop(&px, W, ow, left, cw) || axis_plan_crop(&py, H, oh, top, ch)) {
        PyErr_NoMemory();
        goto fail;
    }
    if (need(&b[1], (Py_ssize_t)C * oh * ow * 4, "out")) goto fail;
    {
        SrcRows s = {is_float ? NULL : (const int16_t *)b[0].view.buf,
                     is_float ? (const float *)b[0].view.buf : NULL, C, H, W};
        BinJob j = {plane_bins_fn, plane_scratch, &s, C, H, W, px, py, NULL, NULL};
        return finish_bins(&j, threads, (float *)b[1].view.buf, b, 2);
    }
fail:
    axis_free(&px);
    axis_free(&py);
    release(b, 2);
    return NULL;
}

static PyMethodDef methods[] = {
    {"mv_grid", mv_grid, METH_VARARGS, "Scatter AVMotionVector side data onto the 8x8 grid."},
    {"drop_long", drop_long, METH_VARARGS, "Drop the grid's vectors longer than a limit (they read as intra)."},
    {"still_vectors", still_vectors, METH_VARARGS, "Set to 0 the vectors no better than no motion by a margin."},
    {"mc_residual", mc_residual, METH_VARARGS, "Motion-compensated residual of a YUV 4:2:0 frame."},
    {"accumulate", accumulate, METH_VARARGS, "Trace every pixel back to the GOP's I-frame (and its residual)."},
    {"trace_cells", trace_cells, METH_VARARGS, "Trace every 8x8 cell back to the GOP's I-frame (one step)."},
    {"trace_residual", trace_residual, METH_VARARGS, "Residual against the I-frame along cell traces, full or binned."},
    {"area_bins", area_bins, METH_VARARGS, "Area-average int16 (C, H, W) planes to float32 (C, h, w)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "edgekit native kernels", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *m = PyModule_Create(&module);
    /* which fast path this build has: "sse2" (x86-64) or "none" (the portable scalar code) */
    if (m && PyModule_AddStringConstant(m, "SIMD", EK_SSE2 ? "sse2" : "none") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
