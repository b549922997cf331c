"""`SupervisedRayExecutor`: `DREAM_EXECUTOR=ray`, with the Ray driver in a child process.

Ray binds a driver to the cluster it joined: when the cluster's head goes away,
Ray ends the driver's process about a minute later, and no new head can be
joined from that process (its state belongs to the old cluster; tried: a second
`ray.init` in it crashed on a late reply). The bot must outlive that, keep its
fair queue, tell the waiting members, and carry on when the cluster is back.

So the `RayExecutor` runs in a driver process (`ray_driver.driver_main`) that
this class supervises, the way `process.py` supervises the engine:

- jobs go down a pipe encoded (`wire.Job`); progress, the outcome (`wire.Done`
  or a typed `wire.Failed`) and the workers' status come back;
- the driver exits when it loses the cluster (it checks every few seconds);
  then capacity drops to 0 (the dream cog tells the waiting members), jobs in
  hand wait, and every `reconnect_seconds` a new driver tries to join. Once one
  is up, capacity returns and the jobs in hand are handed to it again: a lost
  cluster is not the job's fault, so it does not count as a crash (a job that
  loses three drivers is given up);
- cancel crosses as a message naming the job.

The bot process never imports Ray: only the driver process does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from dream_engine.errors import DreamCancelled
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamRequest,
    EngineConfig,
    ExecutorUnavailable,
    WorkerStatus,
)
from dream_engine.runtime.wire import (
    Done,
    Failed,
    decode_progress,
    decode_result,
    encode_job,
    main_module_hidden,
    raise_failure,
)

if TYPE_CHECKING:
    from multiprocessing.context import SpawnProcess

    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # how often a job waiting on the driver looks at its cancel flag
STOP_GRACE_SECONDS = 15.0  # close() lets the driver retire its workers this long
MAX_LOSSES = 3  # a job whose driver was lost this many times is given up


def _driver_entry(conn: Connection, config: EngineConfig, options: dict[str, Any]) -> None:
    """The driver process's start (here, so that starting it imports no Ray in the bot)."""
    from dream_engine.runtime.ray_driver import driver_main

    driver_main(conn, config, options)


class _DriverLost(Exception):
    """The driver process ended with this job in hand."""


@dataclass
class _InHand:
    """A job sent to the driver, waiting for its outcome."""

    driver: _DriverProcess
    on_progress: Callable[[Progress], None]
    outcome: asyncio.Future[Done | Failed]


@dataclass
class _DriverProcess:
    """One driver process: a sender thread (ordered, never blocking the loop) and a reader
    thread that hands each message, then the process's end, to the event loop."""

    process: SpawnProcess
    conn: Connection
    outbox: queue.SimpleQueue[tuple[Any, ...] | None] = field(default_factory=queue.SimpleQueue)
    up: bool = False  # it joined the cluster and reported its workers

    def run_threads(
        self, on_message: Callable[[tuple[Any, ...]], None], on_exit: Callable[[], None]
    ) -> None:
        loop = asyncio.get_running_loop()

        def read() -> None:
            while True:
                try:
                    ready = wait([self.conn, self.process.sentinel])
                    # Read all it wrote before concluding that it has exited.
                    message = self.conn.recv() if self.conn in ready else None
                except (EOFError, OSError, ValueError):
                    message = None
                if message is None:
                    self.process.join(5.0)  # its exit code, for the log
                    loop.call_soon_threadsafe(on_exit)
                    return
                loop.call_soon_threadsafe(on_message, message)

        def send() -> None:
            while (message := self.outbox.get()) is not None:
                try:
                    self.conn.send(message)
                except (OSError, ValueError):
                    return  # gone: the reader reports it

        threading.Thread(target=read, name="ray-driver-reader", daemon=True).start()
        threading.Thread(target=send, name="ray-driver-sender", daemon=True).start()

    def send(self, *message: Any) -> None:
        self.outbox.put(message)

    async def stop(self, grace: float) -> None:
        """Ask it to close (it retires its workers), then kill it if it takes too long."""
        self.send("close")
        await asyncio.to_thread(self.process.join, grace)
        if self.process.is_alive():
            log.warning("the Ray driver did not stop within %g s; killing it", grace)
            self.process.kill()
            await asyncio.to_thread(self.process.join)
        self.outbox.put(None)


