"""The classes of the synthetic motion benchmark: the one place that lists them.

Every class is defined by motion; appearance (textures, colours, shapes, sizes, background) is drawn
at random for every clip, so a single frame does not tell the classes apart. The two ``*_up_right``
classes are the exception on purpose: they share one motion and differ only in the colour of the
moving object, so a model needs the I-frame (appearance) stream AND a motion stream to separate them.

Image coordinates throughout: x to the right, y DOWN; "clockwise" is clockwise as displayed.
The order below is the label order (``classInd.txt`` numbers it from 1).
"""

from __future__ import annotations

from dataclasses import dataclass

ACTOR_COLOURS = ("any", "red", "blue")


@dataclass(frozen=True)
class SynthClass:
    """One benchmark class.

    ``actor_colour`` constrains the hue of the moving object(s): ``"any"`` (random hue, the usual
    case), ``"red"`` or ``"blue"`` (saturated, for the appearance-and-motion classes).
    """

    name: str
    definition: str
    actor_colour: str = "any"


CLASSES: tuple[SynthClass, ...] = (
    SynthClass("move_left", "one object travels toward the left image edge"),
    SynthClass("move_right", "one object travels toward the right image edge"),
    SynthClass("move_up", "one object travels toward the top image edge"),
    SynthClass("move_down", "one object travels toward the bottom image edge"),
    SynthClass("rotate_cw", "one object spins in place, clockwise as displayed"),
    SynthClass("rotate_ccw", "one object spins in place, counter-clockwise as displayed"),
    SynthClass("approach", "one object grows in place (comes toward the camera)"),
    SynthClass("recede", "one object shrinks in place (goes away from the camera)"),
    SynthClass("wave", "one object oscillates back and forth along a roughly horizontal axis"),
    SynthClass("scene_left", "the whole image content shifts toward the left edge (camera pans right)"),
    SynthClass("scene_right", "the whole image content shifts toward the right edge (camera pans left)"),
    SynthClass("static", "nothing moves; only sensor noise and lighting flicker change"),
    SynthClass("meet", "two objects travel toward each other along a random axis"),
    SynthClass("part", "two objects start close together and travel apart along a random axis"),
    SynthClass("bounce", "one object falls and bounces off an invisible floor, drifting sideways"),
    SynthClass("red_up_right", "a red-ish object travels toward the top-right corner", "red"),
    SynthClass("blue_up_right", "a blue-ish object travels toward the top-right corner", "blue"),
)

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
CLASS_BY_NAME: dict[str, SynthClass] = {c.name: c for c in CLASSES}

# The 12 fixed classes: the ones every renderer makes (the held-out renderer makes only these) and
# the ones a domain-shift check scores; their definitions above never change.
FIXED_CLASS_NAMES: tuple[str, ...] = ("move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw",
                                      "approach", "recede", "wave", "scene_left", "scene_right", "static")
# The classes motion alone defines: every class but the two that differ only in colour. The default
# models (motion events) are trained on these.
MOTION_CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES if c.actor_colour == "any")
# named class sets of ``synth --classes``
CLASS_SETS: dict[str, tuple[str, ...]] = {"all": CLASS_NAMES, "motion": MOTION_CLASS_NAMES, "fixed": FIXED_CLASS_NAMES}


def classes_setting(labels) -> str:
    """The ``synth`` classes setting that makes the benchmark's classes among ``labels`` (a model's
    labels): "all" when it knows every class, else their names comma-separated, in label order."""
    known = [name for name in CLASS_NAMES if name in set(labels)]
    return "all" if len(known) == len(CLASS_NAMES) else ",".join(known)
if CLASS_NAMES[:len(FIXED_CLASS_NAMES)] != FIXED_CLASS_NAMES:
    raise RuntimeError("the 12 fixed classes must stay the first 12 classes, in this order")
