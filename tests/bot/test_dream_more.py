"""More of the real bot over the wire: the context menu, fairness, limits, /queue and
/cancel, channel restrictions, and uploads that go wrong after the defer.

Shares the engine, fixtures and helpers of tests/bot/test_dream.py. Slow jobs are
cancelled before a test ends, so the shared executor is free for the next one.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
import struct
import time
import zlib

import discord
import numpy as np
import pytest
from PIL import Image

from bot import create_bot
from dream_engine.core.results import DreamResult
from tests.bot.test_dream import DREAM, png, settings_for, world
from tests.bot.test_durable_jobs import GatedExecutor
from tests.fakediscord import MANAGE_GUILD, FakeDiscord

__all__ = ["world"]  # a pytest fixture, imported for its side effect

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]

QUICK = {"preset": "one-octave", "iterations": 1}
# Long enough to still be running while the test looks around; cancelled afterwards.
SLOW = {"preset": "iter-high", "iterations": 1000, "max_loss": 1000000.0}


def text_of(message) -> str:
    return (message.content or "") if message is not None else ""


def is_private(call) -> bool:
    return bool(call.json) and bool((call.json.get("flags") or 0) & 64)


async def private_reply(inter, timeout: float = 5.0) -> str:
    """The ephemeral text the user got: an immediate reply or a follow-up after the defer."""
    await inter.wait_for(
        lambda calls: (
            (inter.callback is not None and inter.callback.ephemeral)
            or any(is_private(call) for call in calls)
        ),
        timeout=timeout,
    )
    if inter.callback is not None and inter.callback.ephemeral:
        return inter.callback.data.get("content", "")
    return "\n".join(call.json.get("content") or "" for call in inter.calls if is_private(call))


async def admin_sets(fake, guild, admin, command: str, options: dict) -> str:
    inter = await fake.slash(guild, admin, f"dreamadmin {command}", options)
    return (await inter.wait_callback()).data["content"]


async def start_slow(fake, guild, member, image):
    """A dream that is running (not just queued) when this returns."""
    inter = await fake.slash(guild, member, "dream", {"image": image, **SLOW})
    await inter.wait_original(lambda m: "Dreaming" in text_of(m), timeout=DREAM)
    return inter


async def stop(bot, inter, member) -> None:
    """Cancel a running dream by its button's job id and wait until it has stopped."""
    bot.queue.cancel(job_id_of(inter), by_user=member.id)
    await inter.wait_original(lambda m: "Cancelled" in text_of(m), timeout=DREAM)


def job_id_of(inter) -> str:
    """The job id carried by the Cancel button of a queued or running dream."""
    button = next(b for b in inter.original.buttons if b["label"] == "Cancel")
    return button["custom_id"].rsplit(":", 1)[1]


# -- 1. the "Dream this image" context menu -------------------------------------------------


