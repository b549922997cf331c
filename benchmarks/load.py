"""Load benchmark: a burst of `/dream` interactions against the local fake Discord.

    python -m benchmarks.load [--interactions 200 --members 50 --guilds 5]
                              [--max-queue 60 --queue-size 15 --user-limit 2]
                              [--spread 2.0 --seed 0 --rounds 1]

The reliability question it answers: when many members press /dream at
once, does every interaction get its acknowledgement inside Discord's
3-second window, and does every one end either queued or refused with the
right reason, the limits holding exactly (no double counting under
concurrency), the "N-th in line" messages true, the order fair, and memory
flat?

It runs the real bot (real cogs, real queue, real SQLite, the real
`LocalExecutor` with random-weight InceptionV3) against `tests.fakediscord`
with `ack_deadline=3.0`, so a late acknowledgement shows up exactly as on
Discord: a 404 "Unknown interaction". The engine work is kept negligible: a
small `max_side`, and every dream asks for `iter-high` with 1000 iterations
and an unreachable `max_loss`, so the first job taken holds the one worker
for the whole run and every other accepted job stays waiting. Nothing ever
leaves the queue during the burst except that first take, which is what
makes the expected counts exact (`expect`). The running dream is cancelled
and the bot closed at the end.

Prints one JSON line: acknowledgement and final-answer latency
(p50/p99/max), counts queued/running/refused by reason (expected next to
actual), RSS before and after, HTTP errors seen by the fake, and whether the
positions shown equal `JobQueue.positions()` and the waiting order is round
robin. It is a benchmark: the figures are read by people; the correctness
half is asserted by `tests/bot/test_load.py`, which drives this same code.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import math
import random
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from PIL import Image

from bot import DreamBot, Settings, create_bot
from dream_engine.core.presets import load_preset
from dream_engine.runtime.executor import EngineConfig, Executor
from dream_engine.runtime.local import LocalExecutor
from dream_engine.service.queue import GuildQueueFull, Job, QueueFull, UserLimitReached
from tests.fakediscord import FakeDiscord, FakeGuild, FakeInteraction, FakeMember

ACK_DEADLINE = 3.0  # Discord's window for the first response to an interaction
PRESET = "iter-high"
UNREACHABLE_LOSS = 1_000_000.0  # the /dream option's maximum: no octave stops early
QUEUED, RUNNING, REFUSED = "queued", "running", "refused"
REASONS = (UserLimitReached.reason, GuildQueueFull.reason, QueueFull.reason)
_IN_LINE = re.compile(r"(\d+)(?:st|nd|rd|th) in line")


# --- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The three caps the queue enforces, all set through `Settings`."""

    max_queue: int  # jobs waiting across all servers
    queue_size: int  # jobs waiting per server
    user_limit: int  # jobs one member holds in a server, waiting + running


@dataclass(frozen=True)
class LoadPlan:
    """Who sends how many /dream, how fast, under which limits."""

    limits: Limits
    interactions: int = 200
    members: int = 50  # spread evenly over the guilds
    guilds: int = 5
    spread: float = 2.0  # seconds over which the interactions arrive
    # Seconds the fake CDN takes per download: the window between the bot's
    # precheck and its submit, where concurrent requests race for the last slots.
    download_stall: float = 0.5
    seed: int = 0
    iterations: int = 1000  # per octave: the first dream outlasts the whole run
    max_side: int = 96  # smallest useful size: the engine's work stays negligible

    def __post_init__(self) -> None:
        if self.members % self.guilds:
            raise ValueError("members must split evenly over guilds")
        if self.limits.queue_size < 2:
            raise ValueError("queue_size must be at least 2 (see `expect`)")


