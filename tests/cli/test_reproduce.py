"""The Info button's command line: the CLI's own parser reads it back as the same dream."""

from __future__ import annotations

import shlex

import pytest

from dream_engine.cli import main, motion
from dream_engine.cli.flags import resolve_params
from dream_engine.cli.reproduce import command_line
from dream_engine.core.params import DreamParams
from dream_engine.core.presets import get_preset
from dream_engine.motion.spec import MotionSpec

CASES = {
    "a preset's own": get_preset("balanced").params,
    "odd floats and a seed": get_preset("upper-layers").params.replace(
        step=0.0123456789,
        octave_scale=1.3333333,
        seed=123456,
        jitter=17,
        lap_levels=4,
        scale_jitter=0.07,
        rotate_jitter=12.5,
        max_loss=3.25,
    ),
    "channels and no layers": DreamParams(layers={}, channels={"mixed4:97": 1.0, "mixed5:3": 0.5}),
    "a target without layers": DreamParams(layers={}, target="tabby", target_weight=0.3),
    "dogs model": get_preset("balanced").params.replace(
        model="dogs", layers={"block_13_project_BN": 1.0}
    ),
}


def parsed(line: str, parser) -> object:
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "dream_engine"]
    return parser.parse_args(words[4:] if words[3] == "zoom" else words[3:])


@pytest.mark.parametrize("params", CASES.values(), ids=CASES.keys())
def test_the_line_parses_back_to_the_same_params(params):
    line = command_line(params, max_side=640, precision="mixed_bfloat16")
    args = parsed(line, main.build_parser())
    assert resolve_params(args) == params
    assert args.max_side == 640 and args.precision == "mixed_bfloat16"
    assert args.weights == "imagenet" and args.output == "dream.png"


def test_a_zoom_uses_the_zoom_command_and_keeps_its_motion():
    params = get_preset("balanced").params.replace(iterations=5)
    spec = MotionSpec("zoom", frames=16, zoom=1.07, rotate=-2.5, fps=8, format="gif")
    line = command_line(params, max_side=320, motion=spec, weights="random")
    assert line.startswith("python -m dream_engine zoom INPUT -o dream.gif ")
    args = parsed(line, motion.build_parser())
    assert resolve_params(args) == params
    assert (args.frames, args.zoom, args.rotate, args.fps) == (16, 1.07, -2.5, 8.0)
    assert args.weights == "random"


def test_a_clip_and_a_guide_keep_their_own_flags():
    params = get_preset("balanced").params.replace(guide_weight=2.5)
    clip = MotionSpec("clip", frames=30, blend=0.6, frame_iterations=3)
    line = command_line(params, max_side=256, motion=clip, guide_name="my eye.png")
    args = parsed(line, main.build_parser())
    assert resolve_params(args) == params
    assert (args.blend, args.frame_iterations, str(args.guide)) == (0.6, 3, "my eye.png")
    assert args.output == "dream.mp4"
