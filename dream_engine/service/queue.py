"""The dream queue: who may queue, who goes next, and where everyone stands.

Every accepted `/dream` waits in one `JobQueue` shared by all servers; one or
more workers (one per GPU) call `take()` and get the next job in fair order.
The queue knows nothing about Discord or TensorFlow: a job's `payload` is
whatever the bot wants to carry, and the only thing the engine sees of the
queue is `Job.cancel_event`, a `threading.Event` it polls from its own thread.

Limits (checked at submit time)
-------------------------------
- the global cap, `max_waiting`: jobs waiting across all servers (constructor);
- `GuildLimits.queue_size`: jobs waiting in this server;
- `GuildLimits.user_limit`: jobs one member may hold in this server, waiting
  plus running, so a member cannot dodge the limit by having one job running.

`submit` is a plain function, not a coroutine: check and insert happen with
no `await` between them, so on the single-threaded event loop no other submit
can slip in and the limits hold exactly, however many requests arrive at once.
A refusal is a `QueueRefused` (a `UserError`): its text is a sentence to show
the user as is (English), its `reason` is for code, and its fields (`waiting`,
`held`, `limit`, `in_dm`) let a front end say it in the member's language.

Fair order
----------
Jobs are taken round-robin across servers and, inside each server,
round-robin across members; one member's own jobs keep their submit order.
Direct messages are one pseudo-server (key `None`), so all DM users together
get one server's share and DMs cannot crowd out the servers.

Both levels use the same rule (`_Rotation`), best pictured as numbered rounds.
In each round every waiting key (a server, or a member inside a server) gets
one turn, and within a round keys go in the order they joined the rotation.
A key's waiting jobs take consecutive rounds, one per round, starting at its
next turn. A key that starts waiting joins the *current* round if it has not
had a turn in it yet, otherwise the next one. So after A's `a1` is taken,
B's newly submitted `b1` still goes before A's `a2`: each member may be
overtaken only by members who have not had their turn in this round, and at
most once per round by each. Rounds give no credit for idle time: a key that
was away for a while rejoins at the current round, not in the past. Nor do they
keep a debt: once nobody waits, every turn of the round has been given, so a
key whose dream has finished too starts afresh, as if it had never been served
(one whose dream still runs keeps its turn as had).

Because the rule is a pure function of the state, `waiting()` / `positions()`
compute the exact order `take()` will follow (given no new submits or
cancels), in one O(n log n) pass without changing anything.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import secrets
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

from dream_engine.errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "ALL_GUILDS",
    "CancelOutcome",
    "GuildLimits",
    "GuildQueueFull",
    "Job",
    "JobQueue",
    "JobState",
    "JobStatus",
    "QueueClosed",
    "QueueFull",
    "QueueRefused",
    "UserLimitReached",
]

#: How many finished jobs the queue remembers, so that `/cancel` on a job
#: that just ended says "already finished" rather than "no such dream".
FINISHED_HISTORY = 1000


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNDELIVERABLE = "undeliverable"  # it ran, but neither its reply nor its channel took it

    @property
    def finished(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class GuildLimits:
    """One server's limits, as its admins set them (read from the settings DB)."""

    queue_size: int  # jobs waiting in this server
    user_limit: int  # jobs one member may hold here, waiting + running

    def __post_init__(self) -> None:
        if self.queue_size < 0 or self.user_limit < 0:
            raise ValueError(f"limits must be >= 0, got {self}")


@dataclass(eq=False)  # identity equality: two jobs are never "the same" by value
class Job:
    """One accepted dream request; `payload` is the bot's, opaque to the queue."""

    id: str
    guild_id: int | None  # None: a direct message
    user_id: int
    channel_id: int
    payload: Any = field(repr=False)
    created_at: float = field(default_factory=time.time)  # wall clock, for "queued 2 min ago"
    started_at: float | None = None
    finished_at: float | None = None
    state: JobState = JobState.QUEUED
    # Set by `cancel`; polled by the engine's thread, hence a threading.Event.
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        return self.cancel_event.is_set()


class JobStatus(NamedTuple):
    """A job with its 1-based place in line; `position` is None once it runs."""

    job: Job
    position: int | None


