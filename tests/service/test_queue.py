"""The job queue: limits, fair order, positions, cancellation, closing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dream_engine.errors import UserError
from dream_engine.service.queue import (
    CancelOutcome,
    GuildLimits,
    GuildQueueFull,
    Job,
    JobQueue,
    JobState,
    QueueClosed,
    QueueFull,
    QueueRefused,
    UserLimitReached,
)

ROOMY = GuildLimits(queue_size=1000, user_limit=1000)
GUILD_X, GUILD_Y, GUILD_Z = 100, 200, 300
ALICE, BOB, CAROL, DAVE = 1, 2, 3, 4


def submit(
    queue: JobQueue,
    user: int,
    guild: int | None = GUILD_X,
    limits: GuildLimits = ROOMY,
    payload: object = None,
) -> Job:
    return queue.submit(guild_id=guild, user_id=user, channel_id=7, payload=payload, limits=limits)


def drain(queue: JobQueue) -> list[Job]:
    taken = []
    while (job := queue.take_nowait()) is not None:
        taken.append(job)
    return taken


def names(jobs: list[Job]) -> list[object]:
    return [job.payload for job in jobs]


# --- limits ------------------------------------------------------------------


def test_global_cap_exact() -> None:
    queue = JobQueue(max_waiting=3)
    for user in range(3):
        submit(queue, user, guild=user)  # different servers and members
    with pytest.raises(QueueFull) as refused:
        submit(queue, 99, guild=99)
    assert refused.value.reason == "queue_full"
    assert "3 dreams waiting" in str(refused.value)
    assert queue.waiting_count() == 3


def test_global_cap_counts_waiting_only() -> None:
    queue = JobQueue(max_waiting=2)
    submit(queue, ALICE)
    submit(queue, BOB)
    queue.take_nowait()  # running jobs do not count against the global cap
    submit(queue, CAROL)
    with pytest.raises(QueueFull):
        submit(queue, DAVE)


def test_guild_queue_size_exact_and_per_guild() -> None:
    queue = JobQueue(max_waiting=100)
    limits = GuildLimits(queue_size=4, user_limit=10)
    for i in range(4):
        submit(queue, i, limits=limits)
    with pytest.raises(GuildQueueFull) as refused:
        submit(queue, 50, limits=limits)
    assert refused.value.reason == "guild_queue_full"
    assert str(refused.value) == (
        "The dream queue in this server is full (4 waiting). Try again in a few minutes."
    )
    submit(queue, 50, guild=GUILD_Y, limits=limits)  # another server is unaffected
    queue.take_nowait()  # a job leaving the line frees a place in it
    submit(queue, 50, limits=limits)


def test_user_limit_exact_counts_running_and_finish_frees_slot() -> None:
    queue = JobQueue(max_waiting=100)
    limits = GuildLimits(queue_size=100, user_limit=2)
    submit(queue, ALICE, limits=limits)
    submit(queue, ALICE, limits=limits)
    with pytest.raises(UserLimitReached) as refused:
        submit(queue, ALICE, limits=limits)
    assert refused.value.reason == "user_limit"
    assert str(refused.value) == (
        "You already have 2 dreams queued or running, the most this server allows. "
        "Wait for one to finish or /cancel one."
    )
    submit(queue, BOB, limits=limits)  # other members are unaffected

    running = queue.take_nowait()
    assert running is not None and running.user_id == ALICE
    with pytest.raises(UserLimitReached):  # running still holds the slot
        submit(queue, ALICE, limits=limits)
    queue.finish(running.id, JobState.DONE)
    submit(queue, ALICE, limits=limits)  # finished: slot freed
    with pytest.raises(UserLimitReached):
        submit(queue, ALICE, limits=limits)


@pytest.mark.parametrize("end", [JobState.DONE, JobState.FAILED, JobState.CANCELLED])
def test_every_way_of_finishing_frees_the_slot(end: JobState) -> None:
    queue = JobQueue(max_waiting=10)
    limits = GuildLimits(queue_size=10, user_limit=1)
    job = submit(queue, ALICE, limits=limits)
    assert queue.take_nowait() is job
    assert queue.finish(job.id, end) is job
    assert job.state is end and job.finished_at is not None
    submit(queue, ALICE, limits=limits)


def test_cancelled_waiting_job_frees_the_slot() -> None:
    queue = JobQueue(max_waiting=10)
    limits = GuildLimits(queue_size=10, user_limit=1)
    job = submit(queue, ALICE, limits=limits)
    assert queue.cancel(job.id, by_user=ALICE) is CancelOutcome.CANCELLED
    submit(queue, ALICE, limits=limits)


def test_user_limit_is_per_server_and_dms_have_their_own() -> None:
    queue = JobQueue(max_waiting=100)
    limits = GuildLimits(queue_size=100, user_limit=1)
    submit(queue, ALICE, guild=GUILD_X, limits=limits)
    submit(queue, ALICE, guild=GUILD_Y, limits=limits)
    submit(queue, ALICE, guild=None, limits=limits)
    with pytest.raises(UserLimitReached) as refused:
        submit(queue, ALICE, guild=None, limits=limits)
    assert "the most allowed in DMs" in str(refused.value)


def test_refusal_order_and_messages() -> None:
    queue = JobQueue(max_waiting=1)
    submit(queue, ALICE, limits=GuildLimits(queue_size=1, user_limit=1))
    # Everything is full; the most personal reason is given first.
    with pytest.raises(UserLimitReached):
        submit(queue, ALICE, limits=GuildLimits(queue_size=1, user_limit=1))
    with pytest.raises(GuildQueueFull):
        submit(queue, BOB, limits=GuildLimits(queue_size=1, user_limit=1))
    with pytest.raises(QueueFull):
        submit(queue, BOB, guild=GUILD_Y)

    lowered = UserLimitReached(3, 2)
    assert "and this server allows 2" in str(lowered)
    off = GuildQueueFull(0, 0)
    assert "switched off" in str(off) and "admin" in str(off)
    for error in (QueueFull(5), off, lowered, QueueClosed()):
        assert isinstance(error, QueueRefused) and isinstance(error, UserError)
        assert str(error).endswith(".") and "\n" not in str(error)


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        GuildLimits(queue_size=-1, user_limit=1)
    with pytest.raises(ValueError):
        JobQueue(max_waiting=-1)


# --- fair order ----------------------------------------------------------------


def test_round_robin_between_members_example() -> None:
    queue = JobQueue(max_waiting=100)
    for name in ("a1", "a2", "a3"):
        submit(queue, ALICE, payload=name)
    submit(queue, BOB, payload="b1")
    assert names(queue.waiting()) == ["a1", "b1", "a2", "a3"]
    assert names(drain(queue)) == ["a1", "b1", "a2", "a3"]


def test_a_member_whose_dream_was_taken_from_an_idle_queue_has_had_their_turn() -> None:
    queue = JobQueue(max_waiting=100)
    submit(queue, ALICE, payload="a1")
    assert queue.take_nowait().payload == "a1"  # the line was empty: taken at once
    for name in ("a2", "a3"):
        submit(queue, ALICE, payload=name)
    submit(queue, BOB, payload="b1")
    assert names(queue.waiting()) == ["b1", "a2", "a3"]
    assert names(drain(queue)) == ["b1", "a2", "a3"]


def test_a_server_whose_job_was_taken_from_an_idle_queue_has_had_its_turn() -> None:
    queue = JobQueue(max_waiting=100)
    submit(queue, ALICE, guild=GUILD_X, payload="x1")
    queue.take_nowait()
    submit(queue, ALICE, guild=GUILD_X, payload="x2")
    submit(queue, BOB, guild=GUILD_Y, payload="y1")
    assert names(drain(queue)) == ["y1", "x2"]


def test_round_robin_across_servers_then_members() -> None:
    queue = JobQueue(max_waiting=100)
    for name in ("a1", "a2", "a3"):
        submit(queue, ALICE, guild=GUILD_X, payload=name)
    submit(queue, CAROL, guild=GUILD_X, payload="c1")
    submit(queue, BOB, guild=GUILD_Y, payload="b1")
    submit(queue, BOB, guild=GUILD_Y, payload="b2")
    submit(queue, DAVE, guild=None, payload="d1")  # DMs: one pseudo-server
    # Servers X, Y, DMs take turns; inside X, Alice and Carol take turns.
    expected = ["a1", "b1", "d1", "c1", "b2", "a2", "a3"]
    assert names(queue.waiting()) == expected
    assert names(drain(queue)) == expected


def test_big_server_does_not_starve_small_one() -> None:
    queue = JobQueue(max_waiting=100)
    for i in range(20):
        submit(queue, i, guild=GUILD_X, payload=f"x{i}")
    submit(queue, 99, guild=GUILD_Y, payload="y")
    assert queue.position(queue.waiting()[1].id) == 2
    assert names(queue.waiting())[:3] == ["x0", "y", "x1"]


def test_newcomer_goes_before_a_member_who_already_had_a_turn() -> None:
    queue = JobQueue(max_waiting=100)
    for name in ("a1", "a2", "a3"):
        submit(queue, ALICE, payload=name)
    assert queue.take_nowait().payload == "a1"
    submit(queue, BOB, payload="b1")
    assert names(queue.waiting()) == ["b1", "a2", "a3"]
    assert names(drain(queue)) == ["b1", "a2", "a3"]


def test_member_who_had_a_turn_rejoins_next_round() -> None:
    queue = JobQueue(max_waiting=100)
    submit(queue, ALICE, payload="a1")
    submit(queue, BOB, payload="b1")
    assert queue.take_nowait().payload == "a1"
    submit(queue, ALICE, payload="a2")  # Alice had her turn this round
    submit(queue, CAROL, payload="c1")  # Carol has not
    assert names(drain(queue)) == ["b1", "c1", "a2"]


def test_a_turn_had_before_the_line_emptied_is_no_debt_once_the_dream_finished() -> None:
    queue = JobQueue(max_waiting=100)
    submit(queue, ALICE, payload="a-yesterday")
    queue.finish(queue.take_nowait().id)  # then the line stood empty
    submit(queue, BOB, payload="b1")
    assert queue.take_nowait().payload == "b1"  # Bob's dream runs
    submit(queue, ALICE, payload="a1")  # Alice asks first...
    submit(queue, CAROL, payload="c1")
    submit(queue, DAVE, payload="d1")
    assert names(drain(queue)) == ["a1", "c1", "d1"]  # ...and goes first


def test_a_server_idle_since_its_last_dream_is_not_put_behind_later_servers() -> None:
    queue = JobQueue(max_waiting=100)
    submit(queue, ALICE, guild=GUILD_X, payload="x-yesterday")
    queue.finish(queue.take_nowait().id)
    submit(queue, BOB, guild=GUILD_Y, payload="y1")
    queue.take_nowait()
    submit(queue, ALICE, guild=GUILD_X, payload="x1")
    submit(queue, CAROL, guild=GUILD_Z, payload="z1")
    assert names(drain(queue)) == ["x1", "z1"]


def test_a_finished_turn_still_counts_while_others_of_its_round_wait() -> None:
    queue = JobQueue(max_waiting=100)
    for user, name in ((ALICE, "a1"), (BOB, "b1"), (CAROL, "c1")):
        submit(queue, user, payload=name)
    queue.finish(queue.take_nowait().id)  # Alice's turn of this round, done
    assert queue.take_nowait().payload == "b1"
    submit(queue, ALICE, payload="a2")  # Carol has waited since before a1 ran
    assert names(drain(queue)) == ["c1", "a2"]


def test_fifo_within_a_member_and_cancel_moves_later_jobs_up() -> None:
    queue = JobQueue(max_waiting=100)
    a = [submit(queue, ALICE, payload=f"a{i}") for i in range(3)]
    b = [submit(queue, BOB, payload=f"b{i}") for i in range(3)]
    assert names(queue.waiting()) == ["a0", "b0", "a1", "b1", "a2", "b2"]
    queue.cancel(a[1].id, by_user=ALICE)
    assert names(queue.waiting()) == ["a0", "b0", "a2", "b1", "b2"]
    assert queue.position(a[2].id) == 3
    assert queue.position(a[1].id) is None
    assert names(drain(queue)) == ["a0", "b0", "a2", "b1", "b2"]
    assert all(job.state is JobState.RUNNING for job in b)


# Property: whatever happens, positions are the truth about the take order.

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"), st.sampled_from([GUILD_X, GUILD_Y, GUILD_Z, None]), st.integers(1, 4)
        ),
        st.tuples(st.just("take")),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_positions_predict_the_take_order(ops: list[tuple]) -> None:
    queue = JobQueue(max_waiting=1000)
    submitted: list[Job] = []
    for op in ops:
        before = queue.waiting()
        assert queue.positions() == {job.id: i for i, job in enumerate(before, 1)}
        old_places = queue.positions()
        if op[0] == "submit":
            new = submit(queue, op[2], guild=op[1], payload=len(submitted))
            submitted.append(new)
            assert set(queue.positions()) == set(old_places) | {new.id}
        elif op[0] == "take":
            taken = queue.take_nowait()
            assert taken is (before[0] if before else None)
            assert queue.waiting() == before[1:]  # everyone else moves up one
        elif submitted:
            job = submitted[op[1] % len(submitted)]
            queue.cancel(job.id, by_user=job.user_id)
            assert set(queue.positions()) == set(old_places) - {job.id}

    predicted = queue.positions()
    taken = drain(queue)
    assert [predicted[job.id] for job in taken] == list(range(1, len(taken) + 1))
    assert len(taken) == len(predicted)
    # Within one member, first in, first out.
    for member in {(job.guild_id, job.user_id) for job in taken}:
        mine = [job.payload for job in taken if (job.guild_id, job.user_id) == member]
        assert mine == sorted(mine)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([GUILD_X, GUILD_Y, None]), st.integers(1, 4)), max_size=60)
)
def test_drain_is_round_robin_at_both_levels(submits: list[tuple[int | None, int]]) -> None:
    """From a fresh queue: among servers (and among a server's members) that
    still have jobs waiting, the numbers served never differ by more than one."""
    queue = JobQueue(max_waiting=1000)
    for guild, user in submits:
        submit(queue, user, guild=guild)
    remaining = Counter((job.guild_id, job.user_id) for job in queue.waiting())
    guild_left = Counter(job.guild_id for job in queue.waiting())
    served_guild: Counter = Counter()
    served_member: Counter = Counter()
    for job in drain(queue):
        served_guild[job.guild_id] += 1
        served_member[(job.guild_id, job.user_id)] += 1
        remaining[(job.guild_id, job.user_id)] -= 1
        guild_left[job.guild_id] -= 1
        busy = [served_guild[g] for g, n in guild_left.items() if n > 0]
        if busy:
            # every server still waiting has been served at least as often
            # as the busiest, minus one
            assert max(served_guild.values()) - min(busy) <= 1
        members = [served_member[m] for m, n in remaining.items() if n > 0 and m[0] == job.guild_id]
        mine = [served_member[m] for m in served_member if m[0] == job.guild_id]
        if members:
            assert max(mine) - min(members) <= 1


# --- taking ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_take_waits_for_a_job() -> None:
    queue = JobQueue(max_waiting=10)
    taker = asyncio.create_task(queue.take())
    await asyncio.sleep(0)
    assert not taker.done()
    job = submit(queue, ALICE)
    assert await asyncio.wait_for(taker, 1) is job
    assert job.state is JobState.RUNNING and job.started_at is not None
    assert queue.running() == [job]
    assert queue.position(job.id) is None


@pytest.mark.asyncio
async def test_concurrent_takers_get_distinct_jobs() -> None:
    queue = JobQueue(max_waiting=100)
    takers = [asyncio.create_task(queue.take()) for _ in range(5)]
    await asyncio.sleep(0)
    jobs = [submit(queue, user) for user in range(5)]
    got = await asyncio.wait_for(asyncio.gather(*takers), 1)
    assert sorted(job.id for job in got) == sorted(job.id for job in jobs)

    # Jobs already waiting, more takers than jobs: each job goes to one taker.
    jobs = [submit(queue, user) for user in range(3)]
    takers = [asyncio.create_task(queue.take()) for _ in range(4)]
    done, pending = await asyncio.wait(takers, timeout=0.1)
    assert sorted(t.result().id for t in done) == sorted(job.id for job in jobs)
    assert len(pending) == 1
    late = submit(queue, 42)
    assert await asyncio.wait_for(pending.pop(), 1) is late


@pytest.mark.asyncio
async def test_a_cancelled_taker_does_not_lose_a_job() -> None:
    queue = JobQueue(max_waiting=10)
    quitter = asyncio.create_task(queue.take())
    stayer = asyncio.create_task(queue.take())
    await asyncio.sleep(0)
    quitter.cancel()
    job = submit(queue, ALICE)
    assert await asyncio.wait_for(stayer, 1) is job
    with pytest.raises(asyncio.CancelledError):
        await quitter


def test_finish_rejects_wrong_use() -> None:
    queue = JobQueue(max_waiting=10)
    job = submit(queue, ALICE)
    with pytest.raises(KeyError):
        queue.finish(job.id)  # still waiting
    queue.take_nowait()
    with pytest.raises(ValueError):
        queue.finish(job.id, JobState.RUNNING)
    queue.finish(job.id)
    with pytest.raises(KeyError):
        queue.finish(job.id)  # twice


# --- cancelling -----------------------------------------------------------------


def test_cancel_waiting_job() -> None:
    queue = JobQueue(max_waiting=10)
    job = submit(queue, ALICE)
    other = submit(queue, BOB)
    assert queue.position(other.id) == 2
    assert queue.cancel(job.id, by_user=ALICE) is CancelOutcome.CANCELLED
    assert job.state is JobState.CANCELLED and job.cancel_requested
    assert queue.position(other.id) == 1
    assert queue.waiting_count() == 1
    assert queue.get(job.id) is job
    assert queue.cancel(job.id, by_user=ALICE) is CancelOutcome.ALREADY_FINISHED
    assert queue.take_nowait() is other


def test_cancel_running_job_signals_the_worker() -> None:
    queue = JobQueue(max_waiting=10)
    job = submit(queue, ALICE)
    queue.take_nowait()
    assert queue.cancel(job.id, by_user=ALICE) is CancelOutcome.STOPPING
    assert job.state is JobState.RUNNING and job.cancel_event.is_set()
    assert queue.cancel(job.id, by_user=ALICE) is CancelOutcome.STOPPING  # idempotent
    queue.finish(job.id, JobState.CANCELLED)
    assert job.state is JobState.CANCELLED
    assert queue.cancel(job.id, by_user=ALICE) is CancelOutcome.ALREADY_FINISHED


def test_cancel_permissions() -> None:
    queue = JobQueue(max_waiting=10)
    in_x = submit(queue, ALICE, guild=GUILD_X)
    in_dm = submit(queue, ALICE, guild=None)

    assert queue.cancel(in_x.id, by_user=BOB) is CancelOutcome.NOT_ALLOWED
    assert queue.cancel(in_x.id, by_user=BOB, admin_of_guild=GUILD_Y) is CancelOutcome.NOT_ALLOWED
    assert queue.cancel(in_dm.id, by_user=BOB, admin_of_guild=GUILD_X) is CancelOutcome.NOT_ALLOWED
    assert queue.cancel(in_dm.id, by_user=BOB, admin_of_guild=None) is CancelOutcome.NOT_ALLOWED
    assert in_x.state is in_dm.state is JobState.QUEUED

    assert queue.cancel(in_x.id, by_user=BOB, admin_of_guild=GUILD_X) is CancelOutcome.CANCELLED
    assert queue.cancel("nope", by_user=ALICE) is CancelOutcome.NOT_FOUND
    # Someone else's finished job: refused, without saying more.
    assert queue.cancel(in_x.id, by_user=CAROL) is CancelOutcome.NOT_ALLOWED


def test_admin_can_stop_a_running_job_of_their_server() -> None:
    queue = JobQueue(max_waiting=10)
    job = submit(queue, ALICE, guild=GUILD_X)
    queue.take_nowait()
    assert queue.cancel(job.id, by_user=BOB, admin_of_guild=GUILD_Y) is CancelOutcome.NOT_ALLOWED
    assert not job.cancel_requested
    assert queue.cancel(job.id, by_user=BOB, admin_of_guild=GUILD_X) is CancelOutcome.STOPPING
    assert job.cancel_requested


def test_cancel_outcomes_have_distinct_messages() -> None:
    messages = {outcome.message for outcome in CancelOutcome}
    assert len(messages) == len(CancelOutcome)
    assert CancelOutcome.CANCELLED.ok and CancelOutcome.STOPPING.ok
    assert not CancelOutcome.NOT_ALLOWED.ok


# --- closing ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_close_wakes_takers_and_returns_waiting_jobs() -> None:
    queue = JobQueue(max_waiting=10)
    running = submit(queue, ALICE, payload="r")
    assert queue.take_nowait() is running
    takers = [asyncio.create_task(queue.take()) for _ in range(2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not any(t.done() for t in takers)

    queue2 = JobQueue(max_waiting=10)  # a queue with jobs waiting when closed
    a1, a2 = submit(queue2, ALICE, payload="a1"), submit(queue2, ALICE, payload="a2")
    b1 = submit(queue2, BOB, payload="b1")
    left = queue2.close()
    assert left == [a1, b1, a2]
    assert all(job.state is JobState.CANCELLED and job.cancel_requested for job in left)
    assert queue2.waiting_count() == 0 and queue2.close() == []

    assert queue.close() == []
    for taker in takers:
        with pytest.raises(QueueClosed):
            await asyncio.wait_for(taker, 1)
    with pytest.raises(QueueClosed) as refused:
        submit(queue, BOB)
    assert refused.value.reason == "closed"
    with pytest.raises(QueueClosed):
        await queue.take()
    # Jobs that were running when the bot closed still finish normally.
    queue.finish(running.id, JobState.DONE)
    assert running.state is JobState.DONE


# --- looking -------------------------------------------------------------------


def test_jobs_of_waiting_count_and_running() -> None:
    queue = JobQueue(max_waiting=100)
    a1 = submit(queue, ALICE, guild=GUILD_X)
    b1 = submit(queue, BOB, guild=GUILD_X)
    a2 = submit(queue, ALICE, guild=GUILD_X)
    a_dm = submit(queue, ALICE, guild=None)
    b_y = submit(queue, BOB, guild=GUILD_Y)
    # Order: a1 (X), a_dm (DMs), b_y (Y), b1 (X), a2 (X)
    assert queue.take_nowait() is a1

    assert queue.jobs_of(ALICE) == [(a1, None), (a_dm, 1), (a2, 4)]
    assert queue.jobs_of(ALICE, GUILD_X) == [(a1, None), (a2, 4)]
    assert queue.jobs_of(ALICE, None) == [(a_dm, 1)]
    assert queue.jobs_of(BOB, GUILD_Y) == [(b_y, 2)]
    assert queue.jobs_of(BOB)[1].position == 3 and queue.jobs_of(BOB)[1].job is b1
    assert queue.waiting_count() == 4 == len(queue)
    assert queue.waiting_count(GUILD_X) == 2
    assert queue.waiting_count(None) == 1
    assert queue.waiting_count(GUILD_Z) == 0
    assert queue.running() == [a1]


def test_listener_fires_when_the_line_changes_and_cannot_break_the_queue() -> None:
    calls: list[int] = []

    def listener() -> None:
        calls.append(queue.waiting_count())
        raise RuntimeError("display bug")

    queue = JobQueue(max_waiting=10, on_change=listener)
    job = submit(queue, ALICE)
    other = submit(queue, BOB)
    assert calls == [1, 2]
    queue.take_nowait()
    assert calls == [1, 2, 1]
    queue.cancel(other.id, by_user=BOB)
    assert calls == [1, 2, 1, 0]
    queue.finish(job.id)  # nobody's place in line moved
    assert calls == [1, 2, 1, 0]
    queue.close()
    assert calls == [1, 2, 1, 0, 0]


# --- many at once ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_200_concurrent_submits_fill_exactly_to_the_limits() -> None:
    limits = GuildLimits(queue_size=5, user_limit=2)
    queue = JobQueue(max_waiting=12)
    rng = random.Random(1)
    requests = [
        (rng.choice([GUILD_X, GUILD_Y, GUILD_Z, None]), rng.randrange(30)) for _ in range(200)
    ]

    async def one(guild: int | None, user: int) -> Job | QueueRefused:
        await asyncio.sleep(0)
        try:
            return submit(queue, user, guild=guild, limits=limits)
        except QueueRefused as refused:
            return refused

    results = await asyncio.gather(*(one(g, u) for g, u in requests))
    accepted = [r for r in results if isinstance(r, Job)]
    assert len(accepted) == 12  # 4 servers x 5 could fit; the global cap is 12
    assert max(Counter(j.guild_id for j in accepted).values()) <= 5
    assert max(Counter((j.guild_id, j.user_id) for j in accepted).values()) <= 2
    assert {r.reason for r in results if isinstance(r, QueueRefused)} <= {
        "queue_full",
        "guild_queue_full",
        "user_limit",
    }


@pytest.mark.asyncio
async def test_limits_hold_with_submits_takers_and_cancels_interleaved() -> None:
    limits = GuildLimits(queue_size=4, user_limit=2)
    guilds = [GUILD_X, GUILD_Y, None]
    violations: list[str] = []

    def check() -> None:
        if queue.waiting_count() > queue.max_waiting:
            violations.append("global")
        for guild in guilds:
            if queue.waiting_count(guild) > limits.queue_size:
                violations.append(f"guild {guild}")
        held = Counter((j.guild_id, j.user_id) for j in queue.waiting() + queue.running())
        if held and max(held.values()) > limits.user_limit:
            violations.append("user")

    queue = JobQueue(max_waiting=9, on_change=check)
    rng = random.Random(2)
    accepted: list[Job] = []

    async def requester(guild: int | None, user: int) -> None:
        await asyncio.sleep(rng.random() / 100)
        try:
            job = submit(queue, user, guild=guild, limits=limits)
        except QueueRefused:
            return
        accepted.append(job)
        if rng.random() < 0.2:
            await asyncio.sleep(0)
            queue.cancel(job.id, by_user=user)

    async def worker() -> None:
        try:
            while True:
                job = await queue.take()
                await asyncio.sleep(rng.random() / 200)
                queue.finish(job.id, JobState.DONE)
        except QueueClosed:
            return

    workers = [asyncio.create_task(worker()) for _ in range(2)]
    await asyncio.gather(*(requester(rng.choice(guilds), rng.randrange(8)) for _ in range(200)))
    while queue.waiting_count() or queue.running():
        await asyncio.sleep(0.005)
    assert queue.close() == []
    await asyncio.wait_for(asyncio.gather(*workers), 1)
    assert not violations
    assert accepted and all(job.state.finished for job in accepted)


# --- restoring jobs after a restart ---------------------------------------------------


def test_restored_jobs_keep_their_ids_and_pass_every_limit():
    queue = JobQueue(max_waiting=1)
    tight = GuildLimits(queue_size=1, user_limit=1)
    for job_id in ("old1", "old2", "old3"):
        queue.restore(job_id=job_id, guild_id=GUILD_X, user_id=ALICE, channel_id=7, payload=job_id)
    assert [job.id for job in queue.waiting()] == ["old1", "old2", "old3"]
    with pytest.raises(UserLimitReached):  # restored jobs count against new ones
        submit(queue, ALICE, limits=tight)
    with pytest.raises(ValueError):
        queue.restore(job_id="old1", guild_id=GUILD_X, user_id=ALICE, channel_id=7, payload=None)
    assert queue.take_nowait().id == "old1"


def test_restored_jobs_share_turns_fairly_with_new_ones():
    queue = JobQueue(max_waiting=10)
    for job_id in ("a1", "a2"):
        queue.restore(job_id=job_id, guild_id=GUILD_X, user_id=ALICE, channel_id=7, payload=job_id)
    submit(queue, BOB, payload="b1")
    assert names(queue.waiting()) == ["a1", "b1", "a2"]
