"""The held-out renderer: the project's own domain-shift check, never trained on.

It makes the 12 fixed classes of ``training.synth.classes`` (``FIXED_CLASS_NAMES``, the same
definitions) in the same UCF-101 layout, with every appearance and motion generator written apart
from the training renderer (``scene``/``render``/``texture``/``motion``/``broad``/``appearance``),
so a model that learned that renderer's quirks instead of the motion shows it here:

=========================  =====================================  ==========================================
what                       training renderer                      held-out renderer
=========================  =====================================  ==========================================
objects                    raster patches (noise textures, blob   vector sprites: a polygon body with polygon
                           masks) warped by ``cv2.warpAffine``    decorations, rasterised per frame with
                                                                  ``cv2.fillPoly`` (anti-aliased, 1/16 px)
backgrounds                value noise / broad families           dead leaves (occluding discs and boxes),
                                                                  bricks, plaid, wood rings
trajectories               constant velocity, geometric zoom,     eased keyframes (smoothstep, accelerating,
                           sinusoid in frames                     constant), triangle or sine waves counted
                                                                  in cycles per clip, zoom linear in size
camera                     a warp of the background canvas        a moving crop (``cv2.getRectSubPix``)
sensor                     Gaussian noise from a byte LUT, gain   shot noise (signal-dependent) + read noise
                                                                  + row noise, vignetting, mains flicker
                                                                  beating with the frame rate
encoding                   fixed or ``broad.draw_encoding``       its own sizes (192x144-640x480, 4:3 and
                                                                  16:9), 10-30 fps, x264/MPEG-4 settings
=========================  =====================================  ==========================================

Only the class definitions, the encoder plumbing (``training.synth.encode``, real encoders), the
ground-truth format and the run machinery (``generate``: seeds, layout, resume) are shared.
``python -m training synth --renderer heldout --out data/heldout --clips-per-class 10``.
"""

from training.synth.heldout.clip import make_clip

__all__ = ["make_clip"]