class CancelOutcome(enum.Enum):
    """What `cancel` did; `.message` is a sentence for the person who asked."""

    CANCELLED = "cancelled"  # it was waiting and is gone from the queue
    STOPPING = "stopping"  # it is running; the worker was told to stop
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    ALREADY_FINISHED = "already_finished"

    @property
    def ok(self) -> bool:
        return self in (CancelOutcome.CANCELLED, CancelOutcome.STOPPING)

    @property
    def message(self) -> str:
        return _CANCEL_MESSAGES[self]


_CANCEL_MESSAGES = {
    CancelOutcome.CANCELLED: "Cancelled. That dream was still waiting, so it never ran.",
    CancelOutcome.STOPPING: "Stopping that dream; it will end after the current step.",
    CancelOutcome.NOT_FOUND: "There is no dream with that id. /queue shows yours.",
    CancelOutcome.NOT_ALLOWED: (
        "That dream isn't yours. Only the member who asked for it, or an admin "
        "of its server, can cancel it."
    ),
    CancelOutcome.ALREADY_FINISHED: "That dream has already finished.",
}


class _Scope(enum.Enum):
    ALL = "all"


#: Default of the `guild_id` filters: every server and DMs (None means DMs).
ALL_GUILDS: Literal[_Scope.ALL] = _Scope.ALL
GuildFilter = int | None | Literal[_Scope.ALL]


# --- refusals ---------------------------------------------------------------


class QueueRefused(UserError):
    """The queue would not take the job; `str(error)` says why and what to do."""

    reason: ClassVar[str] = "refused"


class QueueFull(QueueRefused):
    """The global cap: too many dreams waiting across all servers."""

    reason = "queue_full"

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        super().__init__(
            f"The dream queue is full right now ({_dreams(waiting)} waiting across "
            "all servers). Try again in a few minutes."
        )


class GuildQueueFull(QueueRefused):
    """This server's `queue_size` is reached."""

    reason = "guild_queue_full"

    def __init__(self, waiting: int, limit: int, *, in_dm: bool = False) -> None:
        self.waiting = waiting
        self.limit = limit
        self.in_dm = in_dm  # the direct messages' line, not a server's
        where = "direct messages" if in_dm else "this server"
        if limit == 0:
            text = f"Dreams are switched off in {where} (the queue size is 0)."
            if not in_dm:
                text += " A server admin can change that."
        else:
            text = (
                f"The dream queue in {where} is full ({waiting} waiting). "
                "Try again in a few minutes."
            )
        super().__init__(text)


class UserLimitReached(QueueRefused):
    """The member already holds `user_limit` jobs (waiting + running) here."""

    reason = "user_limit"

    def __init__(self, held: int, limit: int, *, in_dm: bool = False) -> None:
        self.held = held
        self.limit = limit
        self.in_dm = in_dm  # the direct messages' line, not a server's
        if limit == 0:
            where = "direct messages" if in_dm else "this server"
            text = f"Dreams are switched off for members in {where} (the limit is 0)."
        else:
            if held == limit:
                most = "the most allowed in DMs" if in_dm else "the most this server allows"
            else:  # an admin lowered the limit below what the member already holds
                most = (
                    f"and only {limit} are allowed in DMs"
                    if in_dm
                    else f"and this server allows {limit}"
                )
            text = (
                f"You already have {_dreams(held)} queued or running, {most}. "
                "Wait for one to finish or /cancel one."
            )
        super().__init__(text)


class QueueClosed(QueueRefused):
    """The bot is shutting down; also raised to workers blocked in `take()`."""

    reason = "closed"

    def __init__(self) -> None:
        super().__init__(
            "The dream bot is shutting down and not taking new dreams. Try again in a minute."
        )


def _dreams(n: int) -> str:
    return f"{n} dream" if n == 1 else f"{n} dreams"


# --- the fairness rule ----------------------------------------------------------

K = TypeVar("K", bound=Hashable)


@dataclass
class _Lane:
    next_round: int  # round of this key's first waiting turn
    seq: int  # when the key joined; orders keys within a round
    count: int = 0  # waiting turns (one per waiting job)


