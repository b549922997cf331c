"""Presets on disk: every shipped one validates; mistakes name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dream_engine import ParamError, get_preset, list_presets, load_preset
from dream_engine.core.models import MODELS
from dream_engine.core.presets import default_preset_for, presets_dir

SHIPPED = sorted(path.stem for path in presets_dir().glob("*.toml"))
STUDY_VARIANTS = {
    "small-step": {"step": 0.005},
    "large-step": {"step": 0.05},
    "one-octave": {"octaves": 1},
    "five-octaves": {"octaves": 5},
    "scale-1.2": {"octave_scale": 1.2},
    "scale-1.8": {"octave_scale": 1.8},
    "iter-low": {"iterations": 10, "max_loss": 10.0},
    "iter-high": {"iterations": 200, "max_loss": 50.0},
}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_preset_loads_and_validates(name):
    preset = get_preset(name)
    assert preset.params.validate() is preset.params
    assert 0 < len(preset.description) <= 100


def test_listing_covers_every_file():
    assert [preset.name for preset in list_presets()] == SHIPPED
    assert {preset.model for preset in list_presets(model="dogs")} == {"dogs"}
    assert len(list_presets(model="dogs")) >= 2


def test_balanced_and_classic_match_the_study():
    balanced = load_preset("balanced")
    assert dict(balanced.layers) == {
        "mixed3": 0.5,
        "mixed4": 1,
        "mixed5": 1,
        "mixed6": 1,
        "mixed7": 0.5,
    }
    assert (
        balanced.step,
        balanced.octaves,
        balanced.octave_scale,
        balanced.iterations,
        balanced.max_loss,
    ) == (0.01, 3, 1.4, 20, 10.0)
    classic = load_preset("classic")
    assert classic.layers["mixed0"] == 0.001 and classic.layers["mixed10"] == 0.0001
    assert (classic.step, classic.octaves, classic.octave_scale, classic.max_loss) == (
        0.05,
        5,
        1.6,
        60,
    )
    assert load_preset("mona-lisa").iterations == 200
    assert load_preset("manarola").octave_scale == 1.2


@pytest.mark.parametrize(("name", "changed"), STUDY_VARIANTS.items())
def test_one_knob_variants_differ_from_balanced_in_that_knob_only(name, changed):
    variant = load_preset(name)
    assert {key: getattr(variant, key) for key in changed} == changed
    assert set(variant.differences(load_preset("balanced"))) <= set(changed)


def test_layer_presets_lean_on_their_half_of_the_network():
    lower, upper = load_preset("lower-layers"), load_preset("upper-layers")
    assert set(lower.active_layers()) <= {f"mixed{i}" for i in range(4)}
    assert set(upper.active_layers()) <= {f"mixed{i}" for i in range(6, 11)}
    assert lower.differences(load_preset("balanced")).keys() == {"layers"}


def write(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.toml").write_text(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('step = 0.01\ncolour = "red"\n[layers]\nmixed4 = 1\n', "bad.toml: unknown key 'colour'"),
        ("step = 5.0\n[layers]\nmixed4 = 1\n", "bad.toml: step must be in (0, 1]"),
        ("[layers]\nmixed42 = 1\n", "bad.toml: layers: 'mixed42' is not a layer"),
        ("step = \n", "bad.toml: not valid TOML"),
        ('extends = "nothing-here"\n', "no preset named 'nothing-here'"),
        ('extends = "bad"\n', "circular"),
        (f'description = "{"x" * 101}"\n[layers]\nmixed4 = 1\n', "description"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path, text, words):
    write(tmp_path, "bad", text)
    with pytest.raises(ParamError) as error:
        load_preset("bad", tmp_path)
    assert words in str(error.value)


def test_extends_inherits_and_overrides(tmp_path):
    write(tmp_path, "base", 'description = "b"\nstep = 0.02\noctaves = 2\n[layers]\nmixed3 = 1\n')
    write(tmp_path, "child", 'description = "c"\nextends = "base"\noctaves = 4\n')
    child = get_preset("child", tmp_path)
    assert (child.params.step, child.params.octaves, dict(child.params.layers)) == (
        0.02,
        4,
        {"mixed3": 1},
    )
    assert child.description == "c"


def test_an_inherited_mistake_names_the_file_it_comes_from(tmp_path):
    write(tmp_path, "base", "[layers]\nmixed3 = 1\n")
    write(tmp_path, "bigstep", 'extends = "base"\nstep = 5\n')
    write(tmp_path, "child", 'extends = "bigstep"\noctaves = 2\n')
    with pytest.raises(ParamError, match=r"^bigstep\.toml: step must be in \(0, 1\]"):
        get_preset("child", tmp_path)
    # A base incomplete on purpose (no layers) is not blamed for its child's own mistake.
    write(tmp_path, "abstract", "step = 0.02\n")
    write(tmp_path, "concrete", 'extends = "abstract"\noctaves = 99\n[layers]\nmixed3 = 1\n')
    with pytest.raises(ParamError, match=r"^concrete\.toml: octaves must be in"):
        get_preset("concrete", tmp_path)


def test_a_broken_file_does_not_hide_the_others(tmp_path):
    write(tmp_path, "good", "[layers]\nmixed3 = 1\n")
    write(tmp_path, "broken", "step = -1\n")
    assert [preset.name for preset in list_presets(tmp_path)] == ["good"]


def test_each_model_gets_a_default_preset_of_its_own(tmp_path):
    assert default_preset_for("inceptionv3") == "balanced"
    assert default_preset_for("dogs") == "dogs-dream"  # the first of the dogs presets
    for model in MODELS:  # DREAM_MODEL may be any of them: the bot needs one to dream with
        assert get_preset(default_preset_for(model)).model == model
    # A folder holding only the dogs presets does not need balanced.toml for them.
    for path in presets_dir().glob("dogs-*.toml"):
        (tmp_path / path.name).write_text(path.read_text())
    assert default_preset_for("dogs", tmp_path) == "dogs-dream"


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "UPPER", "", "a" * 60, "x\\y"])
def test_preset_names_with_path_characters_are_refused(name):
    with pytest.raises(ParamError, match="not a preset name"):
        load_preset(name)


def test_presets_may_aim_at_a_class_and_at_channels(tmp_path):
    write(
        tmp_path,
        "aimed",
        'target = "Golden_Retriever"\ntarget_weight = 2.0\n[layers]\n'
        '[channels]\n"mixed4:97" = 1.0\n',
    )
    params = load_preset("aimed", tmp_path)
    assert params.target_class() == (207, "golden retriever")
    assert (params.target_weight, dict(params.layers)) == (2.0, {})
    assert params.active_channels() == {"mixed4": {97: 1.0}}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('target = "golden retreiver"\n', "bad.toml: target: no class 'golden retreiver'"),
        ("target = true\n", "bad.toml: target must be a class name"),
        ('target = "tench"\ntarget_weight = -1\n', "bad.toml: target_weight must be in"),
        ('channels = "mixed4:97"\n', "bad.toml: channels must be a table"),
        ('[channels]\n"mixed4:900" = 1\n', "bad.toml: channels: mixed4 has 768 channels"),
    ],
)
def test_target_and_channel_mistakes_name_the_file_and_the_key(tmp_path, text, words):
    write(tmp_path, "bad", text)
    with pytest.raises(ParamError) as error:
        load_preset("bad", tmp_path)
    assert words in str(error.value)
