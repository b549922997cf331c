"""The scheduler without Discord: jobs run on free workers, every move lands in the store
and the queue together, shutdown pauses and a restart resumes from the store.

The executor here is a gate (a dream is a small picture, handed over when the test
says so) and the listener records what the member would be told; the scheduler, the
queue and the SQLite job store are the real ones.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field, replace

import pytest
from PIL import Image

from dream_engine.core.params import DreamParams
from dream_engine.core.results import DreamResult
from dream_engine.errors import DreamCancelled
from dream_engine.service.job_store import JobRecord, JobStore
from dream_engine.service.queue import CancelOutcome, GuildLimits, JobQueue, JobState
from dream_engine.service.scheduler import Pause, Scheduler, SchedulerSettings, Ticket

pytestmark = pytest.mark.asyncio

LIMITS = GuildLimits(queue_size=10, user_limit=5)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


class GatedExecutor:
    """Each dream waits until the test lets one through (`release`) or all (`gate`)."""

    model_name = "inceptionv3"
    on_capacity_change = None

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = capacity
        self.gate = asyncio.Event()
        self.let_through = 0
        self.started: list[str] = []
        self.requests: list = []

    def release(self) -> None:
        self.let_through += 1

    def workers(self) -> list:
        return []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel):
        self.started.append(request.label)
        self.requests.append(request)
        while not (self.gate.is_set() or self.let_through):
            if cancel.is_set():
                raise DreamCancelled()
            await asyncio.sleep(0.01)
        if not self.gate.is_set():
            self.let_through -= 1
        image = Image.new("RGB", (64, 48), "purple")
        return DreamResult(image=image, octaves=[image], losses=[[1.0]],
                           params=request.params, seconds=0.01)  # fmt: skip


@dataclass
class Told:
    """A listener that remembers every call, as the member would see them."""

    events: list[tuple[str, str, object]] = field(default_factory=list)

    async def queued(self, ticket: Ticket, position: int, *, outage: bool) -> None:
        self.events.append(("queued", ticket.job_id, position))

    async def started(self, ticket: Ticket) -> None:
        self.events.append(("started", ticket.job_id, None))

    def progress(self, ticket: Ticket, progress) -> None:
        self.events.append(("progress", ticket.job_id, progress))

    async def finished(self, ticket: Ticket, result):
        ticket.posted = True
        self.events.append(("finished", ticket.job_id, result.image.size))
        return JobState.DONE, None

    async def failed(self, ticket: Ticket, message: str, *, or_channel: bool = True) -> None:
        self.events.append(("failed", ticket.job_id, message))

    async def paused(self, ticket: Ticket, why: Pause) -> None:
        self.events.append(("paused", ticket.job_id, why))

    def of(self, kind: str) -> list[str]:
        return [job_id for what, job_id, _ in self.events if what == kind]


def record_for(user_id: int):
    def make(job_id: str) -> JobRecord:
        return JobRecord(
            id=job_id, guild_id=1, channel_id=2, user_id=user_id, user_name=f"user{user_id}",
            application_id=3, token="token", token_expires_at=2e9, upload_limit=10_000_000,
            preset="one-octave", params=DreamParams(layers={"mixed3": 1.0}, octaves=1),
            changed={}, gallery=False, source_id=None, max_side=256,
        )  # fmt: skip

    return make


async def open_scheduler(db_path, executor) -> tuple[Scheduler, Told]:
    store = await JobStore.open(db_path)
    scheduler = Scheduler(
        JobQueue(50), store, executor, SchedulerSettings(shutdown_grace=0.2, progress_interval=0)
    )
    told = Told()
    await scheduler.start(told)
    return scheduler, told


async def accept(scheduler: Scheduler, user_id: int) -> Ticket:
    return await scheduler.accept(
        guild_id=1, user_id=user_id, channel_id=2, limits=LIMITS,
        record_for=record_for(user_id), image=png(),
    )  # fmt: skip


async def until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def assert_in_step(scheduler: Scheduler) -> dict[str, JobState]:
    in_memory, on_disk = await scheduler.states()
    assert in_memory == on_disk
    return in_memory


async def test_memory_and_disk_agree_through_accept_run_cancel_pause_and_restart(tmp_path):
    db_path = tmp_path / "jobs.sqlite3"
    executor = GatedExecutor()
    scheduler, told = await open_scheduler(db_path, executor)

    first = await accept(scheduler, user_id=10)
    await until(lambda: executor.started == [first.job_id])
    second, third = await accept(scheduler, 11), await accept(scheduler, 12)
    states = await assert_in_step(scheduler)
    assert states == {
        first.job_id: JobState.RUNNING,
        second.job_id: JobState.QUEUED,
        third.job_id: JobState.QUEUED,
    }
    assert ("queued", third.job_id, 2) in told.events

    answers: list[str] = []

    async def respond(message: str) -> None:
        answers.append(message)

    outcome = await scheduler.cancel(
        second.job_id, by_user=11, admin_of_guild=None, respond=respond
    )
    assert outcome is CancelOutcome.CANCELLED and answers
    assert second.job_id not in await assert_in_step(scheduler)
    assert second.job_id in told.of("failed")

    executor.release()  # the first dream finishes; the third starts and is held
    await until(lambda: first.job_id in told.of("finished"))
    await until(lambda: third.job_id in executor.started)
    assert await assert_in_step(scheduler) == {third.job_id: JobState.RUNNING}

    fourth = await accept(scheduler, 13)
    await scheduler.close()  # the third is paused after the grace, the fourth stays saved
    assert third.job_id in told.of("paused") and fourth.job_id in told.of("paused")
    stored = await scheduler.store.live_states()
    assert stored == {third.job_id: JobState.QUEUED, fourth.job_id: JobState.QUEUED}
    await scheduler.store.close()

    # A restart rebuilds the line from the store, in accept order, and runs it.
    executor = GatedExecutor()
    scheduler, told = await open_scheduler(db_path, executor)
    try:
        await until(lambda: executor.started == [third.job_id])
        states = await assert_in_step(scheduler)
        assert states == {third.job_id: JobState.RUNNING, fourth.job_id: JobState.QUEUED}
        executor.gate.set()
        await until(lambda: told.of("finished") == [third.job_id, fourth.job_id])
        await until(lambda: not scheduler.queue.running())  # its end is recorded just after
        assert await assert_in_step(scheduler) == {}
    finally:
        await scheduler.close()
        await scheduler.store.close()


async def test_a_guided_job_keeps_its_guide_across_a_restart(tmp_path):
    db_path = tmp_path / "jobs.sqlite3"
    guide = io.BytesIO()
    Image.new("RGB", (40, 30), "orange").save(guide, format="PNG")
    executor = GatedExecutor()
    scheduler, _ = await open_scheduler(db_path, executor)
    held = await accept(scheduler, user_id=10)  # holds the one worker
    guided = await scheduler.accept(
        guild_id=1, user_id=11, channel_id=2, limits=LIMITS, image=png(), guide=guide.getvalue(),
        record_for=lambda job_id: replace(record_for(11)(job_id), guide_name="cup.png"),
    )  # fmt: skip
    await until(lambda: executor.started == [held.job_id])
    assert executor.requests[0].guide is None
    await scheduler.close()
    await scheduler.store.close()

    executor = GatedExecutor()
    executor.gate.set()
    scheduler, told = await open_scheduler(db_path, executor)
    try:
        await until(lambda: guided.job_id in told.of("finished"))
        (request,) = (r for r in executor.requests if r.label == guided.job_id)
        assert request.guide.size == (40, 30) and request.guide.getpixel((0, 0)) == (255, 165, 0)
        assert await scheduler.store.guide(guided.job_id) is None  # dropped once it ended
    finally:
        await scheduler.close()
        await scheduler.store.close()


class FramesExecutor(GatedExecutor):
    """A moving dream: one frame a tick, each reported finished, until cancelled; then what
    is done comes back (as `run_motion` returns it)."""

    async def submit(self, request, on_progress, cancel):
        from dream_engine.core.results import Progress

        self.started.append(request.label)
        self.requests.append(request)
        frames = list(request.done)
        planned = request.motion.frames
        while len(frames) < planned and not cancel.is_set():
            await asyncio.sleep(0.02)
            frame = Image.new("RGB", (64, 48), (len(frames) * 40, 0, 0))
            frames.append(frame)
            on_progress(Progress(1, 1, 1, 1, 0.0, 0.0, True, frame=len(frames),
                                 frames=planned, finished_frame=frame))  # fmt: skip
            while len(frames) >= 2 and not (self.gate.is_set() or cancel.is_set()):
                await asyncio.sleep(0.01)  # held after two frames until the test says
        return DreamResult(
            image=frames[-1], octaves=[], losses=[], params=request.params, seconds=0.1,
            frames=frames, fps=12.0, planned_frames=planned,
        )  # fmt: skip


async def test_a_moving_dream_stopped_by_a_shutdown_goes_on_after_its_frames(tmp_path):
    from dream_engine.motion.spec import MotionSpec

    db_path = tmp_path / "jobs.sqlite3"
    executor = FramesExecutor()
    scheduler, told = await open_scheduler(db_path, executor)
    zoom = MotionSpec("zoom", frames=4)
    ticket = await scheduler.accept(
        guild_id=1, user_id=10, channel_id=2, limits=LIMITS, image=png(),
        record_for=lambda job_id: replace(record_for(10)(job_id), motion=zoom),
    )  # fmt: skip
    await until(lambda: len(executor.requests) == 1)
    await until(lambda: ticket.latest is not None and ticket.latest.frame == 2)
    assert ticket.latest.finished_frame is None  # kept by the store, not by the ticket
    await scheduler.close()  # a shutdown, not the member: paused, not posted half done
    assert ("paused", ticket.job_id, Pause.STOPPED) in told.events
    assert not told.of("finished")
    assert len(await scheduler.store.frames(ticket.job_id)) == 2
    await scheduler.store.close()

    executor = FramesExecutor()
    executor.gate.set()
    scheduler, told = await open_scheduler(db_path, executor)
    try:
        await until(lambda: told.of("finished") == [ticket.job_id])
        (request,) = executor.requests
        assert request.motion == zoom and len(request.done) == 2
        assert request.done[1].getpixel((0, 0)) == (40, 0, 0)  # the frames it had finished
        assert await scheduler.store.frames(ticket.job_id) == []  # dropped once it ended
    finally:
        await scheduler.close()
        await scheduler.store.close()


async def test_a_running_dream_cancelled_by_its_member_ends_cancelled_on_disk(tmp_path):
    executor = GatedExecutor()
    scheduler, told = await open_scheduler(tmp_path / "jobs.sqlite3", executor)
    try:
        ticket = await accept(scheduler, 10)
        await until(lambda: executor.started == [ticket.job_id])

        async def respond(message: str) -> None: ...

        outcome = await scheduler.cancel(
            ticket.job_id, by_user=99, admin_of_guild=None, respond=respond
        )
        assert outcome is CancelOutcome.NOT_ALLOWED  # not theirs: nothing moves
        assert await assert_in_step(scheduler) == {ticket.job_id: JobState.RUNNING}
        await scheduler.cancel(ticket.job_id, by_user=10, admin_of_guild=None, respond=respond)
        await until(lambda: ticket.job_id in told.of("failed"))
        await until(lambda: not scheduler.queue.running())
        assert await assert_in_step(scheduler) == {}
        async with scheduler.store._db.execute("SELECT state, note FROM jobs") as cursor:
            assert await cursor.fetchall() == [("cancelled", "cancelled while running")]
    finally:
        await scheduler.close()
        await scheduler.store.close()


async def test_workers_follow_the_executors_capacity(tmp_path):
    executor = GatedExecutor(capacity=2)
    scheduler, _told = await open_scheduler(tmp_path / "jobs.sqlite3", executor)
    try:
        assert scheduler.workers == 2
        tickets = [await accept(scheduler, user) for user in (10, 11, 12)]
        await until(lambda: len(executor.started) == 2)  # two at once, the third waits
        states = await assert_in_step(scheduler)
        assert sorted(states.values(), key=lambda s: s.value) == [
            JobState.QUEUED, JobState.RUNNING, JobState.RUNNING,
        ]  # fmt: skip
        executor.capacity = 1
        executor.on_capacity_change()  # as a shrinking Ray cluster calls it
        executor.gate.set()
        await until(lambda: len(executor.started) == 3)
        await until(lambda: scheduler.workers == 1)
        assert {t.job_id for t in tickets} == set(executor.started)
    finally:
        await scheduler.close()
        await scheduler.store.close()
