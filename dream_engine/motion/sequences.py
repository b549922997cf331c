"""Moving dreams on one engine: a zoom from a still, or a clip dreamed frame by frame.

Both are a loop of ordinary dreams at one size (so each octave's compiled step is
traced once for the whole sequence), each frame started from the one before:

- zoom: frame 1 is the image dreamed; frame k+1 is frame k zoomed into
  (`warps.zoom_into`) and dreamed again with `frame_iterations` steps an octave;
- clip: frame 1 is the first input frame dreamed; frame k+1 starts from input
  frame k+1 plus `blend` of dream k's change carried along the optical flow
  (`warps.carry_dream`), then dreamed with `frame_iterations` steps an octave.
  `blend=0` dreams each frame alone, which is what the flicker benchmark compares.

Progress is one bar over every frame, and the event that ends a frame carries it
(`Progress.finished_frame`), so the bot can keep what is done. `done` frames resume
a sequence after them. A cancel between or inside frames keeps the frames done:
the result holds them (`planned_frames` says how many were meant), unless none is.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dream_engine.core.params import DreamParams
from dream_engine.core.results import DreamResult, Progress
from dream_engine.core.tiling import working_size
from dream_engine.errors import DreamCancelled
from dream_engine.motion.spec import MotionSpec
from dream_engine.motion.warps import carry_dream, to_array, to_image, zoom_into

if TYPE_CHECKING:
    from PIL import Image

    from dream_engine.core.engine import CancelFlag, DreamEngine

__all__ = ["run_motion"]


def run_motion(
    engine: DreamEngine,
    spec: MotionSpec,
    params: DreamParams,
    inputs: Sequence[Image.Image],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: CancelFlag = None,
    max_side: int | None = None,
    tile_size: int | None = None,
    guide: Image.Image | None = None,
    done: Sequence[Image.Image] = (),
) -> DreamResult:
    """Dream a zoom (`inputs`: the one still) or a clip (`inputs`: its frames), resuming
    after `done` frames when they are of the size this run dreams at."""
    spec.validate()
    params.validate()
    planned = spec.frames if spec.kind == "zoom" else len(inputs)
    later = params.replace(iterations=spec.iterations_after_first(params))
    started = time.perf_counter()
    size = working_size(inputs[0].size, max_side, engine.spec.min_side)
    # Frames an earlier run dreamed, where it dreamed at this size (not an out-of-memory
    # retry's smaller one): the sequence goes on after them.
    kept = [frame.convert("RGB") for frame in done[:planned]]
    frames = kept if all(frame.size == size for frame in kept) else []
    notes = [f"resumed after {len(frames)} frames dreamed before a restart"] if frames else []
    retry = {} if tile_size is None else {"tile_size": tile_size}

    def dream(start: Image.Image, number: int, these: DreamParams) -> DreamResult:
        report = _frame_progress(on_progress, number, planned, started)
        return engine.dream(
            start, these, on_progress=report, cancel=cancel, max_side=max_side, guide=guide,
            **retry,  # type: ignore[arg-type]
        )  # fmt: skip

    try:
        for number in range(len(frames) + 1, planned + 1):
            start = _start_of(spec, inputs, frames, number)
            result = dream(start, number, params if number == 1 else later)
            if number == 1:
                notes += result.notes
            frames.append(result.image)
            _report_finished(on_progress, number, planned, started, result)
    except DreamCancelled:
        if not frames:
            raise
        notes.append(f"cancelled after {len(frames)} of {planned} frames")
    return DreamResult(
        image=frames[-1], octaves=[], losses=[], params=params,
        seconds=time.perf_counter() - started, notes=notes, frames=frames, fps=spec.fps,
        planned_frames=planned,
    )  # fmt: skip


def _start_of(
    spec: MotionSpec, inputs: Sequence[Image.Image], frames: list[Image.Image], number: int
) -> Image.Image:
    """What frame `number` is dreamed from, given the frames dreamed before it."""
    if number == 1:
        return inputs[0]
    last = to_array(frames[-1])
    if spec.kind == "zoom":
        return to_image(zoom_into(last, spec.zoom, spec.rotate))
    size = frames[0].size  # input frames at the dreamed size (the engine may have fitted it)
    frame, previous = (to_array(inputs[i].resize(size)) for i in (number - 1, number - 2))
    return to_image(carry_dream(frame, previous, last, spec.blend))


def _frame_progress(
    on_progress: Callable[[Progress], None] | None, number: int, planned: int, started: float
) -> Callable[[Progress], None] | None:
    """One frame's progress as a share of the whole sequence, timed from its start."""
    if on_progress is None:
        return None

    def report(progress: Progress) -> None:
        on_progress(
            dataclasses.replace(
                progress, frame=number, frames=planned, elapsed=time.perf_counter() - started
            )
        )

    return report


def _report_finished(
    on_progress: Callable[[Progress], None] | None,
    number: int,
    planned: int,
    started: float,
    result: DreamResult,
) -> None:
    if on_progress is None:
        return
    octaves = max(1, len(result.losses))
    on_progress(
        Progress(
            octave=octaves, octaves=octaves, step=result.params.iterations,
            steps=result.params.iterations,
            loss=result.losses[-1][-1] if result.losses and result.losses[-1] else 0.0,
            elapsed=time.perf_counter() - started, octave_done=True, frame=number,
            frames=planned, finished_frame=result.image,
        )
    )  # fmt: skip
