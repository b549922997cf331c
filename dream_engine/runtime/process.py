"""`ProcessExecutor`: the executor seam with the engine in a supervised worker process.

A segfault, an out-of-memory kill or a runaway job in TensorFlow should cost one
dream, not the bot. So the engine lives in a child process started with the
*spawn* method (forking a process that has TensorFlow and threads is unsafe), and
the bot process only supervises it:

- one request at a time goes down a `multiprocessing` pipe (image as PNG bytes,
  params as a dict); progress events, then a result or a typed failure, come back;
- a reader thread drains the pipe into an inbox the event loop awaits without
  blocking, and notices the worker's death (EOF or its process sentinel);
- cancel crosses over as a shared `multiprocessing` Event the engine polls;
- a worker that dies mid-job is restarted and the job tried once more; twice is
  `WorkerCrashed`. A job over `job_timeout` is killed: `DreamTimedOut`;
- out of memory *inside* the worker is retried there once, smaller.

The worker's side is the top-level `worker_main` and `run_job` below (spawn
imports this module in the child, so they must be importable); the worker
imports the engine, never discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import multiprocessing
import queue
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from PIL import Image

from dream_engine.core.params import DreamParams
from dream_engine.core.tiling import TILE_ALIGN, seen_at_once, tile_layout, working_size
from dream_engine.errors import DreamCancelled, ModelUnavailableError, UserError
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamRequest,
    EngineConfig,
    WorkerStatus,
    local_host,
    run_request,
)

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.synchronize import Event as ProcessEvent

    from dream_engine.core.engine import DreamEngine
    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a waiting job looks at the caller's cancel flag and the clock
STOP_GRACE_SECONDS = 5.0  # close() waits this long for a clean exit before killing
OOM_SHRINK = 0.7  # an out-of-memory retry runs at this fraction of the size (or tile) that failed
PNG_LEVEL = 1  # images cross a local pipe: fast beats small


#: What the owner of a job that killed two workers is told (every supervised executor).
CRASHED_TWICE = (
    "This dream crashed the dream engine twice, so it was not tried again. "
    "Try a smaller image or fewer octaves."
)


class WorkerCrashed(DreamFailed):
    """The worker process died on this job twice (segfault, OOM kill, killed)."""


class DreamTimedOut(DreamFailed):
    """The job ran past the executor's `job_timeout`; the worker was killed and restarted."""

    @classmethod
    def after(cls, limit: float) -> DreamTimedOut:
        return cls(
            f"This dream took longer than the {limit:g}-second limit, so it was stopped. "
            "Try a smaller image, fewer octaves or fewer iterations."
        )


# -- messages over the pipe: plain data, so either side can change its classes freely ----------


@dataclass(frozen=True)
class _Job:
    """Parent -> worker: one dream."""

    png: bytes
    params: dict[str, Any]
    max_side: int | None
    frame_every: int | None = None
    variants: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)
    title: str | None = None

    def time_limit(self, job_timeout: float | None) -> float | None:
        """Seconds this job may run: `job_timeout` for each dream it holds, so a comparison
        of 11 layers is not held to one dream's time."""
        return None if job_timeout is None else job_timeout * max(1, len(self.variants))


@dataclass(frozen=True)
class _Ready:
    """Worker -> parent: the engine is built (and warmed up); send jobs."""


@dataclass(frozen=True)
class _StartFailed:
    """Worker -> parent: the engine could not be built; the worker exits."""

    message: str


@dataclass(frozen=True)
class _ProgressEvent:
    """Worker -> parent: `Progress` fields."""

    fields: dict[str, Any]


@dataclass(frozen=True)
class _Done:
    """Worker -> parent: a finished dream, images as PNG bytes."""

    image: bytes
    octaves: list[bytes]
    losses: list[list[float]]
    notes: list[str]
    seconds: float
    frames: list[bytes] = dataclasses.field(default_factory=list)  # animation, if asked for
    panels: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)  # a comparison's


@dataclass(frozen=True)
class _Failed:
    """Worker -> parent: the job ended without a dream; `kind` says whose fault."""

    # "failed" and "crashed": a supervising executor's own `DreamFailed` / `WorkerCrashed`,
    # passed on by a process between it and the bot (the Ray driver process).
    kind: Literal["user", "cancelled", "oom", "bug", "failed", "crashed"]
    error_type: str  # class name; for "user", a UserError subclass the parent re-raises
    message: str
    details: str = ""  # traceback of a bug, for the parent's log


@dataclass(frozen=True)
class _PipeClosed:
    """Reader thread -> event loop: the worker is gone (EOF or its process ended)."""


