"""`python -m dream_engine compare|layers|kinds`: comparisons as one labelled grid.

    compare INPUT --vary step=0.005,0.05      one parameter, several values
    compare INPUT --presets lower-layers,upper-layers
    layers  INPUT [--layers mixed0,mixed5]    one tile per layer (the model's sheet by default)
    kinds   [--photo PATH]                    blank, static, sharp, blurred, low resolution

Each takes the main command's flags (`--preset`, `--step`..., `--weights`,
`--max-side`...) as the settings every tile shares, runs on one engine, shows
one progress bar, and follows the same exit rule: 0, or 2 with one line.
`main.py` dispatches here on the first argument.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dream_engine.cli.flags import (
    OneLineParser,
    ProgressBar,
    add_engine_flags,
    add_param_flags,
    build_engine,
    check_max_side,
    checked_output,
    load_guide,
    param_overrides,
    resolve_params,
    save_image,
)
from dream_engine.core.models import get_model_spec
from dream_engine.core.params import parse_layers
from dream_engine.core.presets import DEFAULT_PRESET, get_preset
from dream_engine.errors import UserError
from dream_engine.study.sweeps import (
    MAX_VARIANTS,
    VARIANTS_RANGE,
    VARY_SYNTAX,
    SweepResult,
    layer_variants,
    parse_vary,
    preset_variants,
    run_sweep,
)

DEFAULT_MAX_SIDE = 512  # every tile is a whole dream, and a grid shows them small anyway


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=f"python -m dream_engine {command}", description=DESCRIPTIONS[command]
    )
    if command == "kinds":
        parser.add_argument("--photo", help="the photo to use (default: the bundled sample)")
        parser.add_argument("-o", "--output", default="kinds.png", help="default: kinds.png")
    else:
        parser.add_argument("input", help="image to dream (PNG, JPEG, WebP, GIF, BMP, TIFF)")
        parser.add_argument("-o", "--output", help=f"default: INPUT-{command}.png")
    if command == "compare":
        parser.add_argument(
            "--vary",
            action="append",
            help=f"what to vary, as {VARY_SYNTAX}; twice for every combination of two",
        )
        parser.add_argument("--presets", help="presets to compare, e.g. lower-layers,upper-layers")
        parser.add_argument(
            "--max-variants",
            type=int,
            default=MAX_VARIANTS,
            help=f"refuse comparisons with more variants (default {MAX_VARIANTS})",
        )
    layers_help = "the settings every variant shares: layer weights, e.g. mixed3=0.5,mixed4=1"
    if command == "layers":
        layers_help = "the layers to show, e.g. mixed0,mixed5,mixed10 (default: the model's sheet)"
    add_param_flags(parser, layers_help=layers_help)
    add_engine_flags(parser, DEFAULT_MAX_SIDE)
    return parser


def compare(args: argparse.Namespace) -> int:
    """One image, several variants: one parameter's values or several presets."""
    from dream_engine.media.images import load_image_file

    low, high = VARIANTS_RANGE
    if not low <= args.max_variants <= high:
        raise UserError(f"max-variants must be in [{low}, {high}].")
    if bool(args.vary) == bool(args.presets):
        raise UserError(
            "compare: say what to compare, either --vary step=0.005,0.05 or "
            "--presets lower-layers,upper-layers (not both)."
        )
    if args.presets:
        if args.preset:
            raise UserError("compare: --presets names every preset; leave out --preset.")
        overrides = param_overrides(args)
        variants = preset_variants(args.presets, overrides, args.model, args.max_variants)
        base = variants[0].params
    else:
        base = resolve_params(args)
        variants = parse_vary(
            ";".join(args.vary), base, args.max_variants, guided=args.guide is not None
        )
    check_max_side(args)
    image = load_image_file(args.input)
    guide = load_guide(args)
    output = _output(args, "compare")
    engine = build_engine(args, base)
    with ProgressBar() as bar:
        result = run_sweep(
            engine, image, base, variants, bar.update, max_side=args.max_side, guide=guide
        )
    return _report(result, output)


def _sheet_layers(text: str | None) -> list[str] | None:
    """The layers named by `--layers` (None when not given), each once: a layer listed
    twice, or `none`, would otherwise quietly shrink or replace the sheet."""
    if not text:
        return None
    chosen = list(parse_layers(text))
    if not chosen:
        raise UserError("layers: name the layers to show, e.g. mixed0,mixed5,mixed10.")
    if len(chosen) < len([part for part in text.split(",") if part.strip()]):
        raise UserError("layers: a layer is listed twice.")
    return chosen


def layers(args: argparse.Namespace) -> int:
    """One image, one tile per layer: what each depth of the network sees."""
    from dream_engine.media.images import load_image_file

    model = args.model or get_preset(args.preset or DEFAULT_PRESET).model
    sheet = _sheet_layers(args.layers) or list(get_model_spec(model).contact_sheet_layers())
    # The base is the preset's schedule on the first layer, so a model without presets works.
    base = resolve_params(argparse.Namespace(**{**vars(args), "layers": sheet[0]}))
    variants = layer_variants(base.model, base, sheet, max_variants=VARIANTS_RANGE[1])
    check_max_side(args)
    image = load_image_file(args.input)
    guide = load_guide(args)
    output = _output(args, "layers")
    engine = build_engine(args, base)
    with ProgressBar() as bar:
        result = run_sweep(
            engine, image, base, variants, bar.update, max_side=args.max_side, guide=guide
        )
    return _report(result, output)


def kinds(args: argparse.Namespace) -> int:
    """Five kinds of start image dreamed alike, no upload needed."""
    from dream_engine.media.images import load_image_file
    from dream_engine.study.kinds import run_kinds

    params = resolve_params(args)
    check_max_side(args)
    photo = load_image_file(args.photo) if args.photo else None
    guide = load_guide(args)
    output = checked_output(Path(args.output))
    engine = build_engine(args, params)
    with ProgressBar() as bar:
        result = run_kinds(
            engine, params, bar.update, max_side=args.max_side, photo=photo, seed=params.seed,
            guide=guide,
        )  # fmt: skip
    return _report(result, output)


COMMANDS = {"compare": compare, "layers": layers, "kinds": kinds}
DESCRIPTIONS = {
    "compare": "Dream one image several ways, one knob changed (--vary) or one preset each "
    "(--presets), on one engine; writes one labelled grid, input first.",
    "layers": "Dream one image once per layer, shallow to deep: what each depth of the network "
    "sees, as one labelled grid.",
    "kinds": "Dream a blank image, static, a sharp photo, the photo blurred and the photo at "
    "low resolution alike: one grid, inputs above their dreams.",
}


def _report(result: SweepResult, output: Path) -> int:
    save_image(result.grid, output)
    grid, model = result.grid, result.variants[0].params.model
    print(
        f"wrote {output} ({len(result.variants)} dreams, grid {grid.width}x{grid.height}, "
        f"{model}, {result.seconds:.1f} s)"
    )
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def _output(args: argparse.Namespace, command: str) -> Path:
    if args.output:
        return checked_output(Path(args.output))
    source = Path(args.input)
    return source.with_name(f"{source.stem}-{command}.png")
