"""A dream's progress as an animated GIF that fits an upload limit.

`DreamEngine.dream(..., frame_every=N)` keeps frames (`DreamResult.frames`);
this turns them into a GIF under a byte limit, such as Discord's, giving up
detail in the order people notice least: frames beyond a smooth two dozen,
then pixels beyond a comfortable size, then colours, then the rest of both.
Sizes are estimated from a few frames first, so a large dream is encoded in
full once or twice, not once per guess.

Pillow only, no TensorFlow: the bot can encode without the engine.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from PIL import Image

from dream_engine.core.params import DreamParams

PLAY_MS = 4000  # the whole animation plays in about this long, however many frames
FRAME_MS = (40, 500)  # shortest and longest a frame shows
HOLD_LAST_MS = 1500  # the finished dream stays up a while before the loop restarts
SMOOTH_FRAMES = 24  # frames are dropped down to this before the size shrinks
COMFORTABLE_SIDE = 480  # the size shrinks to this before colours and more frames go
MIN_FRAMES = 8
MIN_SIDE = 64
MIN_COLOURS = 64
SAMPLE_FRAMES = 4  # frames encoded to estimate a plan's size
MAX_ATTEMPTS = 24


def suggest_frame_every(params: DreamParams, frames: int = 48) -> int:
    """Steps between frames for at most about `frames` frames across the whole dream."""
    return max(1, math.ceil(params.octaves * params.iterations / max(1, frames)))


def encode_gif(
    frames: Sequence[Image.Image],
    max_side: int | None = None,
    colours: int = 256,
    play_ms: int = PLAY_MS,
    *,
    frame_ms: int | None = None,
) -> bytes:
    """All `frames` as a looping GIF, scaled to fit `max_side`, with `colours` per frame:
    played in about `play_ms`, the finished dream held at the end; or, with `frame_ms`
    (a clip, whose rate is its own), every frame shown that long."""
    if not frames:
        raise ValueError("no frames to animate")
    size = _fit(frames[0].size, max_side)
    shown = [_paletted(frame, size, colours) for frame in frames]
    if frame_ms is not None:
        durations = [frame_ms] * len(shown)
    else:
        each = min(max(play_ms // len(shown), FRAME_MS[0]), FRAME_MS[1])
        durations = [each] * (len(shown) - 1) + [HOLD_LAST_MS]
    buffer = io.BytesIO()
    shown[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=shown[1:],
        duration=durations,
        loop=0,
        disposal=1,
    )
    return buffer.getvalue()


def encode_gif_to_fit(
    frames: Sequence[Image.Image], limit_bytes: int, play_ms: int = PLAY_MS
) -> bytes:
    """A GIF of `frames` of at most `limit_bytes`; `ValueError` if even the least does not fit.

    Keeps the first and last frames and spaces the others evenly; the least is
    `MIN_FRAMES` frames of `MIN_SIDE` px in `MIN_COLOURS` colours.
    """
    if not frames:
        raise ValueError("no frames to animate")
    plan: _Plan | None = _Plan(len(frames), max(frames[0].size), 256)
    attempts = 0
    while plan is not None and attempts < MAX_ATTEMPTS:
        attempts += 1
        chosen = _spaced(frames, plan.frames)
        sample = _spaced(chosen, min(SAMPLE_FRAMES, len(chosen)))
        if len(sample) < len(chosen):
            per_frame = len(encode_gif(sample, plan.side, plan.colours, play_ms)) / len(sample)
            estimate = per_frame * len(chosen)
            if estimate > limit_bytes:
                plan = plan.smaller(estimate / limit_bytes)
                continue
        data = encode_gif(chosen, plan.side, plan.colours, play_ms)
        if len(data) <= limit_bytes:
            return data
        plan = plan.smaller(len(data) / limit_bytes)
    raise ValueError(
        f"the animation does not fit in {limit_bytes} bytes, even at {MIN_FRAMES} frames "
        f"of {MIN_SIDE} px"
    )


@dataclass(frozen=True)
class _Plan:
    frames: int
    side: int
    colours: int

    def smaller(self, excess: float) -> _Plan | None:
        """The next plan down for a GIF `excess` times too big; None when none is left."""
        target = 0.92 / excess  # aim a little under: sizes are not quite proportional
        if self.frames > SMOOTH_FRAMES:
            return replace(self, frames=self._fewer(target, SMOOTH_FRAMES))
        if self.side > COMFORTABLE_SIDE:
            return replace(self, side=self._narrower(target, COMFORTABLE_SIDE))
        if self.colours > MIN_COLOURS:
            return replace(self, colours=self.colours // 2)
        if self.frames > MIN_FRAMES:
            return replace(self, frames=self._fewer(target, MIN_FRAMES))
        if self.side > MIN_SIDE:
            return replace(self, side=self._narrower(target, MIN_SIDE))
        return None

    def _fewer(self, target: float, floor: int) -> int:
        return max(floor, min(self.frames - 1, math.floor(self.frames * target)))

    def _narrower(self, target: float, floor: int) -> int:
        return max(floor, min(self.side - 1, math.floor(self.side * math.sqrt(target))))


def _spaced(frames: Sequence[Image.Image], count: int) -> list[Image.Image]:
    """`count` frames evenly spaced, the first and the last always among them."""
    if count >= len(frames):
        return list(frames)
    if count <= 1:
        return [frames[-1]]
    last = len(frames) - 1
    return [frames[round(i * last / (count - 1))] for i in range(count)]


def _fit(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    width, height = size
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _paletted(frame: Image.Image, size: tuple[int, int], colours: int) -> Image.Image:
    image = frame.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image.quantize(colours, method=Image.Quantize.FASTOCTREE)  # ~100x median cut
