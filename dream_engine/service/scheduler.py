"""The scheduler: the life of an accepted dream, from its place in line to its end.

It owns the running of jobs and nothing about Discord. Workers (one task per
dream the executor can run at once, following its capacity as a Ray cluster
grows and shrinks) take the next job in the queue's fair order, read its saved
upload, run it on the executor and hand the result to a `DreamListener`, which
the bot's delivery code implements (edit the reply, post the dream). A test or
another front end can implement the listener as well.

One source of truth for a job's state: every move of a job (accept, take,
finish, cancel, pause) goes through this module, which writes the job store
and the in-memory queue in the same call, so disk and memory cannot drift
apart; at start-up the queue is rebuilt from the store (`start`).

Shutdown (`close`) loses nothing: the queue closes, waiting jobs stay saved as
waiting, a running one gets `shutdown_grace` seconds to finish and is then
stopped and saved as waiting again, for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from dream_engine.errors import DreamCancelled, UserError
from dream_engine.media.animation import suggest_frame_every
from dream_engine.media.clips import ClipLimits, decode_clip
from dream_engine.media.images import decode_image
from dream_engine.runtime.executor import DreamFailed, DreamRequest, Executor
from dream_engine.runtime.wire import to_png
from dream_engine.service.history import DreamEntry, DreamHistory
from dream_engine.service.job_store import JobRecord, JobStore
from dream_engine.service.queue import (
    CancelOutcome,
    GuildLimits,
    Job,
    JobQueue,
    JobState,
    QueueClosed,
)

if TYPE_CHECKING:
    from PIL import Image

    from dream_engine.core.params import DreamParams
    from dream_engine.core.results import DreamResult, Progress

log = logging.getLogger(__name__)

GIF_FRAMES = 48  # animate: about this many frames across the whole dream
GOODBYE_GRACE = 10.0  # seconds paused dreams get to say so at shutdown
# A job's final words that the scheduler itself says (`DreamListener.failed`), in English.
# Constants, so that a front end can recognise them and say them in the member's language.
NOT_SAVED = "⚠️ I could not save this dream, so it was not queued. Please try again."
# A refusal (`UserError`) when the job runs: it reaches the listener as "⚠️ " + this.
SAVED_IMAGE_MISSING = "This dream's saved image is missing, so it was not started."
CANCELLED_RUNNING = "Cancelled. Nothing was posted."
CANCELLED_WAITING = "Cancelled before it started. Nothing was posted."
POSTING_FAILED = "⚠️ Something went wrong while posting this dream. Please try again."
#: `cancel`'s answer, instead of `CancelOutcome.STOPPING`'s, when only the posting is left.
ALREADY_POSTING = "That dream has already finished; it is being posted."


class Pause(enum.Enum):
    """Why a job's member is told to wait; none of these loses the job."""

    RESTART = "restart"  # waiting when the bot shut down: it keeps its place
    STOPPED = "stopped"  # running when the bot shut down: paused, runs again next start
    OUTAGE = "outage"  # running when every worker became unreachable: it waits for them


@dataclass(eq=False)
class Ticket:
    """A job in line (the queue's payload): its saved record and how far it has got.

    The upload is not kept here but in the job store, read back when the job
    runs: a long queue of phone photos costs disk, not memory.
    """

    record: JobRecord
    resumed: bool = False  # put back in line after a restart
    started_at: float | None = None  # monotonic, once a worker has taken it
    started_wall: float | None = None  # the same moment by the wall clock, for the history
    shown_position: int | None = None  # the place in line the member was last shown
    latest: Progress | None = None
    engine_done: bool = False  # the executor has answered (a result or a failure)
    posted: bool = False  # the dream itself is up (its extras may still be on their way)
    message_id: int | None = None  # the posted result's message, once it is up
    cancelled_by_user: bool = False  # a stop at shutdown pauses the job; a member's cancels it
    frame_saves: set[asyncio.Task[None]] = field(default_factory=set)  # frames on their way
    # Resolved once the job is on disk (True) or could not be saved (False); a worker
    # that takes the job sooner waits for it, so nothing runs that a restart would lose.
    saved: asyncio.Future[bool] = field(default_factory=asyncio.Future)

    @property
    def job_id(self) -> str:
        return self.record.id

    @property
    def preset(self) -> str:
        return self.record.preset

    @property
    def params(self) -> DreamParams:
        return self.record.params

    @property
    def name(self) -> str:
        """Plain words for what it runs: its preset, or what a comparison compares."""
        return (self.record.title or self.preset) if self.record.variants else self.preset


