"""Parameter validation: every bad value is refused with its field and range named."""

from __future__ import annotations

import math

import pytest

from dream_engine import DreamParams, ParamError, parse_layers
from dream_engine.core.params import parse_channels

GOOD = DreamParams(layers={"mixed4": 1.0})


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("step", 0.0, "step must be in (0, 1]"),
        ("step", 1.5, "step must be in (0, 1]"),
        ("step", math.nan, "step"),
        ("step", math.inf, "step"),
        ("octaves", 0, "octaves must be in [1, 10]"),
        ("octaves", 11, "octaves"),
        ("octaves", 2.5, "octaves must be a whole number"),
        ("octave_scale", 1.0, "octave_scale must be in (1, 3]"),
        ("octave_scale", 3.5, "octave_scale"),
        ("iterations", 0, "iterations must be in [1, 1000]"),
        ("iterations", 1001, "iterations"),
        ("max_loss", 0.0, "max_loss"),
        ("max_loss", -1.0, "max_loss"),
        ("jitter", -1, "jitter"),
        ("lap_levels", 9, "lap_levels must be in [0, 8]"),
        ("lap_levels", -1, "lap_levels"),
        ("lap_levels", 2.5, "lap_levels must be a whole number"),
        ("seed", -5, "seed"),
        ("step", "0.1", "step must be a number"),
        ("octaves", True, "octaves must be a whole number"),
    ],
)
def test_out_of_range_values_name_field_and_range(field, value, words):
    with pytest.raises(ParamError) as error:
        DreamParams(**{**GOOD.to_dict(), field: value}).validate()
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("layers", "words"),
    [
        ({}, "at least one layer"),
        ({"mixed11": 1.0}, "'mixed11' is not a layer of inceptionv3"),
        ({"conv1": 1.0}, "mixed0 .. mixed10"),
        ({"mixed4": -1.0}, "between 0 and"),
        ({"mixed4": math.nan}, "between 0 and"),
        ({"mixed4": math.inf}, "between 0 and"),
        ({"mixed4": 0.0, "mixed5": 0.0}, "above 0"),
        ({"x" * 500: 1.0}, "is not a layer"),
    ],
)
def test_bad_layers_are_refused(layers, words):
    with pytest.raises(ParamError, match="layers") as error:
        DreamParams(layers=layers).validate()
    assert words in str(error.value)
    assert len(str(error.value)) < 200  # a long name is shortened, not echoed


def test_layers_are_checked_against_the_chosen_model():
    DreamParams(layers={"block_12_add": 1.0}, model="dogs").validate()
    with pytest.raises(ParamError, match="not a layer of dogs"):
        DreamParams(layers={"mixed4": 1.0}, model="dogs").validate()
    with pytest.raises(ParamError, match="model: 'resnet' is not available"):
        DreamParams(model="resnet").validate()


def test_replace_applies_overrides_and_validates():
    changed = GOOD.replace(step=0.05, octaves=None)
    assert changed.step == 0.05 and changed.octaves == GOOD.octaves
    assert changed.differences(GOOD) == {"step": 0.05}
    with pytest.raises(ParamError, match="step"):
        GOOD.replace(step=2.0)
    with pytest.raises(ParamError, match="Unknown parameter: colour"):
        GOOD.replace(colour="red")


def test_active_layers_follow_depth_order_and_skip_zero_weights():
    params = DreamParams(layers={"mixed7": 0.5, "mixed2": 1.0, "mixed9": 0.0})
    assert list(params.active_layers().items()) == [("mixed2", 1.0), ("mixed7", 0.5)]


def test_parse_layers():
    assert parse_layers("mixed3=0.5, mixed4=1,mixed5") == {
        "mixed3": 0.5,
        "mixed4": 1.0,
        "mixed5": 1.0,
    }
    for bad, words in [
        ("mixed3=lots", "not a number"),
        ("=1", "no layer name"),
        (" , ", "at least one"),
    ]:
        with pytest.raises(ParamError, match=words):
            parse_layers(bad)
    with pytest.raises(ParamError, match="too long"):
        parse_layers("mixed3=1," * 100)


def test_channels_are_checked_against_the_layer_widths():
    params = DreamParams(layers={}, channels={"mixed4:97": 1.0, "mixed3:0": 0.5}).validate()
    assert params.active_channels() == {"mixed3": {0: 0.5}, "mixed4": {97: 1.0}}  # depth order
    assert DreamParams(model="dogs", layers={}, channels={"out_relu:1279": 1}).validate()
    for channels, words in [
        ({"mixed4:768": 1.0}, "channels: mixed4 has 768 channels (0-767); got 768."),
        ({"mixed0:256": 1.0}, "mixed0 has 256 channels (0-255)"),
        ({"mixed4:" + "9" * 60: 1.0}, "has 768 channels"),
        ({"mixed42:1": 1.0}, "'mixed42' is not a layer of inceptionv3"),
        ({"mixed4": 1.0}, "'mixed4' is not layer:channel"),
        ({"mixed4:-1": 1.0}, "is not layer:channel"),
        ({"mixed4:1.5": 1.0}, "is not layer:channel"),
        ({"mixed4:1": math.nan}, "the weight of mixed4:1 must be between 0 and"),
        ({"mixed4:1": -2.0}, "between 0 and"),
        ({"mixed4:1": "1"}, "must be a number"),
        ({f"mixed4:{i}": 1.0 for i in range(65)}, "at most 64"),
        ({"mixed4:97": 1.0, "mixed4:097": 0.5}, "channels: mixed4:97 is given twice."),
        ({"mixed4:1": 0.0}, "at least one layer or channel needs a weight above 0"),
    ]:
        with pytest.raises(ParamError) as error:
            DreamParams(layers={}, channels=channels).validate()
        assert words in str(error.value)
        assert len(str(error.value)) < 200


def test_an_objective_may_be_layers_channels_or_a_target_but_not_nothing():
    DreamParams(layers={"mixed4": 1.0}, channels={"mixed5:12": 1.0}, target="tench").validate()
    DreamParams(layers={}, target="tench").validate()
    DreamParams(layers={"mixed4": 0.0}, channels={"mixed5:3": 1.0}).validate()
    with pytest.raises(ParamError, match="at least one layer"):
        DreamParams(layers={}, channels={}).validate()
    # Presets' layers stay when a target is added; an empty mapping drops them.
    with_target = GOOD.replace(target="golden retriever", target_weight=2.5)
    assert with_target.active_layers() == {"mixed4": 1.0}
    assert with_target.replace(layers={}).active_layers() == {}
    assert with_target.differences(GOOD) == {"target": "golden retriever", "target_weight": 2.5}
    assert DreamParams(**with_target.to_dict()) == with_target  # crosses processes as a dict


def test_parse_channels():
    assert parse_channels("mixed4:97, mixed5:12=0.5") == {"mixed4:97": 1.0, "mixed5:12": 0.5}
    assert parse_channels(" mixed4 : 7 ") == {"mixed4:7": 1.0}
    for bad, words in [
        ("mixed4", "not layer:channel"),
        ("mixed4:x", "not layer:channel"),
        (":3", "not layer:channel"),
        ("mixed4:3=lots", "not a number"),
        (" , ", "at least one"),
        ("mixed4:1," * 100, "too long"),
    ]:
        with pytest.raises(ParamError, match=words):
            parse_channels(bad)
