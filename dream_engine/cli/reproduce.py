"""The command line that makes a dream again: what the bot's Info button shows.

Every parameter is written out, not only those that differ from a preset, so the
line still makes the same dream after a preset is retuned. Parsing the line with
the CLI's own parser gives back the same `DreamParams` (tests check it), which is
the only promise that matters: the line is the dream's recipe.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from dream_engine.core.params import DreamParams
from dream_engine.motion.spec import MotionSpec

__all__ = ["command_line"]

PROGRAM = "python -m dream_engine"


def command_line(
    params: DreamParams,
    *,
    input_name: str = "INPUT",
    max_side: int,
    precision: str = "",
    weights: str = "imagenet",
    motion: MotionSpec | None = None,
    guide_name: str | None = None,
) -> str:
    """`python -m dream_engine ...` for these params; a zoom uses the `zoom` subcommand."""
    words = [PROGRAM]
    if motion is not None and motion.kind == "zoom":
        words += ["zoom", input_name, "-o", f"dream.{motion.format}"]
        words += ["--frames", str(motion.frames), "--zoom", _number(motion.zoom)]
        words += ["--rotate", _number(motion.rotate), "--fps", _number(motion.fps)]
    elif motion is not None:  # a clip: the main command dreams it frame by frame
        words += [input_name, "-o", f"dream.{motion.format}", "--blend", _number(motion.blend)]
    else:
        words += [input_name, "-o", "dream.png"]
    if motion is not None and motion.frame_iterations is not None:
        words += ["--frame-iterations", str(motion.frame_iterations)]
    words += ["--model", params.model, "--layers", _weights(params.layers) or "none"]
    if params.channels:
        words += ["--channels", _weights(params.channels)]
    if params.target is not None:
        words += ["--target", params.target, "--target-weight", _number(params.target_weight)]
    if guide_name is not None:
        words += ["--guide", guide_name, "--guide-weight", _number(params.guide_weight)]
    words += [
        "--step", _number(params.step), "--octaves", str(params.octaves),
        "--octave-scale", _number(params.octave_scale), "--iterations", str(params.iterations),
        "--max-loss", _number(params.max_loss), "--jitter", str(params.jitter),
        "--lap-levels", str(params.lap_levels), "--scale-jitter", _number(params.scale_jitter),
        "--rotate-jitter", _number(params.rotate_jitter), "--seed", str(params.seed),
        "--max-side", str(max_side),
    ]  # fmt: skip
    if precision:
        words += ["--precision", precision]
    if weights != "imagenet":
        words += ["--weights", weights]
    return " ".join(shlex.quote(word) if index > 0 else word for index, word in enumerate(words))


def _weights(weights: Mapping[str, float]) -> str:
    return ",".join(f"{name}={_number(weight)}" for name, weight in weights.items())


def _number(value: float) -> str:
    """The shortest text that reads back as the same float (repr, not a rounded :g)."""
    text = repr(float(value))
    return text.removesuffix(".0")