class _Rotation(Generic[K]):
    """Round-robin over keys, one turn per key per round (see module docstring).

    Only counts live here, not jobs, so the same class serves both levels:
    servers (each waiting job is one turn of its server) and members inside
    a server. Invariant: every lane's `next_round` is `round` or `round + 1`,
    and nothing waiting sorts before the turn taken last, so a newcomer never
    lands in a part of the order that has already been served.
    """

    def __init__(self) -> None:
        self.round = 0  # the round of the turn taken last
        self._lanes: dict[K, _Lane] = {}
        self._served: set[K] = set()  # keys that had their turn in `round`
        self._seq = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._lanes)

    def add(self, key: K) -> None:
        """One more waiting turn for `key`."""
        lane = self._lanes.get(key)
        if lane is None:
            start = self.round + 1 if key in self._served else self.round
            lane = self._lanes[key] = _Lane(start, next(self._seq))
        lane.count += 1

    def forget_idle(self, busy: set[K]) -> None:
        """With nothing waiting, keys not in `busy` (nothing running) have no turn to owe."""
        if not self._lanes:
            self._served &= busy

    def remove(self, key: K) -> None:
        """One fewer waiting turn for `key` (a job left; later ones move up)."""
        lane = self._lanes[key]
        lane.count -= 1
        if lane.count == 0:
            # `_served` is kept even when nobody waits: a member whose dream was just
            # taken (and may still be running) has had this round's turn.
            del self._lanes[key]

    def take(self) -> K:
        """Give the next turn: the earliest round, then the earliest joined."""
        key, lane = min(self._lanes.items(), key=lambda item: (item[1].next_round, item[1].seq))
        if lane.next_round > self.round:
            self.round = lane.next_round
            self._served.clear()
        self._served.add(key)
        lane.next_round += 1
        self.remove(key)
        return key

    def order(self) -> list[K]:
        """The keys of all waiting turns, in the order `take` will give them."""
        turns = [
            (lane.next_round + i, lane.seq, key)
            for key, lane in self._lanes.items()
            for i in range(lane.count)
        ]
        turns.sort(key=lambda turn: turn[:2])
        return [key for _, _, key in turns]


class _GuildLine:
    """One server's waiting jobs: a FIFO per member, members in rotation."""

    def __init__(self) -> None:
        self.members: _Rotation[int] = _Rotation()
        self.jobs: dict[int, deque[Job]] = {}
        self.size = 0

    def add(self, job: Job) -> None:
        self.jobs.setdefault(job.user_id, deque()).append(job)
        self.members.add(job.user_id)
        self.size += 1

    def take(self) -> Job:
        user = self.members.take()
        job = self.jobs[user].popleft()
        self._shrink(user)
        return job

    def remove(self, job: Job) -> None:
        self.jobs[job.user_id].remove(job)
        self.members.remove(job.user_id)
        self._shrink(job.user_id)

    def order(self) -> list[Job]:
        pending = {user: iter(jobs) for user, jobs in self.jobs.items()}
        return [next(pending[user]) for user in self.members.order()]

    def _shrink(self, user: int) -> None:
        self.size -= 1
        if not self.jobs[user]:
            del self.jobs[user]


# --- the queue -----------------------------------------------------------------


