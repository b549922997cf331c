"""Durable jobs over the wire: a restart in the middle of a busy queue loses nothing.

A bot queues dreams and is stopped (as SIGTERM stops it); a new bot on the same
database delivers every one: in place while the interaction token lives, in
the channel with a mention after. Crashes (rows left running) are simulated by
editing the database between the two bots, as a killed process would leave it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import types
from pathlib import Path

import pytest

from bot import close_on_signals, create_bot
from dream_engine.errors import DreamCancelled
from tests.bot.test_dream import DREAM, png, settings_for
from tests.fakediscord import FakeDiscord

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]


class GatedExecutor:
    """The shared real executor behind a gate: dreams wait there until the test opens it.

    It keeps a job "running" for as long as a test needs, and stops at the gate
    when cancelled, as the engine stops at its next check.
    """

    capacity = 1

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel):
        self.entered.set()
        while not self.gate.is_set():
            if cancel.is_set():
                raise DreamCancelled()
            await asyncio.sleep(0.02)
        return await self.inner.submit(request, on_progress, cancel)


def job_rows(db_path: Path) -> dict[str, tuple[str, int, str | None]]:
    """user_name -> (state, interruptions, note), read as an operator would."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT user_name, state, interruptions, note FROM jobs").fetchall()
    return {name: (state, interruptions, note) for name, state, interruptions, note in rows}


def delivered(message) -> bool:
    return bool(message.embeds and message.files)


async def queue_three(fake, guild, image, members):
    """Each member asks for a dream; the first runs (held at the gate), the others wait."""
    inters = []
    for member in members:
        inter = await fake.slash(
            guild, member, "dream", {"image": image, "preset": "one-octave", "iterations": 2}
        )
        await inter.wait_original(lambda m: (m.content or "").startswith(("🌙", "🌀")))
        inters.append(inter)
    return inters


async def test_a_restart_in_a_busy_queue_loses_nothing(tmp_path, executor, cat_photo, caplog):
    settings = settings_for(tmp_path, shutdown_grace=0.2)
    gated = GatedExecutor(executor)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob, carol, dave = (fake.add_member(guild, name) for name in ("bob", "carol", "dave"))
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, gated)
        await fake.start_bot(bot)
        running, waiting, also_waiting = await queue_three(fake, guild, image, [bob, carol, dave])
        await gated.entered.wait()
        # Saved before anyone was told "queued".
        assert {name: row[0] for name, row in job_rows(Path(settings.db_path)).items()} == {
            "bob": "running",
            "carol": "queued",
            "dave": "queued",
        }

        await bot.close()  # what SIGTERM does; bob's dream cannot finish within the grace
        assert "paused" in running.original.content
        for inter in (waiting, also_waiting):
            assert "keeps its place" in inter.original.content
        assert {row[0] for row in job_rows(Path(settings.db_path)).values()} == {"queued"}

        fake.expire(waiting)  # carol's token dies while the bot is down
        again = create_bot(settings, executor)  # same database, a new process's state
        await fake.start_bot(again)
        for inter in (running, also_waiting):
            result = await inter.wait_original(delivered, timeout=DREAM)
            assert "one-octave" in result.embeds[0]["title"]
        await fake.wait_for(
            lambda calls: any(m.files for m in fake.channel_messages(guild.text_channel)),
            timeout=DREAM,
        )
        (late,) = [m for m in fake.channel_messages(guild.text_channel) if m.files]
        assert f"<@{carol.id}>" in late.content
        shown = [version.get("content") or "" for version in also_waiting.original.history]
        assert any("back after a restart" in content for content in shown)
        await fake.wait_for(
            lambda calls: {row[0] for row in job_rows(Path(settings.db_path)).values()} == {"done"},
            timeout=DREAM,
        )
        assert fake.cdn_file(image).downloads == 3  # once per job: a resumed job needs no CDN


