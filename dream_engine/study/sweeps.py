"""Comparisons: the same image dreamed several ways on one engine, shown as one grid.

The project grew from a study that dreamed one image with one knob changed at a
time (lower vs upper layers, small vs large step, 1 vs 5 octaves...). This
module makes such a comparison from a line of text, runs it on one engine (the
model is built once and each layer combination compiled once, however many
variants), and composes the labelled grid (`grids.py`), input first.

The API, for the CLI and the bot alike (no TensorFlow is imported here):

    parse_vary(text, base, max_variants=MAX_VARIANTS, *, guided=False) -> list[Variant]
        "step=0.005,0.05": one variant per value of one parameter, the rest as `base`.
    preset_variants(names, overrides=None, model=None, max_variants=...) -> list[Variant]
        "lower-layers,upper-layers": one variant per preset.
    layer_variants(model, base=None, layers=None, max_variants=None) -> list[Variant]
        One variant per layer: the model's contact sheet (mixed0..mixed10 for InceptionV3).
    run_sweep(engine, image, base_params, variants, on_progress=None, cancel=None,
              max_side=None, *, title=None, tile_size=None, guide=None) -> SweepResult

`run_jobs` is the shared core (each variant from its own start image), which
`kinds.run_kinds` uses for its five kinds of picture.

The `--vary` syntax (`VARY_SYNTAX`), safe unquoted in a shell and in a Discord option:
    PARAM=V1,V2,...    step, octaves, octave_scale (or octave-scale), iterations,
                       max_loss (or max-loss), jitter, seed, lap_levels,
                       scale_jitter or rotate_jitter
    layers=A,B,...     each value a layer, or layers joined with "+" and weighted
                       with ":", e.g. layers=mixed3,mixed5,mixed3+mixed5:0.5
    target=A,B,...     classes to make the network find (target_weight=... their share)
    guide_weight=A,B   a guide image's pull, in a comparison that has one (`guided`)
    P=..;Q=..          two parameters at once: every combination (quote the ";" in a shell)
At most `MAX_VARIANTS` (8) variants unless the caller allows more; at least 2.
Every mistake is a `ParamError` with one friendly line.

Progress comes as one bar for the whole sweep: each `Progress` says which
variant it belongs to (`variant`, `variants`) and its `fraction` runs 0..1 once.
The cancel flag is the engine's: honoured between and inside variants.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from dream_engine.core.models import get_model_spec
from dream_engine.core.params import INTEGER_FIELDS, DreamParams
from dream_engine.core.presets import default_preset_for, get_preset, load_preset
from dream_engine.core.results import DreamResult, Progress
from dream_engine.errors import ParamError
from dream_engine.media.grids import DEFAULT_TILE_HEIGHT, compose_grid
from dream_engine.media.images import fit_within

if TYPE_CHECKING:
    from dream_engine.core.engine import CancelFlag, DreamEngine

MAX_VARIANTS = 8
VARIANTS_RANGE = (2, 32)  # what a caller (the CLI's --max-variants, the bot's setting) may allow
MAX_VARY_TEXT = 500  # characters of a --vary text
VARIABLE = (
    "step", "octaves", "octave_scale", "iterations", "max_loss", "jitter", "seed", "lap_levels",
    "scale_jitter", "rotate_jitter", "layers", "target", "target_weight", "guide_weight",
)  # fmt: skip
VARY_SYNTAX = "PARAM=V1,V2 (e.g. step=0.005,0.05 or layers=mixed3,mixed5,mixed3+mixed5:0.5)"


@dataclass(frozen=True)
class Variant:
    """One tile of a comparison: its caption (what differs) and what it dreams with."""

    caption: str
    params: DreamParams


@dataclass
class SweepResult:
    """A comparison's dreams, in order, and the grid that shows them with the input(s)."""

    grid: Image.Image
    inputs: list[tuple[str, Image.Image]]  # the start image(s) shown first on the grid
    variants: list[Variant]
    results: list[DreamResult]  # one per variant, same order
    seconds: float  # all variants, from the first step to the grid
    notes: list[str] = field(default_factory=list)  # what the engine changed, once each

    @property
    def images(self) -> list[tuple[str, Image.Image]]:
        """Each variant's caption and final dream, full size."""
        return [(v.caption, r.image) for v, r in zip(self.variants, self.results, strict=True)]


