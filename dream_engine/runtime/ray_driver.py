"""`driver_main`: the Ray driver process, a `RayExecutor` serving the bot over a pipe.

Ray ties a driver to the cluster it joined: once the head is gone, Ray ends the
driver's process (about a minute later) and a new head cannot be joined from it.
So the driver lives in a process of its own, started (and restarted) by
`ray_supervisor.py` in the bot, and exits when it loses the cluster; the bot keeps
its queue and starts another. Its own module, apart from the executor it hosts
(`ray_cluster.py`): the pipe's protocol and the cluster's health are this process's
job, not the executor's, which the tests also use in-process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import ray

from dream_engine.runtime.executor import EngineConfig, ExecutorUnavailable, WorkerStatus
from dream_engine.runtime.ray_cluster import RayExecutor
from dream_engine.runtime.wire import Job, failure_of

if TYPE_CHECKING:
    from dream_engine.core.results import Progress

log = logging.getLogger(__name__)

HEALTH_SECONDS = 5.0  # how often the driver checks the cluster (or every poll, if sooner)
HEALTH_TIMEOUT = 10.0  # a check that takes longer failed
LOST_AFTER = 3  # failed checks in a row: the cluster is gone, and the driver exits


def driver_main(conn: Connection, config: EngineConfig, options: dict[str, Any]) -> None:
    """The driver process's body: a `RayExecutor` serving the bot process over `conn` until
    the bot closes it or the cluster is lost (see the module). `options` are `RayExecutor`'s.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the bot decides when the driver stops
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s ray-driver[%(process)d] %(levelname)s %(message)s"
    )
    executor = RayExecutor(config, **options)
    health_seconds = min(HEALTH_SECONDS, executor.poll_seconds)
    asyncio.run(_Driver(conn, executor, health_seconds).serve())


class _Driver:
    """Messages from the bot in (submit, cancel, max_workers, close); status, progress and
    outcomes out. Everything is sent from the event loop, so what one job reports stays
    in order."""

    def __init__(self, conn: Connection, executor: RayExecutor, health_seconds: float) -> None:
        self._conn = conn
        self._executor = executor
        self._health_seconds = health_seconds
        self._cancels: dict[str, threading.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reported: tuple[int, list[WorkerStatus]] | None = None

    async def serve(self) -> None:
        try:
            await self._executor.start()
        except ExecutorUnavailable as error:
            self._conn.send(("unavailable", str(error)))
            await self._executor.close()
            return
        self._executor.on_capacity_change = self._report
        self._report()
        inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def read() -> None:  # a thread: the pipe into the loop; the bot gone means close
            while True:
                try:
                    message = self._conn.recv()
                except (EOFError, OSError):
                    message = ("close",)
                loop.call_soon_threadsafe(inbox.put_nowait, message)
                if message[0] == "close":
                    return

        threading.Thread(target=read, name="ray-driver-inbox", daemon=True).start()
        health = asyncio.create_task(self._watch_health())
        while (message := await inbox.get())[0] != "close":
            if message[0] == "submit":
                _, job_id, job, label = message
                self._cancels[job_id] = threading.Event()  # before any cancel for it is read
                task = asyncio.create_task(self._run(job_id, job, label))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif message[0] == "cancel" and (event := self._cancels.get(message[1])):
                event.set()
            elif message[0] == "max_workers":
                self._executor.max_workers = message[1]
                await self._executor.fit_pool()
        health.cancel()
        await self._executor.close()

    async def _run(self, job_id: str, job: Job, label: str) -> None:
        def progress(update: Progress) -> None:
            self._report()  # the first one: the job is in a worker's hand
            self._conn.send(("progress", job_id, dataclasses.asdict(update)))

        try:
            outcome = await self._executor.run(job, label, progress, self._cancels[job_id])
        except ConnectionError:  # Ray Client lost the cluster: not the job's fault
            log.error("lost the Ray cluster during job %s; this driver exits", label)
            os._exit(3)  # the bot keeps the job and hands it to the next driver
        except Exception as error:
            outcome = failure_of(error)
        finally:
            del self._cancels[job_id]
        self._report()  # first, so the bot sees the job done when it gets the outcome
        self._conn.send(("outcome", job_id, outcome))

    def _report(self) -> None:
        """The workers, to the bot, when they changed (`/dreamadmin status` reads them)."""
        status = (self._executor.capacity, self._executor.workers())
        if status != self._reported:
            self._reported = status
            self._conn.send(("status", *status))

    async def _watch_health(self) -> None:
        """Exit once the cluster stops answering (its head is gone): this process cannot
        join another, and the bot starts a new driver that can."""
        failures = 0
        while True:
            await asyncio.sleep(self._health_seconds)
            self._report()  # a job taken or a worker restarting shows in the next status
            try:
                await asyncio.wait_for(asyncio.to_thread(ray.cluster_resources), HEALTH_TIMEOUT)
                failures = 0
            except Exception as error:
                failures += 1
                log.warning("the Ray cluster did not answer (%s)", type(error).__name__)
                if failures >= LOST_AFTER:
                    log.error("lost the Ray cluster; this driver exits for the bot to start anew")
                    os._exit(3)  # Ray's threads may be stuck on the lost cluster


__all__ = ["driver_main"]