async def test_a_restart_pings_nobody_whose_reply_has_expired(tmp_path, executor, cat_photo):
    # "Paused" and "keeps its place" need nothing from the member: where the reply can't be
    # edited any more, they are not worth a mention in the channel (one per waiting job).
    settings = settings_for(tmp_path, shutdown_grace=0.2)
    gated = GatedExecutor(executor)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob, carol = fake.add_member(guild, "bob"), fake.add_member(guild, "carol")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, gated)
        await fake.start_bot(bot)
        running, waiting = await queue_three(fake, guild, image, [bob, carol])
        await gated.entered.wait()
        fake.expire(running)
        fake.expire(waiting)
        await bot.close()
        assert fake.channel_messages(guild.text_channel) == []
        assert {row[0] for row in job_rows(Path(settings.db_path)).values()} == {"queued"}


async def test_a_dream_that_finishes_within_the_grace_is_delivered_before_the_bot_stops(
    tmp_path, executor, cat_photo
):
    settings = settings_for(tmp_path, shutdown_grace=30)
    gated = GatedExecutor(executor)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob, carol = fake.add_member(guild, "bob"), fake.add_member(guild, "carol")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, gated)
        await fake.start_bot(bot)
        running, waiting = await queue_three(fake, guild, image, [bob, carol])
        await gated.entered.wait()
        closing = asyncio.create_task(bot.close())
        await waiting.wait_original(lambda m: "keeps its place" in (m.content or ""))
        assert not closing.done()  # still waiting for bob's dream
        gated.gate.set()
        await asyncio.wait_for(closing, DREAM)
        assert delivered(running.original)
        rows = job_rows(Path(settings.db_path))
        assert rows["bob"][0] == "done" and rows["carol"][0] == "queued"


async def test_jobs_a_crash_left_running_run_again_unless_caught_twice(
    tmp_path, executor, cat_photo
):
    settings = settings_for(tmp_path, shutdown_grace=0.2)
    db_path = Path(settings.db_path)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        members = [fake.add_member(guild, name) for name in ("bob", "carol", "dave")]
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, GatedExecutor(executor))
        await fake.start_bot(bot)
        bob_inter, carol_inter, _dave_inter = await queue_three(fake, guild, image, members)
        await bot.close()
        with sqlite3.connect(db_path) as db:  # as a killed bot would leave them
            db.execute("UPDATE jobs SET state = 'running' WHERE user_name = 'bob'")
            db.execute(
                "UPDATE jobs SET state = 'running', interruptions = 1 WHERE user_name = 'carol'"
            )

        again = create_bot(settings, executor)
        await fake.start_bot(again)
        await bob_inter.wait_original(delivered, timeout=DREAM)
        told = await carol_inter.wait_original(lambda m: "not tried again" in (m.content or ""))
        assert not told.files
        await fake.wait_for(lambda calls: job_rows(db_path)["dave"][0] == "done", timeout=DREAM)
        rows = job_rows(db_path)
        assert rows["bob"][:2] == ("done", 1)
        assert rows["carol"][:2] == ("failed", 2) and "not tried again" in rows["carol"][2]


async def test_a_result_nobody_can_receive_is_marked_undeliverable_and_logged(
    tmp_path, executor, cat_photo, caplog
):
    settings = settings_for(tmp_path)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        gated = GatedExecutor(executor)
        bot = create_bot(settings, gated)
        await fake.start_bot(bot)
        (inter,) = await queue_three(fake, guild, image, [bob])
        fake.expire(inter)
        fake.inject_error(
            "POST", f"/channels/{guild.text_channel.id}/messages", 403,
            {"code": 50013, "message": "Missing Permissions"}, times=5,
        )  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="cogs.dream"):
            gated.gate.set()
            await fake.wait_for(
                lambda calls: job_rows(Path(settings.db_path))["bob"][0] == "undeliverable",
                timeout=DREAM,
            )
        assert "Missing Permissions" in job_rows(Path(settings.db_path))["bob"][2]
        assert any("could not be delivered" in r.getMessage() for r in caplog.records)