def demo_png(side: int = 128) -> bytes:
    """A small noisy picture: decodes quickly, big enough for InceptionV3."""
    noise = random.Random(7).randbytes(side * side * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(buffer, "PNG")
    return buffer.getvalue()


def bot_settings(plan: LoadPlan, db_path: Path) -> Settings:
    """The bot's settings: the plan's limits, tiny images, position refreshes 4 times a second.

    Production refreshes every 2 s; a quarter second lets the test see the
    line settle quickly without the refresher flooding the loop mid-burst.
    """
    return Settings(
        token="fake-token",
        weights="random",
        db_path=str(db_path),
        max_side=plan.max_side,
        max_queue=plan.limits.max_queue,
        guild_queue_size=plan.limits.queue_size,
        user_limit=plan.limits.user_limit,
        progress_interval=0.25,
    )


def start_executor() -> LocalExecutor:
    """The real executor, warmed with the preset's graph so no trace lands in the burst."""
    return LocalExecutor(EngineConfig("inceptionv3", "random", warm_up=load_preset(PRESET)))


# --- what each user saw ----------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    guild: FakeGuild
    member: FakeMember

    @property
    def key(self) -> tuple[int, int]:
        return (self.guild.id, self.member.id)


@dataclass(frozen=True)
class Answer:
    """The final word a user got: queued / running with a job id, or refused with a reason."""

    kind: str
    text: str
    reason: str | None = None  # a QueueRefused.reason, or "other: ..." for anything else
    job_id: str | None = None
    position: int | None = None  # the place in line the message shows
    private: bool = False  # refusals must be ephemeral: nobody else needs to see them
    after_defer: bool = False  # refused by the submit, after the precheck let it through


@dataclass
class Shot:
    """One /dream interaction and when its final answer was first seen."""

    sender: Sender
    inter: FakeInteraction
    answered_after: float | None = None  # seconds from the interaction to its final answer

    @property
    def ack_delay(self) -> float | None:
        return self.inter.callback.delay if self.inter.callback else None


def refusal_reasons(limits: Limits) -> dict[str, str]:
    """Exact refusal text -> reason, written by the queue's own exception classes.

    Nothing finishes during the burst, so a refusal always comes at the limit
    (held == user_limit, waiting == queue_size or max_queue): the text is fixed.
    """
    return {
        str(UserLimitReached(limits.user_limit, limits.user_limit)): UserLimitReached.reason,
        str(GuildQueueFull(limits.queue_size, limits.queue_size)): GuildQueueFull.reason,
        str(QueueFull(limits.max_queue)): QueueFull.reason,
    }


def read_answer(inter: FakeInteraction, reasons: dict[str, str]) -> Answer | None:
    """The user's final answer, or None while the bot is still working on it.

    A refusal is ephemeral: the callback itself (refused before deferring) or,
    after a defer, a follow-up that replaces the deleted "thinking" message.
    """
    callback = inter.callback
    if callback is None:
        return None
    if callback.type == 4:
        return _refusal(callback.data.get("content") or "", reasons, private=callback.ephemeral)
    original = inter.original
    if original is None or (original.loading and not original.deleted):
        return None
    if original.deleted:
        said = inter.followups[:1]
        if not said:
            return None
        return _refusal(said[0].content, reasons, private=said[0].ephemeral, after_defer=True)
    return _accepted(original.content, [b.get("custom_id", "") for b in original.buttons])


def _refusal(
    text: str, reasons: dict[str, str], *, private: bool, after_defer: bool = False
) -> Answer:
    reason = reasons.get(text, f"other: {text[:80]}")
    return Answer(REFUSED, text, reason=reason, private=private, after_defer=after_defer)


def _accepted(text: str, custom_ids: list[str]) -> Answer:
    job_id = next((c.rsplit(":", 1)[1] for c in custom_ids if c.startswith("dream:cancel:")), None)
    if "Queued" in text:
        found = _IN_LINE.search(text)
        position = int(found[1]) if found else (1 if "next in line" in text else None)
        return Answer(QUEUED, text, job_id=job_id, position=position)
    if "Dreaming" in text:
        return Answer(RUNNING, text, job_id=job_id)
    return Answer("other", text, reason=f"other: {text[:80]}", job_id=job_id)


# --- what the limits predict -----------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the limits allow, exactly where arrival order cannot matter (None elsewhere)."""

    accepted: int  # queued + running, always exact
    refused: int
    per_guild: dict[int, int | None]
    per_member: dict[tuple[int, int], int | None]
    by_reason: dict[str, int | None]


def expect(
    limits: Limits, demand: Counter[tuple[int, int]], running: tuple[int, int] | None
) -> Expected:
    """Accepted counts from the limits alone, given which job the worker took first.

    Nothing finishes during the burst and the one take happens right after
    the first submit, so counts only grow: a member ends with min(sent,
    user_limit); a guild whose members want more than queue_size (+1 for the
    running job) ends with exactly that; the whole queue with exactly
    max_queue waiting if the guilds want more. Who wins a contested slot
    depends on arrival order, so those counts are None (bounded only).
    """
    per_member_want = {key: min(sent, limits.user_limit) for key, sent in demand.items()}
    guilds = sorted({guild for guild, _ in demand})
    cap = {g: limits.queue_size + (running is not None and running[0] == g) for g in guilds}
    want = {g: sum(n for (gg, _), n in per_member_want.items() if gg == g) for g in guilds}
    guild_full = {g: want[g] > cap[g] for g in guilds}
    per_guild_want = {g: min(want[g], cap[g]) for g in guilds}
    held_running = int(running is not None)
    global_full = sum(per_guild_want.values()) - held_running > limits.max_queue
    accepted = limits.max_queue + held_running if global_full else sum(per_guild_want.values())
    refused = sum(demand.values()) - accepted
    return Expected(
        accepted=accepted,
        refused=refused,
        per_guild={g: None if global_full else per_guild_want[g] for g in guilds},
        per_member={
            key: None if global_full or guild_full[key[0]] else n
            for key, n in per_member_want.items()
        },
        by_reason=_reasons_expected(limits, demand, guild_full, global_full, refused),
    )


def _reasons_expected(
    limits: Limits,
    demand: Counter[tuple[int, int]],
    guild_full: dict[int, bool],
    global_full: bool,
    refused: int,
) -> dict[str, int | None]:
    """Refusals per reason where only one limit can refuse (per guild), else None."""
    over_limit = {g: 0 for g in guild_full}
    for (guild, _), sent in demand.items():
        over_limit[guild] += max(0, sent - limits.user_limit)
    if global_full:
        possible = {QueueFull.reason}
        possible |= {UserLimitReached.reason} if any(over_limit.values()) else set()
        possible |= {GuildQueueFull.reason} if any(guild_full.values()) else set()
        if len(possible) > 1:
            return {reason: None if reason in possible else 0 for reason in REASONS}
        return {reason: refused if reason in possible else 0 for reason in REASONS}
    counts: dict[str, int | None] = {reason: 0 for reason in REASONS}
    for guild, full in guild_full.items():
        if full and over_limit[guild]:  # both limits may refuse here: order decides
            counts[UserLimitReached.reason] = counts[GuildQueueFull.reason] = None
        elif not full:
            _add(counts, UserLimitReached.reason, over_limit[guild])
    if counts[GuildQueueFull.reason] is not None:  # every guild refusal is a full-guild one
        counts[GuildQueueFull.reason] = refused - (counts[UserLimitReached.reason] or 0)
    return counts


def _add(counts: dict[str, int | None], reason: str, n: int) -> None:
    current = counts[reason]
    counts[reason] = None if current is None else current + n


# --- fairness --------------------------------------------------------------------------


def round_robin_breaks(turns: Sequence[Hashable]) -> list[str]:
    """Where a key got its (k+1)-th turn while another waiting key had not had its k-th.

    `turns` is the order of service, running jobs first. Round robin means
    every key's k-th turn comes before any key's (k+1)-th, among the keys that
    have a k-th turn at all.
    """
    totals = Counter(turns)
    seen: Counter[Hashable] = Counter()
    breaks = []
    for index, key in enumerate(turns):
        behind = [k for k in totals if seen[k] < seen[key] and seen[k] < totals[k]]
        if behind:
            breaks.append(f"turn {index}: {key} takes turn {seen[key] + 1} before {behind}")
        seen[key] += 1
    return breaks


def fairness_breaks(running: Iterable[Job], waiting: Sequence[Job]) -> list[str]:
    """Round-robin breaks across guilds, and across members inside each guild."""
    order = [*running, *waiting]
    breaks = round_robin_breaks([job.guild_id for job in order])
    for guild in dict.fromkeys(job.guild_id for job in order):
        members = [job.user_id for job in order if job.guild_id == guild]
        breaks += [f"guild {guild}: {text}" for text in round_robin_breaks(members)]
    return breaks


# --- the world -------------------------------------------------------------------------


@dataclass
class LoadWorld:
    """A fake Discord, the bot connected to it, the plan's guilds and members.

    `async with LoadWorld(plan, executor, db_path) as world:` then `fire()`,
    `settle_answers()`, `settle_display()`. Leaving cancels the running
    dream and closes the bot, so a shared executor is free for the next user.
    """

    plan: LoadPlan
    executor: Executor
    db_path: Path
    fake: FakeDiscord = field(init=False)
    bot: DreamBot = field(init=False)
    senders: list[Sender] = field(init=False, default_factory=list)
    shots: list[Shot] = field(init=False, default_factory=list)

    async def __aenter__(self) -> LoadWorld:
        self.fake = FakeDiscord(ack_deadline=ACK_DEADLINE)
        await self.fake.start()
        per_guild = self.plan.members // self.plan.guilds
        for g in range(self.plan.guilds):
            guild = self.fake.add_guild(f"server-{g}")
            for m in range(per_guild):
                self.senders.append(Sender(guild, self.fake.add_member(guild, f"m{g}-{m}")))
        self.bot = create_bot(bot_settings(self.plan, self.db_path), self.executor)
        await self.fake.start_bot(self.bot)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop_dreaming()
        await self.bot.close()
        await self.fake.stop()

    async def stop_dreaming(self, timeout: float = 30.0) -> None:
        """Close the queue and cancel the running dream, then wait for the worker to end it.

        Closing the bot while a dream runs would cancel the worker mid-job and
        leave the engine's result and the last progress edit unawaited; this
        way the worker reports "Cancelled" and exits, and the engine is free.
        """
        if self.bot.is_closed():  # a test closed it: its workers are gone already
            return
        queue = self.bot.queue
        queue.close()  # the worker takes nothing more; waiting jobs are dropped
        for job in queue.running():  # the engine stops at its next chunk of steps
            queue.cancel(job.id, by_user=job.user_id)
        await self.fake.wait_until(
            lambda: not queue.running(), timeout, "the running dream to stop after its cancel"
        )

    @property
    def reasons(self) -> dict[str, str]:
        return refusal_reasons(self.plan.limits)

    def demand(self) -> Counter[tuple[int, int]]:
        return Counter(shot.sender.key for shot in self.shots)

    def answers(self) -> list[Answer | None]:
        return [read_answer(shot.inter, self.reasons) for shot in self.shots]

    async def fire(self) -> list[Shot]:
        """Send every interaction, concurrently, each at a random moment within `spread`.

        Member i sends interactions i, i + members, ...: everyone sends the same
        number (4 for 200 over 50); the arrival order is shuffled by the jitter.
        """
        rng = random.Random(self.plan.seed)
        image = self.fake.add_attachment(
            "burst.png", demo_png(), "image/png", stall=self.plan.download_stall
        )
        options = {
            "image": image,
            "preset": PRESET,
            "iterations": self.plan.iterations,
            "max_loss": UNREACHABLE_LOSS,
        }
        who = [self.senders[i % len(self.senders)] for i in range(self.plan.interactions)]
        when = [rng.uniform(0, self.plan.spread) for _ in who]
        sends = (self._send(s, t, options) for s, t in zip(who, when, strict=True))
        self.shots = list(await asyncio.gather(*sends))
        return self.shots

    async def _send(self, sender: Sender, delay: float, options: dict[str, Any]) -> Shot:
        await asyncio.sleep(delay)
        inter = await self.fake.slash(sender.guild, sender.member, "dream", options)
        return Shot(sender, inter)

    async def settle_answers(self, timeout: float = 30.0) -> None:
        """Wait until every interaction has its final answer (or was dropped), noting when.

        Polls rather than waiting on the fake's calls: a dropped interaction
        makes no call at all, and must not hang the run.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not all([self._settled(shot) for shot in self.shots]):
            if loop.time() > deadline:
                raise AssertionError(self.fake.describe_timeout("every final answer", timeout))
            await asyncio.sleep(0.01)

    def _settled(self, shot: Shot) -> bool:
        if shot.answered_after is None and read_answer(shot.inter, self.reasons):
            shot.answered_after = self.fake.t() - shot.inter.created
        return shot.answered_after is not None or self.dropped(shot)

    def dropped(self, shot: Shot) -> bool:
        """Discord gave up on it: its acknowledgement came too late (10062) or never."""
        inter = shot.inter
        if inter.callback is not None:
            return False
        late = any(error_code(call.response) == 10062 for call in inter.calls)
        return late or self.fake.t() - inter.created > ACK_DEADLINE + 1.0

    def display_mismatches(self) -> list[str]:
        """Jobs whose message disagrees with the queue: a wrong place in line, or a
        running job not shown as dreaming."""
        queue = self.bot.queue
        shown = {a.job_id: a for a in self.answers() if a and a.kind in (QUEUED, RUNNING)}
        wrong = [
            f"job {job_id}: shows {_shown(shown.get(job_id))}, is {place} in line"
            for job_id, place in queue.positions().items()
            if (answer := shown.get(job_id)) is None or answer.position != place
        ]
        wrong += [
            f"job {job.id}: shows {_shown(shown.get(job.id))}, is running"
            for job in queue.running()
            if (answer := shown.get(job.id)) is None or answer.kind != RUNNING
        ]
        return wrong

    async def settle_display(self, timeout: float = 15.0) -> list[str]:
        """Give the bot's refresher time to catch up; the mismatches left, if any."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (mismatches := self.display_mismatches()) and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return mismatches


def _shown(answer: Answer | None) -> str:
    if answer is None:
        return "nothing"
    return f"{answer.position} in line" if answer.kind == QUEUED else answer.kind


# --- the figures -----------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (no interpolation: the figure is a real sample)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


def latency_ms(seconds: Iterable[float | None]) -> dict[str, float | None]:
    values = [s * 1000 for s in seconds if s is not None]
    return {
        "p50": _ms(percentile(values, 0.50)),
        "p99": _ms(percentile(values, 0.99)),
        "max": _ms(max(values, default=None)),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def rss_mib() -> float | None:
    """Resident memory of this process, from /proc (None where there is no /proc)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return round(int(found[1]) / 1024, 1) if found else None


def http_errors(world: LoadWorld) -> dict[str, int]:
    """Non-2xx answers of the fake by status and Discord error code (10062: a late ack)."""
    errors = Counter(
        f"{call.status} {error_code(call.response)}".strip()
        for call in world.fake.calls
        if not call.ok
    )
    errors.update({"unknown route": len(world.fake.unexpected_calls)})
    return {key: n for key, n in errors.items() if n}


def error_code(response: object) -> int | str:
    """Discord's JSON error code of a response body, or "" when it has none."""
    return response.get("code", "") if isinstance(response, dict) else ""


def figures(world: LoadWorld) -> dict[str, Any]:
    """The one JSON record: latencies, expected against actual counts, checks."""
    queue = world.bot.queue
    running = queue.running()
    first = (running[0].guild_id, running[0].user_id) if running else None
    wanted = expect(world.plan.limits, world.demand(), first)
    answers = world.answers()
    kinds = Counter(a.kind if a else "unanswered" for a in answers)
    reasons = Counter(a.reason for a in answers if a and a.kind == REFUSED)
    held = Counter((job.guild_id, job.user_id) for job in [*running, *queue.waiting()])
    acked = [shot.ack_delay for shot in world.shots]
    return {
        "case": "load",
        "interactions": len(world.shots),
        "members": world.plan.members,
        "guilds": world.plan.guilds,
        "limits": vars(world.plan.limits),
        "ack_ms": latency_ms(acked),
        "acked_late_or_never": sum(d is None or d > ACK_DEADLINE for d in acked),
        "answer_ms": latency_ms(shot.answered_after for shot in world.shots),
        "counts": dict(kinds),
        "accepted": {"expected": wanted.accepted, "actual": kinds[QUEUED] + kinds[RUNNING]},
        "refused_after_defer": sum(bool(a and a.after_defer) for a in answers),
        "refused_by_reason": {
            reason: {"expected": wanted.by_reason.get(reason), "actual": reasons[reason]}
            for reason in sorted({*REASONS, *reasons})
        },
        "per_guild": {
            f"server-{index}": {
                "expected": wanted.per_guild[g],
                "at_most": world.plan.limits.queue_size + (first is not None and first[0] == g),
                "actual": _in_guild(held, g),
            }
            for index, g in enumerate(sorted(wanted.per_guild))
        },
        "members_at_user_limit": sum(n == world.plan.limits.user_limit for n in held.values()),
        "members_over_user_limit": sum(n > world.plan.limits.user_limit for n in held.values()),
        "queue": {"waiting": len(queue), "running": len(running)},
        "positions_match": not world.display_mismatches(),
        "round_robin": not fairness_breaks(running, queue.waiting()),
        "http_errors": http_errors(world),
    }


def _in_guild(held: Counter[tuple[int, int]], guild: int) -> int:
    return sum(n for (g, _), n in held.items() if g == guild)


# --- the script ------------------------------------------------------------------------


async def run(plan: LoadPlan, rounds: int = 1) -> dict[str, Any]:
    """Build the engine, run `rounds` bursts (each in a fresh world), return the last figures.

    RSS is read before the first burst, with the last burst's jobs still
    held ("loaded"), and after each world is gone and garbage collected:
    memory that keeps growing from round to round is a leak; one step up is
    the working set. The first round also pays the engine's first steps at
    the burst's image size, so later rounds show the steady acknowledgement.
    """
    executor = start_executor()
    await executor.start()
    rss: dict[str, Any] = {"before": None, "loaded": None}
    each_round: list[dict[str, Any]] = []
    try:
        for _ in range(rounds):
            record = await one_round(plan, executor, rss)
            gc.collect()
            each_round.append({"ack_ms": record["ack_ms"], "rss_after_mib": rss_mib()})
    finally:
        await executor.close()
    after = each_round[-1]["rss_after_mib"]
    return {**record, "rss_mib": {**rss, "after": after}, "each_round": each_round}


async def one_round(plan: LoadPlan, executor: Executor, rss: dict[str, Any]) -> dict[str, Any]:
    """One burst in a fresh fake Discord, bot and database."""
    with tempfile.TemporaryDirectory(prefix="dream-load-") as tmp:
        async with LoadWorld(plan, executor, Path(tmp) / "bot.sqlite3") as world:
            if rss["before"] is None:
                rss["before"] = rss_mib()
            await world.fire()
            await world.settle_answers()
            await world.settle_display()
            rss["loaded"] = rss_mib()
            return figures(world)


def parse_args(argv: Sequence[str] | None) -> tuple[LoadPlan, int]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--interactions", type=int, default=200)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--guilds", type=int, default=5)
    parser.add_argument("--max-queue", type=int, default=60, help="waiting, all servers")
    parser.add_argument("--queue-size", type=int, default=15, help="waiting, per server")
    parser.add_argument("--user-limit", type=int, default=2, help="held, per member")
    parser.add_argument("--spread", type=float, default=2.0, help="seconds of arrivals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="bursts, to see RSS trend")
    args = parser.parse_args(argv)
    plan = LoadPlan(
        limits=Limits(args.max_queue, args.queue_size, args.user_limit),
        interactions=args.interactions,
        members=args.members,
        guilds=args.guilds,
        spread=args.spread,
        seed=args.seed,
    )
    return plan, args.rounds


def main(argv: Sequence[str] | None = None) -> int:
    plan, rounds = parse_args(argv)
    print(json.dumps(asyncio.run(run(plan, rounds))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
