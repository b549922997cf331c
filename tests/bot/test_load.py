"""A burst of /dream under load, against the local fake Discord: correctness only.

200 interactions from 50 members in 5 servers arrive within 2 seconds
(`benchmarks.load`, which prints the timings; nothing here asserts one).
Each scenario makes a different limit bind, so the expected counts are exact
whatever the arrival order: the member limit, the server queue, the global
cap, then all three at once (where only the totals are order-independent).

The engine is the real one, but every dream asks for 1000 iterations per
octave, so the first job taken holds the only worker and nothing leaves the
queue during the burst; leaving the world cancels it and closes the bot.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from benchmarks import load as load_benchmark
from benchmarks.load import (
    ACK_DEADLINE,
    QUEUED,
    REASONS,
    REFUSED,
    RUNNING,
    Expected,
    Limits,
    LoadPlan,
    LoadWorld,
    error_code,
    expect,
    fairness_breaks,
    round_robin_breaks,
)
from dream_engine.runtime.local import LocalExecutor
from dream_engine.service.queue import GuildQueueFull, QueueFull, UserLimitReached


def module_loop(test):
    """A test of the bot over the fake Discord on the module's loop (the world fixture
    outlives one test)."""
    return pytest.mark.e2e(pytest.mark.asyncio(loop_scope="module")(test))


SCENARIOS = {
    "member-limit": Limits(max_queue=200, queue_size=25, user_limit=2),
    "server-queue": Limits(max_queue=200, queue_size=8, user_limit=4),
    "global-cap": Limits(max_queue=30, queue_size=40, user_limit=4),
    "all-three": Limits(max_queue=60, queue_size=15, user_limit=2),
}
USER, GUILD, GLOBAL = UserLimitReached.reason, GuildQueueFull.reason, QueueFull.reason
pytestmark = pytest.mark.alone  # the burst times its acks: under xdist nothing runs beside it


# `executor` is the session's (tests/conftest.py): one warm engine for every scenario,
# warmed up with this burst's preset as `benchmarks.load.start_executor` warms its own.


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=list(SCENARIOS))
async def world(
    request: pytest.FixtureRequest,
    executor: LocalExecutor,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LoadWorld]:
    """A settled burst: every interaction answered, the "in line" messages caught up."""
    plan = LoadPlan(limits=SCENARIOS[request.param])
    db = tmp_path_factory.mktemp(request.param) / "bot.sqlite3"
    async with LoadWorld(plan, executor, db) as loaded:
        await loaded.fire()
        await loaded.settle_answers()
        await loaded.settle_display()
        yield loaded


def expected_for(world: LoadWorld) -> Expected:
    """The limits' prediction, given the job the worker happened to take first."""
    running = world.bot.queue.running()
    assert len(running) == 1, "the first dream must hold the worker for the whole burst"
    return expect(world.plan.limits, world.demand(), (running[0].guild_id, running[0].user_id))


def held(world: LoadWorld) -> Counter[tuple[int, int]]:
    """Jobs per (guild, member) in the queue: waiting plus running."""
    queue = world.bot.queue
    return Counter((job.guild_id, job.user_id) for job in [*queue.running(), *queue.waiting()])


# --- the oracle itself, without Discord -------------------------------------------------


def _demand(guilds: int = 5, members: int = 10, each: int = 4) -> Counter[tuple[int, int]]:
    return Counter({(g, g * 100 + m): each for g in range(guilds) for m in range(members)})


@pytest.mark.parametrize(
    ("scenario", "accepted", "by_reason", "guild_counts", "member_count"),
    [
        ("member-limit", 100, {USER: 100, GUILD: 0, GLOBAL: 0}, [20] * 5, 2),
        ("server-queue", 41, {USER: 0, GUILD: 159, GLOBAL: 0}, [9, 8, 8, 8, 8], None),
        ("global-cap", 31, {USER: 0, GUILD: 0, GLOBAL: 169}, [None] * 5, None),
        ("all-three", 61, {USER: None, GUILD: None, GLOBAL: None}, [None] * 5, None),
    ],
)
def test_the_limits_predict_exact_counts(scenario, accepted, by_reason, guild_counts, member_count):
    wanted = expect(SCENARIOS[scenario], _demand(), running=(0, 0))
    assert (wanted.accepted, wanted.refused) == (accepted, 200 - accepted)
    assert wanted.by_reason == by_reason
    assert [wanted.per_guild[g] for g in range(5)] == guild_counts
    assert set(wanted.per_member.values()) == {member_count}


def test_round_robin_breaks_name_a_member_served_twice_before_another():
    assert round_robin_breaks(["a", "b", "a", "b", "b"]) == []  # b alone has a third job
    assert round_robin_breaks(["a", "a", "b"]) == ["turn 1: a takes turn 2 before ['b']"]


# --- shutting down in the middle of it ------------------------------------------------


