"""`RayExecutor`: the executor seam on a Ray cluster, one `DreamWorker` actor per GPU.

The bot keeps the fair queue; this executor only runs what it is handed, one
job per worker at a time, and tells the bot (`on_capacity_change`) when the
number of ready workers changes, so the bot hands out exactly that many jobs.

This is the driver's side: it places the actors and supervises them. What runs
inside one (the engine, progress, cancel) is `ray_worker.py`; the process this
executor lives in for the bot is `ray_driver.py`.

- Each job goes to a free `DreamWorker` (`ray_worker.py`): `begin`, then a
  long poll of `events` (`WAIT` s a call) relayed to `on_progress`, and one
  `cancel` call when the caller cancels. A job over `job_timeout` restarts
  its worker.
- A worker that dies mid-job (node lost, out of memory, `ray.kill`): the job is
  tried once more on another (or the restarted) worker; a job that kills two is
  `WorkerCrashed`, as in `process.py` (one policy: `retry.py`). Ray restarts the actor
  (`max_restarts=-1`); it counts again once its engine is built.
- The pool follows the cluster: every `poll_seconds` the executor compares the
  cluster's GPUs (or CPUs / `worker_cpus`), capped by `max_workers`, with its
  actors, starts the missing ones and retires the surplus (idle ones first).

Only the Ray modules of `runtime` (`ray_cluster`, `ray_worker`, `ray_driver`) import
`ray` (an optional extra: `pip install .[ray]`); the bot process loads none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

try:
    import ray
    from ray.exceptions import ActorUnavailableError, RayActorError
except ImportError as error:  # pragma: no cover - the bot checks this first
    raise ImportError(
        "DREAM_EXECUTOR=ray needs Ray: pip install '.[ray]' (or pip install ray)."
    ) from error

from dream_engine.errors import DreamCancelled
from dream_engine.runtime.executor import (
    DreamFailed,
    DreamRequest,
    DreamTimedOut,
    EngineConfig,
    ExecutorUnavailable,
    WorkerCrashed,
    WorkerStatus,
)
from dream_engine.runtime.ray_worker import DreamWorker
from dream_engine.runtime.retry import CRASHED_TWICE, retry_after_crash
from dream_engine.runtime.wire import (
    Done,
    Failed,
    Job,
    ProgressEvent,
    decode_progress,
    decode_result,
    encode_job,
    raise_failure,
)

if TYPE_CHECKING:
    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)

WAIT = 1.0  # seconds one `events` call waits for the job's next report
POLL_SECONDS = 0.1  # how often a waiting job looks at its cancel flag
START_SECONDS = 600.0  # start() waits this long for the first workers' engines
PING_SECONDS = 20.0  # an idle worker that does not answer within this is counted as lost


@dataclass
class _Slot:
    """One actor, as the executor sees it."""

    name: str
    actor: Any  # ray.actor.ActorHandle
    where: dict[str, Any] = field(default_factory=dict)
    state: str = "starting"  # starting, ready, restarting, leaving
    job: str | None = None  # the job in hand
    jobs_done: int = 0
    fresh_jobs: int = 0  # jobs since its engine was (re)built, for recycling
    watcher: asyncio.Future[None] | None = None  # waiting for it to (re)start

    @property
    def free(self) -> bool:
        return self.state == "ready" and self.job is None


class RayExecutor:
    """Dreams on a Ray cluster; capacity = ready `DreamWorker` actors, and follows the cluster."""

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
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self.model_name = config.model
        # As in `process.py`: a job over `job_timeout` seconds (per attempt) is stopped by
        # restarting its worker; a worker is restarted fresh after `recycle_after` jobs (the
        # engine grows a little with every new image size; see README, Benchmark).
        self.job_timeout = job_timeout
        self.recycle_after = recycle_after
        self.capacity = 0
        self.on_capacity_change: Callable[[], None] | None = None
        self.max_workers = max_workers  # None: one per GPU (or per `worker_cpus` CPUs)
        self.worker_cpus = worker_cpus
        self.poll_seconds = poll_seconds
        self.restarts = 0  # actors that died and were restarted by Ray
        self._config = config
        self._address = address
        self._connect_timeout = connect_timeout
        self._init_options = init_options or {}
        self._slots: list[_Slot] = []
        self._names = itertools.count(1)
        self._started_ray = False
        self._watch: asyncio.Task[None] | None = None
        self._closed = False
        self._start_error: str | None = None  # why the last worker that died starting did

    # -- the seam ---------------------------------------------------------------------

    async def start(self) -> None:
        """Join (or start) the cluster and wait for the first workers' engines."""
        await self._connect()
        await self.fit_pool()
        starting = [slot.watcher for slot in self._slots if slot.watcher is not None]
        if starting:
            _, pending = await asyncio.wait(starting, timeout=START_SECONDS)
            if pending:  # no room after all (other work on the cluster?): go on without them
                log.warning(
                    "%d dream worker(s) not ready after %g s; starting with %d",
                    len(pending), START_SECONDS, self.capacity,
                )  # fmt: skip
        if self.capacity == 0:
            why = self._start_error or (
                f"each needs 1 GPU or DREAM_WORKER_CPUS={self.worker_cpus} CPUs"
            )
            where = self._resources_text()
            raise ExecutorUnavailable(
                f"no dream worker could start on the Ray cluster ({where}): {why.rstrip('.')}."
            )
        self._ensure_watch()

    async def submit(
        self,
        request: DreamRequest,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> DreamResult:
        job = await asyncio.to_thread(encode_job, request)
        outcome = await self.run(job, request.label or "a dream", on_progress, cancel)
        if isinstance(outcome, Failed):
            raise_failure(outcome)
        return await asyncio.to_thread(decode_result, outcome, request.params)

    async def run(
        self,
        job: Job,
        label: str,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> Done | Failed:
        """`submit` on an encoded job: the worker's outcome as it sent it (the driver
        process hands it on to the bot undecoded). Raises what `submit` raises."""
        self._ensure_watch()
        deaths = 0  # workers that died with this job in hand
        unstarted = 0  # workers found dead when handed this job
        while True:
            slot = await self._free_slot(cancel)
            slot.job = label
            log.info(
                "job %s on %s (%s, %s)",
                label, slot.name, slot.where.get("host"), slot.where.get("device"),
            )  # fmt: skip
            try:
                outcome = await self._attempt(slot, job, on_progress, cancel)
            except _DeadBeforeStart:  # died idle, unnoticed: not this job's fault (3 at most)
                log.error("dream worker %s was gone before its job started", slot.name)
                self._lost(slot)
                unstarted += 1
                if unstarted < 3:
                    continue
                raise DreamFailed(
                    "No dream worker could take this dream just now; try again in a minute."
                ) from None
            except ray.exceptions.RayTaskError as error:  # not a death: the call itself failed
                log.error("dream worker %s refused a job: %s", slot.name, error)
                raise DreamFailed(
                    "The dream engine failed (RayTaskError). Nothing was lost on your side; "
                    "try again."
                ) from None
            except RayActorError as death:
                deaths += 1
                will_retry = retry_after_crash(deaths) and not self._closed
                log.error(
                    "dream worker %s died during a job (%s); %s",
                    slot.name,
                    type(death).__name__,
                    "retrying it on another worker" if will_retry else "not retrying",
                )
                self._lost(slot)
                if self._closed:
                    raise DreamFailed("The dream engine was shut down; try again.") from None
                if will_retry:
                    continue
                raise WorkerCrashed(CRASHED_TWICE) from None
            finally:
                slot.job = None
            slot.jobs_done += 1
            slot.fresh_jobs += 1
            if slot.state == "leaving":
                self._retire(slot)
            elif self.recycle_after and slot.fresh_jobs >= self.recycle_after:
                self._restart(slot, f"recycled after {slot.fresh_jobs} jobs")
            return outcome

    def workers(self) -> list[WorkerStatus]:
        return [
            WorkerStatus(
                slot.name,
                f"{slot.where.get('host', '?')} (node {slot.where.get('node', '?')})",
                slot.where.get("device", "?"),
                slot.jobs_done,
                slot.job,
                slot.state,
                slot.where.get("precision", ""),
            )
            for slot in self._slots
        ]

    async def close(self) -> None:
        self._closed = True
        if self._watch is not None:
            self._watch.cancel()
        for slot in self._slots:
            if slot.watcher is not None:
                slot.watcher.cancel()
            with contextlib.suppress(Exception):
                ray.kill(slot.actor, no_restart=True)
        self._slots.clear()
        self._set_capacity()
        if self._started_ray:
            await asyncio.to_thread(ray.shutdown)

    # -- the pool ---------------------------------------------------------------------

    def wanted(self) -> int:
        """How many workers the cluster has room for now, capped by `max_workers`."""
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        room = gpus if gpus else int(resources.get("CPU", 0)) // self.worker_cpus
        return room if self.max_workers is None else min(room, self.max_workers)

    async def fit_pool(self) -> None:
        """Start workers the cluster has room for; retire the surplus (idle first)."""
        wanted = await asyncio.to_thread(self.wanted)
        staying = [slot for slot in self._slots if slot.state != "leaving"]
        for _ in range(wanted - len(staying)):
            self._add_worker()
        surplus = len(staying) - wanted
        if surplus > 0:
            order = {"starting": 0, "restarting": 0, "ready": 1}
            for slot in sorted(staying, key=lambda s: (order[s.state], s.job is not None))[
                :surplus
            ]:
                if slot.job is None:
                    self._retire(slot)
                else:
                    slot.state = "leaving"  # retired after its job
                    log.info("dream worker %s leaves after its job", slot.name)
            self._set_capacity()

    def _add_worker(self) -> None:
        resources = (
            {"num_gpus": 1}
            if ray.cluster_resources().get("GPU", 0)
            else {"num_cpus": self.worker_cpus}
        )
        actor = (
            ray.remote(DreamWorker)
            .options(max_concurrency=2, max_restarts=-1, **resources)  # type: ignore[arg-type]
            .remote(self._config)
        )
        slot = _Slot(f"dream-worker-{next(self._names)}", actor)
        self._slots.append(slot)
        log.info("dream worker %s starting (%s)", slot.name, resources)
        self._await_ready(slot)

    def _await_ready(self, slot: _Slot, old_pid: int | None = None) -> None:
        slot.watcher = asyncio.ensure_future(self._until_ready(slot, old_pid))

    async def _until_ready(self, slot: _Slot, old_pid: int | None = None) -> None:
        """Wait for the actor's engine (or its restart: a process other than `old_pid`,
        which may still answer while it is being killed); then it takes jobs."""
        loop = asyncio.get_running_loop()
        killing_until = loop.time() + 30.0 if old_pid is not None else 0.0
        while slot in self._slots:
            try:
                where = await slot.actor.info.remote()
            except ActorUnavailableError:
                await asyncio.sleep(1.0)  # restarting or unreachable for now
                continue
            except RayActorError as error:
                if loop.time() < killing_until:  # a call that met the kill: it restarts
                    await asyncio.sleep(0.5)
                    continue
                log.error("dream worker %s is gone for good: %s", slot.name, error)
                lines = [line for line in str(error).splitlines() if line.strip()]
                self._start_error = lines[-1][:200] if lines else type(error).__name__
                self._slots.remove(slot)
                self._set_capacity()
                return
            if old_pid is not None and where["pid"] == old_pid:
                await asyncio.sleep(0.2)  # the old process, not yet killed
                continue
            slot.where = where
            slot.fresh_jobs = 0
            if slot.state != "leaving":
                slot.state = "ready"
            log.info(
                "dream worker %s ready on %s (node %s), %s",
                slot.name, slot.where["host"], slot.where["node"], slot.where["device"],
            )  # fmt: skip
            self._set_capacity()
            return

    def _lost(self, slot: _Slot, old_pid: int | None = None) -> None:
        """A worker died: Ray restarts it; it counts again once its engine is back."""
        self.restarts += 1
        if slot.state == "leaving":
            self._retire(slot)
            return
        slot.state = "restarting"
        self._set_capacity()
        self._await_ready(slot, old_pid)

    def _restart(self, slot: _Slot, why: str) -> None:
        """Kill a live worker for Ray to start afresh (a job over time, or recycling)."""
        log.info("dream worker %s restarts: %s", slot.name, why)
        with contextlib.suppress(Exception):
            ray.kill(slot.actor, no_restart=False)
        self._lost(slot, old_pid=slot.where.get("pid"))

    def _retire(self, slot: _Slot) -> None:
        log.info("dream worker %s retired", slot.name)
        if slot in self._slots:
            self._slots.remove(slot)
        if slot.watcher is not None:
            slot.watcher.cancel()
        with contextlib.suppress(Exception):
            ray.kill(slot.actor, no_restart=True)
        self._set_capacity()

    def _set_capacity(self) -> None:
        capacity = sum(1 for slot in self._slots if slot.state == "ready")
        if capacity != self.capacity:
            log.info("dream workers ready: %d (was %d)", capacity, self.capacity)
            self.capacity = capacity
            if self.on_capacity_change is not None and not self._closed:
                self.on_capacity_change()

    def _ensure_watch(self) -> None:
        """The pool watcher, on the running loop (tests use the executor from several)."""
        loop = asyncio.get_running_loop()
        if self._watch is None or self._watch.done() or self._watch.get_loop() is not loop:
            self._watch = loop.create_task(self._watch_pool(), name="ray-pool")

    async def _watch_pool(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.fit_pool()
                await self._ping_idle()
            except Exception:
                log.exception("could not check the Ray cluster")

    async def _ping_idle(self) -> None:
        """An idle worker that died (its node left) is noticed before a job finds it."""
        for slot in [slot for slot in self._slots if slot.free]:
            try:
                await asyncio.wait_for(slot.actor.info.remote(), PING_SECONDS)
            except (RayActorError, TimeoutError):
                if slot.free:
                    log.error("dream worker %s stopped answering while idle", slot.name)
                    self._lost(slot)

    # -- one job ----------------------------------------------------------------------

    async def _free_slot(self, cancel: threading.Event) -> _Slot:
        """A ready worker without a job; waits (the bot gives one job per worker, so a wait
        only happens while a worker restarts or the cluster is gone)."""
        while True:
            if self._closed:
                raise DreamFailed("The dream engine was shut down; try again.")
            if cancel.is_set():
                raise DreamCancelled()
            for slot in self._slots:
                if slot.free:
                    return slot
            await asyncio.sleep(POLL_SECONDS)

    async def _attempt(
        self,
        slot: _Slot,
        job: Job,
        on_progress: Callable[[Progress], None],
        cancel: threading.Event,
    ) -> Done | Failed:
        """Run the job on one worker, relaying progress and cancel; `RayActorError` if it dies."""

        job_id = uuid.uuid4().hex
        try:
            await slot.actor.begin.remote(job_id, job)
        except RayActorError as error:
            raise _DeadBeforeStart() from error
        cancel_sent = False
        loop = asyncio.get_running_loop()
        limit = job.time_limit(self.job_timeout)
        deadline = None if limit is None else loop.time() + limit
        try:
            while True:
                reply = asyncio.ensure_future(_result(slot.actor.events.remote(job_id, WAIT)))
                while not reply.done():
                    if cancel.is_set() and not cancel_sent:
                        cancel_sent = True
                        slot.actor.cancel.remote(job_id)
                    if deadline is not None and loop.time() >= deadline:
                        reply.cancel()
                        self._time_out(slot, limit)
                    await asyncio.wait({reply}, timeout=POLL_SECONDS)
                for item in reply.result():
                    if isinstance(item, ProgressEvent):
                        try:
                            on_progress(decode_progress(item.fields))
                        except Exception:
                            log.exception("progress callback failed")
                        continue
                    assert isinstance(item, Done | Failed), f"unexpected item {item!r}"
                    return item
        except asyncio.CancelledError:
            slot.actor.cancel.remote(job_id)  # the caller went away: stop the engine
            raise

    def _time_out(self, slot: _Slot, limit: float) -> NoReturn:
        self._restart(slot, f"its job ran over the {limit:g} s limit")
        raise DreamTimedOut.after(limit)

    # -- connecting -------------------------------------------------------------------

    async def _connect(self) -> None:
        """`ray.init`, bounded by `connect_timeout` (an unreachable address retries forever)."""
        if ray.is_initialized():
            return
        address = self._address or "local"
        outcome: list[BaseException | None] = []

        def connect() -> None:
            try:
                ray.init(
                    address=address,
                    logging_level=logging.ERROR,
                    log_to_driver=False,
                    **self._init_options,
                )
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

        if address == "local":
            # Here, not on a thread: Ray's processes die with the thread that started them
            # (PR_SET_PDEATHSIG), and starting a local Ray cannot hang on an address.
            connect()
        else:
            thread = threading.Thread(target=connect, name="ray-connect", daemon=True)
            thread.start()
            await asyncio.to_thread(thread.join, self._connect_timeout)
        where = "a local Ray" if address == "local" else f"the Ray cluster at {address}"
        if not outcome:
            raise ExecutorUnavailable(
                f"could not reach {where} within {self._connect_timeout:g} s "
                "(check RAY_ADDRESS, that `ray start --head` runs there, and RAY_AUTH_TOKEN if "
                "the cluster uses token authentication)."
            )
        if (error := outcome[0]) is not None:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ExecutorUnavailable(f"could not start or join {where}: {first_line[:200]}")
        self._started_ray = address == "local"
        log.info("joined %s: %s", where, self._resources_text())

    def _resources_text(self) -> str:
        resources = ray.cluster_resources()
        return (
            ", ".join(
                f"{resources.get(name, 0):g} {name}" for name in ("GPU", "CPU") if name in resources
            )
            or "no resources"
        )


class _DeadBeforeStart(Exception):
    """The worker was dead (or restarting) before the job reached it."""


async def _result(ref: Any) -> Any:
    return await ref


__all__ = ["DreamWorker", "RayExecutor"]