async def test_dream_this_image_offers_presets_and_dreams(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    eve = fake.add_member(guild, "eve")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    post = fake.add_message(guild.text_channel, eve, "my cat", attachments=[image])
    inter = await fake.context_menu(guild, bob, "Dream this image", post)
    callback = await inter.wait_callback()
    assert callback.type == 4 and callback.ephemeral
    assert "cat.png" in callback.data["content"]
    menu = inter.original
    select = menu.components[0]["components"][0]
    assert "one-octave" in [option["value"] for option in select["options"]]
    picked = await fake.click(guild, bob, menu, select["custom_id"], values=["one-octave"])
    result = await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert "one-octave" in result.embeds[0]["title"]
    with Image.open(io.BytesIO(result.files[0].data)) as dream:
        assert max(dream.size) == 160


async def test_dream_this_image_skips_attachments_it_cannot_take_to_a_photo(world, cat_photo):
    fake, _bot, guild = world
    bob, eve = fake.add_member(guild, "bob"), fake.add_member(guild, "eve")
    svg = fake.add_attachment(
        "diagram.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"
    )
    photo = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    post = fake.add_message(guild.text_channel, eve, "a diagram, a photo", attachments=[svg, photo])
    inter = await fake.context_menu(guild, bob, "Dream this image", post)
    callback = await inter.wait_callback()
    assert callback.ephemeral and "cat.png" in callback.data["content"]
    assert callback.data.get("components")  # the preset dropdown, for the photo
    only_svg = fake.add_message(guild.text_channel, eve, "a diagram", attachments=[svg])
    refused = await (
        await fake.context_menu(guild, bob, "Dream this image", only_svg)
    ).wait_callback()
    assert refused.ephemeral and "SVG" in refused.data["content"]  # why, when nothing fits


async def test_dream_this_image_dreams_a_picture_shown_by_an_embed(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    artbot = fake.add_member(guild, "artbot", bot=True)
    stored = fake.add_attachment("cat.png", png(cat_photo), "image/png")  # on Discord's proxy
    picture = {"url": "https://example.com/cat.png", "proxy_url": stored["proxy_url"]}
    link_preview = fake.add_message(
        guild.text_channel, bob, "https://example.com/cat.png",
        embeds=[{"type": "image", "url": "https://example.com/cat.png", "thumbnail": picture}],
    )  # fmt: skip
    bot_embed = fake.add_message(
        guild.text_channel, artbot, "", embeds=[{"type": "rich", "title": "Art", "image": picture}]
    )
    for post in (link_preview, bot_embed):
        inter = await fake.context_menu(guild, bob, "Dream this image", post)
        callback = await inter.wait_callback()
        assert callback.ephemeral and "cat.png" in callback.data["content"]
    select = inter.original.components[0]["components"][0]
    picked = await fake.click(
        guild, bob, inter.original, select["custom_id"], values=["one-octave"]
    )
    result = await picked.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    assert "one-octave" in result.embeds[0]["title"]
    assert not [request for request in fake.cdn_requests if "example.com" in request[1]]


async def test_dream_this_image_on_a_message_without_an_image_is_refused(world):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    notes = fake.add_attachment("notes.txt", b"hello", "text/plain")
    for post in (
        fake.add_message(guild.text_channel, bob, "just words"),
        fake.add_message(guild.text_channel, bob, "a file", attachments=[notes]),
    ):
        inter = await fake.context_menu(guild, bob, "Dream this image", post)
        callback = await inter.wait_callback()
        assert callback.ephemeral and "no image" in callback.data["content"].lower()
        assert not callback.data.get("components")
    assert len(bot.queue) == 0 and not bot.queue.running()


# -- 2. fairness, as members see it -----------------------------------------------------------


async def line_with_a_backlog(fake, guild, image):
    """Carol's dream runs; Alice queues a1 (slow), a2, a3; then Bob queues b1."""
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    alice = fake.add_member(guild, "alice")
    bob = fake.add_member(guild, "bob")
    carol = fake.add_member(guild, "carol")
    assert "5" in await admin_sets(fake, guild, admin, "user-limit", {"value": 5})
    first = await start_slow(fake, guild, carol, image)  # keeps the line busy
    a1 = await fake.slash(guild, alice, "dream", {"image": image, **SLOW})
    await a1.wait_original(lambda m: "next in line" in text_of(m))
    a2 = await fake.slash(guild, alice, "dream", {"image": image, **QUICK})
    await a2.wait_original(lambda m: "2nd in line" in text_of(m))
    a3 = await fake.slash(guild, alice, "dream", {"image": image, **QUICK})
    await a3.wait_original(lambda m: "3rd in line" in text_of(m))
    b1 = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    await b1.wait_original(lambda m: "2nd in line" in text_of(m))  # already before a2
    return (alice, bob, carol), (first, a1, a2, a3, b1)


async def clean_up(bot, members, inters, ids) -> None:
    alice, bob, carol = members
    first, a1, _a2, _a3, _b1 = inters
    for job, owner in zip(ids[2:], (alice, alice, bob), strict=True):
        bot.queue.cancel(job, by_user=owner.id)
    for inter, job, owner in ((first, ids[0], carol), (a1, ids[1], alice)):
        if not bot.queue.get(job).state.finished:
            bot.queue.cancel(job, by_user=owner.id)
            await inter.wait_original(lambda m: "Cancelled" in text_of(m), timeout=DREAM)


async def test_a_newcomer_goes_before_the_backlog_of_a_member_whose_dream_runs(world, cat_photo):
    fake, bot, guild = world
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    members, inters = await line_with_a_backlog(fake, guild, image)
    (_alice, _bob, carol), (first, a1, a2, a3, b1) = members, inters
    ids = [job_id_of(inter) for inter in inters]
    try:
        order = [job_id_of(a1), job_id_of(b1), job_id_of(a2), job_id_of(a3)]
        assert bot.queue.positions() == {job: n for n, job in enumerate(order, start=1)}
        await stop(bot, first, carol)  # Alice's first dream starts...
        await a1.wait_original(lambda m: "Dreaming" in text_of(m), timeout=DREAM)
        # ...and Bob, who has not had a turn this round, is next, ahead of her backlog.
        order = [job_id_of(b1), job_id_of(a2), job_id_of(a3)]
        assert bot.queue.positions() == {job: n for n, job in enumerate(order, start=1)}
        assert [job.id for job in bot.queue.running()] == [job_id_of(a1)]
        listed = await (await fake.slash(guild, members[1], "queue")).wait_callback()
        assert f"`{job_id_of(b1)}` **one-octave**: 1st in line" in listed.data["content"]
    finally:
        await clean_up(bot, members, inters, ids)


async def test_queued_messages_follow_the_line(world, cat_photo):
    fake, bot, guild = world
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    members, inters = await line_with_a_backlog(fake, guild, image)
    (_alice, _bob, carol), (first, a1, a2, a3, b1) = members, inters
    ids = [job_id_of(inter) for inter in inters]
    try:
        await stop(bot, first, carol)
        await a1.wait_original(lambda m: "Dreaming" in text_of(m), timeout=DREAM)
        await b1.wait_original(lambda m: "next in line" in text_of(m), timeout=2.0)
        await a2.wait_original(lambda m: "2nd in line" in text_of(m), timeout=2.0)
        await a3.wait_original(lambda m: "3rd in line" in text_of(m), timeout=2.0)
    finally:
        await clean_up(bot, members, inters, ids)


async def test_a_newcomer_goes_before_a_members_backlog_after_an_idle_start(world, cat_photo):
    fake, bot, guild = world
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    alice = fake.add_member(guild, "alice")
    bob = fake.add_member(guild, "bob")
    assert "5" in await admin_sets(fake, guild, admin, "user-limit", {"value": 5})
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")

    a1 = await start_slow(fake, guild, alice, image)  # taken at once: the line was empty
    a2 = await fake.slash(guild, alice, "dream", {"image": image, **QUICK})
    await a2.wait_original(lambda m: "next in line" in text_of(m))
    a3 = await fake.slash(guild, alice, "dream", {"image": image, **QUICK})
    await a3.wait_original(lambda m: "2nd in line" in text_of(m))
    b1 = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    await b1.wait_original(lambda m: "in line" in text_of(m))
    waiting = [job_id_of(b1), job_id_of(a2), job_id_of(a3)]
    try:
        assert bot.queue.positions() == {job: place for place, job in enumerate(waiting, start=1)}
    finally:
        for job, owner in zip(waiting, (bob, alice, alice), strict=True):
            bot.queue.cancel(job, by_user=owner.id)
        await stop(bot, a1, alice)


# -- 3. a full server queue -------------------------------------------------------------------


async def test_a_full_server_queue_refuses_at_once(world, cat_photo):
    fake, bot, guild = world
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    alice = fake.add_member(guild, "alice")
    bob = fake.add_member(guild, "bob")
    carol = fake.add_member(guild, "carol")
    assert "1" in await admin_sets(fake, guild, admin, "queue-size", {"value": 1})
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")

    running = await start_slow(fake, guild, alice, image)
    waiting = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    await waiting.wait_original(lambda m: "next in line" in text_of(m))
    downloads = len(fake.cdn_requests)

    third = await fake.slash(guild, carol, "dream", {"image": image, **QUICK})
    callback = await third.wait_callback()
    assert callback.type == 4 and callback.ephemeral  # refused at once, not deferred
    assert "full" in callback.data["content"].lower()
    assert len(bot.queue) == 1 and len(bot.queue.running()) == 1
    assert not bot.queue.jobs_of(carol.id)
    assert len(fake.cdn_requests) == downloads  # nothing downloaded for a refusal

    assert bot.queue.cancel(job_id_of(waiting), by_user=bob.id).ok
    await stop(bot, running, alice)


# -- 4. /queue and /cancel ---------------------------------------------------------------------


async def test_queue_lists_my_jobs_and_cancel_without_an_id_takes_the_latest(world, cat_photo):
    fake, bot, guild = world
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    eve = fake.add_member(guild, "eve")
    await admin_sets(fake, guild, admin, "user-limit", {"value": 5})
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")

    running = await start_slow(fake, guild, bob, image)
    second = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    await second.wait_original(lambda m: "next in line" in text_of(m))
    third = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    await third.wait_original(lambda m: "2nd in line" in text_of(m))

    listed = await fake.slash(guild, bob, "queue")
    callback = await listed.wait_callback()
    assert callback.ephemeral
    lines = callback.data["content"]
    assert f"`{job_id_of(running)}` **iter-high**: dreaming now" in lines
    assert f"`{job_id_of(second)}` **one-octave**: 1st in line" in lines
    assert f"`{job_id_of(third)}` **one-octave**: 2nd in line" in lines
    assert "2 waiting in all, 2 in this server, 1 dreaming now." in lines
    eves = await (await fake.slash(guild, eve, "queue")).wait_callback()
    assert "no dreams" in eves.data["content"].lower()

    cancelled = await fake.slash(guild, bob, "cancel")
    assert "cancelled" in (await cancelled.wait_callback()).data["content"].lower()
    assert bot.queue.positions() == {job_id_of(second): 1}
    assert bot.queue.get(job_id_of(third)).state.value == "cancelled"

    assert bot.queue.cancel(job_id_of(second), by_user=bob.id).ok
    await stop(bot, running, bob)


async def test_a_waiting_dream_cancelled_with_slash_cancel_says_so(world, cat_photo):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    running = await start_slow(fake, guild, bob, image)
    waiting = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    await waiting.wait_original(lambda m: "next in line" in text_of(m))
    try:
        cancelled = await fake.slash(guild, bob, "cancel")
        assert "cancelled" in (await cancelled.wait_callback()).data["content"].lower()
        await waiting.wait_original(lambda m: "Cancelled" in text_of(m), timeout=2.0)
    finally:
        await stop(bot, running, bob)


async def test_cancel_of_someone_elses_job_is_refused_unless_admin(world, cat_photo):
    fake, bot, guild = world
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    eve = fake.add_member(guild, "eve")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    running = await start_slow(fake, guild, bob, image)
    waiting = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    await waiting.wait_original(lambda m: "next in line" in text_of(m))

    refused = await fake.slash(guild, eve, "cancel", {"job": job_id_of(waiting)})
    callback = await refused.wait_callback()
    assert callback.ephemeral and "isn't yours" in callback.data["content"]
    assert bot.queue.positions() == {job_id_of(waiting): 1}
    nothing = await (await fake.slash(guild, eve, "cancel")).wait_callback()
    assert "no dreams" in nothing.data["content"].lower()
    unknown = await (await fake.slash(guild, eve, "cancel", {"job": "feedf00d"})).wait_callback()
    assert "no dream with that id" in unknown.data["content"].lower()

    by_admin = await fake.slash(guild, admin, "cancel", {"job": job_id_of(waiting)})
    assert "cancelled" in (await by_admin.wait_callback()).data["content"].lower()
    assert len(bot.queue) == 0
    stopping = await fake.slash(guild, admin, "cancel", {"job": job_id_of(running)})
    assert "stopping" in (await stopping.wait_callback()).data["content"].lower()
    await running.wait_original(lambda m: "Cancelled" in text_of(m), timeout=DREAM)


# -- 5. dream channels -------------------------------------------------------------------------


async def test_dream_channels_restrict_and_clear(world, cat_photo):
    fake, bot, guild = world
    admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    dreams = fake.add_channel(guild, "dreams")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    added = await admin_sets(fake, guild, admin, "channels", {"action": "add", "channel": dreams})
    assert f"<#{dreams.id}>" in added
    assert (await bot.guild_settings.get(guild.id)).channels

    elsewhere = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    callback = await elsewhere.wait_callback()
    assert callback.type == 4 and callback.ephemeral
    assert "channel" in callback.data["content"] and f"<#{dreams.id}>" in callback.data["content"]
    assert len(bot.queue) == 0 and not bot.queue.running()
    picker = await fake.slash(guild, bob, "dream", {"image": image})  # no preset: refused too
    assert f"<#{dreams.id}>" in (await picker.wait_callback()).data["content"]

    there = await fake.slash(guild, bob, "dream", {"image": image, **QUICK}, channel=dreams)
    assert (await there.wait_callback()).type == 5
    await there.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)

    cleared = await admin_sets(fake, guild, admin, "channels", {"action": "clear"})
    assert "every channel" in cleared
    again = await fake.slash(guild, bob, "dream", {"image": image, **QUICK})
    assert (await again.wait_callback()).type == 5
    await again.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)