async def test_a_dream_that_cannot_be_saved_is_not_queued_and_says_so(
    tmp_path, executor, cat_photo
):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings_for(tmp_path), GatedExecutor(executor))
        await fake.start_bot(bot)
        await bot.jobs._db.execute("PRAGMA query_only = ON")  # the disk refuses writes
        inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
        told = await inter.wait_original(lambda m: "could not save" in (m.content or ""))
        assert not any("Queued" in (version.get("content") or "") for version in told.history)
        await fake.wait_for(lambda calls: not bot.queue.running())
        assert not bot.queue.waiting()


async def test_cancelling_a_waiting_dream_is_recorded(tmp_path, executor, cat_photo):
    # bob's dream stays at the gate: closing the bot pauses it at once instead of waiting.
    settings = settings_for(tmp_path, shutdown_grace=0.2)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob, carol = fake.add_member(guild, "bob"), fake.add_member(guild, "carol")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, GatedExecutor(executor))
        await fake.start_bot(bot)
        _running, waiting = await queue_three(fake, guild, image, [bob, carol])
        cancel_id = waiting.original.buttons[0]["custom_id"]
        clicked = await fake.click(guild, carol, waiting.original, cancel_id)
        await clicked.wait_callback()
        await waiting.wait_original(lambda m: "Cancelled" in (m.content or ""))
        assert job_rows(Path(settings.db_path))["carol"][0] == "cancelled"


async def test_sigterm_closes_the_bot_gracefully(tmp_path, executor):
    async with FakeDiscord() as fake:
        fake.add_guild("Art")
        bot = create_bot(settings_for(tmp_path), executor)
        await fake.start_bot(bot)
        close_on_signals(bot)
        loop = asyncio.get_running_loop()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(10):
                while not bot.is_closed():
                    await asyncio.sleep(0.02)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
        assert bot.queue.closed and bot.jobs is None  # queue closed, database closed


def text(message) -> str:
    return (message.content or "") if message is not None else ""


async def test_a_dream_whose_image_cannot_be_remembered_is_refused_with_a_message(
    tmp_path, executor, cat_photo
):
    """The first write of /dream (the image remembered for "Dream again with…") fails:
    the member is told nothing was queued, not left on "thinking…"."""
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings_for(tmp_path), GatedExecutor(executor))
        await fake.start_bot(bot)
        await bot.sources._db.execute("PRAGMA query_only = ON")  # the disk refuses writes
        inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
        await inter.wait_callback()
        await inter.wait_for(
            lambda calls: (
                (inter.original is not None and not inter.original.loading) or inter.followups
            ),
            timeout=5.0,
            what="the member to be told the dream was not queued",
        )
        assert len(bot.queue) == 0 and not bot.queue.running()


async def test_queued_is_not_shown_before_the_job_is_saved(tmp_path, executor, cat_photo):
    """While the job's row waits for the database (another writer holds the lock), the
    member must not yet see "Queued": if the bot dies now, or the write then fails, that
    promise is broken (the position refresher sees the job in line before it is saved)."""
    settings = settings_for(tmp_path)
    gated = GatedExecutor(executor)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob, carol = fake.add_member(guild, "bob"), fake.add_member(guild, "carol")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, gated)
        await fake.start_bot(bot)
        running = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
        await running.wait_original(lambda m: text(m).startswith("🌀"))
        await gated.entered.wait()

        # Carol asks without a preset: her image is remembered now, before the lock.
        asked = await fake.slash(guild, carol, "dream", {"image": image})
        await asked.wait_callback()
        menu = asked.original
        select = menu.components[0]["components"][0]

        locker = sqlite3.connect(settings.db_path, timeout=5, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # e.g. a backup or an operator's open transaction
        try:
            picked = await fake.click(
                guild, carol, menu, select["custom_id"], values=["one-octave"]
            )
            await picked.wait_callback()
            await asyncio.sleep(1.5)
            saved = [row[0] for row in locker.execute("SELECT user_name FROM jobs")]
            versions = picked.original.history if picked.original else []
            shown = [text_of_version(version) for version in versions]
            assert "carol" not in saved  # the write is still waiting for the lock
            assert not any("Queued" in content for content in shown), (
                f"told 'Queued' before the job was saved: {shown}"
            )
        finally:
            locker.rollback()
            locker.close()
            await picked.wait_original(lambda m: "Queued" in text(m), timeout=DREAM)
            for job in [*bot.queue.waiting(), *bot.queue.running()]:
                bot.queue.cancel(job.id, by_user=job.user_id)
            await running.wait_original(lambda m: "Cancelled" in text(m), timeout=DREAM)


def text_of_version(version: dict) -> str:
    return version.get("content") or ""


class HeldDreams:
    """An executor whose dream is a small picture, handed over when the test says so."""

    model_name = "inceptionv3"
    capacity = 1
    on_capacity_change = None

    def __init__(self) -> None:
        self.go = asyncio.Event()

    def workers(self) -> list:
        return []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel):
        from PIL import Image

        from dream_engine.core.results import DreamResult

        await self.go.wait()
        image = Image.new("RGB", (64, 48), "purple")
        return DreamResult(image=image, octaves=[image], losses=[[0.0]],
                           params=request.params, seconds=0.1)  # fmt: skip


