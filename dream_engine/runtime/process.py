"""`ProcessExecutor`: the executor seam with the engine in a supervised worker process.

A segfault, an out-of-memory kill or a runaway job in TensorFlow should cost one
dream, not the bot. So the engine lives in a child process started with the
*spawn* method (forking a process that has TensorFlow and threads is unsafe), and
the bot process only supervises it:

- one request at a time goes down a `multiprocessing` pipe in the wire format
  (`wire.py`: image as PNG bytes, params as a dict); progress events, then a
  result or a typed failure, come back;
- a reader thread drains the pipe into an inbox the event loop awaits without
  blocking, and notices the worker's death (EOF or its process sentinel);
- cancel crosses over as a shared `multiprocessing` Event the engine polls;
- the retry policy (`retry.py`): a worker that dies mid-job is restarted and the
  job tried once more; twice is `WorkerCrashed`; out of memory *inside* the
  worker is retried there once, smaller (`wire.run_job`). A job over
  `job_timeout` is killed: `DreamTimedOut`.

The worker's side is the top-level `worker_main` below (spawn imports this module
in the child, so it must be importable); the worker imports the engine, never
discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, NoReturn

from dream_engine.errors import DreamCancelled, ModelUnavailableError, UserError
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamRequest,
    DreamTimedOut,
    EngineConfig,
    WorkerCrashed,
    WorkerStatus,
    local_host,
    precision_text,
)
from dream_engine.runtime.retry import CRASHED_TWICE, retry_after_crash
from dream_engine.runtime.wire import (
    Done,
    Failed,
    Job,
    PipeClosed,
    ProgressEvent,
    Ready,
    StartFailed,
    decode_progress,
    decode_result,
    encode_job,
    main_module_hidden,
    raise_failure,
    run_job,
)

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess
    from multiprocessing.synchronize import Event as ProcessEvent

    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a waiting job looks at the caller's cancel flag and the clock
STOP_GRACE_SECONDS = 5.0  # close() waits this long for a clean exit before killing


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
        conn.send(StartFailed(message))
        return
    with contextlib.suppress(EOFError, OSError):  # the parent went away: nothing left to do
        conn.send(Ready(precision_text(engine)))
        while (job := conn.recv()) is not None:
            conn.send(run_job(engine, job, cancel.is_set, conn.send))


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
        self.precision = ""  # told by its Ready message
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._reader = threading.Thread(
            target=self._read, name=f"dream-worker-{self.pid}-reader", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        """Reader thread: pipe -> inbox until the worker is gone, then one `PipeClosed`."""
        while True:
            message: object
            try:
                ready = wait([self.conn, self.process.sentinel])
                # Read everything it wrote before concluding that it has exited.
                message = self.conn.recv() if self.conn in ready else PipeClosed()
            except (EOFError, OSError, ValueError):
                message = PipeClosed()
            self._inbox.put(message)
            if isinstance(message, PipeClosed):
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

    async def send(self, job: Job | None) -> bool:
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
        precision = worker.precision if worker is not None else ""
        return [
            WorkerStatus(
                name, local_host(), "local", self._jobs_done, self._in_hand, state, precision
            )
        ]

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
        job = await asyncio.to_thread(encode_job, request)
        async with self._lock:
            self._in_hand = request.label or "a dream"
            try:
                return await self._attempts(request, job, on_progress, cancel)
            finally:
                self._in_hand = None

    async def _attempts(
        self,
        request: DreamRequest,
        job: Job,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult:
        """Attempts until one ends (`retry.retry_after_crash`: each after a death on a
        fresh worker, up to `CRASH_ATTEMPTS`)."""
        deaths = 0  # workers that died with this job in hand
        while True:
            worker = await self._ready_unless_cancelled(cancel)
            try:
                outcome = await self._attempt(worker, job, on_progress, cancel)
            except _WorkerDied as death:
                deaths += 1
                will_retry = retry_after_crash(deaths) and not self._closed
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
            if isinstance(outcome, Failed):
                raise_failure(outcome)
            return await asyncio.to_thread(decode_result, outcome, request.params)

    async def _attempt(
        self,
        worker: _Worker,
        job: Job,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> Done | Failed:
        """Send the job and wait for its outcome, relaying progress, cancel and the clock."""

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
            if isinstance(message, ProgressEvent):
                try:
                    on_progress(decode_progress(message.fields))
                except Exception:
                    log.exception("progress callback failed")
                continue
            if isinstance(message, PipeClosed):
                raise _WorkerDied(await worker.exit_code())
            assert isinstance(message, Done | Failed), f"unexpected message {message!r}"
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
        with main_module_hidden():
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
        if isinstance(message, Ready):
            worker.precision = message.precision
            log.info("dream worker %s ready, %s", worker.pid, message.precision)
            return worker
        await worker.dispose()
        if isinstance(message, StartFailed):
            raise ModelUnavailableError(message.message)
        raise ModelUnavailableError(
            f"The dream engine stopped while starting (exit code {worker.process.exitcode})."
        )


def _log_start_failure(task: asyncio.Task[_Worker]) -> None:
    """Retrieve a background start's failure (awaiters see it too) so it is logged once."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("dream worker failed to start: %s", error)


__all__ = ["ProcessExecutor", "worker_main"]