# -- 6. uploads that fail after the defer ------------------------------------------------------


def png_header_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("truncated", "damaged"),
        ("giant", "pixels"),
        ("real-12000x12000", "pixels"),
        ("http-500", "500"),
        ("cut-off", "failed"),  # the connection drops mid-download
    ],
)
async def test_uploads_that_fail_after_the_defer_explain_privately(world, cat_photo, kind, words):
    fake, bot, guild = world
    bob = fake.add_member(guild, "bob")
    whole = png(cat_photo)
    if kind == "truncated":
        image = fake.add_attachment("cut.png", whole[: len(whole) // 2], "image/png")
    elif kind == "giant":
        image = fake.add_attachment("giant.png", png_header_claiming(60000, 60000), "image/png")
    elif kind == "real-12000x12000":  # a real file (bilevel, so small), refused from its header
        buffer = io.BytesIO()
        Image.new("1", (12000, 12000), 1).save(buffer, "PNG")
        image = fake.add_attachment("huge.png", buffer.getvalue(), "image/png")
    elif kind == "cut-off":
        image = fake.add_attachment("cat.png", whole, "image/png")
        fake.cdn_file(image).cut_off = True
    else:
        image = fake.add_attachment("cat.png", whole, "image/png", status=500)
    inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
    text = await private_reply(inter, timeout=DREAM)
    assert words in text.lower(), text
    assert len(bot.queue) == 0 and not bot.queue.running()
    assert not bot.queue.jobs_of(bob.id)


async def test_a_stalled_download_times_out_with_a_private_reason(tmp_path, executor, cat_photo):
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        bot = create_bot(settings_for(tmp_path, download_timeout=0.5), executor)
        await fake.start_bot(bot)
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png", stall=3.0)
        inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
        assert (await inter.wait_callback()).type == 5
        text = await private_reply(inter, timeout=5.0)
        assert "timed out" in text.lower(), text
        assert len(bot.queue) == 0 and not bot.queue.running()


# -- 6. delivering the result -------------------------------------------------------------


async def test_a_refused_gallery_leaves_the_posted_dream_in_place(world, cat_photo):
    fake, _bot, guild = world
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    # Discord refuses the gallery's follow-up once; the word about it goes through.
    fake.inject_error("POST", "/webhooks/*", 400, {"message": "Too large", "code": 40005})
    inter = await fake.slash(
        guild, bob, "dream", {"image": image, "preset": "one-octave", "gallery": True}
    )
    await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
    (note,) = await inter.wait_followups(1, timeout=DREAM)
    assert "refused the extra images (HTTP 400)" in note.content and not note.files
    await asyncio.sleep(0.5)  # nothing may come after it to take the dream away
    assert inter.original.embeds and inter.original.files, inter.original.content


class InstantBigDreams:
    """An executor whose every dream is at once a 4096x3072 picture (the largest an admin
    may allow) with two octaves: the bot's side of posting a big result, without the
    minutes a real engine needs to make one. `finished` is set as the result is handed over.
    """

    model_name = "inceptionv3"
    capacity = 1
    on_capacity_change = None

    def __init__(self) -> None:
        self.finished = asyncio.Event()

    def workers(self) -> list:
        return []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel) -> DreamResult:
        pixels = np.random.default_rng(0).integers(0, 256, (3072, 4096, 3), dtype=np.uint8)
        big = Image.fromarray(pixels)
        self.finished.set()
        return DreamResult(
            image=big, octaves=[big.resize((2048, 1536)), big], losses=[[0.0], [0.0]],
            params=request.params, seconds=1.0,
        )  # fmt: skip


async def test_posting_a_big_dream_does_not_hold_up_the_bot(tmp_path, cat_photo):
    """Fitting a 4096 px dream and its gallery into the upload limit takes seconds of
    encoding; the bot's event loop must keep turning meanwhile (heartbeats, and every other
    member's command answered within Discord's 3 s), so the encoding runs off the loop."""
    executor = InstantBigDreams()
    async with FakeDiscord(ack_deadline=3.0) as fake:
        guild = fake.add_guild("Art")
        bob, carol = fake.add_member(guild, "bob"), fake.add_member(guild, "carol")
        await fake.start_bot(create_bot(settings_for(tmp_path, max_side=4096), executor))
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        big = await fake.slash(
            guild, bob, "dream", {"image": image, "preset": "one-octave", "gallery": True}
        )
        await executor.finished.wait()
        longest_stall = 0.0
        queue = await fake.slash(guild, carol, "queue", {})
        async with asyncio.timeout(DREAM):
            while not big.followups:  # until the gallery is posted
                before = time.monotonic()
                await asyncio.sleep(0.05)
                longest_stall = max(longest_stall, time.monotonic() - before - 0.05)
        # Unblocked, the loop stalls for milliseconds; encoding on it stalled it for seconds.
        assert longest_stall < 1.0, f"the event loop stood still for {longest_stall:.1f} s"
        assert (await queue.wait_callback()).delay < 3.0
        (gallery,) = big.followups
        # Both octaves in one message, sharing its upload limit (10 MiB here).
        assert [file.filename[:13] for file in gallery.files] == ["octave-1-of-2", "octave-2-of-2"]
        assert sum(len(file.data) for file in gallery.files) <= 10 * 1024 * 1024
        assert big.original.embeds and big.original.files


async def test_cancel_while_a_finished_dream_is_being_posted_says_so(tmp_path, cat_photo):
    """Between the engine's answer and the post (seconds of encoding for a big dream) there
    is nothing left to stop: /cancel must not promise to stop it, and the dream is posted."""
    executor = InstantBigDreams()
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        await fake.start_bot(create_bot(settings_for(tmp_path, max_side=4096), executor))
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        inter = await fake.slash(guild, bob, "dream", {"image": image, "preset": "one-octave"})
        await executor.finished.wait()
        cancel = await fake.slash(guild, bob, "cancel", {})  # the latest: this one
        said = (await cancel.wait_callback()).data["content"]
        assert said == "That dream has already finished; it is being posted."
        await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)


