"""`python -m dream_engine zoom INPUT`, and the main command on a clip: dreams that move.

    python -m dream_engine zoom photo.jpg --frames 24 --zoom 1.05 -o zoom.mp4
    python -m dream_engine clip.mp4 --blend 0.5 -o dreamed.gif

The output's name picks its format: `.mp4` (H.264) or `.gif`. A clip (MP4, WebM,
MOV, an animated GIF or WebP) given to the main command is dreamed frame by frame,
each frame started from the last dream carried along the optical flow (`--blend`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dream_engine.cli.flags import (
    OneLineParser,
    ProgressBar,
    add_engine_flags,
    add_param_flags,
    build_engine,
    check_max_side,
    load_guide,
    resolve_params,
)
from dream_engine.core.params import DreamParams
from dream_engine.errors import ParamError, UserError
from dream_engine.motion.spec import FORMATS, MAX_ZOOM_FRAMES, MotionSpec

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["add_clip_flags", "build_parser", "dream_clip", "zoom"]

DEFAULT_MAX_SIDE = 512  # every frame is a dream: a clip at 1024 px takes a long while
#: A clip on your own machine: limits against mistakes (a feature film), not for fairness.
CLI_MAX_FRAMES = 600
CLI_MAX_SECONDS = 120.0


def add_clip_flags(parser: argparse.ArgumentParser) -> None:
    """What a moving dream adds to the flags: shared by `zoom` and the main command."""
    parser.add_argument(
        "--frame-iterations",
        type=int,
        help="steps an octave for every frame after the first (default: a quarter of "
        "--iterations, at least 2)",
    )
    parser.add_argument(
        "--blend",
        type=float,
        help="a clip: how much of the last dream each frame starts from, carried along the "
        "optical flow, 0..1 (0: each frame alone; default 0.8)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m dream_engine zoom",
        description="Dream an image, then zoom into the dream and dream again, frame after "
        "frame: an endless zoom, written as MP4 or GIF.",
    )
    parser.add_argument("input", help="the image to start from (PNG, JPEG, WebP, GIF...)")
    parser.add_argument("-o", "--output", help="INPUT-zoom.mp4 unless given (.mp4 or .gif)")
    parser.add_argument("--frames", type=int, default=24, help=f"frames, 2..{MAX_ZOOM_FRAMES}")
    parser.add_argument("--zoom", type=float, default=1.05, help="scale each frame, 1..1.5")
    parser.add_argument("--rotate", type=float, default=0.0, help="degrees a frame, -15..15")
    parser.add_argument("--fps", type=float, default=12.0, help="frames a second, 1..60")
    add_param_flags(parser)
    add_engine_flags(parser, DEFAULT_MAX_SIDE)
    add_clip_flags(parser)
    return parser


def zoom(args: argparse.Namespace) -> int:
    from dream_engine.media.images import load_image_file

    if args.blend is not None:
        raise UserError("blend: it carries a clip's dream along its motion; a zoom has none.")
    params = resolve_params(args)
    check_max_side(args)
    output, fmt = _output(args, "zoom")
    spec = MotionSpec(
        "zoom", frames=args.frames, zoom=args.zoom, rotate=args.rotate,
        frame_iterations=args.frame_iterations, fps=args.fps, format=fmt,
    ).validate()  # fmt: skip
    image = load_image_file(args.input)
    return _run(args, spec, params, [image], output)


def dream_clip(args: argparse.Namespace, data: bytes) -> int:
    """The main command's input was a clip: dream it frame by frame."""
    from dream_engine.media.clips import ClipLimits, decode_clip

    for flag, given in (("gallery", args.gallery), ("gif", args.gif)):
        if given:
            raise UserError(
                f"{flag}: a clip's output is the dreamed clip itself; leave out --{flag}."
            )
    params = resolve_params(args)
    check_max_side(args)
    output, fmt = _output(args, "dream")
    limits = ClipLimits(CLI_MAX_FRAMES, CLI_MAX_SECONDS, max_pixels=2**62)
    clip = decode_clip(data, limits, args.max_side)
    spec = MotionSpec("clip", frames=len(clip.frames), fps=clip.fps, format=fmt).replace(
        blend=args.blend, frame_iterations=args.frame_iterations
    )
    return _run(args, spec, params, list(clip.frames), output)


def _run(
    args: argparse.Namespace,
    spec: MotionSpec,
    params: DreamParams,
    inputs: list[Image.Image],
    output: Path,
) -> int:
    from dream_engine.media.clip_encoding import encode_clip
    from dream_engine.motion.sequences import run_motion

    guide = load_guide(args)
    engine = build_engine(args, params)
    with ProgressBar() as bar:
        result = run_motion(
            engine, spec, params, inputs, on_progress=bar.update, max_side=args.max_side,
            guide=guide,
        )  # fmt: skip
    data = encode_clip(result.frames, spec.fps, spec.format)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(data)
    except OSError as error:
        raise UserError(f"Could not write {output}: {error.strerror or error}.") from None
    first = result.frames[0]
    notes = "".join(f"; {note}" for note in result.notes)
    print(
        f"wrote {output} ({len(result.frames)} frames of {first.width}x{first.height} at "
        f"{spec.fps:g} fps, {len(data) / 2**20:.1f} MiB, {params.model}, "
        f"{result.seconds:.1f} s{notes})"
    )
    return 0


def _output(args: argparse.Namespace, what: str) -> tuple[Path, str]:
    """Where the clip goes and in which format, from the name; checked before dreaming."""
    source = Path(args.input)
    output = Path(args.output) if args.output else source.with_name(f"{source.stem}-{what}.mp4")
    fmt = output.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ParamError(
            f"Can't write a clip named {output.name}: end the name in .mp4 (H.264) or .gif."
        )
    if output.is_dir():
        raise UserError(f"{output} is a folder; name the clip file to write.")
    return output, fmt
