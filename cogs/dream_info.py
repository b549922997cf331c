"""What the Info and Reroll buttons make of a remembered dream (`DreamEntry`).

Info answers "how was this made?" with every value the dream ran with and the
command line that makes it again; Reroll turns the same entry into the overrides
of a new `/dream` with a new seed. Both read only the history's entry, so they work
under a result posted before any restart.
"""

from __future__ import annotations

import secrets
from typing import Any

from cogs.common import duration
from cogs.i18n import LocaleLike, tr
from dream_engine.cli.reproduce import command_line
from dream_engine.service.history import DreamEntry

REROLL_JITTER = 32  # px: what Reroll turns on when the seed alone would change nothing
MESSAGE_LIMIT = 2000


def info_text(entry: DreamEntry, weights: str, locale: LocaleLike = None) -> tuple[str, str]:
    """The private Info message, and the command line apart (posted as a file when the
    message would pass Discord's 2,000 characters: a dream with many channels).

    The words are the reader's language; parameter names and values stay as the command
    line writes them, so that they can be typed back."""
    params = entry.params
    lines = [
        tr(
            locale, "**{what}** from preset **{preset}**, model **{model}**, precision "
            "**{precision}**",
            what=_what(entry, locale), preset=entry.preset, model=params.model,
            precision=entry.precision or tr(locale, "unknown"),
        ),
        tr(
            locale, "{width}×{height} px (longest side at most {max_side}), ran {run} after "
            "{wait} in line, finished <t:{finished}:f>",
            width=entry.width, height=entry.height, max_side=entry.max_side,
            run=duration(entry.run_seconds), wait=duration(entry.wait_seconds),
            finished=int(entry.finished_at),
        ),
        tr(
            locale, "Parameters: {values}",
            values=", ".join(f"{name}={value}" for name, value in _values(entry)),
        ),
    ]  # fmt: skip
    if entry.changed:
        changed = ", ".join(sorted(key for key in entry.changed if key != "model"))
        if changed:
            lines.append(tr(locale, "Changed from the preset: {changed}", changed=changed))
    if entry.variants:
        lines.append(
            tr(locale, "The command makes the comparison's base dream; /compare makes the grid.")
        )
    line = command_line(
        params, max_side=entry.max_side, precision=entry.precision, weights=weights,
        motion=entry.motion, guide_name=entry.guide_name,
    )  # fmt: skip
    return "\n".join(lines), line


def _what(entry: DreamEntry, locale: LocaleLike) -> str:
    """What kind of dream, as the Info message's first words ("A zoom of 24 frames")."""
    motion = entry.motion
    if motion is not None and motion.kind == "zoom":
        return tr(locale, "A zoom of {frames} frames", frames=motion.frames)
    if motion is not None:
        return tr(locale, "A clip of {frames} frames", frames=motion.frames)
    if entry.variants:
        return tr(locale, "A comparison of {count} variants", count=entry.variants)
    return tr(locale, "A dream")


def info_message(
    entry: DreamEntry, weights: str, locale: LocaleLike = None
) -> tuple[str, str | None]:
    """The Info text with its command line in a code block; or, when that would pass
    Discord's 2,000 characters (a dream with many channels), the text and the line apart,
    to post as a file."""
    text, line = info_text(entry, weights, locale)
    again = tr(locale, "Make it again (INPUT: the same picture):")
    full = f"{text}\n{again}\n```sh\n{line}\n```"
    if len(full) <= MESSAGE_LIMIT:
        return full, None
    too_long = tr(locale, "Make it again: the command is in the file (too long for a message).")
    return f"{text}\n{too_long}", line


def _values(entry: DreamEntry) -> list[tuple[str, str]]:
    params = entry.params
    values = [
        ("layers", _weights(params.layers) or "none"),
        ("step", f"{params.step:g}"), ("octaves", str(params.octaves)),
        ("octave_scale", f"{params.octave_scale:g}"), ("iterations", str(params.iterations)),
        ("max_loss", f"{params.max_loss:g}"), ("seed", str(params.seed)),
        ("jitter", str(params.jitter)), ("lap_levels", str(params.lap_levels)),
        ("scale_jitter", f"{params.scale_jitter:g}"),
        ("rotate_jitter", f"{params.rotate_jitter:g}"),
    ]  # fmt: skip
    if params.channels:
        values.append(("channels", _weights(params.channels)))
    if params.target is not None:
        values += [("target", params.target), ("target_weight", f"{params.target_weight:g}")]
    if entry.guide_name is not None:
        values += [("guide", entry.guide_name), ("guide_weight", f"{params.guide_weight:g}")]
    motion = entry.motion
    if motion is not None and motion.kind == "zoom":
        values += [("zoom", f"{motion.zoom:g}"), ("rotate", f"{motion.rotate:g}")]
    elif motion is not None:
        values.append(("blend", f"{motion.blend:g}"))
    if motion is not None:
        values += [("fps", f"{motion.fps:g}"), ("format", motion.format)]
    return values


def _weights(weights: Any) -> str:
    return ",".join(f"{name}={weight:g}" for name, weight in weights.items())


def reroll_overrides(entry: DreamEntry) -> dict[str, Any]:
    """Every parameter of `entry` with a new seed, as `/dream` overrides (so a retuned
    preset does not change the reroll). Without random shifts or views a seed changes
    nothing, and a reroll that came out the same as its dream would be a broken button:
    then it turns jitter on too (the result's "Changed from preset" says so)."""
    params = entry.params
    overrides = params.to_dict()
    overrides.pop("model")  # the preset's, checked against the bot's by the intake
    if params.target is None:
        overrides["target"] = ""  # cleared, not "the preset's"
    if entry.guide_name is None:
        overrides.pop("guide_weight")  # it weighs a guide; without one it is refused
    seed = params.seed
    while seed == params.seed:
        seed = secrets.randbelow(2**31)
    overrides["seed"] = seed
    if not params.seed_matters:
        overrides["jitter"] = REROLL_JITTER
    return overrides