# --- Variants from text --------------------------------------------------------------------------


def parse_vary(
    text: str, base: DreamParams, max_variants: int = MAX_VARIANTS, *, guided: bool = False
) -> list[Variant]:
    """Variants of `base` from `VARY_SYNTAX` text, captioned with what each one sets;
    `guided`: the comparison has a guide image, so its weight changes the dream."""
    if not isinstance(text, str) or not text.strip():
        raise ParamError(f"vary: say what to vary, as {VARY_SYNTAX}.")
    if len(text) > MAX_VARY_TEXT:
        raise ParamError(f"vary: too long ({MAX_VARY_TEXT} characters at most).")
    clauses = [clause.strip() for clause in text.split(";") if clause.strip()]
    names: list[str] = []
    choices: list[list[Any]] = []
    for clause in clauses:
        name, values = _parse_clause(clause, base)
        if name in names:
            raise ParamError(f"vary: {name} is given twice; list all its values once.")
        names.append(name)
        choices.append(values)
    count = math.prod(len(values) for values in choices)
    _check_count(count, max_variants, "vary")
    variants = []
    for combination in itertools.product(*choices):
        changes = dict(zip(names, combination, strict=True))
        try:
            params = base.replace(**changes)
        except ParamError as error:
            raise ParamError(f"vary: {error}") from None
        caption = ", ".join(
            f"{name}={format_value(name, value)}" for name, value in changes.items()
        )
        variants.append(Variant(caption, params))
    _refuse_idle_knobs(names, base, guided)
    _refuse_repeats(variants, "vary", guided=guided)
    return variants


def _parse_clause(clause: str, base: DreamParams) -> tuple[str, list[Any]]:
    """`name=v1,v2` -> (the DreamParams field, its values parsed but not yet range-checked)."""
    raw_name, sep, raw_values = clause.partition("=")
    name = raw_name.strip().lower().replace("-", "_")
    if not sep or not name:
        raise ParamError(f"vary: '{_shorten(clause)}' is not {VARY_SYNTAX}.")
    if name == "model":
        raise ParamError(
            "vary: the model can't be varied within one comparison (one network at a time); "
            "compare its presets or layers instead."
        )
    if name not in VARIABLE:
        raise ParamError(
            f"vary: '{_shorten(raw_name.strip())}' is not a parameter to vary; "
            f"choose from {', '.join(VARIABLE)}."
        )
    texts = [value.strip() for value in raw_values.split(",")]
    if not any(texts):
        raise ParamError(f"vary: give {name} some values, e.g. {name}={_example(name)}.")
    if not all(texts):
        raise ParamError(f"vary: {name} has an empty value; separate values with single commas.")
    return name, [_parse_value(name, value) for value in texts]


def _parse_value(name: str, text: str) -> Any:
    if name == "layers":
        return _parse_layer_combination(text)
    if name == "target":
        return text  # a class name, resolved (with suggestions) when the params validate
    try:
        return int(text) if name in INTEGER_FIELDS else float(text)
    except ValueError:
        kind = "a whole number" if name in INTEGER_FIELDS else "a number"
        raise ParamError(
            f"vary: {name} value '{_shorten(text)}' is not {kind}, e.g. {name}={_example(name)}."
        ) from None


def _parse_layer_combination(text: str) -> dict[str, float]:
    """`mixed3+mixed5:0.5` -> {"mixed3": 1.0, "mixed5": 0.5} (":" or "=" before a weight)."""
    layers: dict[str, float] = {}
    for part in text.split("+"):
        name, sep, weight = part.replace("=", ":").partition(":")
        name = name.strip()
        if not name:
            raise ParamError(
                f"vary: '{_shorten(text)}' has an empty layer name; write e.g. mixed3+mixed5:0.5."
            )
        try:
            layers[name] = float(weight) if sep else 1.0
        except ValueError:
            raise ParamError(
                f"vary: the weight in '{_shorten(part)}' is not a number; write e.g. mixed5:0.5."
            ) from None
    return layers


