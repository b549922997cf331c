"""DreamParams: everything that decides how a dream looks, validated in one place.

The bot, the CLI and presets all build a `DreamParams`; `validate()` is the one
gate, so a bad value is refused with the same sentence wherever it came from,
naming the field and the allowed range. Nothing here imports TensorFlow: the bot
validates parameters before it queues a job.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dream_engine.core.classes import resolve as resolve_class
from dream_engine.core.models import DEFAULT_MODEL, ModelSpec, get_model_spec
from dream_engine.errors import ParamError

MAX_LAP_LEVELS = 8  # Laplacian bands: 8 halvings take a 4096 px side to 16 px
# name -> (low, high, low inclusive, high inclusive); the ranges users see.
NUMERIC_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "step": (0.0, 1.0, False, True),
    "octaves": (1, 10, True, True),
    "octave_scale": (1.0, 3.0, False, True),
    "iterations": (1, 1000, True, True),
    "max_loss": (0.0, 1e6, False, True),
    "jitter": (0, 256, True, True),
    "lap_levels": (0, MAX_LAP_LEVELS, True, True),
    "scale_jitter": (0.0, 0.5, True, True),
    "rotate_jitter": (0.0, 45.0, True, True),
    "seed": (0, 2**31 - 1, True, True),
    "target_weight": (0.0, 1000.0, False, True),
    "guide_weight": (0.0, 1000.0, False, True),
}
INTEGER_FIELDS = frozenset({"octaves", "iterations", "jitter", "lap_levels", "seed"})
# Engine options (not part of a dream's look), here so the bot can check them without TensorFlow.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: What an engine may be asked for: a precision, or `auto` (see `core/hardware.py`).
PRECISION_CHOICES = ("auto", *PRECISIONS)
DEFAULT_TILE_SIZE = 1024  # larger images get their gradient tile by tile
MAX_TILE_SIZE = 32768  # beyond any image's side: bigger would only overflow int32 offsets
MAX_LAYER_WEIGHT = 1000.0
MAX_CHANNELS = 64  # channel objectives in one dream


@dataclass(frozen=True)
class DreamParams:
    """How to dream: the objective and the octave gradient-ascent schedule.

    The objective has three kinds of term; any may be left out, but not all:
    whole `layers` (DeepDream's mean squared activation), single `channels`
    ("layer:channel" -> weight; their mean activation, what that one feature
    detector looks for, where a square would also reward driving it negative)
    and a `target` class (its pre-softmax logit). The logit's gradient and the
    others' are normalised apart, so `target_weight` is the class's share of each
    step, whatever the model. `max_loss` caps the layer and channel terms only:
    a logit keeps climbing as the class appears and would end octaves at once.
    """

    layers: Mapping[str, float] = field(default_factory=lambda: {"mixed4": 1.0})
    step: float = 0.01
    octaves: int = 3
    octave_scale: float = 1.4
    iterations: int = 20
    max_loss: float = 10.0
    seed: int = 0
    jitter: int = 0
    lap_levels: int = 0  # Laplacian-pyramid gradient normalisation, bands (0: off)
    scale_jitter: float = 0.0  # the network's view scaled by 1 +- this each step (0: off)
    rotate_jitter: float = 0.0  # and rotated by up to this many degrees either way (0: off)
    model: str = DEFAULT_MODEL
    channels: Mapping[str, float] = field(default_factory=dict)
    target: str | None = None  # a class name or number of the model's classifier (classes.py)
    target_weight: float = 1.0
    guide_weight: float = 1.0  # a guide image's pull against the layers' own (with a guide)

    def validate(self) -> DreamParams:
        """Raise `ParamError` naming the first bad field; return self when all is well."""
        spec = get_model_spec(self.model)
        for name, (low, high, low_incl, high_incl) in NUMERIC_RANGES.items():
            check_range(name, getattr(self, name), low, high, low_incl, high_incl)
        if not isinstance(self.layers, Mapping):
            raise ParamError("layers: name at least one layer, e.g. mixed4=1.")
        for layer, weight in self.layers.items():
            if layer not in spec.layers:
                raise ParamError(
                    f"layers: '{_shorten(str(layer))}' is not a layer of {spec.name}; "
                    f"choose from {spec.layer_range_text()}."
                )
            _check_weight("layers", str(layer), weight)
        self._check_channels(spec)
        if self.target is not None:
            resolve_class(spec.name, self.target)
        if self.active_layers() or self.active_channels() or self.target is not None:
            return self
        if not self.layers and not self.channels:
            raise ParamError("layers: name at least one layer, e.g. mixed4=1 (or a target).")
        raise ParamError(
            "layers: at least one layer or channel needs a weight above 0 (or give a target)."
        )

    def _check_channels(self, spec: ModelSpec) -> None:
        if not isinstance(self.channels, Mapping):
            raise ParamError("channels: give layer:channel=weight pairs, e.g. mixed4:97=1.")
        if len(self.channels) > MAX_CHANNELS:
            raise ParamError(f"channels: at most {MAX_CHANNELS} in one dream.")
        seen: set[tuple[str, int]] = set()
        for key, weight in self.channels.items():
            layer, channel = split_channel(key)
            if (layer, channel) in seen:  # "mixed4:97" and "mixed4:097": one would be lost
                raise ParamError(f"channels: {layer}:{channel} is given twice.")
            seen.add((layer, channel))
            if layer not in spec.layers:
                raise ParamError(
                    f"channels: '{_shorten(layer)}' is not a layer of {spec.name}; "
                    f"choose from {spec.layer_range_text()}."
                )
            width = spec.width(layer)
            if not 0 <= channel < width:
                raise ParamError(
                    f"channels: {layer} has {width} channels (0-{width - 1}); "
                    f"got {_shorten(str(channel))}."
                )
            _check_weight("channels", key, weight)

    def replace(self, **changes: Any) -> DreamParams:
        """A copy with `changes` applied (None values ignored), validated.

        `target=""` removes a target (None cannot: it means "unchanged").
        """
        changes = {key: value for key, value in changes.items() if value is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParamError(f"Unknown parameter: {', '.join(sorted(unknown))}.")
        for mapping in ("layers", "channels"):
            if mapping in changes:
                changes[mapping] = dict(changes[mapping])
        if isinstance(changes.get("target"), str) and not changes["target"].strip():
            changes["target"] = None  # an empty target clears a preset's
        return dataclasses.replace(self, **changes).validate()

    @property
    def seed_matters(self) -> bool:
        """The seed only draws the random shifts and views (jitter, scale_jitter,
        rotate_jitter): without them it changes nothing, so a seed asked for alone is
        refused rather than silently ignored."""
        return self.jitter > 0 or self.transformed

    @property
    def transformed(self) -> bool:
        """Whether the network sees a randomly scaled or rotated view each step."""
        return self.scale_jitter > 0 or self.rotate_jitter > 0

    def active_layers(self) -> dict[str, float]:
        """Layers with a non-zero weight, in the model's depth order."""
        order = get_model_spec(self.model).layers
        return {name: float(self.layers[name]) for name in order if self.layers.get(name, 0) > 0}

    def active_channels(self) -> dict[str, dict[int, float]]:
        """Layer -> {channel: weight} for channels with a non-zero weight, in depth order."""
        chosen: dict[str, dict[int, float]] = {}
        for key, weight in self.channels.items():
            if weight > 0:
                layer, channel = split_channel(key)
                chosen.setdefault(layer, {})[channel] = float(weight)
        order = get_model_spec(self.model).layers
        return {layer: chosen[layer] for layer in order if layer in chosen}

    def target_class(self) -> tuple[int, str] | None:
        """(output number, display name) of the target class, or None without one."""
        if self.target is None:
            return None
        found = resolve_class(self.model, self.target)
        return found.index, found.name

    def differences(self, base: DreamParams) -> dict[str, Any]:
        """Fields whose value differs from `base`: what a user changed from a preset."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if _normalised(getattr(self, f.name)) != _normalised(getattr(base, f.name))
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for job records and result captions."""
        data = dataclasses.asdict(self)
        data["layers"] = dict(self.layers)
        data["channels"] = dict(self.channels)
        return data


def parse_layers(text: str) -> dict[str, float]:
    """Parse `mixed3=0.5,mixed4=1` (a bare name means weight 1); `none` for no layers."""
    if len(text) > 500:
        raise ParamError("layers: the list is too long (500 characters at most).")
    if text.strip().casefold() == "none":  # channels or a target alone
        return {}
    layers: dict[str, float] = {}
    for part in filter(None, (chunk.strip() for chunk in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not name:
            raise ParamError(f"layers: '{_shorten(part)}' has no layer name; write e.g. mixed4=1.")
        try:
            layers[name] = float(value) if sep else 1.0
        except ValueError:
            raise ParamError(
                f"layers: the weight in '{_shorten(part)}' is not a number; write e.g. mixed4=1."
            ) from None
    if not layers:
        raise ParamError("layers: name at least one layer, e.g. mixed4=1.")
    return layers


def parse_channels(text: str) -> dict[str, float]:
    """Parse `mixed4:97,mixed5:12=0.5` (a bare layer:channel means weight 1)."""
    if len(text) > 500:
        raise ParamError("channels: the list is too long (500 characters at most).")
    channels: dict[str, float] = {}
    for part in filter(None, (chunk.strip() for chunk in text.split(","))):
        key, sep, value = part.partition("=")
        layer, channel = split_channel(key)
        try:
            channels[f"{layer}:{channel}"] = float(value) if sep else 1.0
        except ValueError:
            raise ParamError(
                f"channels: the weight in '{_shorten(part)}' is not a number; "
                "write e.g. mixed4:97=1."
            ) from None
    if not channels:
        raise ParamError("channels: name at least one, e.g. mixed4:97.")
    return channels


def split_channel(key: str) -> tuple[str, int]:
    """`"mixed4:97"` -> `("mixed4", 97)`; `ParamError` if it is not layer:number."""
    layer, sep, channel = str(key).strip().rpartition(":")
    channel = channel.strip()
    if not sep or not layer.strip() or not (channel.isdecimal() and channel.isascii()):
        raise ParamError(
            f"channels: '{_shorten(str(key))}' is not layer:channel; write e.g. mixed4:97."
        )
    return layer.strip(), int(channel)


def _check_weight(kind: str, name: str, weight: Any) -> None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ParamError(f"{kind}: the weight of {_shorten(name)} must be a number.")
    if not math.isfinite(weight) or not 0 <= weight <= MAX_LAYER_WEIGHT:
        raise ParamError(
            f"{kind}: the weight of {_shorten(name)} must be between 0 and {MAX_LAYER_WEIGHT:g}."
        )


def check_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    low_incl: bool,
    high_incl: bool,
    *,
    integer: bool | None = None,
) -> None:
    """Refuse `value` unless it is a number in the range, in the one sentence every knob
    uses (`integer`: a whole number; None: as `INTEGER_FIELDS` says of `name`)."""
    is_int = name in INTEGER_FIELDS if integer is None else integer
    allowed = (int,) if is_int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        kind = "a whole number" if is_int else "a number"
        raise ParamError(f"{name} must be {kind}, not {_shorten(repr(value))}.")
    ok_low = value >= low if low_incl else value > low
    ok_high = value <= high if high_incl else value < high
    if not (math.isfinite(value) and ok_low and ok_high):
        left, right = "[" if low_incl else "(", "]" if high_incl else ")"
        raise ParamError(f"{name} must be in {left}{low:g}, {high:g}{right}; got {value!r}.")


def _normalised(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