class DreamListener(Protocol):
    """What the scheduler tells the front end; every call is on the event loop.

    `finished` delivers the result and answers how the job ended (done, or
    undeliverable) with a note for the store; once the dream itself is up it sets
    `ticket.posted` and `ticket.message_id` and hands it to `Scheduler.remember`.
    `failed` is a final word on a job with no result (cancelled, refused, broken);
    `or_channel=False` marks news that needs nothing from the member, which must not
    ping them in a channel.
    """

    async def queued(self, ticket: Ticket, position: int, *, outage: bool) -> None: ...

    async def started(self, ticket: Ticket) -> None: ...

    def progress(self, ticket: Ticket, progress: Progress) -> None: ...

    async def finished(
        self, ticket: Ticket, result: DreamResult
    ) -> tuple[JobState, str | None]: ...

    async def failed(self, ticket: Ticket, message: str, *, or_channel: bool = True) -> None: ...

    async def paused(self, ticket: Ticket, why: Pause) -> None: ...


@dataclass(frozen=True)
class SchedulerSettings:
    shutdown_grace: float = 30.0  # seconds a running dream may finish at shutdown
    progress_interval: float = 2.0  # at most one position refresh per job per this
    max_pixels: int = 40_000_000  # the decoder's guard when a saved upload is read back


