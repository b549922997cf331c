"""Daily limits, cooldowns and exempt roles over the wire, against the fake Discord.

Shares the engine, fixtures and helpers of tests/bot/test_dream.py.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from bot import create_bot
from tests.bot.test_dream import DREAM, png, settings_for, world
from tests.bot.test_dream_more import private_reply
from tests.fakediscord import MANAGE_GUILD, FakeDiscord

__all__ = ["world"]  # a pytest fixture, imported for its side effect

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.e2e]

QUICK = {"preset": "one-octave", "iterations": 1}
VIEW_CHANNEL = 0x400  # a harmless permission: a role of the member's own, nothing more


def delivered(message) -> bool:
    return bool(message.embeds and message.files)


async def admin_sets(fake, guild, admin, command: str, options: dict) -> str:
    inter = await fake.slash(guild, admin, f"dreamadmin {command}", options)
    return (await inter.wait_callback()).data["content"]


async def settled(bot) -> None:
    """The dream posted has left the queue too (its end is recorded just after the post)."""
    async with asyncio.timeout(DREAM):
        while bot.queue.running():
            await asyncio.sleep(0.02)


async def dream(fake, guild, member, image):
    return await fake.slash(guild, member, "dream", {"image": image, **QUICK})


async def test_the_daily_limit_refuses_with_when_and_exempts_roles_and_admins(world, cat_photo):
    fake, bot, guild = world
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    vip = fake.add_member(guild, "vip", permissions=VIEW_CHANNEL)
    vip_role = next(role for role in guild.roles if role.id == vip.role_ids[0])
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    assert "1 dreams in any 24 hours" in await admin_sets(
        fake, guild, ada, "daily-limit", {"value": 1}
    )
    said = await admin_sets(fake, guild, ada, "exempt", {"role": vip_role})
    assert f"<@&{vip_role.id}> now skips" in said

    await (await dream(fake, guild, bob, image)).wait_original(delivered, timeout=DREAM)
    await settled(bot)
    refused = await dream(fake, guild, bob, image)
    text = await private_reply(refused)
    assert "You have had your 1 dream for today here" in text
    when = int(re.search(r"<t:(\d+):R>", text).group(1))
    assert time.time() + 23.9 * 3600 < when <= time.time() + 24 * 3600 + 2
    assert len(bot.queue) == 0 and not bot.queue.running()
    for member in (vip, vip, ada, ada):  # the exempt role, and an admin, skip it
        inter = await dream(fake, guild, member, image)
        await inter.wait_original(delivered, timeout=DREAM)


async def test_a_cooldown_spaces_dreams_and_a_refused_upload_does_not_count(world, cat_photo):
    fake, bot, guild = world
    ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
    bob = fake.add_member(guild, "bob")
    image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
    broken = fake.add_attachment("cut.png", png(cat_photo)[:300], "image/png")
    said = await admin_sets(fake, guild, ada, "cooldown", {"seconds": 3600})
    assert "at least 3600 s apart" in said
    assert "damaged" in await private_reply(await dream(fake, guild, bob, broken), timeout=DREAM)
    # The broken upload was refused after the download: it took no place, so this one runs.
    await (await dream(fake, guild, bob, image)).wait_original(delivered, timeout=DREAM)
    await settled(bot)
    text = await private_reply(await dream(fake, guild, bob, image))
    assert "dreams here are 3600 s apart" in text and "<t:" in text
    assert len(bot.queue) == 0 and not bot.queue.running()


async def test_a_restart_keeps_the_count(tmp_path, executor, cat_photo):
    settings = settings_for(tmp_path)
    async with FakeDiscord() as fake:
        guild = fake.add_guild("Art")
        ada = fake.add_member(guild, "ada", permissions=MANAGE_GUILD)
        bob = fake.add_member(guild, "bob")
        image = fake.add_attachment("cat.png", png(cat_photo), "image/png")
        first = create_bot(settings, executor)
        await fake.start_bot(first)
        await admin_sets(fake, guild, ada, "daily-limit", {"value": 1})
        await (await dream(fake, guild, bob, image)).wait_original(delivered, timeout=DREAM)
        await first.close()
        again = create_bot(settings, executor)
        await fake.start_bot(again)
        try:
            text = await private_reply(await dream(fake, guild, bob, image))
            assert "your 1 dream for today" in text
        finally:
            await again.close()
