"""Compressed-domain reader: I-frame RGB, motion vectors and residuals from FFmpeg, through PyAV.

>>> import edgekit.bitstream as bs
>>> with bs.open("clip.mp4") as reader:
...     for f in reader:
...         f.kind, f.mv.shape, f.residual.shape

``open(source, *, residual=True, rgb="iframes", accumulate=False, transcode=None, format=None,
threads="auto", timeout_s=10.0, max_pixels=MAX_PIXELS, fast=True, trace="pixel", residual_size=None,
wants=None, unused=None, residual_layout="444", residual_step=None, reconnect=None, transport=None, max_vector=None,
min_gain=None)``

source
    A path, a URL FFmpeg opens (rtsp/http/file), ``bytes``, a binary file-like object, or an iterable
    of encoded chunks of a raw H.264 Annex-B or MPEG-4 Part 2 elementary stream (as a camera encoder
    emits it; the stream type is detected from its start codes, or give ``format="h264"|"m4v"``).
    A live source that stalls for ``timeout_s`` raises ``SourceTimeoutError``. A network URL (rtsp,
    rtp, udp, tcp, http(s)) that ends, breaks or stalls is reopened with backoff (``reconnect=``: True,
    False, a :class:`Reconnect` policy, or None for the source kind's default: on for network URLs
    except an http(s) file of known length, off for everything else); nothing is predicted across a
    reconnection, and ``reader.stats`` counts ``reconnects``, ``reconnect_attempts``, ``stalls`` and
    ``damaged_packets``. ``transport="tcp"|"udp"`` picks the RTSP transport (or ``rtsp://...?tcp``).
    See ``edgekit.bitstream.source`` for the timeout and reconnection rules. A live stream may be
joined anywhere: frames before its first I-frame (and, in H.264, before its parameter sets) are
skipped and counted in ``reader.stats.skipped_frames``; ``reader.info`` learns the picture size from
the first decoded picture when the stream's header did not give it.

Every yielded :class:`CompressedFrame` is in display order and holds:

**Motion vectors** ``mv``: float32 (2, ceil(H/8), ceil(W/8)), one vector per 8x8 block (the finest
partition FFmpeg exports; a 16x16 macroblock fills 2x2 cells), ``mv[0]`` = dx, ``mv[1]`` = dy in
pixels with the codec's sub-pixel precision kept (1/2 px MPEG-4, 1/4 px H.264). The sign is that of
forward optical flow: where the block's content moved *from* the reference *to* the current frame,
``dst - src = -motion_x / motion_scale`` in FFmpeg's terms. Intra blocks have no vector: mv is 0 and
``intra`` is True there. I-frames have mv = 0 and intra all True.

**B-frames.** A B-frame block may be predicted from the past reference (FFmpeg ``source = -1``), the
future one (``source = +1``) or both. ``mv`` takes the past-reference vector where the block has one.
For a block predicted only from the future reference, ``mv = src - dst`` (the future vector negated):
still the forward-in-time displacement of the content, from this frame to the future reference, so a
rightward motion is positive in every frame kind; its magnitude spans the distance to the future
reference rather than to the past one. References are taken to be the nearest I/P frames in display
order (true for MPEG-4 Part 2, and for H.264 encoded with ``ref=1`` and no B-pyramid, as
:func:`transcode` produces); FFmpeg does not say which reference index a vector uses.

**GOPs.** Every I-frame (scheduled or scene-cut) starts a new GOP; ``gop_index`` counts them. B-frames
that precede an I-frame in display order belong to the GOP before it.

**Size changes.** The picture size may change mid-stream (an H.264 SPS or MPEG-4 VOL header announcing
another size, e.g. an encoder reconfigured on the fly). Each frame gives its own ``height`` and
``width`` and its arrays have that size; nothing is predicted, accumulated or subtracted across a
change. A change at an I-frame starts a new GOP there; P/B-frames of a new size that arrive before
its first I-frame are skipped and counted in ``stats.skipped_frames``. ``stats.size_changes`` counts
the changes; ``reader.info`` gives the size of the frames read last.

**Representations** (``accumulate=``):

- ``False`` (per frame): ``mv`` as above, relative to the frame's own reference. ``residual[c, p] =
  cur_c[p] - pred_c[p]`` with the motion-compensated prediction ``pred[p] = ref[p - round(d(p))]``
  (past reference for L0 vectors, future for L1-only, the rounded average of both for
  bi-predicted blocks, the co-located reference pixel for intra blocks), clamped at the frame edge.
- ``True`` (CoViAR accumulation): every pixel is traced back to the GOP's I-frame. With ``src(p)``
  its accumulated source position (``src = p`` on the I-frame; for a P/B pixel, ``src(p) =
  src_ref(p - round(d(p)))`` through the reference its block uses; intra blocks keep the co-located
  position of the past reference), ``residual[c, p] = cur_c[p] - I_c[src(p)]`` and ``mv`` is
  ``p - src(p)`` sampled at each 8x8 block's centre pixel: the total displacement since the I-frame.
  For a pure translation this is the sum of the per-frame vectors.

**The runtime path: consumed side data only** (what ``edgekit.Recognizer`` asks for). A model reads
a few frames per window at its own input size; computing a full-resolution residual for every frame
and shrinking it later costs more than decoding to RGB. Three options cut the work to what is used:

- ``trace="block"`` accumulates per 8x8 cell instead of per pixel: a cell keeps one displacement
  ``disp`` (float32, pixels) from its centre to the I-frame position it comes from; a P/B cell adds
  its vector to its reference's displacement at the cell its centre points to (``src(c) = centre(c)
  - d(c) + disp_ref[cell(q)]`` with ``q = centre(c) - round(d(c))``), and every pixel of the cell
  moves with its centre. The vector is added exactly (quarter- and half-pel vectors are exact in
  float32); only the lookup ``q`` is rounded. Rounding each step instead (``floor(d + 0.5)``, as the
  pixel trace and CoViAR do) turns +0.5 px into a whole pixel and -0.5 px into none, so the half-pel
  jitter an encoder finds in a still, noisy picture adds up over a GOP into a drift down and to the
  right that reads as motion. One step costs O(cells) per frame (about 0.1 ms at 720p), the same on
  the 250th frame of a GOP as on the first: it is incremental, never re-traced from the I-frame. One
  step from the I-frame its ``mv`` is the encoder's vectors; rounded, it is the pixel trace's; later
  it differs from the pixel trace by more than a pixel only where a cell straddles a motion boundary
  (on under 10 % of cells in the tests). The residual is sampled at the displacements rounded to
  whole pixels (``_reference.round_displacements``). Its effect on accuracy is measured in
  ``docs/results/runtime-accuracy.json``. The training cache uses it too (``CacheSpec.trace``), so
  models see in training what they see deployed.
- ``residual_size=(h, w)`` computes each residual straight at the model's size: the area average
  that ``edgekit.preprocess.resize`` would make of the full residual (equal to float rounding),
  float32 (3, h, w), without the full-size array (about 1 ms per 720p frame).
- ``wants(kind, (H, W)) -> bool`` is asked once per frame, in display order, whether its side
  data will be used; declined frames get ``residual=None``, and declined B-frames also ``mv=None``
  and ``intra=None``: no frame is predicted from a B-frame, so its vectors are not even read
  (two thirds of the frames with x264's default two B-frames).
- ``unused(position, kinds) -> bool`` (with ``wants``, local files, H.264 and MPEG-4 Part 2): a
  picture nothing is predicted from (H.264 slices with nal_ref_idc 0, MPEG-4 B-VOPs) at a display
  position where it says True is not decoded at all; its frame still comes out, in its place, as a
  B-frame with ``mv``, ``intra`` and ``residual`` None (``stats.undecoded_frames``). Positions are
  read from timestamps at a constant frame rate; the first decoded picture whose position disagrees
  turns skipping off. ``kinds`` maps the display positions of the packets read so far to their
  picture type ("I", "P", "B"; None where unknown), read from the slice or VOP header without
  decoding. ``edgekit.sampling.CausalPlan.surely_unused`` answers it for a model's windows (the
  frame-selection rule is causal, decided when a frame arrives): with the picture types known, only
  the B-frames some window reads are decoded.

**Residual layouts** (all-frames, offline): ``residual_layout="444"`` gives (3, H, W) with chroma
repeated 2x2; ``"420"`` gives a :class:`YUV420` (``y`` (H, W), ``u``/``v`` ((H+1)//2, (W+1)//2), views of
one buffer: half the bytes), with ``to_444()`` for the other layout.

**Residual** ``residual``: int16 (3, H, W) in the **YUV** space of the decoded frame (channels Y, U,
V; chroma computed at 4:2:0 resolution and repeated 2x2), exact integers in [-255, 255]; zeros on
I-frames. FFmpeg does not export the coded residual, so it is recomputed from decoded pixels. YUV is
used rather than CoViAR's RGB because it needs no colour conversion of every frame: at CoViAR's
340x256, MV + residual + I-RGB runs about twice as fast as decoding every frame to RGB; at 1080p with
B-frames at 0.88x of it (``benchmarks/extract.py``): a full-resolution int16 residual writes twice the
bytes of an RGB frame, although the kernels stream their output past the cache and split rows over
threads.
``edgekit.preprocess.residual_rgb`` converts it to RGB exactly (the conversion is linear).

**RGB** ``rgb``: uint8 (H, W, 3) on I-frames (``rgb="iframes"``), on every frame (``"all"``), or
never (``None``).

**Cost follows what is asked.** ``residual=False, rgb=None`` (MV-only) converts nothing and predicts
nothing, and with ``fast=True`` tells FFmpeg to skip the loop filter and the IDCT, which leave the
motion vectors bit-identical. With residuals and ``rgb`` other than ``"all"``, ``fast=True`` skips
the in-loop deblocking filter of non-reference pictures only (H.264 B-frames without B-pyramid; MPEG-4
Part 2 has no such filter): nothing is predicted from them, so every other frame decodes
bit-identically, and a B-frame's residual is its prediction error before the filter, as it was coded.
``fast=False`` decodes every picture exactly as a player would. Above 640x360 the residual kernels
split rows over ``min(cpu_count, 4)`` threads (``threads=N`` sets decoder and kernel threads). Per-frame MV-only reading yields each frame as soon as it is decoded;
modes that need a B-frame's future reference hold back at most one run of B-frames.

**Vectors no motion explains** (``max_vector=``, a fraction of the picture's shorter side; None keeps
every vector). An encoder minimises prediction error, not the error of the motion it reports: on
content that repeats (stripes, plaid, a flat area with noise) several vectors predict equally well and
it may pick one far away. FFmpeg's MPEG-4 encoder on a plaid backdrop panning 3 px per frame points a
whole column of blocks at the top of the picture (vectors growing to 109 px down the column). With
``max_vector=0.1`` a vector longer than a tenth of the shorter side is dropped before anything is
traced or predicted: the block reads as intra for that reference (``mv`` 0, ``intra`` where no
reference is left), so the trace keeps its reference's displacement instead of jumping across the
picture. ``stats.dropped_vectors`` counts the cells. The default models read with the value their
package records (``preprocessing.cache_spec.max_vector``).

**Vectors no better than none** (``min_gain=``, grey levels per pixel; None keeps every vector). A
short vector can be just as arbitrary: in a still picture under sensor noise and lighting flicker,
FFmpeg's MPEG-4 encoder gives most 8x8 cells a vector of a pixel or more, back and forth from frame
to frame, because one of them fits the noise slightly better than standing still. With
``min_gain=g`` each P/B-frame vector is compared, on its cell's luma, with the zero vector against
the same reference: e = cur - ref[p - round(d)] and e0 = cur - ref[p], each with the cell's mean
difference taken out (a brightness change that no vector explains), and the vector is kept only if
its sum of absolute differences is lower by more than g per pixel (``SAD(e0) > SAD(e) + g n`` over
the cell's n pixels). Otherwise it becomes 0 and the cell reads as still (not intra: ``intra`` and the
residual follow, the residual then being the frame difference there); ``stats.still_vectors`` counts
the cells. It compares decoded pictures, so it needs ``residual=True`` (or ``accumulate=True,
fast=False``); encoder-side vectors come without pictures and refuse it. Native kernel
``still_vectors`` (about 1.3 ms per 1080p P-frame on one x86-64 core, SSE2). The defaults read with
the value their package records (``preprocessing.cache_spec.min_gain``).

**Codecs.** FFmpeg 8 exports motion vectors for H.264, MPEG-4 Part 2, MPEG-1/2 and H.263, not for
HEVC, VP9 or AV1: those raise ``UnsupportedCodecError`` unless ``transcode="mpeg4"`` or ``"h264"`` is
given, which re-encodes on the fly (GOP 12, no B-frames) before reading.

**Encoder-side motion vectors.** ``open(EncoderMotion(frames, width=, height=, fps=), residual=False,
rgb=None)`` reads the motion vectors a camera's own encoder reported (FFmpeg-style rows, an NVIDIA
Jetson ``MVInfo`` grid, or a dense grid, with each frame's kind and timestamp) as the same
CompressedFrames, with no decoding at all; a Recognizer of a motion-vector-only model takes such a
source too. Units, signs and what is assumed: ``edgekit.bitstream.motion``.

**Errors.** Every bad input raises an ``edgekit.errors.SourceError`` subclass with a one-line message.
Damaged frames mid-stream are skipped and counted in ``reader.stats.damaged_frames`` (frames the
decoder flags corrupt, packets it rejects, packets that yield no picture); reading goes on with the
next decodable frame. In a raw elementary stream FFmpeg's parser may merge a damaged picture into its
neighbour, which then cannot be counted. A stream with no I-frame at all, or a decoded picture whose
planes do not hold the rows its size says, raises ``DecodeError``.

**Memory safety.** The native kernels (``edgekit/_kernels.c``) and their numpy reference check every
argument against the frame they are given (size limits of 65535x32767, plane strides and lengths,
grid and output sizes, accumulated positions before they are dereferenced) and raise ``ValueError``
instead of reading or writing outside a buffer; the reader turns such a refusal into ``DecodeError``.
Motion vectors of any value (even NaN or infinite) are saturated and clamp to the frame edge. A CI
test runs the kernels and size-change streams under AddressSanitizer (``tests/test_kernels_asan.py``).
"""

from edgekit.bitstream.reader import (MAX_PIXELS, YUV420, CompressedFrame, Reader, ReaderStats, StreamInfo,
                                      kernels, open)
from edgekit.bitstream.motion import EncoderMotion, MotionFrame, MotionReader  # after reader: it builds on it
from edgekit.bitstream.source import Reconnect
from edgekit.bitstream.transcode import transcode

__all__ = ["open", "transcode", "Reader", "CompressedFrame", "StreamInfo", "ReaderStats", "YUV420", "kernels",
           "MAX_PIXELS", "EncoderMotion", "MotionFrame", "MotionReader", "Reconnect"]