def preset_variants(
    names: str | Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    model: str | None = None,
    max_variants: int = MAX_VARIANTS,
) -> list[Variant]:
    """One variant per preset ("a,b" or a list), each with `overrides` applied on top.

    All presets must be for one model (`model`, when given): one engine runs them.
    """
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",")]
    names = [name for name in names if name]
    _check_count(len(names), max_variants, "presets")
    if len(set(names)) < len(names):
        raise ParamError("presets: a preset is listed twice.")
    presets = [get_preset(name) for name in names]
    wanted = model or presets[0].model
    for preset in presets:
        if preset.model != wanted:
            raise ParamError(
                f"presets: '{preset.name}' is for {preset.model}, not {wanted}; "
                "compare presets of one model (see --list-presets)."
            )
    given = {key: value for key, value in dict(overrides or {}).items() if value is not None}
    try:
        variants = [Variant(preset.name, preset.params.replace(**given)) for preset in presets]
    except ParamError as error:
        raise ParamError(f"presets: {error}") from None
    shared = ", ".join(f"{name}={format_value(name, value)}" for name, value in given.items())
    _refuse_repeats(variants, "presets", because=f" with {shared}" if shared else "")
    return variants


def layer_variants(
    model: str,
    base: DreamParams | None = None,
    layers: Sequence[str] | None = None,
    max_variants: int | None = None,
) -> list[Variant]:
    """One variant per layer (weight 1): what each depth of `model` sees.

    `layers` defaults to the model's contact sheet (`ModelSpec.contact_sheet_layers`:
    mixed0..mixed10 for InceptionV3, 11 for MobileNetV2 and dogs, 8 for VGG19), and
    `base` (the octave schedule) to the model's default preset. The sheet is not held
    to `MAX_VARIANTS`; pass `max_variants` to hold it to a limit.
    """
    spec = get_model_spec(model)
    chosen = list(layers) if layers is not None else list(spec.contact_sheet_layers())
    limit = max_variants if max_variants is not None else max(len(chosen), 2)
    _check_count(len(chosen), limit, "layers")
    if len(set(chosen)) < len(chosen):
        raise ParamError("layers: a layer is listed twice.")
    if base is None:
        base = load_preset(default_preset_for(model))
        if base.model != model:  # a model without presets of its own: borrow the schedule
            base = DreamParams(**{**base.to_dict(), "model": model, "layers": {chosen[0]: 1.0}})
    elif base.model != model:
        raise ParamError(f"layers: the base parameters are for {base.model}, not {model}.")
    return [Variant(layer, base.replace(layers={layer: 1.0})) for layer in chosen]


def describe_changes(params: DreamParams, base: DreamParams) -> str:
    """`params` against `base` in one caption, e.g. "step=0.05, octaves=5"."""
    changes = params.differences(base)
    if not changes:
        return "as base"
    return ", ".join(f"{name}={format_value(name, value)}" for name, value in changes.items())


def describe_common(variants: Sequence[Variant], guided: bool = False) -> str:
    """What every variant shares, as a grid title: the settings the comparison holds still
    (a guide's weight only where there is a guide)."""
    first = variants[0].params
    same = [
        f.name
        for f in dataclasses.fields(first)
        if all(
            _plain(getattr(v.params, f.name)) == _plain(getattr(first, f.name)) for v in variants
        )
    ]
    parts = [first.model] if "model" in same else []
    unset = {
        "jitter": first.jitter == 0,
        "lap_levels": first.lap_levels == 0,
        "scale_jitter": first.scale_jitter == 0,
        "rotate_jitter": first.rotate_jitter == 0,
        "target": first.target is None,
        "layers": not first.layers,
    }
    unset["target_weight"] = unset["target"]
    unset["guide_weight"] = not guided
    order = [name for name in VARIABLE if name != "layers"] + ["layers"]  # long ones last
    parts += [
        f"{name}={format_value(name, getattr(first, name))}"
        for name in order
        if name in same and not unset.get(name, False)
    ]
    return "same for all: " + ", ".join(parts) if parts else ""