@module_loop
async def test_closing_the_bot_mid_burst_leaves_every_accepted_dream_a_final_word(
    executor: LocalExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """What SIGTERM does (`bot.close()`) with a dream running and others waiting.

    Runs before the module's shared worlds exist: two fake Discords cannot nest.
    The running dream (1000 iterations an octave) could never finish within the
    default 30-second shutdown grace, so a short one pauses it just the same.
    """
    settings_of = load_benchmark.bot_settings
    monkeypatch.setattr(
        load_benchmark,
        "bot_settings",
        lambda plan, db: dataclasses.replace(settings_of(plan, db), shutdown_grace=0.5),
    )
    limits = Limits(max_queue=60, queue_size=15, user_limit=2)
    plan = LoadPlan(limits, interactions=20, members=10, guilds=2, spread=0.2, download_stall=0)
    async with LoadWorld(plan, executor, tmp_path / "bot.sqlite3") as world:
        await world.fire()
        await world.settle_answers()
        if len(world.bot.queue.running()) != 1 or not len(world.bot.queue):
            pytest.fail("precondition: one dream running and others waiting")
        answers = world.answers()
        accepted = [s for s, a in zip(world.shots, answers, strict=True) if a and a.job_id]
        await world.bot.close()  # its session is closed now: no edit can come later
        stuck = [
            f"{shot.sender.member.name}: {shot.inter.original.content[:40]!r}"
            for shot in accepted
            if shot.inter.original.content.startswith(("🌙 Queued", "🌀 Dreaming"))
        ]
        assert not stuck, "these users were never told their dream will not come"
        assert not world.bot.queue.running()


# --- the burst ------------------------------------------------------------------------


@module_loop
async def test_every_interaction_is_acknowledged_within_the_window(world):
    late = [
        f"{shot.inter.label} by {shot.sender.member.name}: {shot.ack_delay}"
        for shot in world.shots
        if shot.ack_delay is None or shot.ack_delay > ACK_DEADLINE
    ]
    assert len(world.shots) == world.plan.interactions
    assert not late
    unknown = [c.summary() for c in world.fake.calls if error_code(c.response) == 10062]
    assert not unknown, "Discord would have said 'Unknown interaction' (a late ack)"
    assert not world.fake.unexpected_calls


@module_loop
async def test_every_interaction_ends_queued_or_refused_privately_with_its_reason(world):
    answers = world.answers()
    assert None not in answers
    kinds = Counter(answer.kind for answer in answers)
    others = [answer.text for answer in answers if answer.kind not in (QUEUED, RUNNING, REFUSED)]
    assert not others, kinds
    refusals = [answer for answer in answers if answer.kind == REFUSED]
    assert all(answer.private for answer in refusals)
    unexplained = [answer.text for answer in refusals if answer.reason not in REASONS]
    assert not unexplained  # each text is exactly what the queue says at that limit
    accepted = [answer for answer in answers if answer.kind != REFUSED]
    assert all(answer.job_id for answer in accepted)  # each has its Cancel button


@module_loop
async def test_the_burst_races_the_precheck_against_the_submit(world):
    """Slow downloads let many requests pass the precheck at once: the submit must refuse."""
    assert any(answer and answer.after_defer for answer in world.answers())


@module_loop
async def test_the_accepted_dreams_are_exactly_the_jobs_in_the_queue(world):
    """No double counting: one job per accepted interaction, none for a refused one."""
    queue = world.bot.queue
    jobs = {job.id: job for job in [*queue.running(), *queue.waiting()]}
    by_job = {
        answer.job_id: shot
        for shot, answer in zip(world.shots, world.answers(), strict=True)
        if answer and answer.kind != REFUSED
    }
    assert by_job.keys() == jobs.keys()
    for job_id, shot in by_job.items():
        job = jobs[job_id]
        assert job.payload.record.token == shot.inter.token
        assert (job.guild_id, job.user_id) == shot.sender.key


@module_loop
async def test_counts_are_exactly_what_the_limits_allow(world):
    limits, wanted, counts = world.plan.limits, expected_for(world), held(world)
    assert sum(counts.values()) == wanted.accepted
    assert all(n <= limits.user_limit for n in counts.values())
    for key, n in wanted.per_member.items():
        assert counts[key] == n or n is None, key
    running_guild = world.bot.queue.running()[0].guild_id
    for guild, n in wanted.per_guild.items():
        in_guild = sum(m for (g, _), m in counts.items() if g == guild)
        assert in_guild == n or n is None, guild
        assert world.bot.queue.waiting_count(guild) <= limits.queue_size
        assert in_guild <= limits.queue_size + (guild == running_guild)
    assert len(world.bot.queue) <= limits.max_queue


@module_loop
async def test_refusals_by_reason_are_exactly_what_the_limits_allow(world):
    wanted = expected_for(world)
    reasons = Counter(a.reason for a in world.answers() if a and a.kind == REFUSED)
    assert sum(reasons.values()) == wanted.refused
    for reason, n in wanted.by_reason.items():
        assert reasons[reason] == n or n is None, (reason, reasons)


@module_loop
async def test_every_refusal_names_a_limit_that_was_really_reached(world):
    """Where order decides the reason, each one must still be true of the final line.

    Nothing leaves the line during the burst, so a limit once reached stays
    reached (the one early take aside: a guild or the queue may hold its
    running job in place of a waiting one).
    """
    limits, counts, queue = world.plan.limits, held(world), world.bot.queue
    held_in = Counter({g: 0 for g, _ in counts})
    for (guild, _), n in counts.items():
        held_in[guild] += n
    for shot, answer in zip(world.shots, world.answers(), strict=True):
        if answer is None or answer.kind != REFUSED:
            continue
        guild = shot.sender.guild.id
        reached = {
            USER: counts[shot.sender.key] == limits.user_limit,
            GUILD: held_in[guild] >= limits.queue_size,
            GLOBAL: len(queue) + len(queue.running()) >= limits.max_queue,
        }
        assert reached[answer.reason], (shot.sender.member.name, answer.reason)


@module_loop
async def test_places_shown_in_line_are_the_queue_positions(world):
    assert world.display_mismatches() == []


@module_loop
async def test_the_waiting_order_is_round_robin_across_servers_and_members(world):
    queue = world.bot.queue
    assert fairness_breaks(queue.running(), queue.waiting()) == []