# -- the worker process ------------------------------------------------------------------------


def worker_main(conn: Connection, cancel: ProcessEvent, config: EngineConfig) -> None:
    """The worker process: build the engine once, then dream each job the parent sends.

    Returns (exiting the process) on a `None` job, or when the parent is gone.
    """
    # Ctrl+C reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s dream-worker[%(process)d] %(levelname)s %(message)s"
    )
    try:
        engine = config.build()
    except Exception as error:
        message = (
            str(error)
            if isinstance(error, UserError)
            else f"The dream engine could not start ({type(error).__name__}: {str(error)[:200]})."
        )
        conn.send(_StartFailed(message))
        return
    with contextlib.suppress(EOFError, OSError):  # the parent went away: nothing left to do
        conn.send(_Ready())
        while (job := conn.recv()) is not None:
            conn.send(run_job(engine, job, cancel.is_set, conn.send))


def run_job(
    engine: DreamEngine,
    job: _Job,
    cancelled: Callable[[], bool],
    send: Callable[[object], None],
) -> _Done | _Failed:
    """One job in the worker: progress goes out through `send`; the outcome is returned.

    Out of memory is retried once, smaller (see `plan_oom_retry`); every other
    failure becomes a `_Failed` the parent turns back into a typed error.
    """

    def report(progress: Progress) -> None:
        send(_ProgressEvent(dataclasses.asdict(progress)))

    try:
        request = _decode_job(job)
        image = request.image
        try:
            result = run_request(engine, request, report, cancelled, max_side=job.max_side)
        except Exception as error:
            if not _is_out_of_memory(error):
                raise
            retry = plan_oom_retry(image.size, job.max_side, engine.tile_size, engine.spec.min_side)
            if retry is None:
                return _Failed(
                    "oom",
                    type(error).__name__,
                    "The dream engine ran out of memory, and this image is already as small "
                    "as the model takes. Try again later, or with fewer octaves.",
                )
            log.warning("out of memory (%s); retrying at %s", type(error).__name__, retry.label)
            try:
                result = run_request(
                    engine,
                    request,
                    report,
                    cancelled,
                    max_side=retry.max_side,
                    tile_size=retry.tile_size,
                )
            except Exception as again:
                if not _is_out_of_memory(again):
                    raise
                return _Failed(
                    "oom",
                    type(again).__name__,
                    f"The dream engine ran out of memory even at {retry.label}. "
                    "Try a smaller image or fewer octaves.",
                )
            result.notes.append(f"ran at {retry.label}: the first try ran out of memory")
    except DreamCancelled:
        return _Failed("cancelled", "DreamCancelled", "")
    except UserError as error:
        return _Failed("user", type(error).__name__, str(error))
    except Exception as error:
        return _Failed("bug", type(error).__name__, str(error), traceback.format_exc())
    return _Done(
        image=_to_png(result.image),
        octaves=[_to_png(octave) for octave in result.octaves],
        losses=result.losses,
        notes=result.notes,
        seconds=result.seconds,
        frames=[_to_png(frame) for frame in result.frames],
        panels=[(caption, _to_png(panel)) for caption, panel in result.panels],
    )


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


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    tf = sys.modules.get("tensorflow")  # not loaded: then it cannot be a TensorFlow error
    return tf is not None and isinstance(error, tf.errors.ResourceExhaustedError)


def _to_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def _from_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


# -- the bot's side ----------------------------------------------------------------------------


