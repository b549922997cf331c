"""`ProcessExecutor`: the engine in a supervised worker process, crashes and all.

One executor (InceptionV3, random weights) serves the module: every worker spawn
costs seconds on two cores, so tests that kill the worker share it too and look
at the change in `restarts`. Out-of-memory can't be caused on demand in a real
worker, so the worker's job step (`run_job`) is driven in-process with a stand-in
engine that runs out of memory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from dream_engine.core.params import DreamParams
from dream_engine.core.results import DreamResult, Progress
from dream_engine.errors import DreamCancelled, ImageError, ModelUnavailableError, ParamError
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamRequest,
    DreamTimedOut,
    EngineConfig,
    WorkerCrashed,
)
from dream_engine.runtime.process import ProcessExecutor
from dream_engine.runtime.retry import plan_oom_retry
from dream_engine.runtime.wire import Done, Failed, decode_result, encode_job, run_job
from dream_engine.study.sweeps import parse_vary
from tests.conftest import REPO

FAST = DreamParams(layers={"mixed3": 1.0}, octaves=2, iterations=10, max_loss=1e6)
LONG = FAST.replace(octaves=3, iterations=1000)  # far longer than any test waits
WAIT = 60.0  # a generous ceiling on one call, so a bug fails instead of hanging

module_loop = pytest.mark.asyncio(loop_scope="module")


def noise(width: int = 160, height: int = 120) -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def ignore(progress: Progress) -> None:
    pass


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor() -> AsyncIterator[ProcessExecutor]:
    shared = ProcessExecutor(EngineConfig("inceptionv3", "random", warm_up=FAST))
    await asyncio.wait_for(shared.start(), WAIT)
    yield shared
    pid = shared.worker_pid
    await asyncio.wait_for(shared.close(), WAIT)
    assert pid is not None and not is_running(pid), "close() leaves no worker behind"


async def dream(
    executor: ProcessExecutor,
    params: DreamParams = FAST,
    on_progress: Callable[[Progress], None] = ignore,
    cancel: threading.Event | None = None,
    image: Image.Image | None = None,
) -> DreamResult:
    request = DreamRequest(image or noise(), params)
    return await asyncio.wait_for(
        executor.submit(request, on_progress, cancel or threading.Event()), WAIT
    )


@module_loop
async def test_a_dream_comes_back_whole_with_progress_in_order_on_the_loop(executor):
    loop = asyncio.get_running_loop()
    seen: list[tuple[int, int]] = []

    def on_progress(progress: Progress) -> None:
        assert asyncio.get_running_loop() is loop  # delivered on the loop, not a thread
        seen.append((progress.octave, progress.step))

    params = FAST.replace(octaves=3)
    result = await dream(executor, params, on_progress, image=noise(200, 160))

    assert result.image.size == (200, 160)
    assert result.image.mode == "RGB"
    assert [octave.width for octave in result.octaves] == [102, 143, 200]
    assert [len(history) for history in result.losses] == [10, 10, 10]
    assert result.params == params
    assert result.seconds > 0
    assert seen == sorted(seen)
    assert seen[-1] == (3, 10)


@module_loop
async def test_a_comparison_runs_in_the_worker_as_one_job_with_one_bar(executor):
    from dream_engine.study.sweeps import parse_vary

    variants = tuple(parse_vary("step=0.005,0.05", FAST))
    seen: list[Progress] = []
    request = DreamRequest(noise(200, 160), FAST, variants=variants, title="steps")
    result = await asyncio.wait_for(executor.submit(request, seen.append, threading.Event()), WAIT)
    assert [caption for caption, _ in result.panels] == ["step=0.005", "step=0.05"]
    assert all(panel.size == (200, 160) for _, panel in result.panels)
    assert result.image.width > 2 * 200  # the grid: the input, then both dreams
    assert {progress.variants for progress in seen} == {2}
    fractions = [progress.fraction for progress in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@module_loop
async def test_a_guide_steers_the_dream_in_the_worker(executor):
    params = FAST.replace(octaves=1, iterations=4, guide_weight=5.0)
    guide = noise(90, 120).rotate(90)
    plain = await dream(executor, params)
    guided = await asyncio.wait_for(
        executor.submit(DreamRequest(noise(), params, guide=guide), ignore, threading.Event()),
        WAIT,
    )
    apart = np.abs(np.asarray(plain.image, np.int16) - np.asarray(guided.image, np.int16))
    assert apart.mean() > 0.3
    assert guided.losses[-1][-1] > plain.losses[-1][-1]  # the guide's match adds to the climb


@module_loop
async def test_a_zoom_runs_in_the_worker_with_a_bar_over_its_frames(executor):
    from dream_engine.motion.spec import MotionSpec

    seen: list[Progress] = []
    request = DreamRequest(noise(), FAST.replace(octaves=1), motion=MotionSpec("zoom", frames=3))
    result = await asyncio.wait_for(executor.submit(request, seen.append, threading.Event()), WAIT)
    assert len(result.frames) == result.planned_frames == 3 and result.fps == 12.0
    finished = [progress for progress in seen if progress.finished_frame is not None]
    assert [progress.frame for progress in finished] == [1, 2, 3]
    assert finished[-1].finished_frame.size == result.frames[-1].size
    assert seen[-1].fraction == 1.0


@module_loop
async def test_animation_frames_come_back_from_the_worker(executor):
    params = FAST.replace(octaves=2, iterations=4)
    request = DreamRequest(noise(200, 160), params, frame_every=2)
    result = await asyncio.wait_for(executor.submit(request, ignore, threading.Event()), WAIT)
    assert len(result.frames) == 1 + 2 * 2  # the photo, then step 2 and the end of each octave
    assert all(frame.size == (200, 160) and frame.mode == "RGB" for frame in result.frames)
    assert np.array_equal(np.asarray(result.frames[-1]), np.asarray(result.image))
    assert (await dream(executor, params)).frames == []  # only when asked for


@module_loop
async def test_a_worker_is_recycled_after_its_quota_of_jobs(executor):
    before_pid, before_restarts = executor.worker_pid, executor.restarts
    executor.recycle_after = 1
    try:
        await dream(executor, FAST.replace(octaves=1, iterations=1))
    finally:
        executor.recycle_after = None
    assert executor.restarts == before_restarts + 1
    result = await dream(executor, FAST.replace(octaves=1, iterations=1))  # on the new worker
    assert executor.worker_pid != before_pid and result.image.size == (160, 120)


@module_loop
async def test_the_event_loop_stays_responsive_during_a_dream(executor):
    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await dream(executor, FAST.replace(octaves=3, iterations=15), image=noise(200, 160))
    stop.set()
    await ticker
    assert len(gaps) > 5
    assert max(gaps) < 0.5


@module_loop
async def test_cancelling_a_running_dream_stops_it_promptly_and_the_next_one_runs(executor):
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def on_progress(progress: Progress) -> None:
        if not cancel.is_set():
            cancel.set()
            cancelled_at.append(time.perf_counter())

    with pytest.raises(DreamCancelled):
        await dream(executor, LONG, on_progress, cancel)
    assert time.perf_counter() - cancelled_at[0] < 2.0

    assert len((await dream(executor)).octaves) == 2


@module_loop
async def test_a_caller_that_goes_away_stops_the_dream_before_the_next_one(executor):
    started = asyncio.Event()
    cancel = threading.Event()
    task = asyncio.create_task(dream(executor, LONG, lambda _: started.set(), cancel))
    await asyncio.wait_for(started.wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancel.is_set()

    began = time.perf_counter()
    assert len((await dream(executor)).octaves) == 2
    assert time.perf_counter() - began < 10  # the long dream was stopped, not waited out


@module_loop
@pytest.mark.parametrize(
    ("image", "params", "error", "match"),
    [
        (Image.new("RGB", (1000, 20)), FAST, ImageError, "too long and thin"),
        (None, DreamParams(model="vgg19", layers={"block1_conv1": 1.0}), ParamError, "for vgg19"),
    ],
)
async def test_user_errors_come_back_as_the_same_class_and_message(
    executor, image, params, error, match
):
    with pytest.raises(error, match=match) as raised:
        await dream(executor, params, image=image)
    assert type(raised.value) is error


@module_loop
async def test_a_worker_killed_mid_dream_is_restarted_and_the_dream_retried(executor):
    restarts, first_pid = executor.restarts, executor.worker_pid
    killed: list[int] = []

    def on_progress(progress: Progress) -> None:
        if not killed:
            killed.append(executor.worker_pid)
            os.kill(executor.worker_pid, signal.SIGKILL)

    result = await dream(executor, FAST, on_progress)

    assert killed == [first_pid]
    assert result.image.size == (160, 120)
    assert executor.restarts == restarts + 1
    assert executor.worker_pid not in (None, first_pid)


@module_loop
async def test_a_dream_that_kills_the_worker_twice_fails_and_the_next_one_runs(executor):
    restarts = executor.restarts
    killed: set[int] = set()

    def on_progress(progress: Progress) -> None:
        pid = executor.worker_pid
        if pid is not None and pid not in killed:
            killed.add(pid)
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(WorkerCrashed, match="crashed the dream engine twice") as raised:
        await dream(executor, FAST, on_progress)
    assert isinstance(raised.value, DreamFailed)  # the bot shows it like any engine failure
    assert len(killed) == 2

    # The replacement is starting; a dream cancelled meanwhile need not wait for it.
    cancel = threading.Event()
    asyncio.get_running_loop().call_later(0.3, cancel.set)
    began = time.perf_counter()
    with pytest.raises(DreamCancelled):
        await dream(executor, cancel=cancel)
    assert time.perf_counter() - began < 2
    assert executor.worker_pid is None  # it really was still starting

    assert len((await dream(executor)).octaves) == 2
    assert executor.restarts == restarts + 2


@module_loop
async def test_a_worker_that_died_while_idle_is_replaced_before_the_next_dream(executor):
    restarts, pid = executor.restarts, executor.worker_pid
    os.kill(pid, signal.SIGKILL)
    while executor._worker.process.is_alive():  # dead (and reaped) before the next job comes
        await asyncio.sleep(0.05)

    assert len((await dream(executor)).octaves) == 2
    assert executor.restarts == restarts + 1


@module_loop
async def test_a_dream_over_the_time_limit_is_killed_and_the_next_one_runs(executor):
    pid = executor.worker_pid
    executor.job_timeout = 1.0
    try:
        began = time.perf_counter()
        with pytest.raises(DreamTimedOut, match="longer than the 1-second limit"):
            await dream(executor, LONG)
        assert time.perf_counter() - began < 5
    finally:
        executor.job_timeout = None

    assert len((await dream(executor)).octaves) == 2
    assert executor.worker_pid != pid


@module_loop
async def test_a_comparison_gets_the_time_limit_once_per_dream(executor):
    executor.job_timeout = 0.5
    variants = tuple(parse_vary("step=0.001,0.002,0.003", LONG))
    try:
        began = time.perf_counter()
        with pytest.raises(DreamTimedOut, match=r"longer than the 1\.5-second limit"):
            await asyncio.wait_for(
                executor.submit(DreamRequest(noise(), LONG, variants=variants), ignore,
                                threading.Event()),
                WAIT,
            )  # fmt: skip
        assert time.perf_counter() - began >= 1.5
    finally:
        executor.job_timeout = None

    assert len((await dream(executor)).octaves) == 2  # a fresh worker took over


def test_the_executor_can_be_used_from_another_event_loop(executor):
    """Like `LocalExecutor`: started in one loop, used in another (as the bot tests do)."""
    with ThreadPoolExecutor(1) as thread:  # a loop of its own, away from the module's
        result = thread.submit(asyncio.run, dream(executor)).result(timeout=WAIT)
    assert len(result.octaves) == 2


@module_loop
async def test_a_worker_that_cannot_start_fails_start_quickly():
    broken = ProcessExecutor(EngineConfig("inceptionv3", "/nonexistent.h5"))
    began = time.perf_counter()
    try:
        with pytest.raises(ModelUnavailableError, match="Weights file not found"):
            await asyncio.wait_for(broken.start(), WAIT)
        assert time.perf_counter() - began < 15
    finally:
        await asyncio.wait_for(broken.close(), WAIT)


def test_the_worker_does_not_import_the_parents_main_script(tmp_path):
    """Spawn would re-run the bot's script, and with it discord, in the worker."""
    script = tmp_path / "main_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            if __name__ == "__mp_main__":
                sys.exit(3)  # spawn re-ran this script in the child
            import multiprocessing, time
            from dream_engine.runtime.wire import main_module_hidden

            def child_exit_code(hide: bool) -> int:
                process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
                if hide:
                    with main_module_hidden():
                        process.start()
                else:
                    process.start()
                process.join()
                return process.exitcode

            if __name__ == "__main__":
                print(child_exit_code(hide=False), child_exit_code(hide=True))
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    output = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert output.stdout.split() == ["3", "0"], output.stderr  # 3: re-run (the control)


