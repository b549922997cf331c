"""The one retry policy (`runtime/retry.py`), on the real engine and through the thread executor.

Running a real engine out of memory on demand is not possible on a shared machine, so
`RunsOutAbove` is the session's InceptionV3 engine (the same built network, no second
build) that raises the error an accelerator would, but only for images dreamed above a
size: below it, the real engine really dreams. The policy itself is never replaced.
(`plan_oom_retry`'s sizes are covered case by case in tests/runtime/test_process.py.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from dream_engine.core.engine import ENGINE_DEFAULT, DreamEngine
from dream_engine.core.params import DreamParams
from dream_engine.core.results import DreamResult, Progress
from dream_engine.core.tiling import working_size
from dream_engine.errors import ParamError
from dream_engine.runtime.executor import DreamFailed, DreamOutOfMemory, DreamRequest, EngineConfig
from dream_engine.runtime.local import LocalExecutor
from dream_engine.runtime.retry import (
    CRASH_ATTEMPTS,
    CRASHED_TWICE,
    plan_oom_retry,
    retry_after_crash,
    run_with_oom_retry,
)

QUICK = DreamParams(layers={"mixed3": 1.0}, octaves=1, iterations=3, max_loss=1e6)
WAIT = 120.0  # a generous ceiling on one dream, so a bug fails instead of hanging


def tensorflow_oom(message: str) -> BaseException:
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(None, None, message)


class RunsOutAbove(DreamEngine):
    """The real engine, out of memory (as a full accelerator would be) above `limit` px."""

    def __init__(
        self, real: DreamEngine, limit: int, error: Callable[[str], BaseException] = MemoryError
    ) -> None:
        vars(self).update(vars(real))  # the same network and compiled steps: nothing rebuilt
        self.limit = limit
        self.error = error
        self.sizes: list[tuple[int, int]] = []  # what each call would have dreamed at

    def dream(self, image, params, on_progress=None, cancel=None, max_side=None,
              tile_size=ENGINE_DEFAULT, frame_every=None, guide=None) -> DreamResult:  # fmt: skip
        size = working_size(image.size, max_side, self.spec.min_side)
        self.sizes.append(size)
        if max(size) > self.limit:
            raise self.error(f"out of memory dreaming {size[0]}x{size[1]}")
        return super().dream(
            image, params, on_progress, cancel, max_side, tile_size, frame_every, guide
        )


@dataclass(frozen=True)
class Prebuilt(EngineConfig):
    """An `EngineConfig` whose `build()` hands over an engine already built."""

    engine: DreamEngine | None = None

    def build(self) -> DreamEngine:
        assert self.engine is not None
        return self.engine


def photo(width: int = 240, height: int = 160) -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_a_crash_is_retried_once_on_a_fresh_worker():
    assert CRASH_ATTEMPTS == 2
    assert [retry_after_crash(deaths) for deaths in (1, 2, 3)] == [True, False, False]
    assert "twice" in CRASHED_TWICE


@pytest.mark.parametrize("error", [MemoryError, tensorflow_oom])
def test_out_of_memory_runs_the_real_engine_once_smaller_with_a_note(inception_engine, error):
    engine = RunsOutAbove(inception_engine, limit=200, error=error)
    request = DreamRequest(photo(), QUICK)
    reported: list[Progress] = []

    result = run_with_oom_retry(engine, request, reported.append, None, None)

    retry = plan_oom_retry((240, 160), None, engine.tile_size, engine.spec.min_side)
    assert retry is not None and retry.label == "168x112 px"
    assert engine.sizes == [(240, 160), (168, 112)]
    assert result.image.size == (168, 112)  # what really ran
    assert result.notes[-1] == "ran at 168x112 px: the first try ran out of memory"
    assert reported and reported[-1].octave_done  # the retry's progress reached the caller


def test_out_of_memory_again_at_the_smaller_size_says_how_small_it_tried(inception_engine):
    engine = RunsOutAbove(inception_engine, limit=100)

    with pytest.raises(DreamOutOfMemory, match="even at 168x112 px") as raised:
        run_with_oom_retry(engine, DreamRequest(photo(), QUICK), None, None, None)

    assert isinstance(raised.value, DreamFailed)  # shown like any engine failure
    assert raised.value.__context__ is None  # holds no failed try's frames (or tensors)
    assert len(engine.sizes) == 2  # never a third try


def test_out_of_memory_at_the_models_minimum_is_not_tried_again(inception_engine):
    engine = RunsOutAbove(inception_engine, limit=10)
    request = DreamRequest(photo(150, 75), QUICK)

    with pytest.raises(DreamOutOfMemory, match="already as small as the model takes"):
        run_with_oom_retry(engine, request, None, None, None)
    assert engine.sizes == [(150, 75)]


def test_other_errors_are_not_retried(inception_engine):
    engine = RunsOutAbove(inception_engine, limit=10_000)
    request = DreamRequest(photo(), QUICK, frame_every=0)  # the engine refuses it

    with pytest.raises(ParamError, match="frame_every"):
        run_with_oom_retry(engine, request, None, None, None)
    assert len(engine.sizes) == 1


@pytest.mark.asyncio
async def test_the_thread_executor_retries_out_of_memory_once_smaller(inception_engine):
    engine = RunsOutAbove(inception_engine, limit=200)
    executor = LocalExecutor(Prebuilt("inceptionv3", "random", engine=engine))
    await executor.start()
    reported: list[Progress] = []
    try:
        result = await asyncio.wait_for(
            executor.submit(DreamRequest(photo(), QUICK), reported.append, threading.Event()),
            WAIT,
        )
        assert result.notes[-1] == "ran at 168x112 px: the first try ran out of memory"
        assert result.image.size == (168, 112)
        assert reported  # progress crossed from the engine thread to the loop

        engine.limit = 100  # too small even for the retry: a typed failure, not a bug report
        with pytest.raises(DreamOutOfMemory, match="ran out of memory even at 168x112 px"):
            await asyncio.wait_for(
                executor.submit(DreamRequest(photo(), QUICK), lambda p: None, threading.Event()),
                WAIT,
            )
        assert executor.workers()[0].jobs_done == 1
    finally:
        await executor.close()