async def test_queue_in_direct_messages_counts_the_dreams_waiting_there(
    tmp_path, executor, cat_photo
):
    """DMs are one line of their own (one pseudo-server): /queue there counts that line."""
    gated = GatedExecutor(executor)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        bot = create_bot(settings_for(tmp_path), gated)
        await fake.start_bot(bot)
        quick = {"image": image, "preset": "one-octave"}
        running = await fake.slash(None, bob.user, "dream", quick)
        await running.wait_original(lambda m: text_of(m).startswith("🌀"))
        waiting = await fake.slash(None, bob.user, "dream", quick)
        await waiting.wait_original(lambda m: "next in line" in text_of(m))
        try:
            listed = await fake.slash(None, bob.user, "queue")
            content = (await listed.wait_callback()).data["content"]
            assert "1 waiting in all, 1 in direct messages, 1 dreaming now." in content, content
        finally:
            for job in [*bot.queue.waiting(), *bot.queue.running()]:
                bot.queue.cancel(job.id, by_user=job.user_id)
            await running.wait_original(lambda m: "Cancelled" in text_of(m), timeout=DREAM)


async def test_the_reply_deadline_counts_from_the_command_not_the_download(
    tmp_path, executor, cat_photo
):
    # Discord's token lives 15 minutes from the interaction; a slow download eats into it.
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png", stall=1.5)
        bot = create_bot(settings_for(tmp_path, interaction_lifetime=600), executor)
        await fake.start_bot(bot)
        quick = {"image": image, "preset": "one-octave", "iterations": 1}
        inter = await fake.slash(guild, bob, "dream", quick)
        await inter.wait_original(lambda m: bool(m.embeds and m.files), timeout=DREAM)
        with sqlite3.connect(bot.settings.db_path) as db:
            (expires,) = db.execute("SELECT token_expires_at FROM jobs").fetchone()
        asked = discord.utils.snowflake_time(inter.id).timestamp()
        assert expires == pytest.approx(asked + 600, abs=0.5)  # not 1.5 s later
