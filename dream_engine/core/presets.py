"""Presets: named `DreamParams` in `presets/NAME.toml`, one file each.

The file name is the preset name, so users and admins add a preset by dropping
a file in. A preset may `extends = "other"` and change only what differs (its
`[layers]` or `[channels]` table, when present, replaces the parent's whole).
A preset may aim at a class: `target = "golden retriever"`. Every mistake is
reported with the file and the key, because the person fixing it is editing
that file.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dream_engine.core.models import DEFAULT_MODEL
from dream_engine.core.params import DreamParams
from dream_engine.errors import ParamError

DEFAULT_PRESET = "balanced"
PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
MAX_DESCRIPTION = 100
PARAM_KEYS = frozenset(
    {"step", "octaves", "octave_scale", "iterations", "max_loss", "jitter", "seed", "model"}
    | {"lap_levels", "scale_jitter", "rotate_jitter"}
    | {"target", "target_weight", "guide_weight"}
)
TABLE_KEYS = frozenset({"layers", "channels"})  # e.g. [channels] "mixed4:97" = 1.0
ALLOWED_KEYS = PARAM_KEYS | TABLE_KEYS | {"description", "extends"}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    params: DreamParams

    @property
    def model(self) -> str:
        return self.params.model


def presets_dir() -> Path:
    """`DREAM_PRESETS` if set, else the repository's `presets/` folder."""
    configured = os.environ.get("DREAM_PRESETS")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "presets"


def load_preset(name: str, directory: Path | None = None) -> DreamParams:
    """The validated parameters of preset `name`."""
    return get_preset(name, directory).params


def get_preset(name: str, directory: Path | None = None) -> Preset:
    directory = directory or presets_dir()
    raw = _resolve(name, directory, chain=())
    description = raw.pop("description", "")
    try:
        params = DreamParams(**raw).validate()
    except ParamError as error:
        raise ParamError(f"{_blame(name, directory, str(error)).name}: {error}") from None
    return Preset(name=name, description=description, params=params)


def _blame(name: str, directory: Path, complaint: str) -> Path:
    """The file to fix: up the `extends` chain while each parent, resolved on its own,
    fails with the same complaint (so the bad value is inherited from it). A parent that
    passes, or fails differently (a base left incomplete on purpose), stops the walk."""
    path = _path(name, directory)
    while parent := tomllib.loads(path.read_text(encoding="utf-8")).get("extends"):
        raw = _resolve(parent, directory, chain=())
        raw.pop("description", None)
        try:
            DreamParams(**raw).validate()
        except ParamError as error:
            if str(error) != complaint:
                break
            path = _path(parent, directory)
            continue
        break
    return path


def default_preset_for(model: str | None, directory: Path | None = None) -> str:
    """`balanced` for InceptionV3; for another model, its first preset if it has one.

    A model with presets of its own does not need `balanced.toml` to be there.
    """
    if model is None:
        return DEFAULT_PRESET
    with contextlib.suppress(ParamError):  # no valid balanced here: the model's own may do
        if get_preset(DEFAULT_PRESET, directory).model == model:
            return DEFAULT_PRESET
    matching = list_presets(directory, model=model)
    return matching[0].name if matching else DEFAULT_PRESET


def list_presets(directory: Path | None = None, model: str | None = None) -> list[Preset]:
    """All valid presets, sorted by name (for `model` only when given).

    Listing never fails because one file is broken: the broken file is skipped
    here and reported when someone asks for it by name.
    """
    directory = directory or presets_dir()
    presets = []
    for path in sorted(directory.glob("*.toml")):
        try:
            preset = get_preset(path.stem, directory)
        except ParamError:
            continue
        if model is None or preset.model == model:
            presets.append(preset)
    return presets


def _path(name: str, directory: Path) -> Path:
    if not isinstance(name, str) or not PRESET_NAME.match(name):
        shown = str(name)[:40]
        raise ParamError(
            f"preset: '{shown}' is not a preset name (lower-case letters, digits and dashes)."
        )
    return directory / f"{name}.toml"


def _resolve(name: str, directory: Path, chain: tuple[str, ...]) -> dict[str, Any]:
    """The preset's keys with its `extends` chain applied, not yet validated."""
    path = _path(name, directory)
    if name in chain:
        raise ParamError(f"{path.name}: extends: circular ({' -> '.join((*chain, name))}).")
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.toml")))
        raise ParamError(f"preset: no preset named '{name}'. Available: {known}.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ParamError(f"{path.name}: not valid TOML ({error}).") from None
    _check_keys(path, data)
    parent = data.pop("extends", None)
    base: dict[str, Any] = (
        _resolve(parent, directory, (*chain, name)) if parent else {"model": DEFAULT_MODEL}
    )
    base.pop("description", None)
    return {**base, **data}


def _check_keys(path: Path, data: dict[str, Any]) -> None:
    unknown = set(data) - ALLOWED_KEYS
    if unknown:
        raise ParamError(
            f"{path.name}: unknown key '{sorted(unknown)[0]}'; "
            f"allowed: {', '.join(sorted(ALLOWED_KEYS))}."
        )
    description = data.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise ParamError(
            f"{path.name}: description must be text of at most {MAX_DESCRIPTION} characters."
        )
    if "extends" in data and not isinstance(data["extends"], str):
        raise ParamError(f"{path.name}: extends must be a preset name.")
    if "layers" in data and not isinstance(data["layers"], dict):
        raise ParamError(f"{path.name}: layers must be a table, e.g. [layers] mixed4 = 1.0.")
    if "channels" in data and not isinstance(data["channels"], dict):
        raise ParamError(
            f'{path.name}: channels must be a table, e.g. [channels] "mixed4:97" = 1.0.'
        )
    if "target" in data and (
        isinstance(data["target"], bool) or not isinstance(data["target"], str | int)
    ):
        raise ParamError(f'{path.name}: target must be a class name, e.g. "golden retriever".')