async def test_shutdown_while_a_result_is_being_posted_pauses_the_job_not_a_crash(
    tmp_path, cat_photo, monkeypatch
):
    """README: at shutdown "the running dream gets DREAM_SHUTDOWN_GRACE seconds to finish and
    be delivered, else it is paused and saved to run again". Here the dream is done but its
    post is slow (Discord rate-limits the edit) when the grace ends: the job is saved as
    waiting, not left 'running' for the next start to count as a crash."""
    # The stuck post outlasts the goodbye grace too (10 s) whatever its length: 1 s here.
    monkeypatch.setattr("dream_engine.service.scheduler.GOODBYE_GRACE", 1.0)
    settings = settings_for(tmp_path, shutdown_grace=0.2)
    held = HeldDreams()
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings, held)
        await fake.start_bot(bot)
        inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
        await inter.wait_original(lambda m: text(m).startswith("🌀"))
        fake.inject_error("PATCH", "/webhooks/*", 429, retry_after=60, times=1)
        held.go.set()
        await asyncio.sleep(0.3)  # the result's edit is now waiting out the rate limit
        await asyncio.wait_for(bot.close(), 30)
        with sqlite3.connect(settings.db_path) as db:
            (state,) = db.execute("SELECT state FROM jobs").fetchone()
        assert state == "queued", f"left as {state!r}: the next start will count it a crash"


async def test_a_new_job_id_never_collides_with_a_saved_finished_job(
    tmp_path, cat_photo, monkeypatch
):
    """Job ids are 8 hex digits checked against the queue in memory, while the jobs table
    keeps finished jobs for a week: a fresh id may equal a saved one after a restart. The
    collision is forced here; the member must not be told "I could not save this dream"."""
    import dream_engine.service.queue as jobs_module

    settings = settings_for(tmp_path)
    held = HeldDreams()
    held.go.set()
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        quick = {"image": image, "preset": "one-octave"}
        bot = create_bot(settings, held)
        await fake.start_bot(bot)
        first = await fake.slash(guild, bob, "dream", quick)
        await first.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        await bot.close()
        with sqlite3.connect(settings.db_path) as db:
            (old_id,) = db.execute("SELECT id FROM jobs").fetchone()

        again = create_bot(settings, held)
        await fake.start_bot(again)
        ids = iter([old_id, "0123abcd", "4567cdef"])
        monkeypatch.setattr(  # only the queue's ids; discord and the fake use secrets too
            jobs_module, "secrets", types.SimpleNamespace(token_hex=lambda n: next(ids))
        )
        second = await fake.slash(guild, bob, "dream", quick)
        result = await second.wait_original(
            lambda m: bool(m.embeds and m.files) or "could not save" in text(m), timeout=DREAM
        )
        assert "could not save" not in text(result)