class JobQueue:
    """The bot's one queue: limits at submit, fair order at take, cancellation.

    Use it from the event loop's thread only (it is not thread-safe); workers
    `await take()`, run the job off the loop, then call `finish()`.

    `on_change`, if given, is called (synchronously, on the loop) whenever the
    waiting line changes: a submit, a take, a cancelled waiting job, close.
    That is when positions may move, so the bot can refresh its "3rd in line"
    messages from `positions()`. Keep it cheap (schedule a task); an exception
    it raises is logged and ignored, so a display bug never stalls the queue.
    """

    def __init__(self, max_waiting: int, *, on_change: Callable[[], None] | None = None) -> None:
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        self.max_waiting = max_waiting
        self.on_change = on_change
        self._guilds: _Rotation[int | None] = _Rotation()
        self._lines: dict[int | None, _GuildLine] = {}
        self._waiting: dict[str, Job] = {}
        self._running: dict[str, Job] = {}
        self._finished: OrderedDict[str, Job] = OrderedDict()
        self._held: Counter[tuple[int | None, int]] = Counter()  # waiting + running
        self._closed = False
        # Set while a taker can make progress: a job is waiting, or we closed.
        self._ready = asyncio.Event()

    # -- submitting --

    def submit(
        self,
        *,
        guild_id: int | None,
        user_id: int,
        channel_id: int,
        payload: Any,
        limits: GuildLimits,
    ) -> Job:
        """Queue a job or raise a `QueueRefused` saying why not.

        Checked in order: closed, the member's limit, the server's queue, the
        global cap, so the refusal names the most personal reason first.
        """
        self.check(guild_id=guild_id, user_id=user_id, limits=limits)
        return self._insert(
            Job(
                id=self._new_id(),
                guild_id=guild_id,
                user_id=user_id,
                channel_id=channel_id,
                payload=payload,
            )
        )

    def restore(
        self, *, job_id: str, guild_id: int | None, user_id: int, channel_id: int, payload: Any
    ) -> Job:
        """Put back a job accepted before a restart, under its old id, past every limit.

        It was counted when it was accepted; refusing it now (a lowered limit, a
        full queue) would drop a promise, which is worse than a queue briefly
        over its limit. Restore in accept order: fairness then works as usual.
        """
        if self.get(job_id) is not None:
            raise ValueError(f"job {job_id} is already in the queue")
        job = Job(
            id=job_id, guild_id=guild_id, user_id=user_id, channel_id=channel_id, payload=payload
        )
        return self._insert(job)

    def _insert(self, job: Job) -> Job:
        guild_id = job.guild_id
        line = self._lines.get(guild_id)
        if line is None:
            line = self._lines[guild_id] = _GuildLine()
        running = self._running.values()
        self._guilds.forget_idle({other.guild_id for other in running})
        line.members.forget_idle({other.user_id for other in running if other.guild_id == guild_id})
        line.add(job)
        self._guilds.add(guild_id)
        self._waiting[job.id] = job
        self._held[(guild_id, job.user_id)] += 1
        self._changed()
        return job

    def check(self, *, guild_id: int | None, user_id: int, limits: GuildLimits) -> None:
        """Raise the `QueueRefused` that `submit` would raise now, without queueing.

        Lets the bot refuse at once, before it spends time downloading an upload;
        `submit` checks again, atomically, when the job is really queued.
        """
        if self._closed:
            raise QueueClosed()
        in_dm = guild_id is None
        held = self._held[(guild_id, user_id)]
        if held >= limits.user_limit:
            raise UserLimitReached(held, limits.user_limit, in_dm=in_dm)
        line = self._lines.get(guild_id)
        in_guild = line.size if line else 0
        if in_guild >= limits.queue_size:
            raise GuildQueueFull(in_guild, limits.queue_size, in_dm=in_dm)
        if len(self._waiting) >= self.max_waiting:
            raise QueueFull(len(self._waiting))

    # -- taking and finishing --

    async def take(self) -> Job:
        """Wait for the next job in fair order and mark it RUNNING.

        Raises `QueueClosed` once the queue is closed. Concurrent takers each
        get a different job: the take itself has no await in it.
        """
        while True:
            job = self.take_nowait()
            if job is not None:
                return job
            await self._ready.wait()

    def take_nowait(self) -> Job | None:
        """Like `take`, but returns None at once when nothing is waiting."""
        if self._closed:
            raise QueueClosed()
        if not self._guilds:
            return None
        guild_id = self._guilds.take()
        line = self._lines[guild_id]
        job = line.take()  # an emptied line stays: its rotation remembers who was served
        del self._waiting[job.id]
        job.state = JobState.RUNNING
        job.started_at = time.time()
        self._running[job.id] = job
        self._changed()
        return job

    def finish(self, job_id: str, state: JobState = JobState.DONE) -> Job:
        """A worker is done with a running job: record how it ended, free its slot."""
        if not state.finished:
            raise ValueError(f"finish() needs DONE, FAILED or CANCELLED, not {state.name}")
        job = self._running.pop(job_id, None)
        if job is None:
            raise KeyError(f"job {job_id!r} is not running")
        self._retire(job, state)
        return job

    # -- cancelling --

    def cancel(
        self, job_id: str, *, by_user: int, admin_of_guild: int | None = None
    ) -> CancelOutcome:
        """Cancel a job on behalf of `by_user`.

        The owner may cancel their own job. `admin_of_guild` is the server in
        which the caller has admin rights (the server the command came from,
        if they hold the permission there), so an admin can cancel any job
        of *that* server and never one of another server or a DM.
        A waiting job is removed at once; a running one gets its
        `cancel_event` set and stays RUNNING until its worker calls `finish`.
        """
        job = self.get(job_id)
        if job is None:
            return CancelOutcome.NOT_FOUND
        is_owner = job.user_id == by_user
        is_admin = admin_of_guild is not None and job.guild_id == admin_of_guild
        if not (is_owner or is_admin):
            return CancelOutcome.NOT_ALLOWED
        if job.state is JobState.RUNNING:
            job.cancel_event.set()
            return CancelOutcome.STOPPING
        if job.state is JobState.QUEUED:
            self._unqueue(job)
            self._retire(job, JobState.CANCELLED)
            self._changed()
            return CancelOutcome.CANCELLED
        return CancelOutcome.ALREADY_FINISHED

    # -- closing --

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> list[Job]:
        """Stop accepting jobs; cancel and return the waiting ones, in line order.

        The bot tells their owners; running jobs are left to finish (or to be
        cancelled by the bot). Takers blocked in `take()` get `QueueClosed`.
        Calling it again returns an empty list.
        """
        if self._closed:
            return []
        waiting = self.waiting()
        self._closed = True
        for job in waiting:
            self._unqueue(job)
            self._retire(job, JobState.CANCELLED)
        self._changed()
        return waiting

    # -- looking --

    def get(self, job_id: str) -> Job | None:
        """A waiting, running or recently finished job."""
        return self._waiting.get(job_id) or self._running.get(job_id) or self._finished.get(job_id)

    def waiting(self) -> list[Job]:
        """All waiting jobs, in the order they will be taken."""
        per_guild = {guild: iter(line.order()) for guild, line in self._lines.items()}
        return [next(per_guild[guild]) for guild in self._guilds.order()]

    def positions(self) -> dict[str, int]:
        """Every waiting job's 1-based place in line, in one pass."""
        return {job.id: place for place, job in enumerate(self.waiting(), start=1)}

    def position(self, job_id: str) -> int | None:
        """This job's 1-based place in line, or None if it is not waiting."""
        if job_id not in self._waiting:
            return None
        return self.positions()[job_id]

    def running(self) -> list[Job]:
        """Running jobs, oldest start first."""
        return list(self._running.values())

    def waiting_count(self, guild_id: GuildFilter = ALL_GUILDS) -> int:
        """Jobs waiting everywhere, or in one server (None: in DMs)."""
        if guild_id is ALL_GUILDS:
            return len(self._waiting)
        line = self._lines.get(guild_id)
        return line.size if line else 0

    def jobs_of(self, user_id: int, guild_id: GuildFilter = ALL_GUILDS) -> list[JobStatus]:
        """A member's running then waiting jobs, with places in line, for `/queue`."""

        def wanted(job: Job) -> bool:
            return job.user_id == user_id and (guild_id is ALL_GUILDS or job.guild_id == guild_id)

        running = [JobStatus(job, None) for job in self._running.values() if wanted(job)]
        waiting = [
            JobStatus(job, place)
            for place, job in enumerate(self.waiting(), start=1)
            if wanted(job)
        ]
        return running + waiting

    def __len__(self) -> int:
        return len(self._waiting)

    # -- internals --

    def _new_id(self) -> str:
        while True:  # short enough to type into /cancel; collisions are retried
            job_id = secrets.token_hex(4)
            if self.get(job_id) is None:
                return job_id

    def _unqueue(self, job: Job) -> None:
        line = self._lines[job.guild_id]
        line.remove(job)
        self._guilds.remove(job.guild_id)
        del self._waiting[job.id]

    def _retire(self, job: Job, state: JobState) -> None:
        if state is JobState.CANCELLED:
            job.cancel_event.set()
        job.state = state
        job.finished_at = time.time()
        key = (job.guild_id, job.user_id)
        self._held[key] -= 1
        if not self._held[key]:
            del self._held[key]
        self._finished[job.id] = job
        while len(self._finished) > FINISHED_HISTORY:
            self._finished.popitem(last=False)

    def _changed(self) -> None:
        if self._closed or self._waiting:
            self._ready.set()
        else:
            self._ready.clear()
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:
                log.exception("JobQueue on_change listener failed")