def format_value(name: str, value: Any) -> str:
    """A parameter's value as the --vary syntax writes it (layers: mixed3+mixed5:0.5)."""
    if name == "layers":
        return "+".join(
            layer if weight == 1 else f"{layer}:{weight:g}" for layer, weight in value.items()
        )
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- Running --------------------------------------------------------------------------------------


def run_sweep(
    engine: DreamEngine,
    image: Image.Image,
    base_params: DreamParams,
    variants: Sequence[Variant | DreamParams],
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelFlag = None,
    max_side: int | None = None,
    *,
    title: str | None = None,
    tile_size: int | None = None,
    guide: Image.Image | None = None,
) -> SweepResult:
    """Dream `image` once per variant on `engine`, and compose the grid (input first).

    Every variant starts from the same image with its own params (the same seed
    unless the seed is what varies). Plain `DreamParams` are captioned with how they
    differ from `base_params`. The grid's title is `title` (what the comparison is) then
    what all variants share.
    Raises `ParamError` before any work for a variant the engine can't run, and
    `DreamCancelled` as soon as `cancel` is set.
    """
    chosen = [
        v if isinstance(v, Variant) else Variant(describe_changes(v, base_params), v)
        for v in variants
    ]
    start = image.convert("RGB")
    if max_side is not None:
        start = fit_within(start, max_side)  # what the engine will dream on, for the input tile
    return run_jobs(
        engine,
        [(image, variant) for variant in chosen],
        inputs=[("input", start)],
        title="; ".join(filter(None, (title, describe_common(chosen, guide is not None)))),
        on_progress=on_progress,
        cancel=cancel,
        max_side=max_side,
        tile_size=tile_size,
        guide=guide,
    )


def run_jobs(
    engine: DreamEngine,
    jobs: Sequence[tuple[Image.Image, Variant]],
    *,
    inputs: Sequence[tuple[str, Image.Image]],
    title: str | None,
    columns: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelFlag = None,
    max_side: int | None = None,
    tile_size: int | None = None,
    guide: Image.Image | None = None,
) -> SweepResult:
    """Dream each (start image, variant) in turn with one progress bar; the grid shows
    `inputs` then every dream. The shared core of `run_sweep` and `kinds.run_kinds`.
    `tile_size` overrides the engine's for every dream (a smaller retry); None: the
    engine's own. `guide` steers every dream alike (see `DreamEngine.dream`)."""
    if not jobs:
        raise ParamError("Nothing to compare: give at least one variant.")
    for _, variant in jobs:
        variant.params.validate()
        if variant.params.model != engine.model_name:
            raise ParamError(
                f"model: '{variant.caption}' is for {variant.params.model}, but this engine "
                f"runs {engine.model_name}."
            )
        if guide is not None and not variant.params.active_layers():
            raise ParamError(
                f"guide: a guide is matched at the weighted layers, and '{variant.caption}' "
                "has none."
            )
    started = time.perf_counter()
    results: list[DreamResult] = []
    for number, (start, variant) in enumerate(jobs, start=1):
        report = None
        if on_progress is not None:
            report = _sweep_progress(on_progress, number, len(jobs), started)
        retry = {} if tile_size is None else {"tile_size": tile_size}
        results.append(
            engine.dream(
                start,
                variant.params,
                on_progress=report,
                cancel=cancel,
                max_side=max_side,
                guide=guide,
                **retry,  # type: ignore[arg-type]
            )
        )
    variants = [variant for _, variant in jobs]
    tiles = [*inputs, *((v.caption, r.image) for v, r in zip(variants, results, strict=True))]
    height = min(DEFAULT_TILE_HEIGHT, max(r.image.height for r in results))
    grid = compose_grid(tiles, title=title or None, columns=columns, tile_height=height)
    return SweepResult(
        grid=grid,
        inputs=list(inputs),
        variants=variants,
        results=results,
        seconds=time.perf_counter() - started,
        notes=_merge_notes(variants, results),
    )


def _sweep_progress(
    on_progress: Callable[[Progress], None], number: int, total: int, started: float
) -> Callable[[Progress], None]:
    """One dream's progress as a share of the whole sweep, timed from the sweep's start."""

    def report(progress: Progress) -> None:
        on_progress(
            dataclasses.replace(
                progress,
                variant=number,
                variants=total,
                elapsed=time.perf_counter() - started,
            )
        )

    return report