class Scheduler:
    """Runs accepted dreams on the executor's free workers and reports to a listener."""

    def __init__(
        self,
        queue: JobQueue,
        store: JobStore,
        executor: Executor,
        settings: SchedulerSettings,
        history: DreamHistory | None = None,
    ) -> None:
        self.queue = queue
        self.store = store
        self.history = history  # delivered dreams are remembered here, when given
        self.executor = executor
        self.settings = settings
        self.listener: DreamListener | None = None
        self._workers: list[asyncio.Task[None]] = []  # one per unit of executor capacity
        self._idle: set[asyncio.Task[None]] = set()  # workers waiting for a job
        self._worker_names = itertools.count()
        self._positions_changed = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._stopping = False
        self._capacity: int | None = None  # the executor's, as last seen
        self._notices: set[asyncio.Task[None]] = set()  # outage notices on their way

    @property
    def workers(self) -> int:
        """Worker tasks alive now (one per dream the executor can run at once)."""
        return sum(not task.done() for task in self._workers)

    # -- starting and stopping ---------------------------------------------------------------

    async def start(self, listener: DreamListener) -> None:
        """Rebuild the line from the store, then start the workers and the refresher."""
        self.listener = listener
        self.queue.on_change = self._positions_changed.set
        await self._resume()  # before any worker or new job: old jobs keep their turn
        self.executor.on_capacity_change = self._fit_workers
        self._fit_workers()
        self._refresher = asyncio.create_task(self._refresh_positions(), name="dream-positions")

    async def _resume(self) -> None:
        """Put back in line, in accept order, every job a previous run left unfinished."""
        resumed = await self.store.resume()
        for record, why in resumed.given_up:
            log.warning("job %s given up: %s", record.id, why)
            await self._listener.failed(Ticket(record), f"⚠️ Sorry: {why}.")
        for record in resumed.jobs:
            ticket = Ticket(record, resumed=True)
            ticket.saved.set_result(True)
            self.queue.restore(
                job_id=record.id, guild_id=record.queue_guild, user_id=record.user_id,
                channel_id=record.channel_id, payload=ticket,
            )  # fmt: skip
        if resumed.jobs or resumed.given_up:
            log.info(
                "resumed %d job(s) from the last run; gave up %d",
                len(resumed.jobs), len(resumed.given_up),
            )  # fmt: skip

    async def close(self) -> None:
        """Shut down without losing a job: waiting ones stay saved, a running one may finish.

        The queue closes first (no new jobs; idle workers leave). A running dream
        gets `shutdown_grace` seconds to finish and be delivered; after that it is
        stopped and saved as waiting, so the next start runs it again.
        """
        if self._stopping:
            return
        self._stopping = True
        self.executor.on_capacity_change = None
        for job in self.queue.close():  # saved as waiting already: nothing to write
            await self._listener.paused(job.payload, Pause.RESTART)
        workers = [task for task in self._workers if not task.done()]
        if workers:
            _done, workers = await asyncio.wait(workers, timeout=self.settings.shutdown_grace)
        if workers:
            for job in self.queue.running():
                job.cancel_event.set()  # the engine stops at its next check; the job is paused
            _done, workers = await asyncio.wait(workers, timeout=GOODBYE_GRACE)
        for task in [*workers, self._refresher]:
            if task is not None:
                task.cancel()
        if workers:  # a stuck executor: the cancelled workers still pause their jobs
            await asyncio.wait(workers, timeout=GOODBYE_GRACE)

    @property
    def _listener(self) -> DreamListener:
        assert self.listener is not None, "start() the scheduler first"
        return self.listener

    # -- moving a job: the store and the queue, together ------------------------------------

    async def accept(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        channel_id: int,
        limits: GuildLimits,
        record_for: Callable[[str], JobRecord],
        image: bytes,
        guide: bytes | None = None,
    ) -> Ticket:
        """Queue a job and save it with its upload and guide (`QueueRefused` if the line
        refuses).

        The queue picks the id, `record_for` makes the record to save under it, and
        the member is shown a place in line only once the store has it. If the store
        refuses, the job leaves the line and its member is told; nothing is lost
        that was promised.
        """
        job = self.queue.submit(
            guild_id=guild_id, user_id=user_id, channel_id=channel_id, payload=None, limits=limits
        )
        # The payload needs the id `submit` chose; no await in between, so no worker sees None.
        ticket = job.payload = Ticket(record_for(job.id))
        try:
            await self.store.add(ticket.record, image, guide)
        except Exception:
            log.exception("could not save job %s", job.id)
            ticket.saved.set_result(False)
            if self.queue.cancel(job.id, by_user=user_id) is CancelOutcome.CANCELLED:
                await self._listener.failed(ticket, NOT_SAVED)
            return ticket  # else a worker holds it already, sees it unsaved, and says so
        ticket.saved.set_result(True)
        try:  # accepted and saved: a message that fails to show must not undo that
            await self._show_position(job)
        except Exception:
            log.exception("could not show job %s its place in line", job.id)
        return ticket

    async def cancel(
        self,
        job_id: str,
        *,
        by_user: int,
        admin_of_guild: int | None,
        respond: Callable[[str], Awaitable[None]],
    ) -> CancelOutcome:
        """Cancel for the caller (owner, or admin of the job's server), answering them first.

        A running job stops at the engine's next check and its worker records the
        end; a waiting one is gone at once, so its end is recorded here.
        """
        job = self.queue.get(job_id)
        outcome = self.queue.cancel(job_id, by_user=by_user, admin_of_guild=admin_of_guild)
        message = outcome.message
        if outcome is CancelOutcome.STOPPING and job is not None:
            if job.payload.engine_done:  # only the posting is left: it can't be taken back
                message = ALREADY_POSTING
            else:
                job.payload.cancelled_by_user = True
        await respond(message)
        if outcome is CancelOutcome.CANCELLED and job is not None:
            await self._record_end(job_id, JobState.CANCELLED, "cancelled while waiting")
            await self._listener.failed(job.payload, CANCELLED_WAITING)
        return outcome

    async def _record_end(self, job_id: str, state: JobState, note: str | None) -> None:
        try:
            await self.store.finish(job_id, state, note)
        except Exception:
            log.exception("could not record the end of job %s (%s)", job_id, state.value)

    async def _end(self, job: Job, state: JobState, note: str | None) -> None:
        """A running job is over: on disk, then in the queue (which frees its slot)."""
        await self._record_end(job.id, state, note)
        self.queue.finish(job.id, state)

    async def _requeue(self, job: Job) -> None:
        """A running job goes back to waiting for the next start (the queue is closing)."""
        with contextlib.suppress(Exception):
            await self.store.requeue(job.id)
        self.queue.finish(job.id, JobState.CANCELLED)  # this run is over; the store keeps it

    # -- positions ------------------------------------------------------------------------

    async def _show_position(self, job: Job) -> None:
        ticket: Ticket = job.payload
        position = self.queue.position(job.id)
        saved = ticket.saved.done() and ticket.saved.result()
        if position is None or not saved:  # "Queued" is a promise the disk must keep first
            return
        ticket.shown_position = position
        await self._listener.queued(ticket, position, outage=self._capacity == 0)

    async def _refresh_positions(self) -> None:
        """Keep every "3rd in line" true, at most one refresh per job per progress interval."""
        while True:
            await self._positions_changed.wait()
            self._positions_changed.clear()
            for job_id, position in self.queue.positions().items():
                job = self.queue.get(job_id)
                if job is not None and job.payload.shown_position != position:
                    await self._show_position(job)
            await asyncio.sleep(self.settings.progress_interval)

    # -- workers ----------------------------------------------------------------------------

    def _fit_workers(self) -> None:
        """One worker task per dream the executor can run at once, as that number changes
        (a Ray cluster grows and shrinks): new tasks start now; surplus ones leave, idle
        ones at once, busy ones after their job. A job is only taken by a free worker."""
        self._workers = [task for task in self._workers if not task.done()]
        if self._stopping:
            return
        self._notice_outage(self.executor.capacity)
        surplus = len(self._workers) - self.executor.capacity
        for task in [task for task in self._workers if task in self._idle][: max(surplus, 0)]:
            task.cancel()  # waiting in take(): cancelling it loses no job
            self._workers.remove(task)
        while len(self._workers) < self.executor.capacity:
            name = f"dream-worker-{next(self._worker_names)}"
            self._workers.append(asyncio.create_task(self._worker(), name=name))

    def _notice_outage(self, capacity: int) -> None:
        """No worker left (a Ray cluster lost), or one back: show every waiting member
        again where they stand and why. Their jobs stay in line (and on disk) throughout."""
        was, self._capacity = self._capacity, capacity
        if was is None or (was > 0) == (capacity > 0):
            return
        waiting = self.queue.waiting()
        if capacity == 0:
            log.warning("no dream worker is reachable; %d job(s) wait", len(waiting))
            for job in self.queue.running():  # their next progress replaces the notice
                ticket: Ticket = job.payload
                if ticket.started_at is not None and not (
                    ticket.engine_done or ticket.cancelled_by_user
                ):
                    notice = asyncio.create_task(self._listener.paused(ticket, Pause.OUTAGE))
                    self._notices.add(notice)
                    notice.add_done_callback(self._notices.discard)
        else:
            log.info("dream workers are back; %d job(s) waiting", len(waiting))
        for job in waiting:
            job.payload.shown_position = None  # the refresher shows each one again
        self._positions_changed.set()

    def _still_wanted(self) -> bool:
        """False for a worker task over the executor's capacity; it leaves the pool."""
        if len(self._workers) <= self.executor.capacity:
            return True
        me = asyncio.current_task()
        if me in self._workers:
            self._workers.remove(me)  # type: ignore[arg-type]
        return False

    async def _take(self) -> Job:
        me = asyncio.current_task()
        self._idle.add(me)  # type: ignore[arg-type]
        try:
            return await self.queue.take()
        finally:
            self._idle.discard(me)  # type: ignore[arg-type]

    async def _worker(self) -> None:
        while self._still_wanted():
            try:
                job = await self._take()
            except QueueClosed:  # shutting down
                return
            try:
                await self._run(job)
            except Exception as error:
                log.exception("job %s failed in the bot", job.id)
                with contextlib.suppress(Exception):  # tell them, never lose the worker loop
                    await self._listener.failed(job.payload, POSTING_FAILED)
                if job.state is JobState.RUNNING:
                    await self._end(job, JobState.FAILED, f"bot error: {error!r}")

    async def _run(self, job: Job) -> None:
        """Run one job to its end and record that end (or its pause) in store and queue."""
        ticket: Ticket = job.payload
        if not await ticket.saved:
            await self._listener.failed(ticket, NOT_SAVED)
            self.queue.finish(job.id, JobState.FAILED)  # never on disk: nothing to record
            return
        ticket.started_at, ticket.started_wall = time.monotonic(), time.time()
        await self.store.mark_running(job.id)
        await self._listener.started(ticket)
        try:
            request = await self._saved_request(ticket)
            try:
                result = await self.executor.submit(
                    request,
                    lambda progress: self._on_progress(ticket, progress),
                    job.cancel_event,
                )
            finally:
                ticket.engine_done = True
                await asyncio.gather(*ticket.frame_saves, return_exceptions=True)
        except DreamCancelled:
            if self._stopping and not ticket.cancelled_by_user:
                return await self._pause(job)
            await self._listener.failed(ticket, CANCELLED_RUNNING)
            return await self._end(job, JobState.CANCELLED, "cancelled while running")
        except (UserError, DreamFailed) as error:
            await self._listener.failed(ticket, f"⚠️ {error}")
            return await self._end(job, JobState.FAILED, str(error))
        except asyncio.CancelledError:  # shutdown gave up waiting for the executor
            await self._pause(job)
            raise
        if self._stopping and not ticket.cancelled_by_user and _cut_short(result):
            return await self._pause(job)  # its frames are kept: the next start goes on
        try:
            state, note = await self._listener.finished(ticket, result)
        except asyncio.CancelledError:  # shutdown cut a slow post short
            if ticket.posted:  # only the extras are lost: the dream is up
                await self._end(job, JobState.DONE, "extras cut short by a shutdown")
            else:  # not a crash: it runs again after the restart
                await self._requeue(job)
            raise
        await self._end(job, state, note)

    async def remember(self, ticket: Ticket, result: DreamResult) -> None:
        """Into the history, as soon as the dream is up (the listener calls it then, before
        the extras, so its Info button answers at once); a lost row costs a line in
        /dreams, never the dream."""
        if self.history is None:
            return
        record = ticket.record
        try:
            await self.history.record(
                DreamEntry(
                    job_id=record.id, guild_id=record.guild_id, channel_id=record.channel_id,
                    message_id=ticket.message_id, user_id=record.user_id, preset=record.preset,
                    params=record.params, changed=record.changed, source_id=record.source_id,
                    guide_source_id=record.guide_source_id, guide_name=record.guide_name,
                    motion=record.motion, variants=len(record.variants),
                    gallery=record.gallery, animate=record.animate, spoiler=record.spoiler,
                    max_side=record.max_side, precision=result.precision,
                    width=result.image.width, height=result.image.height,
                    accepted_at=record.accepted_at,
                    started_at=ticket.started_wall or record.accepted_at,
                    finished_at=time.time(), run_seconds=result.seconds,
                )
            )  # fmt: skip
        except Exception:
            log.exception("could not remember job %s in the history", record.id)

    async def _pause(self, job: Job) -> None:
        """Shutdown stopped this job: save it as waiting again and tell its member."""
        await self._requeue(job)
        with contextlib.suppress(Exception):
            await self._listener.paused(job.payload, Pause.STOPPED)

    async def _saved_request(self, ticket: Ticket) -> DreamRequest:
        """The job as the executor runs it, from what the store kept: its upload (a still
        or a clip's frames), its guide, and the frames a moving dream finished before."""
        record = ticket.record
        data = await self.store.image(ticket.job_id)
        guide_data = await self.store.guide(ticket.job_id) if record.guide_name else None
        if data is None or (record.guide_name and guide_data is None):
            raise UserError(SAVED_IMAGE_MISSING)
        clip: tuple[Image.Image, ...] = ()
        if record.motion is not None and record.motion.kind == "clip":
            # Its limits were checked when it was accepted; these only hold it to that.
            held = ClipLimits(record.motion.frames, math.inf, max_pixels=2**62)
            clip = (await asyncio.to_thread(decode_clip, data, held, record.max_side)).frames
            image = clip[0]
        else:
            image = await asyncio.to_thread(self._decode, data)
        guide = None if guide_data is None else await asyncio.to_thread(self._decode, guide_data)
        done: tuple[Image.Image, ...] = ()
        if record.motion is not None:
            kept = await self.store.frames(ticket.job_id)
            done = tuple([await asyncio.to_thread(self._decode, png) for png in kept])
        frames = suggest_frame_every(record.params, GIF_FRAMES) if record.animate else None
        return DreamRequest(
            image, record.params, record.max_side, frames, record.variants, record.title,
            label=record.id,  # /dreamadmin status says whose it is, to that server only
            guide=guide, motion=record.motion, clip=clip, done=done,
        )  # fmt: skip

    def _decode(self, data: bytes) -> Image.Image:
        return decode_image(data, max_pixels=self.settings.max_pixels)

    def _on_progress(self, ticket: Ticket, progress: Progress) -> None:
        if progress.finished_frame is not None:  # kept, so a restart goes on after it
            save = asyncio.create_task(
                self._save_frame(ticket.job_id, progress.frame, progress.finished_frame)
            )
            ticket.frame_saves.add(save)
            save.add_done_callback(ticket.frame_saves.discard)
            progress = dataclasses.replace(progress, finished_frame=None)
        ticket.latest = progress
        self._listener.progress(ticket, progress)

    async def _save_frame(self, job_id: str, number: int, frame: Image.Image) -> None:
        try:
            png = await asyncio.to_thread(to_png, frame)
            await self.store.add_frame(job_id, number, png)
        except Exception:  # only a restart's head start is lost: the dream goes on
            log.exception("could not keep frame %d of job %s", number, job_id)

    # -- looking ------------------------------------------------------------------------------

    async def states(self) -> tuple[dict[str, JobState], dict[str, JobState]]:
        """The live jobs (waiting or running) as the queue and as the store see them; the
        two must always be equal (tests compare them after every kind of move)."""
        in_memory = {job.id: job.state for job in [*self.queue.waiting(), *self.queue.running()]}
        return in_memory, await self.store.live_states()


def _cut_short(result: DreamResult) -> bool:
    """A moving dream stopped before its last frame (its frames done are in the store)."""
    return bool(result.planned_frames) and len(result.frames) < result.planned_frames
