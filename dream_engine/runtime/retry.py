"""The one retry policy every executor follows, so a dream fails or succeeds the same way
on a thread, in a worker process or on a Ray cluster.

- Out of memory: tried once more, smaller (`run_with_oom_retry`), where the engine
  runs, by whichever executor runs it. The result says so in a note; a second
  out-of-memory error is a `DreamOutOfMemory` saying how small it tried.
- A worker that dies with the job in hand (segfault, OOM kill, a lost Ray node):
  the job is tried once more on a fresh worker; a job that kills `CRASH_ATTEMPTS`
  workers is a `WorkerCrashed` with `CRASHED_TWICE` (`retry_after_crash` is the
  rule the supervising executors ask). Only executors with workers to lose
  (process, Ray) can see a crash: on a thread it takes the bot with it.

Nothing else is retried: a user's error would fail again, a cancel is wanted, and a
bug is reported rather than run twice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dream_engine.core.tiling import TILE_ALIGN, seen_at_once, tile_layout, working_size
from dream_engine.runtime.executor import DreamOutOfMemory, run_request

if TYPE_CHECKING:
    from dream_engine.core.engine import CancelFlag, DreamEngine
    from dream_engine.core.results import DreamResult, Progress
    from dream_engine.runtime.executor import DreamRequest

log = logging.getLogger(__name__)

OOM_SHRINK = 0.7  # an out-of-memory retry runs at this fraction of the size (or tile) that failed

#: Tries a job gets when its worker dies under it: the first, and one on a fresh worker.
CRASH_ATTEMPTS = 2

#: What the owner of a job that killed `CRASH_ATTEMPTS` workers is told (every executor).
CRASHED_TWICE = (
    "This dream crashed the dream engine twice, so it was not tried again. "
    "Try a smaller image or fewer octaves."
)


def retry_after_crash(deaths: int) -> bool:
    """Whether a job whose tries have killed `deaths` workers gets another, on a fresh one.

    The process and Ray executors both ask this, so neither counts tries its own way.
    """
    return deaths < CRASH_ATTEMPTS


# -- out of memory: once more, smaller -----------------------------------------------------------


@dataclass(frozen=True)
class OomRetry:
    """The smaller second try after running out of memory."""

    max_side: int | None
    tile_size: int | None
    label: str  # for the note and the message: "700x467 px" or "tiles of 352x352 px"


def plan_oom_retry(
    size: tuple[int, int], max_side: int | None, tile_size: int | None, min_side: int
) -> OomRetry | None:
    """A second try that gives the network less at once, or None if nothing smaller exists.

    Peak memory follows what the network is given at once (`tiling.seen_at_once`):
    a tiled image's tile and margins, whatever the image size; so shrink the tile
    first, to the largest size whose tiles really are smaller (never below twice
    the model's minimum side), else the image (never below the model's minimum
    side). Sizes come from the engine's own rules, so a retry is never the same
    computation under another name, and its label says what really ran.
    """
    working = working_size(size, max_side, min_side)
    seen = seen_at_once(working, tile_size)
    area = seen[0] * seen[1]
    if tile_size is not None and seen != working:  # tiled
        floor = 2 * min_side
        tiles = [*range(round(tile_size * OOM_SHRINK), floor, -TILE_ALIGN), floor]
        for smaller in (tile for tile in tiles if tile < tile_size):
            width, height = seen_at_once(working, smaller)
            if width * height < area:
                tile_w, tile_h = (min(side, tile_layout(side, smaller)[0]) for side in working)
                return OomRetry(max_side, smaller, f"tiles of {tile_w}x{tile_h} px")
    side = round(max(working) * OOM_SHRINK)
    smaller = working_size(size, side, min_side)
    if smaller[0] * smaller[1] >= working[0] * working[1]:
        return None  # the model's minimum side holds it at this size
    return OomRetry(side, tile_size, f"{smaller[0]}x{smaller[1]} px")


def run_with_oom_retry(
    engine: DreamEngine,
    request: DreamRequest,
    on_progress: Callable[[Progress], None] | None,
    cancelled: CancelFlag,
    max_side: int | None,
) -> DreamResult:
    """`run_request`, tried once more smaller (`plan_oom_retry`) if it runs out of memory.

    The result of a retry carries a note saying what size really ran. Raises
    `DreamOutOfMemory` (a `DreamFailed`) when there is nothing smaller to try or
    the smaller try runs out too; anything else the engine raises passes through.
    """
    try:
        return run_request(engine, request, on_progress, cancelled, max_side=max_side)
    except Exception as error:
        if not _is_out_of_memory(error):
            raise
        first = type(error).__name__
    # Out of the `except` block: the failed try's traceback, and the tensors its frames
    # hold, are gone before the smaller try needs the room.
    retry = plan_oom_retry(request.image.size, max_side, engine.tile_size, engine.spec.min_side)
    if retry is None:
        raise DreamOutOfMemory(
            "The dream engine ran out of memory, and this image is already as small "
            "as the model takes. Try again later, or with fewer octaves."
        )
    log.warning("out of memory (%s); retrying at %s", first, retry.label)
    result: DreamResult | None = None
    try:
        result = run_request(
            engine,
            request,
            on_progress,
            cancelled,
            max_side=retry.max_side,
            tile_size=retry.tile_size,
        )
    except Exception as again:
        if not _is_out_of_memory(again):
            raise
    if result is None:  # raised out here too, so the error holds no failed try's frames
        raise DreamOutOfMemory(
            f"The dream engine ran out of memory even at {retry.label}. "
            "Try a smaller image or fewer octaves."
        )
    result.notes.append(f"ran at {retry.label}: the first try ran out of memory")
    return result


def _is_out_of_memory(error: BaseException) -> bool:
    """Host memory (`MemoryError`) or the accelerator's (TensorFlow's `ResourceExhaustedError`)."""
    if isinstance(error, MemoryError):
        return True
    tf = sys.modules.get("tensorflow")  # not loaded: then it cannot be a TensorFlow error
    return tf is not None and isinstance(error, tf.errors.ResourceExhaustedError)


__all__ = [
    "CRASHED_TWICE",
    "CRASH_ATTEMPTS",
    "OOM_SHRINK",
    "OomRetry",
    "plan_oom_retry",
    "retry_after_crash",
    "run_with_oom_retry",
]
