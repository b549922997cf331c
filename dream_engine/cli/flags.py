"""What every command line shares: the parameter and engine flags, the one-line error
rule, output checks and the progress bar.

`main.py` (a single dream) and `study.py` (comparisons) both build on this module and
never on each other, so an experiment's flags read the same in every command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from dream_engine.core.models import MODELS
from dream_engine.core.params import (
    DEFAULT_TILE_SIZE,
    PRECISION_CHOICES,
    DreamParams,
    parse_channels,
    parse_layers,
)
from dream_engine.core.presets import DEFAULT_PRESET, default_preset_for, get_preset
from dream_engine.errors import UserError
from dream_engine.runtime.executor import EngineConfig

if TYPE_CHECKING:
    from PIL import Image

    from dream_engine.core.engine import DreamEngine
    from dream_engine.core.results import Progress

EXIT_USER_ERROR = 2
OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # RGB images Pillow writes


class OneLineParser(argparse.ArgumentParser):
    """argparse, except that a bad flag is one line (`error: ...`, exit 2) like every
    other mistake, not the usage block (`--help` still prints it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # No prefixes: `compare --guide` must not quietly become `--guide-weight`.
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


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
    parser.add_argument(
        "--guide", type=Path, help="an image whose features the dream grows (see --guide-weight)"
    )
    parser.add_argument(
        "--guide-weight", type=float, help="with --guide: its pull against the layers', (0, 1000]"
    )
    parser.add_argument("--step", type=float, help="gradient step size, in (0, 1]")
    parser.add_argument("--octaves", type=int, help="number of octaves, 1..10")
    parser.add_argument("--octave-scale", type=float, help="size ratio between octaves, (1, 3]")
    parser.add_argument("--iterations", type=int, help="steps per octave, 1..1000")
    parser.add_argument("--max-loss", type=float, help="stop an octave once its loss passes this")
    parser.add_argument("--jitter", type=int, help="random roll in pixels each step (0 = off)")
    parser.add_argument(
        "--lap-levels",
        type=int,
        help="Laplacian-pyramid gradient normalisation: bands, 0..8 (0 = off): smoother, larger "
        "structures",
    )
    parser.add_argument(
        "--scale-jitter",
        type=float,
        help="the network's view scaled at random by 1 +- this each step, 0..0.5 (0 = off)",
    )
    parser.add_argument(
        "--rotate-jitter",
        type=float,
        help="and rotated at random by up to this many degrees either way, 0..45 (0 = off)",
    )
    parser.add_argument(
        "--seed", type=int, help="seed for the random shifts and views, and random weights"
    )


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
        choices=PRECISION_CHOICES,
        default=os.environ.get("DREAM_PRECISION") or "auto",
        help="compute precision (default $DREAM_PRECISION or auto: bfloat16 where the device "
        "computes it natively and the model gains from it, else float32)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.environ.get("DREAM_THREADS") or "0",  # argparse checks it as an int
        help="TensorFlow threads per op (default $DREAM_THREADS or 0: the CPUs this process "
        "may use, from its affinity and cgroup quota)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="say which precision and threads the engine chose, and why",
    )
    parser.add_argument(
        "--tile-size",
        type=int,
        default=DEFAULT_TILE_SIZE,
        help=f"compute gradients in tiles of this many px (default {DEFAULT_TILE_SIZE}; 0 = never)",
    )


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
        "guide_weight": args.guide_weight,
        "step": args.step,
        "octaves": args.octaves,
        "octave_scale": args.octave_scale,
        "iterations": args.iterations,
        "max_loss": args.max_loss,
        "jitter": args.jitter,
        "lap_levels": args.lap_levels,
        "scale_jitter": args.scale_jitter,
        "rotate_jitter": args.rotate_jitter,
        "seed": args.seed,
    }


def load_guide(args: argparse.Namespace) -> Image.Image | None:
    """The `--guide` image, read and checked like the input (its errors say it is the
    guide), or None; a `--guide-weight` with no guide to weigh is refused."""
    from dream_engine.media.images import load_image_file

    if args.guide is None:
        if args.guide_weight is not None:
            raise UserError("guide-weight: it weighs a guide image; give one with --guide.")
        return None
    try:
        return load_image_file(args.guide)
    except UserError as error:
        raise UserError(f"guide: {error}") from None


def check_max_side(args: argparse.Namespace) -> None:
    if args.max_side is not None and args.max_side < 16:
        raise UserError("max-side must be at least 16 px.")


def build_engine(args: argparse.Namespace, params: DreamParams) -> DreamEngine:
    """The engine the flags ask for, built as every executor builds one (`EngineConfig`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out
    if args.threads < 0:
        raise UserError("threads: give a positive number (0 = the CPUs this process may use).")
    config = EngineConfig(
        model=params.model,
        weights=args.weights,
        seed=params.seed,
        precision=args.precision,
        threads=args.threads or None,
        tile_size=args.tile_size or None,
        head_weights=args.head_weights,
    )
    engine = config.build()
    if args.verbose:
        plan = engine.thread_plan
        print(
            f"precision: {engine.precision} ({engine.precision_choice.reason})\n"
            f"threads: {plan.intra_op} per op, {plan.inter_op} at once ({plan.reason})",
            file=sys.stderr,
        )
    return engine


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