# -- out of memory, inside the worker -----------------------------------------------------------


class OutOfMemoryEngine:
    """Stands in for `DreamEngine`: runs out of memory on the first `failures` calls."""

    model_name = "inceptionv3"
    precision = "float32"

    def __init__(
        self, failures: int, error: Callable[[str], BaseException], tile_size: int | None
    ) -> None:
        self.failures = failures
        self.error = error
        self.tile_size = tile_size
        self.spec = SimpleNamespace(min_side=75)
        self.calls: list[tuple[int | None, int | None]] = []  # (max_side, tile_size)

    def dream(
        self, image, params, on_progress, cancel, max_side, tile_size=None, frame_every=None,
        guide=None,
    ) -> DreamResult:  # fmt: skip
        self.calls.append((max_side, self.tile_size if tile_size is None else tile_size))
        if len(self.calls) <= self.failures:
            raise self.error("out of memory")
        if max_side is not None and max(image.size) > max_side:
            image = image.resize((max_side, max_side * image.height // image.width))
        return DreamResult(image, [image], [[1.0]], params, 0.1)


def tensorflow_oom(message: str) -> BaseException:
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(None, None, message)


@pytest.mark.parametrize("error", [MemoryError, tensorflow_oom])
def test_out_of_memory_is_retried_once_smaller_with_a_note(error):
    engine = OutOfMemoryEngine(failures=1, error=error, tile_size=None)
    job = encode_job(DreamRequest(noise(1000, 750), FAST, max_side=900))

    outcome = run_job(engine, job, lambda: False, lambda message: None)

    assert isinstance(outcome, Done)
    assert engine.calls == [(900, None), (630, None)]
    assert outcome.notes == ["ran at 630x472 px: the first try ran out of memory"]


def test_frames_cross_the_pipe_as_png_and_back():
    frames = [noise(64, 48), Image.new("RGB", (64, 48), (9, 99, 199))]

    class FramesEngine(OutOfMemoryEngine):
        def dream(self, image, params, *args, frame_every=None, **options) -> DreamResult:
            result = super().dream(image, params, *args, **options)
            result.frames = frames if frame_every else []
            return result

    engine = FramesEngine(failures=0, error=MemoryError, tile_size=None)
    job = encode_job(DreamRequest(noise(64, 48), FAST, frame_every=3))
    done = run_job(engine, job, lambda: False, lambda message: None)
    assert isinstance(done, Done) and all(isinstance(data, bytes) for data in done.frames)
    result = decode_result(done, FAST)
    for sent, received in zip(frames, result.frames, strict=True):
        assert np.array_equal(np.asarray(sent), np.asarray(received))


def test_out_of_memory_when_tiled_retries_with_smaller_tiles():
    engine = OutOfMemoryEngine(failures=1, error=MemoryError, tile_size=512)
    job = encode_job(DreamRequest(noise(1000, 750), FAST))

    outcome = run_job(engine, job, lambda: False, lambda message: None)

    assert isinstance(outcome, Done)
    assert engine.calls == [(None, 512), (None, 358)]
    assert outcome.notes == ["ran at tiles of 352x256 px: the first try ran out of memory"]
    assert engine.tile_size == 512  # later jobs keep the engine's own tile size


def test_out_of_memory_twice_is_a_failure_that_says_how_small_it_tried():
    engine = OutOfMemoryEngine(failures=2, error=MemoryError, tile_size=None)
    job = encode_job(DreamRequest(noise(1000, 750), FAST))

    outcome = run_job(engine, job, lambda: False, lambda message: None)

    assert isinstance(outcome, Failed) and outcome.kind == "oom"
    assert "ran out of memory even at 700x525 px" in outcome.message
    assert len(engine.calls) == 2


@pytest.mark.parametrize(
    ("size", "max_side", "tile_size", "expected"),
    [
        ((1000, 600), None, None, (700, None, "700x420 px")),
        ((1000, 600), 800, None, (560, None, "560x336 px")),
        ((300, 200), None, 512, (210, 512, "210x140 px")),  # one tile: shrink the image
        ((1400, 900), 1200, 512, (1200, 358, "tiles of 320x288 px")),
        # 358 px tiles would be 2 of 352 px again (tiles are aligned and balanced): not
        # smaller, so the next size down that is.
        ((700, 160), None, 512, (None, 326, "tiles of 256x160 px")),
        ((1400, 900), None, 150, (980, 150, "980x630 px")),  # tiles at the floor (2 x 75 px)
        ((1000, 100), None, None, (700, None, "750x75 px")),  # the short side stops at 75
        ((90, 80), None, None, (63, None, "84x75 px")),  # never below the model's minimum
    ],
)
def test_the_out_of_memory_retry_plan(size, max_side, tile_size, expected):
    retry = plan_oom_retry(size, max_side, tile_size, min_side=75)
    assert retry is not None and (retry.max_side, retry.tile_size, retry.label) == expected


def test_an_image_at_the_models_minimum_has_no_smaller_retry():
    assert plan_oom_retry((1000, 75), None, None, min_side=75) is None
    engine = OutOfMemoryEngine(failures=1, error=MemoryError, tile_size=None)
    job = encode_job(DreamRequest(noise(1000, 75), FAST))
    outcome = run_job(engine, job, lambda: False, lambda message: None)
    assert isinstance(outcome, Failed) and "already as small as the model takes" in outcome.message
    assert len(engine.calls) == 1  # not the same failing run again


def test_a_comparison_that_runs_out_of_memory_retries_with_smaller_tiles():
    engine = OutOfMemoryEngine(failures=1, error=MemoryError, tile_size=512)
    variants = tuple(parse_vary("step=0.01,0.02", FAST))
    job = encode_job(DreamRequest(noise(1000, 750), FAST, variants=variants))
    outcome = run_job(engine, job, lambda: False, lambda message: None)
    assert isinstance(outcome, Done)
    assert engine.calls == [(None, 512), (None, 358), (None, 358)]  # both variants retried