class _Worker:
    """One worker process, seen from the parent: a pipe to send on, an inbox to read from.

    The inbox is a thread-safe queue rather than an asyncio one so that the worker
    is not tied to the event loop it was started on (tests start an executor in
    one loop and use it in others; `LocalExecutor` allows that too).
    """

    def __init__(self, process: SpawnProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.pid: int = process.pid or 0
        self.jobs_done = 0
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._reader = threading.Thread(
            target=self._read, name=f"dream-worker-{self.pid}-reader", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        """Reader thread: pipe -> inbox until the worker is gone, then one `_PipeClosed`."""
        while True:
            message: object
            try:
                ready = wait([self.conn, self.process.sentinel])
                # Read everything it wrote before concluding that it has exited.
                message = self.conn.recv() if self.conn in ready else _PipeClosed()
            except (EOFError, OSError, ValueError):
                message = _PipeClosed()
            self._inbox.put(message)
            if isinstance(message, _PipeClosed):
                return

    async def receive(self, timeout: float | None) -> object | None:
        """The next message, or None if none came within `timeout`.

        Waits on a pool thread. Cancelling the wait could drop the message that
        thread then takes, so only the (shielded) job task and a start that is
        being abandoned anyway call this.
        """
        with contextlib.suppress(queue.Empty):
            return self._inbox.get_nowait()
        try:
            return await asyncio.to_thread(self._inbox.get, True, timeout)
        except queue.Empty:
            return None

    async def send(self, job: _Job | None) -> bool:
        """False when the worker is already gone (the reader will report it)."""
        try:
            await asyncio.to_thread(self.conn.send, job)
        except OSError:
            return False
        return True

    async def exit_code(self) -> int | None:
        await asyncio.to_thread(self.process.join, 2.0)
        return self.process.exitcode

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()

    async def dispose(self, grace: float = 0.0) -> None:
        """Stop the process (asking first when `grace` > 0), then free the pipe and thread."""
        if grace > 0 and self.process.is_alive():
            await self.send(None)
            await asyncio.to_thread(self.process.join, grace)
        if self.process.is_alive():
            if grace > 0:
                log.warning("dream worker %s did not stop in %g s; killing it", self.pid, grace)
            self.kill()
        await asyncio.to_thread(self.process.join)
        await asyncio.to_thread(self._reader.join, 2.0)
        self.conn.close()
        self.process.close()


class _WorkerDied(Exception):
    def __init__(self, exit_code: int | None) -> None:
        super().__init__(f"exit code {exit_code}")
        self.exit_code = exit_code


class ProcessExecutor:
    """The engine in one supervised worker process: a crash costs a dream, not the bot."""

    capacity = 1
    on_capacity_change: Callable[[], None] | None = None  # never called: capacity stays 1

    def __init__(
        self,
        config: EngineConfig,
        *,
        job_timeout: float | None = None,
        recycle_after: int | None = None,
    ) -> None:
        self.model_name = config.model
        self.job_timeout = job_timeout  # seconds per attempt; None: no limit
        # A worker is replaced after this many jobs: the process grows a little with every
        # new image size (see README, Benchmark), and a fresh one gives it all back.
        self.recycle_after = recycle_after
        self.restarts = 0  # workers started to replace one that died or was killed
        self._config = config
        self._context = multiprocessing.get_context("spawn")
        self._cancel = self._context.Event()  # shared with every worker this executor starts
        self._worker: _Worker | None = None
        self._starting: asyncio.Task[_Worker] | None = None
        self._lock = asyncio.Lock()  # one job on the pipe at a time
        self._cleanups: set[asyncio.Future[None]] = set()  # dead workers being reaped
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop those three belong to
        self._closed = False
        self._jobs_done = 0
        self._in_hand: str | None = None

    def workers(self) -> list[WorkerStatus]:
        """The one worker process (its process id; the count survives restarts)."""
        worker = self._worker
        name = "worker process" if worker is None else f"worker process {worker.pid}"
        state = "ready" if worker is not None else ("starting" if not self._closed else "closed")
        return [WorkerStatus(name, local_host(), "local", self._jobs_done, self._in_hand, state)]

    @property
    def worker_pid(self) -> int | None:
        """The current worker's process id (None before start or while restarting)."""
        return None if self._worker is None else self._worker.pid

    async def start(self) -> None:
        """Start the worker and wait until its engine is built; `ModelUnavailableError` if not."""
        await self._ready()

    async def submit(
        self,
        request: DreamRequest,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult:
        job = asyncio.ensure_future(self._run(request, on_progress, cancel))
        # If our caller goes away the job still ends in the worker before the next starts;
        # its outcome then has no reader, which is fine.
        job.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            cancel.set()  # the awaiting task went away: stop the engine at its next check
            raise

    async def close(self) -> None:
        """Stop the worker cleanly (killing it after `STOP_GRACE_SECONDS`)."""
        self._bind_to_running_loop()
        self._closed = True
        self._cancel.set()  # a running dream stops at its next check
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(BaseException):
                await self._starting
            self._starting = None
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.dispose(grace=STOP_GRACE_SECONDS)
        await asyncio.gather(*self._cleanups, return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    async def _run(
        self,
        request: DreamRequest,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult:
        """The job, one at a time on the worker's pipe."""
        self._bind_to_running_loop()
        job = await asyncio.to_thread(_encode_job, request)
        async with self._lock:
            self._in_hand = request.label or "a dream"
            try:
                return await self._attempts(request, job, on_progress, cancel)
            finally:
                self._in_hand = None

    async def _attempts(
        self,
        request: DreamRequest,
        job: _Job,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult:
        """Up to two attempts, the second on a fresh worker if the first killed one."""
        for attempt in (1, 2):
            worker = await self._ready_unless_cancelled(cancel)
            try:
                outcome = await self._attempt(worker, job, on_progress, cancel)
            except _WorkerDied as death:
                will_retry = attempt == 1 and not self._closed
                log.error(
                    "dream worker %s died during a job (exit code %s); %s",
                    worker.pid,
                    death.exit_code,
                    "retrying it on a fresh worker" if will_retry else "not retrying",
                )
                self._replace(worker)
                if self._closed:
                    raise DreamFailed("The dream engine was shut down; try again.") from None
                if will_retry:
                    continue
                raise WorkerCrashed(CRASHED_TWICE) from None
            worker.jobs_done += 1
            self._jobs_done += 1
            if self.recycle_after and worker.jobs_done >= self.recycle_after:
                self._replace(worker)  # idle now: its replacement starts in the background
            if isinstance(outcome, _Failed):
                _raise(outcome)
            return await asyncio.to_thread(_decode_result, outcome, request.params)
        raise AssertionError("unreachable")

    async def _attempt(
        self,
        worker: _Worker,
        job: _Job,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> _Done | _Failed:
        """Send the job and wait for its outcome, relaying progress, cancel and the clock."""
        from dream_engine.core.results import Progress

        if cancel.is_set():
            raise DreamCancelled()
        self._cancel.clear()  # the previous job has ended: its cancel must not leak into this one
        loop = asyncio.get_running_loop()
        limit = job.time_limit(self.job_timeout)
        deadline = None if limit is None else loop.time() + limit
        if not await worker.send(job):
            raise _WorkerDied(await worker.exit_code())
        while True:
            if cancel.is_set():
                self._cancel.set()
            if deadline is not None and loop.time() >= deadline:
                self._time_out(worker, limit)
            message = await worker.receive(POLL_SECONDS)
            if message is None:
                continue
            if isinstance(message, _ProgressEvent):
                try:
                    on_progress(Progress(**message.fields))
                except Exception:
                    log.exception("progress callback failed")
                continue
            if isinstance(message, _PipeClosed):
                raise _WorkerDied(await worker.exit_code())
            assert isinstance(message, _Done | _Failed), f"unexpected message {message!r}"
            return message

    async def _ready_unless_cancelled(self, cancel: threading.Event) -> _Worker:
        """`_ready()`, except that a cancel during a (re)start ends the wait at once."""
        ready = asyncio.ensure_future(self._ready())
        while not cancel.is_set():
            done, _ = await asyncio.wait({ready}, timeout=POLL_SECONDS)
            if done:
                return ready.result()
        ready.cancel()  # the start itself goes on (it is shielded) for the next job
        with contextlib.suppress(asyncio.CancelledError):
            await ready
        raise DreamCancelled()

    def _time_out(self, worker: _Worker, limit: float) -> NoReturn:
        log.warning("dream worker %s: job over the %g s limit; killing it", worker.pid, limit)
        worker.kill()
        self._replace(worker)
        raise DreamTimedOut.after(limit)

    def _bind_to_running_loop(self) -> None:
        """Start the lock, start task and clean-ups afresh when used from a new event loop.

        The worker itself is loop-agnostic; these asyncio objects are not, and a
        previous loop that has finished left nothing pending in them.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop = loop
            self._lock = asyncio.Lock()
            self._starting = None
            self._cleanups = set()

    async def _ready(self) -> _Worker:
        """The live worker, starting one (or waiting for the one starting) if needed."""
        self._bind_to_running_loop()
        if self._closed:
            raise DreamFailed("The dream engine was shut down; try again.")
        if self._worker is not None:
            if self._worker.process.is_alive():
                return self._worker
            log.error("dream worker %s died while idle", self._worker.pid)
            self._replace(self._worker)
        if self._starting is None:
            self._starting = asyncio.create_task(self._spawn())
            self._starting.add_done_callback(_log_start_failure)
        starting = self._starting
        try:
            # Shielded: a caller that gives up does not abort a start others will need.
            worker = await asyncio.shield(starting)
        except Exception:
            if self._starting is starting:
                self._starting = None  # the next caller tries again
            raise
        if self._starting is starting:
            self._starting, self._worker = None, worker
        return worker

    def _replace(self, worker: _Worker) -> None:
        """Forget a dead (or doomed) worker and start its replacement in the background."""
        if self._worker is worker:
            self._worker = None
        worker.kill()
        # Reaped in the background (the job's caller need not wait); close() waits for it.
        cleanup = asyncio.ensure_future(worker.dispose())
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)
        if not self._closed and self._starting is None:
            self.restarts += 1
            self._starting = asyncio.create_task(self._spawn())
            self._starting.add_done_callback(_log_start_failure)

    async def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(child_end, self._cancel, self._config),
            name="dream-worker",
            daemon=True,  # never outlive the bot
        )
        with _main_module_hidden():
            process.start()
        child_end.close()  # the worker holds the only write end now: its death means EOF here
        worker = _Worker(process, parent_end)
        log.info("dream worker %s starting (%s)", worker.pid, self.model_name)
        try:
            message = await worker.receive(None)
        except BaseException:
            worker.kill()
            await worker.dispose()
            raise
        if isinstance(message, _Ready):
            log.info("dream worker %s ready", worker.pid)
            return worker
        await worker.dispose()
        if isinstance(message, _StartFailed):
            raise ModelUnavailableError(message.message)
        raise ModelUnavailableError(
            f"The dream engine stopped while starting (exit code {worker.process.exitcode})."
        )


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Keep spawn from re-running the parent's main script in the worker.

    Spawn imports the parent's `__main__` file in the child (so functions defined
    there can be unpickled). The worker needs nothing from it, and `bot.py`
    imports discord; a blank stand-in during `start()` keeps the worker to the
    engine's imports.
    """
    real = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = real


def _encode_job(request: DreamRequest) -> _Job:
    image = request.image if request.image.mode == "RGB" else request.image.convert("RGB")
    return _Job(
        _to_png(image),
        request.params.to_dict(),
        request.max_side,
        request.frame_every,
        [(variant.caption, variant.params.to_dict()) for variant in request.variants],
        request.title,
    )


def _decode_job(job: _Job) -> DreamRequest:
    from dream_engine.study.sweeps import Variant

    return DreamRequest(
        _from_png(job.png),
        DreamParams(**job.params),
        job.max_side,
        job.frame_every,
        tuple(Variant(caption, DreamParams(**params)) for caption, params in job.variants),
        job.title,
    )


def _decode_result(done: _Done, params: DreamParams) -> DreamResult:
    from dream_engine.core.results import DreamResult

    return DreamResult(
        image=_from_png(done.image),
        octaves=[_from_png(octave) for octave in done.octaves],
        losses=done.losses,
        params=params,
        seconds=done.seconds,
        notes=done.notes,
        frames=[_from_png(frame) for frame in done.frames],
        panels=[(caption, _from_png(panel)) for caption, panel in done.panels],
    )


def _raise(failure: _Failed) -> NoReturn:
    """Re-raise a worker's failure as the error the engine would have raised in-process."""
    if failure.kind == "cancelled":
        raise DreamCancelled()
    if failure.kind == "user":
        raise _user_error_class(failure.error_type)(failure.message)
    if failure.kind == "crashed":
        raise WorkerCrashed(failure.message)
    if failure.kind in ("oom", "failed"):
        raise DreamFailed(failure.message)
    log.error("dream failed in the worker: %s", failure.details or failure.message)
    raise DreamFailed(
        f"The dream engine failed ({failure.error_type}). Nothing was lost on your side; "
        "try again, maybe with a smaller image."
    )


def _failure_of(error: BaseException) -> _Failed:
    """What an executor raised, as data `_raise` turns back into the same error."""
    if isinstance(error, DreamCancelled):
        return _Failed("cancelled", "DreamCancelled", "")
    if isinstance(error, UserError):
        return _Failed("user", type(error).__name__, str(error))
    if isinstance(error, WorkerCrashed):
        return _Failed("crashed", type(error).__name__, str(error))
    if isinstance(error, DreamFailed):
        return _Failed("failed", type(error).__name__, str(error))
    details = "".join(traceback.format_exception(error))
    return _Failed("bug", type(error).__name__, str(error), details)


def _user_error_class(name: str) -> type[UserError]:
    """The `UserError` subclass called `name` (errors or images), else `UserError` itself."""
    from dream_engine import errors
    from dream_engine.media import images

    for module in (errors, images):
        candidate = getattr(module, name, None)
        if isinstance(candidate, type) and issubclass(candidate, UserError):
            return candidate
    return UserError


def _log_start_failure(task: asyncio.Task[_Worker]) -> None:
    """Retrieve a background start's failure (awaiters see it too) so it is logged once."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("dream worker failed to start: %s", error)


__all__ = [
    "DreamTimedOut",
    "OomRetry",
    "ProcessExecutor",
    "WorkerCrashed",
    "plan_oom_retry",
    "run_job",
    "worker_main",
]
