"""Comparisons: variants from text, presets and layers; a sweep on one engine, one progress bar."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from dream_engine import DreamCancelled, DreamParams, ParamError, Progress, load_preset
from dream_engine.core.models import MODELS
from dream_engine.study.kinds import KINDS, kind_images, run_kinds, sample_photo
from dream_engine.study.sweeps import (
    MAX_VARIANTS,
    Variant,
    describe_changes,
    layer_variants,
    parse_vary,
    preset_variants,
    run_sweep,
)

BASE = load_preset("balanced")
# Small and quick on the shared random-weight engine: one octave, a couple of steps.
QUICK = DreamParams(layers={"mixed2": 1.0}, octaves=1, iterations=3, max_loss=1e6, step=0.02)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


# --- Variants from text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "values"),
    [
        ("step=0.005,0.05", "step", [0.005, 0.05]),
        ("octaves=1,5", "octaves", [1, 5]),
        ("octave-scale=1.2,1.8", "octave_scale", [1.2, 1.8]),
        ("octave_scale=1.2, 1.8", "octave_scale", [1.2, 1.8]),
        ("iterations=10,200", "iterations", [10, 200]),
        ("MAX-LOSS=10,50", "max_loss", [10.0, 50.0]),
        ("jitter=0,16,32", "jitter", [0, 16, 32]),
        ("seed=1,2", "seed", [1, 2]),
    ],
)
def test_parse_vary_makes_one_variant_per_value(text, field, values):
    base = BASE.replace(jitter=16)  # a seed only matters where there are random shifts
    variants = parse_vary(text, base)
    assert [getattr(v.params, field) for v in variants] == values
    for variant, value in zip(variants, values, strict=True):
        assert variant.caption == f"{field}={value:g}"
        others = variant.params.differences(base)
        assert set(others) <= {field}  # everything else is the base's


def test_parse_vary_layers_with_plus_and_weights():
    variants = parse_vary("layers=mixed3,mixed5,mixed3+mixed5:0.5, mixed2=2+mixed4", BASE)
    assert [dict(v.params.layers) for v in variants] == [
        {"mixed3": 1.0},
        {"mixed5": 1.0},
        {"mixed3": 1.0, "mixed5": 0.5},
        {"mixed2": 2.0, "mixed4": 1.0},
    ]
    assert [v.caption for v in variants] == [
        "layers=mixed3",
        "layers=mixed5",
        "layers=mixed3+mixed5:0.5",
        "layers=mixed2:2+mixed4",
    ]


def test_parse_vary_targets_resolve_class_names_leniently_and_suggest_on_a_miss():
    base = load_preset("dogs-dream")
    variants = parse_vary("target=pug, chihuahua ,Samoyed", base)
    assert [v.params.target_class()[1] for v in variants] == ["Pug", "Chihuahua", "Samoyed"]
    assert [v.caption for v in variants] == [
        "target=pug",
        "target=chihuahua",
        "target=Samoyed",
    ]
    with pytest.raises(ParamError, match="did you mean Pug"):
        parse_vary("target=pgu,Samoyed", base)


def test_parse_vary_two_parameters_gives_every_combination():
    variants = parse_vary("step=0.005,0.05; octaves=1,5", BASE)
    assert [(v.params.step, v.params.octaves) for v in variants] == [
        (0.005, 1),
        (0.005, 5),
        (0.05, 1),
        (0.05, 5),
    ]
    assert variants[1].caption == "step=0.005, octaves=5"


def test_max_variants_is_8_unless_the_caller_allows_more():
    nine = "seed=" + ",".join(str(i) for i in range(9))
    jittered = BASE.replace(jitter=8)
    assert MAX_VARIANTS == 8
    assert len(parse_vary("seed=" + ",".join(str(i) for i in range(8)), jittered)) == 8
    with pytest.raises(ParamError, match="9 variants; at most 8"):
        parse_vary(nine, BASE)
    assert len(parse_vary(nine, jittered, max_variants=9)) == 9
    with pytest.raises(ParamError, match="at most 3"):
        parse_vary("step=0.01,0.02;octaves=1,2", BASE, max_variants=3)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "say what to vary"),
        ("step", "is not PARAM=V1,V2"),
        ("=0.1,0.2", "is not PARAM=V1,V2"),
        ("colour=1,2", "'colour' is not a parameter to vary; choose from step"),
        ("__class__=1,2", "'__class__' is not a parameter"),
        ("model=dogs,inceptionv3", "the model can't be varied"),
        ("step=0.01", "at least 2"),
        ("step=", "give step some values"),
        ("step=0.1,,0.2", "empty value"),
        ("step=abc,0.1", "step value 'abc' is not a number"),
        ("octaves=1.5,2", "octaves value '1.5' is not a whole number"),
        ("iterations=1e9,2", "not a whole number"),
        ("step=5,0.1", "vary: step must be in (0, 1]; got 5.0"),
        ("step=nan,0.1", "step must be in"),
        ("max_loss=inf,10", "max_loss must be in"),
        ("jitter=-1,2", "jitter must be in [0, 256]"),
        ("seed=99999999999999999999,1", "seed must be in"),
        ("step=0.01,0.010", "step=0.01 dreams the same as step=0.01"),
        ("step=0.1,0.2;step=0.3,0.4", "step is given twice"),
        ("layers=mixed99,mixed3", "'mixed99' is not a layer of inceptionv3"),
        ("layers=mixed3:x,mixed4", "the weight in 'mixed3:x' is not a number"),
        ("layers=mixed3+,mixed4", "empty layer name"),
        ("layers=mixed3:0,mixed4", "needs a weight above 0"),
        ("step=" + ",".join(["0.1"] * 300), "too long"),
        ("step=\x00\x1b[31m,0.1", "is not a number"),
        ("step=0.1,0.2,0.3;octaves=1,2,3", "9 variants"),
        # Knobs that would change nothing here: identical pictures, different captions.
        ("seed=1,2", "seed only changes the random shifts and views (jitter, scale_jitter,"),
        ("target_weight=0.5,2", "target_weight weighs a target class, and there is none"),
        ("guide_weight=1,5", "guide_weight weighs a guide image, and there is none here"),
        # Values spelt differently that dream the same picture.
        ("target=pug,Pug", "target=Pug dreams the same as target=pug"),
        ("target=207,golden retriever", "dreams the same as target=207"),
        ("layers=mixed3,mixed3+mixed5:0", "dreams the same as layers=mixed3"),
        ("seed=1,2;jitter=0", "seed=2, jitter=0 dreams the same as seed=1, jitter=0"),
        ("octaves=1;octave_scale=1.2,1.8", "dreams the same as octaves=1, octave_scale=1.2"),
    ],
)
def test_parse_vary_refuses_bad_text_with_one_friendly_line(text, words):
    with pytest.raises(ParamError) as caught:
        parse_vary(text, BASE)
    message = str(caught.value)
    assert words in message
    assert message.startswith("vary: ")
    assert "\n" not in message and len(message) < 300
    assert message.isprintable()  # control characters from the input are not echoed


def test_seed_and_target_weight_vary_once_what_they_act_on_is_there():
    seeds = parse_vary("seed=1,2;jitter=32", BASE)
    assert [(v.params.seed, v.params.jitter) for v in seeds] == [(1, 32), (2, 32)]
    assert len(parse_vary("seed=1,2", BASE.replace(jitter=8))) == 2
    weights = parse_vary("target_weight=0.5,2", BASE.replace(target="golden retriever"))
    assert [v.params.target_weight for v in weights] == [0.5, 2.0]
    pulls = parse_vary("guide_weight=1,5", BASE, guided=True)
    assert [v.params.guide_weight for v in pulls] == [1.0, 5.0]
    with pytest.raises(ParamError, match="guide_weight=1 dreams the same as guide_weight=1"):
        parse_vary("guide_weight=1,1.0", BASE, guided=True)


def test_preset_variants_one_per_preset_with_overrides_on_top():
    variants = preset_variants("lower-layers, upper-layers", {"iterations": 5, "step": None})
    assert [v.caption for v in variants] == ["lower-layers", "upper-layers"]
    for variant in variants:
        expected = load_preset(variant.caption).replace(iterations=5)
        assert variant.params == expected


@pytest.mark.parametrize(
    ("names", "model", "words"),
    [
        ("lower-layers,dogs-fur", None, "'dogs-fur' is for dogs, not inceptionv3"),
        ("dogs-fur,dogs-dream", "inceptionv3", "'dogs-fur' is for dogs, not inceptionv3"),
        ("lower-layers,nope", None, "no preset named 'nope'"),
        ("lower-layers,../../etc/passwd", None, "not a preset name"),
        ("lower-layers", None, "at least 2"),
        ("lower-layers,lower-layers", None, "listed twice"),
        (",".join(["balanced"] * 9), None, "9 variants; at most 8"),
    ],
)
def test_preset_variants_refuse_mixed_models_unknown_and_counts(names, model, words):
    with pytest.raises(ParamError) as caught:
        preset_variants(names, model=model)
    assert words in str(caught.value)


def test_layer_variants_cover_each_models_sheet():
    inception = layer_variants("inceptionv3")
    assert [v.caption for v in inception] == [f"mixed{i}" for i in range(11)]
    assert all(dict(v.params.layers) == {v.caption: 1.0} for v in inception)
    assert inception[0].params.replace(layers=BASE.layers) == BASE  # balanced's schedule
    for name, spec in MODELS.items():
        variants = layer_variants(name)
        assert 2 <= len(variants) <= 12
        assert [v.caption for v in variants] == [
            layer for layer in spec.layers if layer in {v.caption for v in variants}
        ]  # shallow to deep
        assert all(v.params.model == name for v in variants)
    base = load_preset("dogs-fur")
    picked = layer_variants("dogs", base, ["block_3_project_BN", "out_relu"])
    assert [v.params.replace(layers=base.layers) for v in picked] == [base, base]


def test_layer_variants_refuse_unknown_layers_and_limits():
    with pytest.raises(ParamError, match="'mixed99' is not a layer"):
        layer_variants("inceptionv3", layers=["mixed3", "mixed99"])
    with pytest.raises(ParamError, match="11 variants; at most 8"):
        layer_variants("inceptionv3", max_variants=8)
    with pytest.raises(ParamError, match="for dogs, not inceptionv3"):
        layer_variants("inceptionv3", load_preset("dogs-dream"))


def test_describe_changes_names_what_differs():
    changed = BASE.replace(step=0.05, layers={"mixed3": 1.0, "mixed5": 0.5})
    assert describe_changes(changed, BASE) == "layers=mixed3+mixed5:0.5, step=0.05"
    assert describe_changes(BASE, BASE) == "as base"


def test_progress_fraction_spans_every_variant_once():
    def at(variant: int, step: int) -> float:
        return Progress(1, 2, step, 10, 0.0, 0.0, variant=variant, variants=4).fraction

    assert at(1, 0) == 0.0
    assert at(2, 5) == pytest.approx((1 + 0.25) / 4)
    assert Progress(2, 2, 10, 10, 0.0, 0.0, variant=4, variants=4).fraction == 1.0
    assert Progress(2, 4, 5, 10, 0.0, 0.0).fraction == pytest.approx(
        1.5 / 4
    )  # one dream: as before


# --- Running on the shared engine ---------------------------------------------------------------


def test_sweep_dreams_each_variant_from_the_same_start(inception_engine, cat_photo):
    base = QUICK.replace(layers={"mixed1": 1.0})
    traces = inception_engine.trace_count
    variants = parse_vary("step=0.005,0.05;iterations=2,3", base)
    events: list[Progress] = []
    result = run_sweep(inception_engine, cat_photo, base, variants, on_progress=events.append)

    assert [v.caption for v in result.variants] == [v.caption for v in variants]
    # Four variants, one compiled loop: the layers are the same, the rest are inputs.
    assert inception_engine.trace_count - traces <= 1
    images = [pixels(r.image) for r in result.results]
    for i in range(4):
        for j in range(i):
            assert np.abs(images[i] - images[j]).mean() > 0.1, (i, j)
    # Each tile is exactly the dream one would get alone: same start image, same seed.
    alone = inception_engine.dream(cat_photo, variants[2].params)
    assert np.array_equal(pixels(alone.image), images[2])
    again = run_sweep(inception_engine, cat_photo, base, variants[:2])
    assert np.array_equal(pixels(again.results[1].image), images[1])

    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [event.variant for event in events] == sorted(event.variant for event in events)
    assert {event.variant for event in events} == {1, 2, 3, 4}
    assert all(event.variants == 4 for event in events)
    elapsed = [event.elapsed for event in events]
    assert elapsed == sorted(elapsed)  # timed from the sweep's start, not each dream's

    assert result.inputs[0][0] == "input" and result.inputs[0][1].size == cat_photo.size
    grid = pixels(result.grid)
    assert result.grid.width > 3 * cat_photo.width // 2 and result.seconds > 0
    assert grid.std() > 10


def test_sweep_of_plain_params_is_captioned_by_differences(inception_engine, cat_photo):
    base = QUICK.replace(iterations=1)
    result = run_sweep(
        inception_engine, cat_photo, base, [base, base.replace(step=0.05)], max_side=120
    )
    assert [v.caption for v in result.variants] == ["as base", "step=0.05"]
    assert max(result.results[0].image.size) == 120
    assert max(result.inputs[0][1].size) == 120  # the input tile is what was dreamed on


def test_cancel_stops_the_sweep_inside_the_second_variant(inception_engine, cat_photo):
    cancel = threading.Event()
    events: list[Progress] = []

    def on_progress(event: Progress) -> None:
        events.append(event)
        if event.variant == 2:
            cancel.set()

    variants = parse_vary("seed=1,2,3", QUICK.replace(iterations=12, jitter=8))
    with pytest.raises(DreamCancelled):
        run_sweep(
            inception_engine, cat_photo, QUICK, variants, on_progress=on_progress, cancel=cancel
        )
    assert events[-1].variant == 2 and events[-1].step < 12  # stopped mid-dream
    assert all(event.variant < 3 for event in events)


def test_variants_for_another_model_are_refused_before_any_work(inception_engine, cat_photo):
    events: list[Progress] = []
    variants = [Variant("mine", QUICK), Variant("dogs", load_preset("dogs-dream"))]
    with pytest.raises(ParamError, match="'dogs' is for dogs"):
        run_sweep(inception_engine, cat_photo, QUICK, variants, on_progress=events.append)
    assert events == []


def test_a_guide_with_a_variant_that_has_no_layers_is_refused_before_any_work(
    inception_engine, cat_photo
):
    events: list[Progress] = []
    channels_only = QUICK.replace(layers={}, channels={"mixed3:5": 1.0})
    variants = [Variant("layers", QUICK), Variant("channel 5", channels_only)]
    with pytest.raises(ParamError, match="'channel 5' has none"):
        run_sweep(
            inception_engine, cat_photo, QUICK, variants, on_progress=events.append, guide=cat_photo
        )
    assert events == []


def test_kind_images_are_the_five_kinds_of_the_photos_size():
    photo = sample_photo()
    assert photo.size == (451, 300)
    kinds = dict(kind_images(photo, seed=3))
    assert tuple(kinds) == KINDS
    assert all(image.size == photo.size for image in kinds.values())
    assert pixels(kinds["blank"]).std() == 0
    assert pixels(kinds["static"]).std() > 60
    assert np.array_equal(pixels(kinds["static"]), pixels(dict(kind_images(photo, 3))["static"]))
    sharp, blurred, low = (pixels(kinds[k]) for k in KINDS[2:])
    assert detail(blurred) < detail(sharp) / 2
    assert abs(low.mean() - sharp.mean()) < 5  # the same picture, coarser
    assert colours(low) < colours(sharp) / 10


def detail(image: np.ndarray) -> float:
    return float(np.abs(np.diff(image, axis=1)).mean())


def colours(image: np.ndarray) -> int:
    return len(np.unique(image.reshape(-1, 3), axis=0))


def test_run_kinds_shows_inputs_above_their_dreams(inception_engine):
    result = run_kinds(inception_engine, QUICK.replace(iterations=2), max_side=160)
    assert [v.caption for v in result.variants] == list(KINDS)
    assert [caption for caption, _ in result.inputs] == [f"{kind} (input)" for kind in KINDS]
    blank_dream = pixels(result.results[0].image)
    assert blank_dream.std() > 0.5  # the network put something on the flat grey
    assert max(result.results[2].image.size) == 160
    assert result.grid.width > result.grid.height  # 2 rows of 5


def test_the_grid_title_names_each_shared_setting_once():
    from dream_engine.study.sweeps import describe_common

    title = describe_common(parse_vary("target=Pug,Samoyed", load_preset("dogs-dream")))
    assert title.startswith("same for all: dogs, step=")
    assert title.count("layers=") == 1 and "target=" not in title
    plain = describe_common(parse_vary("step=0.01,0.02", BASE))
    assert "target" not in plain and "jitter" not in plain


@pytest.mark.parametrize(
    ("names", "overrides", "words"),
    [
        ("one-octave,five-octaves", {"octaves": 3}, "with octaves=3"),
        ("small-step,large-step", {"step": 0.02}, "large-step dreams the same as small-step"),
    ],
)
def test_presets_that_the_shared_options_make_the_same_are_refused(names, overrides, words):
    with pytest.raises(ParamError, match=words):
        preset_variants(names, overrides)
