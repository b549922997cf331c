"""`python -m dream_engine`: dream a picture from the terminal.

Exit 0 on success; exit 2 with one human line for anything the user can fix
(unreadable image, unknown preset or layer, bad value, missing weights). The
flags mirror the bot's options so an experiment here carries over to Discord.

A first argument `compare`, `layers` or `kinds` runs a comparison instead
(`cli_sweeps.py`), with the same flags; an image file with one of those names
is `./compare`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dream_engine.errors import UserError
from dream_engine.executor import EngineConfig
from dream_engine.models import MODELS
from dream_engine.params import (
    DEFAULT_TILE_SIZE,
    PRECISIONS,
    DreamParams,
    parse_channels,
    parse_layers,
)
from dream_engine.presets import (
    DEFAULT_PRESET,
    default_preset_for,
    get_preset,
    list_presets,
    presets_dir,
)

if TYPE_CHECKING:
    from PIL import Image

    from dream_engine.engine import DreamEngine
    from dream_engine.results import Progress

DEFAULT_MAX_SIDE = 1024
EXIT_USER_ERROR = 2
SUBCOMMANDS = ("compare", "layers", "kinds")  # a first argument naming one picks it
GIF_LIMIT_BYTES = 25 * 2**20  # --gif: what Discord takes from boosted servers and Nitro
GIF_FRAMES = 48  # --gif: about this many frames across the whole dream
OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # RGB images Pillow writes


class OneLineParser(argparse.ArgumentParser):
    """argparse, except that a bad flag is one line (`error: ...`, exit 2) like every
    other mistake, not the usage block (`--help` still prints it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m dream_engine",
        description="DeepDream an image with InceptionV3 (or another model) from a preset. "
        "Comparisons: python -m dream_engine compare|layers|kinds --help.",
    )
    parser.add_argument("input", nargs="?", help="image to dream (PNG, JPEG, WebP, GIF, BMP, TIFF)")
    parser.add_argument(
        "-o", "--output", help="where to write the dream (default: INPUT-dream.png)"
    )
    parser.add_argument("--list-presets", action="store_true", help="print presets and exit")
    add_param_flags(parser)
    add_engine_flags(parser, DEFAULT_MAX_SIDE)
    parser.add_argument("--gallery", type=Path, help="also write the image after every octave here")
    parser.add_argument("--gif", type=Path, help="also write the dream's progress as a GIF here")
    return parser


def add_param_flags(
    parser: argparse.ArgumentParser,
    layers_help: str = "layer weights, e.g. mixed3=0.5,mixed4=1 (none: channels/target only)",
) -> None:
    """What a dream looks like: a preset and the flags that override it (shared by every
    command, so an experiment in one carries over to the others and to the bot)."""
    parser.add_argument(
        "--preset", help=f"preset name (default: {DEFAULT_PRESET}); see --list-presets"
    )
    parser.add_argument("--model", choices=sorted(MODELS), help="network (default: the preset's)")
    parser.add_argument("--layers", help=layers_help)
    parser.add_argument(
        "--channels", help="single channels to dream, layer:channel[=weight], e.g. mixed4:97"
    )
    parser.add_argument(
        "--target", help='a class to dream towards, e.g. "golden retriever" (or its number)'
    )
    parser.add_argument(
        "--target-weight", type=float, help="the class's share of each step against the layers"
    )
    parser.add_argument("--step", type=float, help="gradient step size, in (0, 1]")
    parser.add_argument("--octaves", type=int, help="number of octaves, 1..10")
    parser.add_argument("--octave-scale", type=float, help="size ratio between octaves, (1, 3]")
    parser.add_argument("--iterations", type=int, help="steps per octave, 1..1000")
    parser.add_argument("--max-loss", type=float, help="stop an octave once its loss passes this")
    parser.add_argument("--jitter", type=int, help="random roll in pixels each step (0 = off)")
    parser.add_argument("--seed", type=int, help="seed for jitter and random weights")