def _merge_notes(variants: Sequence[Variant], results: Sequence[DreamResult]) -> list[str]:
    """Notes every dream shares once; the others, and early stops, under their caption."""
    shared = set.intersection(*(set(result.notes) for result in results))
    notes = [note for note in results[0].notes if note in shared]
    for variant, result in zip(variants, results, strict=True):
        own = [note for note in result.notes if note not in shared]
        stopped = [i for i, early in enumerate(result.stopped_early, start=1) if early]
        if stopped:
            which = ", ".join(map(str, stopped))
            own.append(f"max_loss stopped octave{'s' if len(stopped) > 1 else ''} {which} early")
        notes += [f"{variant.caption}: {note}" for note in own]
    return notes


def _check_count(count: int, max_variants: int, what: str) -> None:
    if count < 2:
        raise ParamError(f"{what}: give at least 2 to compare, e.g. {_count_example(what)}.")
    if count > max_variants:
        raise ParamError(
            f"{what}: that makes {count} variants; at most {max_variants} in one comparison."
        )


def _refuse_idle_knobs(names: Sequence[str], base: DreamParams, guided: bool) -> None:
    """Knobs that change nothing on this base would give identical pictures captioned as
    different ones: say what makes them matter instead."""
    random = {"jitter", "scale_jitter", "rotate_jitter"}
    if "seed" in names and not random & set(names) and not base.seed_matters:
        raise ParamError(
            "vary: seed only changes the random shifts and views (jitter, scale_jitter, "
            "rotate_jitter), and they are off here; turn one on too, e.g. seed=1,2;jitter=32."
        )
    if "target_weight" in names and "target" not in names and base.target is None:
        raise ParamError(
            "vary: target_weight weighs a target class, and there is none here; name one "
            "too, e.g. target_weight=0.5,2;target=golden retriever."
        )
    if "guide_weight" in names and not guided:
        raise ParamError(
            "vary: guide_weight weighs a guide image, and there is none here; attach one as "
            "guide (the CLI: --guide PATH)."
        )


def _refuse_repeats(
    variants: Sequence[Variant], what: str, because: str = "", *, guided: bool = False
) -> None:
    """Two tiles that dream the same picture under different captions would mislead."""
    seen: dict[tuple, str] = {}
    for variant in variants:
        key = _what_is_dreamed(variant.params, guided)
        if key in seen:
            raise ParamError(f"{what}: {variant.caption} dreams the same as {seen[key]}{because}.")
        seen[key] = variant.caption


def _what_is_dreamed(params: DreamParams, guided: bool = False) -> tuple:
    """The parameters as the engine uses them: equal keys dream equal pictures.

    Spellings of one class, zero-weight layers, the seed without jitter, the octave
    scale of a single octave and the weights of an absent target or guide change nothing.
    """
    target = params.target_class()
    return (
        params.model, params.step, params.octaves, params.iterations, params.max_loss,
        params.octave_scale if params.octaves > 1 else None,
        params.jitter, params.seed if params.seed_matters else None, params.lap_levels,
        params.scale_jitter, params.rotate_jitter,
        tuple(params.active_layers().items()),
        tuple((layer, tuple(sorted(chosen.items())))
              for layer, chosen in params.active_channels().items()),
        target and target[0], params.target_weight if target else None,
        params.guide_weight if guided else None,
    )  # fmt: skip


def _count_example(what: str) -> str:
    return {
        "vary": "step=0.005,0.05",
        "presets": "lower-layers,upper-layers",
        "layers": "mixed3,mixed5",
    }[what]


def _example(name: str) -> str:
    return {
        "step": "0.005,0.05",
        "octaves": "1,5",
        "octave_scale": "1.2,1.8",
        "iterations": "10,200",
        "max_loss": "10,50",
        "jitter": "0,32",
        "lap_levels": "0,4",
        "scale_jitter": "0,0.05",
        "rotate_jitter": "0,5",
        "seed": "1,2",
        "layers": "mixed3,mixed5",
        "target": "pug,Chihuahua",
        "target_weight": "0.5,2",
        "guide_weight": "1,5",
    }[name]


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _shorten(text: str, limit: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
