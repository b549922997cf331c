"""`/dreamadmin` as server admins use it, over the wire against the fake Discord.

The executor is a stand-in that holds every dream until it is cancelled (no TensorFlow):
these tests are about settings, permissions and what admins are told.
"""

from __future__ import annotations

import asyncio
import io
import re
from contextlib import asynccontextmanager

import pytest
from PIL import Image

from bot import create_bot
from dream_engine.errors import DreamCancelled
from dream_engine.runtime.executor import WorkerStatus
from tests.bot.test_dream import settings_for
from tests.fakediscord import MANAGE_GUILD, FakeDiscord

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]


class StubExecutor:
    """Holds every dream until it is cancelled; never runs TensorFlow."""

    capacity = 1
    model_name = "inceptionv3"
    on_capacity_change = None

    def __init__(self) -> None:
        self.in_hand: str | None = None

    def workers(self) -> list[WorkerStatus]:
        return [WorkerStatus("stub", "host", "CPU", 0, self.in_hand)]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, request, on_progress, cancel):
        self.in_hand = request.label
        try:
            while not cancel.is_set():
                await asyncio.sleep(0.02)
            raise DreamCancelled()
        finally:
            self.in_hand = None


@asynccontextmanager
async def running_bot(tmp_path, **changes):
    # A stub dream only ends when cancelled, so the shutdown grace (30 s by default) would
    # only be waited out when one is still on its way in (downloaded after the defer) as
    # the test ends.
    changes = {"shutdown_grace": 0.2, **changes}
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        bot = create_bot(settings_for(tmp_path, **changes), StubExecutor())
        await fake.start_bot(bot)
        try:
            yield fake, bot, guild
        finally:
            for job in [*bot.queue.waiting(), *bot.queue.running()]:
                bot.queue.cancel(job.id, by_user=job.user_id)
            await asyncio.sleep(0.1)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def text_of(message) -> str:
    return (message.content or "") if message is not None else ""


async def reply_text(inter, timeout: float = 5.0) -> str:
    return (await inter.wait_callback(timeout=timeout)).data.get("content", "")


FORUM, VOICE = 15, 2
ONE_OCTAVE = {"preset": "one-octave"}


async def test_a_forum_or_voice_channel_can_be_made_a_dream_channel(tmp_path):
    """A forum's posts are threads whose parent (what /dream checks) is the forum, and voice
    channels have a chat where commands run: both can be listed, not only text channels."""
    async with running_bot(tmp_path) as (fake, _bot, _guild):
        admin_cmd = next(c for c in fake.commands() if c["name"] == "dreamadmin")
        channels_cmd = next(o for o in admin_cmd["options"] if o["name"] == "channels")
        option = next(o for o in channels_cmd["options"] if o["name"] == "channel")
        offered = set(option.get("channel_types") or [])
        assert FORUM in offered, f"Discord offers only channel types {sorted(offered)}"
        assert VOICE in offered, f"Discord offers only channel types {sorted(offered)}"


async def test_a_deleted_dream_channel_is_not_where_members_are_sent(tmp_path):
    """A deleted dream channel leaves the list: members are not sent to a channel that no
    longer exists, and `channels remove` could not name it."""
    async with running_bot(tmp_path) as (fake, bot, guild):
        admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        bob = fake.add_member(guild, "bob")
        dreams = fake.add_channel(guild, "dreams")
        await reply_text(
            await fake.slash(
                guild, admin, "dreamadmin channels", {"action": "add", "channel": dreams}
            )
        )
        guild.channels.remove(dreams)
        fake.emit("CHANNEL_DELETE", dreams.to_payload())
        for _ in range(50):
            if bot.get_channel(dreams.id) is None:
                break
            await asyncio.sleep(0.02)
        assert bot.get_channel(dreams.id) is None  # the bot knows it is gone

        image = fake.add_attachment("a.png", png_bytes(), "image/png")
        refused = await reply_text(
            await fake.slash(guild, bob, "dream", {"image": image, **ONE_OCTAVE})
        )
        assert f"<#{dreams.id}>" not in refused, refused
        shown = await reply_text(await fake.slash(guild, admin, "dreamadmin show"))
        assert f"<#{dreams.id}>" not in shown, shown


async def test_queue_size_above_the_bot_wide_cap_is_not_promised(tmp_path):
    """`DREAM_MAX_QUEUE` (here 3) caps the waiting dreams of all servers together: a server's
    queue size above it says so."""
    async with running_bot(tmp_path, max_queue=3) as (fake, _bot, guild):
        admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        answer = await reply_text(
            await fake.slash(guild, admin, "dreamadmin queue-size", {"value": 10})
        )
        assert re.search(r"\b3\b", answer), answer  # says the bot allows at most 3


async def test_removing_a_channel_that_is_not_listed_says_so(tmp_path):
    """`channels remove #general` when only #dreams is listed changes nothing, and says so;
    removing the last one says that /dream now works everywhere."""
    async with running_bot(tmp_path) as (fake, _bot, guild):
        admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        dreams = fake.add_channel(guild, "dreams")
        general = guild.text_channel
        await reply_text(
            await fake.slash(
                guild, admin, "dreamadmin channels", {"action": "add", "channel": dreams}
            )
        )
        answer = await reply_text(
            await fake.slash(
                guild, admin, "dreamadmin channels", {"action": "remove", "channel": general}
            )
        )
        assert answer.splitlines()[0].endswith("was not a dream channel; nothing changed."), answer
        last = await reply_text(
            await fake.slash(
                guild, admin, "dreamadmin channels", {"action": "remove", "channel": dreams}
            )
        )
        assert "/dream works everywhere" in last.splitlines()[0], last


async def test_an_admins_cancel_autocomplete_offers_the_servers_dreams(tmp_path):
    """README: `/cancel [job]` cancels "your queued or running dream (admins: any in their
    server)": an admin is offered the server's dreams, each with whose it is."""
    async with running_bot(tmp_path) as (fake, bot, guild):
        admin = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("a.png", png_bytes(), "image/png")
        await reply_text(await fake.slash(guild, admin, "dreamadmin user-limit", {"value": 5}))
        first = await fake.slash(guild, bob, "dream", {"image": image, **ONE_OCTAVE})
        await first.wait_original(lambda m: "Dreaming" in text_of(m))
        second = await fake.slash(guild, bob, "dream", {"image": image, **ONE_OCTAVE})
        await second.wait_original(lambda m: "next in line" in text_of(m))
        waiting = bot.queue.waiting()[0].id

        typed = await fake.autocomplete(guild, admin, "cancel", {"job": ""}, focused="job")
        await typed.wait_callback()
        offered = {choice["value"]: choice["name"] for choice in typed.choices}
        assert waiting in offered and offered[waiting].endswith("(bob)"), offered
        mine = await fake.autocomplete(guild, bob, "cancel", {"job": ""}, focused="job")
        await mine.wait_callback()
        assert len(mine.choices) == 2  # a member still sees only their own