def add_engine_flags(parser: argparse.ArgumentParser, max_side: int) -> None:
    """How the engine runs: weights, input size, precision, tiling."""
    parser.add_argument(
        "--weights",
        default=os.environ.get("DREAM_WEIGHTS", "imagenet"),
        help="imagenet (Keras download cache), random (untrained, for trying the pipeline) or "
        "a weights file path; default $DREAM_WEIGHTS or imagenet",
    )
    parser.add_argument(
        "--head-weights",
        default=os.environ.get("DREAM_HEAD_WEIGHTS") or None,
        help="with-classifier weights file for --target (default $DREAM_HEAD_WEIGHTS, else "
        "the Keras download)",
    )
    parser.add_argument(
        "--max-side",
        type=int,
        default=max_side,
        help=f"scale the input down to this longest side first (default {max_side})",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=os.environ.get("DREAM_PRECISION", "float32"),
        help="compute precision; mixed_bfloat16 on CPUs with AVX512_BF16/AMX or recent GPUs",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=DEFAULT_TILE_SIZE,
        help=f"compute gradients in tiles of this many px (default {DEFAULT_TILE_SIZE}; 0 = never)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:  # compare, layers, kinds: see cli_sweeps.py
        from dream_engine import cli_sweeps

        command = cli_sweeps.COMMANDS[argv[0]]
        args = cli_sweeps.build_parser(argv[0]).parse_args(argv[1:])
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


def resolve_params(args: argparse.Namespace) -> DreamParams:
    """The preset (or the model's default) with every explicit flag applied on top."""
    preset = get_preset(args.preset or default_preset_for(args.model))
    params = preset.params
    if args.model and args.model != params.model:
        if args.preset or not (args.layers or args.channels or args.target):
            raise UserError(
                f"model: preset '{preset.name}' is for {params.model}; pick a preset for "
                f"{args.model} (see --list-presets) or give --layers, --channels or --target."
            )
        params = DreamParams(
            **{**params.to_dict(), "model": args.model, "layers": {}, "channels": {}}
        )
    return params.replace(**param_overrides(args))


def param_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters given as flags (None where not given: the preset's value stays)."""
    return {
        "layers": parse_layers(args.layers) if args.layers else None,
        "channels": parse_channels(args.channels) if args.channels else None,
        "target": args.target,
        "target_weight": args.target_weight,
        "step": args.step,
        "octaves": args.octaves,
        "octave_scale": args.octave_scale,
        "iterations": args.iterations,
        "max_loss": args.max_loss,
        "jitter": args.jitter,
        "seed": args.seed,
    }


def check_max_side(args: argparse.Namespace) -> None:
    if args.max_side is not None and args.max_side < 16:
        raise UserError("max-side must be at least 16 px.")


def build_engine(args: argparse.Namespace, params: DreamParams) -> DreamEngine:
    """The engine the flags ask for, built as every executor builds one (`EngineConfig`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out
    config = EngineConfig(
        model=params.model,
        weights=args.weights,
        seed=params.seed,
        precision=args.precision,
        tile_size=args.tile_size or None,
        head_weights=args.head_weights,
    )
    return config.build()


def _dream(args: argparse.Namespace) -> int:
    from dream_engine.animation import suggest_frame_every
    from dream_engine.images import load_image_file

    params = resolve_params(args)
    check_max_side(args)
    image = load_image_file(args.input)
    output = checked_output(Path(args.output) if args.output else _default_output(Path(args.input)))
    if args.gallery:
        prepare_folder(args.gallery)
    if args.gif:
        checked_output(args.gif, formats=("GIF",))
    engine = build_engine(args, params)
    frame_every = suggest_frame_every(params, GIF_FRAMES) if args.gif else None
    with ProgressBar() as bar:
        result = engine.dream(
            image, params, on_progress=bar.update, max_side=args.max_side, frame_every=frame_every
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


def checked_output(output: Path, formats: tuple[str, ...] = OUTPUT_FORMATS) -> Path:
    """`output`, if an image in one of `formats` can be written there; checked before
    dreaming, so a typo in the name costs a second instead of the whole dream."""
    from PIL import Image

    if Image.registered_extensions().get(output.suffix.lower()) not in formats:
        *others, last = (f".{name.lower().replace('jpeg', 'jpg')}" for name in formats[:3])
        endings = f"{', '.join(others)} or {last}" if others else last
        raise UserError(f"Can't write an image named {output.name}: end the name in {endings}.")
    if output.is_dir():
        raise UserError(f"{output} is a folder; name the image file to write.")
    existing = next(folder for folder in output.parents if folder.exists())
    if not existing.is_dir():
        raise UserError(f"Can't write {output}: {existing} is a file, not a folder.")
    return output


def prepare_folder(folder: Path) -> None:
    """Make the folder outputs go to, before dreaming (see `checked_output`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"Could not make the folder {folder}: {error}.") from None


def save_image(image: Image.Image, output: Path) -> None:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        image.save(output)
    except (OSError, ValueError) as error:
        raise UserError(f"Could not write {output}: {error}.") from None


def _save_gif(frames: list[Image.Image], path: Path) -> int:
    """Write the animation (within `GIF_LIMIT_BYTES`); its size in bytes."""
    from dream_engine.animation import encode_gif_to_fit

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


class ProgressBar:
    """A tqdm bar over all steps of all octaves, and of all variants of a comparison
    (shown only on a terminal)."""

    def __enter__(self) -> ProgressBar:
        from tqdm import tqdm

        self._bar = tqdm(
            total=1.0, unit="dream", disable=None, bar_format="{l_bar}{bar}| {elapsed}<{remaining}"
        )
        return self

    def update(self, progress: Progress) -> None:
        self._bar.n = round(progress.fraction, 4)
        many = progress.variants > 1
        variant = f"variant {progress.variant}/{progress.variants} " if many else ""
        self._bar.set_description(
            f"{variant}octave {progress.octave}/{progress.octaves} "
            f"step {progress.step}/{progress.steps}"
        )
        self._bar.set_postfix_str(f"loss {progress.loss:.3g}")

    def __exit__(self, *exc: object) -> None:
        self._bar.close()
