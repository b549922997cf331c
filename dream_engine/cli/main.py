"""`python -m dream_engine`: dream a picture from the terminal.

Exit 0 on success; exit 2 with one human line for anything the user can fix
(unreadable image, unknown preset or layer, bad value, missing weights). The
flags mirror the bot's options so an experiment here carries over to Discord.

A first argument `compare`, `layers` or `kinds` runs a comparison instead
(`study.py`), with the same flags; an image file with one of those names
is `./compare`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dream_engine.cli import motion
from dream_engine.cli.flags import (
    EXIT_USER_ERROR,
    OneLineParser,
    ProgressBar,
    add_engine_flags,
    add_param_flags,
    build_engine,
    check_max_side,
    checked_output,
    load_guide,
    prepare_folder,
    resolve_params,
    save_image,
)
from dream_engine.cli.motion import add_clip_flags
from dream_engine.core.presets import list_presets, presets_dir
from dream_engine.errors import UserError

if TYPE_CHECKING:
    from PIL import Image


DEFAULT_MAX_SIDE = 1024
SUBCOMMANDS = ("compare", "layers", "kinds", "zoom")  # a first argument naming one picks it
GIF_LIMIT_BYTES = 25 * 2**20  # --gif: what Discord takes from boosted servers and Nitro
GIF_FRAMES = 48  # --gif: about this many frames across the whole dream


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m dream_engine",
        description="DeepDream an image (or a clip, frame by frame) with InceptionV3 (or "
        "another model) from a preset. Comparisons: python -m dream_engine "
        "compare|layers|kinds --help; an endless zoom: python -m dream_engine zoom --help.",
    )
    parser.add_argument(
        "input",
        nargs="?",
        help="image to dream (PNG, JPEG, WebP, GIF, BMP, TIFF), or a clip (MP4, WebM, MOV, "
        "an animated GIF or WebP) to dream frame by frame into INPUT-dream.mp4",
    )
    parser.add_argument(
        "-o", "--output", help="where to write the dream (default: INPUT-dream.png)"
    )
    parser.add_argument("--list-presets", action="store_true", help="print presets and exit")
    add_param_flags(parser)
    add_engine_flags(parser, DEFAULT_MAX_SIDE)
    parser.add_argument("--gallery", type=Path, help="also write the image after every octave here")
    parser.add_argument("--gif", type=Path, help="also write the dream's progress as a GIF here")
    add_clip_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "zoom":
        command = motion.zoom
        args = motion.build_parser().parse_args(argv[1:])
    elif argv and argv[0] in SUBCOMMANDS:  # compare, layers, kinds: see study.py
        from dream_engine.cli import study

        command = study.COMMANDS[argv[0]]
        args = study.build_parser(argv[0]).parse_args(argv[1:])
    else:
        command = _dream_or_list
        args = build_parser().parse_args(argv)
    try:
        return command(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _dream_or_list(args: argparse.Namespace) -> int:
    if args.list_presets:
        _print_presets()
        return 0
    if not args.input:
        raise UserError("Name an image to dream, e.g. python -m dream_engine photo.jpg.")
    return _dream(args)


def _dream(args: argparse.Namespace) -> int:
    from dream_engine.media.animation import suggest_frame_every
    from dream_engine.media.clips import is_clip
    from dream_engine.media.images import decode_image, read_file

    data = read_file(args.input)
    if is_clip(data):
        return motion.dream_clip(args, data)
    for flag in ("blend", "frame_iterations"):
        if getattr(args, flag) is not None:
            name = flag.replace("_", "-")
            raise UserError(f"{name}: it is for a clip (a video or animated GIF), not a still.")
    params = resolve_params(args)
    check_max_side(args)
    image = decode_image(data)
    guide = load_guide(args)
    output = checked_output(Path(args.output) if args.output else _default_output(Path(args.input)))
    if args.gallery:
        prepare_folder(args.gallery)
    if args.gif:
        checked_output(args.gif, formats=("GIF",))
    engine = build_engine(args, params)
    frame_every = suggest_frame_every(params, GIF_FRAMES) if args.gif else None
    with ProgressBar() as bar:
        result = engine.dream(
            image,
            params,
            on_progress=bar.update,
            max_side=args.max_side,
            frame_every=frame_every,
            guide=guide,
        )
    save_image(result.image, output)
    gif_bytes = _save_gif(result.frames, args.gif) if args.gif else 0
    if args.gallery:
        total = len(result.octaves)
        for index, octave in enumerate(result.octaves, start=1):
            name = f"octave-{index}-of-{total}-{octave.width}x{octave.height}.png"
            save_image(octave, args.gallery / name)
    notes = "".join(f"; {note}" for note in result.notes)
    target = params.target_class()
    aim = f", towards {target[1]} ({target[0]})" if target else ""
    print(
        f"wrote {output} ({result.image.width}x{result.image.height}, {params.model}{aim}, "
        f"{result.seconds:.1f} s{notes})"
    )
    if args.gif:
        print(f"wrote {args.gif} ({gif_bytes / 2**20:.1f} MiB)")
    return 0


def _save_gif(frames: list[Image.Image], path: Path) -> int:
    """Write the animation (within `GIF_LIMIT_BYTES`); its size in bytes."""
    from dream_engine.media.animation import encode_gif_to_fit

    try:
        data = encode_gif_to_fit(frames, GIF_LIMIT_BYTES)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except (OSError, ValueError) as error:
        raise UserError(f"Could not write {path}: {error}.") from None
    return len(data)


def _default_output(source: Path) -> Path:
    return source.with_name(f"{source.stem}-dream.png")


def _print_presets() -> None:
    presets = list_presets()
    if not presets:
        raise UserError(f"There are no valid presets in {presets_dir()}.")
    width = max(len(preset.name) for preset in presets)
    for preset in presets:
        print(f"{preset.name:<{width}}  [{preset.model}] {preset.description}")