class SupervisedRayExecutor:
    """Dreams on a Ray cluster through a driver process it restarts when the cluster is lost."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        address: str | None = None,
        max_workers: int | None = None,
        worker_cpus: int = 4,
        poll_seconds: float = 30.0,
        connect_timeout: float = 30.0,
        job_timeout: float | None = None,
        recycle_after: int | None = None,
        reconnect_seconds: float = 10.0,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = config.model
        self.capacity = 0
        self.on_capacity_change: Callable[[], None] | None = None
        self.reconnect_seconds = reconnect_seconds
        self.drivers_started = 0
        self._config = config
        self._address = address
        self._options: dict[str, Any] = {
            "address": address,
            "max_workers": max_workers,
            "worker_cpus": worker_cpus,
            "poll_seconds": poll_seconds,
            "connect_timeout": connect_timeout,
            "job_timeout": job_timeout,
            "recycle_after": recycle_after,
            "init_options": init_options,
        }
        self._context = multiprocessing.get_context("spawn")
        self._driver: _DriverProcess | None = None
        self._workers: list[WorkerStatus] = []
        self._in_hand: dict[str, _InHand] = {}
        self._first_word: asyncio.Future[str | None] | None = None  # a starting driver's
        self._up: asyncio.Event | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    # -- the seam ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the driver and wait until it has joined the cluster and has workers."""
        self._up = asyncio.Event()
        why_not = await self._launch()
        if why_not is not None:
            raise ExecutorUnavailable(why_not)

    @property
    def max_workers(self) -> int | None:
        return self._options["max_workers"]

    @max_workers.setter
    def max_workers(self, value: int | None) -> None:
        """A new cap, applied by the driver at once (and by every later driver)."""
        self._options["max_workers"] = value
        if self._driver is not None:
            self._driver.send("max_workers", value)

    def workers(self) -> list[WorkerStatus]:
        if not self._closed and (self._up is None or not self._up.is_set()):
            where = self._address or "local Ray"
            return [WorkerStatus("Ray cluster", where, "-", 0, None, "unreachable")]
        return list(self._workers)

    async def submit(
        self,
        request: DreamRequest,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult:
        job = await asyncio.to_thread(encode_job, request)
        label = request.label or "a dream"
        losses = 0
        while True:
            driver = await self._driver_up(cancel)
            job_id = uuid.uuid4().hex
            in_hand = _InHand(driver, on_progress, asyncio.get_running_loop().create_future())
            self._in_hand[job_id] = in_hand
            try:
                driver.send("submit", job_id, job, label)
                outcome = await self._outcome(in_hand, job_id, cancel)
            except _DriverLost:
                losses += 1
                if self._closed:
                    raise DreamFailed("The dream engine was shut down; try again.") from None
                if losses >= MAX_LOSSES:
                    raise DreamFailed(
                        "The dream cluster was lost during this dream three times, so it was "
                        "not tried again. Try again later."
                    ) from None
                log.warning("job %s lost its Ray driver; it runs again once one is back", label)
                continue
            finally:
                del self._in_hand[job_id]
            if isinstance(outcome, Failed):
                raise_failure(outcome)
            return await asyncio.to_thread(decode_result, outcome, request.params)

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.stop(STOP_GRACE_SECONDS)
        for in_hand in self._in_hand.values():
            if not in_hand.outcome.done():
                in_hand.outcome.set_exception(_DriverLost())
        self._set_capacity(0, [])

    # -- the driver process -----------------------------------------------------------

    async def _launch(self) -> str | None:
        """Start a driver; None once it is up, else why it could not join (it has exited)."""
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_driver_entry,
            args=(child_end, self._config, dict(self._options)),
            name="ray-driver",
            daemon=True,  # never outlive the bot
        )
        with main_module_hidden():
            process.start()
        child_end.close()  # its death means EOF here
        self.drivers_started += 1
        driver = _DriverProcess(process, parent_end)
        self._first_word = asyncio.get_running_loop().create_future()
        driver.run_threads(
            lambda message: self._on_message(driver, message), lambda: self._on_exit(driver)
        )
        self._driver = driver
        try:
            why_not = await self._first_word
        except BaseException:  # cancelled (closing): do not leave it running
            self._driver = None
            process.kill()
            raise
        if why_not is not None:
            if self._driver is driver:
                self._driver = None
            await asyncio.to_thread(process.join)
            return why_not
        return None

    def _on_message(self, driver: _DriverProcess, message: tuple[Any, ...]) -> None:
        if driver is not self._driver:
            return  # a driver being replaced
        kind = message[0]
        if kind == "status":
            self._set_capacity(message[1], message[2])
            if not driver.up:  # its first status: it has joined
                driver.up = True
                assert self._up is not None
                self._up.set()
                if self._first_word is not None and not self._first_word.done():
                    self._first_word.set_result(None)
        elif kind == "unavailable":
            if self._first_word is not None and not self._first_word.done():
                self._first_word.set_result(message[1])
        elif kind == "progress":
            in_hand = self._in_hand.get(message[1])
            if in_hand is not None:

                try:
                    in_hand.on_progress(decode_progress(message[2]))
                except Exception:
                    log.exception("progress callback failed")
        elif kind == "outcome":
            in_hand = self._in_hand.get(message[1])
            if in_hand is not None and not in_hand.outcome.done():
                in_hand.outcome.set_result(message[2])

    def _on_exit(self, driver: _DriverProcess) -> None:
        """The driver process ended: jobs in hand wait for the next one, which is started."""
        driver.outbox.put(None)
        if driver is not self._driver:
            return
        self._driver = None
        exit_code = driver.process.exitcode
        if not driver.up:  # it never joined: `_launch` says why
            if self._first_word is not None and not self._first_word.done():
                self._first_word.set_result(
                    f"the Ray driver process ended (exit code {exit_code}) before it joined"
                )
            return
        if self._up is not None:
            self._up.clear()
        for in_hand in self._in_hand.values():
            if in_hand.driver is driver and not in_hand.outcome.done():
                in_hand.outcome.set_exception(_DriverLost())
        self._set_capacity(0, [])
        if self._closed:
            return
        log.error(
            "lost the Ray cluster (driver exit code %s); trying again every %g s, jobs wait",
            exit_code, self.reconnect_seconds,
        )  # fmt: skip
        self._reconnecting = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.reconnect_seconds)
            try:
                why_not = await self._launch()
            except Exception as error:  # could not even start a process: try again later
                why_not = f"the Ray driver process could not start ({error!r})"
            if why_not is None:
                log.info("back on the Ray cluster: %d dream worker(s)", self.capacity)
                return
            log.warning("the Ray cluster is still unreachable: %s", why_not)

    def _set_capacity(self, capacity: int, workers: list[WorkerStatus]) -> None:
        self._workers = workers
        if capacity != self.capacity:
            self.capacity = capacity
            if self.on_capacity_change is not None and not self._closed:
                self.on_capacity_change()

    # -- one job ----------------------------------------------------------------------

    async def _driver_up(self, cancel: threading.Event) -> _DriverProcess:
        """The running driver; waits while there is none (the cluster is being rejoined)."""
        assert self._up is not None, "start() the executor first"
        while True:
            if self._closed:
                raise DreamFailed("The dream engine was shut down; try again.")
            if cancel.is_set():
                raise DreamCancelled()
            if self._driver is not None and self._up.is_set():
                return self._driver
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), POLL_SECONDS)

    async def _outcome(
        self, in_hand: _InHand, job_id: str, cancel: threading.Event
    ) -> Done | Failed:
        cancel_sent = False
        try:
            while True:
                if cancel.is_set() and not cancel_sent:
                    cancel_sent = True
                    in_hand.driver.send("cancel", job_id)
                done, _ = await asyncio.wait({in_hand.outcome}, timeout=POLL_SECONDS)
                if done:
                    return in_hand.outcome.result()
        except asyncio.CancelledError:
            in_hand.driver.send("cancel", job_id)  # the caller went away: stop the engine
            raise


__all__ = ["SupervisedRayExecutor"]
